"""Candidate pairs: MinHash LSH banding as a Spark shuffle.

Each signature is cut into `bands` slices of `rows` values; two files whose signatures
agree on any whole slice land in the same (band, key) bucket and become a candidate pair.
The shuffle groups by bucket, so no index ever sits on the driver. Bands x rows come from
datasketch's optimal-parameter routine for the configured Jaccard threshold.

The band keys of every file are kept in the `band_index` table, so a nightly run bands
only its new and changed files and looks their keys up in the index.

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


@dataclass(frozen=True)
class Banding:
    bands: int
    rows: int

    @classmethod
    def for_threshold(cls, threshold: float, num_perm: int) -> Banding:
        """datasketch's choice, weighting false positives and false negatives equally."""
        bands, rows = _optimal_param(threshold, num_perm, 0.5, 0.5)
        return cls(int(bands), int(rows))

    def __str__(self) -> str:
        return f"{self.bands} x {self.rows}"

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


def band_rows(signatures: DataFrame, banding: Banding, *, source: str, keep: list[str] = ()) -> DataFrame:
    """(file_id, *keep, source, band, key): one row per file and LSH bucket. Several windows
    of a file may share a bucket; the file is in it once."""
    return (
        signatures.select("file_id", *keep, F.posexplode(band_keys(F.col("signature"), banding)).alias("band", "key"))
        .withColumn("source", F.lit(source))
        .distinct()
    )


def keyed_pairs(
    rows: DataFrame, keys: list[str], *, max_bucket: int, carry: list[str] = ()
) -> tuple[DataFrame, DataFrame]:
    """Pairs of files that share a bucket (equal `keys`), where at least one file is new.

    `rows` holds (file_id, *keys, new) for every indexed file and every new one; only
    buckets holding a new file are expanded, so a nightly run costs what it adds. The
    pairs are exactly the pairs with a new file that a run over the whole library would
    make. Returns (file_a, file_b, *carry) with file_a < file_b (`carry` are key columns
    kept, e.g. the signature source), and the oversized buckets (*keys, size, hub) that
    were paired as stars around their smallest file.
    """
    sizes = (
        rows.groupBy(*keys)
        .agg(
            F.count("*").alias("size"),
            F.min("file_id").alias("hub"),
            F.max(F.col("new").cast("int")).alias("touched"),
            F.min(F.when(F.col("new"), F.col("file_id"))).alias("first_new"),
        )
        .where("touched = 1 AND size >= 2")
    )
    members = rows.join(sizes, keys)
    small = members.where(F.col("size") <= max_bucket).select(*keys, "file_id", "new")
    left, right = small.alias("l"), small.alias("r")
    expanded = (
        left.join(right, keys)
        .where((F.col("l.file_id") < F.col("r.file_id")) & (F.col("l.new") | F.col("r.new")))
        .select(F.col("l.file_id").alias("file_a"), F.col("r.file_id").alias("file_b"), *carry)
    )
    stars = members.where(
        (F.col("size") > max_bucket)
        & (F.col("file_id") != F.col("hub"))
        & (F.col("new") | (F.col("hub") == F.col("first_new")))
    ).select(F.col("hub").alias("file_a"), F.col("file_id").alias("file_b"), *carry)
    oversized = sizes.where(F.col("size") > max_bucket).select(*keys, "size", "hub")
    return expanded.unionByName(stars).distinct(), oversized
