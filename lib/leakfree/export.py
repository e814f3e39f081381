"""Per-split file lists for training code: one .txt per split, or one CSV / JSONL file."""

from __future__ import annotations

import contextlib
import csv
import json
import os
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any, TextIO

from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from leakfree import tables
from leakfree.errors import LeakfreeError

FORMATS = ("txt", "csv", "jsonl")
# A spreadsheet runs a cell that starts with one of these as a formula.
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def spreadsheet_safe(value: Any) -> Any:
    """A text cell a spreadsheet shows as text: formula-like strings get a leading apostrophe."""
    if isinstance(value, str) and value.startswith(FORMULA_STARTS):
        return "'" + value
    return value


def write_csv(f: TextIO, header: list[str], rows: Iterable[Iterable[Any]], *, raw: bool = False) -> None:
    writer = csv.writer(f)
    writer.writerow(header if raw else [spreadsheet_safe(v) for v in header])
    writer.writerows(list(row) if raw else [spreadsheet_safe(v) for v in row] for row in rows)


def export_splits(
    spark: SparkSession,
    *,
    warehouse: str,
    out: str,
    fmt: str,
    relative: bool,
    raw_csv: bool = False,
    dedupe: bool = False,
) -> list[Path]:
    """Write the current assignment under `out`; returns the files written. With `dedupe`,
    one file per duplicate cluster: its canonical copy."""
    if fmt not in FORMATS:
        raise ValueError(f"format must be one of {FORMATS}")
    assigned = tables.read(spark, warehouse, "splits").where("NOT retired")
    if dedupe:
        assigned = assigned.join(
            tables.read(spark, warehouse, "clusters").where("canonical").select("file_id"), "file_id"
        )
    rows = (
        assigned.join(tables.read(spark, warehouse, "catalog").select("file_id", "rel_path"), "file_id")
        .select("file_id", "path", "rel_path", "split", "group_id")
        .orderBy("split", F.col("rel_path" if relative else "path"))
        .collect()
    )
    folder = Path(out)
    folder.mkdir(parents=True, exist_ok=True)
    key = "rel_path" if relative else "path"
    if fmt == "txt":
        broken = [r[key] for r in rows if "\n" in r[key] or "\r" in r[key]]
        if broken:
            raise LeakfreeError(
                f"{len(broken)} path(s) hold a line break, e.g. {broken[0]!r}, and would split across lines "
                "of a .txt list; use --format csv or --format jsonl, which quote them"
            )
        written = []
        for split in sorted({r.split for r in rows}):
            with _replacing(folder / f"{split}.txt") as f:
                f.write("".join(f"{r[key]}\n" for r in rows if r.split == split))
            written.append(folder / f"{split}.txt")
        return written
    target = folder / f"splits.{fmt}"
    with _replacing(target) as f:
        if fmt == "csv":
            write_csv(
                f,
                ["path", "split", "group_id", "file_id"],
                ([r[key], r.split, r.group_id, r.file_id] for r in rows),
                raw=raw_csv,
            )
        else:
            for r in rows:
                record = {"path": r[key], "split": r.split, "group_id": r.group_id, "file_id": r.file_id}
                f.write(json.dumps(record, ensure_ascii=False) + "\n")
    return [target]


@contextlib.contextmanager
def _replacing(target: Path) -> Iterator[TextIO]:
    """A text file that appears whole at `target` or not at all (a crash leaves the old one)."""
    partial = target.with_name(f".{target.name}.partial")
    with partial.open("w", encoding="utf-8", newline="") as f:
        yield f
    os.replace(partial, target)
