"""The contamination stage: which library files copy a sound of a reference set (a
benchmark's evaluation set), decided from the audio.

Reference sets are catalogued, fingerprinted and indexed as the library is, into tables of
their own (reference_catalog, reference_features, reference_index, reference_shapes): no
reference file gets a split, joins a group or changes the library's splits. Reference files
meet library files through the library's band index (exact digests included) and window
shapes, and the pairs stage's verifier decides; a metadata key both sides hold
(contamination.key_column) counts as evidence of its own. Reference sets are matched
against each other too (reference_overlap).

Incremental both ways: a reference file not indexed yet is checked against the whole
library; a library file not yet checked against a reference set (contamination_checked)
is checked against that set's indexed files.
"""

from __future__ import annotations

import logging
from functools import reduce

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from leakfree import catalog, tables
from leakfree.candidates import BUCKET, band_rows, bandings_for, nearest_pairs, shape_rows
from leakfree.config import Config
from leakfree.edges import AUDIO, CAPTION, DUPLICATE_RELATIONS, EXACT_BYTES, EXACT_PCM, SHAPE, SHARED_KEY
from leakfree.errors import LeakfreeError
from leakfree.features import fingerprinted
from leakfree.pairs import verified_pairs
from leakfree.references import ReferenceListing, ReferenceSet, declared, list_references
from leakfree.runs import RunLog, StageStats

log = logging.getLogger("leakfree")

EVIDENCE_COLUMNS = [f.name for f in tables.EVIDENCE]


class NotIndexed(LeakfreeError):
    """A contamination check asked of a warehouse whose library is not indexed yet."""


def remembered(spark: SparkSession, warehouse: str) -> dict[str, ReferenceSet]:
    """The reference sets declared on earlier runs (table reference_sets)."""
    if not tables.exists(spark, warehouse, "reference_sets"):
        return {}
    return {
        r.reference: ReferenceSet(r.reference, tuple(r.roots), r.list or "", r.metadata or "")
        for r in tables.read(spark, warehouse, "reference_sets").collect()
    }


def findings(spark: SparkSession, warehouse: str) -> DataFrame:
    """The contamination rows of the library files in the catalog now, with their path
    relative to their root (none before a first check)."""
    if not tables.exists(spark, warehouse, "contamination"):
        return spark.createDataFrame([], tables.spark_schema("contamination")).withColumn("rel_path", F.lit(""))
    live = (
        tables.read(spark, warehouse, "catalog")
        .where("NOT retired")
        .select(F.col("file_id").alias("library_file"), "rel_path")
    )
    return tables.read(spark, warehouse, "contamination").join(live, "library_file")


def reference_file_id() -> F.Column:
    """A reference file's id: from its set's name and its path, so that a file two sets
    hold has a row in each."""
    return catalog.file_id("_set_path")


def build_contamination(spark: SparkSession, *, cfg: Config, run: RunLog) -> None:
    warehouse = cfg.warehouse.path
    settings = cfg.contamination
    with run.stage("contamination") as stats:
        before = remembered(spark, warehouse)
        for name in sorted(set(settings.forget) - set(before)):
            log.warning("contamination: no reference set %s to forget", name)
        new_declarations = {n: r for n, r in declared(settings).items() if before.get(n) != r}
        references = {n: r for n, r in before.items() if n not in settings.forget} | declared(settings)
        stats.counters["reference_sets"] = len(references)
        if not references and not tables.exists(spark, warehouse, "reference_catalog"):
            log.info("contamination: no reference sets declared")
            return
        if not tables.exists(spark, warehouse, "band_index"):
            raise NotIndexed(f"the library of {warehouse} is not indexed yet: run `leakfree run` first")
        log.info("contamination: reference sets %s", ", ".join(sorted(references)) or "(none left)")
        if new_declarations:
            rows = [(r.name, list(r.roots), r.list, r.metadata, run.run_id) for r in new_declarations.values()]
            run.write(spark.createDataFrame(rows, tables.spark_schema("reference_sets")), "reference_sets")
        if settings.forget and tables.exists(spark, warehouse, "reference_sets"):
            gone = spark.createDataFrame([(n,) for n in settings.forget], "reference string")
            tables.delete_matching(spark, warehouse, "reference_sets", gone, "t.reference = s.reference")

        listing = list_references(references.values(), cfg.library.extensions)
        errors = _catalog_references(spark, cfg, run, references, listing, stats.counters)
        errors += _fingerprint_references(spark, cfg, run, stats.counters)
        _check(spark, cfg, run, list(references), listing, errors, stats)


