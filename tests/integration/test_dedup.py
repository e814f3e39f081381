"""Candidates, verified pairs and leak groups on real audio, through Spark and Delta."""

from __future__ import annotations

import dataclasses
import shutil

import numpy as np
import pytest
import soundfile as sf
import soxr

from leakfree import tables
from leakfree.demo import MP3_128K, add_noise, beeps, bell, engine, footsteps, write_audio
from leakfree.edges import AUDIO_FAMILIES
from leakfree.pipeline import run_stages
from tests.conftest import library_config

pytestmark = pytest.mark.integration
RATE = 44100


def sound(seed: int, seconds: float) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return 0.5 * bell(rng, seconds, RATE) + 0.4 * footsteps(rng, seconds, RATE) + 0.2 * beeps(rng, seconds, RATE)


@pytest.fixture(scope="module")
def library(tmp_path_factory):
    lib = tmp_path_factory.mktemp("dedup") / "library"
    a, b = sound(1, 3.0), sound(2, 4.0)
    pcm = (a * 32767).astype(np.int16)
    lib.mkdir()
    sf.write(lib / "a.wav", pcm, RATE)
    sf.write(lib / "a_copy.wav", pcm, RATE)  # byte-identical
    sf.write(lib / "a.flac", pcm, RATE)  # the same samples in another container
    write_audio(lib / "a_noisy.mp3", add_noise(a, 20, np.random.default_rng(3)), RATE, **MP3_128K)
    write_audio(lib / "b.wav", b, RATE)
    write_audio(lib / "b_excerpt.wav", b[RATE : int(2.5 * RATE)], RATE)
    # 8 % slower and 8 % faster: each near b, and 17 % apart, past the speeds searched.
    for name, factor in (("b_slow.wav", 0.92), ("b_fast.wav", 1.08)):
        write_audio(lib / name, soxr.resample(b, RATE * factor, RATE), RATE)
    write_audio(lib / "c.wav", sound(4, 2.0), RATE)
    write_audio(lib / "d.wav", engine(np.random.default_rng(5), 2.0, RATE), RATE)
    write_audio(lib / "e.wav", sound(6, 2.5), RATE)
    write_audio(lib / "silent1.wav", np.zeros(RATE), RATE)
    write_audio(lib / "silent2.wav", np.zeros(2 * RATE), RATE)
    (lib / "meta.csv").write_text(
        "path,caption,setup\n"
        "a.wav,rain on a corrugated tin roof in Cornwall,\n"
        "b.wav,church bell in the village square,\n"
        "c.wav,footsteps on gravel,cd-12\n"
        "d.wav,an idling engine,cd-12\n"
        'e.wav,"Rain, on a corrugated tin roof in Cornwall!",\n'
        "silent1.wav,click,\n"  # a generic caption: says nothing about the recording
        "silent2.wav,Click,\n"
    )
    return lib


@pytest.fixture(scope="module")
def joined(spark, test_config, library, tmp_path_factory):
    """The library run through groups once, for the tests that only read what it made."""
    cfg = library_config(
        test_config, library, metadata=library / "meta.csv", warehouse=tmp_path_factory.mktemp("joined") / "warehouse"
    )
    run_stages(spark, cfg, ["catalog", "features", "candidates", "pairs", "groups"], command="test")
    return cfg


def name_of(spark, cfg):
    return {r.file_id: r.rel_path for r in tables.read(spark, cfg.warehouse.path, "catalog").collect()}


