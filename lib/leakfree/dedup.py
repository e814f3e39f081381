"""The candidates and pairs stages: which files might be duplicates, and which are.

candidates: LSH banding of every signature family (audio windows per landmark family,
captions) and of the exact digests, one row per file pair with the sources that proposed it.
pairs: every candidate checked with the real measures (verify.py) on the executors; one
row per (pair, method) that holds, with its evidence.
"""

from __future__ import annotations

import logging
from functools import partial, reduce

import numpy as np
import pyarrow as pa
from delta.tables import DeltaTable
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql.pandas.types import from_arrow_schema
from pyspark.sql.types import (
    ArrayType,
    BooleanType,
    IntegerType,
    LongType,
    StringType,
    StructField,
    StructType,
)

from leakfree import lsh, rowmap, tables
from leakfree.config import DedupConfig
from leakfree.features import AUDIO_FAMILIES, TRIPLET, live_features
from leakfree.fingerprint import FingerprintParams, mel_frequencies
from leakfree.minhash import jaccard_estimate
from leakfree.rowmap import with_errors
from leakfree.runs import RunLog
from leakfree.verify import VerifyParams, audio_evidence

log = logging.getLogger("leakfree")

AUDIO = "audio"
PAIR_SCHEMA = pa.schema(
    [
        ("file_a", pa.int64()),
        ("file_b", pa.int64()),
        ("method", pa.string()),
        ("correlation", pa.float64()),
        ("offset_s", pa.float64()),
        ("overlap_s", pa.float64()),
        ("jaccard", pa.float64()),
        ("containment", pa.float64()),
        ("aligned_hashes", pa.int32()),
        ("matched_s", pa.float64()),
        ("aligned_share", pa.float64()),
        ("time_scale", pa.float64()),
        ("freq_scale", pa.float64()),
        ("triplet_votes", pa.int32()),
        ("caption_jaccard", pa.float64()),
    ]
)
VERIFIED_SCHEMA = with_errors(*PAIR_SCHEMA)
_SIDE_COLUMNS = (
    "hashes",
    "times",
    "triplet_hashes",
    "triplet_points",
    "logmel",
    "logmel_bands",
    "logmel_hop_s",
    "hop_s",
    "caption_signature",
    "decoded_s",
    "content_sha256",
    "pcm_sha256",
)


BAND_INDEX_SCHEMA = StructType(
    [
        StructField("file_id", LongType()),
        StructField("content_sha256", StringType()),
        StructField("source", StringType()),
        StructField("band", IntegerType()),
        StructField("key", LongType()),
    ]
)
CANDIDATES_SCHEMA = StructType(
    [
        StructField("file_a", LongType()),
        StructField("file_b", LongType()),
        StructField("sources", ArrayType(StringType())),
        StructField("verified", BooleanType()),
    ]
)
# What identifies an LSH bucket in the band index.
BUCKET = ["source", "band", "key"]


