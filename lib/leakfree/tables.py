"""The warehouse: Delta tables by name, written in single transactions, queryable by name."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from functools import reduce

import pyarrow as pa
from delta.tables import DeltaMergeBuilder, DeltaTable
from pyspark.errors import AnalysisException
from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql.pandas.types import from_arrow_schema
from pyspark.sql.types import StructType

from leakfree import storage
from leakfree.errors import LeakfreeError


@dataclass(frozen=True)
class Table:
    """How one table is written: its `mode` (a key of WRITE_MODES) and the `keys` that
    identify a row."""

    name: str
    mode: str
    keys: tuple[str, ...] = ()
    first_run_column: str = ""  # snapshot tables: the run that first wrote the row
    # The columns, where they are fixed; None where the stage's frame decides them (the
    # catalog's sidecar columns, the groups' and audits' derived columns).
    schema: pa.Schema | None = None

    def __post_init__(self) -> None:
        if self.mode not in WRITE_MODES:
            raise ValueError(f"table {self.name}: unknown write mode {self.mode!r}")


WRITE_MODES = {
    "upsert": "rows replace those with the same keys, others are added",
    "run": "rows of this run (and of one stage, where several write it); a resumed run replaces what it wrote",
    "snapshot": "the live state merged in: new rows inserted, changed ones updated, missing ones retired",
    "add_missing": "rows with new keys are added; a row never changes once written",
    "index": "appended, last in its stage: what it does not list is done again by a rerun",
    "replace": "the whole table is this run's result",
    "per_key": "the rows of one key value (one audit) replace those of the same value",
}


_COUNTS = pa.map_(pa.string(), pa.int64())
_MOMENT = pa.timestamp("us", tz="UTC")
# Each stage's counters are named for what they count (files_read, pairs_verified, ...), so
# a nightly history reads the same in SQL for every stage: stages[i].counters['files_read'].
_STAGE = pa.struct([("stage", pa.string()), ("counters", _COUNTS), ("errors", pa.int64()), ("seconds", pa.float64())])
_SEGMENT = pa.struct([("family", pa.string()), ("start_s", pa.float64()), ("signature", pa.binary())])
_RUNS = pa.schema(
    [
        pa.field("run_id", pa.string(), nullable=False),
        ("command", pa.string()),
        ("status", pa.string()),
        ("message", pa.string()),
        ("started_at", _MOMENT),
        ("ended_at", _MOMENT),
        ("config_digest", pa.string()),
        ("stages", pa.list_(_STAGE)),
        ("changes", _COUNTS),
    ]
)
_ERRORS = pa.schema(
    [
        pa.field("run_id", pa.string(), nullable=False),
        ("stage", pa.string()),
        ("path", pa.string()),
        ("file_id", pa.int64()),
        pa.field("error_class", pa.string(), nullable=False),
        ("message", pa.string()),
    ]
)
_FEATURES = pa.schema(
    [
        ("file_id", pa.int64()),
        ("content_sha256", pa.string()),
        ("pcm_sha256", pa.string()),
        ("decoded_s", pa.float64()),
        ("capped", pa.bool_()),
        ("flag", pa.string()),
        ("active_s", pa.float64()),
        ("hop_s", pa.float64()),
        ("hashes", pa.list_(pa.int32())),
        ("times", pa.list_(pa.int32())),
        ("triplet_hashes", pa.list_(pa.int32())),
        ("triplet_points", pa.list_(pa.int32())),
        ("segments", pa.list_(_SEGMENT)),
        ("caption_signature", pa.binary()),
        ("logmel", pa.binary()),
        ("logmel_bands", pa.int32()),
        ("logmel_hop_s", pa.float64()),
    ]
)
_BAND_INDEX = pa.schema(
    [
        ("file_id", pa.int64()),
        ("content_sha256", pa.string()),
        ("source", pa.string()),
        ("band", pa.int32()),
        ("key", pa.int64()),
    ]
)
# shapes: float16, windows x shapes.dimension.
_SHAPE_INDEX = pa.schema([("file_id", pa.int64()), ("content_sha256", pa.string()), ("shapes", pa.binary())])
_CANDIDATES = pa.schema(
    [("file_a", pa.int64()), ("file_b", pa.int64()), ("sources", pa.list_(pa.string())), ("verified", pa.bool_())]
)
_PAIRS = pa.schema(
    [
        ("file_a", pa.int64()),
        ("file_b", pa.int64()),
        ("method", pa.string()),
        ("correlation", pa.float64()),
        ("offset_s", pa.float64()),
        ("overlap_s", pa.float64()),
        ("jaccard", pa.float64()),
        ("containment", pa.float64()),
        ("aligned_hashes", pa.int32()),
        ("matched_s", pa.float64()),
        ("aligned_share", pa.float64()),
        ("time_scale", pa.float64()),
        ("freq_scale", pa.float64()),
        ("triplet_votes", pa.int32()),
        ("aligned_peaks", pa.int32()),
        ("peak_significance", pa.float64()),
        ("rival_significance", pa.float64()),
        ("echo_s", pa.float64()),
        # The pivot (through.py) the pair was proposed through: both are verified copies of it.
        ("via_file", pa.int64()),
        ("caption_jaccard", pa.float64()),
        ("run_id", pa.string()),
    ]
)
_RELATIONS = pa.schema(
    [
        ("run_id", pa.string()),
        ("relation", pa.string()),
        ("kind", pa.string()),
        ("role", pa.string()),
        ("links", pa.int64()),
        ("joining", pa.int64()),
        ("largest_value", pa.string()),
        ("largest_files", pa.int64()),
        ("largest_share", pa.float64()),
        ("coarse", pa.bool_()),
        ("note", pa.string()),
    ]
)
_CLUSTERS = pa.schema(
    [
        ("file_id", pa.int64()),
        ("group_id", pa.int64()),
        ("cluster_id", pa.int64()),
        ("cluster_size", pa.int64()),
        ("canonical", pa.bool_()),
        ("reason", pa.string()),
        ("run_id", pa.string()),
    ]
)
_CANONICAL_CHANGES = pa.schema(
    [
        ("run_id", pa.string()),
        ("cluster_id", pa.int64()),
        ("from_file", pa.int64()),
        ("to_file", pa.int64()),
        ("reason", pa.string()),
    ]
)
_MOVES = pa.schema(
    [
        ("run_id", pa.string()),
        ("file_id", pa.int64()),
        ("group_id", pa.int64()),
        ("from_split", pa.string()),
        ("to_split", pa.string()),
        ("reason", pa.string()),
    ]
)
_SPLIT_BALANCE = pa.schema(
    [
        ("run_id", pa.string()),
        ("split", pa.string()),
        ("files", pa.int64()),
        ("seconds", pa.float64()),
        ("file_share", pa.float64()),
        ("duration_share", pa.float64()),
        ("target", pa.float64()),
        ("warnings", pa.string()),
    ]
)
# The evidence of a verified edge, as in pairs (the method first): what the contamination
# tables keep of each match.
EVIDENCE = [f for f in _PAIRS if f.name not in ("file_a", "file_b", "via_file", "caption_jaccard", "run_id")]
_REFERENCE_SETS = pa.schema(
    [
        ("reference", pa.string()),
        ("roots", pa.list_(pa.string())),
        ("list", pa.string()),
        ("metadata", pa.string()),
        ("declared_run", pa.string()),
    ]
)
_CONTAMINATION = pa.schema(
    [
        ("reference", pa.string()),
        ("reference_file", pa.int64()),
        ("reference_path", pa.string()),
        ("library_file", pa.int64()),
        ("library_path", pa.string()),
        *EVIDENCE,
        ("shared_key", pa.string()),
        ("run_id", pa.string()),
    ]
)
_REFERENCE_OVERLAP = pa.schema(
    [
        ("reference_a", pa.string()),
        ("file_a", pa.int64()),
        ("path_a", pa.string()),
        ("reference_b", pa.string()),
        ("file_b", pa.int64()),
        ("path_b", pa.string()),
        *EVIDENCE,
        ("shared_key", pa.string()),
        ("run_id", pa.string()),
    ]
)
_CONTAMINATION_CHECKED = pa.schema(
    [("reference", pa.string()), ("file_id", pa.int64()), ("content_sha256", pa.string()), ("run_id", pa.string())]
)
_CONTAMINATION_SUMMARY = pa.schema(
    [
        ("run_id", pa.string()),
        ("reference", pa.string()),
        ("reference_files", pa.int64()),
        ("list_entries", pa.int64()),
        ("unmatched_entries", pa.int64()),
        ("reference_files_checked", pa.int64()),
        ("library_files", pa.int64()),
        ("library_files_checked", pa.int64()),
        ("contaminated_files", pa.int64()),
        ("share", pa.float64()),
    ]
)

# Every table leakfree writes, in pipeline order, and how.
REGISTRY: dict[str, Table] = {
    t.name: t
    for t in (
        Table("runs", "upsert", ("run_id",), schema=_RUNS),
        Table("errors", "run", ("run_id", "stage"), schema=_ERRORS),
        Table("catalog", "snapshot", ("file_id",), first_run_column="first_seen_run"),
        Table("features", "upsert", ("file_id",), schema=_FEATURES),
        Table("band_index", "index", ("file_id", "source", "band"), schema=_BAND_INDEX),
        Table("shape_index", "add_missing", ("file_id", "content_sha256"), schema=_SHAPE_INDEX),
        Table("mid_shape_index", "add_missing", ("file_id", "content_sha256"), schema=_SHAPE_INDEX),
        Table("candidates", "add_missing", ("file_a", "file_b"), schema=_CANDIDATES),
        Table("oversized_buckets", "run", ("run_id", "source", "band", "key")),
        Table("pairs", "add_missing", ("file_a", "file_b", "method"), schema=_PAIRS),
        Table("links", "replace", ("file_a", "file_b", "relation")),
        Table("relations", "run", ("run_id", "relation"), schema=_RELATIONS),
        Table("groups", "replace", ("file_id",)),
        Table("clusters", "replace", ("file_id",), schema=_CLUSTERS),
        Table("canonical_changes", "run", ("run_id", "cluster_id"), schema=_CANONICAL_CHANGES),
        Table("splits", "snapshot", ("file_id",), first_run_column="assigned_run"),
        Table("moves", "run", ("run_id", "file_id"), schema=_MOVES),
        Table("split_balance", "run", ("run_id", "split"), schema=_SPLIT_BALANCE),
        Table("audit", "per_key", ("audit", "kind", "from_split", "to_split")),
        Table("audit_leaks", "per_key", ("audit", "kind", "file_id", "other_split")),
        # Reference sets (contamination.py): catalogued, fingerprinted and indexed as the
        # library is, in tables of their own, so that no reference file is ever split.
        Table("reference_sets", "upsert", ("reference",), schema=_REFERENCE_SETS),
        Table("reference_catalog", "snapshot", ("file_id",), first_run_column="first_seen_run"),
        Table("reference_features", "upsert", ("file_id",), schema=_FEATURES),
        Table(
            "contamination",
            "add_missing",
            ("reference", "reference_file", "library_file", "method"),
            schema=_CONTAMINATION,
        ),
        Table("reference_overlap", "add_missing", ("file_a", "file_b", "method"), schema=_REFERENCE_OVERLAP),
        Table(
            "contamination_checked",
            "add_missing",
            ("reference", "file_id", "content_sha256"),
            schema=_CONTAMINATION_CHECKED,
        ),
        Table("reference_shapes", "add_missing", ("file_id", "content_sha256"), schema=_SHAPE_INDEX),
        Table("reference_index", "index", ("file_id", "source", "band"), schema=_BAND_INDEX),
        Table("contamination_summary", "run", ("run_id", "reference"), schema=_CONTAMINATION_SUMMARY),
    )
}
TABLES = tuple(REGISTRY)

# The tables each stage writes, in the order that makes killing it at any point safe: what
# marks work as done (an index, a verified flag, the new splits) comes after what the work
# produced, so a rerun redoes it, and logs of changes (moves, canonical changes) come before
# the state they change, so a rerun finds the same changes to log. RunLog.write refuses a
# stage's write out of this order.
STAGE_WRITES: dict[str, tuple[str, ...]] = {
    "catalog": ("catalog", "errors"),
    "features": ("features", "errors"),
    "candidates": ("candidates", "oversized_buckets", "shape_index", "mid_shape_index", "band_index"),
    "pairs": ("pairs", "errors", "candidates"),
    "groups": ("links", "groups", "relations", "canonical_changes", "clusters"),
    "splits": ("moves", "splits", "split_balance"),
    "audit": ("audit", "audit_leaks"),
    "contamination": (
        "reference_sets",
        "reference_catalog",
        "reference_features",
        "errors",
        "contamination",
        "reference_overlap",
        "contamination_checked",
        "reference_shapes",
        "reference_index",
        "contamination_summary",
    ),
}
# Stages that write their whole order once per item (the audit: once per assignment; the
# pairs: once for the candidates, once for those proposed through a pivot).
REPEATING_STAGES = ("audit", "pairs")


def schema(name: str) -> pa.Schema:
    """The columns of a table whose columns are fixed (REGISTRY)."""
    fixed = REGISTRY[name].schema
    if fixed is None:
        raise ValueError(f"the {name} table's columns follow its stage's frame")
    return fixed


def spark_schema(name: str, *, without: tuple[str, ...] = ()) -> StructType:
    """A fixed table's columns as Spark declares them, less `without` (e.g. the run_id a
    stage adds last)."""
    fixed = schema(name)
    return from_arrow_schema(pa.schema([f for f in fixed if f.name not in without]))


def table_path(warehouse: str, name: str) -> str:
    base = storage.canonical(warehouse)
    return f"{base.rstrip('/')}/{name}"


def exists(spark: SparkSession, warehouse: str, name: str) -> bool:
    return DeltaTable.isDeltaTable(spark, table_path(warehouse, name))


class MissingTable(LeakfreeError):
    """A table the command needs that no run has written to this warehouse yet."""


def read(spark: SparkSession, warehouse: str, name: str) -> DataFrame:
    try:
        return spark.read.format("delta").load(table_path(warehouse, name))
    except AnalysisException as exc:
        if "PATH_NOT_FOUND" in str(exc) or "DELTA_MISSING_DELTA_TABLE" in str(exc):
            raise MissingTable(
                f"the warehouse {warehouse} has no {name} table yet: "
                "run `leakfree run` (or the stage that writes it) first"
            ) from None
        raise


def clear_aborted_creation(spark: SparkSession, warehouse: str, name: str) -> None:
    """Remove a `_delta_log` that holds nothing but hidden temporary files (or nothing at
    all): what a run killed while creating the table leaves behind, since Delta writes its
    first commit as `.00…0.json.<uuid>.tmp` and only then renames it into place. Nothing was
    committed there, yet Delta would refuse to create the table over it ("doesn't exist")
    and every rerun would fail. A log holding any other file is never touched."""
    if exists(spark, warehouse, name):
        return
    jvm = spark.sparkContext._jvm
    log_dir = jvm.org.apache.hadoop.fs.Path(f"{table_path(warehouse, name)}/_delta_log")
    fs = log_dir.getFileSystem(spark.sparkContext._jsc.hadoopConfiguration())
    if not fs.exists(log_dir):
        return
    files = fs.listFiles(log_dir, True)
    while files.hasNext():
        if not files.next().getPath().getName().startswith("."):
            return
    fs.delete(log_dir, True)


def ensure(spark: SparkSession, warehouse: str, name: str, columns: StructType | None = None) -> DeltaTable:
    """The table, created empty with `columns` (by default its registered schema) if it is
    not there yet, and registered; a table written by an older leakfree gains the columns it
    lacks (null in its old rows)."""
    columns = columns or spark_schema(name)
    path = table_path(warehouse, name)
    clear_aborted_creation(spark, warehouse, name)
    table = DeltaTable.createIfNotExists(spark).location(path).addColumns(columns).execute()
    if set(columns.fieldNames()) - set(table.toDF().columns):
        _append_evolving(spark.createDataFrame([], columns), warehouse, name)
    register(spark, warehouse, [name])
    return table


def write(df: DataFrame, warehouse: str, name: str, *, run_id: str = "", resumed: bool = True, where: str = "") -> bool:
    """Write `df` to table `name` in one commit, the way REGISTRY says. `run_id` and
    `resumed` (whether this run id ran before) serve the run and snapshot modes, `where`
    narrows a run's rows (one stage's errors) or names the key value of a per_key write.
    Returns whether an upsert found any of its keys there already."""
    table = REGISTRY[name]
    if table.mode == "upsert":
        return upsert(df, warehouse, name, list(table.keys))
    if table.mode == "run" and not resumed:
        append(df, warehouse, name)  # a new run has nothing to replace
    elif table.mode == "run":
        replace_where(df, warehouse, name, " AND ".join(filter(None, [f"run_id = {sql_string(run_id)}", where])))
    elif table.mode == "per_key":
        if not where:
            raise ValueError(f"a write to {name} needs the key value it replaces")
        replace_where(df, warehouse, name, where)
    elif table.mode == "snapshot":
        merge_snapshot(df, warehouse, name, run_id=run_id, first_run_column=table.first_run_column)
    elif table.mode == "add_missing":
        add_missing(df, warehouse, name, list(table.keys))
    elif table.mode == "index":
        append(df, warehouse, name)
    else:
        overwrite(df, warehouse, name)
    return False


def mark(spark: SparkSession, warehouse: str, name: str, rows: DataFrame, values: dict[str, str]) -> None:
    """Set `values` (column: SQL expression) on the rows matching `rows` by the table's keys,
    in one commit."""
    _merge_by_keys(spark, warehouse, name, rows).whenMatchedUpdate(set=values).execute()


def merge_actions(
    spark: SparkSession,
    warehouse: str,
    name: str,
    rows: DataFrame,
    updates: dict[str, dict[str, str]],
    inserts: dict[str, dict[str, str]],
) -> None:
    """In one commit, each row of `rows` (the table's keys and an `action`): on the row it
    matches by the keys, set updates[action] (column: SQL expression, `t` the table's row);
    where it matches none, insert inserts[action] (`s` the row's columns). Actions missing
    from either change nothing there."""
    merge = _merge_by_keys(spark, warehouse, name, rows)
    for action, values in updates.items():
        merge = merge.whenMatchedUpdate(condition=f"s.action = {sql_string(action)}", set=values)
    for action, values in inserts.items():
        merge = merge.whenNotMatchedInsert(condition=f"s.action = {sql_string(action)}", values=values)
    merge.execute()


def _merge_by_keys(spark: SparkSession, warehouse: str, name: str, rows: DataFrame) -> DeltaMergeBuilder:
    """A merge of `rows` (as `s`) into the table (as `t`) matching on the table's keys."""
    on = " AND ".join(f"t.`{k}` = s.`{k}`" for k in REGISTRY[name].keys)
    return DeltaTable.forPath(spark, table_path(warehouse, name)).alias("t").merge(rows.alias("s"), on)


def delete_matching(spark: SparkSession, warehouse: str, name: str, keys: DataFrame, condition: str) -> None:
    """Delete, in one commit, the rows `t` of the table that match a row `s` of `keys`."""
    DeltaTable.forPath(spark, table_path(warehouse, name)).alias("t").merge(
        keys.alias("s"), condition
    ).whenMatchedDelete().execute()


def replace_where(df: DataFrame, warehouse: str, name: str, condition: str) -> None:
    """Swap the rows matching `condition` for `df` in one commit, so a rerun never doubles them."""
    (df.write.format("delta").mode("overwrite").option("replaceWhere", condition).save(table_path(warehouse, name)))


def append(df: DataFrame, warehouse: str, name: str) -> None:
    """Add rows in one commit."""
    clear_aborted_creation(df.sparkSession, warehouse, name)
    df.write.format("delta").mode("append").save(table_path(warehouse, name))


def add_missing(df: DataFrame, warehouse: str, name: str, keys: list[str]) -> None:
    """Append the rows of `df` whose `keys` are not in the table yet, in one commit: for
    rows that, once written, never change (rerunning it changes nothing). Several times
    cheaper than a MERGE, which costs a nightly run seconds even for a few rows."""
    known = read(df.sparkSession, warehouse, name).select(*keys)
    append(df.join(known, keys, "left_anti").select(*df.columns), warehouse, name)


def overwrite(df: DataFrame, warehouse: str, name: str) -> None:
    """Replace the whole table in one commit; history keeps the previous versions."""
    clear_aborted_creation(df.sparkSession, warehouse, name)
    (df.write.format("delta").mode("overwrite").option("overwriteSchema", "true").save(table_path(warehouse, name)))
    register(df.sparkSession, warehouse, [name])


def upsert(df: DataFrame, warehouse: str, name: str, keys: list[str]) -> bool:
    """Insert or replace the rows of `df` by `keys`, in one commit (rerunning it changes
    nothing); returns whether any of those keys was there already."""
    spark = df.sparkSession
    if not exists(spark, warehouse, name):
        overwrite(df, warehouse, name)
        return False
    if read(spark, warehouse, name).join(df.select(*keys), keys, "left_semi").isEmpty():
        # Only new keys (a new run's row, new files' features): an append costs a fraction
        # of a MERGE, which takes seconds even for one row.
        _append_evolving(df, warehouse, name)
        return False
    on = " AND ".join(f"t.`{k}` = s.`{k}`" for k in keys)
    (
        ensure(spark, warehouse, name, df.schema)
        .alias("t")
        .merge(df.alias("s"), on)
        .withSchemaEvolution()
        .whenMatchedUpdateAll()
        .whenNotMatchedInsertAll()
        .execute()
    )
    return True


def merge_snapshot(current: DataFrame, warehouse: str, name: str, *, run_id: str, first_run_column: str) -> None:
    """Merge the current state of every live row (keyed by file_id) into `name` in one
    commit: new rows are inserted, rows whose values changed (or that come back) updated,
    and rows missing from `current` marked retired, not deleted, so history keeps them.
    Rows carry the run that first wrote them, the run that last changed them and `retired`."""
    run = F.lit(run_id)
    source = current.withColumns({first_run_column: run, "updated_run": run, "retired": F.lit(False)})
    spark = current.sparkSession
    if not exists(spark, warehouse, name):
        overwrite(source, warehouse, name)
        return
    compared = [c for c in current.columns if c != "file_id"]
    target = read(spark, warehouse, name)
    same_types = all(c in target.columns and target.schema[c].dataType == current.schema[c].dataType for c in compared)
    if same_types and _only_inserts(current, target, compared):
        # A night that only adds files: appending them costs a fraction of the MERGE.
        _append_evolving(source.join(target.select("file_id"), "file_id", "left_anti"), warehouse, name)
        return
    update = {f"`{c}`": f"s.`{c}`" for c in compared} | {"updated_run": "s.updated_run", "retired": "false"}
    (
        ensure(spark, warehouse, name, source.schema)
        .alias("t")
        .merge(source.alias("s"), "t.file_id = s.file_id")
        .withSchemaEvolution()
        .whenMatchedUpdate(condition=_changed(compared), set=update)
        .whenNotMatchedInsertAll()
        .whenNotMatchedBySourceUpdate(
            condition="NOT t.retired", set={"retired": "true", "updated_run": sql_string(run_id)}
        )
        .execute()
    )


def _only_inserts(current: DataFrame, target: DataFrame, compared: list[str]) -> bool:
    """Whether merging `current` into `target` would only insert rows: no row changes,
    comes back from retirement or is retired. One pass over both."""
    joined = target.alias("t").join(current.alias("s"), F.col("t.file_id") == F.col("s.file_id"), "full_outer")
    present, listed = F.col("t.file_id").isNotNull(), F.col("s.file_id").isNotNull()
    retire = present & ~listed & ~F.col("t.retired")
    return joined.where(retire | (present & listed & _changed(compared))).isEmpty()


def _changed(compared: list[str]) -> Column:
    """Whether a target row `t` differs from its source row `s` in any compared column, or
    comes back from retirement: the rows a snapshot merge updates."""
    differs = [~F.col(f"t.`{c}`").eqNullSafe(F.col(f"s.`{c}`")) for c in compared]
    return reduce(lambda a, b: a | b, differs, F.col("t.retired"))


def _append_evolving(df: DataFrame, warehouse: str, name: str) -> None:
    """Append, adding any new column, as the MERGE it stands in for would."""
    df.write.format("delta").mode("append").option("mergeSchema", "true").save(table_path(warehouse, name))


def register(spark: SparkSession, warehouse: str, names: Iterable[str] = TABLES) -> list[str]:
    """Make tables queryable by name in this session's catalog; returns those found."""
    found = []
    for name in names:
        path = table_path(warehouse, name)
        if DeltaTable.isDeltaTable(spark, path):
            _unregister_elsewhere(spark, name, path)
            spark.sql(f"CREATE TABLE IF NOT EXISTS {name} USING delta LOCATION {sql_string(path)}")
            found.append(name)
    return found


def _unregister_elsewhere(spark: SparkSession, name: str, path: str) -> None:
    """Forget a registration of `name` that points at another warehouse (one process may
    serve several), so the name never reads the wrong tables. Only a registration
    (an external table) is dropped; the files stay."""
    catalog = spark._jsparkSession.sessionState().catalog()
    identifier = spark._jvm.org.apache.spark.sql.catalyst.TableIdentifier.apply(name)
    if not catalog.tableExists(identifier):
        return
    meta = catalog.getTableMetadata(identifier)
    location = meta.location()
    where = str(location.getPath()) if location.getScheme() == "file" else str(location.toString())
    if storage.canonical(where) == storage.canonical(path):
        return
    if meta.tableType().name() != "EXTERNAL":
        raise LeakfreeError(f"the session catalog has a managed table {name!r}; leakfree will not replace it")
    spark.sql(f"DROP TABLE {name}")


def registration_sql(warehouse: str, names: Iterable[str]) -> str:
    """The statements that register the tables by name, for `spark-sql -i`."""
    return "".join(
        f"CREATE TABLE IF NOT EXISTS {name} USING delta LOCATION {sql_string(table_path(warehouse, name))};\n"
        for name in names
    )


def sql_string(text: str) -> str:
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


def live_features(spark: SparkSession, warehouse: str) -> DataFrame:
    """Features of the files currently in the catalog (retired files take no part)."""
    live = read(spark, warehouse, "catalog").where("NOT retired").select("file_id", "content_sha256")
    return read(spark, warehouse, "features").join(live, ["file_id", "content_sha256"])
