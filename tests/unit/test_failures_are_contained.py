"""A bug or a crash in the per-file code costs that file, never the batch (and so never the
Spark task or the job): it comes back as an error row."""

from __future__ import annotations

from functools import partial

import pyarrow as pa

from leakfree import catalog, features
from leakfree.catalog import PROBE_SCHEMA, ProbeLimits
from leakfree.config import Config
from leakfree.demo import write_audio
from leakfree.features import RESULT_SCHEMA, Extractor, extract_work
from leakfree.rowmap import guarded_batches
from tests.conftest import tone


def test_an_exception_in_fingerprinting_is_one_error_row(tmp_path, monkeypatch):
    good, bad = tmp_path / "good.wav", tmp_path / "bad.wav"
    write_audio(good, tone("bell", 1.0, seed=1), 44100)
    write_audio(bad, tone("bell", 2.0, seed=2), 44100)
    real = features.fingerprint

    def flaky(x, rate, params, mel):
        if len(x) > 1.5 * rate:  # only the longer file trips the "bug"
            raise FloatingPointError("a numeric bug")
        return real(x, rate, params, mel)

    monkeypatch.setattr(features, "fingerprint", flaky)
    batch = pa.RecordBatch.from_pylist(
        [
            {"file_id": 1, "path": str(good), "content_sha256": "a", "caption": None},
            {"file_id": 2, "path": str(bad), "content_sha256": "b", "caption": None},
        ]
    )
    make_work = partial(extract_work, Config.from_toml().features)
    (out,) = list(guarded_batches(iter([batch]), make_work=make_work, schema=RESULT_SCHEMA, error_class="corrupt"))
    rows = {r["file_id"]: r for r in out.to_pylist()}
    assert rows[1]["error_class"] is None and rows[1]["pcm_sha256"]
    assert rows[2]["error_class"] == "corrupt" and "FloatingPointError: a numeric bug" in rows[2]["message"]


def test_an_exception_while_probing_is_one_error_row(tmp_path, monkeypatch):
    path = tmp_path / "x.wav"
    write_audio(path, tone("bell", 0.5), 44100)

    def broken(*args, **kwargs):
        raise MemoryError("decoder ran out of memory")

    monkeypatch.setattr(catalog, "read_info", broken)
    good = tmp_path / "gone.wav"  # a missing file is the probe's own verdict, not the guard's
    batch = pa.RecordBatch.from_pylist(
        [{"path": str(path), "size": path.stat().st_size}, {"path": str(good), "size": 10}]
    )
    make_work = partial(catalog._probe_work, ProbeLimits(1 << 20, 768000, 64))
    (out,) = list(guarded_batches(iter([batch]), make_work=make_work, schema=PROBE_SCHEMA, error_class="corrupt"))
    rows = {r["path"]: r for r in out.to_pylist()}
    assert rows[str(path)]["error_class"] == "corrupt" and "MemoryError" in rows[str(path)]["message"]
    assert rows[str(path)]["content_sha256"] is None
    assert rows[str(good)]["error_class"] == "missing_file"


def test_extractor_reports_missing_files_by_class(tmp_path):
    row = Extractor(Config.from_toml().features).extract(str(tmp_path / "gone.wav"), None)
    assert row["error_class"] == "missing_file"