def build_candidates(spark: SparkSession, *, settings: DedupConfig, num_perm: int, warehouse: str, run: RunLog) -> None:
    """Band the files not in the band index yet (all of them on a first run), pair them
    with every indexed file sharing a bucket, and index them."""
    with run.stage("candidates") as stats:
        # Only the columns LSH needs: the hash lists and log-mel matrices stay on disk.
        live = live_features(spark, warehouse).select(
            "file_id", "content_sha256", "pcm_sha256", "flag", "segments", "caption_signature"
        )
        tables.ensure(spark, warehouse, "band_index", BAND_INDEX_SCHEMA)
        # Every indexed file has exactly one exact_bytes row: reading those few rows is much
        # cheaper than a distinct over the whole index.
        indexed = (
            tables.read(spark, warehouse, "band_index")
            .where(F.col("source") == lsh.EXACT_BYTES)
            .select("file_id", "content_sha256")
            .persist()
        )
        dropped = drop_stale(spark, warehouse, indexed, live)
        tables.ensure(spark, warehouse, "candidates", CANDIDATES_SCHEMA)
        pending = live.join(indexed, ["file_id", "content_sha256"], "left_anti").persist()
        stats.rows_in = pending.count()
        bandings = {
            family: lsh.Banding.for_threshold(
                settings.triplet_threshold if family == TRIPLET else settings.audio_threshold, num_perm
            )
            for family in AUDIO_FAMILIES
        }
        caption = lsh.Banding.for_threshold(settings.caption_threshold, num_perm)
        log.info(
            "candidates: %d new or changed files, %d dropped; LSH bands x rows: landmarks %d x %d, triplets %d x %d, "
            "captions %d x %d",
            stats.rows_in,
            dropped,
            bandings[AUDIO_FAMILIES[0]].bands,
            bandings[AUDIO_FAMILIES[0]].rows,
            bandings[TRIPLET].bands,
            bandings[TRIPLET].rows,
            caption.bands,
            caption.rows,
        )
        if stats.rows_in == 0:
            for frame in (pending, indexed):
                frame.unpersist()
            stats.rows_out = tables.read(spark, warehouse, "candidates").where("NOT verified").count()
            return  # nothing new: the index and the candidates stand
        new_keys = _band_rows(pending, bandings, caption).persist()
        # Only buckets a new file falls in can make new pairs: a semi-join on the few new keys
        # keeps a nightly run from shuffling the whole index, and persisting its result from
        # scanning the index again for the oversized buckets.
        touched = (
            tables.read(spark, warehouse, "band_index")  # without what drop_stale removed
            .join(new_keys.select(*BUCKET).distinct(), BUCKET, "left_semi")
            .persist()
        )
        banded, oversized = _banded_pairs(touched, new_keys, settings.max_bucket)
        proposed = banded.groupBy("file_a", "file_b").agg(F.sort_array(F.collect_set("source")).alias("sources"))
        # Every proposed pair holds a file banded in this run, so a pair already there comes
        # from a killed run that proposed the same sources.
        tables.add_missing(
            proposed.withColumn("verified", F.lit(False)).select(*CANDIDATES_SCHEMA.names),
            warehouse,
            "candidates",
            ["file_a", "file_b"],
        )
        _record_oversized(spark, warehouse, oversized, run)
        # Index last: a run killed before this point finds the same files pending again.
        tables.append(new_keys, warehouse, "band_index")
        stats.rows_out = tables.read(spark, warehouse, "candidates").where("NOT verified").count()
        for frame in (touched, new_keys, pending, indexed):
            frame.unpersist()


def _banded_pairs(touched: DataFrame, new_keys: DataFrame, max_bucket: int) -> tuple[DataFrame, DataFrame]:
    """Pairs from the buckets that hold a new file (`touched`: the index rows in those
    buckets), and the oversized buckets."""
    rows = touched.select("file_id", *BUCKET, F.lit(False).alias("new")).unionByName(
        new_keys.select("file_id", *BUCKET, F.lit(True).alias("new"))
    )
    return lsh.keyed_pairs(rows, BUCKET, max_bucket=max_bucket, carry=["source"])


def _band_rows(files: DataFrame, bandings: dict[str, lsh.Banding], caption: lsh.Banding) -> DataFrame:
    """Index rows of `files`: the band keys of every signature (audio windows per family,
    captions) and one bucket per digest (the same bytes, the same decoded PCM), so exact
    copies pair up through the same shuffle. Every file has a content digest, so every file
    is indexed, even one with no signature (silence, no caption)."""
    segments = files.where("flag IS NULL").select("file_id", "content_sha256", F.explode("segments").alias("s"))
    parts = []
    for family in AUDIO_FAMILIES:
        signatures = segments.where(F.col("s.family") == family).select(
            "file_id", "content_sha256", F.col("s.signature").alias("signature")
        )
        parts.append(lsh.band_rows(signatures, bandings[family], source=family, keep=["content_sha256"]))
    captions = files.where("caption_signature IS NOT NULL").select(
        "file_id", "content_sha256", F.col("caption_signature").alias("signature")
    )
    parts.append(lsh.band_rows(captions, caption, source=lsh.CAPTION, keep=["content_sha256"]))
    for digest, source in (("content_sha256", lsh.EXACT_BYTES), ("pcm_sha256", lsh.EXACT_PCM)):
        parts.append(
            files.where(F.col(digest).isNotNull()).select(
                "file_id",
                "content_sha256",
                F.lit(source).alias("source"),
                F.lit(0).alias("band"),
                F.xxhash64(digest).alias("key"),
            )
        )
    return reduce(DataFrame.unionByName, parts).select(*BAND_INDEX_SCHEMA.names)


