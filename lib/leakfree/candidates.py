"""The candidates stage: which files might be duplicates.

LSH banding of every signature family (audio windows per landmark family, captions) and of
the exact digests, and the nearest window shapes of every new file; one row per file pair
with the sources that proposed it.
"""

from __future__ import annotations

import dataclasses
import logging
import math
from collections.abc import Iterator
from functools import partial, reduce
from typing import NamedTuple

import numpy as np
import pyarrow as pa
from pyspark.sql import DataFrame, SparkSession, Window
from pyspark.sql import functions as F
from pyspark.sql.types import (
    BooleanType,
    FloatType,
    IntegerType,
    LongType,
    StructField,
    StructType,
)

from leakfree import lsh, shapes, tables
from leakfree.config import ConfigError, DedupConfig
from leakfree.edges import AUDIO_FAMILIES, CAPTION, EXACT_BYTES, EXACT_PCM, MID_SHAPE, SHAPE, TRIPLET
from leakfree.fingerprint import mel_frequencies
from leakfree.params import FingerprintParams
from leakfree.runs import RunLog

log = logging.getLogger("leakfree")

NEIGHBOUR_SCHEMA = StructType(
    [
        StructField("query_file", LongType()),
        StructField("window", IntegerType()),
        StructField("file_id", LongType()),
        StructField("similarity", FloatType()),
        # Whether the window that ranks (query_file, window) is a query's or an index window.
        StructField("forward", BooleanType()),
    ]
)
# What identifies an LSH bucket in the band index.
BUCKET = ["source", "band", "key"]


class ShapeView(NamedTuple):
    """One way of shaping windows: its source of candidates, its index table, the stage
    counter of the files it shaped, its settings, and the log-mel bands it looks at."""

    source: str
    table: str
    counter: str
    params: shapes.ShapeParams
    held: np.ndarray | None  # a mask over the log-mel bands; None: all


def shape_views(settings: DedupConfig, fingerprint: FingerprintParams) -> list[ShapeView]:
    """The whole-band view, and the mid-band one unless it is turned off."""
    views = [ShapeView(SHAPE, "shape_index", "files_shaped", settings.shapes, None)]
    mid = settings.mid_shapes
    if mid.neighbors > 0:
        hz = mel_frequencies(fingerprint)
        held = (hz >= mid.low_hz) & (hz <= mid.high_hz)
        if held.sum() < mid.bands:
            raise ConfigError(
                f"dedup.mid_shapes: {mid.low_hz:g}-{mid.high_hz:g} Hz holds {held.sum()} log-mel bands, "
                f"fewer than its {mid.bands} bands"
            )
        params = dataclasses.replace(
            settings.shapes,
            bands=mid.bands,
            neighbors=mid.neighbors,
            min_similarity=mid.min_similarity,
            min_windows=mid.min_windows,
        )
        views.append(ShapeView(MID_SHAPE, "mid_shape_index", "files_mid_shaped", params, held))
    return views


