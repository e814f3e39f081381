"""The catalog stage end to end: real files, a real SparkSession, real Delta tables."""

from __future__ import annotations

import hashlib
import os
import shutil

import pytest
import soundfile as sf
from delta.tables import DeltaTable

from leakfree import tables
from leakfree.pipeline import run_stages
from tests.conftest import running_as_root

pytestmark = pytest.mark.integration


def catalog_rows(spark, cfg):
    return {r.path: r for r in tables.read(spark, cfg.warehouse.path, "catalog").collect()}


def error_rows(spark, cfg, run_id):
    rows = tables.read(spark, cfg.warehouse.path, "errors").where(f"run_id = '{run_id}'").collect()
    return {r.path: r for r in rows}


def test_catalog_reads_wav_flac_ogg_mp3(spark, make_config, audio_file, tmp_path):
    files = {
        "a.wav": audio_file("a.wav", kind="bell", seconds=1.0, rate=44100, channels=2),
        "b.flac": audio_file("b.flac", kind="sweep", seconds=0.5, rate=48000),
        "c.ogg": audio_file("c.ogg", kind="wind", seconds=2.0, rate=22050),
        "d.mp3": audio_file("d.mp3", kind="engine", seconds=1.5, rate=44100),
    }
    (tmp_path / "library" / "notes.txt").write_text("not audio, and not an audio extension")
    cfg = make_config(tmp_path / "library")

    run_id = run_stages(spark, cfg, ["catalog"], command="test")

    rows = catalog_rows(spark, cfg)
    assert set(rows) == {str(p) for p in files.values()}
    for path in files.values():
        row = rows[str(path)]
        info = sf.info(str(path))
        assert row.sample_rate == info.samplerate
        assert row.channels == info.channels
        assert row.frames == info.frames
        assert row.duration_s == pytest.approx(info.frames / info.samplerate)
        assert row.size == path.stat().st_size
        assert row.content_sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
        assert row.rel_path == path.name
        assert not row.retired
    assert {r.format for r in rows.values()} == {"WAV", "FLAC", "OGG", "MP3"}
    assert len({r.file_id for r in rows.values()}) == 4
    assert error_rows(spark, cfg, run_id) == {}
    history = spark.sql(f"DESCRIBE HISTORY delta.`{tables.table_path(cfg.warehouse.path, 'catalog')}`")
    assert history.count() >= 1


def test_sidecar_columns_join_by_path_and_problems_are_reported(spark, make_config, audio_file, tmp_path):
    a = audio_file("sub/a.wav", seed=1)
    b = audio_file("b.wav", seed=2)
    sidecar = tmp_path / "library" / "metadata.csv"
    sidecar.write_text(
        "path,caption,category,setup\n"
        'sub/a.wav,"a bell, struck twice",bells,cd-007\n'
        "b.wav,a second bell,bells,\n"
        "gone.wav,a file that is not there,bells,cd-001\n"
        "b.wav,a repeated row,bells,cd-009\n",
        encoding="utf-8",
    )
    cfg = make_config(tmp_path / "library", metadata=sidecar)

    run_id = run_stages(spark, cfg, ["catalog"], command="test")

    rows = catalog_rows(spark, cfg)
    assert rows[str(a)].caption == "a bell, struck twice"
    assert rows[str(a)].setup == "cd-007"  # text stays text: leading zeros kept
    assert rows[str(b)].caption == "a second bell"
    errors = error_rows(spark, cfg, run_id)
    assert errors[str(tmp_path / "library" / "gone.wav")].error_class == "metadata_orphan"
    assert errors[str(b)].error_class == "metadata_duplicate"


