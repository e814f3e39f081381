"""The pairs stage: which candidates are duplicates.

Every candidate checked with the real measures (verify.py) on the executors, through the
guarded row map; one row per (pair, method) that holds, with its evidence.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from functools import partial

import numpy as np
import pyarrow as pa
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from leakfree import rowmap, tables
from leakfree.config import DedupConfig
from leakfree.edges import AUDIO, AUDIO_SOURCES, CAPTION, EXACT_BYTES, EXACT_PCM, THROUGH, TRIPLET
from leakfree.fingerprint import mel_frequencies
from leakfree.minhash import jaccard_estimate
from leakfree.params import FingerprintParams, VerifyParams
from leakfree.rowmap import with_errors
from leakfree.runs import RunLog
from leakfree.through import GIVEN, through_readings, untried
from leakfree.verify import audio_evidence

log = logging.getLogger("leakfree")

# A verified edge, before the run that found it is added.
PAIR_SCHEMA = pa.schema([f for f in tables.schema("pairs") if f.name != "run_id"])
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


def build_pairs(
    spark: SparkSession, *, settings: DedupConfig, fingerprint: FingerprintParams, warehouse: str, run: RunLog
) -> None:
    """Verify the candidates not verified yet and merge their edges into `pairs`; propose the
    pairs through a pivot their edges make (through.py) as they mark the candidates; then
    verify those proposed the same way, at their pivots' readings too."""
    with run.stage("pairs") as stats:
        tables.ensure(spark, warehouse, "pairs")
        todo, count = _pending(spark, warehouse)
        stats.counters["pairs_verified"] = count
        stats.counters["through_proposed"] = 0
        if not count:
            stats.counters["edges"] = tables.read(spark, warehouse, "pairs").count()
            return
        stats.errors = _verify(todo, count, spark, settings, fingerprint, warehouse, run, "pairs")
        # Checkpointed once: edges found through a pivot make no readings, so the round that
        # verifies them needs the same ones.
        readings = _readings(spark, settings, warehouse).localCheckpoint(eager=True)
        proposals = untried(readings, tables.read(spark, warehouse, "candidates")).localCheckpoint(eager=True)
        through = proposals.count()
        # Last, in one commit: a run killed before it verifies the same candidates again (a
        # candidate that failed is marked too: its error is recorded, retrying finds the
        # same) and proposes the same pairs; after it, verifies those left unverified.
        run.merge("candidates", _settled(todo, proposals), *_SETTLE)
        if through:
            log.info("pairs: %d pairs proposed through a file both are copies of", through)
            todo, more = _pending(spark, warehouse)
            stats.errors += _verify(todo, more, spark, settings, fingerprint, warehouse, run, THROUGH, readings)
            run.mark("candidates", todo, {"verified": "true"})
            stats.counters["pairs_verified"] += more
            stats.counters["through_proposed"] = through
        stats.counters["edges"] = tables.read(spark, warehouse, "pairs").count()


# Candidates verified are marked; pairs proposed through a pivot are added unverified with
# that source alone, or, when a source proposed them before (they failed then, at the
# readings they searched), made unverified again with it added.
_SETTLE = (
    {
        "verified": {"verified": "true"},
        "through": {"sources": f"array_union(t.sources, array('{THROUGH}'))", "verified": "false"},
    },
    {"through": {"file_a": "s.file_a", "file_b": "s.file_b", "sources": f"array('{THROUGH}')", "verified": "false"}},
)


def _settled(todo: DataFrame, proposals: DataFrame) -> DataFrame:
    """(file_a, file_b, action) for _SETTLE: the candidates verified, but those proposed
    through a pivot as well, which stay to be verified at its readings."""
    keys = ["file_a", "file_b"]
    return (
        todo.select(*keys)
        .join(proposals, keys, "left_anti")
        .withColumn("action", F.lit("verified"))
        .unionByName(proposals.select(*keys, F.lit("through").alias("action")))
    )


def _readings(spark: SparkSession, settings: DedupConfig, warehouse: str) -> DataFrame:
    """through_readings with the stage's settings."""
    return through_readings(spark, warehouse, settings.through, settings.verify)


def _pending(spark: SparkSession, warehouse: str) -> tuple[DataFrame, int]:
    """The candidates not verified yet (file_a, file_b, sources), and how many. Checkpointed,
    not persisted: a write to the candidates table recomputes what is cached from it, and the
    stage writes proposals there before it marks these."""
    todo = tables.read(spark, warehouse, "candidates").where("NOT verified").select("file_a", "file_b", "sources")
    todo = todo.localCheckpoint(eager=True)
    return todo, todo.count()