def drop_stale(spark: SparkSession, warehouse: str, indexed: DataFrame, live: DataFrame) -> int:
    """Forget files that vanished or changed since they were indexed (`indexed`: file_id,
    content_sha256 of the band index): their band keys, candidates and edges. Returns how
    many files that was."""
    stale = indexed.join(live.select("file_id", "content_sha256"), ["file_id", "content_sha256"], "left_anti")
    stale_ids = [r.file_id for r in stale.select("file_id").distinct().collect()]
    if not stale_ids:
        return 0
    gone = spark.createDataFrame([(f,) for f in stale_ids], "file_id bigint")
    for name in ("band_index", "candidates", "pairs"):
        if not tables.exists(spark, warehouse, name):
            continue
        condition = "t.file_id = s.file_id" if name == "band_index" else "t.file_a = s.file_id OR t.file_b = s.file_id"
        tables.delete_matching(spark, warehouse, name, gone, condition)
    return len(stale_ids)


def _record_oversized(spark: SparkSession, warehouse: str, oversized: DataFrame, run: RunLog) -> None:
    buckets = oversized.collect()  # a few rows: one per bucket past max_bucket
    if not buckets and tables.exists(spark, warehouse, "oversized_buckets"):
        return
    rows = spark.createDataFrame(buckets, oversized.schema).withColumn("run_id", F.lit(run.run_id))
    tables.ensure(spark, warehouse, "oversized_buckets", rows.schema)
    run.write_rows(rows, "oversized_buckets")
    for bucket in buckets:
        log.warning(
            "candidates: %s band %d holds %d files; paired as a star around file %d",
            bucket.source,
            bucket.band,
            bucket.size,
            bucket.hub,
        )


def build_pairs(
    spark: SparkSession, *, settings: DedupConfig, fingerprint: FingerprintParams, warehouse: str, run: RunLog
) -> None:
    """Verify the candidates not verified yet, merge their edges into `pairs`, mark them."""
    with run.stage("pairs") as stats:
        tables.ensure(spark, warehouse, "pairs", from_arrow_schema(PAIR_SCHEMA).add("run_id", StringType()))
        todo = tables.read(spark, warehouse, "candidates").where("NOT verified").select("file_a", "file_b", "sources")
        todo = todo.persist()
        count = stats.rows_in = todo.count()
        features = live_features(spark, warehouse).select("file_id", *_SIDE_COLUMNS)
        side_a = features.select([F.col(c).alias(f"a_{c}") for c in features.columns])
        side_b = features.select([F.col(c).alias(f"b_{c}") for c in features.columns])
        joined = (
            todo.join(side_a, F.col("file_a") == F.col("a_file_id"))
            .join(side_b, F.col("file_b") == F.col("b_file_id"))
            .drop("a_file_id", "b_file_id")
        )
        if count == 0:
            todo.unpersist()
            stats.rows_out = tables.read(spark, warehouse, "pairs").count()
            return
        log.info("pairs: verifying %d candidate pairs", count)
        with rowmap.map_rows(
            joined,
            count=count,
            per_task=settings.pairs_per_task,
            keys=(),
            make_work=partial(verify_work, settings.verify, mel_frequencies(fingerprint)),
            schema=VERIFIED_SCHEMA,
            error_class="unverifiable",
        ) as verified:
            edges = verified.good.withColumn("run_id", F.lit(run.run_id))
            # Verification is deterministic: an edge already there comes from a killed run.
            tables.add_missing(edges, warehouse, "pairs", ["file_a", "file_b", "method"])
            paths = tables.read(spark, warehouse, "catalog").select(F.col("file_id").alias("file_a"), "path")
            stats.errors = run.record_errors(
                "pairs",
                verified.errors.join(paths, "file_a", "left").select(
                    "path",
                    F.col("file_a").alias("file_id"),
                    "error_class",
                    F.concat_ws("", F.lit("with file "), F.col("file_b").cast("string"), F.lit(": "), "message").alias(
                        "message"
                    ),
                ),
            )
        # Mark last: a run killed before this point verifies the same candidates again. A
        # candidate that failed is marked too: its error is recorded, retrying finds the same.
        (
            DeltaTable.forPath(spark, tables.table_path(warehouse, "candidates"))
            .alias("t")
            .merge(todo.alias("s"), "t.file_a = s.file_a AND t.file_b = s.file_b")
            .whenMatchedUpdate(set={"verified": "true"})
            .execute()
        )
        stats.rows_out = tables.read(spark, warehouse, "pairs").count()
        todo.unpersist()