def test_pairs_and_groups(spark, joined):
    cfg = joined
    names = name_of(spark, cfg)
    pairs = {
        (frozenset((names[p.file_a], names[p.file_b])), p.method): p
        for p in tables.read(spark, cfg.warehouse.path, "pairs").collect()
    }
    methods = {(tuple(sorted(k)), m) for k, m in pairs}
    assert (("a.wav", "a_copy.wav"), "exact_bytes") in methods
    assert (("a.flac", "a.wav"), "exact_pcm") in methods
    assert (("a.wav", "a_noisy.mp3"), "audio") in methods
    assert (("b.wav", "b_excerpt.wav"), "audio") in methods
    assert (("a.wav", "e.wav"), "caption") in methods
    duplicates = {k for k, m in methods if m != "caption"}
    assert not any("silent" in name for pair in duplicates for name in pair)
    assert not any("c.wav" in pair or "d.wav" in pair or "e.wav" in pair for pair in duplicates)
    excerpt = pairs[(frozenset(("b.wav", "b_excerpt.wav")), "audio")]
    assert abs(excerpt.offset_s) == pytest.approx(1.0, abs=0.05)
    assert excerpt.containment > 0.3 and excerpt.aligned_hashes > 50 and excerpt.correlation >= 0.7

    groups = {names[g.file_id]: g for g in tables.read(spark, cfg.warehouse.path, "groups").collect()}
    ids = {n: i for i, n in names.items()}
    a_group = {"a.wav", "a_copy.wav", "a.flac", "a_noisy.mp3", "e.wav"}
    assert {n for n, g in groups.items() if g.group_id == groups["a.wav"].group_id} == a_group
    assert groups["a.wav"].group_id == min(ids[n] for n in a_group)
    assert groups["a.wav"].group_size == 5
    assert set(groups["a.wav"].joined_by) == {"exact_bytes", "exact_pcm", "audio", "caption"}
    assert groups["c.wav"].group_id == groups["d.wav"].group_id and groups["c.wav"].joined_by == ["setup:setup"]
    assert groups["silent1.wav"].group_id != groups["silent2.wav"].group_id
    assert groups["silent1.wav"].group_size == 1 and groups["silent1.wav"].joined_by == []

    links = {
        (frozenset((names[r.file_a], names[r.file_b])), r.relation): r
        for r in tables.read(spark, cfg.warehouse.path, "links").collect()
    }
    specific = links[(frozenset(("a.wav", "e.wav")), "caption")]
    generic = links[(frozenset(("silent1.wav", "silent2.wav")), "caption")]
    assert specific.joins and specific.kind == "caption"
    assert not generic.joins and generic.kind is None and "needed" in generic.evidence
    assert links[(frozenset(("c.wav", "d.wav")), "setup:setup")].joins
    relations = {r.relation: r for r in tables.read(spark, cfg.warehouse.path, "relations").collect()}
    assert relations["caption"].links == 2 and relations["caption"].joining == 1
    assert relations["setup:setup"].largest_files == 2 and relations["setup:setup"].coarse  # 2 of 11 files


def test_two_copies_edited_apart_are_joined_through_their_original(spark, joined):
    names = name_of(spark, joined)
    edges = {
        frozenset((names[p.file_a], names[p.file_b])): p
        for p in tables.read(spark, joined.warehouse.path, "pairs").where("method = 'audio'").collect()
    }
    for copy in ("b_slow.wav", "b_fast.wav"):
        assert edges[frozenset(("b.wav", copy))].via_file is None  # proposed and found on their own
    apart = edges[frozenset(("b_slow.wav", "b_fast.wav"))]
    # b.wav or its excerpt: both are copies of each end; the first reading that holds names it.
    pivot = names[apart.via_file]
    assert pivot in ("b.wav", "b_excerpt.wav")
    assert all(edges[frozenset((pivot, copy))].via_file is None for copy in ("b_slow.wav", "b_fast.wav"))
    # Its reading is what the pivot's two edges compose to: as near the edit as they are each.
    ids = {n: i for i, n in names.items()}

    def from_pivot(name: str, column: str) -> float:
        edge = edges[frozenset((pivot, name))]
        value = getattr(edge, column)
        return value if edge.file_a == ids[pivot] else 1 / value

    ends = names[apart.file_a], names[apart.file_b]
    for column in ("freq_scale", "time_scale"):
        composed = from_pivot(ends[1], column) / from_pivot(ends[0], column)
        assert getattr(apart, column) == pytest.approx(composed, rel=2e-3)
    ratio = 1.08 / 0.92 if ends[0] == "b_slow.wav" else 0.92 / 1.08
    assert apart.freq_scale == pytest.approx(ratio, rel=0.03)
    assert apart.time_scale == pytest.approx(1 / ratio, rel=0.03)
    candidates = {
        frozenset((names[c.file_a], names[c.file_b])): c
        for c in tables.read(spark, joined.warehouse.path, "candidates").collect()
    }
    assert "through" in candidates[frozenset(("b_slow.wav", "b_fast.wav"))].sources
    assert all(c.verified for c in candidates.values())


