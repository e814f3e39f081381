"""Scaling benchmark: candidates + verification + components on synthetic signatures.

For each size N, N synthetic files are generated on the executors: 20 % of them in planted
groups of three near-copies (30 % of the hashes dropped, 10 % new ones, a little noise on
the log-mel frames), the rest unrelated. Their features and catalog rows are written as
Delta tables, then the candidates, pairs and groups stages run on local[2]. Wall time and
peak memory (RSS of this process and all its children: the JVM and Python workers) are
recorded per size, with the recall of the planted pairs. Writes bench/results/scaling.*.

    python bench/scaling_bench.py [--sizes 10000 100000 1000000]
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pyarrow as pa
from pyspark.sql import functions as F
from pyspark.sql.pandas.types import from_arrow_schema

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import table, write_results

from leakfree import tables
from leakfree.config import Config
from leakfree.features import FEATURES_SCHEMA
from leakfree.minhash import MinHasher
from leakfree.pipeline import candidates_stage, groups_stage, pairs_stage, recorded_run
from leakfree.session import build_session

HASHES, FRAMES, BANDS = 60, 40, 32


def planted_group(file_id: int) -> int | None:
    """Files 3g, 3g+1, 3g+2 are copies of one sound for every fifth g."""
    return file_id // 3 if (file_id // 3) % 5 == 0 else None


def synthetic_rows(batches: Iterator[pa.RecordBatch], num_perm: int, seed: int) -> Iterator[pa.RecordBatch]:
    hasher = MinHasher(num_perm, seed)
    for batch in batches:
        rows = []
        for file_id in batch.column("id").to_pylist():
            group = planted_group(file_id)
            base = np.random.default_rng(1_000_000_007 + (group if group is not None else -file_id - 1))
            hashes = base.integers(0, 1 << 25, HASHES, dtype=np.int64)
            times = np.sort(base.integers(0, FRAMES * 2, HASHES)).astype(np.int32)
            logmel = base.integers(0, 120, (FRAMES, BANDS)).astype(np.float32)
            if group is not None:
                own = np.random.default_rng(file_id)
                keep = own.random(HASHES) > 0.3
                extra = own.integers(0, 1 << 25, HASHES // 10, dtype=np.int64)
                hashes = np.concatenate([hashes[keep], extra])
                times = np.concatenate([times[keep], own.integers(0, FRAMES * 2, len(extra)).astype(np.int32)])
                logmel = logmel + own.normal(0, 4, logmel.shape)
            rows.append(
                {
                    "file_id": file_id,
                    "content_sha256": f"{file_id:064x}",
                    "pcm_sha256": f"p{file_id:063x}",
                    "decoded_s": FRAMES * 0.016,
                    "capped": False,
                    "flag": None,
                    "active_s": FRAMES * 0.016,
                    "hop_s": 0.008,
                    "hashes": hashes.astype(np.int32),
                    "times": times,
                    "segments": [{"family": "sparse", "start_s": 0.0, "signature": hasher.signature_bytes(hashes)}],
                    "caption_signature": None,
                    "logmel": np.clip(logmel, 0, 255).astype(np.uint8).tobytes(),
                    "logmel_bands": BANDS,
                    "logmel_hop_s": 0.016,
                }
            )
        yield pa.RecordBatch.from_pylist(rows, schema=FEATURES_SCHEMA)


class PeakMemory:
    """Samples the RSS of this process and its descendants twice a second."""

    def __init__(self) -> None:
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> PeakMemory:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, _tree_rss(os.getpid()))
            self._stop.wait(0.5)


def _tree_rss(root: int) -> int:
    children: dict[int, list[int]] = {}
    rss: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            fields = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()
            rss[int(entry)] = int(fields[21]) * os.sysconf("SC_PAGE_SIZE")
            children.setdefault(int(fields[1]), []).append(int(entry))
        except (OSError, IndexError, ValueError):
            continue
    total, pending = 0, [root]
    while pending:
        pid = pending.pop()
        total += rss.get(pid, 0)
        pending += children.get(pid, [])
    return total


def run_size(spark, cfg: Config, size: int) -> dict:
    warehouse = cfg.warehouse.path
    features = (
        spark.range(size)
        .repartition(max(2, size // 20000))
        .mapInArrow(
            lambda it: synthetic_rows(it, cfg.features.num_perm, cfg.features.seed), from_arrow_schema(FEATURES_SCHEMA)
        )
    )
    tables.overwrite(features, warehouse, "features")
    catalog = tables.read(spark, warehouse, "features").select(
        "file_id",
        "content_sha256",
        F.lit(False).alias("retired"),
        # What the pairs stage names errors by and the groups stage picks the copy to keep by.
        F.format_string("synthetic/%d.wav", "file_id").alias("path"),
        F.lit("PCM_16").alias("subtype"),
        F.lit(8000).alias("sample_rate"),
        F.lit(1).alias("channels"),
        F.lit(0.0).alias("mtime"),
    )
    tables.overwrite(catalog, warehouse, "catalog")
    with PeakMemory() as memory:
        began = time.perf_counter()
        with recorded_run(spark, cfg, f"scaling {size}", None) as run:
            for stage in (candidates_stage, pairs_stage, groups_stage):
                stage(spark, cfg, run)
        seconds = time.perf_counter() - began
    stages = {s.stage: s.seconds for s in run.stages}
    pairs = tables.read(spark, warehouse, "pairs").where("method = 'audio'").select("file_a", "file_b").collect()
    found = {(p.file_a, p.file_b) for p in pairs}
    planted = {
        (a, b)
        for a in range(size)
        for b in (a + 1, a + 2)
        if b < size and planted_group(a) is not None and planted_group(a) == planted_group(b)
    }
    groups = tables.read(spark, warehouse, "groups").where("group_size = 3").select("group_id").distinct().count()
    return {
        "files": size,
        "seconds": seconds,
        "stage_seconds": stages,
        "peak_rss_gb": memory.peak / 2**30,
        "candidates": run.stages[0].counters["candidates_unverified"],
        "planted_pairs": len(planted),
        "planted_recall": len(found & planted) / max(1, len(planted)),
        "false_pairs": len(found - planted),
        "groups_of_three": groups,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000, 1_000_000])
    args = parser.parse_args()
    results = []
    for size in args.sizes:
        work = Path(tempfile.mkdtemp(prefix="leakfree-scale-"))
        cfg = Config.from_toml(
            overrides={
                "warehouse.path": str(work / "warehouse"),
                "spark.master": "local[2]",
                "spark.progress_bar": False,
                "library.roots": ["synthetic"],
                # 1M files: room for the band shuffle (the machine has 24 GB).
                "spark.conf": {"spark.driver.memory": "8g"},
            }
        )
        spark = build_session(cfg.spark)
        try:
            results.append(run_size(spark, cfg, size))
            print(results[-1], flush=True)
        finally:
            spark.catalog.clearCache()
            shutil.rmtree(work, ignore_errors=True)
    rows = [
        [
            r["files"],
            round(r["seconds"], 1),
            round(r["seconds"] / r["files"] * 1e6, 1),
            round(r["peak_rss_gb"], 2),
            r["candidates"],
            f"{r['planted_recall']:.3f}",
            r["false_pairs"],
        ]
        + [round(r["stage_seconds"].get(s, 0), 1) for s in ("candidates", "pairs", "groups")]
        for r in results
    ]
    md = "# Scaling: candidates + verification + components on synthetic signatures (local[2])\n\n"
    md += table(
        [
            "files",
            "wall s",
            "us per file",
            "peak RSS GB",
            "candidates",
            "planted recall",
            "false pairs",
            "candidates s",
            "pairs s",
            "groups s",
        ],
        rows,
    )
    write_results("scaling", {"runs": results}, md)


if __name__ == "__main__":
    main()
