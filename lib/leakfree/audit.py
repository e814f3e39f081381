"""Leak audit of any split assignment: how many files of each split have a duplicate, or a
shared recording setup, on another split, with the evidence.

The assignment is leakfree's own `splits` table, a CSV of path (or file_id) and split, or
one list per split (SoundDesc ships train_list.txt / val_list.txt / test_list.txt). List
entries are matched to catalogued files by path, by path relative to the library root,
or by file name when that is unique.

Duplicates are counted transitively, as a truth file counts them: two files are
duplicates when a chain of verified duplicate edges (exact bytes, exact PCM, audio) joins
them. Near-identical specific captions and each setup column (same session, microphone,
CD) are kinds of their own, reported whether they join groups or are only audited; the
links come from the groups stage (table `links`).
"""

from __future__ import annotations

import csv
import io
import logging
import os
from dataclasses import dataclass
from functools import reduce

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql.window import Window

from leakfree import storage, tables
from leakfree.config import AuditConfig, GroupsConfig
from leakfree.edges import CAPTION
from leakfree.errors import LeakfreeError
from leakfree.grouping import DUPLICATE_KIND, edge_components, setup_relation
from leakfree.runs import RunLog

log = logging.getLogger("leakfree")


SAME_FILE_KIND = "same_file"


class AssignmentError(LeakfreeError):
    pass


@dataclass(frozen=True)
class Assignment:
    name: str
    entries: list[tuple[str, str]]  # (path or id as written, split)
    base: str  # folder the entries' relative paths start from


def read_assignment(sources: list[str]) -> Assignment:
    """One CSV with a split column, or several lists named <split>_list.txt / <split>.txt."""
    if not sources:
        raise AssignmentError("give a CSV (path,split) or one list per split")
    base = storage.parent(storage.canonical(sources[0]))
    if len(sources) == 1 and storage.extension(sources[0]) in ("csv", "tsv"):
        return Assignment(os.path.basename(sources[0]), _read_csv(sources[0]), base)
    entries = []
    for source in sources:
        split = os.path.basename(source).rsplit(".", 1)[0].removesuffix("_list")
        with storage.open_binary(storage.canonical(source)) as f:
            lines = f.read().decode("utf-8").splitlines()
        entries += [(line.strip(), split) for line in lines if line.strip() and not line.startswith("#")]
    return Assignment("+".join(os.path.basename(s) for s in sources), entries, base)


def _read_csv(source: str) -> list[tuple[str, str]]:
    with storage.open_binary(storage.canonical(source)) as f:
        text = f.read().decode("utf-8")
    reader = csv.DictReader(io.StringIO(text), delimiter="\t" if source.endswith(".tsv") else ",")
    fields = reader.fieldnames or []
    key = next((c for c in ("path", "file", "file_id", "id", "filename") if c in fields), None)
    if key is None or "split" not in fields:
        raise AssignmentError(f"{source} needs a split column and one of path/file/file_id/id (it has {fields})")
    return [(row[key].strip(), row["split"].strip()) for row in reader if row[key] and row["split"]]


def match_entries(spark: SparkSession, assignment: Assignment, catalog: DataFrame) -> tuple[DataFrame, DataFrame]:
    """(file_id, split) for every entry found in the catalog, and (entry, split) for those that were not.

    Every entry counts: a file listed in two splits, under one path or two, is kept in both.
    """
    rows = [
        (entry, split, storage.canonical(entry, base=assignment.base), entry.lstrip("./"), os.path.basename(entry))
        for entry, split in assignment.entries
    ]
    given = spark.createDataFrame(rows, "entry string, split string, full string, rel string, name string")
    files = catalog.select(
        "file_id",
        "path",
        "rel_path",
        F.element_at(F.split("path", "/"), -1).alias("name"),
        F.col("file_id").cast("string").alias("id"),
    )
    unique_names = files.groupBy("name").count().where("count = 1").select("name")
    by_name = files.join(unique_names, "name")
    found = reduce(
        DataFrame.unionByName,
        [
            given.join(source.select("file_id", F.col(column).alias(key)), key).withColumn("rule", F.lit(rule))
            for rule, (source, key, column) in enumerate(
                [(files, "full", "path"), (files, "rel", "rel_path"), (files, "entry", "id"), (by_name, "name", "name")]
            )
        ],
    )
    # The first rule that matched an entry wins.
    first = Window.partitionBy("entry", "split").orderBy("rule")
    matched = found.withColumn("rank", F.row_number().over(first)).where("rank = 1").persist()
    unmatched = given.join(matched, ["entry", "split"], "left_anti").select("entry", "split").persist()
    return matched.select("file_id", "split").distinct(), unmatched


