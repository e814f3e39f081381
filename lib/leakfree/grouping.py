"""The groups stage: leak groups are the connected components of verified duplicate edges
and of recording-setup edges (files sharing a session, microphone, source CD, ...).

A file with no edge is a group of its own. Every group is labelled by its smallest
file_id, so labels are stable as long as that file stays in the group.
"""

from __future__ import annotations

import logging
from functools import reduce

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from leakfree import tables
from leakfree.components import component_labels, oriented
from leakfree.config import GroupsConfig
from leakfree.runs import RunLog

log = logging.getLogger("leakfree")


def setup_edges(catalog: DataFrame, columns: tuple[str, ...]) -> DataFrame:
    """(file_a, file_b, edge_type) linking every file to the first file with the same value
    of each setup column: a star per value, so a big session costs n edges, not n^2."""
    edges = []
    for column in columns:
        if column not in catalog.columns:
            log.warning("groups: setup column %r is not in the catalog; skipped", column)
            continue
        value = F.trim(F.col(column).cast("string"))
        keyed = catalog.select("file_id", value.alias("value")).where(F.col("value") != "")
        hubs = keyed.groupBy("value").agg(F.min("file_id").alias("hub"))
        edges.append(
            keyed.join(hubs, "value")
            .where(F.col("file_id") != F.col("hub"))
            .select(
                F.col("hub").alias("file_a"),
                F.col("file_id").alias("file_b"),
                F.lit(f"setup:{column}").alias("edge_type"),
            )
        )
    if not edges:
        return catalog.sparkSession.createDataFrame([], "file_a bigint, file_b bigint, edge_type string")
    return reduce(DataFrame.unionByName, edges)


def edge_components(edges: DataFrame, settings: GroupsConfig) -> DataFrame:
    """(node, label) of the connected components of (file_a, file_b) edges."""
    return component_labels(
        oriented(edges),
        checkpoint_every=settings.checkpoint_every,
        max_iterations=settings.max_iterations,
        driver_max_edges=settings.driver_max_edges,
    )


def build_groups(spark: SparkSession, *, settings: GroupsConfig, warehouse: str, run: RunLog) -> None:
    with run.stage("groups") as stats:
        catalog = tables.read(spark, warehouse, "catalog").where("NOT retired")
        files = catalog.select("file_id")
        stats.rows_in = files.count()
        duplicates = (
            tables.read(spark, warehouse, "pairs")
            .where(F.col("method").isin(list(settings.edge_types)))
            .select("file_a", "file_b", F.col("method").alias("edge_type"))
            .join(files.withColumnRenamed("file_id", "file_a"), "file_a")
            .join(files.withColumnRenamed("file_id", "file_b"), "file_b")
        )
        edges = duplicates.unionByName(setup_edges(catalog, settings.setup_columns)).persist()
        if not spark.sparkContext.getCheckpointDir():
            spark.sparkContext.setCheckpointDir(tables.table_path(warehouse, "_checkpoints"))
        labels = edge_components(edges, settings)
        groups = files.join(labels.withColumnRenamed("node", "file_id"), "file_id", "left").select(
            "file_id", F.coalesce("label", "file_id").alias("group_id")
        )
        joined_by = (
            edges.join(groups.withColumnRenamed("file_id", "file_a"), "file_a")
            .groupBy("group_id")
            .agg(F.sort_array(F.collect_set("edge_type")).alias("joined_by"))
        )
        sizes = groups.groupBy("group_id").agg(F.count("*").alias("group_size"))
        result = (
            groups.join(sizes, "group_id")
            .join(joined_by, "group_id", "left")
            .select(
                "file_id",
                "group_id",
                "group_size",
                F.coalesce("joined_by", F.array().cast("array<string>")).alias("joined_by"),
            )
        )
        tables.overwrite(result.withColumn("run_id", F.lit(run.run_id)), warehouse, "groups")
        edges.unpersist()
        stats.rows_out = tables.read(spark, warehouse, "groups").select("group_id").distinct().count()
