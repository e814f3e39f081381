"""Pairs through a pivot: two files that are both verified copies of a third.

Two copies edited apart (one high-passed, one 6 % faster) each stay close to their original
and far from each other: the landmark bands and window shapes rarely pair them, and the
verifier's search may not reach the speed between them. Their two edges to the original
(the pivot) say where to look: the reading (speed, pitch, offset) that relates them is the
composition of the two edges' readings, and the verifier tries it (verify.given_evidence).

Only edges the sources proposed (via_file null) make pivots' edges, so an edge found through
a pivot proposes nothing in turn: pairs never chain from pivot to pivot, and a false edge is
copied at most once over.
"""

from __future__ import annotations

from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F

from leakfree import tables
from leakfree.edges import AUDIO, DUPLICATE_RELATIONS, THROUGH
from leakfree.params import ThroughParams, VerifyParams

# Readings tried per pair, from its pivots of smallest file_id: each costs an alignment and a
# peak vote, and copies of one original share most of their pivots' readings anyway.
MOST_GIVEN = 4
# The type of through_readings' `given` column.
GIVEN = "array<struct<via_file:bigint,time_scale:double,freq_scale:double,offset_s:double>>"


def pivot_edges(pairs: DataFrame, durations: DataFrame) -> DataFrame:
    """Every duplicate edge the sources proposed, once from each end: (pivot, member, its
    time_scale, offset_s and freq_scale relating the member to the pivot as AudioEvidence
    does, lo and hi: the stretch of the pivot, in its seconds, the member covers, strength
    columns); exact copies relate at 1, 0 and 1. Files not live (durations) take no part."""
    duplicate = pairs.where(F.col("method").isin(*DUPLICATE_RELATIONS) & F.col("via_file").isNull())
    audio = F.col("method") == AUDIO
    edges = duplicate.select(
        "file_a",
        "file_b",
        F.when(audio, F.coalesce("time_scale", F.lit(1.0))).otherwise(1.0).alias("s"),
        F.when(audio, F.coalesce("offset_s", F.lit(0.0))).otherwise(0.0).alias("o"),
        F.when(audio, F.coalesce("freq_scale", F.lit(1.0))).otherwise(1.0).alias("g"),
        F.when(audio, F.col("correlation")).otherwise(1.0).alias("correlation"),
        F.when(audio, F.col("aligned_hashes")).otherwise(None).alias("aligned_hashes"),
        F.when(audio, F.col("peak_significance")).otherwise(None).alias("peak_significance"),
    ).dropDuplicates(["file_a", "file_b"])
    da = durations.select(F.col("file_id").alias("file_a"), F.col("decoded_s").alias("da"))
    db = durations.select(F.col("file_id").alias("file_b"), F.col("decoded_s").alias("db"))
    edges = edges.join(da, "file_a").join(db, "file_b")
    strength = ("correlation", "aligned_hashes", "peak_significance")
    # b in a's seconds: t_b = s (t_a - o), so b's start lies at o and its end at o + d_b / s.
    forward = edges.select(
        F.col("file_a").alias("pivot"),
        F.col("file_b").alias("member"),
        "s",
        "o",
        "g",
        *_clipped(F.col("o"), F.col("o") + F.col("db") / F.col("s"), F.col("da")),
        *strength,
    )
    backward = edges.select(
        F.col("file_b").alias("pivot"),
        F.col("file_a").alias("member"),
        (1 / F.col("s")).alias("s"),
        (-F.col("s") * F.col("o")).alias("o"),
        (1 / F.col("g")).alias("g"),
        *_clipped(-F.col("s") * F.col("o"), F.col("s") * (F.col("da") - F.col("o")), F.col("db")),
        *strength,
    )
    return forward.unionByName(backward)


def _clipped(lo: Column, hi: Column, length: Column) -> list[Column]:
    return [F.greatest(lo, F.lit(0.0)).alias("lo"), F.least(hi, length).alias("hi")]


def through_readings(spark: SparkSession, warehouse: str, params: ThroughParams, verify: VerifyParams) -> DataFrame:
    """(file_a, file_b, given): every pair of files, not joined by a duplicate edge, that are
    both strong copies of a pivot with at most params.max_degree edges and lie over one
    another in it (params.min_overlap); `given`: up to MOST_GIVEN readings, one per pivot by
    file_id, each (via_file, time_scale, freq_scale, offset_s) relating file_b to file_a."""
    durations = tables.live_features(spark, warehouse).select("file_id", "decoded_s")
    pairs = tables.read(spark, warehouse, "pairs")
    edges = pivot_edges(pairs, durations)
    degree = edges.groupBy("pivot").count().where(F.col("count") <= params.max_degree).select("pivot")
    strong = (
        (F.col("correlation") >= params.min_correlation)
        | (F.col("aligned_hashes") >= verify.min_share_hashes)
        | (F.col("peak_significance") >= verify.sure_peak_significance)
    )
    members = edges.join(degree, "pivot").where(strong).drop("correlation", "aligned_hashes", "peak_significance")
    u = members.select("pivot", *(F.col(c).alias(f"{c}1") for c in ("member", "s", "o", "g", "lo", "hi")))
    w = members.select("pivot", *(F.col(c).alias(f"{c}2") for c in ("member", "s", "o", "g", "lo", "hi")))
    shared = F.least("hi1", "hi2") - F.greatest("lo1", "lo2")
    shorter = F.least(F.col("hi1") - F.col("lo1"), F.col("hi2") - F.col("lo2"))
    # member1 -> member2: t_1 = s1 (t_v - o1) and t_2 = s2 (t_v - o2) give t_2 = s2/s1 (t_1 - s1 (o2 - o1)).
    through = (
        u.join(w, "pivot")
        .where((F.col("member1") < F.col("member2")) & (shared >= params.min_overlap * shorter) & (shorter > 0))
        .select(
            F.col("member1").alias("file_a"),
            F.col("member2").alias("file_b"),
            F.struct(
                F.col("pivot").alias("via_file"),
                (F.col("s2") / F.col("s1")).alias("time_scale"),
                (F.col("g2") / F.col("g1")).alias("freq_scale"),
                (F.col("s1") * (F.col("o2") - F.col("o1"))).alias("offset_s"),
            ).alias("reading"),
        )
    )
    joined = pairs.where(F.col("method").isin(*DUPLICATE_RELATIONS)).select("file_a", "file_b")
    return (
        through.join(joined, ["file_a", "file_b"], "left_anti")
        .groupBy("file_a", "file_b")
        .agg(F.slice(F.sort_array(F.collect_list("reading")), 1, MOST_GIVEN).alias("given"))
    )


def untried(readings: DataFrame, candidates: DataFrame) -> DataFrame:
    """(file_a, file_b): the pairs of `readings` never proposed through a pivot, whether or
    not a source proposed them (they failed then, at the readings they searched)."""
    tried = candidates.where(F.array_contains("sources", THROUGH)).select("file_a", "file_b")
    return readings.select("file_a", "file_b").join(tried, ["file_a", "file_b"], "left_anti")