@pytest.mark.faults
@pytest.mark.parametrize("crash", ["untried", "_verify"])
def test_a_pairs_stage_that_dies_around_its_pivots_pairs_resumes_to_the_same_tables(
    spark, joined, make_config, library, monkeypatch, crash
):
    """Killed after the candidates' edges are written but before it proposes pairs through
    pivots, or after it proposed them but before it verified them: the next run's pairs
    stage ends with the undisturbed run's edges and candidates."""
    from leakfree import pairs

    cfg = make_config(library, metadata=library / "meta.csv")
    run_stages(spark, cfg, ["catalog", "features", "candidates"], command="test")
    real = getattr(pairs, crash)
    calls = []

    def dies_on_the_pivots_pairs(*args, **kwargs):
        calls.append(args)
        if crash == "untried" or len(calls) == 2:
            raise KeyboardInterrupt("killed")
        return real(*args, **kwargs)

    monkeypatch.setattr(pairs, crash, dies_on_the_pivots_pairs)
    with pytest.raises(KeyboardInterrupt):
        run_stages(spark, cfg, ["pairs"], command="test")
    monkeypatch.setattr(pairs, crash, real)
    run_stages(spark, cfg, ["pairs"], command="test")

    def tables_of(config) -> tuple[list, list]:
        names = name_of(spark, config)
        edges = tables.read(spark, config.warehouse.path, "pairs").collect()
        candidates = tables.read(spark, config.warehouse.path, "candidates").collect()
        return (
            sorted(
                (names[e.file_a], names[e.file_b], e.method, e.via_file is None, round(e.correlation or 0, 6))
                for e in edges
            ),
            sorted((names[c.file_a], names[c.file_b], tuple(c.sources), c.verified) for c in candidates),
        )

    assert tables_of(cfg) == tables_of(joined)


def test_caption_edges_can_be_demoted_to_audit(spark, make_config, library):
    cfg = make_config(library, metadata=library / "meta.csv")
    cfg = cfg.replace(groups=dataclasses.replace(cfg.groups, roles={"caption": "audit"}))
    run_stages(spark, cfg, ["catalog", "features", "candidates", "pairs", "groups"], command="test")
    names = name_of(spark, cfg)
    groups = {names[g.file_id]: g.group_id for g in tables.read(spark, cfg.warehouse.path, "groups").collect()}
    assert groups["e.wav"] != groups["a.wav"]
    audited = tables.read(spark, cfg.warehouse.path, "links").where("relation = 'caption' AND kind = 'caption'")
    assert [(names[r.file_a], names[r.file_b], r.joins) for r in audited.collect()] in (
        [("a.wav", "e.wav", False)],
        [("e.wav", "a.wav", False)],
    )


