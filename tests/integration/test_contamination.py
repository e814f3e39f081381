"""Contamination checks against reference sets, on real audio through Spark and Delta."""

from __future__ import annotations

import csv
import dataclasses
import json
import shutil

import numpy as np
import pytest

from leakfree import tables
from leakfree.demo import MP3_128K, add_noise, engine, write_audio
from leakfree.errors import LeakfreeError
from leakfree.export import export_contaminated, export_splits
from leakfree.pipeline import run_stages
from leakfree.report import build_report
from tests.integration.test_dedup import RATE, sound

pytestmark = pytest.mark.integration
LIBRARY_STAGES = ["catalog", "features", "candidates", "pairs", "groups", "splits"]


def write_library(lib):
    a = sound(1, 3.0)
    write_audio(lib / "a.wav", a, RATE)
    write_audio(lib / "a_noisy.mp3", add_noise(a, 20, np.random.default_rng(3)), RATE, **MP3_128K)
    write_audio(lib / "b.wav", sound(2, 4.0), RATE)
    write_audio(lib / "c.wav", sound(4, 2.0), RATE)
    write_audio(lib / "d.wav", engine(np.random.default_rng(5), 2.0, RATE), RATE)
    (lib / "meta.csv").write_text("path,source_id\nd.wav,fs-123\nc.wav,fs-9\n")
    return a


def with_references(cfg, references, lists=None, metadata=None, key_column="", forget=()):
    return cfg.replace(
        contamination=dataclasses.replace(
            cfg.contamination,
            references={k: (str(v),) for k, v in references.items()},
            lists={k: str(v) for k, v in (lists or {}).items()},
            metadata={k: str(v) for k, v in (metadata or {}).items()},
            key_column=key_column,
            forget=tuple(forget),
        )
    )


def found(spark, cfg, reference):
    """{(reference file name, library file name): methods} of one reference set."""
    rows = tables.read(spark, cfg.warehouse.path, "contamination").where(f"reference = '{reference}'").collect()
    pairs: dict[tuple[str, str], set[str]] = {}
    for r in rows:
        pairs.setdefault((r.reference_path.rsplit("/", 1)[-1], r.library_path.rsplit("/", 1)[-1]), set()).add(r.method)
    return pairs


def counters(spark, cfg, run_id):
    run = tables.read(spark, cfg.warehouse.path, "runs").where(f"run_id = '{run_id}'").first()
    return next(s.counters for s in run.stages if s.stage == "contamination")


def splits_of(spark, cfg):
    return sorted(
        (r.file_id, r.split, r.updated_run) for r in tables.read(spark, cfg.warehouse.path, "splits").collect()
    )


@pytest.mark.contamination
def test_an_evaluation_list_is_checked_from_the_audio_and_no_split_changes(spark, make_config, tmp_path):
    lib, ref = tmp_path / "library", tmp_path / "eval"
    write_library(lib)
    b = sound(2, 4.0)
    ref.mkdir()
    shutil.copy(lib / "a.wav", ref / "a_ref.wav")  # the same bytes
    write_audio(ref / "b_part.wav", b[RATE : int(2.5 * RATE)], RATE)  # an excerpt of b.wav
    write_audio(ref / "x.wav", sound(7, 2.0), RATE)  # in no library file; shares d.wav's source id
    write_audio(ref / "unlisted.wav", sound(4, 2.0), RATE)  # a copy of c.wav, not on the list
    (ref / "broken.wav").write_bytes(b"RIFF\x00\x00\x00\x00WAVEnot really")
    (tmp_path / "eval.txt").write_text("# the evaluation list\na_ref.wav\nb_part\nx.wav\nbroken.wav\nmissing.wav\n")
    (ref / "meta.csv").write_text("path,source_id\nx.wav,fs-123\n")
    cfg = make_config(lib, metadata=lib / "meta.csv")
    run_stages(spark, cfg, LIBRARY_STAGES, command="test", run_id="library")
    before = splits_of(spark, cfg)

    cfg = with_references(
        cfg,
        {"eval": ref},
        lists={"eval": tmp_path / "eval.txt"},
        metadata={"eval": ref / "meta.csv"},
        key_column="source_id",
    )
    run_stages(spark, cfg, ["contamination"], command="test", run_id="check", need_library=False)

    matches = found(spark, cfg, "eval")
    assert set(matches) == {
        ("a_ref.wav", "a.wav"),
        ("a_ref.wav", "a_noisy.mp3"),
        ("b_part.wav", "b.wav"),
        ("x.wav", "d.wav"),
    }
    assert matches[("a_ref.wav", "a.wav")] == {"exact_bytes"}
    assert matches[("b_part.wav", "b.wav")] == {"audio"}
    assert matches[("x.wav", "d.wav")] == {"metadata_key"}  # the shared source id alone
    warehouse = cfg.warehouse.path
    catalogued = tables.read(spark, warehouse, "reference_catalog").where("NOT retired").collect()
    assert sorted(r.rel_path for r in catalogued) == ["a_ref.wav", "b_part.wav", "x.wav"]
    errors = {
        (r.path.rsplit("/", 1)[-1], r.error_class)
        for r in tables.read(spark, warehouse, "errors").where("stage = 'contamination'").collect()
    }
    assert ("missing.wav", "reference_list_orphan") in errors and len(errors) == 2
    assert "broken.wav" in {name for name, _ in errors}
    summary = tables.read(spark, warehouse, "contamination_summary").where("run_id = 'check'").first()
    assert (summary.reference_files, summary.list_entries, summary.unmatched_entries) == (3, 5, 1)
    assert (summary.library_files, summary.library_files_checked, summary.contaminated_files) == (5, 5, 4)
    assert summary.share == pytest.approx(4 / 5)

    # Reference files are never split or grouped; the library's splits did not move.
    assert splits_of(spark, cfg) == before
    reference_ids = {r.file_id for r in catalogued}
    for name in ("splits", "groups", "catalog", "features"):
        assert not reference_ids & {r.file_id for r in tables.read(spark, warehouse, name).collect()}

    written = export_contaminated(
        spark, warehouse=warehouse, out=str(tmp_path / "out"), fmt="txt", relative=True, references=["eval"]
    )
    assert sorted(written[0].read_text().split()) == ["a.wav", "a_noisy.mp3", "b.wav", "d.wav"]
    written = export_contaminated(
        spark, warehouse=warehouse, out=str(tmp_path / "out"), fmt="jsonl", relative=True, references=["eval"]
    )
    records = [json.loads(line) for line in written[0].read_text().splitlines()]
    assert {r["path"]: r["methods"] for r in records}["d.wav"] == ["metadata_key"]
    (listed,) = export_contaminated(
        spark, warehouse=warehouse, out=str(tmp_path / "out"), fmt="csv", relative=True, references=["eval"]
    )
    rows = {r["path"]: r for r in csv.DictReader(listed.open(newline=""))}
    assert rows["b.wav"]["reference_paths"] == str(ref / "b_part.wav") and rows["b.wav"]["methods"] == "audio"
    with pytest.raises(LeakfreeError, match="no reference set nope"):
        export_contaminated(
            spark, warehouse=warehouse, out=str(tmp_path / "out"), fmt="txt", relative=True, references=["nope"]
        )
    page = build_report(
        spark, settings=cfg.report, caption_column=cfg.features.caption_column, warehouse=warehouse, run_id="check"
    ).read_text()
    section = page[page.index("<h2>Contamination</h2>") :]
    assert str(ref / "b_part.wav") in section and str(lib / "b.wav") in section
    assert section.count("<audio controls") >= 2 * 4  # a player for both files of every match shown
    (kept,) = export_splits(
        spark, warehouse=warehouse, out=str(tmp_path / "clean"), fmt="csv", relative=True, exclude_contaminated=True
    )
    assert [line.split(",")[0] for line in kept.read_text().splitlines()[1:]] == ["c.wav"]


