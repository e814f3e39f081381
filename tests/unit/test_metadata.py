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


def test_headers_delta_refuses_or_repeats_get_safe_names_and_keep_the_original(tmp_path):
    sidecar = tmp_path / "m.csv"
    sidecar.write_text("path,Recording Date,caption,Caption,size,\na.wav,2020-01-02,x,y,3,z\n")
    result = read_sidecar(str(sidecar), RESERVED)
    assert result.table.column_names == ["path", "Recording_Date", "caption", "Caption_2", "sidecar_size", "column_6"]
    assert result.table.to_pylist()[0]["Recording_Date"] == "2020-01-02"
    assert result.original_names["Recording_Date"] == "Recording Date"
    assert result.original_names["sidecar_size"] == "size"
    assert result.problems == ()


def test_bytes_that_are_not_utf8_are_reported_by_line_and_the_rows_kept(tmp_path):
    sidecar = tmp_path / "m.csv"
    sidecar.write_bytes(b"path,caption\na.wav,ok\nb.wav,caf\xe9\nc.wav,fine\n")
    result = read_sidecar(str(sidecar), RESERVED)
    assert result.table.column("caption").to_pylist() == ["ok", "caf\ufffd", "fine"]
    assert [(p[1], p[2].split(":")[0]) for p in result.problems] == [("metadata_unparsable", "line 3")]


@pytest.mark.parametrize(
    "body",
    [
        'a.wav,ok\nb.wav,"never closed\nc.wav,after\nd.wav,"closed "" late"\n',  # closed by a later quote
        'a.wav,ok\nc.wav,after\nd.wav,"closed "" late"\nb.wav,"never closed\n',  # open to the end
    ],
)
def test_a_quote_that_never_closes_costs_its_row_only(tmp_path, body):
    sidecar = tmp_path / "m.csv"
    sidecar.write_text("path,caption\n" + body)
    result = read_sidecar(str(sidecar), RESERVED)
    captions = dict(
        zip(result.table.column("path").to_pylist(), result.table.column("caption").to_pylist(), strict=True)
    )
    assert {p.rsplit("/", 1)[1]: c for p, c in captions.items()} == {
        "a.wav": "ok",
        "c.wav": "after",
        "d.wav": 'closed " late',
    }
    assert [p[1] for p in result.problems] == ["metadata_unparsable"]
    assert "never closes" in result.problems[0][2]


def test_a_multiline_caption_is_not_a_broken_quote(tmp_path):
    sidecar = tmp_path / "m.csv"
    sidecar.write_text('path,caption\na.wav,"two\nlines"\nb.wav,5" speaker\n')
    result = read_sidecar(str(sidecar), RESERVED)
    assert result.table.column("caption").to_pylist() == ["two\nlines", '5" speaker']
    assert result.problems == ()


def test_jsonl_bad_lines_are_problems_and_values_are_text(tmp_path):
    sidecar = tmp_path / "m.jsonl"
    sidecar.write_bytes(b'{"path": "a.wav", "cd": 7}\nnot json\n[1]\n{"path": "b.wav", "cd": "007"}\n')
    result = read_sidecar(str(sidecar), RESERVED)
    assert result.table.column("cd").to_pylist() == ["7", "007"]
    assert [p[2].split(":")[0] for p in result.problems] == ["line 2", "line 3"]
