"""The candidates and pairs stages: which files might be duplicates, and which are.

candidates: LSH banding of every signature family (sparse and dense audio windows,
captions) plus exact-digest pairs, one row per file pair with the sources that proposed it.
pairs: every candidate checked with the real measures (verify.py) on the executors; one
row per (pair, method) that holds, with its evidence.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterator
from functools import reduce

import numpy as np
import pyarrow as pa
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql.pandas.types import from_arrow_schema

from leakfree import lsh, tables
from leakfree.config import DedupConfig
from leakfree.minhash import jaccard_estimate
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
        ("caption_jaccard", pa.float64()),
    ]
)
_SIDE_COLUMNS = ("hashes", "times", "logmel", "logmel_bands", "logmel_hop_s", "hop_s", "caption_signature", "decoded_s")


def live_features(spark: SparkSession, warehouse: str) -> DataFrame:
    """Features of the files currently in the catalog (retired files take no part)."""
    live = tables.read(spark, warehouse, "catalog").where("NOT retired").select("file_id", "content_sha256")
    return tables.read(spark, warehouse, "features").join(live, ["file_id", "content_sha256"])


def build_candidates(spark: SparkSession, *, settings: DedupConfig, num_perm: int, warehouse: str, run: RunLog) -> None:
    with run.stage("candidates") as stats:
        # Only the columns LSH needs: the hash lists and log-mel matrices stay on disk.
        features = (
            live_features(spark, warehouse)
            .select("file_id", "content_sha256", "pcm_sha256", "flag", "segments", "caption_signature")
            .persist()
        )
        stats.rows_in = features.count()
        audio = lsh.Banding.for_threshold(settings.audio_threshold, num_perm)
        caption = lsh.Banding.for_threshold(settings.caption_threshold, num_perm)
        log.info(
            "candidates: %d files; audio LSH %d bands x %d rows, caption %d x %d",
            stats.rows_in,
            audio.bands,
            audio.rows,
            caption.bands,
            caption.rows,
        )
        segments = features.where("flag IS NULL").select("file_id", F.explode("segments").alias("s"))
        found, oversized = [], []
        for family in ("sparse", "dense"):
            signatures = segments.where(F.col("s.family") == family).select(
                "file_id", F.col("s.signature").alias("signature")
            )
            pairs, big = lsh.banded_pairs(signatures, audio, source=family, max_bucket=settings.max_bucket)
            found.append(pairs)
            oversized.append(big)
        captions = features.where("caption_signature IS NOT NULL").select(
            "file_id", F.col("caption_signature").alias("signature")
        )
        pairs, big = lsh.banded_pairs(captions, caption, source=lsh.CAPTION, max_bucket=settings.max_bucket)
        found += [pairs]
        oversized += [big]
        for digest, source in (("content_sha256", lsh.EXACT_BYTES), ("pcm_sha256", lsh.EXACT_PCM)):
            found.append(lsh.exact_pairs(features, digest, source=source, max_bucket=settings.max_bucket))
        candidates = (
            reduce(DataFrame.unionByName, found)
            .groupBy("file_a", "file_b")
            .agg(F.sort_array(F.collect_set("source")).alias("sources"))
        )
        tables.overwrite(candidates, warehouse, "candidates")
        skewed = reduce(DataFrame.unionByName, oversized).withColumn("run_id", F.lit(run.run_id))
        tables.overwrite(skewed, warehouse, "oversized_buckets")
        skew = tables.read(spark, warehouse, "oversized_buckets").collect()
        for bucket in skew:
            log.warning(
                "candidates: %s band %d holds %d files; paired as a star around file %d",
                bucket.source,
                bucket.band,
                bucket.size,
                bucket.hub,
            )
        stats.rows_out = tables.read(spark, warehouse, "candidates").count()
        features.unpersist()


def build_pairs(spark: SparkSession, *, settings: DedupConfig, warehouse: str, run: RunLog) -> None:
    with run.stage("pairs") as stats:
        candidates = tables.read(spark, warehouse, "candidates")
        features = live_features(spark, warehouse).select("file_id", *_SIDE_COLUMNS)
        side_a = features.select([F.col(c).alias(f"a_{c}") for c in features.columns])
        side_b = features.select([F.col(c).alias(f"b_{c}") for c in features.columns])
        joined = (
            candidates.join(side_a, F.col("file_a") == F.col("a_file_id"))
            .join(side_b, F.col("file_b") == F.col("b_file_id"))
            .drop("a_file_id", "b_file_id")
        )
        count = candidates.count()
        stats.rows_in = count
        partitions = max(1, math.ceil(count / settings.pairs_per_task))
        log.info("pairs: verifying %d candidate pairs in %d tasks", count, partitions)
        params = settings.verify
        verified = joined.repartition(partitions).mapInArrow(
            lambda batches: verify_batches(batches, params), from_arrow_schema(PAIR_SCHEMA)
        )
        tables.overwrite(verified.withColumn("run_id", F.lit(run.run_id)), warehouse, "pairs")
        stats.rows_out = tables.read(spark, warehouse, "pairs").count()


def verify_batches(batches: Iterator[pa.RecordBatch], params: VerifyParams) -> Iterator[pa.RecordBatch]:
    for batch in batches:
        rows = []
        for candidate in batch.to_pylist():
            rows += verify_candidate(candidate, params)
        yield pa.RecordBatch.from_pylist(rows, schema=PAIR_SCHEMA)


def verify_candidate(row: dict, params: VerifyParams) -> list[dict]:
    """Edge rows for one candidate: exact digests need no more proof; audio and caption
    similarity are measured."""
    pair = {"file_a": row["file_a"], "file_b": row["file_b"]}
    sources = set(row["sources"])
    edges = []
    exact = next((m for m in (lsh.EXACT_BYTES, lsh.EXACT_PCM) if m in sources), None)
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
    elif sources & {"sparse", "dense", lsh.CAPTION}:
        evidence = audio_evidence(_side(row, "a"), _side(row, "b"), params)
        if evidence.verified(params):
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
        "logmel": logmel,
        "logmel_hop_s": row[f"{side}_logmel_hop_s"],
        "hop_s": row[f"{side}_hop_s"],
    }
