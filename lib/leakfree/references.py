"""Reference sets: named collections of audio (a benchmark's evaluation set) that library
files are checked against and that are never split: what they are, which of their files
count (an evaluation list), and their listing."""

from __future__ import annotations

import csv
import io
import posixpath
from collections.abc import Iterable
from dataclasses import dataclass

import pyarrow as pa

from leakfree import storage
from leakfree.config import ContaminationConfig
from leakfree.errors import LeakfreeError

# Columns of a CSV evaluation list that name its files, in the order they are looked for.
LIST_COLUMNS = ("path", "file_name", "filename", "fname", "file", "id")
REFERENCE_LISTING_SCHEMA = pa.schema([("reference", pa.string()), *storage.LISTING_SCHEMA])


@dataclass(frozen=True)
class ReferenceSet:
    name: str
    roots: tuple[str, ...]
    list: str = ""  # the evaluation list; "" = every file under the roots counts
    metadata: str = ""  # a sidecar keyed by path, for contamination.key_column


@dataclass(frozen=True)
class ReferenceListing:
    files: pa.Table  # REFERENCE_LISTING_SCHEMA
    problems: list[tuple[str, str, str]]  # path (or list entry), error_class, message
    list_entries: dict[str, int]  # per reference with a list: its entries
    unmatched_entries: dict[str, int]  # ... and those that name no file under its roots


def declared(settings: ContaminationConfig) -> dict[str, ReferenceSet]:
    """The reference sets the config (or the command line) declares."""
    return {
        name: ReferenceSet(name, tuple(roots), settings.lists.get(name, ""), settings.metadata.get(name, ""))
        for name, roots in settings.references.items()
    }


def read_list(location: str) -> list[str]:
    """The entries of an evaluation list: one per line, or a CSV's file column (LIST_COLUMNS,
    else its first column). Blank lines and lines starting with # are skipped."""
    try:
        with storage.open_binary(storage.canonical(location)) as f:
            text = f.read().decode("utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise LeakfreeError(f"evaluation list {location} cannot be read: {exc}") from None
    if location.lower().endswith(".csv"):
        rows = list(csv.reader(io.StringIO(text)))
        if not rows:
            return []
        header = [c.strip().lower() for c in rows[0]]
        column = next((header.index(c) for c in LIST_COLUMNS if c in header), 0)
        values = [r[column] for r in rows[1:] if len(r) > column]
    else:
        values = text.splitlines()
    return [v.strip() for v in values if v.strip() and not v.strip().startswith("#")]


def entry_names(path: str, rel_path: str) -> set[str]:
    """What a list entry may call a file: its path, its path relative to its root, its file
    name, or its file name without the extension (an id)."""
    name = posixpath.basename(path)
    return {path, rel_path, name, name.rsplit(".", 1)[0]}


def select_listed(files: pa.Table, entries: Iterable[str]) -> tuple[pa.Table, list[str]]:
    """The files (LISTING_SCHEMA) an evaluation list names, and the entries that name none."""
    wanted = {e.removeprefix("./") for e in entries}
    keep = []
    found: set[str] = set()
    for path, rel in zip(files.column("path").to_pylist(), files.column("rel_path").to_pylist(), strict=True):
        names = entry_names(path, rel) & wanted
        keep.append(bool(names))
        found |= names
    return files.filter(pa.array(keep, pa.bool_())), sorted(wanted - found)


def list_references(references: Iterable[ReferenceSet], extensions: Iterable[str]) -> ReferenceListing:
    """Every counted audio file of every reference set, with its set's name."""
    extensions = tuple(extensions)
    parts = []
    problems: list[tuple[str, str, str]] = []
    list_entries: dict[str, int] = {}
    unmatched: dict[str, int] = {}
    for ref in references:
        listing = storage.list_library(ref.roots, extensions)
        files = listing.files
        problems += [(p.path, p.error_class, p.message) for p in listing.problems]
        if ref.list:
            entries = read_list(ref.list)
            files, missing = select_listed(files, entries)
            list_entries[ref.name] = len(set(entries))
            unmatched[ref.name] = len(missing)
            problems += [
                (
                    entry,
                    "reference_list_orphan",
                    f"named in the evaluation list of {ref.name}, not found under its roots",
                )
                for entry in missing
            ]
        parts.append(files.add_column(0, "reference", pa.array([ref.name] * files.num_rows, pa.string())))
    files = pa.concat_tables(parts) if parts else REFERENCE_LISTING_SCHEMA.empty_table()
    return ReferenceListing(files, problems, list_entries, unmatched)
