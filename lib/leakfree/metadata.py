"""The metadata sidecar: one row per file (caption, category, setup, ...), keyed by path."""

from __future__ import annotations

import csv
import io
import json
import logging
import re
from dataclasses import dataclass

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from leakfree import storage
from leakfree.errors import LeakfreeError

log = logging.getLogger("leakfree")


class MetadataError(LeakfreeError):
    """A sidecar that cannot be used at all (missing, unknown format, no `path` column)."""


@dataclass(frozen=True)
class Sidecar:
    table: pa.Table  # `path` (canonical) first, then the sidecar's own columns under safe names
    problems: tuple[tuple[str, str, str], ...]  # (path, error_class, message)
    original_names: dict[str, str]  # safe column name -> the name in the sidecar, where they differ


def read_sidecar(location: str, reserved: frozenset[str]) -> Sidecar:
    """Rows keyed by canonical path; bad rows, bad bytes and repeats come back as problems."""
    fmt = storage.extension(location)
    problems: list[tuple[str, str, str]] = []
    try:
        with storage.open_binary(storage.canonical(location)) as source:
            if fmt in ("csv", "tsv"):
                text = _decode(source.read(), location, problems)
                table = _read_csv(text, delimiter="," if fmt == "csv" else "\t", location=location, problems=problems)
            elif fmt in ("jsonl", "json", "ndjson"):
                table = _read_json_lines(_decode(source.read(), location, problems), location, problems)
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
    table, original_names = _safe_columns(table, reserved)
    base = storage.parent(storage.canonical(location))
    paths = [storage.canonical(p, base=base) if p else None for p in table.column("path").to_pylist()]
    table = table.set_column(table.column_names.index("path"), "path", pa.array(paths, pa.string()))
    table = table.filter(pc.is_valid(table.column("path")))
    table, repeats = _first_row_per_path(table)
    problems += [(p, "metadata_duplicate", "the path appears again in the sidecar") for p in repeats]
    columns = ["path"] + [c for c in table.column_names if c != "path"]
    return Sidecar(table.select(columns), tuple(problems), original_names)


def safe_column_name(name: str) -> str:
    """A column name Delta accepts without column mapping: letters, digits and underscores."""
    return re.sub(r"[^0-9A-Za-z_]+", "_", name.strip()).strip("_")


def _safe_columns(table: pa.Table, reserved: frozenset[str]) -> tuple[pa.Table, dict[str, str]]:
    """Rename columns Delta would refuse, repeats (Spark compares names case-insensitively)
    and names the catalog itself uses; returns the renamed table and safe -> original."""
    taken = {"path"}
    names, original_names = [], {}
    for i, name in enumerate(table.column_names):
        if name == "path" and "path" not in names:
            names.append(name)
            continue
        base = safe_column_name(name) or f"column_{i + 1}"
        if base in reserved or base == "path":
            base = f"sidecar_{base}"
        safe, n = base, 1
        while safe.lower() in taken:
            n += 1
            safe = f"{base}_{n}"
        taken.add(safe.lower())
        names.append(safe)
        if safe != name:
            original_names[safe] = name
            log.warning("metadata: sidecar column %r is stored as %s", name, safe)
    return table.rename_columns(names), original_names


def _decode(data: bytes, location: str, problems: list[tuple[str, str, str]]) -> str:
    """The sidecar's text; bytes that are not UTF-8 become U+FFFD, reported with their lines."""
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        pass
    for number, line in enumerate(data.split(b"\n"), start=1):
        try:
            line.decode("utf-8")
        except UnicodeDecodeError as exc:
            problems.append(
                (
                    location,
                    "metadata_unparsable",
                    f"line {number}: bytes that are not UTF-8 ({exc.reason}) read as U+FFFD",
                )
            )
    return data.decode("utf-8-sig", errors="replace")


def _read_csv(text: str, *, delimiter: str, location: str, problems: list[tuple[str, str, str]]) -> pa.Table:
    """Every value as text (a caption of "1984" is not a number, a CD id "007" keeps its zeros).

    A row whose quote never closes would swallow the rows after it, up to the next stray
    quote or the end; it is reported and skipped, and reading starts again on its next line.
    """
    lines = io.StringIO(text, newline="").readlines()
    rows: list[tuple[int, list[str]]] = []  # (line number, fields)
    start: int | None = 0
    while start is not None:
        reader = csv.reader(io.StringIO("".join(lines[start:]), newline=""), delimiter=delimiter)
        first, resume = start, None
        for fields in reader:
            end = start + reader.line_num
            if (end - first > 1 or end == len(lines)) and _badly_quoted(lines[first:end], delimiter):
                problems.append(
                    (location, "metadata_unparsable", f"line {first + 1}: a quote opens and never closes; row skipped")
                )
                resume = first + 1
                break
            rows.append((first + 1, fields))
            first = end
        start = resume
    rows = [(number, fields) for number, fields in rows if fields]  # blank lines
    if not rows:
        raise MetadataError(f"metadata sidecar {location} is empty")
    header = [name.strip() for name in rows[0][1]]
    body = []
    for number, fields in rows[1:]:
        if len(fields) == len(header):
            body.append(fields)
        else:
            shown = delimiter.join(fields)[:200]
            problems.append(
                (
                    location,
                    "metadata_unparsable",
                    f"line {number}: {len(header)} columns expected, {len(fields)} found: {shown}",
                )
            )
    columns = [pa.array([row[i] for row in body], pa.string()) for i in range(len(header))]
    return pa.Table.from_arrays(columns, names=_unique(header))


def _badly_quoted(lines: list[str], delimiter: str) -> bool:
    """Whether a row only reached its last line through a quote that never closes properly:
    a strict reading of a row across lines fails, or of any row ends inside the quote."""
    reader = csv.reader(io.StringIO("".join(lines), newline=""), delimiter=delimiter, strict=True)
    try:
        next(reader, None)
    except csv.Error as exc:
        return len(lines) > 1 or "unexpected end of data" in str(exc)
    return False


def _read_json_lines(text: str, location: str, problems: list[tuple[str, str, str]]) -> pa.Table:
    """One object per line; every value as text, as in a CSV sidecar."""
    records = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except ValueError as exc:
            problems.append((location, "metadata_unparsable", f"line {number}: {exc}"))
            continue
        if not isinstance(record, dict):
            problems.append((location, "metadata_unparsable", f"line {number}: not a JSON object"))
            continue
        records.append({k: _as_text(v) for k, v in record.items()})
    keys = list(dict.fromkeys(k for r in records for k in r))
    columns = [pa.array([r.get(k) for r in records], pa.string()) for k in keys]
    return pa.Table.from_arrays(columns, names=keys)


def _as_text(value: object) -> str | None:
    if value is None or isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False)


def _unique(names: list[str]) -> list[str]:
    """Header names with repeats kept apart (the safe names come later)."""
    seen: dict[str, int] = {}
    out = []
    for name in names:
        seen[name] = seen.get(name, 0) + 1
        out.append(name if seen[name] == 1 else f"{name} {seen[name]}")
    return out


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
