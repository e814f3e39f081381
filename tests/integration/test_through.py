"""Pairs through a pivot (through.py) on hand-made pairs, catalog and features tables."""

from __future__ import annotations

import dataclasses

import pytest

from leakfree import tables
from leakfree.config import Config
from leakfree.pairs import _SETTLE, _settled
from leakfree.through import through_readings, untried

pytestmark = pytest.mark.integration

SETTINGS = Config.from_toml().dedup
SECONDS = {1: 4.0, 2: 4.0 / 1.03, 3: 2.0, 4: 6.0, 5: 2.0, 6: 4.0, 7: 2.0, 8: 4.0 / 1.03, 9: 3.0}


def audio(a: int, b: int, **evidence) -> dict:
    return {
        "file_a": a,
        "file_b": b,
        "method": "audio",
        "offset_s": 0.0,
        "time_scale": 1.0,
        "freq_scale": 1.0,
    } | evidence


# 1 is an original; 2 plays it 3 % faster; 3 is its excerpt from 1.0 s; 4 a compilation of 1
# (at 0 s) and of 5 (at 4 s); 6 only resembles 1; 7 was itself found through 3; 8 is 2's
# byte copy; 9 is a copy of 5 alone.
EDGES = [
    audio(1, 2, time_scale=round(1 / 1.03, 4), freq_scale=1.03, correlation=0.95),
    audio(1, 3, offset_s=1.0, correlation=0.9),
    audio(1, 4, correlation=0.3, aligned_hashes=400),
    audio(4, 5, offset_s=4.0, correlation=0.6, peak_significance=30.0),
    audio(1, 6, correlation=0.72, aligned_hashes=4),
    audio(3, 7, correlation=0.99, via_file=1),
    {"file_a": 2, "file_b": 8, "method": "exact_bytes", "offset_s": 0.0},
    audio(5, 9, correlation=0.97),
    {"file_a": 1, "file_b": 6, "method": "caption", "caption_jaccard": 0.9},
]


@pytest.fixture(scope="module")
def warehouse(spark, tmp_path_factory):
    """Read only by the tests: made once."""
    path = str(tmp_path_factory.mktemp("through") / "warehouse")
    live = [(f, f"sha{f}", f == 9) for f in SECONDS]  # 9 was deleted since
    spark.createDataFrame(live, "file_id long, content_sha256 string, retired boolean").write.format("delta").save(
        tables.table_path(path, "catalog")
    )
    features = [{"file_id": f, "content_sha256": f"sha{f}", "decoded_s": s} for f, s in SECONDS.items()]
    for name, rows in (("features", features), ("pairs", EDGES)):
        write_rows(spark, path, name, rows)
    return path


def write_rows(spark, path: str, name: str, rows: list[dict]) -> None:
    """A new table `name` of `rows`, the columns they leave out null."""
    tables.ensure(spark, path, name)
    schema = tables.spark_schema(name)
    tables.append(spark.createDataFrame([{k: r.get(k) for k in schema.names} for r in rows], schema), path, name)


def readings(spark, warehouse: str, **through) -> dict:
    params = dataclasses.replace(SETTINGS.through, **through)
    found = through_readings(spark, warehouse, params, SETTINGS.verify).collect()
    return {(r.file_a, r.file_b): [g.asDict() for g in r.given] for r in found}


def test_copies_of_one_pivot_are_paired_at_the_reading_their_edges_compose_to(spark, warehouse):
    found = readings(spark, warehouse)
    # 3 starts 1.0 s into 1, which is 1.0 / 1.03 s into 2; 3 runs at 1's speed, 1.03 times 2's duration.
    (given,) = found[(2, 3)]
    assert given["via_file"] == 1
    assert given["time_scale"] == pytest.approx(1.03, rel=1e-3)
    assert given["freq_scale"] == pytest.approx(1 / 1.03, rel=1e-3)
    assert given["offset_s"] == pytest.approx(1.0 / 1.03, rel=1e-3)
    # An exact copy relates as the file itself: 1 to 8 as to 2, through 2.
    (exact,) = found[(1, 8)]
    assert exact["via_file"] == 2 and exact["time_scale"] == pytest.approx(1 / 1.03, rel=1e-3)
    assert (2, 4) in found and (3, 4) in found  # both lie over 1 inside the compilation
    assert (1, 5) not in found  # 1 and 5 lie apart in the compilation
    assert not any(6 in pair for pair in found)  # 6's edge to 1 is weak
    assert not any(7 in pair for pair in found)  # 7's edge was itself found through a pivot
    assert not any(9 in pair for pair in found)  # 9 is no longer in the library
    assert (1, 3) not in found and (2, 8) not in found  # joined already
    assert set(found) == {(2, 3), (1, 8), (2, 4), (3, 4)}


def test_a_pivot_with_more_edges_than_max_degree_pairs_none(spark, warehouse):
    found = readings(spark, warehouse, max_degree=3)  # 1 has four duplicate edges
    assert set(found) == {(1, 8)}
    assert readings(spark, warehouse, max_degree=0) == {}
    weaker = readings(spark, warehouse, min_correlation=0.7)
    assert (2, 6) in weaker and weaker[(2, 6)][0]["via_file"] == 1


def test_pairs_proposed_through_a_pivot_once_are_not_proposed_again(spark, warehouse, tmp_path):
    found = through_readings(spark, warehouse, SETTINGS.through, SETTINGS.verify)
    path = str(tmp_path / "warehouse")
    rows = [{"file_a": 2, "file_b": 3, "sources": ["shape"], "verified": True}]
    rows.append({"file_a": 1, "file_b": 8, "sources": ["through"], "verified": True})
    write_rows(spark, path, "candidates", rows)
    proposals = untried(found, tables.read(spark, path, "candidates"))
    assert {(r.file_a, r.file_b) for r in proposals.collect()} == {(2, 3), (2, 4), (3, 4)}
    nothing = proposals.limit(0)  # no candidate of a first round to mark verified
    tables.merge_actions(spark, path, "candidates", _settled(nothing, proposals), *_SETTLE)
    settled = tables.read(spark, path, "candidates").collect()
    after = {(r.file_a, r.file_b): (sorted(r.sources), r.verified) for r in settled}
    # Failed once at the readings a source searched: tried again at the pivot's, with both sources.
    assert after == {
        (2, 3): (["shape", "through"], False),
        (1, 8): (["through"], True),
        (2, 4): (["through"], False),
        (3, 4): (["through"], False),
    }
