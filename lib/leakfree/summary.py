"""The few lines a person reads after a run: where the tables are and what they hold."""

from __future__ import annotations

from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from leakfree import tables


def describe_run(spark: SparkSession, warehouse: str, run_id: str, report: str | None = None) -> str:
    run = tables.read(spark, warehouse, "runs").where(F.col("run_id") == run_id).first()
    lines = [f"run {run_id}: {run.status}", f"tables in {tables.table_path(warehouse, '')}"]
    if run.changes:
        lines.append("found: " + ", ".join(f"{v} {k.replace('_', ' ')}" for k, v in sorted(run.changes.items())))
    for stage in run.stages:
        lines.append(
            f"  {stage.stage:<10} {stage.rows_in:>8} in {stage.rows_out:>8} out "
            f"{stage.errors:>6} errors {stage.seconds:>8.1f} s"
        )
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
        lines += [f"  {e.stage:<10} {e.error_class:<20} {e['count']:>6}" for e in errors]
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
            total = sum(r.leaking_files for r in leaks if r.audit == name and r.kind == "duplicate")
            lines.append(f"audit {name}: {total} file(s) with a duplicate in another split")
    if report:
        lines.append(f"report: {report}")
    lines += [
        "query them by name:",
        '  leakfree sql "SELECT group_size, count(*) AS groups FROM groups GROUP BY group_size ORDER BY 1 DESC"',
        '  leakfree sql "SELECT audit, kind, to_split, from_split, leaking_files, share FROM audit"',
        f"  leakfree sql \"SELECT path, error_class, message FROM errors WHERE run_id = '{run_id}'\"",
    ]
    return "\n".join(lines)