def _catalog_references(
    spark: SparkSession,
    cfg: Config,
    run: RunLog,
    references: dict[str, ReferenceSet],
    listing: ReferenceListing,
    counters: dict[str, int],
) -> list[tuple]:
    """Merge the listed reference files into reference_catalog; returns the errors."""
    warehouse = cfg.warehouse.path
    listed = (
        spark.createDataFrame(listing.files)
        .withColumn("_set_path", F.concat_ws("\u0000", "reference", "path"))
        .withColumn("file_id", reference_file_id())
        .drop("_set_path")
    )
    counters["reference_files_listed"] = listing.files.num_rows
    known = catalog.known_facts(spark, warehouse, "reference_catalog")
    problems = list(listing.problems)
    with catalog.probed_files(listed, known, cfg.catalog) as probed:
        key = cfg.contamination.key_column
        parts = []
        for ref in references.values():
            current = probed.current.where(F.col("reference") == ref.name)
            if ref.metadata:
                current, found = catalog.with_sidecar(
                    current, listed.where(F.col("reference") == ref.name), ref.metadata, f"reference set {ref.name}"
                )
                problems += found
            parts.append(current.select(*probed.current.columns, *([key] if key in current.columns else [])))
        current = reduce(lambda a, b: a.unionByName(b, allowMissingColumns=True), parts, probed.current.limit(0))
        current = current.persist()
        run.write(current, "reference_catalog")
        counters["reference_files_read"] = probed.pending
        errors = [tuple(r) for r in probed.errors.collect()]
        current.unpersist()
    return [(path, None, error_class, message) for path, error_class, message in errors + problems]


def _fingerprint_references(spark: SparkSession, cfg: Config, run: RunLog, counters: dict[str, int]) -> list[tuple]:
    """Fingerprint the reference files not fingerprinted yet; returns the errors."""
    warehouse = cfg.warehouse.path
    todo = (
        tables.read(spark, warehouse, "reference_catalog")
        .where("NOT retired")
        .select("file_id", "path", "content_sha256", F.lit(None).cast("string").alias("caption"))
    )
    if tables.exists(spark, warehouse, "reference_features"):
        done = tables.read(spark, warehouse, "reference_features").select("file_id", "content_sha256")
        todo = todo.join(done, ["file_id", "content_sha256"], "left_anti")
    pending = todo.count()
    log.info("contamination: fingerprinting %d reference files", pending)
    with fingerprinted(todo, pending, cfg.features) as results:
        counters["reference_files_fingerprinted"] = results.good.count()
        if pending:
            run.write(results.good, "reference_features")
        return [tuple(r) for r in results.errors.select("path", "file_id", "error_class", "message").collect()]


def _live_references(spark: SparkSession, warehouse: str) -> DataFrame:
    """Features of the reference files in reference_catalog now, with their set's name."""
    live = (
        tables.read(spark, warehouse, "reference_catalog")
        .where("NOT retired")
        .select("file_id", "content_sha256", "reference", "path")
    )
    tables.ensure(spark, warehouse, "reference_features")
    return tables.read(spark, warehouse, "reference_features").join(live, ["file_id", "content_sha256"])


def _indexed_library(spark: SparkSession, warehouse: str) -> DataFrame:
    """(file_id, content_sha256) of the library files the candidates stage has indexed."""
    live = tables.read(spark, warehouse, "catalog").where("NOT retired").select("file_id", "content_sha256")
    index = tables.read(spark, warehouse, "band_index").where(F.col("source") == EXACT_BYTES)
    return index.select("file_id", "content_sha256").join(live, ["file_id", "content_sha256"])


