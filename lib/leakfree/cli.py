"""The `leakfree` command: one subcommand per job, each with --help."""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import sys
from typing import Any

from leakfree.config import Config, parse_override, to_toml
from leakfree.errors import LeakfreeError

log = logging.getLogger("leakfree")

EXIT_DEGRADED = 3
RAW_CSV_HELP = (
    "keep CSV cells that start with = + - @ as they are; by default they get a leading ' so a "
    "spreadsheet shows them as text instead of running them as formulas"
)

DESCRIPTION = """\
leakfree finds duplicate and near-duplicate recordings in audio libraries and writes
leak-free train/val/test splits as Delta tables. Each subcommand has its own --help.

Typical use:
  leakfree demo-data demo/library
  leakfree run --library demo/library --metadata demo/library/metadata.csv
  leakfree sql "SELECT error_class, count(*) FROM errors GROUP BY error_class"

Exit status: 0 done (a degraded run too, unless --strict), 2 refused or failed with a
message, 3 degraded under --strict.
"""


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(message)s", datefmt="%H:%M:%S"))
    log.addHandler(handler)
    log.setLevel(logging.INFO)
    try:
        return args.handler(args)
    except LeakfreeError as exc:
        print(f"leakfree: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:  # a path the user gave that the system refuses
        print(f"leakfree: {exc.strerror or exc}: {exc.filename or ''}".rstrip(": "), file=sys.stderr)
        return 2


class UserError(LeakfreeError):
    """A request leakfree refuses, with the reason for the person who asked."""


def build_parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--conf", metavar="FILE", help="TOML config; overrides the defaults (see show-config)")
    common.add_argument(
        "--set",
        metavar="KEY=VALUE",
        action="append",
        default=[],
        help="override one config key, e.g. --set catalog.files_per_task=32 (repeatable)",
    )
    common.add_argument("--warehouse", metavar="DIR", help="where the Delta tables live (warehouse.path)")

    library = argparse.ArgumentParser(add_help=False)
    library.add_argument(
        "--library",
        metavar="ROOT",
        action="append",
        help="library root: a folder or URI (s3a://, hdfs://, ...); repeat for several (library.roots)",
    )
    library.add_argument(
        "--metadata", metavar="FILE", help="metadata sidecar: CSV, JSONL or Parquet with a `path` column"
    )
    library.add_argument(
        "--run-id", help="name of this run; rerunning the same id replaces its rows (default: a timestamp)"
    )
    library.add_argument(
        "--strict",
        action="store_true",
        help=f"exit with status {EXIT_DEGRADED} when the run is degraded (a split misses its target beyond "
        "splits.tolerance, or is empty), so a scheduler sees it; the tables are written either way",
    )

    parser = argparse.ArgumentParser(
        prog="leakfree", description=DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    commands = parser.add_subparsers(title="commands", required=True, metavar="COMMAND")

    demo = commands.add_parser(
        "demo-data",
        help="write a small synthetic demo library with planted duplicates",
        description="Write a deterministic demo library: synthetic sound effects, "
        "planted near-duplicates (other codecs, gain, noise, excerpts), two broken "
        "files, metadata.csv and truth.csv.",
    )
    demo.add_argument("folder", help="where to write it (created if needed)")
    demo.add_argument("--seed", type=int, default=7, help="random seed (default 7)")
    demo.add_argument("--originals", type=int, default=96, help="number of original sounds (default 96)")
    demo.set_defaults(handler=cmd_demo_data)

    run = commands.add_parser(
        "run",
        parents=[common, library],
        help="run every stage on a library",
        description="Run all stages on the library and print a summary. Every run is incremental: "
        "only new and changed files are read and fingerprinted, and only their pairs verified.",
    )
    run.set_defaults(handler=cmd_run, stages=None)

    rescan = commands.add_parser(
        "rescan",
        parents=[common, library],
        help="the nightly job: pick up new, changed and deleted files",
        description="List the library and compare it with the catalog (path, size, modification time, "
        "then the content hash): fingerprint only new and changed files, match them against the band "
        "index, verify only their candidate pairs, update groups, and keep every file's split unless a "
        "logged merge moves it. Deleted files are retired, not erased. One run per warehouse at a time; "
        "a run killed at any point and started again with the same --run-id ends with the same tables.",
    )
    rescan.set_defaults(handler=cmd_run, stages=None)

    for name, (summary, description) in STAGE_HELP.items():
        stage = commands.add_parser(name, parents=[common, library], help=summary, description=description)
        stage.set_defaults(handler=cmd_run, stages=[name])

    audit = commands.add_parser(
        "audit",
        parents=[common],
        help="report leaks across the splits of any assignment",
        description="Audit a split assignment for leaks: per pair of splits, how many files have a duplicate "
        "(or a recording-setup mate) on the other side, with the evidence (tables audit, audit_leaks). "
        "Without FILES, audits leakfree's own splits table. FILES is one CSV with a split column and a "
        "path (or file_id) column, or one list per split named after it, e.g. train_list.txt val_list.txt "
        "test_list.txt. Needs a warehouse where `leakfree run` has built the pairs and groups.",
    )
    audit.add_argument("files", nargs="*", metavar="FILES", help="the assignment to audit (default: leakfree's)")
    audit.add_argument("--run-id", help="name of this run (default: a timestamp)")
    audit.set_defaults(handler=cmd_audit)

    export = commands.add_parser(
        "export",
        parents=[common],
        help="write per-split file lists for training code",
        description="Write the current split assignment as one .txt list per split, or one CSV or JSONL file; "
        "with --contaminated, the block lists of reference sets instead.",
    )
    export.add_argument("out", help="folder to write into")
    export.add_argument("--format", choices=["txt", "csv", "jsonl"], default="txt", help="default: txt")
    export.add_argument("--relative", action="store_true", help="paths relative to their library root")
    export.add_argument("--raw-csv", action="store_true", help=RAW_CSV_HELP)
    export.add_argument(
        "--dedupe",
        action="store_true",
        help="one file per duplicate cluster, its canonical copy (groups.canonical_order says which)",
    )
    export.add_argument(
        "--exclude-contaminated",
        action="store_true",
        help="leave out every library file that copies a sound of a reference set (leakfree contamination)",
    )
    export.add_argument(
        "--contaminated",
        metavar="NAME",
        action="append",
        default=[],
        help="instead of the splits, write the block list of reference set NAME (contaminated-NAME.txt/csv/jsonl): "
        "the library files that copy one of its sounds; repeatable",
    )
    export.set_defaults(handler=cmd_export)

    contamination = commands.add_parser(
        "contamination",
        parents=[common],
        help="which library files copy a sound of a reference set (a benchmark's evaluation set)",
        description="Check the indexed library against reference sets: audio collections that are never "
        "split, e.g. the evaluation sets of the benchmarks a model will be reported on. Reference files are "
        "catalogued and fingerprinted like the library (their errors land in `errors`) and matched through "
        "the same band index, window shapes and verifier: exact copies, re-encodings, edited copies and "
        "excerpts or compilations that hold a reference sound. Sets are remembered in the warehouse, so "
        "every later `leakfree run` or `rescan` checks its new library files against them; a set added "
        "later is checked alone. Results: tables contamination, contamination_summary, reference_overlap "
        "(sets that share sounds); block lists with `leakfree export --contaminated NAME`. Needs a warehouse "
        "where `leakfree run` has indexed the library.",
    )
    contamination.add_argument(
        "--reference",
        metavar="NAME=ROOT",
        action="append",
        default=[],
        help="a reference set and a folder or URI of its audio; repeat (also with one NAME for several roots)",
    )
    contamination.add_argument(
        "--list",
        metavar="NAME=FILE",
        action="append",
        default=[],
        help="the files of NAME that count (an evaluation list): one path, relative path, file name or id "
        "per line, or a CSV with a path/file_name/filename/fname/file/id column",
    )
    contamination.add_argument(
        "--metadata",
        metavar="NAME=FILE",
        action="append",
        default=[],
        help="a metadata sidecar of NAME (keyed by path), for contamination.key_column",
    )
    contamination.add_argument(
        "--key-column",
        metavar="COLUMN",
        help="a metadata column both sides hold (a source id): a shared value counts as contamination",
    )
    contamination.add_argument(
        "--forget", metavar="NAME", action="append", default=[], help="stop checking a reference set; repeatable"
    )
    contamination.add_argument("--run-id", help="name of this run (default: a timestamp)")
    contamination.set_defaults(handler=cmd_contamination)

    explain = commands.add_parser(
        "explain",
        parents=[common],
        help="why a file is in its group, or how two files are joined",
        description="For one file: its split, its leak group and every link that touches it, with the "
        "evidence in words (the same decoded audio, an audio match with its offset and correlation, a "
        "caption, a setup key). For two files: the shortest chain of joining links from one to the other, "
        "or that there is none. A file is named by path, path relative to its root, file_id or file name.",
    )
    explain.add_argument("file", help="the file to explain")
    explain.add_argument("other", nargs="?", help="a second file: how the two are joined")
    explain.add_argument("--format", choices=["text", "json"], default="text", help="default: text")
    explain.set_defaults(handler=cmd_explain)

    sql = commands.add_parser(
        "sql",
        parents=[common],
        help="query the warehouse tables by name",
        description="Run one SQL statement against the warehouse tables (catalog, errors, runs, ...). "
        "Read-only: queries (SELECT, WITH, VALUES, time travel) and DESCRIBE, SHOW and EXPLAIN over the "
        "tables by name. Never: SQL on raw paths, reflection functions, SET, ADD JAR, scripts. "
        "--allow-write also permits statements that change tables.",
    )
    sql.add_argument("query", help='e.g. "SELECT count(*) FROM catalog"')
    sql.add_argument("--format", choices=["table", "csv", "json"], default="table", help="output format")
    sql.add_argument("--limit", type=int, default=1000, help="most rows printed (default 1000)")
    sql.add_argument("--raw-csv", action="store_true", help=RAW_CSV_HELP)
    sql.add_argument("--allow-write", action="store_true", help="permit statements that change tables")
    sql.set_defaults(handler=cmd_sql)

    show = commands.add_parser(
        "show-config",
        parents=[common],
        help="print the effective config as TOML",
        description="Print the config after defaults, --conf and --set are applied.",
    )
    show.set_defaults(handler=cmd_show_config)
    return parser


STAGE_HELP = {
    "catalog": (
        "list the library into the catalog table",
        "List the library, read file headers and hashes on the executors, write the catalog table "
        "and report unreadable files in the errors table.",
    ),
    "features": (
        "decode and fingerprint catalogued files",
        "Decode new or changed catalogued files on the executors and write digests, landmark hashes, "
        "MinHash signatures and log-mel matrices to the features table.",
    ),
    "candidates": (
        "find candidate duplicate pairs (LSH)",
        "MinHash LSH banding of audio and caption signatures as a Spark shuffle, plus exact digest "
        "matches: the candidates table (oversized buckets are reported in oversized_buckets).",
    ),
    "pairs": (
        "verify candidate pairs",
        "Check every candidate with the real measures (log-mel alignment, aligned landmark hashes, "
        "caption similarity): the pairs table, one row per edge with its evidence.",
    ),
    "groups": (
        "build leak groups",
        "Connected components over duplicate edges and recording-setup keys: the groups table.",
    ),
    "splits": (
        "assign whole groups to splits",
        "Assign leak groups to splits (sticky across runs, balanced by files and duration), log moves "
        "in the moves table and the balance in split_balance.",
    ),
    "report": ("write the HTML report", "Write the self-contained HTML report of the latest tables."),
}


def load_config(args: argparse.Namespace) -> Config:
    overrides: dict[str, Any] = dict(parse_override(s) for s in args.set)
    if getattr(args, "library", None):
        overrides["library.roots"] = args.library
    if getattr(args, "metadata", None):
        overrides["library.metadata"] = args.metadata
    if args.warehouse:
        overrides["warehouse.path"] = args.warehouse
    return Config.from_toml(args.conf, overrides)


def cmd_demo_data(args: argparse.Namespace) -> int:
    from leakfree.demo import write_demo_library

    files = write_demo_library(args.folder, seed=args.seed, originals=args.originals)
    print(f"wrote {len(files)} audio files, 2 broken files, metadata.csv and truth.csv to {args.folder}")
    return 0


def _run_locked(
    args: argparse.Namespace, cfg: Config, names: list[str], *, need_library: bool = True
) -> tuple[Any, str]:
    """(session, run id) of the stages run as one run; the warehouse is held before Spark starts."""
    from leakfree import pipeline
    from leakfree.session import build_session

    run_id = args.run_id or pipeline.new_run_id()
    with pipeline.writer(cfg, run_id, need_library=need_library):
        spark = build_session(cfg.spark)
        pipeline.run_stages(spark, cfg, names, command=_command(), run_id=run_id, need_library=need_library)
    return spark, run_id


def cmd_run(args: argparse.Namespace) -> int:
    from leakfree import pipeline, summary
    from leakfree.report import report_path

    cfg = load_config(args)
    names = args.stages or list(pipeline.STAGES)
    spark, run_id = _run_locked(args, cfg, names)
    report = report_path(cfg.report, cfg.warehouse.path, run_id) if "report" in names else None
    print(summary.describe_run(spark, cfg.warehouse.path, run_id, report))
    if args.strict and summary.run_status(spark, cfg.warehouse.path, run_id) == "degraded":
        print(f"leakfree: run {run_id} is degraded (--strict)", file=sys.stderr)
        return EXIT_DEGRADED
    return 0


def cmd_audit(args: argparse.Namespace) -> int:
    from leakfree.audit import in_shown_order

    cfg = load_config(args)
    if args.files:
        cfg = cfg.replace(audit=dataclasses.replace(cfg.audit, inputs=tuple(args.files)))
    spark, run_id = _run_locked(args, cfg, ["audit"], need_library=False)
    rows = in_shown_order(spark.table("audit")).collect()
    print(
        format_table(
            ["assignment", "kind", "split", "leaks from", "files", "of", "share"],
            [
                [r.audit, r.kind, r.to_split, r.from_split, r.leaking_files, r.split_files, f"{r.share:.1%}"]
                for r in rows
            ],
        )
    )
    unmatched = sorted({(r.audit, r.to_split, r.unmatched_entries) for r in rows if r.unmatched_entries})
    for audit, split, count in unmatched:
        print(f"{audit}: {count} entries of {split} match no catalogued file")
    print(f"details: leakfree sql \"SELECT * FROM audit_leaks WHERE run_id = '{run_id}'\"")
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from leakfree.export import export_contaminated, export_splits
    from leakfree.session import build_session

    cfg = load_config(args)
    if args.contaminated and (args.dedupe or args.exclude_contaminated):
        raise UserError("--contaminated writes block lists; --dedupe and --exclude-contaminated shape the splits")
    spark = build_session(cfg.spark)
    where = {
        "warehouse": cfg.warehouse.path,
        "out": args.out,
        "fmt": args.format,
        "relative": args.relative,
        "raw_csv": args.raw_csv,
    }
    if args.contaminated:
        written = export_contaminated(spark, references=args.contaminated, **where)
    else:
        written = export_splits(spark, dedupe=args.dedupe, exclude_contaminated=args.exclude_contaminated, **where)
    print("\n".join(str(p) for p in written))
    return 0


def cmd_contamination(args: argparse.Namespace) -> int:
    from pyspark.sql import functions as F

    from leakfree import tables
    from leakfree.report import build_report

    cfg = load_config(args)
    settings = cfg.contamination
    roots: dict[str, list[str]] = {}
    for name, value in (_named(a, "--reference") for a in args.reference):
        roots.setdefault(name, []).append(value)
    lists = dict(_named(a, "--list") for a in args.list)
    metadata = dict(_named(a, "--metadata") for a in args.metadata)
    settings = dataclasses.replace(
        settings,
        references={**settings.references, **{n: tuple(r) for n, r in roots.items()}},
        lists={**settings.lists, **lists},
        metadata={**settings.metadata, **metadata},
        key_column=settings.key_column if args.key_column is None else args.key_column,
        forget=(*settings.forget, *args.forget),
    )
    cfg = cfg.replace(contamination=settings)
    spark, run_id = _run_locked(args, cfg, ["contamination"], need_library=False)
    if not tables.exists(spark, cfg.warehouse.path, "contamination_summary"):
        print("no reference sets: declare one with --reference NAME=ROOT")
        return 0
    rows = (
        tables.read(spark, cfg.warehouse.path, "contamination_summary")
        .where(F.col("run_id") == run_id)
        .orderBy("reference")
        .collect()
    )
    print(
        format_table(
            ["reference", "files", "unmatched list entries", "library files", "checked now", "contaminated", "share"],
            [
                [
                    r.reference,
                    r.reference_files,
                    "" if r.unmatched_entries is None else r.unmatched_entries,
                    r.library_files,
                    r.library_files_checked,
                    r.contaminated_files,
                    f"{r.share:.2%}",
                ]
                for r in rows
            ],
        )
    )
    if tables.exists(spark, cfg.warehouse.path, "groups"):  # what the rest of the report shows
        report = build_report(
            spark,
            settings=cfg.report,
            caption_column=cfg.features.caption_column,
            warehouse=cfg.warehouse.path,
            run_id=run_id,
        )
        print(f"report: {report}")
    example = rows[0].reference if rows else "NAME"
    print(f"details: leakfree sql \"SELECT * FROM contamination WHERE reference = '{example}'\"")
    print(f"block list: leakfree export OUT --contaminated {example}")
    return 0


def _named(value: str, option: str) -> tuple[str, str]:
    """NAME=VALUE of a repeatable option."""
    name, sep, rest = value.partition("=")
    if not sep or not name or not rest:
        raise UserError(f"{option} takes NAME=VALUE, got {value!r}")
    return name, rest


def cmd_explain(args: argparse.Namespace) -> int:
    from leakfree.explain import explain
    from leakfree.session import build_session

    cfg = load_config(args)
    found = explain(build_session(cfg.spark), cfg.warehouse.path, args.file, args.other)
    print(json.dumps(found.to_dict(), ensure_ascii=False) if args.format == "json" else found.text())
    return 0


def _command() -> str:
    return " ".join(["leakfree", *sys.argv[1:]])


def cmd_sql(args: argparse.Namespace) -> int:
    from pyspark.errors import PySparkException

    from leakfree import sqlpolicy
    from leakfree.session import build_session

    cfg = load_config(args)
    session = sqlpolicy.guarded_session(build_session(cfg.spark), cfg.warehouse.path)
    result = sqlpolicy.execute(session, args.query, allow_write=args.allow_write)
    try:
        rows = result.limit(args.limit + 1).collect()
    except PySparkException as exc:
        raise UserError(f"the statement failed: {str(exc).strip()}") from None
    if len(rows) > args.limit:
        rows = rows[: args.limit]
        log.warning("only the first %d rows are shown; raise --limit to see more", args.limit)
    if args.format == "json":
        for row in rows:
            print(json.dumps(row.asDict(recursive=True), default=str, ensure_ascii=False))
    elif args.format == "csv":
        from leakfree.export import write_csv

        write_csv(sys.stdout, result.columns, rows, raw=args.raw_csv)
    else:
        print(format_table(result.columns, [list(r) for r in rows]))
    return 0


def format_table(columns: list[str], rows: list[list[Any]]) -> str:
    cells = [[str(c) for c in columns]] + [["NULL" if v is None else str(v) for v in r] for r in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(columns))]
    lines = [" | ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)) for row in cells]
    lines.insert(1, "-+-".join("-" * w for w in widths))
    lines.append(f"({len(rows)} row{'s' if len(rows) != 1 else ''})")
    return "\n".join(lines)


def cmd_show_config(args: argparse.Namespace) -> int:
    print(to_toml(load_config(args).to_dict()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
