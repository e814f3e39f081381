"""Cost benchmark: a full run of this checkout against a full run of an earlier commit, on
one generated demo library, in one sitting (the machine is shared and noisy: compare the
ratio, not the seconds). The earlier commit is checked out with `git worktree` into a temp
folder and run from there with the same venv. Writes bench/results/cost.{json,md}.

    python bench/cost_bench.py --baseline ffc8f08 [--originals 12800]
"""

from __future__ import annotations

import argparse
import csv
import itertools
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import table, write_results

from leakfree.demo import write_demo_library

ROOT = Path(__file__).resolve().parents[1]


def full_run(lib_dir: Path, library: Path, warehouse: Path) -> dict:
    """`leakfree run` of the package in lib_dir, as a user runs it; wall seconds and the
    stages' own seconds from its runs table."""
    env = os.environ | {"PYTHONPATH": str(lib_dir)}
    began = time.perf_counter()
    subprocess.run(
        [
            sys.executable,
            "-m",
            "leakfree.cli",
            "run",
            "--library",
            str(library),
            "--metadata",
            str(library / "metadata.csv"),
            "--warehouse",
            str(warehouse),
            "--set",
            "spark.master=local[2]",
            "--set",
            "spark.progress_bar=false",
        ],
        env=env,
        check=True,
        stdout=subprocess.DEVNULL,
    )
    seconds = time.perf_counter() - began
    from deltalake import DeltaTable

    runs = DeltaTable(str(warehouse / "runs")).to_pyarrow_table().to_pylist()
    return {"seconds": seconds, "stages": {s["stage"]: s["seconds"] for s in runs[0]["stages"]}}


def demo_quality(library: Path, warehouse: Path) -> dict:
    """A run's duplicate edges against the demo library's truth.csv: per method, how many join
    two files of one group and how many join two groups; and the share of truth's pairs
    joined directly by the sound (exact or audio edges: the demo's captions alone join them
    all)."""
    from deltalake import DeltaTable

    def table_rows(name: str, columns: list[str]) -> list[dict]:
        return DeltaTable(str(warehouse / name)).to_pyarrow_table(columns=columns).to_pylist()

    with open(library / "truth.csv", newline="") as f:
        group = {row["path"]: row["group"] for row in csv.DictReader(f)}
    rel = {r["file_id"]: r["path"].split(f"{library}/", 1)[-1] for r in table_rows("catalog", ["file_id", "path"])}
    joined: dict[str, dict[str, int]] = {}
    found = set()
    for edge in table_rows("pairs", ["file_a", "file_b", "method"]):
        a, b = rel.get(edge["file_a"]), rel.get(edge["file_b"])
        same = a in group and group[a] == group.get(b)
        counts = joined.setdefault(edge["method"], {"one_group": 0, "two_groups": 0})
        counts["one_group" if same else "two_groups"] += 1
        if same and edge["method"] != "caption":
            found.add(frozenset((a, b)))
    members: dict[str, list[str]] = {}
    for path, g in group.items():
        members.setdefault(g, []).append(path)
    truth = {frozenset(p) for paths in members.values() for p in itertools.combinations(paths, 2)}
    return {"edges": joined, "truth_pairs": len(truth), "recall_by_sound": len(found & truth) / max(len(truth), 1)}


def joined_cell(counts: dict[str, int]) -> str:
    return f"{counts.get('one_group', 0)} / {counts.get('two_groups', 0)}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--baseline", required=True, help="the earlier commit to compare with")
    parser.add_argument("--originals", type=int, default=12800, help="demo originals (12800: 19,200 files)")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="leakfree-cost-"))
    baseline = work / "baseline"
    try:
        subprocess.run(
            ["git", "-C", str(ROOT), "worktree", "add", "--detach", str(baseline), args.baseline], check=True
        )
        library = work / "library"
        files = len(write_demo_library(library, seed=1, originals=args.originals))
        results = {}
        for name, lib_dir in (("baseline", baseline / "lib"), ("current", ROOT / "lib")):
            results[name] = full_run(lib_dir, library, work / f"warehouse-{name}")
            results[name]["quality"] = demo_quality(library, work / f"warehouse-{name}")
            print(name, json.dumps(results[name]), flush=True)
    finally:
        subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(baseline)], check=False)
        shutil.rmtree(work, ignore_errors=True)
    ratio = results["current"]["seconds"] / results["baseline"]["seconds"]
    stages = list(results["current"]["stages"])
    md = "# Cost of a full run: this checkout against an earlier commit\n\n"
    md += (
        f"One demo library of {files} files (`write_demo_library(seed=1, originals={args.originals})`), a full "
        f"`leakfree run` of commit {args.baseline} and of this checkout, one after the other, local[2]. "
        f"Current / baseline: **{ratio:.2f}**.\n\n"
    )
    md += table(
        ["version", "wall s", *stages],
        [[name, r["seconds"], *(r["stages"].get(s, 0.0) for s in stages)] for name, r in results.items()],
    )
    md += "\n\nEdges against the library's truth.csv (a demo group: an original and its copies), per method: "
    md += "joining one group / joining two.\n\n"
    methods = sorted({m for r in results.values() for m in r["quality"]["edges"]})
    md += table(
        ["version", "truth pairs joined by the sound", *methods],
        [
            [
                name,
                round(r["quality"]["recall_by_sound"], 3),
                *(joined_cell(r["quality"]["edges"].get(m, {})) for m in methods),
            ]
            for name, r in results.items()
        ],
    )
    write_results("cost", {"files": files, "baseline": args.baseline, "ratio": ratio, **results}, md)


if __name__ == "__main__":
    main()