def _drop_stale(
    spark: SparkSession, warehouse: str, refs: DataFrame, library: DataFrame, references: list[str]
) -> None:
    """Forget reference files that vanished or changed since they were indexed, and library
    files that did since they were checked, with what was found for them."""
    indexed = tables.read(spark, warehouse, "reference_index").where(F.col("source") == EXACT_BYTES)
    stale = [
        (r.file_id,)
        for r in indexed.select("file_id", "content_sha256")
        .join(refs.select("file_id", "content_sha256"), ["file_id", "content_sha256"], "left_anti")
        .distinct()
        .collect()
    ]
    if stale:
        gone = spark.createDataFrame(stale, "file_id bigint")
        for name, condition in (
            ("reference_index", "t.file_id = s.file_id"),
            ("reference_shapes", "t.file_id = s.file_id"),
            ("contamination", "t.reference_file = s.file_id"),
            ("reference_overlap", "t.file_a = s.file_id OR t.file_b = s.file_id"),
        ):
            tables.delete_matching(spark, warehouse, name, gone, condition)
    checked = tables.read(spark, warehouse, "contamination_checked")
    changed = checked.join(library, ["file_id", "content_sha256"], "left_anti").select("reference", "file_id")
    forgotten = checked.where(~F.col("reference").isin(references)).select("reference", "file_id")
    outdated = changed.unionByName(forgotten).distinct().collect()
    if outdated:
        gone = spark.createDataFrame(outdated, "reference string, file_id bigint")
        on = "t.reference = s.reference AND t.{} = s.file_id"
        tables.delete_matching(spark, warehouse, "contamination_checked", gone, on.format("file_id"))
        tables.delete_matching(spark, warehouse, "contamination", gone, on.format("library_file"))
    log.info("contamination: %d reference files and %d library checks outdated", len(stale), len(outdated))


def _check(
    spark: SparkSession,
    cfg: Config,
    run: RunLog,
    references: list[str],
    listing: ReferenceListing,
    errors: list[tuple],
    stats: StageStats,
) -> None:
    """Match, verify and record: reference files not indexed yet against the whole library
    and the other sets, indexed ones against the library files not checked against them."""
    warehouse = cfg.warehouse.path
    for name in ("contamination", "reference_overlap", "contamination_checked", "reference_shapes", "reference_index"):
        tables.ensure(spark, warehouse, name)
    refs = _live_references(spark, warehouse).persist()
    library = _indexed_library(spark, warehouse).persist()
    _drop_stale(spark, warehouse, refs, library, references)

    indexed_refs = tables.read(spark, warehouse, "reference_index").where(F.col("source") == EXACT_BYTES)
    new_refs = refs.join(indexed_refs.select("file_id", "content_sha256"), ["file_id", "content_sha256"], "left_anti")
    new_refs = new_refs.persist()
    # Library files to check, per reference set: those not checked against it yet.
    checked = tables.read(spark, warehouse, "contamination_checked").select("reference", "file_id", "content_sha256")
    names = spark.createDataFrame([(n,) for n in references], "reference string")
    unchecked = library.crossJoin(names).join(checked, ["reference", "file_id", "content_sha256"], "left_anti")
    unchecked = unchecked.persist()
    counters = stats.counters
    # Counted now: once this run has indexed and checked them, these frames would come out empty.
    checked_now = _counts(new_refs, "reference")
    counters["reference_files_checked"] = sum(checked_now.values())
    counters["library_files_checked"] = unchecked.select("file_id").distinct().count()
    log.info(
        "contamination: checking %d new reference files against the library, %d library files against the sets",
        counters["reference_files_checked"],
        counters["library_files_checked"],
    )

    if counters["reference_files_checked"] or counters["library_files_checked"]:
        _match(spark, cfg, run, refs, new_refs, unchecked, errors, stats)
    else:  # nothing to match: no index to extend, no commit to make but the errors and the summary
        stats.errors = _record_errors(spark, run, errors)
    summary = _summary(spark, warehouse, references, listing, checked_now, library.count(), run.run_id)
    run.write(summary, "contamination_summary")
    counters["contaminated_files"] = sum(r.contaminated_files for r in summary.collect())
    for frame in (refs, library, new_refs, unchecked):
        frame.unpersist()


