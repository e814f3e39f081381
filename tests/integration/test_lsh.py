"""Bucket pairing in Spark: only pairs with a new file, stars for oversized buckets; window
neighbours that do not depend on row order, and pairs as many windows as asked propose."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from leakfree import shapes
from leakfree.candidates import nearest_pairs, voted_pairs
from leakfree.lsh import keyed_pairs

pytestmark = pytest.mark.integration


def pairs(spark, rows, max_bucket):
    frame = spark.createDataFrame(rows, "file_id bigint, key bigint, new boolean")
    found, oversized = keyed_pairs(frame, ["key"], max_bucket=max_bucket)
    return sorted((r.file_a, r.file_b) for r in found.collect()), [(r.key, r.size, r.hub) for r in oversized.collect()]


def test_only_pairs_with_a_new_file_are_made(spark):
    rows = [(1, 7, False), (2, 7, False), (3, 7, True), (4, 8, False), (5, 8, False)]
    assert pairs(spark, rows, max_bucket=10) == ([(1, 3), (2, 3)], [])


def test_an_oversized_bucket_pairs_as_a_star_around_its_smallest_file(spark):
    everyone_new = [(i, 9, True) for i in (5, 3, 8, 6)]
    assert pairs(spark, everyone_new, max_bucket=3) == ([(3, 5), (3, 6), (3, 8)], [(9, 4, 3)])
    one_new = [(5, 9, False), (3, 9, False), (8, 9, False), (6, 9, True)]
    assert pairs(spark, one_new, max_bucket=3)[0] == [(3, 6)]  # the new file joins the existing hub
    new_hub = [(5, 9, False), (8, 9, False), (6, 9, False), (2, 9, True)]
    assert pairs(spark, new_hub, max_bucket=3)[0] == [(2, 5), (2, 6), (2, 8)]  # as a full run would pair them


def test_window_neighbours_do_not_depend_on_the_order_rows_arrive_in(spark, test_config):
    """Twelve copies of one window tie with each other; each window keeps 3 of its 11 ties."""
    params = dataclasses.replace(test_config.dedup.shapes, neighbors=3, windows_per_block=4)
    window = np.random.default_rng(1).standard_normal(shapes.dimension(params))
    blob = (window / np.linalg.norm(window)).astype(np.float16).tobytes()
    rows = [(file_id, blob, True) for file_id in range(1, 13)]
    found = []
    for order in (rows, rows[::-1], rows[5:] + rows[:5]):
        frame = spark.createDataFrame(order, "file_id bigint, shapes binary, new boolean").repartition(3)
        found.append(sorted((r.query_file, r.index_file) for r in nearest_pairs(frame, frame, params).collect()))
    assert len({tuple(pairs) for pairs in found}) == 1
    assert {q for q, _ in found[0]} == set(range(1, 13)) and len(found[0]) == 12 * 3


def test_a_pair_only_one_window_proposes_is_dropped_at_two_windows(spark, test_config):
    """Copies 2 and 3 (one window each) find each other from both sides. Files 1 (one window)
    and 4 (two) lie near them, but the copies are nearer to each other: only file 1's window
    proposes (1, 2), both of file 4's propose (2, 4)."""
    params = dataclasses.replace(test_config.dedup.shapes, neighbors=1)
    rng = np.random.default_rng(2)
    copy = rng.standard_normal(shapes.dimension(params))

    def windows(*vectors: np.ndarray) -> bytes:
        return b"".join((v / np.linalg.norm(v)).astype(np.float16).tobytes() for v in vectors)

    def near() -> np.ndarray:
        return copy + 0.3 * rng.standard_normal(copy.size)

    rows = [(1, windows(near())), (2, windows(copy)), (3, windows(copy)), (4, windows(near(), near()))]
    frame = spark.createDataFrame([(*row, True) for row in rows], "file_id bigint, shapes binary, new boolean")
    nearest = nearest_pairs(frame, frame, params).persist()

    def kept(min_windows: int) -> list[tuple[int, int]]:
        return sorted((r.file_a, r.file_b) for r in voted_pairs(nearest, min_windows, "shape").collect())

    assert kept(1) == [(1, 2), (2, 3), (2, 4)]
    assert kept(2) == [(2, 3), (2, 4)]
