"""Per-split file lists for training code (one .txt per split, or one CSV / JSONL file), and
block lists: the library files that copy a sound of a reference set."""

from __future__ import annotations

import contextlib
import csv
import json
import logging
import os
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any, TextIO

from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from leakfree import tables
from leakfree.contamination import findings
from leakfree.errors import LeakfreeError

log = logging.getLogger("leakfree")

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
    exclude_contaminated: bool = False,
) -> list[Path]:
    """Write the current assignment under `out`; returns the files written. With `dedupe`,
    one file per duplicate cluster: its canonical copy; with `exclude_contaminated`, none
    that copies a sound of a reference set."""
    if fmt not in FORMATS:
        raise ValueError(f"format must be one of {FORMATS}")
    assigned = tables.read(spark, warehouse, "splits").where("NOT retired")
    if dedupe:
        assigned = assigned.join(
            tables.read(spark, warehouse, "clusters").where("canonical").select("file_id"), "file_id"
        )
    if exclude_contaminated:
        blocked = findings(spark, warehouse).select(F.col("library_file").alias("file_id"))
        left_out = assigned.join(blocked, "file_id", "left_semi").count()
        log.info("export: leaving out %d contaminated files", left_out)
        assigned = assigned.join(blocked, "file_id", "left_anti")
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
        _refuse_line_breaks([r[key] for r in rows])
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


def export_contaminated(
    spark: SparkSession,
    *,
    warehouse: str,
    out: str,
    fmt: str,
    relative: bool,
    references: list[str],
    raw_csv: bool = False,
) -> list[Path]:
    """One block list per reference set under `out` (contaminated-<name>.<fmt>): the library
    files that copy one of its sounds, with the reference files they copy and how they
    were found. Returns the files written."""
    if fmt not in FORMATS:
        raise ValueError(f"format must be one of {FORMATS}")
    known = (
        {r.reference for r in tables.read(spark, warehouse, "reference_sets").select("reference").collect()}
        if tables.exists(spark, warehouse, "reference_sets")
        else set()
    )
    unknown = sorted(set(references) - known)
    if unknown:
        raise LeakfreeError(
            f"no reference set {', '.join(unknown)} in {warehouse}; known: {', '.join(sorted(known)) or '(none)'}"
        )
    rows = (
        findings(spark, warehouse)
        .where(F.col("reference").isin(references))
        .groupBy("reference", "library_file", "library_path", "rel_path")
        .agg(
            F.sort_array(F.collect_set("reference_path")).alias("reference_paths"),
            F.sort_array(F.collect_set("method")).alias("methods"),
        )
        .orderBy("reference", F.col("rel_path" if relative else "library_path"))
        .collect()
    )
    key = "rel_path" if relative else "library_path"
    folder = Path(out)
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for name in sorted(set(references)):
        mine = [r for r in rows if r.reference == name]
        target = folder / f"contaminated-{name}.{fmt}"
        if fmt == "txt":
            _refuse_line_breaks([r[key] for r in mine])
        with _replacing(target) as f:
            if fmt == "txt":
                f.write("".join(f"{r[key]}\n" for r in mine))
            elif fmt == "csv":
                write_csv(
                    f,
                    ["path", "file_id", "reference", "reference_paths", "methods"],
                    ([r[key], r.library_file, name, ";".join(r.reference_paths), ";".join(r.methods)] for r in mine),
                    raw=raw_csv,
                )
            else:
                for r in mine:
                    record = {
                        "path": r[key],
                        "file_id": r.library_file,
                        "reference": name,
                        "reference_paths": r.reference_paths,
                        "methods": r.methods,
                    }
                    f.write(json.dumps(record, ensure_ascii=False) + "\n")
        written.append(target)
    return written


def _refuse_line_breaks(paths: list[str]) -> None:
    broken = [p for p in paths if "\n" in p or "\r" in p]
    if broken:
        raise LeakfreeError(
            f"{len(broken)} path(s) hold a line break, e.g. {broken[0]!r}, and would split across lines "
            "of a .txt list; use --format csv or --format jsonl, which quote them"
        )


@contextlib.contextmanager
def _replacing(target: Path) -> Iterator[TextIO]:
    """A text file that appears whole at `target` or not at all (a crash leaves the old one)."""
    partial = target.with_name(f".{target.name}.partial")
    with partial.open("w", encoding="utf-8", newline="") as f:
        yield f
    os.replace(partial, target)
