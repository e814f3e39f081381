"""The catalog stage: every audio file of the library with its file facts and metadata.

The driver lists paths (never audio bytes); executors hash each file and read its header.
Files whose path, size and modification time are unchanged since the last run are not
read again. The result is merged into the `catalog` table in one Delta commit; files that
vanished are marked retired rather than deleted, so history keeps them.
"""

from __future__ import annotations

import hashlib
import logging
import os
import stat
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import partial

import pyarrow as pa
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from leakfree import rowmap, storage, tables
from leakfree.config import CatalogConfig, LibraryConfig
from leakfree.decode import read_info
from leakfree.errors import AudioError
from leakfree.metadata import read_sidecar
from leakfree.rowmap import with_errors
from leakfree.runs import RunLog

log = logging.getLogger("leakfree")

FACT_COLUMNS = (
    "content_sha256",
    "format",
    "subtype",
    "sample_rate",
    "channels",
    "frames",
    "duration_s",
)
PROBE_SCHEMA = with_errors(
    ("path", pa.string()),
    ("content_sha256", pa.string()),
    ("format", pa.string()),
    ("subtype", pa.string()),
    ("sample_rate", pa.int32()),
    ("channels", pa.int32()),
    ("frames", pa.int64()),
    ("duration_s", pa.float64()),
)
BOOKKEEPING_COLUMNS = ("first_seen_run", "updated_run", "retired")
RESERVED_COLUMNS = frozenset(["file_id", *storage.LISTING_SCHEMA.names, *FACT_COLUMNS, *BOOKKEEPING_COLUMNS]) - {"path"}


@dataclass(frozen=True)
class ProbeLimits:
    read_chunk_bytes: int
    max_sample_rate: int
    max_channels: int


def probe_file(path: str, size: int, limits: ProbeLimits) -> dict:
    """File facts for one file, or its error class and message when the file cannot be used
    (any other exception is the guarded map's to catch)."""
    row: dict = dict.fromkeys(PROBE_SCHEMA.names)
    row["path"] = path
    try:
        row["content_sha256"] = content_sha256(path, limits.read_chunk_bytes, size)
        info = read_info(
            path,
            size=size,
            max_sample_rate=limits.max_sample_rate,
            max_channels=limits.max_channels,
        )
    except AudioError as exc:
        row.update(content_sha256=None, error_class=exc.error_class, message=exc.message)
        return row
    row.update(
        format=info.format,
        subtype=info.subtype,
        sample_rate=info.sample_rate,
        channels=info.channels,
        frames=info.frames,
        duration_s=info.duration_s,
    )
    return row


def content_sha256(path: str, chunk_bytes: int, size: int) -> str:
    """The digest of the `size` bytes the listing saw; a file that holds more (a kernel file
    that reports 0 bytes, one still being written) is refused after one byte more."""
    digest = hashlib.sha256()
    try:
        mode = stat.S_IFREG if storage.is_remote(path) else os.stat(path).st_mode
        if not stat.S_ISREG(mode):
            raise AudioError(storage.special_file(path, mode).error_class, "no longer a regular file")
        with storage.open_binary(path) as f:
            left = size
            while left > 0 and (block := f.read(min(chunk_bytes, left))):
                digest.update(block)
                left -= len(block)
            if f.read(1):
                raise AudioError("size_mismatch", f"holds more than the {size} bytes it had when listed")
    except FileNotFoundError as exc:
        raise AudioError("missing_file", exc.strerror or str(exc)) from None
    except OSError as exc:
        raise AudioError("unreadable", exc.strerror or str(exc)) from None
    return digest.hexdigest()


def file_id(path_column: str = "path") -> F.Column:
    """A stable 60-bit id from the path: the same file keeps its id across runs."""
    return F.conv(F.substring(F.sha2(F.col(path_column), 256), 1, 15), 16, 10).cast("long")


def build_catalog(
    spark: SparkSession,
    *,
    library: LibraryConfig,
    settings: CatalogConfig,
    warehouse: str,
    run: RunLog,
) -> None:
    """List, read what is new or changed, merge into `catalog`, report the rest in `errors`."""
    with run.stage("catalog") as stats:
        listing = storage.list_library(library.roots, library.extensions)
        listed = spark.createDataFrame(listing.files).withColumn("file_id", file_id())
        stats.counters["files_listed"] = listing.files.num_rows
        log.info("catalog: %d audio files listed under %d root(s)", listing.files.num_rows, len(library.roots))

        known = known_facts(spark, warehouse, "catalog")
        with probed_files(listed, known, settings) as probed:
            current, read_ok = probed.current, probed.read_ok
            metadata_problems: list[tuple[str, str, str]] = []
            if library.metadata:
                current, metadata_problems = with_sidecar(current, listed, library.metadata, "the library")

            # Counted, compared with the table and written: built once.
            current = current.persist()
            run.changes.update(_changes(listed, known, read_ok))
            run.write(current, "catalog")
            problems = [(p.path, p.error_class, p.message) for p in listing.problems] + metadata_problems
            errors = probed.errors
            if problems:
                errors = errors.unionByName(
                    spark.createDataFrame(problems, "path string, error_class string, message string")
                )
            stats.errors = run.record_errors("catalog", errors.withColumn("file_id", file_id()))
            stats.counters["files_read"] = probed.pending
            stats.counters["files_catalogued"] = tables.read(spark, warehouse, "catalog").where("NOT retired").count()
            current.unpersist()


