"""A bug or a crash in the per-file code costs that file, never the batch (and so never the
Spark task or the job): it comes back as an error row."""

from __future__ import annotations

from functools import partial

import numpy as np
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


def test_rows_bring_lists_of_numbers_as_arrays_and_the_rest_as_python_values():
    from leakfree.rowmap import batch_rows

    hashes = pa.array([[5, -1, 7], None, [], [9]], type=pa.list_(pa.int32()))
    batch = pa.RecordBatch.from_arrays(
        [
            pa.array([1, 2, 3, 4]),
            hashes,
            pa.array([["audio"], ["caption", "audio"], None, []]),
            pa.array([b"x", None, b"", b"yz"]),
        ],
        names=["file_id", "hashes", "sources", "logmel"],
    )
    rows = batch_rows(batch.slice(1))  # a slice keeps its own rows' values
    assert [r["file_id"] for r in rows] == [2, 3, 4]
    assert rows[0]["hashes"] is None
    assert [r["hashes"].tolist() for r in rows[1:]] == [[], [9]]
    assert [r["sources"] for r in rows] == [["caption", "audio"], None, []]
    assert [r["logmel"] for r in rows] == [None, b"", b"yz"]
    whole = batch_rows(batch)
    assert whole[0]["hashes"].dtype == np.int32 and whole[0]["hashes"].tolist() == [5, -1, 7]
