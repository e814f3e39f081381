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


def test_a_write_outside_a_stage_is_refused():
    with pytest.raises(RuntimeError, match="outside a stage"):
        run_log()._in_order("candidates")


@pytest.mark.parametrize(
    ("stage", "writes", "refused"),
    [
        ("candidates", ["candidates", "shape_index", "oversized_buckets"], "after shape_index"),
        ("candidates", ["candidates", "splits"], "does not write splits"),
        ("splits", ["moves", "splits", "moves"], "out of its kill-safe order"),
        ("pairs", ["pairs", "candidates", "errors"], "after candidates"),
        # The candidates' edges, then those of the pairs proposed through a pivot.
        ("pairs", ["pairs", "errors", "candidates", "pairs", "errors", "candidates"], None),
        # One summary and one detail table per assignment: the audit starts its order again.
        ("audit", ["audit", "audit_leaks", "audit", "audit_leaks"], None),
    ],
)
def test_a_stage_writes_in_its_kill_safe_order(stage, writes, refused):
    run = run_log()
    with run.stage(stage):
        for name in writes[:-1]:
            run._in_order(name)
        if refused is None:
            run._in_order(writes[-1])
        else:
            with pytest.raises(RuntimeError, match=refused):
                run._in_order(writes[-1])


def test_fixed_schemas_are_declared_once_and_read_by_their_stages():
    from leakfree.features import FEATURES_SCHEMA
    from leakfree.pairs import PAIR_SCHEMA

    fixed = [name for name, table in tables.REGISTRY.items() if table.schema is not None]
    assert {"runs", "errors", "features", "band_index", "shape_index", "candidates", "pairs"} <= set(fixed)
    for name in fixed:
        assert tables.spark_schema(name).fieldNames() == tables.schema(name).names
    assert FEATURES_SCHEMA is tables.schema("features")
    assert [*PAIR_SCHEMA.names, "run_id"] == tables.schema("pairs").names
    assert "run_id" not in tables.spark_schema("clusters", without=("run_id",)).fieldNames()
    with pytest.raises(ValueError, match="follow its stage"):
        tables.schema("catalog")  # the sidecar's columns vary
