"""Candidate pairs: MinHash LSH banding as a Spark shuffle, plus exact-digest pairs.

Each signature is cut into `bands` slices of `rows` values; two files whose signatures
agree on any whole slice land in the same (band, key) bucket and become a candidate pair.
The shuffle groups by bucket, so no index ever sits on the driver. Bands x rows come from
datasketch's optimal-parameter routine for the configured Jaccard threshold.

A bucket far larger than the rest (thousands of files sharing one slice, e.g. a jingle
used everywhere) would make a quadratic number of pairs. Buckets above `max_bucket` are
not expanded: each member is paired with the bucket's smallest file_id only (a star, so
the files still end up connected through verified edges to that hub), and the bucket is
reported in the `oversized_buckets` table.
"""

from __future__ import annotations

from dataclasses import dataclass

from datasketch.lsh import _optimal_param
from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

# Candidate sources. The audio families come from features.segments.family.
EXACT_BYTES = "exact_bytes"
EXACT_PCM = "exact_pcm"
CAPTION = "caption"


@dataclass(frozen=True)
class Banding:
    bands: int
    rows: int

    @classmethod
    def for_threshold(cls, threshold: float, num_perm: int) -> Banding:
        """datasketch's choice, weighting false positives and false negatives equally."""
        bands, rows = _optimal_param(threshold, num_perm, 0.5, 0.5)
        return cls(int(bands), int(rows))

    def probability(self, jaccard: float) -> float:
        """Chance that two signatures with this Jaccard share at least one band."""
        return 1 - (1 - jaccard**self.rows) ** self.bands


def band_keys(signature: Column, banding: Banding) -> Column:
    """array<long>: one 64-bit key per band (xxhash64 of the band's bytes)."""
    width = banding.rows * 4  # 4 bytes per uint32 permutation value
    return F.transform(
        F.sequence(F.lit(0), F.lit(banding.bands - 1)),
        lambda i: F.xxhash64(F.substring(signature, i * width + 1, F.lit(width))),
    )


def banded_pairs(
    signatures: DataFrame, banding: Banding, *, source: str, max_bucket: int
) -> tuple[DataFrame, DataFrame]:
    """Candidate pairs (file_a < file_b, source) from (file_id, signature) rows, and the
    oversized buckets (source, band, key, size, hub) that were paired as stars."""
    buckets = (
        signatures.select(
            "file_id", F.posexplode(band_keys(F.col("signature"), banding)).alias("band", "key")
        ).distinct()  # several segments of one file may share a bucket
    )
    sizes = buckets.groupBy("band", "key").agg(F.count("*").alias("size"), F.min("file_id").alias("hub"))
    sized = buckets.join(sizes.where("size >= 2"), ["band", "key"])
    normal = sized.where(F.col("size") <= max_bucket).select("band", "key", "file_id")
    left, right = normal.alias("l"), normal.alias("r")
    expanded = (
        left.join(right, ["band", "key"])
        .where(F.col("l.file_id") < F.col("r.file_id"))
        .select(F.col("l.file_id").alias("file_a"), F.col("r.file_id").alias("file_b"))
    )
    stars = sized.where((F.col("size") > max_bucket) & (F.col("file_id") != F.col("hub"))).select(
        F.col("hub").alias("file_a"), F.col("file_id").alias("file_b")
    )
    pairs = expanded.unionByName(stars).distinct().withColumn("source", F.lit(source))
    oversized = sizes.where(F.col("size") > max_bucket).select(
        F.lit(source).alias("source"), "band", "key", "size", "hub"
    )
    return pairs, oversized


def exact_pairs(files: DataFrame, digest: str, *, source: str, max_bucket: int) -> DataFrame:
    """Pairs of files with the same digest; groups above max_bucket become stars."""
    groups = (
        files.where(F.col(digest).isNotNull())
        .groupBy(digest)
        .agg(F.sort_array(F.collect_set("file_id")).alias("members"))
    )
    small = groups.where(F.size("members").between(2, max_bucket))
    all_pairs = (
        small.select(F.explode("members").alias("file_a"), "members")
        .select("file_a", F.explode("members").alias("file_b"))
        .where(F.col("file_a") < F.col("file_b"))
    )
    stars = groups.where(F.size("members") > max_bucket).select(
        F.col("members")[0].alias("file_a"), F.explode(F.expr("slice(members, 2, size(members) - 1)")).alias("file_b")
    )
    return all_pairs.unionByName(stars).withColumn("source", F.lit(source))