def _verify(
    todo: DataFrame,
    count: int,
    spark: SparkSession,
    settings: DedupConfig,
    fingerprint: FingerprintParams,
    warehouse: str,
    run: RunLog,
    errors_stage: str,
    readings: DataFrame | None = None,
) -> int:
    """Verify the `count` candidates `todo`, those proposed through a pivot at its
    `readings` too (through_readings, made here if not given and any is), write their edges
    and their errors (as `errors_stage`); returns how many failed."""
    log.info("pairs: verifying %d candidate pairs", count)
    through = F.array_contains("sources", THROUGH)
    plain = todo.where(~through).withColumn("given", F.lit(None).cast(GIVEN))
    if readings is None and todo.where(through).isEmpty():
        rows = plain
    else:
        readings = _readings(spark, settings, warehouse) if readings is None else readings
        rows = todo.where(through).join(readings, ["file_a", "file_b"], "left").unionByName(plain)
    features = tables.live_features(spark, warehouse)
    with verified_pairs(rows, features, features, count, settings, fingerprint) as verified:
        # Verification is deterministic: an edge already there comes from a killed run.
        run.write(verified.good.withColumn("run_id", F.lit(run.run_id)), "pairs")
        paths = tables.read(spark, warehouse, "catalog").select(F.col("file_id").alias("file_a"), "path")
        return run.record_errors(
            errors_stage,
            verified.errors.join(paths, "file_a", "left").select(
                "path",
                F.col("file_a").alias("file_id"),
                "error_class",
                F.concat_ws("", F.lit("with file "), F.col("file_b").cast("string"), F.lit(": "), "message").alias(
                    "message"
                ),
            ),
        )


@contextmanager
def verified_pairs(
    todo: DataFrame,
    features_a: DataFrame,
    features_b: DataFrame,
    count: int,
    settings: DedupConfig,
    fingerprint: FingerprintParams,
) -> Iterator[rowmap.Mapped]:
    """The edges of the `count` candidate pairs `todo` (file_a, file_b, sources), file_a's
    features from `features_a`, file_b's from `features_b`, verified on the executors;
    the errors carry the pair."""
    side_a = features_a.select([F.col(c).alias(f"a_{c}") for c in ("file_id", *_SIDE_COLUMNS)])
    side_b = features_b.select([F.col(c).alias(f"b_{c}") for c in ("file_id", *_SIDE_COLUMNS)])
    # The one shuffle of rows that carry a file's features is the one file_b's join needs,
    # cut into pairs_per_task-sized tasks: each row holds ten thousand values a side, and
    # shuffling the joined rows again took a third of the stage (2,400 demo files).
    joined = (
        todo.join(side_a, F.col("file_a") == F.col("a_file_id"))
        .repartition(rowmap.tasks_for(count, settings.pairs_per_task), "file_b")
        .join(side_b, F.col("file_b") == F.col("b_file_id"))
        .drop("a_file_id", "b_file_id")
    )
    with rowmap.map_rows(
        joined,
        tasks=None,
        make_work=partial(verify_work, settings.verify, mel_frequencies(fingerprint)),
        schema=VERIFIED_SCHEMA,
        error_class="unverifiable",
    ) as verified:
        yield verified


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
            for method, digest in ((EXACT_BYTES, "content_sha256"), (EXACT_PCM, "pcm_sha256"))
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
    elif sources & {*AUDIO_SOURCES, CAPTION}:
        given = row.get("given") or []
        evidence = audio_evidence(
            _side(row, "a"),
            _side(row, "b"),
            params,
            mel_hz,
            triplets_only=sources == {TRIPLET},
            as_is_only=sources == {CAPTION},
            given=[(g["time_scale"], g["freq_scale"], g["offset_s"]) for g in given],
        )
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
                    "aligned_peaks": evidence.aligned_peaks,
                    "peak_significance": evidence.peak_significance,
                    "rival_significance": evidence.rival_significance,
                    "echo_s": evidence.echo_s,
                    # The pivot whose reading held, else the first: why the pair was tried.
                    "via_file": given[max(evidence.given_reading, 0)]["via_file"] if given else None,
                }
            )
    if row["a_caption_signature"] is not None and row["b_caption_signature"] is not None:
        similarity = jaccard_estimate(row["a_caption_signature"], row["b_caption_signature"])
        if similarity >= params.caption_min_jaccard:
            edges.append({**pair, "method": CAPTION, "caption_jaccard": similarity})
    return edges


def _side(row: dict, side: str) -> dict:
    bands = row[f"{side}_logmel_bands"] or 1
    logmel = np.frombuffer(row[f"{side}_logmel"] or b"", np.uint8).reshape(-1, bands)

    def array(column: str, dtype: type) -> np.ndarray:
        values = row[f"{side}_{column}"]
        return np.zeros(0, dtype) if values is None else np.asarray(values).astype(dtype, copy=False)

    return {
        "hashes": array("hashes", np.uint32),
        "times": array("times", np.int32),
        "triplet_hashes": array("triplet_hashes", np.uint32),
        "triplet_points": array("triplet_points", np.int32),
        "logmel": logmel,
        "logmel_hop_s": row[f"{side}_logmel_hop_s"],
        "hop_s": row[f"{side}_hop_s"],
    }
