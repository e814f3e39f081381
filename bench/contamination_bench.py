"""Contamination benchmark on ../shared/corpus: some originals play a benchmark's evaluation
set (a reference set with an evaluation list), the rest of the corpus with the planted
variants the training library. Truth says which library files copy an evaluation sound
(they share a truth group with it). Scored per library file, beside exact digests and
Chromaprint on the same files; with the cost of adding the reference (about a tenth of the
library's size) relative to a full run of the library, both timed in one process.
Writes bench/results/contamination.{json,md}.
"""

from __future__ import annotations

import dataclasses
import os
import random
import shutil
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import CORPUS, corpus_available, load_truth, table, write_results
from dedup_bench import SAME_AUDIO_CORRELATION, bit_error_rate, chromaprints, waveform_correlation

from leakfree import tables
from leakfree.config import Config
from leakfree.pipeline import STAGES, run_stages
from leakfree.session import build_session

# The evaluation set: originals that have copies in the corpus and originals that have
# none (most of a real benchmark is not in a given library), drawn with a fixed seed.
WITH_COPIES, WITHOUT_COPIES, SEED = 30, 15, 0


def evaluation_set(truth) -> list[str]:
    members: dict[str, set[str]] = {}
    for path, groups in truth.groups.items():
        for group in groups:
            members.setdefault(group, set()).add(path)
    originals = [p for p in truth.paths if truth.transform[p] == "original"]
    copied = [p for p in originals if any(len(members[g]) > 1 for g in truth.groups[p])]
    alone = [p for p in originals if p not in copied]
    rng = random.Random(SEED)
    return sorted(rng.sample(copied, WITH_COPIES) + rng.sample(alone, WITHOUT_COPIES))


def contaminated_truth(truth, evaluation: list[str], library: list[str]) -> dict[str, list[str]]:
    """Library file -> the evaluation files it shares a truth group with."""
    found: dict[str, list[str]] = {}
    for path in library:
        copies = [e for e in evaluation if truth.groups[path] & truth.groups[e]]
        if copies:
            found[path] = copies
    return found


def score(predicted: set[str], positives: set[str], truth) -> dict:
    hits = predicted & positives
    per_kind: dict[str, list[int]] = {}
    for path in positives:
        kind = per_kind.setdefault(truth.transform[path], [0, 0])
        kind[0] += path in hits
        kind[1] += 1
    return {
        "predicted": len(predicted),
        "contaminated": len(positives),
        "recall": len(hits) / len(positives),
        "precision": len(hits) / len(predicted) if predicted else 1.0,
        "per_transformation": {k: {"recall": v[0] / v[1], "files": v[1]} for k, v in sorted(per_kind.items())},
    }


def chromaprint_baseline(evaluation, library, positives, truth, precision_floor) -> tuple[dict, float]:
    prints = chromaprints(evaluation + library)
    rates = {
        path: min((bit_error_rate(prints[e], prints[path]) for e in evaluation if len(prints[e])), default=1.0)
        for path in library
        if len(prints[path])
    }
    best, best_threshold = score(set(), positives, truth), 0.0
    for step in range(2, 42):
        threshold = step / 100
        result = score({p for p, rate in rates.items() if rate <= threshold}, positives, truth)
        if result["precision"] >= precision_floor and result["recall"] >= best["recall"]:
            best, best_threshold = result, threshold
    best["files_without_fingerprint"] = sum(not len(prints[p]) for p in evaluation + library)
    return best, best_threshold


