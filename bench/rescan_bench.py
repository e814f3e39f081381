"""Rescan benchmark: a full run on a generated library, then a rescan after adding 1 % new
files, in one Spark session (start-up excluded). Writes bench/results/rescan.{json,md}.

    python bench/rescan_bench.py [--originals 1600]
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--originals", type=int, default=1600, help="original sounds in the library (default 1600)")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="leakfree-rescan-"))
    try:
        lib = work / "library"
        began = time.perf_counter()
        files = write_demo_library(lib, seed=1, originals=args.originals)
        generated = time.perf_counter() - began
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
        added = write_demo_library(lib / "added", seed=2, originals=max(1, len(files) // 150))
        rescan = timed_run(spark, cfg, "rescan")
        audio_hours = tables.read(spark, cfg.warehouse.path, "catalog").agg({"duration_s": "sum"}).first()[0] / 3600
    finally:
        shutil.rmtree(work, ignore_errors=True)
    ratio = rescan["seconds"] / full["seconds"]
    data = {
        "files": len(files),
        "audio_hours": audio_hours,
        "added_files": len(added),
        "generation_seconds": generated,
        "full": full,
        "rescan": rescan,
        "ratio": ratio,
    }
    rows = [[stage, full["stages"].get(stage, 0.0), rescan["stages"].get(stage, 0.0)] for stage in STAGES]
    rows.append(["whole run (no Spark start-up)", full["seconds"], rescan["seconds"]])
    md = "# Rescan benchmark\n\n"
    md += (
        f"A generated library of {len(files)} files ({audio_hours:.1f} h of audio); a full run, then "
        f"{len(added)} new files ({len(added) / len(files):.1%}) and a rescan, in one Spark session on local[2]. "
        f"Rescan / full: **{ratio:.1%}**. The rescan found {rescan['changes']}.\n\n"
    )
    md += table(["stage", "full run s", "rescan s"], rows)
    write_results("rescan", data, md)


if __name__ == "__main__":
    main()
