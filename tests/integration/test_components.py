"""Connected components, in Spark and on the driver, equal a union-find reference on random graphs."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from leakfree.components import component_labels, oriented

pytestmark = pytest.mark.integration


def union_find(edges: list[tuple[int, int]]) -> dict[int, int]:
    parent: dict[int, int] = {}

    def find(x: int) -> int:
        parent.setdefault(x, x)
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    for a, b in edges:
        ra, rb = find(a), find(b)
        if ra != rb:
            parent[max(ra, rb)] = min(ra, rb)
    return {node: find(node) for node in parent}


def spark_labels(spark, edges: list[tuple[int, int]], driver_max_edges: int = 0) -> dict[int, int]:
    frame = spark.createDataFrame(edges, "file_a bigint, file_b bigint")
    labels = component_labels(oriented(frame), checkpoint_every=2, max_iterations=60, driver_max_edges=driver_max_edges)
    return {r.node: r.label for r in labels.collect()}


def chain(nodes: list[int]) -> list[tuple[int, int]]:
    return list(itertools.pairwise(nodes))


def star(nodes: list[int]) -> list[tuple[int, int]]:
    return [(nodes[0], n) for n in nodes[1:]]


ids = st.integers(min_value=1, max_value=10**15)
graphs = st.one_of(
    st.lists(st.tuples(ids, ids), min_size=1, max_size=40),
    st.lists(ids, min_size=2, max_size=30, unique=True).map(chain),
    st.lists(ids, min_size=2, max_size=30, unique=True).map(star),
    st.lists(st.lists(ids, min_size=2, max_size=4, unique=True).map(chain), min_size=1, max_size=12).map(
        lambda parts: [e for p in parts for e in p]
    ),
)


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(edges=graphs)
def test_labels_equal_union_find(spark, edges):
    expected = {n: label for n, label in union_find(edges).items() if any(n in e and e[0] != e[1] for e in edges)}
    assert spark_labels(spark, edges) == expected
    # On the driver; a limit of one edge fewer than the graph sends it back to Spark.
    assert spark_labels(spark, edges, driver_max_edges=len(edges)) == expected


@pytest.mark.parametrize("driver_max_edges", [0, 50, 100])
def test_a_long_chain_in_shuffled_order(spark, driver_max_edges):
    nodes = [7 * i % 101 + 1000 for i in range(101)]  # a permutation: ids not in chain order
    labels = spark_labels(spark, chain(nodes), driver_max_edges)  # 100 edges: 50 is too few
    assert set(labels.values()) == {min(nodes)} and len(labels) == 101


def test_no_edges_no_labels(spark):
    frame = spark.createDataFrame([], "file_a bigint, file_b bigint")
    labels = component_labels(oriented(frame), checkpoint_every=2, max_iterations=60, driver_max_edges=10)
    assert labels.count() == 0 and labels.columns == ["node", "label"]
