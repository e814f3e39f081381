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
        "explain",
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


def test_user_mistakes_are_one_line_messages_not_tracebacks(tmp_path):
    from leakfree import lock

    library = tmp_path / "library"
    library.mkdir()
    a_file = tmp_path / "a_file"
    a_file.write_text("not a folder")
    empty = str(tmp_path / "empty_warehouse")
    no_java = {"JAVA_HOME": str(tmp_path / "no-java"), "PATH": os.path.dirname(sys.executable)}
    cases = [
        (["run", "--library", str(library), "--warehouse", str(a_file)], "is a file, not a folder", no_java),
        (
            ["run", "--library", str(library), "--warehouse", "/sys/leakfree-warehouse"],
            "cannot use the warehouse",
            no_java,
        ),
        (["export", str(a_file / "out"), "--warehouse", empty], "no splits table yet", {}),
        (["sql", "SELEC 1", "--warehouse", empty], "cannot parse the statement", {}),
        (["sql", "SELECT nope FROM runs", "--warehouse", empty], "the statement failed", {}),
    ]
    held = str(tmp_path / "held")
    with lock.exclusive(held, "holder"):
        # No Java on the PATH: the refusal must come before any session starts.
        cases.append((["run", "--library", str(library), "--warehouse", held], "in use by run holder", no_java))
        for args, wording, env in cases:
            done = subprocess.run(
                [sys.executable, "-m", "leakfree.cli", *args],
                capture_output=True,
                text=True,
                env={**os.environ, "PYSPARK_PYTHON": sys.executable, **env},
                timeout=600,
            )
            assert done.returncode == 2, (args, done.stderr)
            assert wording in done.stderr and "Traceback" not in done.stderr, (args, done.stderr)
