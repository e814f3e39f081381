"""The table registry: every table has a write mode, every stage a kill-safe write order,
and a stage that writes out of that order is stopped."""

from __future__ import annotations

import pytest

from leakfree import tables
from leakfree.pipeline import STAGES
from leakfree.runs import RunLog


def run_log() -> RunLog:
    return RunLog(spark=None, warehouse="unused", run_id="r", command="test", config_digest="")


def test_every_table_is_registered_and_written_by_a_stage():
    written = {name for order in tables.STAGE_WRITES.values() for name in order}
    assert written <= set(tables.REGISTRY)
    assert set(tables.REGISTRY) - written == {"runs"}  # the run log writes its own row
    assert set(tables.STAGE_WRITES) <= set(STAGES)
    assert all(t.mode in tables.WRITE_MODES for t in tables.REGISTRY.values())
    keyed = {"upsert", "add_missing", "snapshot"}
    assert all(t.keys for t in tables.REGISTRY.values() if t.mode in keyed)
    assert all(t.first_run_column for t in tables.REGISTRY.values() if t.mode == "snapshot")


def test_a_write_out_of_the_stages_order_is_refused():
    run = run_log()
    with pytest.raises(RuntimeError, match="outside a stage"):
        run._in_order("candidates")
    with run.stage("candidates"):
        run._in_order("candidates")
        run._in_order("shape_index")
        with pytest.raises(RuntimeError, match="after shape_index"):
            run._in_order("oversized_buckets")
        run._in_order("band_index")
        with pytest.raises(RuntimeError, match="does not write splits"):
            run._in_order("splits")
    with run.stage("audit"):  # one summary and one detail table per assignment: the order starts again
        for _ in range(2):
            run._in_order("audit")
            run._in_order("audit_leaks")
    with run.stage("splits"):
        run._in_order("moves")
        run._in_order("splits")
        with pytest.raises(RuntimeError, match="out of its kill-safe order"):
            run._in_order("moves")