def test_a_hostile_sidecar_never_stops_the_run(spark, make_config, audio_file, tmp_path):
    files = [audio_file(f"{n}.wav", seed=n) for n in range(4)]
    sidecar = tmp_path / "library" / "metadata.csv"
    sidecar.write_bytes(
        b"path,Recording Date,caption,caption\n"
        b"0.wav,2020-01-01,one,first\n"
        b"1.wav,2020-01-02,caf\xe9,second\n"
        b'2.wav,2020-01-03,"never closed,third\n'
        b"3.wav,2020-01-04,four,fourth\n"
    )
    cfg = make_config(tmp_path / "library", metadata=sidecar)

    run_id = run_stages(spark, cfg, ["catalog"], command="test")

    rows = catalog_rows(spark, cfg)
    assert set(rows) == {str(p) for p in files}
    assert rows[str(files[3])].Recording_Date == "2020-01-04"
    assert rows[str(files[3])].caption_2 == "fourth"
    assert rows[str(files[1])].caption == "caf\ufffd"
    assert rows[str(files[2])].caption is None  # its row was skipped, the file was not
    comments = {r.col_name: r.comment for r in spark.sql("DESCRIBE catalog").collect()}
    assert "Recording Date" in comments["Recording_Date"]
    errors = tables.read(spark, cfg.warehouse.path, "errors").where(f"run_id = '{run_id}'").collect()
    lines = sorted(e.message.split(":")[0] for e in errors if e.error_class == "metadata_unparsable")
    assert lines == ["line 3", "line 4"]


def test_bad_inputs_land_in_errors_and_good_files_in_catalog(spark, make_config, audio_file, tmp_path):
    lib = tmp_path / "library"
    good = [
        audio_file("ok one.wav", seed=1),
        audio_file("ünïcødé ✓.flac", seed=2),
        audio_file("with 'quote' and space.ogg", seed=3),
    ]
    (lib / "empty.wav").write_bytes(b"")
    (lib / "noise.wav").write_bytes(os.urandom(5000))
    expected = {"empty.wav": "empty_file", "noise.wav": "not_audio"}
    for name in ("cut.wav", "cut.flac", "cut.ogg", "cut.mp3"):
        whole = audio_file("whole_" + name, kind="engine", seconds=3.0, seed=4, folder=tmp_path / "src")
        data = whole.read_bytes()
        (lib / name).write_bytes(data[: int(len(data) * 0.6)])
        expected[name] = "truncated"
    unreadable = lib / "locked.wav"
    if running_as_root():
        # Permission bits do not stop root; a read of /proc/self/mem fails with EIO instead.
        os.symlink("/proc/self/mem", unreadable)
    else:
        shutil.copy(good[0], unreadable)
        unreadable.chmod(0)
    expected["locked.wav"] = "unreadable"
    os.symlink(lib / "nowhere.wav", lib / "dangling.wav")
    expected["dangling.wav"] = "broken_link"
    cfg = make_config(lib)

    run_id = run_stages(spark, cfg, ["catalog"], command="test")

    assert set(catalog_rows(spark, cfg)) == {str(p) for p in good}
    errors = error_rows(spark, cfg, run_id)
    assert {os.path.basename(p): e.error_class for p, e in errors.items()} == expected
    assert all(e.message for e in errors.values())


def test_rerun_is_idempotent_and_tracks_changes(spark, make_config, audio_file, tmp_path):
    a = audio_file("a.wav", seed=1)
    b = audio_file("b.wav", seed=2)
    (tmp_path / "library" / "bad.wav").write_bytes(b"RIFF")
    cfg = make_config(tmp_path / "library")

    run_stages(spark, cfg, ["catalog"], command="test", run_id="nightly")
    first = catalog_rows(spark, cfg)
    run_stages(spark, cfg, ["catalog"], command="test", run_id="nightly")

    assert catalog_rows(spark, cfg) == first
    assert len(error_rows(spark, cfg, "nightly")) == 1
    assert tables.read(spark, cfg.warehouse.path, "runs").count() == 1

    audio_file("a.wav", seed=9)  # same path, new content
    b.unlink()
    run_stages(spark, cfg, ["catalog"], command="test", run_id="next")

    after = catalog_rows(spark, cfg)
    assert after[str(a)].content_sha256 != first[str(a)].content_sha256
    assert after[str(a)].file_id == first[str(a)].file_id
    assert after[str(a)].updated_run == "next"
    assert after[str(b)].retired and after[str(b)].updated_run == "next"
    runs = {r.run_id: r for r in tables.read(spark, cfg.warehouse.path, "runs").collect()}
    assert runs.keys() == {"nightly", "next"} and runs["next"].status == "succeeded"
    assert [s.stage for s in runs["next"].stages] == ["catalog"]