def _record_errors(spark: SparkSession, run: RunLog, errors: list[tuple]) -> int:
    schema = "path string, file_id bigint, error_class string, message string"
    return run.record_errors("contamination", spark.createDataFrame(errors, schema))


def _match(
    spark: SparkSession,
    cfg: Config,
    run: RunLog,
    refs: DataFrame,
    new_refs: DataFrame,
    unchecked: DataFrame,
    errors: list[tuple],
    stats: StageStats,
) -> None:
    """Propose, verify and record the pairs of the new reference files (`new_refs`) and of
    the library files not checked against a set (`unchecked`), then index and mark them."""
    warehouse = cfg.warehouse.path
    counters = stats.counters
    which = refs.select(F.col("file_id").alias("reference_file"), "reference")
    bandings, caption = bandings_for(cfg.dedup, cfg.features.num_perm)
    new_keys = band_rows(new_refs, bandings, caption).where(F.col("source") != CAPTION).persist()
    new_shapes = shape_rows(new_refs, cfg.dedup.shapes).persist()
    proposed = _proposed(
        spark,
        cfg,
        new_keys if counters["reference_files_checked"] else None,
        new_shapes,
        unchecked if counters["library_files_checked"] else None,
        which,
    )
    proposed = proposed.persist()
    count = counters["pairs_verified"] = proposed.count()
    key_matches = _key_matches(spark, cfg, new_refs, unchecked, which)

    library_features = tables.live_features(spark, warehouse)
    with verified_pairs(
        proposed.select("file_a", "file_b", "sources"),
        refs,
        library_features.unionByName(refs.drop("reference", "path")),
        count,
        cfg.dedup,
        cfg.features.fingerprint,
    ) as verified:
        paths = refs.select(F.col("file_id").alias("file_a"), "path")
        errors += [
            (r.path, r.file_a, r.error_class, f"with file {r.file_b}: {r.message}")
            for r in verified.errors.join(paths, "file_a", "left").collect()
        ]
        stats.errors = _record_errors(spark, run, errors)
        counts = (F.col("method") != AUDIO) | (F.col("correlation") >= cfg.contamination.min_correlation)
        edges = verified.good.where(F.col("method").isin(list(DUPLICATE_RELATIONS)) & counts).select(
            "file_a", "file_b", *EVIDENCE_COLUMNS, F.lit(None).cast("string").alias("shared_key")
        )
        edges = edges.unionByName(key_matches, allowMissingColumns=True).persist()
        run.write(_library_rows(spark, warehouse, edges, refs, run.run_id), "contamination")
        overlap = _overlap_rows(edges, refs, run.run_id)
        run.write(overlap, "reference_overlap")
        counters["overlapping_pairs"] = overlap.count()
        edges.unpersist()
    run.write(
        unchecked.withColumn("run_id", F.lit(run.run_id)).select(*tables.schema("contamination_checked").names),
        "contamination_checked",
    )
    run.write(new_shapes, "reference_shapes")
    run.write(new_keys, "reference_index")
    for frame in (new_keys, new_shapes, proposed):
        frame.unpersist()


