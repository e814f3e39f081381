from __future__ import annotations

import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from leakfree.metadata import MetadataError, read_sidecar

RESERVED = frozenset({"size", "frames"})


def test_csv_paths_resolve_against_the_sidecar_folder_and_stay_text(tmp_path):
    sidecar = tmp_path / "meta" / "m.csv"
    sidecar.parent.mkdir()
    sidecar.write_text('path,caption,cd\n../a.wav,"line one\nline two",007\n/abs/b.wav,"say ""hi""",12\n')
    result = read_sidecar(str(sidecar), RESERVED)
    rows = result.table.to_pylist()
    assert rows[0] == {"path": str(tmp_path / "a.wav"), "caption": "line one\nline two", "cd": "007"}
    assert rows[1] == {"path": "/abs/b.wav", "caption": 'say "hi"', "cd": "12"}
    assert result.problems == ()


def test_broken_rows_and_repeats_are_problems(tmp_path):
    sidecar = tmp_path / "m.csv"
    sidecar.write_text("path,caption\na.wav,ok\nb.wav,too,many,fields\na.wav,again\n")
    result = read_sidecar(str(sidecar), RESERVED)
    assert result.table.column("caption").to_pylist() == ["ok"]
    classes = sorted(p[1] for p in result.problems)
    assert classes == ["metadata_duplicate", "metadata_unparsable"]


def test_jsonl_and_parquet(tmp_path):
    (tmp_path / "m.jsonl").write_text(json.dumps({"path": "a.wav", "category": "rain"}) + "\n")
    pq.write_table(pa.table({"path": ["a.wav"], "category": ["rain"]}), tmp_path / "m.parquet")
    for name in ("m.jsonl", "m.parquet"):
        table = read_sidecar(str(tmp_path / name), RESERVED).table
        assert table.to_pylist() == [{"path": str(tmp_path / "a.wav"), "category": "rain"}]


@pytest.mark.parametrize(
    ("name", "content", "wording"),
    [
        ("m.csv", "file,caption\na.wav,x\n", "no `path` column"),
        ("m.csv", "path,size\na.wav,3\n", "clash with catalog columns"),
        ("m.xlsx", "whatever", "use .csv"),
    ],
)
def test_unusable_sidecars_say_why(tmp_path, name, content, wording):
    (tmp_path / name).write_text(content)
    with pytest.raises(MetadataError, match=wording):
        read_sidecar(str(tmp_path / name), RESERVED)


def test_missing_sidecar_is_a_clear_error(tmp_path):
    with pytest.raises(MetadataError, match="cannot read metadata sidecar"):
        read_sidecar(str(tmp_path / "absent.csv"), RESERVED)
