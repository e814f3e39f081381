from __future__ import annotations

import csv
import io

from leakfree.export import write_csv


def test_cells_a_spreadsheet_would_run_are_written_as_text():
    out = io.StringIO()
    write_csv(out, ["path", "n"], [['=HYPERLINK("x")', 3], ["+1", -2], ["@sum", None], ["-x", 1.5], ["ok.wav", 0]])
    rows = list(csv.reader(io.StringIO(out.getvalue())))
    assert [r[0] for r in rows[1:]] == ['\'=HYPERLINK("x")', "'+1", "'@sum", "'-x", "ok.wav"]
    assert [r[1] for r in rows[1:]] == ["3", "-2", "", "1.5", "0"]  # numbers are numbers, not formulas


def test_raw_keeps_every_cell_as_it_is():
    out = io.StringIO()
    write_csv(out, ["path"], [["=1+1"], ["line\nbreak.wav"]], raw=True)
    assert [r[0] for r in csv.reader(io.StringIO(out.getvalue()))] == ["path", "=1+1", "line\nbreak.wav"]
