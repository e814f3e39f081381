"""The groups stage: every relation between two files is a link (verified duplicates,
near-identical specific captions, shared recording-setup values), and every relation has a
role. Links of `join` relations make the leak groups, their connected components; links of
`audit` relations never join and are reported as leak kinds of their own.

A file with no joining link is a group of its own. Every group is labelled by its smallest
file_id, so labels are stable as long as that file stays in the group.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass
from functools import reduce

import pyarrow as pa
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from leakfree import tables
from leakfree.canonical import build_clusters
from leakfree.captions import caption_evidence, caption_words, word_bits
from leakfree.components import component_labels, oriented
from leakfree.config import GroupsConfig
from leakfree.edges import CAPTION, DUPLICATE_RELATIONS
from leakfree.metadata import safe_column_name
from leakfree.runs import RunLog

log = logging.getLogger("leakfree")

CAPTION_LINKS_SCHEMA = "file_a bigint, file_b bigint, relation string, evidence string, specific boolean"


DUPLICATE_KIND = "duplicate"  # the leak kind of every duplicate method


def relation_kind(relation: str) -> str:
    """The leak kind a relation is audited as: every duplicate method is one kind."""
    return DUPLICATE_KIND if relation in DUPLICATE_RELATIONS else relation


def setup_relation(column: str) -> str:
    return f"setup:{column}"


def setup_links(catalog: DataFrame, columns: tuple[str, ...]) -> DataFrame:
    """(file_a, file_b, relation, evidence) linking every file to the first file with the same
    value of each setup column: a star per value, so a big session costs n links, not n^2."""
    links = []
    for column in columns:
        stored = stored_column(catalog, column)
        if stored is None:
            log.warning("groups: setup column %r is not in the catalog; skipped", column)
            continue
        keyed = _setup_values(catalog, stored)
        hubs = keyed.groupBy("value").agg(F.min("file_id").alias("hub"))
        links.append(
            keyed.join(hubs, "value")
            .where(F.col("file_id") != F.col("hub"))
            .select(
                F.col("hub").alias("file_a"),
                F.col("file_id").alias("file_b"),
                F.lit(setup_relation(column)).alias("relation"),
                F.concat(F.lit(f"same {column}: "), F.col("value")).alias("evidence"),
            )
        )
    if not links:
        return catalog.sparkSession.createDataFrame(
            [], "file_a bigint, file_b bigint, relation string, evidence string"
        )
    return reduce(DataFrame.unionByName, links)


def stored_column(catalog: DataFrame, column: str) -> str | None:
    """The catalog column that holds a configured sidecar column: its own name or its safe form."""
    return next((c for c in (column, safe_column_name(column)) if c in catalog.columns), None)


def _setup_values(catalog: DataFrame, column: str) -> DataFrame:
    value = F.trim(F.col(column).cast("string"))
    return catalog.select("file_id", value.alias("value")).where(F.col("value") != "")


def caption_links(
    spark: SparkSession, catalog: DataFrame, caption_edges: DataFrame, caption_column: str, settings: GroupsConfig
) -> DataFrame:
    """(file_a, file_b, relation, evidence, specific) of the pairs stage's caption edges,
    judged by how much information the captions' shared words carry in this library."""
    empty = spark.createDataFrame([], CAPTION_LINKS_SCHEMA)
    if caption_column not in catalog.columns:
        return empty
    captions = catalog.select("file_id", F.col(caption_column).cast("string").alias("caption")).where(
        F.trim(F.coalesce("caption", F.lit(""))) != ""
    )
    words = captions.mapInArrow(_words_batches, "file_id bigint, words array<string>")
    captioned = words.where(F.size("words") > 0).count()
    if not captioned:
        return empty
    per_word = words.select("file_id", F.explode("words").alias("word"))
    bits = F.udf(lambda n: word_bits(n, captioned), "double")
    weights = per_word.groupBy("word").agg(F.count("*").alias("files")).withColumn("bits", bits("files"))
    per_file = (
        per_word.join(weights, "word")
        .groupBy("file_id")
        .agg(F.map_from_entries(F.collect_list(F.struct("word", "bits"))).alias("bits"))
    )
    edges = caption_edges.join(per_file.withColumnsRenamed({"file_id": "file_a", "bits": "a_bits"}), "file_a").join(
        per_file.withColumnsRenamed({"file_id": "file_b", "bits": "b_bits"}), "file_b"
    )
    return edges.select("file_a", "file_b", "a_bits", "b_bits").mapInArrow(
        lambda batches: _judge_batches(batches, settings, captioned),
        CAPTION_LINKS_SCHEMA,
    )


