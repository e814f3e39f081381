"""The SparkSession every job shares: Delta Lake enabled, the venv's Python on the workers."""

from __future__ import annotations

import glob
import os
import sys
from pathlib import Path

from pyspark import SparkConf, SparkContext
from pyspark.sql import SparkSession

from leakfree.config import SparkConfig
from leakfree.errors import LeakfreeError

DELTA_PACKAGES = ("io.delta:delta-spark_4.2_2.13:4.4.0", "io.delta:delta-storage:4.4.0")
# Where `make jars` caches them in a source checkout (the package lives in <checkout>/lib).
CHECKOUT_JARS = Path(__file__).resolve().parents[2] / ".cache" / "jars"


class SetupError(LeakfreeError):
    """Something the machine lacks (JARs, Java); the message says how to get it."""


def build_session(cfg: SparkConfig) -> SparkSession:
    """A session for local runs or under spark-submit (whose master and JARs then win)."""
    # Workers must run this interpreter, or they miss the venv's packages.
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    if os.environ.get("PYSPARK_GATEWAY_PORT"):
        # spark-submit started a JVM whose system properties hold --master and --jars; a
        # SparkConf made before connecting to it is a bare Python dict that would not see them.
        SparkContext._ensure_initialized()
    launched = SparkConf()
    builder = SparkSession.builder.appName(cfg.app_name)
    if not launched.contains("spark.master"):
        builder = builder.master(cfg.master)
        if cfg.master.startswith("local"):
            # Nothing leaves this machine; binding to loopback also skips a hostname warning.
            os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
    if not (launched.contains("spark.jars") or launched.contains("spark.jars.packages")):
        for key, value in _delta_jar_conf(cfg.jars_dir).items():
            builder = builder.config(key, value)
    settings = {
        "spark.sql.extensions": "io.delta.sql.DeltaSparkSessionExtension",
        "spark.sql.catalog.spark_catalog": "org.apache.spark.sql.delta.catalog.DeltaCatalog",
        "spark.ui.showConsoleProgress": str(cfg.progress_bar).lower(),
        # Arrow batches feed the per-file UDFs; keep them small so one batch of long
        # files never needs much memory.
        "spark.sql.execution.arrow.maxRecordsPerBatch": "64",
        "spark.sql.session.timeZone": "UTC",
        # Let adaptive execution coalesce the partitions of persisted frames too: otherwise
        # every later scan of a small persisted result runs one task per shuffle partition,
        # which made a nightly run's candidates stage three times slower.
        "spark.sql.optimizer.canChangeCachedPlanOutputPartitioning": "true",
        # Compact a table's small files right after the write that leaves too many: a full
        # run writes features in one file per decoding task, and every nightly run adds a
        # few more. Each later scan opens every file, which made nightly runs half again as slow.
        "spark.databricks.delta.autoCompact.enabled": "true",
        **cfg.conf,
    }
    for key, value in settings.items():
        builder = builder.config(key, value)
    spark = builder.getOrCreate()
    spark.sparkContext.setLogLevel(cfg.log_level)
    return spark


def _delta_jar_conf(jars_dir: str) -> dict[str, str]:
    folder = jars_dir or os.environ.get("LEAKFREE_JARS_DIR", "")
    if not folder and CHECKOUT_JARS.is_dir():
        folder = str(CHECKOUT_JARS)
    if folder:
        jars = sorted(glob.glob(str(Path(folder) / "*.jar")))
        if not any("delta-spark" in Path(j).name for j in jars):
            raise SetupError(
                f"no Delta Lake JAR in {folder}; run `make jars` (it fetches "
                f"{', '.join(DELTA_PACKAGES)} from Maven Central)"
            )
        return {"spark.jars": ",".join(jars)}
    ivy = Path.home() / ".cache" / "leakfree" / "ivy"
    return {"spark.jars.packages": ",".join(DELTA_PACKAGES), "spark.jars.ivy": str(ivy)}
