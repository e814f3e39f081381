"""The `leakfree` command as a user runs it: a real process, real tables."""

from __future__ import annotations

import csv
import os
import subprocess
import sys

import pytest

pytestmark = pytest.mark.integration


def leakfree(*args: str, cwd=None) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYSPARK_PYTHON": sys.executable}
    return subprocess.run(
        [sys.executable, "-m", "leakfree.cli", *args], capture_output=True, text=True, cwd=cwd, env=env, timeout=600
    )


def test_demo_run_then_sql(tmp_path):
    demo = tmp_path / "demo"
    made = leakfree("demo-data", str(demo), "--originals", "8")
    assert made.returncode == 0, made.stderr
    truth = list(csv.DictReader((demo / "truth.csv").open()))
    warehouse = str(tmp_path / "wh")
    quiet = ["--set", "spark.progress_bar=false", "--set", 'spark.master="local[2]"']
    # One stage is enough here: the whole pipeline runs through the CLI in test_reliability.
    ran = leakfree(
        "catalog", "--library", str(demo), "--metadata", str(demo / "metadata.csv"), "--warehouse", warehouse, *quiet
    )
    assert ran.returncode == 0, ran.stderr
    assert "succeeded" in ran.stdout and "empty_file" in ran.stdout

    counted = leakfree(
        "sql",
        "SELECT count(*) AS n FROM catalog WHERE caption IS NOT NULL",
        "--format",
        "csv",
        "--warehouse",
        warehouse,
        *quiet,
    )
    assert counted.returncode == 0, counted.stderr
    assert counted.stdout.splitlines() == ["n", str(len(truth))]

    refused = leakfree("sql", "DELETE FROM catalog", "--warehouse", warehouse)
    assert refused.returncode == 2 and "read-only" in refused.stderr
    assert (tmp_path / "wh" / "_register.sql").read_text().count("CREATE TABLE IF NOT EXISTS") >= 3


def test_every_subcommand_explains_itself():
    commands = (
        "demo-data",
        "run",
        "catalog",
        "features",
        "candidates",
        "pairs",
        "groups",
        "splits",
        "report",
        "audit",
        "export",
        "sql",
        "show-config",
    )
    for command in commands:
        shown = leakfree(command, "--help")
        assert shown.returncode == 0 and "usage: leakfree " + command in shown.stdout


def test_config_errors_are_one_clear_line(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text("[catalog]\nfiles_per_tsk = 3\n")
    shown = leakfree("show-config", "--conf", str(bad))
    assert shown.returncode == 2
    assert "unknown config key 'catalog.files_per_tsk'" in shown.stderr and "Traceback" not in shown.stderr
    missing = leakfree("run", "--warehouse", str(tmp_path / "wh"))
    assert missing.returncode == 2 and "no library roots" in missing.stderr
