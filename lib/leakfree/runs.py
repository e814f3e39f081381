"""Run bookkeeping: one `runs` row per run with per-stage counters, and the `errors` table."""

from __future__ import annotations

import logging
import secrets
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime

from pyspark.sql import DataFrame, Row, SparkSession
from pyspark.sql import functions as F

from leakfree import tables

log = logging.getLogger("leakfree")


def new_run_id() -> str:
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    return f"{stamp}-{secrets.token_hex(3)}"


@dataclass
class StageStats:
    stage: str
    counters: dict[str, int] = field(default_factory=dict)
    errors: int = 0
    seconds: float = 0.0


@dataclass
class RunLog:
    """Writes the run's row as it goes, so a crashed run still shows how far it got."""

    spark: SparkSession
    warehouse: str
    run_id: str
    command: str
    config_digest: str
    started_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    stages: list[StageStats] = field(default_factory=list)
    # What the run found and did: new_files, changed_files, deleted_files, moved_files.
    changes: dict[str, int] = field(default_factory=dict)
    # Why the run's results miss what was asked (a split far off its target): the run ends
    # as `degraded` with these reasons instead of `succeeded`.
    problems: list[str] = field(default_factory=list)
    # Whether this run id has run before (a killed run started again with its --run-id):
    # only then can tables already hold rows of this run that must be replaced.
    resumed: bool = False
    # The stage being run and the place in its write order it has reached (None between stages).
    _writing: tuple[str, int] | None = field(default=None, repr=False)

    def start(self) -> None:
        _upgrade_stage_counters(self.spark, self.warehouse)
        tables.ensure(self.spark, self.warehouse, "runs")
        tables.ensure(self.spark, self.warehouse, "errors")
        self.resumed = self._write("running", None, None)
        log.info("run %s started (warehouse %s)", self.run_id, tables.table_path(self.warehouse, ""))

    def finish(self, status: str, message: str | None = None) -> None:
        self._write(status, message, datetime.now(UTC))
        log.info("run %s %s", self.run_id, status)

    def degrade(self, reason: str) -> None:
        log.warning("run %s is degraded: %s", self.run_id, reason)
        self.problems.append(reason)

    @contextmanager
    def stage(self, name: str) -> Iterator[StageStats]:
        stats = StageStats(name)
        log.info("%s: started", name)
        began = time.perf_counter()
        self._writing = (name, 0)
        try:
            yield stats
        finally:
            self._writing = None
        stats.seconds = round(time.perf_counter() - began, 3)
        # Kept in memory and written with the run's end (a Delta commit per stage would cost a
        # nightly run more than most of its stages); the log shows progress meanwhile.
        self.stages = [s for s in self.stages if s.stage != name] + [stats]
        counted = ", ".join(f"{k.replace('_', ' ')} {v}" for k, v in stats.counters.items())
        log.info("%s: done in %.1f s (%s; %d errors)", name, stats.seconds, counted, stats.errors)

    def record_errors(self, stage: str, errors: DataFrame) -> int:
        """This run's errors for `stage` (path, file_id, error_class, message); returns how many."""
        rows = errors.select(
            F.lit(self.run_id).alias("run_id"),
            F.lit(stage).alias("stage"),
            F.col("path").cast("string"),
            F.col("file_id").cast("long"),
            F.col("error_class").cast("string"),
            F.col("message").cast("string"),
        )
        count = rows.count()
        # No empty commit, unless an earlier attempt of this run may have errors to replace.
        if count or self.resumed:
            self.write(rows, "errors", f"stage = {tables.sql_string(stage)}")
        return count

    def write(self, rows: DataFrame, name: str, where: str = "") -> None:
        """Write `rows` to table `name` in one commit, as tables.REGISTRY says, in the
        current stage's kill-safe order (tables.STAGE_WRITES)."""
        self._in_order(name)
        tables.write(rows, self.warehouse, name, run_id=self.run_id, resumed=self.resumed, where=where)

    def mark(self, name: str, rows: DataFrame, values: dict[str, str]) -> None:
        """Set `values` on the rows of `name` matching `rows` by its keys, in order as a write."""
        self._in_order(name)
        tables.mark(self.spark, self.warehouse, name, rows, values)

    def merge(
        self, name: str, rows: DataFrame, updates: dict[str, dict[str, str]], inserts: dict[str, dict[str, str]]
    ) -> None:
        """Update or insert the rows of `name` by each row's `action`, in order as a write
        (tables.merge_actions)."""
        self._in_order(name)
        tables.merge_actions(self.spark, self.warehouse, name, rows, updates, inserts)

    def _in_order(self, name: str) -> None:
        """Refuse a write outside a stage, to a table the stage does not write, or before one
        it wrote already, unless the stage repeats its order (tables.REPEATING_STAGES)."""
        if self._writing is None:
            raise RuntimeError(f"a write to {name} outside a stage")
        stage, reached = self._writing
        order = tables.STAGE_WRITES[stage]
        if name not in order:
            raise RuntimeError(f"the {stage} stage does not write {name} (tables.STAGE_WRITES)")
        position = order.index(name)
        if position < reached and not (position == 0 and stage in tables.REPEATING_STAGES):
            raise RuntimeError(f"the {stage} stage writes {name} after {order[reached]}: out of its kill-safe order")
        self._writing = (stage, position)

    def _write(self, status: str, message: str | None, ended_at: datetime | None) -> bool:
        row = Row(
            run_id=self.run_id,
            command=self.command,
            status=status,
            message=message,
            started_at=self.started_at,
            ended_at=ended_at,
            config_digest=self.config_digest,
            stages=[Row(**asdict(s)) for s in self.stages],
            changes=dict(self.changes),
        )
        return tables.write(self.spark.createDataFrame([row], tables.spark_schema("runs")), self.warehouse, "runs")


def _upgrade_stage_counters(spark: SparkSession, warehouse: str) -> None:
    """Rewrite, once, a `runs` table of an older leakfree whose stages held rows_in/rows_out:
    they become the counters `rows_in` and `rows_out` of the new map."""
    if not tables.exists(spark, warehouse, "runs"):
        return
    old = tables.read(spark, warehouse, "runs")
    if "rows_in" not in old.schema["stages"].dataType.elementType.fieldNames():
        return
    stages = F.transform(
        "stages",
        lambda s: F.struct(
            s["stage"].alias("stage"),
            F.create_map(F.lit("rows_in"), s["rows_in"], F.lit("rows_out"), s["rows_out"]).alias("counters"),
            s["errors"].alias("errors"),
            s["seconds"].alias("seconds"),
        ),
    )
    upgraded = old.withColumn("stages", stages).select(*tables.schema("runs").names).localCheckpoint()
    log.info("runs: moving the stage counters of %d older runs into named counters", upgraded.count())
    upgraded.write.format("delta").mode("overwrite").option("overwriteSchema", "true").save(
        tables.table_path(warehouse, "runs")
    )
