"""Cost benchmark: a full run of this checkout against a full run of an earlier commit, on
one generated demo library, in one sitting (the machine is shared and noisy: compare the
ratio, not the seconds). The earlier commit is checked out with `git worktree` into a temp
folder and run from there with the same venv. Writes bench/results/cost.{json,md}.

    python bench/cost_bench.py --baseline ffc8f08 [--originals 12800]
"""

from __future__ import annotations

import argparse
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
    write_results("cost", {"files": files, "baseline": args.baseline, "ratio": ratio, **results}, md)


if __name__ == "__main__":
    main()
