"""Connected components in Spark: the large-star / small-star iteration.

Kiveris et al., "Connected Components in MapReduce and Beyond" (SoCC 2014): alternating
the two steps turns every component into a star around its smallest node in O(log^2 n)
rounds, where plain min-label propagation needs as many rounds as the longest chain.
Edges are kept as (src, dst) with src > dst. The lineage is cut after every round.

A graph of up to `driver_max_edges` edges is solved on the driver instead (scipy's
connected components on a sparse matrix): the iteration costs a few Spark jobs per round,
which dominate a nightly run whose graph fits in memory many times over.
"""

from __future__ import annotations

import logging

import numpy as np
import pyarrow as pa
from pyspark.sql import DataFrame
from pyspark.sql import functions as F
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

log = logging.getLogger("leakfree")


class NotConverged(RuntimeError):
    pass


def oriented(edges: DataFrame, a: str = "file_a", b: str = "file_b") -> DataFrame:
    """Undirected (a, b) rows as distinct (src, dst) with src > dst; self-loops dropped."""
    return (
        edges.where(F.col(a) != F.col(b)).select(F.greatest(a, b).alias("src"), F.least(a, b).alias("dst")).distinct()
    )


def _both_ways(edges: DataFrame) -> DataFrame:
    return edges.unionByName(edges.select(F.col("dst").alias("src"), F.col("src").alias("dst")))


def large_star(edges: DataFrame) -> DataFrame:
    """Link every neighbour larger than u to the smallest node of u's neighbourhood."""
    both = _both_ways(edges)
    smallest = both.groupBy("src").agg(F.least(F.min("dst"), F.col("src")).alias("m"))
    return (
        both.join(smallest, "src")
        .where(F.col("dst") > F.col("src"))
        .select(F.col("dst").alias("src"), F.col("m").alias("dst"))
        .distinct()
    )


def small_star(edges: DataFrame) -> DataFrame:
    """Link u and its smaller neighbours to the smallest of them."""
    smaller = _both_ways(edges).where(F.col("dst") < F.col("src"))
    smallest = smaller.groupBy("src").agg(F.min("dst").alias("m"))
    linked = smaller.join(smallest, "src").select(F.col("dst").alias("src"), F.col("m").alias("dst"))
    return (
        linked.where(F.col("src") != F.col("dst"))
        .unionByName(smallest.select("src", F.col("m").alias("dst")))
        .distinct()
    )


def _cut_lineage(df: DataFrame, *, reliable: bool) -> DataFrame:
    """Truncate the plan: each round's plan refers to the previous edges several times, so
    without a cut it grows exponentially. Every `checkpoint_every` rounds the cut is a
    reliable checkpoint (when the session has a checkpoint folder), which survives the loss
    of an executor; in between, a cheap local one."""
    if reliable and df.sparkSession.sparkContext.getCheckpointDir():
        return df.checkpoint(eager=True)
    return df.localCheckpoint(eager=True)


def _edge_set_fingerprint(edges: DataFrame) -> tuple:
    """Count and two independent sums of edge hashes: equal fingerprints mean an unchanged
    (distinct) edge set, found in one pass instead of two set differences."""
    row = edges.agg(
        F.count("*"),
        F.sum(F.xxhash64("src", "dst").cast("decimal(38,0)")),
        F.sum(F.hash("dst", "src").cast("decimal(38,0)")),
    ).first()
    return tuple(row)


def component_labels(
    edges: DataFrame, *, checkpoint_every: int, max_iterations: int, driver_max_edges: int
) -> DataFrame:
    """(node, label) for every node on an edge; label = the smallest node of its component.
    `edges` are oriented (src, dst) rows."""
    if driver_max_edges > 0:
        # One pass either way: the graph comes back whole, or proves too big by one edge.
        local = edges.select("src", "dst").limit(driver_max_edges + 1).toArrow()
        if local.num_rows <= driver_max_edges:
            return edges.sparkSession.createDataFrame(local_labels(local))
        log.info("components: more than %d edges; solving in Spark", driver_max_edges)
    current = _cut_lineage(edges, reliable=False)
    fingerprint = _edge_set_fingerprint(current)
    for iteration in range(1, max_iterations + 1):
        stepped = _cut_lineage(small_star(large_star(current)), reliable=iteration % checkpoint_every == 0)
        previous, fingerprint = fingerprint, _edge_set_fingerprint(stepped)
        current = stepped
        if fingerprint == previous:
            log.info("components: converged after %d rounds", iteration)
            break
    else:
        raise NotConverged(f"connected components did not converge in {max_iterations} rounds")
    # Now a set of stars: every node points at its component's smallest node.
    hubs = current.select(F.col("dst").alias("node")).distinct().withColumn("label", F.col("node"))
    return current.select(F.col("src").alias("node"), F.col("dst").alias("label")).unionByName(hubs).distinct()


def local_labels(edges: pa.Table) -> pa.Table:
    """(node, label) of an in-memory (src, dst) edge table, labelled like component_labels."""
    nodes, labels = labels_of(edges.column("src").to_numpy(), edges.column("dst").to_numpy())
    return pa.table({"node": nodes, "label": labels})


def labels_of(src: np.ndarray, dst: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Every node of the (src[i], dst[i]) edges, sorted, and the smallest node of its component."""
    ends = np.concatenate([np.asarray(src), np.asarray(dst)]).astype(np.int64)
    nodes, index = np.unique(ends, return_inverse=True)
    count = len(src)
    graph = coo_matrix((np.ones(count, np.int8), (index[:count], index[count:])), shape=(nodes.size, nodes.size))
    _, component = connected_components(graph, directed=False)
    # `nodes` is sorted, so a component's first node in it is its smallest.
    _, first = np.unique(component, return_index=True)
    return nodes, nodes[first[component]]