def leak_kinds(settings: GroupsConfig) -> list[str]:
    """Every kind an audit reports, in the order shown, whatever the relations' roles: one
    file in two splits, duplicates, specific captions, and each setup column."""
    return [SAME_FILE_KIND, DUPLICATE_KIND, CAPTION, *(setup_relation(c) for c in settings.setup_columns)]


def in_shown_order(audit: DataFrame) -> DataFrame:
    """Audit rows with the plainest leak, one file in two splits, first."""
    return audit.orderBy("audit", F.col("kind") != SAME_FILE_KIND, "kind", "to_split", "from_split")


def leak_components(
    spark: SparkSession, warehouse: str, settings: GroupsConfig, assigned: DataFrame
) -> dict[str, DataFrame]:
    """file_id -> label of its component among the links of each leak kind (a file is its
    own component for the same-file kind)."""
    links = tables.read(spark, warehouse, "links")
    out = {SAME_FILE_KIND: assigned.select("file_id", F.col("file_id").alias("component")).distinct()}
    for kind in leak_kinds(settings)[1:]:
        labels = edge_components(links.where(F.col("kind") == kind), settings)
        out[kind] = labels.select(F.col("node").alias("file_id"), F.col("label").alias("component"))
    return out


def audit_assignment(
    spark: SparkSession,
    *,
    assigned: DataFrame,
    unmatched: DataFrame,
    name: str,
    warehouse: str,
    settings: GroupsConfig,
    run: RunLog,
) -> list:
    """Write the `audit` summary and `audit_leaks` details for one assignment; returns the summary rows.

    `unmatched` holds the (entry, split) that match no catalogued file: counted per split.
    """
    assigned = assigned.select("file_id", "split").distinct().persist()
    components = leak_components(spark, warehouse, settings, assigned)
    sizes = (
        assigned.groupBy("split")
        .agg(F.count("*").alias("split_files"))
        .join(unmatched.groupBy("split").agg(F.count("*").alias("unmatched_entries")), "split", "full")
        .fillna(0, ["split_files", "unmatched_entries"])
    )
    # Every ordered pair of splits gets a row, so a clean split reads as 0, not as nothing.
    names = sizes.select("split")
    split_pairs = names.crossJoin(names.withColumnRenamed("split", "other_split")).where("split != other_split")
    summaries, details = [], []
    for kind in leak_kinds(settings):
        placed = assigned.join(components[kind], "file_id")
        where = placed.select("component", F.col("split").alias("other_split")).distinct()
        leaking = (
            placed.join(where, "component")
            .where(F.col("split") != F.col("other_split"))
            .select("file_id", "split", "other_split", "component")
            .distinct()
        )
        counts = leaking.groupBy("other_split", "split").agg(F.countDistinct("file_id").alias("leaking_files"))
        summaries.append(
            split_pairs.join(counts, ["other_split", "split"], "left")
            .fillna(0, ["leaking_files"])
            .join(sizes, "split")
            .select(
                F.lit(kind).alias("kind"),
                F.col("other_split").alias("from_split"),
                F.col("split").alias("to_split"),
                "leaking_files",
                "split_files",
                F.when(F.col("split_files") > 0, F.col("leaking_files") / F.col("split_files"))
                .otherwise(0.0)
                .alias("share"),
                "unmatched_entries",
            )
        )
        details.append(leaking.withColumn("kind", F.lit(kind)))
    summary = reduce(DataFrame.unionByName, summaries).withColumns({"audit": F.lit(name), "run_id": F.lit(run.run_id)})
    condition = f"audit = {tables.sql_string(name)}"
    tables.ensure(spark, warehouse, "audit", summary.schema)
    run.write(summary, "audit", where=condition)
    evidence = _direct_evidence(spark, warehouse, assigned)
    leaks = (
        reduce(DataFrame.unionByName, details)
        .join(evidence, ["file_id", "other_split", "kind"], "left")
        .withColumns({"audit": F.lit(name), "run_id": F.lit(run.run_id)})
    )
    tables.ensure(spark, warehouse, "audit_leaks", leaks.schema)
    run.write(leaks, "audit_leaks", where=condition)
    assigned.unpersist()
    return in_shown_order(tables.read(spark, warehouse, "audit").where(condition)).collect()


