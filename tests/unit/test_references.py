"""Reference sets: evaluation lists, which files they name, and their config."""

from __future__ import annotations

import pyarrow as pa
import pytest

from leakfree import storage
from leakfree.config import Config, ConfigError
from leakfree.errors import LeakfreeError
from leakfree.references import declared, list_references, read_list, select_listed


def listing(*rel_paths: str) -> pa.Table:
    paths = [f"/data/eval/{p}" for p in rel_paths]
    return pa.table(
        {
            "path": paths,
            "root": ["/data/eval"] * len(paths),
            "rel_path": list(rel_paths),
            "size": [1] * len(paths),
            "mtime": pa.array([0] * len(paths), pa.timestamp("us", tz="UTC")),
        },
        schema=storage.LISTING_SCHEMA,
    )


def test_a_plain_list_skips_blank_lines_and_comments(tmp_path):
    (tmp_path / "eval.txt").write_text("# evaluation files\n\n  a.wav \nsub/b.flac\n")
    assert read_list(str(tmp_path / "eval.txt")) == ["a.wav", "sub/b.flac"]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("file_name,caption_1\na.wav,rain\nb.wav,wind\n", ["a.wav", "b.wav"]),
        ("caption,fname\nrain,x\nwind,y\n", ["x", "y"]),
        ("clip,caption\na.wav,rain\nb.wav,wind\n", ["a.wav", "b.wav"]),
    ],
)
def test_a_csv_list_takes_its_file_column_or_else_its_first(tmp_path, text, expected):
    (tmp_path / "eval.csv").write_text("\ufeff" + text)  # a spreadsheet's byte order mark too
    assert read_list(str(tmp_path / "eval.csv")) == expected


def test_an_unreadable_list_is_named_in_the_error(tmp_path):
    with pytest.raises(LeakfreeError, match=r"evaluation list .*nowhere\.txt cannot be read"):
        read_list(str(tmp_path / "nowhere.txt"))


def test_entries_name_files_by_path_relative_path_file_name_or_id():
    files = listing("a.wav", "sub/b.flac", "sub/c.mp3", "d.wav", "e.ogg")
    kept, missing = select_listed(files, ["/data/eval/a.wav", "./sub/b.flac", "c.mp3", "d", "nowhere.wav"])
    assert kept.column("rel_path").to_pylist() == ["a.wav", "sub/b.flac", "sub/c.mp3", "d.wav"]
    assert missing == ["nowhere.wav"]


def test_each_set_is_listed_with_its_name_and_its_list_entries_counted(tmp_path):
    for name in ("a.wav", "b.wav"):
        (tmp_path / "one" / name).parent.mkdir(exist_ok=True)
        (tmp_path / "one" / name).write_bytes(b"x")
    (tmp_path / "two").mkdir()
    (tmp_path / "two" / "c.wav").write_bytes(b"x")
    (tmp_path / "list.txt").write_text("a\nmissing\n")
    cfg = Config.from_toml(
        overrides={
            "contamination.references": {"one": str(tmp_path / "one"), "two": [str(tmp_path / "two")]},
            "contamination.lists": {"one": str(tmp_path / "list.txt")},
        }
    )
    found = list_references(declared(cfg.contamination).values(), ["wav"])
    listed = zip(found.files.column("reference").to_pylist(), found.files.column("rel_path").to_pylist(), strict=True)
    assert sorted(listed) == [("one", "a.wav"), ("two", "c.wav")]
    assert (found.list_entries, found.unmatched_entries) == ({"one": 2}, {"one": 1})
    assert [(p, c) for p, c, _ in found.problems] == [("missing", "reference_list_orphan")]


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"contamination.references": {"a b": "/x"}}, "not a reference name"),
        ({"contamination.lists": {"eval": "/l.txt"}}, "names no declared reference"),
        ({"contamination.references": {"eval": "/x"}, "contamination.forget": ["eval"]}, "both declared and forgotten"),
        ({"contamination.references": {"eval": 3}}, "must be a list"),
    ],
)
def test_reference_config_mistakes_are_refused(overrides, message):
    with pytest.raises(ConfigError, match=message):
        Config.from_toml(overrides=overrides)