def _proposed(
    spark: SparkSession,
    cfg: Config,
    new_keys: DataFrame | None,
    new_shapes: DataFrame,
    unchecked: DataFrame | None,
    which: DataFrame,
) -> DataFrame:
    """Candidate pairs (file_a: a reference file, file_b: a library file or a file of
    another set, sources): new reference files (`new_keys`, `new_shapes`; None: none)
    against every library file and every other set's files, indexed reference files against
    the library files not checked against their set (`unchecked`; None: none)."""
    warehouse = cfg.warehouse.path
    library_keys = tables.read(spark, warehouse, "band_index").where(F.col("source") != CAPTION)
    reference_keys = tables.read(spark, warehouse, "reference_index")

    def banded(queries: DataFrame, index: DataFrame) -> DataFrame:
        """(file_a, file_b, source) of `queries` and `index` sharing a bucket that does not
        hold more than max_bucket files of the index (exact digests always count)."""
        sizes = (
            index.join(queries.select(*BUCKET).distinct(), BUCKET, "left_semi")
            .groupBy(*BUCKET)
            .agg(F.count("*").alias("size"))
        )
        usable = sizes.where((F.col("size") <= cfg.dedup.max_bucket) | F.col("source").isin(EXACT_BYTES, EXACT_PCM))
        q = queries.select(F.col("file_id").alias("file_a"), *BUCKET).join(usable.select(*BUCKET), BUCKET)
        return q.join(index.select(F.col("file_id").alias("file_b"), *BUCKET), BUCKET).select(
            "file_a", "file_b", "source"
        )

    shapes = cfg.dedup.shapes
    library_shapes = tables.read(spark, warehouse, "shape_index")
    reference_shapes = tables.read(spark, warehouse, "reference_shapes").withColumn("new", F.lit(False))

    def shaped(queries: DataFrame, index: DataFrame, *, queries_are_references: bool) -> DataFrame:
        near = nearest_pairs(queries, index, shapes)
        a, b = ("query_file", "index_file") if queries_are_references else ("index_file", "query_file")
        return near.select(F.col(a).alias("file_a"), F.col(b).alias("file_b"), F.lit(SHAPE).alias("source"))

    parts = []
    if new_keys is not None:
        # New reference files against the whole library and every other reference file.
        parts += [
            banded(new_keys, library_keys),
            banded(new_keys, reference_keys.unionByName(new_keys)),
            shaped(new_shapes, library_shapes.withColumn("new", F.lit(False)), queries_are_references=True),
            shaped(
                new_shapes,
                reference_shapes.unionByName(new_shapes.withColumn("new", F.lit(True))),
                queries_are_references=True,
            ),
        ]
    if unchecked is not None:
        # Indexed reference files against the library files their set has not seen.
        fresh = unchecked.select("file_id").distinct()
        pending = unchecked.select("reference", F.col("file_id").alias("file_b"))
        late = [
            banded(reference_keys, library_keys.join(fresh, "file_id", "left_semi")),
            shaped(library_shapes.join(fresh, "file_id", "left_semi"), reference_shapes, queries_are_references=False),
        ]
        owner = which.withColumnRenamed("reference_file", "file_a")
        parts += [p.join(owner, "file_a").join(pending, ["reference", "file_b"]).drop("reference") for p in late]
    if not parts:
        return spark.createDataFrame([], "file_a bigint, file_b bigint, sources array<string>")
    # Files of one set are not matched with each other: a set's own duplicates are its business.
    same_set = which.select(F.col("reference_file").alias("file_b"), F.col("reference").alias("set_b"))
    owner = which.select(F.col("reference_file").alias("file_a"), F.col("reference").alias("set_a"))
    return (
        reduce(DataFrame.unionByName, parts)
        .where(F.col("file_a") != F.col("file_b"))
        .join(owner, "file_a")
        .join(same_set, "file_b", "left")
        .where(F.col("set_b").isNull() | (F.col("set_b") != F.col("set_a")))
        .groupBy("file_a", "file_b")
        .agg(F.sort_array(F.collect_set("source")).alias("sources"))
    )


def _key_matches(
    spark: SparkSession, cfg: Config, new_refs: DataFrame, unchecked: DataFrame, which: DataFrame
) -> DataFrame:
    """(file_a, file_b, method, shared_key) of reference and library files (or files of two
    sets) that share a value of contamination.key_column, where the pair is new."""
    key = cfg.contamination.key_column
    warehouse = cfg.warehouse.path
    references = tables.read(spark, warehouse, "reference_catalog").where("NOT retired")
    library = tables.read(spark, warehouse, "catalog").where("NOT retired")
    empty = spark.createDataFrame([], "file_a bigint, file_b bigint, method string, shared_key string")
    if not key or key not in references.columns:
        return empty
    keyed = references.where(F.col(key).isNotNull()).select(
        F.col("file_id").alias("file_a"), "reference", F.col(key).cast("string").alias("shared_key")
    )
    fresh = keyed.join(new_refs.select(F.col("file_id").alias("file_a")), "file_a", "left_semi")
    parts = []
    if key in library.columns:
        others = library.where(F.col(key).isNotNull()).select(
            F.col("file_id").alias("file_b"), F.col(key).cast("string").alias("shared_key")
        )
        pending = unchecked.select("reference", F.col("file_id").alias("file_b"))
        matched = keyed.join(others, "shared_key")
        late = matched.join(pending, ["reference", "file_b"])
        parts += [fresh.join(others, "shared_key"), late]
    other_sets = keyed.select(F.col("file_a").alias("file_b"), F.col("reference").alias("other"), "shared_key")
    parts.append(fresh.join(other_sets, "shared_key").where(F.col("reference") != F.col("other")).drop("other"))
    return (
        reduce(lambda a, b: a.unionByName(b, allowMissingColumns=True), parts)
        .select("file_a", "file_b", F.lit(SHARED_KEY).alias("method"), "shared_key")
        .distinct()
    )