def test_an_oversized_bucket_becomes_a_reported_star(spark, make_config, tmp_path):
    lib = tmp_path / "jingles"
    jingle = sound(9, 1.5)
    for i in range(6):  # the same jingle at slightly different gains: one LSH bucket
        write_audio(lib / f"j{i}.wav", jingle * (0.5 + 0.05 * i), RATE)
    cfg = make_config(lib)
    cfg = cfg.replace(dedup=dataclasses.replace(cfg.dedup, max_bucket=3))
    run_stages(spark, cfg, ["catalog", "features", "candidates", "pairs", "groups"], command="test")
    reported = tables.read(spark, cfg.warehouse.path, "oversized_buckets").collect()
    assert reported and all(r.size == 6 for r in reported)
    candidates = tables.read(spark, cfg.warehouse.path, "candidates").collect()
    hub = reported[0].hub
    audio_only = [c for c in candidates if set(c.sources) & set(AUDIO_FAMILIES)]
    assert len(audio_only) == 5 and all(c.file_a == hub for c in audio_only)
    assert tables.read(spark, cfg.warehouse.path, "groups").select("group_id").distinct().count() == 1
    shutil.rmtree(lib)


def test_a_poisoned_features_row_costs_its_pairs_not_the_stage(spark, make_config, library, tmp_path):
    from delta.tables import DeltaTable

    cfg = make_config(library, metadata=library / "meta.csv")
    run_stages(spark, cfg, ["catalog", "features", "candidates"], command="test", run_id="poison")
    names = name_of(spark, cfg)
    poisoned = next(i for i, n in names.items() if n == "a_noisy.mp3")
    # A log-mel blob whose length does not divide by its band count.
    DeltaTable.forPath(spark, tables.table_path(cfg.warehouse.path, "features")).update(
        f"file_id = {poisoned}", {"logmel": "substring(logmel, 1, 7)"}
    )
    run_stages(spark, cfg, ["pairs"], command="test", run_id="poison")

    errors = tables.read(spark, cfg.warehouse.path, "errors").where("stage = 'pairs'").collect()
    assert errors and {e.error_class for e in errors} == {"unverifiable"}
    assert all(poisoned in (e.file_id, int(e.message.split(":")[0].split()[-1])) for e in errors)
    edges = {
        tuple(sorted((names[r.file_a], names[r.file_b])))
        for r in tables.read(spark, cfg.warehouse.path, "pairs").where("method = 'audio'").collect()
    }
    assert ("b.wav", "b_excerpt.wav") in edges  # verified beside the poisoned pairs
    run = tables.read(spark, cfg.warehouse.path, "runs").where("run_id = 'poison'").first()
    assert run.status == "succeeded"
    unverified = tables.read(spark, cfg.warehouse.path, "candidates").where("NOT verified").count()
    assert unverified == 0


def test_explain_says_why_files_are_joined_in_words(spark, joined, library):
    import json
    import os
    import subprocess
    import sys

    from leakfree.explain import explain

    warehouse = joined.warehouse.path

    copy = explain(spark, warehouse, "a_copy.wav")
    assert copy.group_size == 5 and any(link.describe(copy.file_id) == "the same bytes as a.wav" for link in copy.links)
    assert copy.canonical_path in ("a.wav", "a_copy.wav", "a.flac")  # lossless, 44.1 kHz mono: the oldest
    assert f"kept copy of its duplicates: {copy.canonical_path}" in copy.text()
    noisy = explain(spark, warehouse, str(library / "a_noisy.mp3")).text()
    assert "matches a" in noisy and "correlation" in noisy and "aligned landmarks" in noisy

    # e.wav reaches the noisy copy only through a.wav: a caption, then audio.
    through = explain(spark, warehouse, "e.wav", "a_noisy.mp3")
    assert [link.relation for link in through.chain] == ["caption", "audio"]
    assert "a caption like that of a.wav" in through.text() and "then matches a_noisy.mp3" in through.text()
    setup = explain(spark, warehouse, "c.wav", "d.wav")
    assert [link.relation for link in setup.chain] == ["setup:setup"] and "same setup key" in setup.text()
    apart = explain(spark, warehouse, "silent1.wav", "silent2.wav")
    assert apart.chain is None and "not joined" in apart.text()
    assert "(does not join)" in apart.text()  # their generic caption link is shown, and said not to join

    def cli(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, "-m", "leakfree.cli", "explain", *args, "--warehouse", warehouse],
            capture_output=True,
            text=True,
            env={**os.environ, "PYSPARK_PYTHON": sys.executable},
            timeout=600,
        )

    shown = cli("e.wav", "a_noisy.mp3", "--format", "json", "--set", "spark.progress_bar=false")
    assert shown.returncode == 0, shown.stderr
    assert [link["relation"] for link in json.loads(shown.stdout)["chain"]] == ["caption", "audio"]
    missing = cli("nothing.wav")
    assert missing.returncode == 2 and "not a catalogued file" in missing.stderr