def main() -> None:
    if not corpus_available():
        write_results(
            "contamination", {"skipped": str(CORPUS)}, f"# Contamination benchmark\n\nSkipped: {CORPUS} is absent.\n"
        )
        return
    truth = load_truth()
    evaluation = evaluation_set(truth)
    library = [p for p in truth.paths if p not in set(evaluation)]
    positives = contaminated_truth(truth, evaluation, library)
    work = Path(tempfile.mkdtemp(prefix="leakfree-contamination-"))
    try:
        for path in library:  # the library: every other file, linked into a folder of its own
            (work / "library" / path).parent.mkdir(parents=True, exist_ok=True)
            os.symlink(CORPUS / path, work / "library" / path)
        (work / "evaluation.txt").write_text("".join(f"{os.path.relpath(p, 'audio')}\n" for p in evaluation))
        cfg = Config.from_toml(
            overrides={
                "library.roots": [str(work / "library")],
                "warehouse.path": str(work / "warehouse"),
                "spark.progress_bar": False,
                "spark.master": "local[2]",
            }
        )
        spark = build_session(cfg.spark)
        began = time.perf_counter()
        run_stages(spark, cfg, [s for s in STAGES if s != "contamination"], command="bench: full run")
        full_s = time.perf_counter() - began
        cfg = cfg.replace(
            contamination=dataclasses.replace(
                cfg.contamination,
                references={"evaluation": (str(CORPUS / "audio"),)},
                lists={"evaluation": str(work / "evaluation.txt")},
            )
        )
        began = time.perf_counter()
        run_stages(spark, cfg, ["contamination"], command="bench: add a reference", need_library=False)
        reference_s = time.perf_counter() - began
        began = time.perf_counter()
        run_stages(spark, cfg, ["contamination"], command="bench: nothing new", need_library=False)
        idle_s = time.perf_counter() - began
        warehouse = cfg.warehouse.path
        rows = tables.read(spark, warehouse, "contamination").collect()
        by_library: dict[str, list] = {}
        for r in rows:
            by_library.setdefault(os.path.relpath(r.library_path, work / "library"), []).append(r)
        digests = {
            r.path: (r.content_sha256, r.pcm_sha256)
            for name, column in (("catalog", "path"), ("reference_catalog", "path"))
            for r in tables.read(spark, warehouse, name)
            .where("NOT retired")
            .select(column, "file_id")
            .join(
                tables.read(spark, warehouse, "features" if name == "catalog" else "reference_features").select(
                    "file_id", "content_sha256", "pcm_sha256"
                ),
                "file_id",
            )
            .collect()
        }
        summary = tables.read(spark, warehouse, "contamination_summary").orderBy("run_id").first()
        stages = {
            r.command: {s.stage: s.seconds for s in r.stages} for r in tables.read(spark, warehouse, "runs").collect()
        }
    finally:
        shutil.rmtree(work, ignore_errors=True)

    truth_set = set(positives)
    leakfree = score(set(by_library), truth_set, truth)
    # What a stricter reader of the table keeps: no match on landmark timing alone (the
    # verifier's rule for echoes and reverb, which also joins sounds that share a sample).
    floor = cfg.dedup.verify.min_correlation
    strong = {p for p, rs in by_library.items() if any(r.method != "audio" or r.correlation >= floor for r in rs)}
    leakfree_strong = score(strong, truth_set, truth)
    reference_digests = {d for path, ds in digests.items() if path.startswith(str(CORPUS)) for d in ds if d is not None}
    exact = score(
        {p for p in library if set(digests.get(str(work / "library" / p), ())) & reference_digests}, truth_set, truth
    )
    chroma, chroma_threshold = chromaprint_baseline(evaluation, library, truth_set, truth, leakfree["precision"])
    misses = [
        {"library_file": p, "transform": truth.transform[p], "copies": positives[p]}
        for p in sorted(truth_set - set(by_library))
    ]
    unknown = []
    for path in sorted(set(by_library) - truth_set):
        best = max(by_library[path], key=lambda r: r.correlation or 0)
        reference = os.path.relpath(best.reference_path, CORPUS)
        unknown.append(
            {
                "library_file": path,
                "reference_file": reference,
                "method": best.method,
                "correlation": round(best.correlation or 0, 3),
                "containment": round(best.containment or 0, 3),
                "waveform_correlation": round(waveform_correlation(reference, path), 3),
            }
        )
    confirmed = sum(u["waveform_correlation"] >= SAME_AUDIO_CORRELATION for u in unknown)
    leakfree["precision_with_confirmed_unknown"] = (
        (leakfree["precision"] * leakfree["predicted"] + confirmed) / leakfree["predicted"]
        if leakfree["predicted"]
        else 1.0
    )
    methods = Counter(r.method for rs in by_library.values() for r in rs)
    data = {
        "evaluation_files": len(evaluation),
        "library_files": len(library),
        "reference_share_of_library": len(evaluation) / len(library),
        "leakfree": leakfree,
        "leakfree_correlation_at_least_min": leakfree_strong | {"min_correlation": floor},
        "baseline_exact": exact,
        "baseline_chromaprint": chroma | {"bit_error_threshold": chroma_threshold},
        "misses": misses,
        "predicted_truth_does_not_know": unknown,
        "methods": dict(methods),
        "seconds": {"full_run": full_s, "add_reference": reference_s, "nothing_new": idle_s},
        "cost_ratio": reference_s / full_s,
        "stage_seconds": stages,
        "summary": summary.asDict() if summary else None,
    }
    kinds = sorted(leakfree["per_transformation"])
    compared = (leakfree, leakfree_strong, exact, chroma)
    result_rows = [
        [k, leakfree["per_transformation"][k]["files"]]
        + [r["per_transformation"].get(k, {"recall": 0.0})["recall"] for r in compared]
        for k in kinds
    ]
    result_rows.append(["all (recall)", leakfree["contaminated"], *(r["recall"] for r in compared)])
    result_rows.append(["precision", "", *(r["precision"] for r in compared)])
    result_rows.append(["files named", "", *(r["predicted"] for r in compared)])
    md = "# Contamination benchmark on ../shared/corpus\n\n"
    md += (
        f"{len(evaluation)} originals play a benchmark's evaluation set ({WITH_COPIES} that have copies in the "
        f"corpus, {WITHOUT_COPIES} that have none; seed {SEED}), given as a reference set with an evaluation "
        f"list; the other {len(library)} files, planted variants included, are the training library. A library "
        f"file is contaminated when it shares a truth group with an evaluation file: {len(truth_set)} are. "
        "Recall and precision per library file, by how the file was made from the evaluation sound "
        "(`original`: a package ships the same sound twice). Chromaprint's bit-error threshold "
        f"({chroma_threshold:.2f}) is the one with the best recall at precision >= leakfree's; "
        f"{chroma['files_without_fingerprint']} files are too short for fpcalc.\n\n"
    )
    md += (
        f"`leakfree, corr >= {floor}` counts only the rows a stricter reader keeps: exact copies, shared keys, "
        f"and audio matches at a log-mel correlation of at least {floor} (dedup.verify.min_correlation), i.e. "
        "without the matches the verifier accepts on landmark timing alone (echoes, reverb; also sounds built "
        "from one sample).\n\n"
    )
    md += table(
        ["library file made by", "files", "leakfree", f"leakfree, corr >= {floor}", "exact digests", "Chromaprint"],
        result_rows,
    )
    md += (
        f"\nFound by: {', '.join(f'{m} {n}' for m, n in sorted(methods.items()))} (a file may be found by several)."
        f"\n\n## Cost (local[2], one process)\n\n"
        f"A full run of the library (every stage): {full_s:.0f} s. Adding the reference set "
        f"({len(evaluation)} files, {len(evaluation) / len(library):.0%} of the library): {reference_s:.0f} s, "
        f"**{reference_s / full_s:.2f}** of the full run. The same check again with nothing new: {idle_s:.0f} s.\n"
    )
    md += f"\n## Misses ({len(misses)})\n\n"
    md += (
        table(
            ["library file", "made by", "copies"],
            [[m["library_file"], m["transform"], ", ".join(m["copies"])] for m in misses],
        )
        if misses
        else "None.\n"
    )
    md += (
        f"\n## Contaminated by leakfree, not by truth ({len(unknown)}; {confirmed} confirmed by the waveform check)\n\n"
    )
    md += (
        table(
            ["library file", "reference file", "method", "correlation", "containment", "waveform corr."],
            [
                [
                    u[k]
                    for k in (
                        "library_file",
                        "reference_file",
                        "method",
                        "correlation",
                        "containment",
                        "waveform_correlation",
                    )
                ]
                for u in unknown
            ],
        )
        if unknown
        else "None.\n"
    )
    md += (
        f"\nPrecision by truth alone {leakfree['precision']:.3f}; counting what the waveform check "
        f"(correlation >= {SAME_AUDIO_CORRELATION} at the best lag, as in dedup.md) confirms: "
        f"{leakfree['precision_with_confirmed_unknown']:.3f}.\n"
    )
    write_results("contamination", data, md)


if __name__ == "__main__":
    main()