def with_sidecar(
    current: DataFrame, listed: DataFrame, location: str, where: str
) -> tuple[DataFrame, list[tuple[str, str, str]]]:
    """`current` with the sidecar's columns, and its problems (path, error_class, message),
    among them the paths it names that are not listed (`where`: what was listed)."""
    sidecar = read_sidecar(location, RESERVED_COLUMNS)
    problems = list(sidecar.problems)
    meta = current.sparkSession.createDataFrame(sidecar.table)
    for safe, original in sidecar.original_names.items():
        meta = meta.withMetadata(safe, {"comment": f"sidecar column {original!r}"})
    orphans = meta.join(listed, "path", "left_anti").select("path").collect()
    problems += [(r.path, "metadata_orphan", f"named in the metadata sidecar, not found in {where}") for r in orphans]
    return current.join(meta, "path", "left"), problems


@dataclass(frozen=True)
class Probed:
    current: DataFrame  # every listed file that can be used, with its facts
    read_ok: DataFrame  # those read in this run
    errors: DataFrame  # path, error_class, message of the files that cannot be used
    pending: int  # how many files were read


@contextmanager
def probed_files(listed: DataFrame, known: DataFrame, settings: CatalogConfig) -> Iterator[Probed]:
    """The `listed` files with their facts: taken from `known` where the file, its size and
    its modification time are unchanged, read on the executors for the others."""
    on = ["file_id", "path", "size", "mtime"]
    unchanged = listed.join(known, on, "inner")
    to_read = listed.join(known.select(*on), on, "left_anti")
    pending = to_read.count()
    limits = ProbeLimits(settings.read_chunk_bytes, settings.max_sample_rate, settings.max_channels)
    log.info("catalog: reading %d new or changed files", pending)
    # A path is read once even where two reference sets list it.
    with rowmap.map_rows(
        to_read.select("path", "size").distinct(),
        tasks=rowmap.tasks_for(pending, settings.files_per_task),
        keys=("path",),
        make_work=partial(_probe_work, limits),
        schema=PROBE_SCHEMA,
        error_class="corrupt",
    ) as probed:
        read_ok = to_read.join(probed.good, "path")
        errors = probed.errors.select("path", "error_class", "message")
        yield Probed(unchanged.unionByName(read_ok), read_ok, errors, pending)


def _probe_work(limits: ProbeLimits) -> rowmap.RowWork:
    return lambda row: [probe_file(row["path"], row["size"], limits)]


def known_facts(spark: SparkSession, warehouse: str, name: str) -> DataFrame:
    """File facts of the catalog `name` as it stands, to skip re-reading unchanged files."""
    columns = ["file_id", "path", "size", "mtime", *FACT_COLUMNS]
    if tables.exists(spark, warehouse, name):
        return tables.read(spark, warehouse, name).where("NOT retired").select(*columns)
    fields = {f.name: f for f in [pa.field("file_id", pa.int64()), *storage.LISTING_SCHEMA, *PROBE_SCHEMA]}
    empty = pa.schema([fields[c] for c in columns]).empty_table()
    return spark.createDataFrame(empty)


def _changes(listed: DataFrame, known: DataFrame, read_ok: DataFrame) -> dict[str, int]:
    """New, changed (content, not just the time stamp) and deleted files since the last run."""
    before = known.select("path", F.col("content_sha256").alias("before"))
    read = read_ok.select("path", F.col("content_sha256").alias("after"), F.lit(True).alias("listed"))
    deleted = before.join(listed.select("path"), "path", "left_anti").select(
        "path", "before", F.lit(None).cast("string").alias("after"), F.lit(False).alias("listed")
    )
    row = (
        read.join(before, "path", "left")
        .unionByName(deleted)
        .agg(
            F.count_if(F.col("listed") & F.col("before").isNull()).alias("new_files"),
            F.count_if(F.col("listed") & (F.col("before") != F.col("after"))).alias("changed_files"),
            F.count_if(~F.col("listed")).alias("deleted_files"),
        )
        .first()
    )
    return row.asDict()