def build_candidates(
    spark: SparkSession,
    *,
    settings: DedupConfig,
    fingerprint: FingerprintParams,
    num_perm: int,
    warehouse: str,
    run: RunLog,
) -> None:
    """Band the files not in the band index yet (all of them on a first run), pair them
    with every indexed file sharing a bucket, and index them; likewise shape them in every
    view (shape_views) and pair them with their nearest windows."""
    with run.stage("candidates") as stats:
        # Only the columns LSH needs: the hash lists and log-mel matrices stay on disk.
        live = tables.live_features(spark, warehouse).select(
            "file_id", "content_sha256", "pcm_sha256", "flag", "segments", "caption_signature", "logmel", "logmel_bands"
        )
        views = shape_views(settings, fingerprint)
        for name in ("band_index", *(view.table for view in views)):
            tables.ensure(spark, warehouse, name)
        # Every indexed file has exactly one exact_bytes row: reading those few rows is much
        # cheaper than a distinct over the whole index.
        indexed = (
            tables.read(spark, warehouse, "band_index")
            .where(F.col("source") == EXACT_BYTES)
            .select("file_id", "content_sha256")
            .persist()
        )
        dropped = drop_stale(spark, warehouse, indexed, live)
        tables.ensure(spark, warehouse, "candidates")
        pending = live.join(indexed, ["file_id", "content_sha256"], "left_anti").persist()
        banded = stats.counters["files_banded"] = pending.count()
        # Shaped apart from banding, in each view: a warehouse indexed before a view existed
        # has its files shaped (and compared) in it once, on the next run.
        new_shapes = []
        for view in views:
            shaped = tables.read(spark, warehouse, view.table).select("file_id", "content_sha256")
            rows = shape_rows(live.join(shaped, ["file_id", "content_sha256"], "left_anti"), view.params, view.held)
            new_shapes.append((view, rows.persist()))
            stats.counters[view.counter] = rows.count()
        bandings, caption = bandings_for(settings, num_perm)
        log.info(
            "candidates: %d new or changed files (%s), %d dropped; LSH bands x rows: landmarks %s, triplets %s, "
            "captions %s",
            banded,
            ", ".join(f"{stats.counters[view.counter]} in {view.table}" for view in views),
            dropped,
            bandings[AUDIO_FAMILIES[0]],
            bandings.get(TRIPLET, "not banded"),
            caption,
        )
        shaped_frames = [rows for _, rows in new_shapes]
        if banded == 0 and not any(stats.counters[view.counter] for view in views):
            for frame in (pending, indexed, *shaped_frames):
                frame.unpersist()
            stats.counters["candidates_unverified"] = (
                tables.read(spark, warehouse, "candidates").where("NOT verified").count()
            )
            return  # nothing new: the index and the candidates stand
        new_keys = band_rows(pending, bandings, caption).persist()
        # Only buckets a new file falls in can make new pairs: a semi-join on the few new keys
        # keeps a nightly run from shuffling the whole index, and persisting its result from
        # scanning the index again for the oversized buckets.
        touched = (
            tables.read(spark, warehouse, "band_index")  # without what drop_stale removed
            .join(new_keys.select(*BUCKET).distinct(), BUCKET, "left_semi")
            .persist()
        )
        banded, oversized = _banded_pairs(touched, new_keys, settings.max_bucket)
        nearest = [_shape_pairs(spark, warehouse, rows, view) for view, rows in new_shapes]
        proposed = (
            reduce(DataFrame.unionByName, nearest, banded)
            .groupBy("file_a", "file_b")
            .agg(F.sort_array(F.collect_set("source")).alias("sources"))
        )
        # Every proposed pair holds a file banded or shaped in this run, so a pair already
        # there comes from a killed run that proposed the same sources, or was proposed by
        # the other kind before (a warehouse indexed before shapes existed) and verified.
        run.write(
            proposed.withColumn("verified", F.lit(False)).select(*tables.schema("candidates").names), "candidates"
        )
        _record_oversized(spark, warehouse, oversized, run)
        # Index last, the band index after the shapes: a run killed before this point finds
        # the same files pending again.
        for view, rows in new_shapes:
            run.write(rows, view.table)
        run.write(new_keys, "band_index")
        stats.counters["candidates_unverified"] = (
            tables.read(spark, warehouse, "candidates").where("NOT verified").count()
        )
        for frame in (touched, new_keys, *shaped_frames, pending, indexed):
            frame.unpersist()


def _banded_pairs(touched: DataFrame, new_keys: DataFrame, max_bucket: int) -> tuple[DataFrame, DataFrame]:
    """Pairs from the buckets that hold a new file (`touched`: the index rows in those
    buckets), and the oversized buckets."""
    rows = touched.select("file_id", *BUCKET, F.lit(False).alias("new")).unionByName(
        new_keys.select("file_id", *BUCKET, F.lit(True).alias("new"))
    )
    return lsh.keyed_pairs(rows, BUCKET, max_bucket=max_bucket, carry=["source"])


def bandings_for(settings: DedupConfig, num_perm: int) -> tuple[dict[str, lsh.Banding], lsh.Banding]:
    """The LSH banding of each audio family banded (triplets only at a triplet_threshold
    above 0), and of captions."""
    thresholds = {family: settings.audio_threshold for family in AUDIO_FAMILIES if family != TRIPLET}
    if settings.triplet_threshold > 0:
        thresholds[TRIPLET] = settings.triplet_threshold
    audio = {family: lsh.Banding.for_threshold(threshold, num_perm) for family, threshold in thresholds.items()}
    return audio, lsh.Banding.for_threshold(settings.caption_threshold, num_perm)


def band_rows(files: DataFrame, bandings: dict[str, lsh.Banding], caption: lsh.Banding) -> DataFrame:
    """Index rows of `files`: the band keys of every signature (audio windows per family,
    captions) and one bucket per digest (the same bytes, the same decoded PCM), so exact
    copies pair up through the same shuffle. Every file has a content digest, so every file
    is indexed, even one with no signature (silence, no caption)."""
    segments = files.where("flag IS NULL").select("file_id", "content_sha256", F.explode("segments").alias("s"))
    parts = []
    for family in bandings:
        signatures = segments.where(F.col("s.family") == family).select(
            "file_id", "content_sha256", F.col("s.signature").alias("signature")
        )
        parts.append(lsh.band_rows(signatures, bandings[family], source=family, keep=["content_sha256"]))
    captions = files.where("caption_signature IS NOT NULL").select(
        "file_id", "content_sha256", F.col("caption_signature").alias("signature")
    )
    parts.append(lsh.band_rows(captions, caption, source=CAPTION, keep=["content_sha256"]))
    for digest, source in (("content_sha256", EXACT_BYTES), ("pcm_sha256", EXACT_PCM)):
        parts.append(
            files.where(F.col(digest).isNotNull()).select(
                "file_id",
                "content_sha256",
                F.lit(source).alias("source"),
                F.lit(0).alias("band"),
                F.xxhash64(digest).alias("key"),
            )
        )
    return reduce(DataFrame.unionByName, parts).select(*tables.schema("band_index").names)


