"""Where audio lives: listing library roots and opening files, local or remote.

Local paths are walked with os.scandir (fast, and symlink loops are caught); remote URIs
(s3://, s3a://, hdfs://, gs://) go through pyarrow's filesystems on the driver and on the
executors alike, so whatever can be listed can also be read without the JVM.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import BinaryIO
from urllib.parse import urlparse

import pyarrow as pa
import pyarrow.fs as pafs

LISTING_SCHEMA = pa.schema(
    [
        ("path", pa.string()),
        ("root", pa.string()),
        ("rel_path", pa.string()),
        ("size", pa.int64()),
        ("mtime", pa.timestamp("us", tz="UTC")),
    ]
)

# Hadoop spells S3 as s3a:// or s3n://; pyarrow as s3://.
_SCHEME_ALIASES = {"s3a": "s3", "s3n": "s3"}


@dataclass(frozen=True)
class ListingProblem:
    path: str
    error_class: str
    message: str


@dataclass(frozen=True)
class Listing:
    files: pa.Table
    problems: tuple[ListingProblem, ...]


def is_remote(path: str) -> bool:
    scheme = urlparse(path).scheme
    return len(scheme) > 1 and scheme != "file"


def canonical(path: str, base: str | None = None) -> str:
    """One spelling per file: absolute local paths without scheme, remote URIs as given."""
    if is_remote(path):
        return path
    if path.startswith("file://"):
        path = urlparse(path).path
    elif path.startswith("file:"):
        path = path[len("file:") :]
    if base is not None and not os.path.isabs(path):
        if is_remote(base):
            return base.rstrip("/") + "/" + path
        path = os.path.join(base, path)
    return os.path.normpath(os.path.abspath(path))


def parent(path: str) -> str:
    if is_remote(path):
        return path.rstrip("/").rsplit("/", 1)[0]
    return os.path.dirname(canonical(path))


def extension(path: str) -> str:
    name = path.rsplit("/", 1)[-1]
    return name.rsplit(".", 1)[-1].lower() if "." in name else ""


def open_binary(path: str) -> BinaryIO:
    """A seekable binary file for a canonical path or URI; the caller closes it."""
    if not is_remote(path):
        return open(path, "rb")
    fs, inner = _remote_fs(path)
    return fs.open_input_file(inner)


def list_library(roots: Iterable[str], extensions: Iterable[str]) -> Listing:
    """Every audio file under the roots (each path once), plus what could not be listed."""
    wanted = {e.lower().lstrip(".") for e in extensions}
    rows: dict[str, tuple[str, str, int, datetime]] = {}
    problems: list[ListingProblem] = []
    for root in _distinct_roots(roots):
        if is_remote(root):
            fs, inner = _remote_fs(root)
            found = _walk_remote(fs, inner, root, problems)
        else:
            found = _walk_local(root, problems)
        for path, size, mtime in found:
            if extension(path) in wanted and path not in rows:
                rel = path[len(root) :].lstrip("/")
                rows[path] = (root, rel, size, mtime)
    ordered = sorted(rows)
    table = pa.table(
        {
            "path": ordered,
            "root": [rows[p][0] for p in ordered],
            "rel_path": [rows[p][1] for p in ordered],
            "size": [rows[p][2] for p in ordered],
            "mtime": [rows[p][3] for p in ordered],
        },
        schema=LISTING_SCHEMA,
    )
    problems = [p for p in problems if extension(p.path) in wanted or p.error_class not in _ONLY_IF_AUDIO_NAMED]
    return Listing(table, tuple(problems))


# Problems of paths that would only matter if they were audio files.
_ONLY_IF_AUDIO_NAMED = ("broken_link", "fifo", "device", "socket", "audio_named_folder")


def _distinct_roots(roots: Iterable[str]) -> list[str]:
    """Canonical roots with repeats and roots nested in another root dropped."""
    result: list[str] = []
    for root in sorted({canonical(r) for r in roots}):
        if not any(root == kept or root.startswith(kept.rstrip("/") + "/") for kept in result):
            result.append(root)
    return result


def _remote_fs(uri: str) -> tuple[pafs.FileSystem, str]:
    parsed = urlparse(uri)
    scheme = _SCHEME_ALIASES.get(parsed.scheme, parsed.scheme)
    return pafs.FileSystem.from_uri(parsed._replace(scheme=scheme).geturl())


def _walk_remote(
    fs: pafs.FileSystem, inner: str, root_uri: str, problems: list[ListingProblem]
) -> Iterator[tuple[str, int, datetime]]:
    try:
        infos = fs.get_file_info(pafs.FileSelector(inner, recursive=True))
    except OSError as exc:
        problems.append(ListingProblem(root_uri, "unlistable", str(exc)))
        return
    prefix = root_uri.rstrip("/")
    for info in infos:
        if info.type == pafs.FileType.File:
            uri = prefix + "/" + info.path[len(inner.rstrip("/")) :].lstrip("/")
            yield uri, int(info.size or 0), info.mtime or datetime.fromtimestamp(0, UTC)


def _walk_local(root: str, problems: list[ListingProblem]) -> Iterator[tuple[str, int, datetime]]:
    try:
        top = os.stat(root)
    except OSError as exc:
        problems.append(ListingProblem(root, "unlistable", f"library root: {exc.strerror}"))
        return
    if not stat.S_ISDIR(top.st_mode):
        problems.append(ListingProblem(root, "unlistable", "library root is not a folder"))
        return
    # Symlinked folders are followed (libraries are often assembled from links), so a
    # folder reached twice is a loop or an alias: walk it once.
    seen = {(top.st_dev, top.st_ino)}
    pending = [root]
    while pending:
        folder = pending.pop()
        try:
            entries = sorted(os.scandir(folder), key=lambda e: e.name)
        except OSError as exc:
            problems.append(ListingProblem(_printable(folder), "unlistable", exc.strerror or str(exc)))
            continue
        for entry in entries:
            path = os.path.join(folder, entry.name)
            if not _is_utf8(path):
                problems.append(ListingProblem(_printable(path), "bad_name", "file name is not valid UTF-8"))
                continue
            try:
                info = entry.stat(follow_symlinks=True)
            except OSError as exc:
                kind = "symlink_loop" if exc.errno == 40 else "broken_link"
                if entry.is_symlink():
                    problems.append(ListingProblem(path, kind, exc.strerror or str(exc)))
                else:
                    problems.append(ListingProblem(path, "unreadable", exc.strerror or str(exc)))
                continue
            if stat.S_ISDIR(info.st_mode):
                problems.append(ListingProblem(path, "audio_named_folder", "a folder; its contents are listed"))
                key = (info.st_dev, info.st_ino)
                if key in seen:
                    if entry.is_symlink():
                        problems.append(ListingProblem(path, "symlink_loop", "links back to a folder already listed"))
                    continue
                seen.add(key)
                pending.append(path)
            elif stat.S_ISREG(info.st_mode):
                mtime = datetime.fromtimestamp(info.st_mtime_ns / 1e9, UTC)
                yield path, info.st_size, mtime
            else:
                problems.append(special_file(path, info.st_mode))


SPECIAL_FILES = (
    (stat.S_ISFIFO, "fifo", "a named pipe: reading it would wait for a writer"),
    (stat.S_ISCHR, "device", "a character device, not a file"),
    (stat.S_ISBLK, "device", "a block device, not a file"),
    (stat.S_ISSOCK, "socket", "a socket, not a file"),
)


def special_file(path: str, mode: int) -> ListingProblem:
    """The problem a path that is neither a folder nor a regular file reports."""
    return next(
        (ListingProblem(path, kind, why) for test, kind, why in SPECIAL_FILES if test(mode)),
        ListingProblem(path, "device", f"not a regular file (mode {mode:o})"),
    )


def _is_utf8(path: str) -> bool:
    try:
        path.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _printable(path: str) -> str:
    return os.fsencode(path).decode("utf-8", errors="backslashreplace")
