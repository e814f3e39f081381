"""The runs table: named stage counters, and the upgrade of an older table to them."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from leakfree import tables
from leakfree.runs import RunLog

pytestmark = pytest.mark.integration

OLD_RUNS = (
    "run_id string, command string, status string, message string, started_at timestamp, ended_at timestamp, "
    "config_digest string, stages array<struct<stage:string, rows_in:bigint, rows_out:bigint, errors:bigint, "
    "seconds:double>>, changes map<string,bigint>"
)


def test_an_older_runs_table_gets_named_counters_and_keeps_its_history(spark, tmp_path):
    warehouse = str(tmp_path / "wh")
    now = datetime.now(UTC)
    old = [("old", "leakfree run", "succeeded", None, now, now, "d", [("catalog", 12, 10, 2, 1.5)], {"new_files": 12})]
    spark.createDataFrame(old, OLD_RUNS).write.format("delta").save(tables.table_path(warehouse, "runs"))

    run = RunLog(spark, warehouse, "new", "test", "d")
    run.start()
    with run.stage("catalog") as stats:
        stats.counters["files_listed"] = 3
    run.finish("succeeded")

    rows = {r.run_id: r for r in tables.read(spark, warehouse, "runs").collect()}
    (old_stage,) = rows["old"].stages
    assert old_stage.counters == {"rows_in": 12, "rows_out": 10} and old_stage.errors == 2
    assert rows["old"].changes == {"new_files": 12}
    (new_stage,) = rows["new"].stages
    assert new_stage.counters == {"files_listed": 3} and rows["new"].status == "succeeded"
    in_sql = spark.sql(
        f"SELECT stages[0].counters['files_listed'] AS n FROM delta.`{tables.table_path(warehouse, 'runs')}` "
        "WHERE run_id = 'new'"
    ).first()
    assert in_sql.n == 3
