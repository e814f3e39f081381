"""Splits benchmark on ../shared/corpus: audit the shipped naive split against truth, check
leakfree's own split (truth leaks, ratios in files and duration), then grow the library by
10 % and check that nothing moved without a logged merge. Writes bench/results/splits.*.
"""

from __future__ import annotations

import csv
import dataclasses
import os
import random
import shutil
import sys
import tempfile
from collections import defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import CORPUS, corpus_available, load_truth, table, write_results

from leakfree import tables
from leakfree.config import Config
from leakfree.pipeline import STAGES, run_stages
from leakfree.session import build_session


def truth_leaks(assignment: dict[str, str], truth, target: str = "test", source: str = "train") -> set[str]:
    """Files of `target` that share a truth group with a file of `source`."""
    splits_of_group = defaultdict(set)
    for path, split in assignment.items():
        for group in truth.groups[path]:
            splits_of_group[group].add(split)
    return {
        p for p, s in assignment.items() if s == target and any(source in splits_of_group[g] for g in truth.groups[p])
    }


def main() -> None:
    if not corpus_available():
        write_results("splits", {"skipped": str(CORPUS)}, f"# Splits benchmark\n\nSkipped: {CORPUS} is absent.\n")
        return
    truth = load_truth()
    work = Path(tempfile.mkdtemp(prefix="leakfree-splits-"))
    library = work / "corpus"
    # A copy of the corpus in which 10 % of the files arrive later.
    rng = random.Random(5)
    late = set(rng.sample(truth.paths, len(truth.paths) // 11))
    for path in truth.paths:
        target = library / path
        target.parent.mkdir(parents=True, exist_ok=True)
        if path not in late:
            os.symlink(CORPUS / path, target)
    shutil.copy(CORPUS / "metadata.csv", library / "metadata.csv")
    cfg = Config.from_toml(
        overrides={
            "library.roots": [str(library / "audio")],
            "library.metadata": str(library / "metadata.csv"),
            "warehouse.path": str(work / "warehouse"),
            "spark.progress_bar": False,
            "spark.master": "local[2]",
            "audit.inputs": [str(CORPUS / "splits_naive.csv")],
            "report.folder": str(work / "reports"),
            # Groups from duplicates (and captions) only; recording-setup leaks are audited apart.
            # With the corpus's `setup` (uploader sessions) as a grouping key, sessions and
            # duplicates chain into one group of most of the library: see with_setup below.
            "groups.setup_columns": [],
        }
    )
    spark = build_session(cfg.spark)
    try:
        # The naive split names corpus-relative paths; audit it on the full library first.
        for path in late:
            os.symlink(CORPUS / path, library / path)
        full = run_stages(spark, cfg, list(STAGES), command="bench/splits_bench.py full", run_id="full")
        result = score_run(spark, cfg, truth, library, full)
        naive = {r["path"]: r["split"] for r in csv.DictReader((CORPUS / "splits_naive.csv").open())}
        truth_naive = truth_leaks(naive, truth)
        flagged = audit_flagged(spark, cfg, library)
        test_files = [p for p, s in naive.items() if s == "test"]
        result["naive"] = {
            "test_files": len(test_files),
            "truth_leaking": len(truth_naive),
            "truth_share": len(truth_naive) / len(test_files),
            "leakfree_leaking": len(flagged),
            "leakfree_share": len(flagged) / len(test_files),
            "flagged_not_in_truth": sorted(flagged - truth_naive),
            "in_truth_not_flagged": sorted(truth_naive - flagged),
            "setup_leaking": len(audit_flagged(spark, cfg, library, "setup")),
        }
        result["with_setup"] = with_setup_groups(spark, cfg)
        growth = grow(spark, cfg, truth, library, late, work)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    write_results("splits", {"full_library": result, "growth": growth}, markdown(result, growth))


def score_run(spark, cfg: Config, truth, library: Path, run_id: str) -> dict:
    rel = {
        r.file_id: os.path.relpath(r.path, library) for r in tables.read(spark, cfg.warehouse.path, "catalog").collect()
    }
    splits = tables.read(spark, cfg.warehouse.path, "splits").where("NOT retired").collect()
    own = {rel[r.file_id]: r.split for r in splits}
    balance = tables.read(spark, cfg.warehouse.path, "split_balance").where(f"run_id = '{run_id}'").collect()
    return {
        "files": len(own),
        "truth_leaks_test_from_train": len(truth_leaks(own, truth)),
        "truth_leaks_any": sum(
            len(truth_leaks(own, truth, a, b)) for a in cfg.splits.names for b in cfg.splits.names if a != b
        ),
        "truth_leaking_files": sorted(
            set().union(*(truth_leaks(own, truth, a, b) for a in cfg.splits.names for b in cfg.splits.names if a != b))
        ),
        "balance": {
            r.split: {
                "files": r.files,
                "file_share": r.file_share,
                "duration_share": r.duration_share,
                "target": r.target,
            }
            for r in balance
        },
        "warnings": next((r.warnings for r in balance if r.warnings), ""),
    }


def with_setup_groups(spark, cfg: Config) -> dict:
    """The groups stage again with `setup` as a grouping key: how large the largest group gets."""
    cfg = cfg.replace(groups=dataclasses.replace(cfg.groups, setup_columns=("setup",)))
    run_stages(spark, cfg, ["groups"], command="bench/splits_bench.py with setup", run_id="with-setup")
    sizes = tables.read(spark, cfg.warehouse.path, "groups").select("group_id", "group_size").distinct().collect()
    largest = max(r.group_size for r in sizes)
    return {"groups": len(sizes), "largest_group": largest, "files": sum(r.group_size for r in sizes)}


def audit_flagged(spark, cfg: Config, library: Path, kind: str = "duplicate") -> set[str]:
    leaks = (
        tables.read(spark, cfg.warehouse.path, "audit_leaks")
        .where(f"audit = 'splits_naive.csv' AND kind = '{kind}' AND split = 'test' AND other_split = 'train'")
        .join(tables.read(spark, cfg.warehouse.path, "catalog").select("file_id", "path"), "file_id")
        .collect()
    )
    return {os.path.relpath(r.path, library) for r in leaks}


def grow(spark, cfg: Config, truth, library: Path, late: set[str], work: Path) -> dict:
    """Start again from the library without the late files, then add them."""
    cfg = cfg.replace(
        warehouse=dataclasses.replace(cfg.warehouse, path=str(work / "warehouse-growth")),
        audit=dataclasses.replace(cfg.audit, inputs=()),
    )
    for path in late:
        (library / path).unlink()
    run_stages(spark, cfg, list(STAGES), command="bench/splits_bench.py before growth", run_id="before")
    before = {r.file_id: r.split for r in tables.read(spark, cfg.warehouse.path, "splits").collect()}
    for path in late:
        os.symlink(CORPUS / path, library / path)
    run_stages(spark, cfg, list(STAGES), command="bench/splits_bench.py after growth", run_id="after")
    after = {
        r.file_id: r.split for r in tables.read(spark, cfg.warehouse.path, "splits").where("NOT retired").collect()
    }
    moves = tables.read(spark, cfg.warehouse.path, "moves").where("run_id = 'after'").collect()
    logged = {m.file_id for m in moves}
    changed = {f for f, s in before.items() if f in after and after[f] != s}
    result = score_run(spark, cfg, truth, library, "after")
    result.update(
        {
            "added_files": len(late),
            "previously_assigned": len(before),
            "moved": len(changed),
            "moved_without_log": len(changed - logged),
            "move_reasons": sorted({m.reason for m in moves})[:20],
        }
    )
    return result


def markdown(full: dict, growth: dict) -> str:
    naive = full["naive"]
    md = "# Splits benchmark on ../shared/corpus\n\n## Audit of splits_naive.csv (duplicates only)\n\n"
    md += table(
        ["", "test files leaking from train", "of", "share"],
        [
            ["truth.csv", naive["truth_leaking"], naive["test_files"], f"{naive['truth_share']:.1%}"],
            ["leakfree audit", naive["leakfree_leaking"], naive["test_files"], f"{naive['leakfree_share']:.1%}"],
        ],
    )
    md += f"\nFlagged by leakfree, not by truth: {naive['flagged_not_in_truth'] or 'none'}\n\n"
    md += f"In truth, not flagged by leakfree: {naive['in_truth_not_flagged'] or 'none'}\n\n"
    md += (
        f"Reported apart: {naive['setup_leaking']} of the {naive['test_files']} test files share a recording "
        "setup (the corpus's `setup` column) with a train file.\n\n"
    )
    md += "## leakfree's own split\n\n"
    md += f"Truth leaks (test files with a truth duplicate in train): {full['truth_leaks_test_from_train']}; "
    md += f"between any two splits: {full['truth_leaks_any']}: {full['truth_leaking_files']}.\n\n"
    md += table(
        ["split", "files", "file share", "duration share", "target"],
        [
            [s, b["files"], b["file_share"], b["duration_share"], b["target"]]
            for s, b in sorted(full["balance"].items())
        ],
    )
    md += f"\nWarnings: {full['warnings'] or 'none'}\n\n"
    setup = full["with_setup"]
    md += (
        "Groups are built from duplicate and caption edges; setup leaks are audited apart. With the "
        f"corpus's `setup` column (uploader sessions) also joining groups, the largest group holds "
        f"{setup['largest_group']} of {setup['files']} files: no split can then meet its ratio, and leakfree "
        "reports the group instead of accepting the imbalance silently.\n\n## After adding 10 % more files\n\n"
    )
    md += (
        f"{growth['added_files']} files added to {growth['previously_assigned']} assigned ones: "
        f"{growth['moved']} previously assigned files moved, {growth['moved_without_log']} of them without a logged "
        f"merge. Truth leaks afterwards: {growth['truth_leaks_any']}.\n\n"
    )
    md += table(
        ["split", "files", "file share", "duration share", "target"],
        [
            [s, b["files"], b["file_share"], b["duration_share"], b["target"]]
            for s, b in sorted(growth["balance"].items())
        ],
    )
    if growth["move_reasons"]:
        md += "\nLogged move reasons (first 20):\n\n" + "".join(f"- {r}\n" for r in growth["move_reasons"])
    return md


if __name__ == "__main__":
    main()
