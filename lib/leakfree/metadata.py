"""The metadata sidecar: one row per file (caption, category, setup, ...), keyed by path."""

from __future__ import annotations

from dataclasses import dataclass

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.json as pajson
import pyarrow.parquet as pq

from leakfree import storage
from leakfree.errors import LeakfreeError


class MetadataError(LeakfreeError):
    """A sidecar that cannot be used at all (missing, unknown format, no `path` column)."""


@dataclass(frozen=True)
class Sidecar:
    table: pa.Table  # `path` (canonical) first, then the sidecar's own columns
    problems: tuple[tuple[str, str, str], ...]  # (path, error_class, message)


def read_sidecar(location: str, reserved: frozenset[str]) -> Sidecar:
    """Rows keyed by canonical path; bad rows and repeats come back as problems."""
    fmt = storage.extension(location)
    problems: list[tuple[str, str, str]] = []
    try:
        with storage.open_binary(storage.canonical(location)) as source:
            if fmt in ("csv", "tsv"):
                delimiter = "," if fmt == "csv" else "\t"
                table = _read_csv(source, delimiter=delimiter, location=location, problems=problems)
            elif fmt in ("jsonl", "json", "ndjson"):
                table = pajson.read_json(source)
            elif fmt == "parquet":
                table = pq.read_table(source)
            else:
                raise MetadataError(f"metadata sidecar {location}: use .csv, .tsv, .jsonl or .parquet")
    except (OSError, pa.ArrowInvalid) as exc:
        raise MetadataError(f"cannot read metadata sidecar {location}: {exc}") from exc
    if "path" not in table.column_names:
        raise MetadataError(
            f"metadata sidecar {location} has no `path` column (it has: {', '.join(table.column_names)})"
        )
    clashes = sorted(set(table.column_names) & reserved)
    if clashes:
        raise MetadataError(
            f"metadata sidecar {location}: columns {', '.join(clashes)} clash with catalog columns; rename them"
        )
    base = storage.parent(storage.canonical(location))
    paths = [storage.canonical(p, base=base) if p else None for p in table.column("path").to_pylist()]
    table = table.set_column(table.column_names.index("path"), "path", pa.array(paths, pa.string()))
    table = table.filter(pc.is_valid(table.column("path")))
    table, repeats = _first_row_per_path(table)
    problems += [(p, "metadata_duplicate", "the path appears again in the sidecar") for p in repeats]
    columns = ["path"] + [c for c in table.column_names if c != "path"]
    return Sidecar(table.select(columns), tuple(problems))


def _read_csv(source, *, delimiter: str, location: str, problems: list[tuple[str, str, str]]) -> pa.Table:
    data = source.read()
    bad: list[tuple[str, str, str]] = []

    def skip_bad_row(row: pacsv.InvalidRow) -> str:
        text = (row.text or "")[:200]
        bad.append(
            (
                location,
                "metadata_unparsable",
                f"line {row.number}: {row.expected_columns} columns expected, {row.actual_columns} found: {text}",
            )
        )
        return "skip"

    parse = pacsv.ParseOptions(delimiter=delimiter, newlines_in_values=True, invalid_row_handler=skip_bad_row)
    names = pacsv.open_csv(pa.BufferReader(data), parse_options=parse).schema.names
    bad.clear()  # the peek at the header may have met the first bad rows; the full read meets all
    # Everything stays text: a caption of "1984" is not a number, a CD id "007" keeps its zeros.
    convert = pacsv.ConvertOptions(column_types={name: pa.string() for name in names}, strings_can_be_null=False)
    table = pacsv.read_csv(pa.BufferReader(data), parse_options=parse, convert_options=convert)
    problems.extend(bad)
    return table


def _first_row_per_path(table: pa.Table) -> tuple[pa.Table, list[str]]:
    seen: set[str] = set()
    keep = []
    repeats = []
    for i, path in enumerate(table.column("path").to_pylist()):
        if path in seen:
            repeats.append(path)
        else:
            seen.add(path)
            keep.append(i)
    return table.take(keep), repeats
