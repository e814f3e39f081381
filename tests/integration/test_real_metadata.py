"""Splits on metadata as real libraries carry it: captions made from file names, a game
package as the setup key, clicks in many packages, a few sounds shipped by two packages.
Nothing here may swallow the library; targets that cannot be met are an outcome."""

from __future__ import annotations

import csv
import dataclasses
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest

from leakfree import tables
from leakfree.demo import SOUNDS, write_audio
from leakfree.pipeline import STAGES, run_stages
from leakfree.placement import EXCLUDED

pytestmark = pytest.mark.integration
RATE = 22050
PACKAGES = 30
NAMES = ["click", "explosion", "pause", "ghost", "jump", "coin", "door", "alarm", "engine", "wind", "bell", "steps"]
# (package, file) shipped again by another package under another name: real duplicates.
COPIES = {("pkg01", "explosion.wav"): ("pkg11", "boom.wav"), ("pkg05", "door.wav"): ("pkg20", "door_open.wav")}


@pytest.fixture(scope="module")
def packages(tmp_path_factory, test_config):
    root = tmp_path_factory.mktemp("packages")
    lib = root / "library"
    rng = np.random.default_rng(11)
    kinds = sorted(SOUNDS)
    rows, clicks = [], []
    for p in range(PACKAGES):
        package = f"pkg{p:02d}"
        names = ["click", *rng.choice(NAMES[1:], 3, replace=False)]
        for i, name in enumerate(names):
            short = name == "click" and p % 3 == 0
            seconds = 0.03 if short else float(rng.uniform(0.5, 3.0))
            sound = SOUNDS["impact" if name == "click" else kinds[(p + i) % len(kinds)]]
            write_audio(lib / package / f"{name}.wav", click(rng) if short else sound(rng, seconds, RATE), RATE)
            rows.append((f"{package}/{name}.wav", name, package, f"disc{p % 2}"))
            if short:
                clicks.append(f"{package}/{name}.wav")
    for (package, name), (other, copy) in COPIES.items():
        audio, rate = _read(lib / package / name)
        write_audio(lib / other / copy, 0.7 * audio, rate)  # the same sound, quieter
        caption = copy.removesuffix(".wav").replace("_", " ")
        rows.append((f"{other}/{copy}", caption, other, f"disc{int(other[3:]) % 2}"))
    with (lib / "metadata.csv").open("w", newline="") as out:
        writer = csv.writer(out)
        writer.writerow(["path", "caption", "setup", "disc"])
        writer.writerows(rows)
    cfg = test_config.replace(
        library=dataclasses.replace(test_config.library, roots=(str(lib),), metadata=str(lib / "metadata.csv")),
        warehouse=dataclasses.replace(test_config.warehouse, path=str(root / "warehouse")),
        report=dataclasses.replace(test_config.report, folder=str(root / "reports")),
    )
    return {"cfg": cfg, "lib": lib, "root": root, "clicks": clicks, "files": len(rows)}


def click(rng: np.random.Generator) -> np.ndarray:
    """A 30 ms click: too short to fingerprint reliably."""
    t = np.arange(int(0.03 * RATE)) / RATE
    return 0.8 * rng.standard_normal(t.size) * np.exp(-t * rng.uniform(100, 200))


def _read(path):
    import soundfile as sf

    return sf.read(path)


@pytest.fixture(scope="module")
def default_run(spark, packages):
    run_id = run_stages(spark, packages["cfg"], list(STAGES), command="test", run_id="default")
    return run_id


def _splits(spark, cfg) -> dict[str, str]:
    rows = tables.read(spark, cfg.warehouse.path, "splits").where("NOT retired").collect()
    return {r.path.split("/library/", 1)[1]: r.split for r in rows}


def test_by_default_the_splits_meet_their_targets_without_leaks(spark, packages, default_run):
    cfg = packages["cfg"]
    run = tables.read(spark, cfg.warehouse.path, "runs").where(f"run_id = '{default_run}'").first()
    assert run.status == "succeeded", run.message
    balance = tables.read(spark, cfg.warehouse.path, "split_balance").where(f"run_id = '{default_run}'").collect()
    named = {b.split: b for b in balance if b.split != EXCLUDED}
    for b in named.values():
        assert abs(b.file_share - b.target) <= 0.02 and abs(b.duration_share - b.target) <= 0.02, b
    assert named["test"].files > 0 and named["val"].files > 0
    splits = _splits(spark, cfg)
    for (package, name), (other, copy) in COPIES.items():
        assert splits[f"{package}/{name}"] == splits[f"{other}/{copy}"]  # duplicates across packages: one split
    audit = tables.read(spark, cfg.warehouse.path, "audit").where("audit = 'leakfree'").collect()
    assert {r.kind for r in audit} == {"same_file", "duplicate", "caption", "setup:setup"}
    assert sum(r.leaking_files for r in audit if r.kind == "duplicate") == 0


