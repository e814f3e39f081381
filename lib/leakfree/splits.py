"""The splits stage: read the live files and their groups, place them (placement.py), write
the assignment, the moves with their reasons and the balance; explain a placement that misses.
"""

from __future__ import annotations

import logging
from collections import Counter

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from leakfree import tables
from leakfree.config import GroupsConfig, SplitsConfig
from leakfree.diagnosis import diagnose
from leakfree.edges import DUPLICATE_RELATIONS
from leakfree.placement import EXCLUDED, Move, PlacedFile, assign, balance
from leakfree.runs import RunLog

log = logging.getLogger("leakfree")


def build_splits(
    spark: SparkSession, *, settings: SplitsConfig, groups: GroupsConfig, warehouse: str, run: RunLog
) -> None:
    with run.stage("splits") as stats:
        catalog = tables.read(spark, warehouse, "catalog").where("NOT retired")
        stratum = (
            F.coalesce(F.col(settings.stratify_by).cast("string"), F.lit(""))
            if settings.stratify_by and settings.stratify_by in catalog.columns
            else F.lit("")
        )
        files = (
            catalog.select(
                "file_id", "path", F.coalesce("duration_s", F.lit(0.0)).alias("seconds"), stratum.alias("stratum")
            )
            .join(tables.read(spark, warehouse, "groups").select("file_id", "group_id"), "file_id")
            .join(tables.live_features(spark, warehouse).select("file_id", "active_s"), "file_id", "left")
        )
        previous = _previous(spark, warehouse)
        collected = files.join(previous, "file_id", "left").collect()
        rows = [PlacedFile(r.file_id, r.group_id, r.seconds, r.stratum, r.previous, r.active_s) for r in collected]
        paths = {r.file_id: r.path for r in collected}
        stats.counters["files"] = len(rows)
        assignment, moves, warnings = assign(rows, settings)
        result = spark.createDataFrame(
            [(r.file_id, paths[r.file_id], r.group_id, assignment[r.file_id], r.stratum) for r in rows],
            "file_id bigint, path string, group_id bigint, split string, stratum string",
        )
        # The moves first: a run killed before the splits are merged finds the same previous
        # splits again and logs the same moves in their place.
        _record_moves(spark, warehouse, moves, run)
        run.write(result, "splits")
        run.changes["moved_files"] = stats.counters["files_moved"] = len({m.file_id for m in moves})
        shares, off_target = balance(rows, assignment, settings)
        warnings += off_target
        _record_balance(spark, warehouse, shares, warnings, run)
        stats.counters["files_excluded"] = sum(s == EXCLUDED for s in assignment.values())
        if off_target:
            causes = explain_largest_groups(spark, warehouse, rows, paths, settings, groups)
            run.degrade("splits miss their targets: " + "; ".join(off_target) + ". " + " ".join(causes))
        for warning in warnings:
            log.warning("splits: %s", warning)


def _previous(spark: SparkSession, warehouse: str) -> DataFrame:
    if not tables.exists(spark, warehouse, "splits"):
        return spark.createDataFrame([], "file_id bigint, previous string")
    return (
        tables.read(spark, warehouse, "splits").where("NOT retired").select("file_id", F.col("split").alias("previous"))
    )


def _record_moves(spark: SparkSession, warehouse: str, moves: list[Move], run: RunLog) -> None:
    rows = [(run.run_id, m.file_id, m.group_id, m.from_split, m.to_split, m.reason) for m in moves]
    frame = spark.createDataFrame(rows, tables.spark_schema("moves"))
    tables.ensure(spark, warehouse, "moves")
    run.write(frame, "moves")


def _record_balance(spark: SparkSession, warehouse: str, table: list[tuple], warnings: list[str], run: RunLog) -> None:
    note = "\n".join(warnings)
    frame = spark.createDataFrame([(run.run_id, *row, note) for row in table], tables.spark_schema("split_balance"))
    tables.ensure(spark, warehouse, "split_balance")
    run.write(frame, "split_balance")


_EXPLAINED_GROUPS = 3


def explain_largest_groups(
    spark: SparkSession,
    warehouse: str,
    rows: list[PlacedFile],
    paths: dict[int, str],
    settings: SplitsConfig,
    groups: GroupsConfig,
) -> list[str]:
    """For the largest groups holding more than the tolerance of the library: what joined
    them, how large they would be without each relation, their bridges, and what to change."""
    sizes = Counter(r.group_id for r in rows)
    total = max(len(rows), 1)
    large = [(g, n) for g, n in sizes.most_common(_EXPLAINED_GROUPS) if n > 1 and n / total > settings.tolerance]
    if not large and 1 / total > settings.tolerance:
        return [
            f"The library is too small for splits.tolerance = {settings.tolerance:g}: "
            f"one file is {1 / total:.1%} of its {total} files."
        ]
    if not large:
        return ["No group is larger than the tolerance: the ratios are out of reach for other reasons (strata?)."]
    names = {f: "/".join(path.rsplit("/", 2)[-2:]) for f, path in paths.items()}
    links = tables.read(spark, warehouse, "links").where("joins")
    members = spark.createDataFrame([(r.file_id, r.group_id) for r in rows], "file_a bigint, group_id bigint")
    causes = []
    for group_id, files in large:
        inside = links.join(members.where(F.col("group_id") == group_id), "file_a")
        title = f"Group {group_id} (with {names[group_id]}) holds {files} files ({files / total:.0%})"
        traced = inside.select("file_a", "file_b", "relation").limit(groups.driver_max_edges + 1).collect()
        if len(traced) > groups.driver_max_edges:
            causes.append(f"{title}; too many links to trace.")
            continue
        found = diagnose(files, [(r.file_a, r.file_b, r.relation) for r in traced])
        causes.append(f"{title}: {found.describe(names)}.")
        demotable = {r: n for r, n in found.largest_without.items() if r not in DUPLICATE_RELATIONS and n < files}
        if demotable:
            relation = min(demotable, key=demotable.get)
            key = relation.removeprefix("setup:")
            causes.append(
                f"To change: if {relation} does not mean one recording, demote it "
                f"(--set groups.roles.{key}=audit): the group's largest part then holds {demotable[relation]} files."
            )
        else:
            causes.append(
                "To change: verified duplicates hold it together; check its links "
                f'(leakfree sql "SELECT * FROM links l JOIN groups g ON g.file_id = l.file_a '
                f'WHERE l.joins AND g.group_id = {group_id}") or widen splits.tolerance.'
            )
    return causes