def _library_rows(spark: SparkSession, warehouse: str, edges: DataFrame, refs: DataFrame, run_id: str) -> DataFrame:
    """contamination rows of the edges between a reference file and a library file."""
    library = (
        tables.read(spark, warehouse, "catalog")
        .where("NOT retired")
        .select(F.col("file_id").alias("file_b"), F.col("path").alias("library_path"))
    )
    ref = refs.select(F.col("file_id").alias("file_a"), "reference", F.col("path").alias("reference_path"))
    return (
        edges.join(library, "file_b")
        .join(ref, "file_a")
        .withColumnsRenamed({"file_a": "reference_file", "file_b": "library_file"})
        .withColumn("run_id", F.lit(run_id))
        .select(*tables.schema("contamination").names)
    )


def _overlap_rows(edges: DataFrame, refs: DataFrame, run_id: str) -> DataFrame:
    """reference_overlap rows of the edges between files of two sets, each pair once."""
    side = refs.select("file_id", "reference", "path")
    a = side.select(
        F.col("file_id").alias("file_a"), F.col("reference").alias("reference_a"), F.col("path").alias("path_a")
    )
    b = side.select(
        F.col("file_id").alias("file_b"), F.col("reference").alias("reference_b"), F.col("path").alias("path_b")
    )
    low, high = F.least("file_a", "file_b"), F.greatest("file_a", "file_b")
    ordered = edges.withColumns({"file_a": low, "file_b": high}).dropDuplicates(["file_a", "file_b", "method"])
    return (
        ordered.join(a, "file_a")
        .join(b, "file_b")
        .where(F.col("reference_a") != F.col("reference_b"))
        .withColumn("run_id", F.lit(run_id))
        .select(*tables.schema("reference_overlap").names)
    )


def _summary(
    spark: SparkSession,
    warehouse: str,
    references: list[str],
    listing: ReferenceListing,
    checked_now: dict[str, int],
    library_files: int,
    run_id: str,
) -> DataFrame:
    """One contamination_summary row per reference set (`checked_now`: per set, its files
    checked in this run)."""
    files = _counts(tables.read(spark, warehouse, "reference_catalog").where("NOT retired"), "reference")
    # From the table, so that a killed run's rerun counts what its first attempt checked too.
    checked = tables.read(spark, warehouse, "contamination_checked").where(F.col("run_id") == run_id)
    checked_library = _counts(checked, "reference")
    contaminated = {
        r.reference: r.files
        for r in findings(spark, warehouse)
        .groupBy("reference")
        .agg(F.countDistinct("library_file").alias("files"))
        .collect()
    }
    rows = [
        (
            run_id,
            name,
            files.get(name, 0),
            listing.list_entries.get(name),
            listing.unmatched_entries.get(name),
            checked_now.get(name, 0),
            library_files,
            checked_library.get(name, 0),
            contaminated.get(name, 0),
            contaminated.get(name, 0) / library_files if library_files else 0.0,
        )
        for name in sorted(references)
    ]
    return spark.createDataFrame(rows, tables.spark_schema("contamination_summary"))


def _counts(frame: DataFrame, column: str) -> dict[str, int]:
    return {r[column]: r["count"] for r in frame.groupBy(column).count().collect()}
