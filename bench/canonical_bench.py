"""Which copy is kept, on ../shared/corpus: the real pipeline from catalog to groups, then the
duplicate clusters and their canonical copies checked against truth.csv. Wherever a truth
group's original is present and lossless, the kept copy of its cluster should be that
original; every other outcome is listed with its reason. Also: how many clusters, and how
many files an `export --dedupe` drops. Writes bench/results/canonical.{json,md}.
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from collections import Counter, defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import CORPUS, corpus_available, load_truth, table, write_results

from leakfree import tables
from leakfree.config import Config
from leakfree.pipeline import run_stages
from leakfree.session import build_session

LOSSLESS = ("wav", "flac")


def outcome(original: str, kept: str, truth) -> str:
    if kept == original:
        return "the original"
    if truth.transform[kept] == "original":
        return "another original (the packages' own duplicate)"
    if truth.groups[kept] > truth.groups[original]:
        return "a variant that contains it and another sound (concat)"
    return f"a variant ({truth.transform[kept]})"


def main() -> None:
    if not corpus_available():
        print(f"skipped: {CORPUS} is not here")
        return
    truth = load_truth()
    with tempfile.TemporaryDirectory() as work:
        cfg = Config.from_toml(
            overrides={
                "library.roots": [str(CORPUS / "audio")],
                "library.metadata": str(CORPUS / "metadata.csv"),
                "warehouse.path": str(Path(work) / "warehouse"),
                "spark.progress_bar": False,
                "spark.master": "local[2]",
                # The uploader key is too coarse to group by (bench/results/splits.md); clusters
                # are built from duplicate links only either way.
                "groups.roles.setup": "audit",
            }
        )
        spark = build_session(cfg.spark)
        began = time.perf_counter()
        run_stages(spark, cfg, ["catalog", "features", "candidates", "pairs", "groups"], command="canonical_bench")
        seconds = time.perf_counter() - began
        rel = {
            r.file_id: os.path.relpath(r.path, CORPUS)
            for r in tables.read(spark, cfg.warehouse.path, "catalog").where("NOT retired").collect()
        }
        rows = tables.read(spark, cfg.warehouse.path, "clusters").collect()
    cluster_of = {rel[r.file_id]: r.cluster_id for r in rows}
    kept = {r.cluster_id: (rel[r.file_id], r.reason) for r in rows if r.canonical}
    sizes = Counter(r.cluster_id for r in rows)
    shared = [c for c, n in sizes.items() if n > 1]
    originals = {
        path
        for path in truth.paths
        if truth.transform[path] == "original" and path.rsplit(".", 1)[-1].lower() in LOSSLESS
    }
    outcomes: dict[str, list] = defaultdict(list)
    for original in sorted(originals):
        if original not in cluster_of or sizes[cluster_of[original]] < 2:
            continue  # no copy of it was found: nothing to choose
        chosen, reason = kept[cluster_of[original]]
        outcomes[outcome(original, chosen, truth)].append(
            {"original": original, "kept": chosen, "transform": truth.transform[chosen], "reason": reason}
        )
    checked = sum(len(v) for v in outcomes.values())
    data = {
        "files": len(rows),
        "clusters_of_two_or_more": len(shared),
        "files_in_them": sum(sizes[c] for c in shared),
        "dropped_by_dedupe": sum(sizes[c] - 1 for c in shared),
        "lossless_originals_with_copies": checked,
        "outcomes": {k: len(v) for k, v in outcomes.items()},
        "original_kept_share": len(outcomes["the original"]) / max(checked, 1),
        "not_the_original": {k: v for k, v in outcomes.items() if k != "the original"},
        "reasons_when_original_kept": dict(Counter(o["reason"] for o in outcomes["the original"]).most_common()),
        "pipeline_seconds": round(seconds, 1),
    }
    others = [
        [o["original"], o["kept"], o["transform"], o["reason"]]
        for kind, items in outcomes.items()
        if kind != "the original"
        for o in items
    ]
    markdown = (
        "# Which copy is kept (../shared/corpus)\n\n"
        f"The pipeline from catalog to groups ({seconds:.0f} s, local[2]) found {len(shared)} duplicate "
        f"clusters of two or more files, holding {data['files_in_them']} of {len(rows)} files; "
        f"`export --dedupe` drops {data['dropped_by_dedupe']} files.\n\n"
        f"Of the {checked} originals that are lossless (WAV, FLAC) and has a copy in its "
        f"cluster, the kept copy is:\n\n"
        + table(
            ["kept copy", "originals"], [[k, len(v)] for k, v in sorted(outcomes.items(), key=lambda kv: -len(kv[1]))]
        )
        + "\nWhy the original was kept, by the first criterion that decided:\n\n"
        + table(["reason", "originals"], [[k, v] for k, v in data["reasons_when_original_kept"].items()])
        + "\nEvery other outcome:\n\n"
        + table(["original", "kept", "its transform", "reason"], others)
    )
    write_results("canonical", data, markdown)


if __name__ == "__main__":
    main()
