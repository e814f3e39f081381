"""Rescan benchmark: a full run on a generated library, then a rescan after adding 1 % new
files, in one Spark session (start-up excluded). The rescan is timed several times, each
from a copy of the warehouse as the full run left it, and the median counts: one run on a
shared 2-core machine varies by 15 %. Writes bench/results/rescan.{json,md}.

    python bench/rescan_bench.py [--originals 1600 6400 12800] [--repeats 3]
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import table, write_results

from leakfree import tables
from leakfree.config import Config
from leakfree.demo import write_demo_library
from leakfree.pipeline import STAGES, run_stages
from leakfree.session import build_session


def timed_run(spark, cfg: Config, run_id: str) -> dict:
    began = time.perf_counter()
    run_stages(spark, cfg, list(STAGES), command=f"bench/rescan_bench.py {run_id}", run_id=run_id)
    seconds = time.perf_counter() - began
    row = tables.read(spark, cfg.warehouse.path, "runs").where(f"run_id = '{run_id}'").first()
    return {"seconds": seconds, "stages": {s.stage: s.seconds for s in row.stages}, "changes": dict(row.changes)}


def measure(originals: int, repeats: int) -> dict:
    """Full run, then 1 % new files and `repeats` rescans, on a fresh library and warehouse."""
    work = Path(tempfile.mkdtemp(prefix="leakfree-rescan-"))
    try:
        lib = work / "library"
        files = write_demo_library(lib, seed=1, originals=originals)
        cfg = Config.from_toml(
            overrides={
                "library.roots": [str(lib)],
                "library.metadata": str(lib / "metadata.csv"),
                "warehouse.path": str(work / "warehouse"),
                "spark.master": "local[2]",
                "spark.progress_bar": False,
                "report.folder": str(work / "reports"),
            }
        )
        spark = build_session(cfg.spark)
        full = timed_run(spark, cfg, "full")
        warehouse = Path(cfg.warehouse.path)
        shutil.copytree(warehouse, work / "after-full-run")
        added = write_demo_library(lib / "added", seed=2, originals=max(1, len(files) // 150))
        rescans = []
        for attempt in range(repeats):
            shutil.rmtree(warehouse)
            shutil.copytree(work / "after-full-run", warehouse)
            rescans.append(timed_run(spark, cfg, f"rescan-{attempt}"))
        rescan = sorted(rescans, key=lambda r: r["seconds"])[len(rescans) // 2]
        audio_hours = tables.read(spark, cfg.warehouse.path, "catalog").agg({"duration_s": "sum"}).first()[0] / 3600
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return {
        "files": len(files),
        "audio_hours": audio_hours,
        "added_files": len(added),
        "full": full,
        "rescan": rescan,
        "rescan_seconds": [r["seconds"] for r in rescans],
        "ratio": rescan["seconds"] / full["seconds"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--originals", type=int, nargs="+", default=[1600, 6400, 12800], help="library sizes in original sounds"
    )
    parser.add_argument("--repeats", type=int, default=3, help="rescans timed per size; the median counts")
    args = parser.parse_args()
    results = [measure(n, args.repeats) for n in args.originals]
    md = "# Rescan benchmark\n\n"
    md += (
        "Per library size: a generated library, a full run, then 1 % new files and a rescan, in one "
        "Spark session on local[2] (start-up excluded). The rescan ran "
        f"{args.repeats} times, each from a copy of the warehouse the full run left; the table gives "
        "the median and all times. A rescan's cost has a floor of Delta commits and small Spark jobs "
        "per stage, so its share falls as the library grows.\n\n"
    )
    md += table(
        ["files", "audio h", "new files", "full run s", "rescan s (median)", "rescan / full", "rescans s"],
        [
            [
                r["files"],
                r["audio_hours"],
                r["added_files"],
                r["full"]["seconds"],
                r["rescan"]["seconds"],
                r["ratio"],
                ", ".join(f"{s:.1f}" for s in r["rescan_seconds"]),
            ]
            for r in results
        ],
    )
    for r in results:
        md += (
            f"\n## {r['files']} files: seconds per stage (the median rescan)\n\n"
            f"The rescan found {r['rescan']['changes']}.\n\n"
        )
        rows = [[stage, r["full"]["stages"].get(stage, 0.0), r["rescan"]["stages"].get(stage, 0.0)] for stage in STAGES]
        md += table(["stage", "full run s", "rescan s"], rows)
    write_results("rescan", {"sizes": results}, md)


if __name__ == "__main__":
    main()