def shape_rows(files: DataFrame, params: shapes.ShapeParams, held: np.ndarray | None = None) -> DataFrame:
    """Shape index rows of the files with sound, one each, even with no window loud enough
    (an empty blob), so it is not shaped again; over the log-mel bands `held` (all when
    None). A log-mel blob that does not divide into its bands has no row; the pairs stage
    reports it."""

    def compute(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        for batch in batches:
            blobs = [
                shapes.window_shapes(np.frombuffer(logmel, np.uint8).reshape(-1, bands), params, held).tobytes()
                for logmel, bands in zip(
                    batch.column("logmel").to_pylist(), batch.column("logmel_bands").to_pylist(), strict=True
                )
            ]
            yield pa.record_batch(
                [batch.column("file_id"), batch.column("content_sha256"), pa.array(blobs, pa.binary())],
                names=tables.schema("shape_index").names,
            )

    sound = files.where("flag IS NULL AND logmel_bands > 0 AND length(logmel) % logmel_bands = 0")
    return sound.select("file_id", "content_sha256", "logmel", "logmel_bands").mapInArrow(
        compute, tables.spark_schema("shape_index")
    )


def _shape_pairs(spark: SparkSession, warehouse: str, new_shapes: DataFrame, view: ShapeView) -> DataFrame:
    """(file_a, file_b, source) for the pairs of files of one view that voted_pairs keeps:
    new files against the whole index (themselves included)."""
    indexed = tables.read(spark, warehouse, view.table).join(new_shapes.select("file_id"), "file_id", "left_anti")
    library = indexed.withColumn("new", F.lit(False)).unionByName(new_shapes.withColumn("new", F.lit(True)))
    return voted_pairs(nearest_pairs(new_shapes, library, view.params), view.params.min_windows, view.source)


def voted_pairs(nearest: DataFrame, min_windows: int, source: str) -> DataFrame:
    """(file_a, file_b, source) for the pairs of files of nearest_pairs that at least
    `min_windows` windows, of either file, proposed."""
    return (
        nearest.groupBy(
            F.least("query_file", "index_file").alias("file_a"),
            F.greatest("query_file", "index_file").alias("file_b"),
        )
        .agg(F.sum("windows").alias("windows"))
        .where(F.col("windows") >= min_windows)
        .select("file_a", "file_b", F.lit(source).alias("source"))
    )


def nearest_pairs(queries: DataFrame, index: DataFrame, params: shapes.ShapeParams) -> DataFrame:
    """(query_file, index_file, windows) for every window's nearest windows of other files,
    between `queries` and `index` (shape rows; `index` says which of its files are `new`,
    i.e. among the queries): `windows` is how many windows, of either file, proposed the pair.

    Both sides are cut into blocks of about `windows_per_block` windows; every pair of a
    query block and an index block is one task, and the best `neighbors` per window are
    kept across the blocks. A query window ranks every index window, as a run over the whole
    library would; an index window that is not new ranks the queries, and keeps what it
    proposed on earlier runs, so a nightly run proposes every pair a full run would (and may
    keep a few that newer windows would have outranked)."""
    query_blocks = _blocks(queries.where(F.length("shapes") > 0), params, "queries")
    index_blocks = _blocks(index.where(F.length("shapes") > 0), params, "index")
    tasks = query_blocks.crossJoin(index_blocks)
    found = tasks.repartition(max(1, tasks.count())).mapInArrow(
        partial(_nearest_in_blocks, params=params), NEIGHBOUR_SCHEMA
    )
    best = Window.partitionBy("query_file", "window").orderBy(F.desc("similarity"), "file_id")
    forward = F.col("forward")
    return (
        found.withColumn("rank", F.row_number().over(best))
        .where(F.col("rank") <= params.neighbors)
        .withColumn("ranked_by", F.struct("query_file", "window"))
        .groupBy(
            F.when(forward, F.col("query_file")).otherwise(F.col("file_id")).alias("query_file"),
            F.when(forward, F.col("file_id")).otherwise(F.col("query_file")).alias("index_file"),
        )
        .agg(F.countDistinct("ranked_by").alias("windows"))
    )


def _blocks(rows: DataFrame, params: shapes.ShapeParams, name: str) -> DataFrame:
    """One row per block of files: `name` holds the block's (file_id, shapes[, new])."""
    total = rows.agg(F.sum(F.length("shapes"))).first()[0] or 0
    count = max(1, math.ceil(total / (2 * shapes.dimension(params)) / params.windows_per_block))
    fields = [c for c in ("file_id", "shapes", "new") if c in rows.columns]
    # Sorted by file: collect_list keeps the order rows arrive in, and among windows that tie
    # (copies of one file) the ones a block keeps depend on their order.
    return (
        rows.withColumn("block", F.pmod(F.xxhash64("file_id"), F.lit(count)))
        .groupBy("block")
        .agg(F.array_sort(F.collect_list(F.struct(*fields))).alias(name))
        .select(name)
    )


def _nearest_in_blocks(batches: Iterator[pa.RecordBatch], params: shapes.ShapeParams) -> Iterator[pa.RecordBatch]:
    """Each new window's best index windows, and each indexed (not new) window's best new
    windows, of one pair of blocks: (query_file, window) is the window that ranks."""
    for batch in batches:
        for queries, index in zip(batch.column("queries").to_pylist(), batch.column("index").to_pylist(), strict=True):
            query_shapes, query_files, query_window, _ = _stacked(queries, params)
            index_shapes, index_files, index_window, new = _stacked(index, params)
            old = ~new
            similarity = shapes.similarities(query_shapes, query_files, index_shapes, index_files)
            rows, cols, forward = shapes.best_in_rows(similarity, params)
            back_rows, back_cols, backward = shapes.best_in_rows(similarity[:, old].T, params)
            yield pa.record_batch(
                [
                    pa.array(np.concatenate([query_files[rows], index_files[old][back_rows]]), pa.int64()),
                    pa.array(np.concatenate([query_window[rows], index_window[old][back_rows]]), pa.int32()),
                    pa.array(np.concatenate([index_files[cols], query_files[back_cols]]), pa.int64()),
                    pa.array(np.concatenate([forward, backward]), pa.float32()),
                    pa.array(np.arange(len(rows) + len(back_rows)) < len(rows), pa.bool_()),
                ],
                names=NEIGHBOUR_SCHEMA.names,
            )


def _stacked(files: list[dict], params: shapes.ShapeParams) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """All windows of a block in one matrix, each window's file, its number in its file,
    and whether its file is new in this run."""
    dimension = shapes.dimension(params)
    matrices = [np.frombuffer(f["shapes"], np.float16).reshape(-1, dimension) for f in files]
    counts = np.array([len(m) for m in matrices], np.int64)
    owners = np.repeat(np.array([f["file_id"] for f in files], np.int64), counts)
    window = np.arange(counts.sum()) - np.repeat(np.cumsum(counts) - counts, counts)
    new = np.repeat(np.array([f.get("new", True) for f in files], bool), counts)
    matrix = np.concatenate(matrices) if matrices else np.zeros((0, dimension), np.float16)
    return matrix, owners, window, new


def drop_stale(spark: SparkSession, warehouse: str, indexed: DataFrame, live: DataFrame) -> int:
    """Forget files that vanished or changed since they were indexed (`indexed`: file_id,
    content_sha256 of the band index): their band keys, candidates and edges. Returns how
    many files that was."""
    stale = indexed.join(live.select("file_id", "content_sha256"), ["file_id", "content_sha256"], "left_anti")
    stale_ids = [r.file_id for r in stale.select("file_id").distinct().collect()]
    if not stale_ids:
        return 0
    gone = spark.createDataFrame([(f,) for f in stale_ids], "file_id bigint")
    for name in ("band_index", "shape_index", "mid_shape_index", "candidates", "pairs"):
        if not tables.exists(spark, warehouse, name):
            continue
        by_file = "t.file_id = s.file_id"
        condition = by_file if name.endswith("_index") else "t.file_a = s.file_id OR t.file_b = s.file_id"
        tables.delete_matching(spark, warehouse, name, gone, condition)
    return len(stale_ids)


def _record_oversized(spark: SparkSession, warehouse: str, oversized: DataFrame, run: RunLog) -> None:
    buckets = oversized.collect()  # a few rows: one per bucket past max_bucket
    if not buckets and tables.exists(spark, warehouse, "oversized_buckets"):
        return
    rows = spark.createDataFrame(buckets, oversized.schema).withColumn("run_id", F.lit(run.run_id))
    tables.ensure(spark, warehouse, "oversized_buckets", rows.schema)
    run.write(rows, "oversized_buckets")
    for bucket in buckets:
        log.warning(
            "candidates: %s band %d holds %d files; paired as a star around file %d",
            bucket.source,
            bucket.band,
            bucket.size,
            bucket.hub,
        )
