"""A zoo of bad inputs through every stage, one file per kind of trouble a nightly job over
millions of files meets; a run with a different executor count; and a run killed with
SIGKILL mid-stage, then rerun.

The zoo library is built once; the undisturbed run over it is the reference.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import signal
import socket
import struct
import subprocess
import sys
import time

import numpy as np
import pytest

from leakfree import tables
from leakfree.demo import MP3_128K, SOUNDS, write_audio
from leakfree.pipeline import STAGES, run_stages
from tests.conftest import running_as_root
from tests.expect import finished

pytestmark = pytest.mark.integration
RATE = 44100


def good_sound(seed: int, seconds: float = 1.5) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return 0.5 * SOUNDS["footsteps"](rng, seconds, RATE) + 0.4 * SOUNDS["wind"](rng, seconds, RATE)


def build_zoo(lib) -> tuple[set[str], dict[str, str]]:
    """Write the zoo; returns the good files (relative paths) and the expected error class
    of every bad one."""
    good: set[str] = set()
    bad: dict[str, str] = {}

    def keep(name: str, x: np.ndarray, **codec) -> None:
        write_audio(lib / name, x, RATE, **codec)
        good.add(name)

    keep("plain.wav", good_sound(1))
    keep("plain copy.flac", good_sound(1))
    keep('it\'s "quoted" & spaced.mp3', good_sound(2), **MP3_128K)
    keep("line\nbreak.wav", good_sound(3))
    keep("take.wav/inside.wav", good_sound(4))  # a folder named like an audio file
    bad["take.wav"] = "audio_named_folder"
    keep("ünïcødé/日本語.ogg", good_sound(5))
    keep("one_sample.wav", np.array([0.5]))
    keep("silent.wav", np.zeros(RATE))
    keep("constant.wav", np.full(RATE, 0.3))
    (lib / "zero.wav").write_bytes(b"")
    bad["zero.wav"] = "empty_file"
    (lib / "random.wav").write_bytes(np.random.default_rng(0).bytes(8000))
    bad["random.wav"] = "not_audio"
    for ext in ("wav", "flac", "ogg", "mp3"):
        whole = lib.parent / f"whole.{ext}"
        write_audio(whole, good_sound(6, 3.0), RATE, **(MP3_128K if ext == "mp3" else {}))
        (lib / f"cut.{ext}").write_bytes(whole.read_bytes()[: int(whole.stat().st_size * 0.55)])
        bad[f"cut.{ext}"] = "truncated"
    header = bytearray((lib / "plain.wav").read_bytes())
    giant = header.copy()
    giant[header.index(b"data") + 4 : header.index(b"data") + 8] = struct.pack("<I", 4_000_000_000)
    (lib / "claims_gigabytes.wav").write_bytes(bytes(giant))
    bad["claims_gigabytes.wav"] = "truncated"
    no_channels = header.copy()
    no_channels[22:24] = struct.pack("<H", 0)
    (lib / "zero_channels.wav").write_bytes(bytes(no_channels))
    bad["zero_channels.wav"] = "invalid_header"
    absurd = header.copy()
    absurd[24:28] = struct.pack("<I", 3_000_000)
    (lib / "absurd_rate.wav").write_bytes(bytes(absurd))
    bad["absurd_rate.wav"] = "invalid_header"
    (lib / "song.m4a").write_bytes(b"\x00\x00\x00\x20ftypM4A " + bytes(200))
    bad["song.m4a"] = "unsupported_codec"
    os.symlink(lib / "gone.wav", lib / "dangling.wav")
    bad["dangling.wav"] = "broken_link"
    os.symlink(lib, lib / "loop")
    bad["loop"] = "symlink_loop"
    locked = lib / "locked.wav"
    if running_as_root():
        os.symlink("/proc/self/mem", locked)  # root reads past permission bits; /proc/self/mem fails
    else:
        write_audio(locked, good_sound(7), RATE)
        locked.chmod(0)
    bad["locked.wav"] = "unreadable"
    (lib / "tag_only.mp3").write_bytes(b"ID3\x04\x00\x00\x00\x00\x00\x64" + bytes(100))
    bad["tag_only.mp3"] = "no_audio"
    os.mkfifo(lib / "pipe.wav")
    bad["pipe.wav"] = "fifo"
    with socket.socket(socket.AF_UNIX) as listener:
        listener.bind(str(lib / "sock.wav"))
    bad["sock.wav"] = "socket"
    os.symlink("/dev/null", lib / "null.wav")
    bad["null.wav"] = "device"
    os.symlink("/proc/version", lib / "kernel.wav")  # reports 0 bytes, holds more
    bad["kernel.wav"] = "size_mismatch"
    raw = os.fsencode(str(lib)) + b"/caf\xe9.wav"
    with open(raw, "wb") as f:
        f.write((lib / "plain.wav").read_bytes())
    bad["caf\\xe9.wav"] = "bad_name"
    (lib / "meta.csv").write_bytes(
        b"path,caption,setup,Recording Date,caption\n"
        b"plain.wav,a plain take,s1,2020-01-01,first\n"
        b"nowhere.wav,named but absent,s1,,\n"
        b"silent.wav,caf\xe9 silence,s3,,\n"
        b'broken.wav,"an unclosed quote,s2,,\n'
        b"constant.wav,a constant,s4,,\n"
    )
    return good, bad


@pytest.fixture(scope="module")
def zoo(tmp_path_factory, test_config):
    root = tmp_path_factory.mktemp("zoo")
    lib = root / "library"
    lib.mkdir()
    good, bad = build_zoo(lib)
    cfg = test_config.replace(
        library=dataclasses.replace(
            test_config.library, roots=(str(lib), str(lib / "take.wav")), metadata=str(lib / "meta.csv")
        ),
        warehouse=dataclasses.replace(test_config.warehouse, path=str(root / "warehouse")),
        report=dataclasses.replace(test_config.report, folder=str(root / "reports")),
    )
    return {"cfg": cfg, "lib": lib, "root": root, "good": good, "bad": bad}


@pytest.fixture(scope="module")
def reference(spark, zoo):
    run_stages(spark, zoo["cfg"], list(STAGES), command="test", run_id="reference")
    return snapshot(spark, zoo["cfg"].warehouse.path, str(zoo["lib"]), "reference")


def snapshot(spark, warehouse: str, lib: str, run_id: str) -> dict:
    """The rows a rerun must reproduce exactly, keyed by relative path; of the tables kept
    per run, the rows of `run_id` (a resumed run replaces what its killed attempt wrote)."""
    catalog = tables.read(spark, warehouse, "catalog")
    rel = {r.file_id: os.path.relpath(r.path, lib) for r in catalog.collect()}
    of_run = f"run_id = '{run_id}'"
    return {
        "errors": sorted(
            (r.stage, os.path.relpath(r.path, lib), r.error_class)
            for r in tables.read(spark, warehouse, "errors").where(of_run).collect()
        ),
        "split_balance": sorted(
            (r.split, r.files) for r in tables.read(spark, warehouse, "split_balance").where(of_run).collect()
        ),
        "catalog": sorted((rel[r.file_id], r.content_sha256, r.retired) for r in catalog.collect()),
        "features": sorted(
            (rel[r.file_id], r.pcm_sha256, tuple(r.hashes)) for r in tables.read(spark, warehouse, "features").collect()
        ),
        "pairs": sorted(
            (rel[r.file_a], rel[r.file_b], r.method, round(r.correlation or 0, 6))
            for r in tables.read(spark, warehouse, "pairs").collect()
        ),
        "groups": sorted((rel[r.file_id], rel[r.group_id]) for r in tables.read(spark, warehouse, "groups").collect()),
        "splits": sorted((rel[r.file_id], r.split) for r in tables.read(spark, warehouse, "splits").collect()),
        "contamination": sorted(
            (os.path.basename(r.reference_path), rel[r.library_file], r.method)
            for r in (
                tables.read(spark, warehouse, "contamination").collect()
                if tables.exists(spark, warehouse, "contamination")
                else []
            )
        ),
    }


def test_every_bad_input_is_a_clear_error_and_every_good_file_gets_a_split(spark, zoo, reference):
    warehouse = zoo["cfg"].warehouse.path
    errors = {}
    for e in tables.read(spark, warehouse, "errors").where("run_id = 'reference'").collect():
        errors[os.path.basename(e.path.rstrip("/"))] = (e.error_class, e.message)
    for name, error_class in zoo["bad"].items():
        assert errors.get(os.path.basename(name), (None,))[0] == error_class, (name, errors.get(name))
    assert errors["nowhere.wav"][0] == "metadata_orphan"
    assert errors["meta.csv"][0] == "metadata_unparsable"
    sidecar = tables.read(spark, warehouse, "catalog").where("path LIKE '%constant.wav'").first()
    assert sidecar.setup == "s4" and sidecar.Recording_Date == ""  # rows after a broken quote survive
    assert all(message for _, message in errors.values())
    assigned = {path for path, _ in reference["splits"]}
    assert assigned == zoo["good"]
    flags = {
        os.path.basename(r.path): r.flag
        for r in tables.read(spark, warehouse, "features")
        .join(tables.read(spark, warehouse, "catalog"), "file_id")
        .collect()
    }
    assert (flags["silent.wav"], flags["constant.wav"], flags["one_sample.wav"]) == ("silent", "constant", "silent")
    run = tables.read(spark, warehouse, "runs").where("run_id = 'reference'").first()
    assert finished(run.status, run.message) and [s.stage for s in run.stages] == list(STAGES)


def test_flagged_files_do_not_collapse_into_one_group(spark, zoo, reference):
    groups = dict(reference["groups"])
    assert groups["silent.wav"] != groups["constant.wav"]
    assert groups["plain.wav"] == groups["plain copy.flac"]


def test_a_path_with_a_line_break_is_refused_as_txt_and_quoted_as_csv(spark, zoo, reference, tmp_path):
    import csv

    from leakfree.errors import LeakfreeError
    from leakfree.export import export_splits

    warehouse = zoo["cfg"].warehouse.path
    with pytest.raises(LeakfreeError, match="line break"):
        export_splits(spark, warehouse=warehouse, out=str(tmp_path / "txt"), fmt="txt", relative=True)
    assert not (tmp_path / "txt" / "train.txt").exists()
    written = export_splits(spark, warehouse=warehouse, out=str(tmp_path / "csv"), fmt="csv", relative=True)
    paths = {row["path"] for row in csv.DictReader(written[0].open(newline=""))}
    assert "line\nbreak.wav" in paths and paths == {p for p, _ in reference["splits"]}


def leakfree(*args: str, env_extra: dict | None = None, **popen) -> subprocess.Popen:
    env = {**os.environ, "PYSPARK_PYTHON": sys.executable, **(env_extra or {})}
    return subprocess.Popen(
        [sys.executable, "-m", "leakfree.cli", *args],
        env=env,
        stderr=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        text=True,
        **popen,
    )


def cli_args(zoo, warehouse, master: str) -> list[str]:
    cfg = zoo["cfg"]
    return [
        "run",
        "--library",
        cfg.library.roots[1],
        "--library",
        cfg.library.roots[0],  # the other listing order
        "--metadata",
        cfg.library.metadata,
        "--warehouse",
        str(warehouse),
        "--set",
        f'spark.master="{master}"',
        "--set",
        "spark.progress_bar=false",
        "--set",
        f'report.folder="{zoo["root"] / "reports-cli"}"',
        "--run-id",
        "cli",
    ]


@pytest.mark.faults
def test_killed_runs_resume_to_the_same_tables_on_one_executor_in_another_order(spark, zoo, reference):
    """SIGKILL mid-pairs (after catalog, features and candidates committed), then a full
    rerun of the same run id, on local[1] with the roots listed the other way round: the
    tables equal the reference run's (local[2]) row for row. Two runs of the whole job in
    their own JVMs (about 160 s), so it belongs to `make test-faults` with the kill in
    every stage."""
    warehouse = zoo["root"] / "warehouse-killed"
    args = cli_args(zoo, warehouse, "local[1]")
    killed_in = []
    for stage in ("pairs",):
        proc = leakfree(*args, start_new_session=True)
        began = time.monotonic()
        for line in proc.stderr:  # the run announces each stage on stderr
            if f"{stage}: started" in line:
                time.sleep(1.5)
                break
            assert time.monotonic() - began < 600
        os.killpg(proc.pid, signal.SIGKILL)  # the driver, its JVM and the Python workers
        proc.wait()
        killed_in.append(stage)
    proc = leakfree(*args)
    _, err = proc.communicate(timeout=900)
    assert proc.returncode == 0, err[-3000:]
    assert killed_in == ["pairs"]
    assert snapshot(spark, str(warehouse), str(zoo["lib"]), "cli") == reference
    runs = tables.read(spark, str(warehouse), "runs").collect()
    assert [r.run_id for r in runs] == ["cli"] and finished(runs[0].status, runs[0].message)


@pytest.fixture(scope="module")
def zoo_eval(zoo):
    """A reference set for the zoo: a copy of one of its files and a file that is no audio."""
    folder = zoo["root"] / "zoo_eval"
    folder.mkdir(exist_ok=True)
    shutil.copy(zoo["lib"] / "plain.wav", folder / "plain_copy.wav")
    (folder / "garbage.wav").write_bytes(b"RIFF" + bytes(64))
    return folder


@pytest.fixture(scope="module")
def reference_with_a_set(spark, zoo, zoo_eval):
    """The undisturbed run of the fault sweep: the zoo checked against a reference set too."""
    cfg = zoo["cfg"].replace(
        warehouse=dataclasses.replace(zoo["cfg"].warehouse, path=str(zoo["root"] / "warehouse-with-set")),
        contamination=dataclasses.replace(zoo["cfg"].contamination, references={"zoo_eval": (str(zoo_eval),)}),
    )
    run_stages(spark, cfg, list(STAGES), command="test", run_id="reference")
    found = snapshot(spark, cfg.warehouse.path, str(zoo["lib"]), "reference")
    assert found["contamination"] == [
        ("plain_copy.wav", "plain copy.flac", "audio"),
        ("plain_copy.wav", "plain.wav", "exact_bytes"),
    ]
    return found


@pytest.mark.faults
@pytest.mark.parametrize("stage", list(STAGES))
def test_sigkill_in_each_stage(spark, zoo, zoo_eval, reference_with_a_set, stage):
    """The full sweep (make test-faults): killed in `stage`, then rerun to the end."""
    warehouse = zoo["root"] / f"warehouse-killed-{stage}"
    args = [*cli_args(zoo, warehouse, "local[2]"), "--set", f'contamination.references.zoo_eval="{zoo_eval}"']
    proc = leakfree(*args, start_new_session=True)
    for line in proc.stderr:
        if f"{stage}: started" in line:
            time.sleep(1.0)
            break
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    rerun = leakfree(*args)
    _, err = rerun.communicate(timeout=900)
    assert rerun.returncode == 0, err[-3000:]
    assert snapshot(spark, str(warehouse), str(zoo["lib"]), "cli") == reference_with_a_set
