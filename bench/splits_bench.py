"""Splits benchmark on ../shared/corpus: audit the shipped naive split against truth, check
leakfree's own split (truth leaks, ratios in files and duration) with the corpus's uploader
`setup` key joining groups and demoted to audit, then grow the library by 10 % and check that
nothing moved without a logged merge. Then the same on a library of file-name captions and
package keys (bench/package_library.py), and caption edges on the BBC catalogue's real
descriptions (bench/caption_edges.py). Writes bench/results/splits.*.
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
import package_library
from caption_edges import bbc_catalog, specific
from common import CORPUS, Truth, corpus_available, load_truth, table, write_results

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
        }
    )
    spark = build_session(cfg.spark)
    try:
        # The naive split names corpus-relative paths; audit it on the full library first.
        for path in late:
            os.symlink(CORPUS / path, library / path)
        run_stages(spark, cfg, list(STAGES), command="bench/splits_bench.py full", run_id="full")
        with_setup = relations_report(spark, cfg, truth, library, "full")
        # The uploader key chains most of the library into one group: the rest of this bench
        # runs with it demoted to audit, as the degraded run advises.
        cfg = demoted(cfg, "setup", work / "warehouse-demoted")
        run_stages(spark, cfg, ["groups", "splits", "audit"], command="bench/splits_bench.py demoted", run_id="demoted")
        result = score_run(spark, cfg, truth, library, "demoted")
        result["relations"] = relations_report(spark, cfg, truth, library, "demoted")
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
            "setup_leaking": len(audit_flagged(spark, cfg, library, "setup:setup")),
        }
        result["with_setup"] = with_setup
        growth = grow(spark, cfg, truth, library, late, work)
        packages = package_library_report(spark, cfg, work)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    bbc = bbc_catalog(cfg, MARGINS)
    data = {"full_library": result, "growth": growth, "packages": packages, "bbc_captions": bbc}
    write_results("splits", data, markdown(result, growth) + packages_markdown(packages) + bbc_markdown(bbc))


def demoted(cfg: Config, key: str, warehouse: Path) -> Config:
    """The config with one relation demoted to audit, on a copy of the warehouse without any
    split assignment (assignments are sticky: they would keep what the key did)."""
    source = Path(cfg.warehouse.path)
    shutil.copytree(source, warehouse, ignore=shutil.ignore_patterns("splits", "moves", "split_balance", "_lock"))
    return cfg.replace(
        groups=dataclasses.replace(cfg.groups, roles={**cfg.groups.roles, key: "audit"}),
        warehouse=dataclasses.replace(cfg.warehouse, path=str(warehouse)),
    )


def relations_report(spark, cfg: Config, truth, library: Path, run_id: str) -> dict:
    """The run's status and reasons, its relations, the split balance, leaks by kind, and
    caption links before (all verified caption pairs, which all joined once) and after (the
    ones that join now), each with how many join files that truth keeps apart."""
    warehouse = cfg.warehouse.path
    run = tables.read(spark, warehouse, "runs").where(f"run_id = '{run_id}'").first()
    rel = {r.file_id: os.path.relpath(r.path, library) for r in tables.read(spark, warehouse, "catalog").collect()}
    captions = tables.read(spark, warehouse, "links").where("relation = 'caption'").collect()
    pairs = [(rel[r.file_a], rel[r.file_b]) for r in captions]
    joining = [(rel[r.file_a], rel[r.file_b]) for r in captions if r.joins]

    def false(links: list[tuple[str, str]]) -> list[tuple[str, str]]:
        """The links between files that truth keeps apart."""
        return [(a, b) for a, b in links if not truth.groups[a] & truth.groups[b]]

    scored = score_run(spark, cfg, truth, library, run_id)
    with Path(cfg.library.metadata).open(encoding="utf-8") as sidecar:
        texts = {r["path"]: r["caption"] for r in csv.DictReader(sidecar) if (library / r["path"]).exists()}
    audit = tables.read(spark, warehouse, "audit").where(f"run_id = '{run_id}' AND audit = 'leakfree'").collect()
    relations = tables.read(spark, warehouse, "relations").where(f"run_id = '{run_id}'").collect()
    return {
        "status": run.status,
        "message": run.message,
        "caption_links_before": len(pairs),
        "false_caption_links_before": len(false(pairs)),
        "caption_links_after": len(joining),
        "false_caption_links_after": len(false(joining)),
        "margin_sweep": {
            margin: {"joining": len(kept), "false": len(false(kept))}
            for margin in MARGINS
            for kept in [specific(texts, pairs, with_margin(cfg, margin))]
        },
        "false_examples_before": sorted(false(pairs))[:8],
        "relations": {
            r.relation: {
                "role": r.role,
                "links": r.links,
                "joining": r.joining,
                "largest_share": r.largest_share,
                "coarse": r.coarse,
                "note": r.note,
            }
            for r in relations
        },
        "balance": scored["balance"],
        "leaking_files": {
            k: sum(r.leaking_files for r in audit if r.kind == k) for k in sorted({r.kind for r in audit})
        },
        **{k: v for k, v in scored.items() if k.startswith("truth_leak")},
    }


MARGINS = (0.0, 3.0, 6.0, 9.0, 12.0)


def with_margin(cfg: Config, margin: float) -> Config:
    return cfg.replace(groups=dataclasses.replace(cfg.groups, caption_margin_bits=margin))


def own_splits(spark, cfg: Config, library: Path) -> dict[str, str]:
    rel = {
        r.file_id: os.path.relpath(r.path, library) for r in tables.read(spark, cfg.warehouse.path, "catalog").collect()
    }
    splits = tables.read(spark, cfg.warehouse.path, "splits").where("NOT retired").collect()
    return {rel[r.file_id]: r.split for r in splits}


def package_library_report(spark, cfg: Config, work: Path) -> dict:
    """The file-name-caption, package-keyed library: by default, then with the key demoted."""
    built = package_library.build(work)
    if built is None:
        return {"skipped": "needs ../shared/corpus and the stress corpus (bench/stress_corpus.py)"}
    library, group_of = built
    truth = Truth(sorted(group_of), {p: {g} for p, g in group_of.items()}, {p: "original" for p in group_of})
    cfg = cfg.replace(
        library=dataclasses.replace(cfg.library, roots=(str(library),), metadata=str(library / "metadata.csv")),
        warehouse=dataclasses.replace(cfg.warehouse, path=str(work / "warehouse-packages")),
        groups=dataclasses.replace(cfg.groups, roles={}),
        audit=dataclasses.replace(cfg.audit, inputs=()),
    )
    run_stages(spark, cfg, list(STAGES), command="bench/splits_bench.py packages", run_id="packages")
    result = {"files": len(group_of), "packages": len({p.split("/")[0] for p in group_of})}
    result["default"] = relations_report(spark, cfg, truth, library, "packages")
    cfg = demoted(cfg, "setup", work / "warehouse-packages-demoted")
    run_stages(spark, cfg, ["groups", "splits", "audit"], command="bench/splits_bench.py packages", run_id="p-demoted")
    result["demoted"] = relations_report(spark, cfg, truth, library, "p-demoted")
    return result


def score_run(spark, cfg: Config, truth, library: Path, run_id: str) -> dict:
    own = own_splits(spark, cfg, library)
    balance = balance_of(spark, cfg, run_id)
    return {
        "files": len(own),
        "truth_leaks_test_from_train": len(truth_leaks(own, truth)),
        "truth_leaks_any": sum(
            len(truth_leaks(own, truth, a, b)) for a in cfg.splits.names for b in cfg.splits.names if a != b
        ),
        "truth_leaking_files": sorted(
            set().union(*(truth_leaks(own, truth, a, b) for a in cfg.splits.names for b in cfg.splits.names if a != b))
        ),
        "balance": balance,
        "warnings": next((b["warnings"] for b in balance.values() if b["warnings"]), ""),
    }


def balance_of(spark, cfg: Config, run_id: str) -> dict:
    rows = tables.read(spark, cfg.warehouse.path, "split_balance").where(f"run_id = '{run_id}'").collect()
    return {
        r.split: {
            "files": r.files,
            "file_share": r.file_share,
            "duration_share": r.duration_share,
            "target": r.target,
            "warnings": r.warnings,
        }
        for r in rows
    }


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
    md += "## leakfree's own split (uploader key demoted to audit)\n\n"
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
    md += "\n### With the uploader key joining groups (the default)\n\n" + relations_markdown(full["with_setup"])
    md += "\n### With the uploader key demoted to audit\n\n" + relations_markdown(full["relations"])
    md += "\n## After adding 10 % more files\n\n"
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


def relations_markdown(r: dict) -> str:
    md = f"Run status: **{r['status']}**" + (f". Reasons: {r['message']}" if r["message"] else "") + "\n\n"
    md += table(
        ["relation", "role", "links", "joining", "largest value's share", "note"],
        [
            [name, v["role"], v["links"], v["joining"], v["largest_share"] or "", v["note"] or ""]
            for name, v in sorted(r["relations"].items())
        ],
    )
    md += (
        f"\nCaption links: {r['caption_links_before']} verified caption pairs, all of which joined groups before "
        f"this rule, {r['false_caption_links_before']} of them between files truth keeps apart "
        f"({_rate(r['false_caption_links_before'], r['caption_links_before'])}); now "
        f"{r['caption_links_after']} join, {r['false_caption_links_after']} of them false "
        f"({_rate(r['false_caption_links_after'], r['caption_links_after'])}).\n\n"
    )
    md += "Caption links that would join at other margins (groups.caption_margin_bits):\n\n" + table(
        ["margin bits", "joining", "false by truth"],
        [[m, v["joining"], v["false"]] for m, v in sorted(r["margin_sweep"].items())],
    )
    md += "\n" + table(
        ["split", "files", "file share", "duration share", "target"],
        [[s, b["files"], b["file_share"], b["duration_share"], b["target"]] for s, b in sorted(r["balance"].items())],
    )
    leaks = ", ".join(f"{k}: {n}" for k, n in r["leaking_files"].items())
    md += f"\nFiles leaking by kind (leakfree's own split): {leaks}. Truth duplicates across splits: "
    md += f"{r['truth_leaks_any']}" + (f": {r['truth_leaking_files']}" if r["truth_leaking_files"] else "") + ".\n"
    return md


def _rate(part: int, whole: int) -> str:
    return f"{part / whole:.0%}" if whole else "n/a"


def packages_markdown(p: dict) -> str:
    md = "\n# A library of file-name captions and package keys\n\n"
    if "skipped" in p:
        return md + f"Skipped: {p['skipped']}.\n"
    md += (
        f"{p['files']} sound effects from {p['packages']} Debian packages (bench/package_library.py), captioned "
        "by their file names, with the package as the `setup` key; truth from a waveform check that uses none of "
        "leakfree's features.\n\n### By default\n\n"
    )
    md += relations_markdown(p["default"])
    md += "\n### With the package key demoted to audit\n\n" + relations_markdown(p["demoted"])
    return md


def bbc_markdown(b: dict | None) -> str:
    md = "\n# Caption links on real descriptions: the BBC Sound Effects catalogue\n\n"
    if b is None:
        return md + "Skipped: the catalogue could not be fetched.\n"
    md += (
        f"{b['recordings']} descriptions (the source of SoundDesc), captions only: no audio. Caption pairs the "
        f"pairs stage verifies: {b['edges_before']}, {b['cross_cd_before']} between recordings of different CDs "
        f"({_rate(b['cross_cd_before'], b['edges_before'])}). Of them {b['edges_after']} are specific enough to "
        f"join now, {b['cross_cd_after']} across CDs ({_rate(b['cross_cd_after'], b['edges_after'])}).\n\n"
        'Across CDs is not the same as false here: the BBC reissued recordings on several CDs ("reprocessed"), '
        "and the case study found exactly such duplicates. What the rule drops are short generic captions:\n\n"
    )
    md += "".join(f"- {a!r} / {c!r}\n" for a, c in b["examples"]["dropped"])
    md += "\nAt other margins (groups.caption_margin_bits):\n\n" + table(
        ["margin bits", "joining", "across CDs"],
        [[m, v["joining"], v["cross_cd"]] for m, v in sorted(b["margin_sweep"].items())],
    )
    md += "\nWhat it keeps across CDs:\n\n" + "".join(f"- {a!r} / {c!r}\n" for a, c in b["examples"]["kept_across_cds"])
    return md


if __name__ == "__main__":
    main()