@pytest.mark.nights
def test_a_night_checks_only_new_library_files_and_a_later_reference_only_itself(spark, make_config, tmp_path):
    lib, ref, later = tmp_path / "library", tmp_path / "eval", tmp_path / "later"
    a = write_library(lib)
    write_audio(ref / "a_ref.flac", a, RATE)
    cfg = with_references(make_config(lib), {"eval": ref})
    run_stages(spark, cfg, [*LIBRARY_STAGES, "contamination"], command="test", run_id="first")
    assert set(found(spark, cfg, "eval")) == {("a_ref.flac", "a.wav"), ("a_ref.flac", "a_noisy.mp3")}

    # A night adds two library files; the reference set is remembered, not declared again.
    write_audio(lib / "a_quiet.wav", 0.3 * a, RATE)
    write_audio(lib / "e.wav", sound(8, 2.0), RATE)
    cfg = with_references(cfg, {})
    run_stages(spark, cfg, [*LIBRARY_STAGES, "contamination"], command="test", run_id="second")
    second = counters(spark, cfg, "second")
    assert (second["reference_files_checked"], second["library_files_checked"]) == (0, 2)
    assert ("a_ref.flac", "a_quiet.wav") in found(spark, cfg, "eval")

    # A set added later: only it is checked (against the whole library), and the sets overlap.
    # Checked at a correlation floor no edited copy reaches, it keeps only the exact copies.
    write_audio(later / "d_ref.wav", engine(np.random.default_rng(5), 2.0, RATE), RATE)
    write_audio(later / "a_again.wav", a, RATE)
    cfg = with_references(cfg, {"later": later})
    cfg = cfg.replace(contamination=dataclasses.replace(cfg.contamination, min_correlation=1.0))
    run_stages(spark, cfg, ["contamination"], command="test", run_id="third", need_library=False)
    third = counters(spark, cfg, "third")
    assert (third["reference_files_checked"], third["library_files_checked"]) == (2, 7)
    summaries = {
        r.reference: r
        for r in tables.read(spark, cfg.warehouse.path, "contamination_summary").where("run_id = 'third'").collect()
    }
    assert summaries["eval"].library_files_checked == 0 and summaries["later"].library_files_checked == 7
    later_found = found(spark, cfg, "later")
    assert ("d_ref.wav", "d.wav") in later_found and ("a_again.wav", "a.wav") in later_found
    assert ("a_again.wav", "a_noisy.mp3") not in later_found and ("a_ref.flac", "a_noisy.mp3") in found(
        spark, cfg, "eval"
    )
    assert "audio" not in set().union(*later_found.values())
    eval_runs = {
        r.run_id for r in tables.read(spark, cfg.warehouse.path, "contamination").where("reference = 'eval'").collect()
    }
    assert eval_runs == {"first", "second"}
    overlap = tables.read(spark, cfg.warehouse.path, "reference_overlap").collect()
    assert {(r.reference_a, r.reference_b) for r in overlap} <= {("eval", "later"), ("later", "eval")} and overlap

    # Forgotten, a set's findings go; the other set's stay.
    cfg = with_references(cfg, {}, forget=["later"])
    run_stages(spark, cfg, ["contamination"], command="test", run_id="fourth", need_library=False)
    assert not found(spark, cfg, "later") and found(spark, cfg, "eval")
    assert {r.reference for r in tables.read(spark, cfg.warehouse.path, "reference_sets").collect()} == {"eval"}