def _direct_evidence(spark: SparkSession, warehouse: str, assigned: DataFrame) -> DataFrame:
    """For a leaking file, its first direct link of the leak's kind into the other split, if any."""
    links = tables.read(spark, warehouse, "links").where("kind IS NOT NULL")
    both_ways = links.select(
        F.col("file_a").alias("file_id"), F.col("file_b").alias("other_file_id"), "kind", "relation", "evidence"
    ).unionByName(
        links.select(
            F.col("file_b").alias("file_id"), F.col("file_a").alias("other_file_id"), "kind", "relation", "evidence"
        )
    )
    other = assigned.select(F.col("file_id").alias("other_file_id"), F.col("split").alias("other_split"))
    ranked = both_ways.join(other, "other_file_id").withColumn(
        "rank",
        F.row_number().over(Window.partitionBy("file_id", "other_split", "kind").orderBy("relation", "other_file_id")),
    )
    listed_twice = (
        assigned.alias("a")
        .join(assigned.alias("b"), "file_id")
        .where("a.split != b.split")
        .select(
            "file_id",
            F.col("file_id").alias("other_file_id"),
            F.lit(SAME_FILE_KIND).alias("kind"),
            F.lit(SAME_FILE_KIND).alias("relation"),
            F.concat(F.lit("the assignment lists this file in both "), "a.split", F.lit(" and "), "b.split").alias(
                "evidence"
            ),
            F.col("b.split").alias("other_split"),
        )
    )
    return ranked.where("rank = 1").drop("rank").unionByName(listed_twice)


def build_audit(
    spark: SparkSession, *, settings: AuditConfig, groups: GroupsConfig, warehouse: str, run: RunLog
) -> None:
    """Audit leakfree's own splits, and the configured existing assignment if any."""
    inputs = settings.inputs
    with run.stage("audit") as stats:
        catalog = tables.read(spark, warehouse, "catalog").where("NOT retired")
        own = tables.read(spark, warehouse, "splits").where("NOT retired").select("file_id", "split")
        audits = [("leakfree", own, spark.createDataFrame([], "entry string, split string"))]
        if inputs:
            assignment = read_assignment(list(inputs))
            matched, unmatched = match_entries(spark, assignment, catalog)
            examples = [r.entry for r in unmatched.limit(3).collect()]
            if examples:
                log.warning(
                    "audit: %d entries of %s match no catalogued file (counted in audit.unmatched_entries), e.g. %s",
                    unmatched.count(),
                    assignment.name,
                    examples,
                )
            audits.append((assignment.name, matched, unmatched))
        for name, assigned, unmatched in audits:
            rows = audit_assignment(
                spark,
                assigned=assigned,
                unmatched=unmatched,
                name=name,
                warehouse=warehouse,
                settings=groups,
                run=run,
            )
            stats.counters[f"files_audited:{name}"] = assigned.count()
            stats.counters[f"leaking_files:{name}"] = sum(r.leaking_files for r in rows)