def _words_batches(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
    for batch in batches:
        words = [caption_words(c) for c in batch.column("caption").to_pylist()]
        yield pa.RecordBatch.from_pydict(
            {"file_id": batch.column("file_id"), "words": pa.array(words, pa.list_(pa.string()))}
        )


def _judge_batches(
    batches: Iterator[pa.RecordBatch], settings: GroupsConfig, captioned: int
) -> Iterator[pa.RecordBatch]:
    for batch in batches:
        out = {"file_a": [], "file_b": [], "relation": [], "evidence": [], "specific": []}
        for row in batch.to_pylist():
            a, b = dict(row["a_bits"]), dict(row["b_bits"])
            evidence = caption_evidence(
                a, b, {**a, **b}, captioned_files=captioned, margin_bits=settings.caption_margin_bits
            )
            out["file_a"].append(row["file_a"])
            out["file_b"].append(row["file_b"])
            out["relation"].append(CAPTION)
            out["evidence"].append(evidence.describe())
            out["specific"].append(evidence.specific(settings.caption_min_similarity))
        yield pa.RecordBatch.from_pydict(out, schema=_JUDGED)


_JUDGED = pa.schema(
    [
        ("file_a", pa.int64()),
        ("file_b", pa.int64()),
        ("relation", pa.string()),
        ("evidence", pa.string()),
        ("specific", pa.bool_()),
    ]
)


def relation_links(
    spark: SparkSession, warehouse: str, catalog: DataFrame, settings: GroupsConfig, caption_column: str
) -> DataFrame:
    """Every link between live files, with its relation, leak kind, and whether it joins."""
    files = catalog.select("file_id")
    pairs = (
        tables.read(spark, warehouse, "pairs")
        .join(files.withColumnRenamed("file_id", "file_a"), "file_a")
        .join(files.withColumnRenamed("file_id", "file_b"), "file_b")
    )
    duplicates = pairs.where(F.col("method").isin(list(DUPLICATE_RELATIONS))).select(
        "file_a",
        "file_b",
        F.col("method").alias("relation"),
        F.format_string("correlation %.2f, containment %.2f", "correlation", "containment").alias("evidence"),
        F.lit(True).alias("specific"),
    )
    captions = caption_links(spark, catalog, pairs.where(F.col("method") == CAPTION), caption_column, settings)
    setups = setup_links(catalog, settings.setup_columns).withColumn("specific", F.lit(True))
    links = reduce(DataFrame.unionByName, [duplicates, captions, setups])
    joining = [r for r in (*DUPLICATE_RELATIONS, CAPTION) if settings.role(r) == "join"]
    joining += [setup_relation(c) for c in settings.setup_columns if settings.role(c) == "join"]
    kind = F.when(F.col("relation").isin(list(DUPLICATE_RELATIONS)), DUPLICATE_KIND).otherwise(F.col("relation"))
    # A generic caption (one common word, a file name) is no relation at all: it neither
    # joins nor counts as a leak, but stays in the table with its numbers.
    return links.select(
        "file_a",
        "file_b",
        "relation",
        F.when(F.col("specific"), kind).alias("kind"),
        (F.col("relation").isin(joining) & F.col("specific")).alias("joins"),
        "evidence",
    )


def edge_components(edges: DataFrame, settings: GroupsConfig) -> DataFrame:
    """(node, label) of the connected components of (file_a, file_b) edges."""
    return component_labels(
        oriented(edges),
        checkpoint_every=settings.checkpoint_every,
        max_iterations=settings.max_iterations,
        driver_max_edges=settings.driver_max_edges,
    )


@dataclass(frozen=True)
class KeySize:
    column: str
    largest_value: str | None
    largest_files: int
    share: float


def setup_key_sizes(catalog: DataFrame, columns: tuple[str, ...], files: int) -> list[KeySize]:
    """For each setup column, its most common value and the share of the library it holds."""
    sizes = []
    for column in columns:
        stored = stored_column(catalog, column)
        if stored is None:
            continue
        top = _setup_values(catalog, stored).groupBy("value").count().orderBy(F.desc("count"), "value").first()
        count = top["count"] if top else 0
        sizes.append(KeySize(column, top.value if top else None, count, count / max(files, 1)))
    return sizes


def build_groups(
    spark: SparkSession, *, settings: GroupsConfig, caption_column: str, warehouse: str, run: RunLog
) -> None:
    with run.stage("groups") as stats:
        catalog = tables.read(spark, warehouse, "catalog").where("NOT retired")
        files = catalog.select("file_id")
        stats.counters["files"] = files.count()
        links = relation_links(spark, warehouse, catalog, settings, caption_column)
        run.write(links.withColumn("run_id", F.lit(run.run_id)), "links")
        links = tables.read(spark, warehouse, "links")
        joining = links.where("joins")
        if not spark.sparkContext.getCheckpointDir():
            spark.sparkContext.setCheckpointDir(tables.table_path(warehouse, "_checkpoints"))
        labels = edge_components(joining, settings)
        groups = files.join(labels.withColumnRenamed("node", "file_id"), "file_id", "left").select(
            "file_id", F.coalesce("label", "file_id").alias("group_id")
        )
        joined_by = (
            joining.join(groups.withColumnRenamed("file_id", "file_a"), "file_a")
            .groupBy("group_id")
            .agg(F.sort_array(F.collect_set("relation")).alias("joined_by"))
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
        run.write(result.withColumn("run_id", F.lit(run.run_id)), "groups")
        _record_relations(spark, catalog, links, settings, stats.counters["files"], run)
        stats.counters["groups"] = tables.read(spark, warehouse, "groups").select("group_id").distinct().count()
        stats.counters["links_joining"] = joining.count()
        duplicate_labels = edge_components(joining.where(F.col("relation").isin(*DUPLICATE_RELATIONS)), settings)
        clusters, changed = build_clusters(
            spark, labels=duplicate_labels, settings=settings, warehouse=warehouse, run=run
        )
        stats.counters["duplicate_clusters"] = clusters
        stats.counters["canonical_changes"] = changed


def _record_relations(
    spark: SparkSession, catalog: DataFrame, links: DataFrame, settings: GroupsConfig, files: int, run: RunLog
) -> None:
    """One row per relation: its role, how many links it made, and for setup keys whether
    one value holds so much of the library that the key is too coarse to group by."""
    counts = {
        r.relation: (r.links, r.joining, r.meaningful)
        for r in links.groupBy("relation")
        .agg(
            F.count("*").alias("links"),
            F.sum(F.col("joins").cast("long")).alias("joining"),
            F.count("kind").alias("meaningful"),
        )
        .collect()
    }
    rows = []
    for relation in (*DUPLICATE_RELATIONS, CAPTION):
        made, joining, meaningful = counts.get(relation, (0, 0, 0))
        note = f"{made - meaningful} generic caption links neither join nor leak" if made > meaningful else None
        rows.append(
            (
                run.run_id,
                relation,
                relation_kind(relation),
                settings.role(relation),
                made,
                joining,
                None,
                None,
                None,
                False,
                note,
            )
        )
    for size in setup_key_sizes(catalog, settings.setup_columns, files):
        relation = setup_relation(size.column)
        made, joining, _ = counts.get(relation, (0, 0, 0))
        coarse = size.share > settings.coarse_share
        note = (
            f"too coarse: '{size.largest_value}' holds {size.largest_files} of {files} files "
            f"({size.share:.0%}, more than groups.coarse_share {settings.coarse_share:.0%}); "
            f"if it is not one recording setup, demote it: --set groups.roles.{size.column}=audit"
            if coarse
            else None
        )
        if note:
            log.warning("groups: setup column %s is %s", size.column, note)
        rows.append(
            (
                run.run_id,
                relation,
                relation,
                settings.role(size.column),
                made,
                joining,
                size.largest_value,
                size.largest_files,
                size.share,
                coarse,
                note,
            )
        )
    frame = spark.createDataFrame(rows, tables.spark_schema("relations"))
    tables.ensure(spark, run.warehouse, "relations")
    run.write(frame, "relations")
