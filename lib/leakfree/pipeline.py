"""The stages in order, each a function of (session, config, run log) writing its tables."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from pyspark.sql import SparkSession

from leakfree import lock, storage, tables
from leakfree.audit import build_audit
from leakfree.candidates import build_candidates
from leakfree.catalog import build_catalog
from leakfree.config import Config, ConfigError
from leakfree.contamination import build_contamination
from leakfree.features import build_features
from leakfree.grouping import build_groups
from leakfree.pairs import build_pairs
from leakfree.report import write_report
from leakfree.runs import RunLog, new_run_id
from leakfree.splits import build_splits

log = logging.getLogger("leakfree")

Stage = Callable[[SparkSession, Config, RunLog], None]


def catalog_stage(spark: SparkSession, cfg: Config, run: RunLog) -> None:
    build_catalog(spark, library=cfg.library, settings=cfg.catalog, warehouse=cfg.warehouse.path, run=run)


def features_stage(spark: SparkSession, cfg: Config, run: RunLog) -> None:
    build_features(spark, settings=cfg.features, warehouse=cfg.warehouse.path, run=run)


def candidates_stage(spark: SparkSession, cfg: Config, run: RunLog) -> None:
    build_candidates(
        spark,
        settings=cfg.dedup,
        fingerprint=cfg.features.fingerprint,
        num_perm=cfg.features.num_perm,
        warehouse=cfg.warehouse.path,
        run=run,
    )


def pairs_stage(spark: SparkSession, cfg: Config, run: RunLog) -> None:
    build_pairs(spark, settings=cfg.dedup, fingerprint=cfg.features.fingerprint, warehouse=cfg.warehouse.path, run=run)


def groups_stage(spark: SparkSession, cfg: Config, run: RunLog) -> None:
    build_groups(
        spark,
        settings=cfg.groups,
        caption_column=cfg.features.caption_column,
        warehouse=cfg.warehouse.path,
        run=run,
    )


def splits_stage(spark: SparkSession, cfg: Config, run: RunLog) -> None:
    build_splits(spark, settings=cfg.splits, groups=cfg.groups, warehouse=cfg.warehouse.path, run=run)


def audit_stage(spark: SparkSession, cfg: Config, run: RunLog) -> None:
    build_audit(spark, settings=cfg.audit, groups=cfg.groups, warehouse=cfg.warehouse.path, run=run)


def contamination_stage(spark: SparkSession, cfg: Config, run: RunLog) -> None:
    build_contamination(spark, cfg=cfg, run=run)


def report_stage(spark: SparkSession, cfg: Config, run: RunLog) -> None:
    write_report(
        spark, settings=cfg.report, caption_column=cfg.features.caption_column, warehouse=cfg.warehouse.path, run=run
    )


STAGES: dict[str, Stage] = {
    "catalog": catalog_stage,
    "features": features_stage,
    "candidates": candidates_stage,
    "pairs": pairs_stage,
    "groups": groups_stage,
    "splits": splits_stage,
    "audit": audit_stage,
    "contamination": contamination_stage,
    "report": report_stage,
}


@contextmanager
def recorded_run(spark: SparkSession, cfg: Config, command: str, run_id: str | None) -> Iterator[RunLog]:
    """A run row that ends as succeeded, degraded (it finished, but a result misses what was
    asked of it, with the reasons) or failed with the reason, whatever happens inside."""
    run = RunLog(spark, cfg.warehouse.path, run_id or new_run_id(), command, cfg.digest())
    run.start()
    try:
        yield run
    except BaseException as exc:
        run.finish("failed", f"{type(exc).__name__}: {exc}")
        raise
    if run.problems:
        run.finish("degraded", " | ".join(run.problems))
    else:
        run.finish("succeeded")
    write_registration_sql(spark, cfg.warehouse.path)


@contextmanager
def writer(cfg: Config, run_id: str, *, need_library: bool = True) -> Iterator[None]:
    """The checks that need no Spark, then the warehouse held for one run. Taken before the
    session starts, a second run stops in a second; run_stages takes it again (reentrant)."""
    if need_library and not cfg.library.roots:
        raise ConfigError("no library roots: give --library PATH or set library.roots in the config")
    with lock.exclusive(cfg.warehouse.path, run_id, stale_after_s=cfg.warehouse.lock_stale_after_s):
        yield


def run_stages(
    spark: SparkSession,
    cfg: Config,
    names: list[str],
    *,
    command: str,
    run_id: str | None = None,
    need_library: bool = True,
) -> str:
    """Run the named stages (in pipeline order) as one recorded run; returns its id."""
    run_id = run_id or new_run_id()
    with writer(cfg, run_id, need_library=need_library), recorded_run(spark, cfg, command, run_id) as run:
        for name in STAGES:
            if name in names:
                STAGES[name](spark, cfg, run)
    return run.run_id


def write_registration_sql(spark: SparkSession, warehouse: str) -> str:
    """Write <warehouse>/_register.sql so `spark-sql -i` finds the tables by name."""
    names = tables.register(spark, warehouse)
    target = tables.table_path(warehouse, "_register.sql")
    if not storage.is_remote(target):
        with open(target, "w", encoding="utf-8") as out:
            out.write(tables.registration_sql(warehouse, names))
    return target
