"""How a stage works row by row on the executors: one guarded Arrow map.

It owns the partitioning (from a per-task size), the per-task state (built once per task),
the per-row catch that turns an exception into an error row with the stage's class, and one
persisted result, so that a stage writes its good rows and records its bad ones from the
same computation. Every row-wise stage (catalog, features, pairs) goes through it.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import partial

import pyarrow as pa
from pyspark.sql import DataFrame
from pyspark.sql.pandas.types import from_arrow_schema

RowWork = Callable[[dict], list[dict]]
ERROR_FIELDS = [pa.field("error_class", pa.string()), pa.field("message", pa.string())]


@dataclass(frozen=True)
class Mapped:
    good: DataFrame  # the rows without an error, error columns dropped
    errors: DataFrame  # the error rows: the input's identity columns, error_class, message


def guarded_batches(
    batches: Iterator[pa.RecordBatch], *, make_work: Callable[[], RowWork], schema: pa.Schema, error_class: str
) -> Iterator[pa.RecordBatch]:
    """Each input row through `work`; a row that raises becomes one error row (its identity
    columns, i.e. those of `schema` it has, with the class and the exception)."""
    work = make_work()
    for batch in batches:
        out: list[dict] = []
        for row in batch_rows(batch):
            try:
                out.extend(work(row))
            except Exception as exc:  # one bad row costs that row, never the task
                identity = {k: v for k, v in row.items() if k in schema.names}
                out.append({**identity, "error_class": error_class, "message": f"{type(exc).__name__}: {exc}"})
        yield pa.RecordBatch.from_pylist(out, schema=schema)


def batch_rows(batch: pa.RecordBatch) -> list[dict]:
    """The batch's rows as dicts. A list of numbers comes as a numpy view of the batch's
    values (None for a null list), not as Python ints: a pair of files brings ten thousand
    hashes and times to the verifier, and making ints of them, then arrays again, cost it
    about 1 ms per pair."""
    columns = {}
    for name, column in zip(batch.schema.names, batch.columns, strict=True):
        kind = column.type
        if pa.types.is_list(kind) and (pa.types.is_integer(kind.value_type) or pa.types.is_floating(kind.value_type)):
            values, offsets = column.values.to_numpy(zero_copy_only=False), column.offsets.to_numpy()
            valid = column.is_valid().to_numpy(zero_copy_only=False)
            columns[name] = [values[offsets[i] : offsets[i + 1]] if valid[i] else None for i in range(len(column))]
        else:
            columns[name] = column.to_pylist()
    return [dict(zip(columns, row, strict=True)) for row in zip(*columns.values(), strict=True)]


def tasks_for(count: int, per_task: int) -> int:
    """How many tasks `count` rows make at `per_task` rows each."""
    return max(1, math.ceil(count / per_task))


@contextlib.contextmanager
def map_rows(
    rows: DataFrame,
    *,
    tasks: int | None,
    keys: tuple[str, ...] = (),
    make_work: Callable[[], RowWork],
    schema: pa.Schema,
    error_class: str,
) -> Iterator[Mapped]:
    """`rows` mapped by `make_work()`'s function into `schema` (which ends with
    ERROR_FIELDS); persisted while the block runs. The rows are cut into `tasks` tasks,
    hashed by `keys` or spread evenly; with `tasks` None they are mapped in the partitions
    they come in, for a caller whose last shuffle already cut them so (shuffling them once
    more would move every row again)."""
    mapper = partial(guarded_batches, make_work=make_work, schema=schema, error_class=error_class)
    if tasks is not None:
        rows = rows.repartition(tasks, *keys)
    results = rows.mapInArrow(mapper, from_arrow_schema(schema)).persist()
    try:
        yield Mapped(
            results.where("error_class IS NULL").drop("error_class", "message"),
            results.where("error_class IS NOT NULL"),
        )
    finally:
        results.unpersist()


def with_errors(*fields: pa.Field | tuple[str, pa.DataType]) -> pa.Schema:
    """A result schema: the stage's own fields, then the error columns."""
    return pa.schema([*fields, *ERROR_FIELDS])
