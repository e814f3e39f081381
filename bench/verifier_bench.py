"""Verifier benchmark: the verifier alone (no Spark, no candidate stage) on every truth pair
of the stress corpora (bench/stress_corpus.py) and on pairs of different sounds, per family.

It answers on one core in half an hour (2.5 minutes without kept candidates) what the
robustness benchmark answers with the whole pipeline in about an hour, so that a change to
the verifier can be measured before the whole pipeline runs: recall here is an
upper bound on the pipeline's direct recall (a pair the candidates never propose is not
verified there). Its pairs of different sounds are files made from two different originals
of one package folder (two footsteps, two prompts of one voice), sampled at random, and
the pairs truth calls different that the last robustness run's candidate stage proposed,
where the corpus keeps them: random pairs alone missed a rule that joined 2 more of 24,000
of them and made 14 more false edges on stress in the pipeline. Features are extracted
once per corpus and features config and kept beside the corpus.

    verifier_bench.py [NAME ...] [--negatives N] [--misses FILE.json]

Writes bench/results/verifier.{json,md}; --misses also writes every evidence of the truth
pairs that fail and of the different pairs that pass, for a person to read.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import pickle
import sys
import time
from collections import defaultdict
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import CANDIDATES, RESULTS, different_pairs, load_truth, table, write_results
from robustness_bench import family_and_strength, through_groups
from stress_corpus import SPECS, build

import leakfree.features
from leakfree import decode, fingerprint
from leakfree.config import Config
from leakfree.features import Extractor
from leakfree.fingerprint import mel_frequencies
from leakfree.verify import audio_evidence

NEGATIVES = 6000  # a false pair among them moves precision-like rates by 1/6000


def verifier_input(row: dict) -> dict:
    """The part of a features row the verifier reads, as pairs.py hands it over."""
    return {
        "hashes": row["hashes"].astype(np.uint32),
        "times": row["times"].astype(np.int32),
        "triplet_hashes": row["triplet_hashes"].astype(np.uint32),
        "triplet_points": row["triplet_points"].astype(np.int32),
        "logmel": np.frombuffer(row["logmel"], np.uint8).reshape(-1, row["logmel_bands"] or 1),
        "logmel_hop_s": row["logmel_hop_s"],
        "hop_s": row["hop_s"],
    }


_extractor: Extractor | None = None


def _extract(args: tuple[str, str]) -> tuple[str, dict | None]:
    global _extractor
    rel, path = args
    if _extractor is None:
        _extractor = Extractor(Config.from_toml().features)
    row = _extractor.extract(path, None)
    return rel, None if "error_class" in row else verifier_input(row)


def features(corpus: Path, paths: list[str], cfg: Config) -> dict[str, dict | None]:
    """Each file's verifier input, None for a file that does not decode; cached per features
    config and per version of the code that makes them."""
    code = "".join(Path(m.__file__).read_text() for m in (decode, fingerprint, leakfree.features))
    key = json.dumps(asdict(cfg.features), sort_keys=True, default=str) + code
    digest = hashlib.sha256(key.encode()).hexdigest()[:12]
    cache = corpus.parent / f"verifier-features-{digest}.pickle"
    if cache.exists():
        return pickle.loads(cache.read_bytes())
    with ProcessPoolExecutor(os.cpu_count()) as pool:
        found = dict(pool.map(_extract, [(p, str(corpus / p)) for p in paths], chunksize=16))
    cache.write_bytes(pickle.dumps(found))
    return found


def evidence_row(a: str, b: str, ev) -> dict:
    return {"a": a, "b": b} | ({} if ev is None else {k: round(v, 4) for k, v in asdict(ev).items()})


def joined(rows: dict[str, dict | None], pairs: list, params, mel_hz: np.ndarray) -> list[dict]:
    """The evidence of the (a, b, proposed by triplets alone) pairs the verifier joins."""
    found = []
    for a, b, triplets_only in pairs:
        if rows[a] is None or rows[b] is None:
            continue
        ev = audio_evidence(rows[a], rows[b], params, mel_hz, triplets_only=triplets_only)
        if ev is not None and ev.verified(params):
            found.append(evidence_row(a, b, ev))
    return found


def measure(name: str, negatives: int) -> tuple[dict, list[dict], list[dict]]:
    spec = next(s for s in SPECS if s.name == name)
    corpus = build(spec)
    truth = load_truth(corpus)
    cfg = Config.from_toml()
    params, mel_hz = cfg.dedup.verify, mel_frequencies(cfg.features.fingerprint)
    rows = features(corpus, truth.paths, cfg)
    per_kind = defaultdict(lambda: [0, 0])
    misses, verified = [], set()
    began = time.perf_counter()
    for a, b in truth.pairs():
        ev = None
        if rows[a] is not None and rows[b] is not None:
            ev = audio_evidence(rows[a], rows[b], params, mel_hz)
        ok = ev is not None and ev.verified(params)
        kind = truth.kind(a, b)
        per_kind[kind][0] += ok
        per_kind[kind][1] += 1
        if ok:
            verified.add((a, b))
        else:
            misses.append(evidence_row(a, b, ev) | {"kind": kind})
    truth_s = time.perf_counter() - began
    began = time.perf_counter()
    tried = different_pairs(corpus, truth, negatives)
    false = joined(rows, [(a, b, False) for a, b in tried], params, mel_hz)
    different_s = time.perf_counter() - began
    proposed = corpus.parent / CANDIDATES
    candidates = json.loads(proposed.read_text()) if proposed.exists() else []
    false_proposed = joined(rows, candidates, params, mel_hz)
    found = sum(v[0] for v in per_kind.values())
    pairs = sum(v[1] for v in per_kind.values())
    groups = through_groups(verified, truth)
    return (
        {
            "about": spec.about,
            "recall": found / pairs,
            "recall_through_groups": groups["all"],
            "truth_pairs": pairs,
            "undecoded_files": sorted(p for p, r in rows.items() if r is None),
            "per_transformation": {
                k: {"pairs": v[1], "recall": v[0] / v[1], "through_groups": groups[k]}
                for k, v in sorted(per_kind.items())
            },
            "different_pairs": len(tried),
            "different_pairs_joined": len(false),
            "proposed_different_pairs": len(candidates),
            "proposed_different_pairs_joined": len(false_proposed),
            "ms_per_truth_pair": 1000 * truth_s / pairs,
            "ms_per_different_pair": 1000 * different_s / max(len(tried), 1),
        },
        misses,
        false + false_proposed,
    )


def section(name: str, d: dict) -> str:
    rows = [
        [*family_and_strength(kind), v["pairs"], v["recall"], v["through_groups"]]
        for kind, v in sorted(d["per_transformation"].items(), key=lambda kv: family_and_strength(kv[0]))
    ]
    rows.append(["all", "", d["truth_pairs"], d["recall"], d["recall_through_groups"]])
    return (
        f"## {name}: {d['about']}\n\n"
        + table(["family", "strength", "pairs", "verified", "through groups"], rows)
        + f"\nDifferent sounds of one folder joined: {d['different_pairs_joined']} of {d['different_pairs']}. "
        f"Pairs truth calls different that the last whole-pipeline run proposed, joined: "
        f"{d['proposed_different_pairs_joined']} of {d['proposed_different_pairs']}. "
        f"Files that do not decode: {len(d['undecoded_files'])}. Verifier time: "
        f"{d['ms_per_truth_pair']:.1f} ms per truth pair, {d['ms_per_different_pair']:.1f} ms per different pair "
        "(one process).\n\n"
    )


INTRODUCTION = (
    "The verifier alone (`verify.audio_evidence`, no Spark, no candidate stage) on every pair "
    "truth lists and on pairs of files made from different originals of one package folder. "
    "Recall here bounds the pipeline's from above, directly and through groups (both files in one "
    "component of the truth pairs verified); bench/results/robustness.md has what the whole "
    "pipeline finds.\n\n"
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("names", nargs="*", help="corpora to measure (default: all)")
    parser.add_argument("--negatives", type=int, default=NEGATIVES, help="pairs of different sounds per corpus")
    parser.add_argument("--misses", type=Path, help="write failing truth pairs and joined different pairs here")
    args = parser.parse_args()
    names = args.names or [s.name for s in SPECS]
    unknown = set(names) - {s.name for s in SPECS}
    if unknown:
        sys.exit(f"no such corpus: {', '.join(sorted(unknown))} (there are {', '.join(s.name for s in SPECS)})")
    kept = RESULTS / "verifier.json"
    data = json.loads(kept.read_text()) if args.names and kept.exists() else {}
    details = {}
    for name in names:
        data[name], misses, false = measure(name, args.negatives)
        details[name] = {"missed_truth_pairs": misses, "joined_different_pairs": false}
    if args.misses:
        args.misses.write_text(json.dumps(details, indent=1))
    data = {s.name: data[s.name] for s in SPECS if s.name in data}
    write_results(
        "verifier", data, "# Verifier benchmark\n\n" + INTRODUCTION + "".join(section(n, d) for n, d in data.items())
    )


if __name__ == "__main__":
    main()