def test_file_name_captions_join_nothing_and_are_kept_with_their_numbers(spark, packages, default_run):
    cfg = packages["cfg"]
    links = tables.read(spark, cfg.warehouse.path, "links").where("relation = 'caption'").collect()
    assert len(links) >= PACKAGES  # every click shares its caption with every other click
    assert not any(r.joins for r in links) and all(r.kind is None for r in links)
    relation = (
        tables.read(spark, cfg.warehouse.path, "relations")
        .where(f"run_id = '{default_run}' AND relation = 'caption'")
        .first()
    )
    assert relation.joining == 0 and "generic" in relation.note


def test_clicks_stay_out_of_evaluation_without_pinning_their_packages(spark, packages, default_run):
    cfg = packages["cfg"]
    splits = _splits(spark, cfg)
    assert {splits[c] for c in packages["clicks"]} <= {"train", EXCLUDED}
    packages_with_clicks = {c.split("/")[0] for c in packages["clicks"]}
    placed = {
        p: {s for f, s in splits.items() if f.startswith(p + "/") and s != EXCLUDED} for p in packages_with_clicks
    }
    assert all(len(s) == 1 for s in placed.values())  # a package is one group, in one split
    assert {next(iter(s)) for s in placed.values()} != {"train"}  # and they are not all pinned to train
    moves = tables.read(spark, cfg.warehouse.path, "moves").where(f"run_id = '{default_run}'").collect()
    # Every file kept out, a planted click or another generated sound that short, has its move.
    excluded = [f for f, s in splits.items() if s == EXCLUDED]
    assert len([m for m in moves if m.to_split == EXCLUDED and "too short" in m.reason]) == len(excluded)


def test_a_coarse_key_is_flagged_and_the_run_degrades_and_fails_under_strict(spark, packages, default_run, tmp_path):
    cfg = packages["cfg"]
    warehouse = tmp_path / "warehouse"
    shutil.copytree(cfg.warehouse.path, warehouse)
    shutil.copytree(cfg.warehouse.path, tmp_path / "demoted")  # before the coarse key moved files
    coarse = cfg.replace(
        groups=dataclasses.replace(cfg.groups, setup_columns=("setup", "disc")),
        warehouse=dataclasses.replace(cfg.warehouse, path=str(warehouse)),
    )
    run_id = run_stages(spark, coarse, ["groups"], command="test", run_id="coarse")
    flagged = tables.read(spark, str(warehouse), "relations").where(f"run_id = '{run_id}' AND coarse").collect()
    assert [r.relation for r in flagged] == ["setup:disc"]
    assert flagged[0].largest_files >= packages["files"] // 2 - 2 and "groups.roles.disc=audit" in flagged[0].note

    env = {**os.environ, "PYSPARK_PYTHON": sys.executable}
    args = [sys.executable, "-m", "leakfree.cli", "splits", "--library", str(packages["lib"])]
    args += ["--warehouse", str(warehouse), "--run-id", "strict", "--strict"]
    args += ["--set", 'groups.setup_columns=["setup", "disc"]', "--set", 'spark.master="local[2]"']
    done = subprocess.run(args, capture_output=True, text=True, env=env, timeout=600)
    assert done.returncode == 3, done.stderr[-3000:]
    assert "degraded" in done.stdout and "groups.roles.disc=audit" in done.stdout
    run = tables.read(spark, str(warehouse), "runs").where("run_id = 'strict'").first()
    assert run.status == "degraded" and "test holds 0.0% of the files" in run.message
    assert "without setup:disc its largest part holds" in run.message

    demoted = coarse.replace(
        groups=dataclasses.replace(coarse.groups, roles={"disc": "audit"}),
        warehouse=dataclasses.replace(cfg.warehouse, path=str(tmp_path / "demoted")),
    )
    run_id = run_stages(spark, demoted, ["groups", "splits", "audit"], command="test", run_id="demoted")
    run = tables.read(spark, str(tmp_path / "demoted"), "runs").where(f"run_id = '{run_id}'").first()
    assert run.status == "succeeded", run.message
    audit = tables.read(spark, str(tmp_path / "demoted"), "audit").where("audit = 'leakfree'").collect()
    assert sum(r.leaking_files for r in audit if r.kind == "setup:disc") > 0  # audited, not joined