@pytest.mark.parametrize("write", ["ensure", "append", "overwrite"])
def test_a_table_whose_creation_was_killed_is_created_on_the_rerun(spark, tmp_path, write):
    """A run killed while creating a table leaves an empty `_delta_log`, or one holding only
    the hidden temporary file of its first commit (both seen in the SIGKILL sweep); Delta
    alone then refuses to create the table and every rerun would fail."""
    log_dir = tmp_path / "t" / "_delta_log"
    (log_dir / "_staged_commits").mkdir(parents=True)
    if write == "ensure":
        (log_dir / ".00000000000000000000.json.40dd2f0c.tmp").write_text('{"commitInfo":{}}')
        (log_dir / "..00000000000000000000.json.40dd2f0c.tmp.crc").write_bytes(b"crc")
    rows = spark.createDataFrame([(1, "a")], "file_id bigint, path string")
    if write == "ensure":
        tables.ensure(spark, str(tmp_path), "t", rows.schema)
        tables.append(rows, str(tmp_path), "t")
    else:
        getattr(tables, write)(rows, str(tmp_path), "t")
    assert [tuple(r) for r in tables.read(spark, str(tmp_path), "t").collect()] == [(1, "a")]
    (tmp_path / "u" / "_delta_log").mkdir(parents=True)
    (tmp_path / "u" / "_delta_log" / "00000000000000000000.json.tmp").write_text("{}")
    with pytest.raises(Exception, match="DELTA"):  # a log with any other file is never removed
        tables.ensure(spark, str(tmp_path), "u", rows.schema)
    assert (tmp_path / "u" / "_delta_log" / "00000000000000000000.json.tmp").exists()


def test_add_missing_and_upsert_write_each_key_once(spark, tmp_path):
    """Both write paths of a nightly run: add_missing keeps the rows already there, upsert
    appends rows with only new keys and replaces the ones it finds."""
    warehouse = str(tmp_path)
    schema = "file_id bigint, value string"

    def contents(name: str) -> list[tuple]:
        return sorted(tuple(r) for r in tables.read(spark, warehouse, name).collect())

    tables.overwrite(spark.createDataFrame([(1, "a")], schema), warehouse, "kept")
    for _ in range(2):  # a rerun after a kill adds nothing twice
        tables.add_missing(spark.createDataFrame([(1, "changed"), (2, "b")], schema), warehouse, "kept", ["file_id"])
    assert contents("kept") == [(1, "a"), (2, "b")]

    tables.upsert(spark.createDataFrame([(1, "a")], schema), warehouse, "replaced", ["file_id"])
    tables.upsert(spark.createDataFrame([(2, "b")], schema), warehouse, "replaced", ["file_id"])  # new keys only
    tables.upsert(spark.createDataFrame([(2, "changed"), (3, "c")], schema), warehouse, "replaced", ["file_id"])
    assert contents("replaced") == [(1, "a"), (2, "changed"), (3, "c")]


def test_merge_snapshot_appends_only_when_a_snapshot_only_adds_rows(spark, tmp_path):
    """A night that only adds files is an append; a changed value, a vanished row or a
    returning one still goes through the MERGE, with the same bookkeeping."""
    warehouse = str(tmp_path)
    schema = "file_id bigint, value string"

    def snapshot(rows: list[tuple], run_id: str) -> str:
        frame = spark.createDataFrame(rows, schema)
        tables.merge_snapshot(frame, warehouse, "snap", run_id=run_id, first_run_column="first_run")
        return DeltaTable.forPath(spark, tables.table_path(warehouse, "snap")).history(1).first().operation

    def contents() -> list[tuple]:
        columns = ["file_id", "value", "first_run", "updated_run", "retired"]
        return sorted(tuple(r) for r in tables.read(spark, warehouse, "snap").select(*columns).collect())

    snapshot([(1, "a"), (2, "b")], "r1")
    assert snapshot([(1, "a"), (2, "b"), (3, "c")], "r2") == "WRITE"
    assert contents() == [(1, "a", "r1", "r1", False), (2, "b", "r1", "r1", False), (3, "c", "r2", "r2", False)]
    assert snapshot([(1, "a"), (2, "changed"), (3, "c")], "r3") == "MERGE"
    assert snapshot([(1, "a"), (2, "changed")], "r4") == "MERGE"  # 3 retires
    assert snapshot([(1, "a"), (2, "changed"), (3, "c"), (4, "d")], "r5") == "MERGE"  # 3 comes back
    assert contents() == [
        (1, "a", "r1", "r1", False),
        (2, "changed", "r1", "r3", False),
        (3, "c", "r2", "r5", False),
        (4, "d", "r5", "r5", False),
    ]
