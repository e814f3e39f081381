from __future__ import annotations

import os

import pyarrow.fs as pafs

from leakfree import storage


def touch(path, data=b"x"):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def test_lists_audio_only_with_sizes_and_relative_paths(tmp_path):
    touch(tmp_path / "a.WAV", b"12345")
    touch(tmp_path / "_under/b.flac")  # Spark's own listing would hide this one
    touch(tmp_path / ".hidden/c.mp3")
    touch(tmp_path / "readme.txt")
    listing = storage.list_library([str(tmp_path)], ["wav", "flac", "mp3"])
    rows = {r["rel_path"]: r for r in listing.files.to_pylist()}
    assert set(rows) == {"a.WAV", "_under/b.flac", ".hidden/c.mp3"}
    assert rows["a.WAV"]["size"] == 5
    assert rows["a.WAV"]["path"] == str(tmp_path / "a.WAV")
    assert listing.problems == ()


def test_nested_and_repeated_roots_list_each_file_once(tmp_path):
    touch(tmp_path / "sub/a.wav")
    listing = storage.list_library([str(tmp_path), str(tmp_path / "sub"), str(tmp_path) + "/"], ["wav"])
    assert listing.files.column("path").to_pylist() == [str(tmp_path / "sub/a.wav")]


def test_symlink_loops_and_broken_links_are_problems_not_hangs(tmp_path):
    touch(tmp_path / "lib/a.wav")
    os.symlink(tmp_path / "lib", tmp_path / "lib/loop")
    os.symlink(tmp_path / "lib/none.wav", tmp_path / "lib/broken.wav")
    os.symlink(tmp_path / "lib/none.txt", tmp_path / "lib/broken.txt")
    listing = storage.list_library([str(tmp_path / "lib")], ["wav"])
    assert listing.files.column("rel_path").to_pylist() == ["a.wav"]
    kinds = {os.path.basename(p.path): p.error_class for p in listing.problems}
    assert kinds == {"loop": "symlink_loop", "broken.wav": "broken_link"}


def test_folder_named_like_audio_is_walked_and_non_utf8_names_reported(tmp_path):
    touch(tmp_path / "take.wav/inner.wav")
    touch(tmp_path.joinpath(os.fsdecode(b"caf\xe9.wav")))
    listing = storage.list_library([str(tmp_path)], ["wav"])
    assert listing.files.column("rel_path").to_pylist() == ["take.wav/inner.wav"]
    problems = {p.error_class: p.path for p in listing.problems}
    assert problems.keys() == {"bad_name", "audio_named_folder"}
    assert problems["bad_name"].endswith("caf\\xe9.wav") and problems["audio_named_folder"].endswith("take.wav")


def test_missing_root_is_a_problem(tmp_path):
    listing = storage.list_library([str(tmp_path / "absent")], ["wav"])
    assert listing.files.num_rows == 0
    assert listing.problems[0].error_class == "unlistable"


def test_remote_walk_uses_pyarrow_filesystems(tmp_path):
    touch(tmp_path / "x/a.wav", b"abc")
    problems = []
    found = list(storage._walk_remote(pafs.LocalFileSystem(), str(tmp_path), "s3a://bucket/lib", problems))
    assert [(p, s) for p, s, _ in found] == [("s3a://bucket/lib/x/a.wav", 3)]


def test_canonical_paths():
    assert storage.canonical("file:///a/b/../c.wav") == "/a/c.wav"
    assert storage.canonical("c.wav", base="/lib") == "/lib/c.wav"
    assert storage.canonical("c.wav", base="s3a://bucket/lib") == "s3a://bucket/lib/c.wav"
    assert storage.canonical("s3a://bucket/x.wav") == "s3a://bucket/x.wav"
