"""The few lines a person reads after a run: where the tables are and what they hold."""

from __future__ import annotations

from pyspark.sql import Row, SparkSession
from pyspark.sql import functions as F

from leakfree import tables
from leakfree.audit import SAME_FILE_KIND
from leakfree.grouping import DUPLICATE_KIND


def run_row(spark: SparkSession, warehouse: str, run_id: str) -> Row:
    return tables.read(spark, warehouse, "runs").where(F.col("run_id") == run_id).first()


def run_status(spark: SparkSession, warehouse: str, run_id: str) -> str:
    return run_row(spark, warehouse, run_id).status


def describe_run(spark: SparkSession, warehouse: str, run_id: str, report: str | None = None) -> str:
    run = run_row(spark, warehouse, run_id)
    lines = [f"run {run_id}: {run.status}"]
    if run.status == "degraded":
        lines += [f"  {problem}" for problem in run.message.split(" | ")]
    lines += flagged_relations(spark, warehouse, run_id)
    lines.append(f"tables in {tables.table_path(warehouse, '')}")
    if run.changes:
        lines.append("found: " + ", ".join(f"{v} {k.replace('_', ' ')}" for k, v in sorted(run.changes.items())))
    for stage in run.stages:
        counted = ", ".join(f"{k.replace('_', ' ')} {v}" for k, v in (stage.counters or {}).items())
        lines.append(f"  {stage.stage:<13} {stage.seconds:>7.1f} s {stage.errors:>6} errors   {counted}")
    errors = (
        tables.read(spark, warehouse, "errors")
        .where(F.col("run_id") == run_id)
        .groupBy("stage", "error_class")
        .count()
        .orderBy("stage", "error_class")
        .collect()
    )
    if errors:
        lines.append("errors (files skipped, the run went on):")
        lines += [f"  {e.stage:<13} {e.error_class:<20} {e['count']:>6}" for e in errors]
    if tables.exists(spark, warehouse, "split_balance"):
        balance = tables.read(spark, warehouse, "split_balance").where(F.col("run_id") == run_id).collect()
        if balance:
            lines.append("splits (share of files / of duration, target):")
            lines += [
                f"  {b.split:<10} {b.files:>8} files {b.file_share:>7.1%} {b.duration_share:>7.1%}   {b.target:.0%}"
                for b in sorted(balance, key=lambda b: -b.target)
            ]
    if tables.exists(spark, warehouse, "audit"):
        leaks = tables.read(spark, warehouse, "audit").where(F.col("run_id") == run_id).collect()
        for name in sorted({r.audit for r in leaks}):
            kinds = sorted({r.kind for r in leaks if r.audit == name})
            counts = {k: sum(r.leaking_files for r in leaks if r.audit == name and r.kind == k) for k in kinds}
            listed_twice = counts.pop(SAME_FILE_KIND, 0)
            lines.append(
                f"audit {name}: "
                + (f"{listed_twice} file(s) listed in two splits, " if listed_twice else "")
                + f"{counts.pop(DUPLICATE_KIND, 0)} file(s) with a duplicate in another split"
                + "".join(f", {n} with a {k} relation" for k, n in counts.items())
            )
    if report:
        lines.append(f"report: {report}")
    lines += [
        "query them by name:",
        '  leakfree sql "SELECT group_size, count(*) AS groups FROM groups GROUP BY group_size ORDER BY 1 DESC"',
        '  leakfree sql "SELECT audit, kind, to_split, from_split, leaking_files, share FROM audit"',
        f"  leakfree sql \"SELECT path, error_class, message FROM errors WHERE run_id = '{run_id}'\"",
    ]
    return "\n".join(lines)


def flagged_relations(spark: SparkSession, warehouse: str, run_id: str) -> list[str]:
    """Setup keys this run found too coarse, one line each with the numbers."""
    if not tables.exists(spark, warehouse, "relations"):
        return []
    rows = tables.read(spark, warehouse, "relations").where((F.col("run_id") == run_id) & F.col("coarse")).collect()
    return [f"  {r.relation} ({r.role}) is {r.note}" for r in sorted(rows, key=lambda r: r.relation)]
