"""Per-split file lists for training code: one .txt per split, or one CSV / JSONL file."""

from __future__ import annotations

import csv
import json
from pathlib import Path

from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from leakfree import tables

FORMATS = ("txt", "csv", "jsonl")


def export_splits(spark: SparkSession, *, warehouse: str, out: str, fmt: str, relative: bool) -> list[Path]:
    """Write the current assignment under `out`; returns the files written."""
    if fmt not in FORMATS:
        raise ValueError(f"format must be one of {FORMATS}")
    rows = (
        tables.read(spark, warehouse, "splits")
        .where("NOT retired")
        .join(tables.read(spark, warehouse, "catalog").select("file_id", "rel_path"), "file_id")
        .select("file_id", "path", "rel_path", "split", "group_id")
        .orderBy("split", F.col("rel_path" if relative else "path"))
        .collect()
    )
    folder = Path(out)
    folder.mkdir(parents=True, exist_ok=True)
    key = "rel_path" if relative else "path"
    if fmt == "txt":
        written = []
        for split in sorted({r.split for r in rows}):
            target = folder / f"{split}.txt"
            target.write_text("".join(f"{r[key]}\n" for r in rows if r.split == split), encoding="utf-8")
            written.append(target)
        return written
    target = folder / f"splits.{fmt}"
    with target.open("w", encoding="utf-8", newline="") as f:
        if fmt == "csv":
            writer = csv.writer(f)
            writer.writerow(["path", "split", "group_id", "file_id"])
            writer.writerows([r[key], r.split, r.group_id, r.file_id] for r in rows)
        else:
            for r in rows:
                record = {"path": r[key], "split": r.split, "group_id": r.group_id, "file_id": r.file_id}
                f.write(json.dumps(record, ensure_ascii=False) + "\n")
    return [target]