@pytest.mark.nights
def test_window_shapes_find_speed_pitch_and_band_changed_copies_added_on_a_later_night(spark, make_config, tmp_path):
    import librosa
    import scipy.signal
    import soxr

    lib = tmp_path / "night"
    original = sound(11, 3.0)
    write_audio(lib / "original.wav", original, RATE)
    write_audio(lib / "other.wav", sound(12, 3.0), RATE)
    write_audio(lib / "engine.wav", engine(np.random.default_rng(13), 3.0, RATE), RATE)
    cfg = make_config(lib)
    stages = ["catalog", "features", "candidates", "pairs"]
    # The first night runs as a warehouse indexed before the mid-band view existed.
    without_mid = dataclasses.replace(cfg.dedup.mid_shapes, neighbors=0)
    run_stages(
        spark,
        cfg.replace(dedup=dataclasses.replace(cfg.dedup, mid_shapes=without_mid)),
        stages,
        command="test",
        run_id="first",
    )
    # 6 % faster (pitch and tempo together), and a semitone up at the same tempo.
    write_audio(lib / "faster.wav", soxr.resample(original, RATE * 1.06, RATE), RATE)
    write_audio(lib / "higher.wav", librosa.effects.pitch_shift(original, sr=RATE, n_steps=1), RATE)
    # Band-passed to 800-2500 Hz: the mid-band view's (its whole-band shape moves away).
    band = scipy.signal.butter(8, [800, 2500], "bandpass", fs=RATE, output="sos")
    write_audio(lib / "banded.wav", scipy.signal.sosfilt(band, original), RATE)
    run_stages(spark, cfg, stages, command="test", run_id="second")
    run_stages(spark, cfg, stages, command="test", run_id="third")

    names = name_of(spark, cfg)
    sources = {
        frozenset((names[c.file_a], names[c.file_b])): set(c.sources)
        for c in tables.read(spark, cfg.warehouse.path, "candidates").collect()
    }
    edges = {
        frozenset((names[p.file_a], names[p.file_b])): p
        for p in tables.read(spark, cfg.warehouse.path, "pairs").where("method = 'audio'").collect()
    }
    for copy in ("faster.wav", "higher.wav"):
        assert "shape" in sources[frozenset(("original.wav", copy))], sources
        assert frozenset(("original.wav", copy)) in edges
    faster = edges[frozenset(("original.wav", "faster.wav"))]
    assert faster.time_scale != 1.0 or faster.freq_scale != 1.0  # the factor it matched at is kept
    assert "mid_shape" in sources[frozenset(("original.wav", "banded.wav"))], sources
    assert frozenset(("original.wav", "banded.wav")) in edges
    assert not any("engine.wav" in pair for pair in edges)
    counters = {
        r.run_id: next(s.counters for s in r.stages if s.stage == "candidates")
        for r in tables.read(spark, cfg.warehouse.path, "runs").collect()
    }
    # Every file shaped once in each view: the mid-band view shaped the first night's files
    # on the second night, with the new ones, and the third shaped nothing again.
    for view, counter, shaped_per_night in (
        ("shape_index", "files_shaped", (3, 3, 0)),
        ("mid_shape_index", "files_mid_shaped", (0, 6, 0)),
    ):
        shaped = tables.read(spark, cfg.warehouse.path, view).collect()
        assert sorted(names[r.file_id] for r in shaped) == sorted(names.values())  # one row per file
        assert tuple(counters[night].get(counter, 0) for night in ("first", "second", "third")) == shaped_per_night