def verify_work(params: VerifyParams, mel_hz: np.ndarray) -> rowmap.RowWork:
    return lambda candidate: verify_candidate(candidate, params, mel_hz)


def verify_candidate(row: dict, params: VerifyParams, mel_hz: np.ndarray) -> list[dict]:
    """Edge rows for one candidate: exact digests need no more proof; audio and caption
    similarity are measured."""
    pair = {"file_a": row["file_a"], "file_b": row["file_b"]}
    sources = set(row["sources"])
    edges = []
    # A digest bucket's key is a 64-bit hash of the digest: the digests themselves decide.
    exact = next(
        (
            method
            for method, digest in ((lsh.EXACT_BYTES, "content_sha256"), (lsh.EXACT_PCM, "pcm_sha256"))
            if method in sources and row[f"a_{digest}"] is not None and row[f"a_{digest}"] == row[f"b_{digest}"]
        ),
        None,
    )
    if exact is not None:
        seconds = row["a_decoded_s"]
        edges.append(
            {
                **pair,
                "method": exact,
                "correlation": 1.0,
                "offset_s": 0.0,
                "overlap_s": seconds,
                "jaccard": 1.0,
                "containment": 1.0,
                "matched_s": seconds,
            }
        )
    elif sources & {*AUDIO_FAMILIES, lsh.CAPTION}:
        evidence = audio_evidence(_side(row, "a"), _side(row, "b"), params, mel_hz, triplets_only=sources == {TRIPLET})
        if evidence is not None and evidence.verified(params):
            edges.append(
                {
                    **pair,
                    "method": AUDIO,
                    "correlation": evidence.correlation,
                    "offset_s": evidence.offset_s,
                    "overlap_s": evidence.overlap_s,
                    "jaccard": evidence.jaccard,
                    "containment": evidence.containment,
                    "aligned_hashes": evidence.aligned_hashes,
                    "matched_s": evidence.matched_s,
                    "aligned_share": evidence.aligned_share,
                    "time_scale": evidence.time_scale,
                    "freq_scale": evidence.freq_scale,
                    "triplet_votes": evidence.triplet_votes,
                }
            )
    if row["a_caption_signature"] is not None and row["b_caption_signature"] is not None:
        similarity = jaccard_estimate(row["a_caption_signature"], row["b_caption_signature"])
        if similarity >= params.caption_min_jaccard:
            edges.append({**pair, "method": lsh.CAPTION, "caption_jaccard": similarity})
    return edges


def _side(row: dict, side: str) -> dict:
    bands = row[f"{side}_logmel_bands"] or 1
    logmel = np.frombuffer(row[f"{side}_logmel"] or b"", np.uint8).reshape(-1, bands)
    return {
        "hashes": np.asarray(row[f"{side}_hashes"] or [], np.uint32),
        "times": np.asarray(row[f"{side}_times"] or [], np.int32),
        "triplet_hashes": np.asarray(row[f"{side}_triplet_hashes"] or [], np.uint32),
        "triplet_points": np.asarray(row[f"{side}_triplet_points"] or [], np.int32),
        "logmel": logmel,
        "logmel_hop_s": row[f"{side}_logmel_hop_s"],
        "hop_s": row[f"{side}_hop_s"],
    }
