"""Which copy to keep: the duplicate clusters inside each leak group, and one canonical
member of each, chosen by a documented preference order and kept across nightly runs.

A cluster is a connected part of a group joined by duplicate evidence only (exact bytes,
exact PCM, audio), never by captions or setup keys. Its canonical member is the best by
`groups.canonical_order`, except that an excerpt is never preferred over the file that
contains it. Once chosen it stays until a better copy arrives or it is deleted; each change
is logged in `canonical_changes` with its reason.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from leakfree import tables
from leakfree.config import GroupsConfig
from leakfree.edges import AUDIO
from leakfree.runs import RunLog

log = logging.getLogger("leakfree")

# Codecs that keep every sample (libsndfile subtypes); anything else was encoded lossily.
_LOSSLESS_PREFIXES = ("PCM", "FLOAT", "DOUBLE", "ALAC")
# An audio match with a file holding at least this much more active audio makes the smaller
# one its excerpt (active audio, so a copy padded with silence contains nothing more).
EXCERPT_RATIO = 1.25


@dataclass(frozen=True)
class Member:
    file_id: int
    path: str
    lossless: bool
    sample_rate: int
    channels: int
    active_s: float
    mtime: float  # seconds since the epoch
    excerpt: bool  # matched inside a clearly longer member of its cluster


# Active audio counts in steps of 10 %: a copy padded with silence or with faint noise
# measures a few hundredths of a second more, which says nothing about the recording.
_ACTIVE_STEP = math.log(1.1)


def _active_step(member: Member) -> int:
    return -math.floor(math.log(max(member.active_s, 1e-3)) / _ACTIVE_STEP)


# Each criterion: how it ranks (smaller is better) and how it reads when it decides.
CRITERIA = {
    "lossless": (lambda m: not m.lossless, lambda m, o: "lossless, where the other copies are lossy"),
    "sample_rate": (
        lambda m: -m.sample_rate,
        lambda m, o: f"the higher sample rate ({m.sample_rate} Hz vs {o.sample_rate})",
    ),
    "channels": (lambda m: -m.channels, lambda m, o: f"more channels ({m.channels} vs {o.channels})"),
    "active_audio": (
        _active_step,
        lambda m, o: f"longer active audio ({m.active_s:.2f} s vs {o.active_s:.2f})",
    ),
    "oldest": (lambda m: m.mtime, lambda m, o: "the oldest copy"),
    "path": (lambda m: m.path, lambda m, o: "first by path among equals"),
}


def rank(member: Member, order: tuple[str, ...]) -> tuple:
    """Smaller is better: never an excerpt first, then the configured criteria."""
    return (member.excerpt, *(CRITERIA[name][0](member) for name in order))


def why_best(best: Member, runner_up: Member | None, order: tuple[str, ...]) -> str:
    """The first criterion that puts `best` ahead of the runner-up, in words."""
    if runner_up is None:
        return "the only copy"
    if runner_up.excerpt and not best.excerpt:
        return "the whole recording; the other copies are excerpts of it"
    for name in order:
        key, words = CRITERIA[name]
        if key(best) != key(runner_up):
            return words(best, runner_up)
    return "first by file_id among equals"


def choose(
    members: list[Member], previous: set[int], new: set[int], order: tuple[str, ...]
) -> tuple[int, str, int | None]:
    """(canonical file_id, reason, the canonical it replaces or None) for one cluster.

    `previous`: members that were canonical in the last run; `new`: members not clustered
    before. A previous canonical stays unless a new member ranks above it."""
    ranked = sorted(members, key=lambda m: (rank(m, order), m.file_id))
    kept = [m for m in ranked if m.file_id in previous]
    if kept:
        incumbent = kept[0]
        challenger = next((m for m in ranked if m.file_id in new), None)
        if challenger is None or rank(challenger, order) >= rank(incumbent, order):
            return incumbent.file_id, "kept: no better copy arrived", None
        reason = f"a better copy arrived: {why_best(challenger, incumbent, order)}"
        return challenger.file_id, reason, incumbent.file_id
    best = ranked[0]
    why = why_best(best, next((m for m in ranked if m.file_id != best.file_id), None), order)
    gone = sorted(previous - {m.file_id for m in members})
    if gone:
        return best.file_id, f"the canonical copy {gone[0]} is gone; this one is {why}", gone[0]
    return best.file_id, why, None


def build_clusters(
    spark: SparkSession, *, labels: DataFrame, settings: GroupsConfig, warehouse: str, run: RunLog
) -> tuple[int, int]:
    """The `clusters` table for the current groups, from the (node, label) components of
    their joining duplicate links, and the canonical changes of this run; returns (clusters
    of two or more, canonical changes)."""
    catalog = tables.read(spark, warehouse, "catalog").where("NOT retired")
    groups = tables.read(spark, warehouse, "groups").select("file_id", "group_id")
    clustered = groups.join(labels.withColumnRenamed("node", "file_id"), "file_id", "left").select(
        "file_id", "group_id", F.coalesce("label", "file_id").alias("cluster_id")
    )
    sizes = clustered.groupBy("cluster_id").agg(F.count("*").alias("cluster_size"))
    facts = catalog.select(
        "file_id",
        "path",
        "subtype",
        "sample_rate",
        "channels",
        F.col("mtime").cast("double").alias("mtime"),
    ).join(tables.live_features(spark, warehouse).select("file_id", "active_s"), "file_id", "left")
    members = clustered.join(sizes, "cluster_id").join(facts, "file_id")
    shared = members.where("cluster_size > 1").persist()
    excerpts = _excerpts(spark, warehouse, shared)
    previous = _previous(spark, warehouse)
    canonical_in: dict[int, set[int]] = {}  # last run's cluster -> its canonical files
    for file_id, (cluster_id, canonical) in previous.items():
        if canonical:
            canonical_in.setdefault(cluster_id, set()).add(file_id)
    rows, changes = [], []
    by_cluster: dict[int, list] = {}
    for r in shared.join(excerpts, "file_id", "left").collect():
        by_cluster.setdefault(r.cluster_id, []).append(r)
    for cluster_id, rows_of in sorted(by_cluster.items()):
        cluster = [
            Member(
                r.file_id,
                r.path,
                (r.subtype or "").startswith(_LOSSLESS_PREFIXES),
                r.sample_rate or 0,
                r.channels or 0,
                r.active_s or 0.0,
                r.mtime or 0.0,
                bool(r.excerpt),
            )
            for r in rows_of
        ]
        ids = {m.file_id for m in cluster}
        # Canonical last run: a member, or a file gone from the cluster that had this id.
        was_canonical = {f for f in ids if previous.get(f, (None, False))[1]} | canonical_in.get(cluster_id, set())
        new = {f for f in ids if f not in previous}
        chosen, reason, replaced = choose(cluster, was_canonical, new, settings.canonical_order)
        if replaced is not None:
            changes.append((run.run_id, cluster_id, replaced, chosen, reason))
        for r in rows_of:
            copy_reason = reason if r.file_id == chosen else f"a copy of {chosen}"
            rows.append((r.file_id, r.group_id, cluster_id, r.cluster_size, r.file_id == chosen, copy_reason))
    shared.unpersist()
    multi = spark.createDataFrame(rows, tables.spark_schema("clusters", without=("run_id",)))
    singles = members.where("cluster_size = 1").select(
        "file_id",
        "group_id",
        "cluster_id",
        "cluster_size",
        F.lit(True).alias("canonical"),
        F.lit("the only copy").alias("reason"),
    )
    # The changes first: a run killed before the clusters are written finds the same previous
    # choices again and logs the same changes in their place.
    frame = spark.createDataFrame(changes, tables.spark_schema("canonical_changes"))
    tables.ensure(spark, warehouse, "canonical_changes")
    run.write(frame, "canonical_changes")
    run.write(multi.unionByName(singles).withColumn("run_id", F.lit(run.run_id)), "clusters")
    for _, cluster_id, old, new_id, why in changes:
        log.info("groups: cluster %d keeps %d instead of %d: %s", cluster_id, new_id, old, why)
    return len(by_cluster), len(changes)


def _excerpts(spark: SparkSession, warehouse: str, members: DataFrame) -> DataFrame:
    """file_id, excerpt: members matched by audio inside a member with EXCERPT_RATIO times
    their active audio."""
    durations = members.select("file_id", "cluster_id", F.coalesce("active_s", F.lit(0.0)))
    audio = tables.read(spark, warehouse, "pairs").where(F.col("method") == AUDIO).select("file_a", "file_b")
    both = audio.unionByName(audio.select(F.col("file_b").alias("file_a"), F.col("file_a").alias("file_b")))
    return (
        both.join(durations.toDF("file_a", "cluster_a", "seconds_a"), "file_a")
        .join(durations.toDF("file_b", "cluster_b", "seconds_b"), "file_b")
        .where((F.col("cluster_a") == F.col("cluster_b")) & (F.col("seconds_b") >= EXCERPT_RATIO * F.col("seconds_a")))
        .select(F.col("file_a").alias("file_id"), F.lit(True).alias("excerpt"))
        .distinct()
    )


def _previous(spark: SparkSession, warehouse: str) -> dict[int, tuple[int, bool]]:
    """file_id -> (cluster_id, canonical) of the last run's clusters of two or more."""
    if not tables.exists(spark, warehouse, "clusters"):
        return {}
    rows = (
        tables.read(spark, warehouse, "clusters").where("cluster_size > 1").select("file_id", "cluster_id", "canonical")
    )
    return {r.file_id: (r.cluster_id, r.canonical) for r in rows.collect()}
