"""The features stage through Spark into Delta, on real files."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import soundfile as sf

from leakfree import tables
from leakfree.demo import write_audio
from leakfree.pipeline import run_stages
from tests.conftest import tone

pytestmark = pytest.mark.integration


def features_by_name(spark, cfg):
    rows = (
        tables.read(spark, cfg.warehouse.path, "features")
        .join(tables.read(spark, cfg.warehouse.path, "catalog").select("file_id", "rel_path"), "file_id")
        .collect()
    )
    return {r.rel_path: r for r in rows}


def test_features_stage_writes_fingerprints_and_reports_failures(spark, make_config, tmp_path):
    lib = tmp_path / "library"
    pcm = (tone("wind", 2.0, seed=1) * 32767).astype(np.int16)
    lib.mkdir()
    sf.write(lib / "bell.wav", pcm, 44100)
    sf.write(lib / "bell copy.flac", pcm, 44100)
    write_audio(lib / "sweep.ogg", tone("sweep", 3.0, seed=2), 44100)
    write_audio(lib / "silence.wav", np.zeros(44100), 44100)
    write_audio(lib / "gone.wav", tone("wind", 1.0, seed=3), 44100)
    sidecar = lib / "meta.csv"
    sidecar.write_text("path,caption\nbell.wav,a small bell rings twice\n")
    cfg = make_config(lib, metadata=sidecar)

    run_stages(spark, cfg, ["catalog"], command="test", run_id="r1")
    (lib / "gone.wav").unlink()  # deleted between the stages, as happens on a live library
    run_stages(spark, cfg, ["features"], command="test", run_id="r1")

    rows = features_by_name(spark, cfg)
    assert set(rows) == {"bell.wav", "bell copy.flac", "sweep.ogg", "silence.wav"}
    bell, copy = rows["bell.wav"], rows["bell copy.flac"]
    assert bell.pcm_sha256 == copy.pcm_sha256 and bell.content_sha256 != copy.content_sha256
    assert bell.hashes == copy.hashes and len(bell.hashes) == len(bell.times) > 10
    assert rows["sweep.ogg"].pcm_sha256 != bell.pcm_sha256
    assert {s.family for s in bell.segments} == {"sparse", "triplet"}  # 2 s of rich sound: no dense family
    assert len(bell.triplet_hashes) == len(bell.triplet_points) > 10
    assert all(len(s.signature) == cfg.features.num_perm * 4 for s in bell.segments)
    assert bell.caption_signature is not None and copy.caption_signature is None
    logmel_rows = len(bell.logmel) / bell.logmel_bands
    assert logmel_rows == pytest.approx(2.0 / bell.logmel_hop_s, abs=2)
    silent = rows["silence.wav"]
    assert silent.flag == "silent" and silent.segments == [] and silent.hashes == []
    errors = tables.read(spark, cfg.warehouse.path, "errors").where("stage = 'features'").collect()
    assert [(e.path.endswith("gone.wav"), e.error_class) for e in errors] == [(True, "missing_file")]


def test_features_are_computed_once_per_file_version(spark, make_config, tmp_path):
    lib = tmp_path / "library"
    write_audio(lib / "a.wav", tone("bell", 1.0, seed=1), 44100)
    write_audio(lib / "b.wav", tone("beeps", 1.0, seed=2), 44100)
    cfg = make_config(lib)
    run_stages(spark, cfg, ["catalog", "features"], command="test", run_id="first")
    before = features_by_name(spark, cfg)

    write_audio(lib / "b.wav", tone("beeps", 1.0, seed=9), 44100)
    run_stages(spark, cfg, ["catalog", "features"], command="test", run_id="second")

    after = features_by_name(spark, cfg)
    runs = {r.run_id: {s.stage: s for s in r.stages} for r in tables.read(spark, cfg.warehouse.path, "runs").collect()}
    assert runs["first"]["features"].counters["files_to_fingerprint"] == 2
    assert runs["second"]["features"].counters["files_to_fingerprint"] == 1  # only the changed file again
    assert runs["first"]["features"].counters["files_fingerprinted"] == 2
    assert runs["second"]["features"].counters["files_fingerprinted"] == 1
    assert after["a.wav"] == before["a.wav"]
    assert after["b.wav"].pcm_sha256 != before["b.wav"].pcm_sha256
    assert tables.read(spark, cfg.warehouse.path, "features").count() == 2


def test_a_warehouse_fingerprinted_before_triplets_is_fingerprinted_again(spark, make_config, tmp_path):
    lib = tmp_path / "library"
    for name, seed in (("a.wav", 1), ("b.wav", 2)):
        write_audio(lib / name, tone("footsteps", 2.0, seed=seed), 44100)
    cfg = make_config(lib)
    warehouse = cfg.warehouse.path
    run_stages(spark, cfg, ["catalog", "features", "candidates"], command="test", run_id="new")
    assert tables.read(spark, warehouse, "band_index").where("source = 'triplet'").count() == 0  # not by default
    # What an older leakfree left: features without triplet columns.
    old = tables.read(spark, warehouse, "features").drop("triplet_hashes", "triplet_points")
    tables.overwrite(old.localCheckpoint(), warehouse, "features")

    banding_triplets = cfg.replace(dedup=dataclasses.replace(cfg.dedup, triplet_threshold=0.15))
    run_stages(spark, banding_triplets, ["features", "candidates"], command="test", run_id="upgrade")

    features = tables.read(spark, warehouse, "features").collect()
    assert len(features) == 2 and all(len(f.triplet_hashes) > 10 for f in features)
    index = tables.read(spark, warehouse, "band_index")
    assert index.where("source = 'triplet'").select("file_id").distinct().count() == 2
    assert index.where("source = 'exact_bytes'").count() == 2  # re-banded once, not twice
