"""Which copy to keep, on real files through Spark and Delta: the canonical choice follows
the order, stays put when a worse copy arrives, moves (logged) when a better one does."""

from __future__ import annotations

import numpy as np
import pytest
import soxr

from leakfree import tables
from leakfree.demo import MP3_128K, bell, engine, footsteps, write_audio
from leakfree.export import export_splits
from leakfree.pipeline import run_stages

pytestmark = [pytest.mark.integration, pytest.mark.nights]
RATE = 44100
UP_TO_SPLITS = ["catalog", "features", "candidates", "pairs", "groups", "splits"]


def sound(seed: int, seconds: float) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return 0.5 * bell(rng, seconds, RATE) + 0.4 * footsteps(rng, seconds, RATE) + 0.3 * engine(rng, seconds, RATE)


def kept(spark, cfg) -> dict[str, str]:
    """cluster members' names -> the name of their cluster's kept copy (clusters of two or more)."""
    names = {r.file_id: r.rel_path for r in tables.read(spark, cfg.warehouse.path, "catalog").collect()}
    rows = tables.read(spark, cfg.warehouse.path, "clusters").where("cluster_size > 1").collect()
    canonical = {r.cluster_id: names[r.file_id] for r in rows if r.canonical}
    return {names[r.file_id]: canonical[r.cluster_id] for r in rows}


def test_the_kept_copy_follows_the_order_and_stays_until_a_better_one_arrives(spark, make_config, tmp_path):
    lib = tmp_path / "library"
    a = sound(1, 3.0)
    write_audio(lib / "a.wav", a, RATE)
    write_audio(lib / "a.mp3", a, RATE, **MP3_128K)
    longer = sound(2, 3.0)
    write_audio(lib / "b_long.wav", longer, RATE)
    write_audio(lib / "b_trimmed.wav", longer[: int(2.5 * RATE)], RATE)
    whole = sound(3, 5.0)
    write_audio(lib / "c_whole.mp3", whole, RATE, **MP3_128K)
    write_audio(lib / "c_excerpt.wav", whole[RATE : int(2.5 * RATE)], RATE)
    write_audio(lib / "alone.wav", sound(4, 2.0), RATE)
    cfg = make_config(lib)

    run_stages(spark, cfg, UP_TO_SPLITS, command="test", run_id="first")
    first = kept(spark, cfg)
    assert first["a.mp3"] == "a.wav"  # lossless over MP3
    assert first["b_trimmed.wav"] == "b_long.wav"  # the longer of two
    assert first["c_excerpt.wav"] == "c_whole.mp3"  # the containing file over its lossless excerpt
    assert "alone.wav" not in first
    reasons = {r.reason for r in tables.read(spark, cfg.warehouse.path, "clusters").where("canonical").collect()}
    assert "lossless, where the other copies are lossy" in reasons and "the only copy" in reasons
    assert any(r.startswith("longer active audio") for r in reasons)
    assert "the whole recording; the other copies are excerpts of it" in reasons

    out = tmp_path / "out"
    export_splits(spark, warehouse=cfg.warehouse.path, out=str(out), fmt="csv", relative=True, dedupe=True)
    exported = {line.split(",")[0] for line in (out / "splits.csv").read_text().splitlines()[1:]}
    assert exported == {"a.wav", "b_long.wav", "c_whole.mp3", "alone.wav"}

    write_audio(lib / "a_worse.mp3", a * 0.9, RATE, **MP3_128K)  # another lossy copy: changes nothing
    run_stages(spark, cfg, UP_TO_SPLITS, command="test", run_id="worse")
    assert kept(spark, cfg)["a_worse.mp3"] == "a.wav"
    assert tables.read(spark, cfg.warehouse.path, "canonical_changes").where("run_id = 'worse'").count() == 0

    write_audio(lib / "a_96k.wav", soxr.resample(a, RATE, 96000), 96000)  # a better copy
    run_stages(spark, cfg, UP_TO_SPLITS, command="test", run_id="better")
    assert kept(spark, cfg)["a.wav"] == "a_96k.wav"
    (change,) = tables.read(spark, cfg.warehouse.path, "canonical_changes").where("run_id = 'better'").collect()
    assert change.reason.startswith("a better copy arrived: the higher sample rate (96000 Hz")
