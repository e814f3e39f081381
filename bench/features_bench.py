"""Features benchmark: fingerprint quality per transformation on ../shared/corpus, and
decode vs full-stage throughput per core. Writes bench/results/features.{json,md}.

Quality: for every duplicate pair of truth.csv and as many random non-duplicate pairs,
the Jaccard and containment of the landmark hash sets (best family the two files share)
and the best MinHash-estimated Jaccard over segment windows (what LSH banding sees).
A threshold at the 99th percentile of the non-duplicates (1 % false positives among
random pairs) shows how well each measure separates.
"""

from __future__ import annotations

import sys
import tempfile
import time
from multiprocessing import Pool
from pathlib import Path

import numpy as np
import soundfile as sf

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import CORPUS, corpus_available, load_truth, table, write_results

from leakfree.config import Config
from leakfree.decode import decode_mono
from leakfree.demo import MP3_128K, SOUNDS, VORBIS_Q2, write_audio
from leakfree.features import Extractor
from leakfree.fingerprint import set_similarity
from leakfree.minhash import jaccard_estimate

SETTINGS = Config.from_toml().features
_extractor: Extractor | None = None


def _extract(path: str) -> tuple[str, dict]:
    global _extractor
    if _extractor is None:
        _extractor = Extractor(SETTINGS)
    row = _extractor.extract(str(CORPUS / path), None)
    keep = ("hashes", "flag", "active_s", "segments")
    return path, {k: row.get(k) for k in keep} | _short_sound_families(str(CORPUS / path))


def _short_sound_families(path: str) -> dict[str, np.ndarray]:
    """The dense and strong families are not stored per hash (only their segment
    signatures); recompute them."""
    from leakfree.fingerprint import fingerprint

    decoded = decode_mono(path, rate=SETTINGS.analysis_rate, max_seconds=SETTINGS.max_seconds)
    fp = fingerprint(decoded.samples, SETTINGS.analysis_rate, SETTINGS.fingerprint, _extractor.mel)
    return {"dense": fp.dense_hashes, "strong": fp.strong_hashes}


def pair_measures(a: dict, b: dict) -> dict:
    if a.get("hashes") is None or b.get("hashes") is None:
        return {"jaccard": 0.0, "containment": 0.0, "segment_jaccard": 0.0}
    scores = [set_similarity(np.asarray(a["hashes"]), np.asarray(b["hashes"]))]
    scores += [set_similarity(a[f], b[f]) for f in ("dense", "strong") if len(a[f]) and len(b[f])]
    best_segment = max(
        (
            jaccard_estimate(x["signature"], y["signature"])
            for x in a["segments"]
            for y in b["segments"]
            if x["family"] == y["family"]
        ),
        default=0.0,
    )
    return {
        "jaccard": max(s[0] for s in scores),
        "containment": max(s[1] for s in scores),
        "segment_jaccard": best_segment,
    }


def quality() -> tuple[dict, str]:
    truth = load_truth()
    with Pool(2) as pool:
        prints = dict(pool.map(_extract, truth.paths, chunksize=8))
    positives = truth.pairs()
    negatives = truth.random_non_pairs(len(positives))
    pos = [(truth.kind(a, b), pair_measures(prints[a], prints[b])) for a, b in positives]
    neg = [pair_measures(prints[a], prints[b]) for a, b in negatives]
    measures = ("jaccard", "containment", "segment_jaccard")
    thresholds = {m: float(np.percentile([n[m] for n in neg], 99)) for m in measures}
    kinds = sorted({k for k, _ in pos})
    rows, data = [], {"thresholds_at_1pct_fpr": thresholds, "per_transformation": {}}
    for kind in [*kinds, "all"]:
        values = [v for k, v in pos if kind in (k, "all")]
        entry = {"pairs": len(values)}
        for m in measures:
            arr = np.array([v[m] for v in values])
            entry[m] = {
                "median": float(np.median(arr)),
                "p10": float(np.percentile(arr, 10)),
                "recall_at_threshold": float(np.mean(arr > thresholds[m])),
            }
        data["per_transformation"][kind] = entry
        rows.append(
            [kind, len(values)]
            + [entry[m]["median"] for m in measures]
            + [entry[m]["p10"] for m in measures]
            + [entry[m]["recall_at_threshold"] for m in measures]
        )
    neg_row = ["random non-duplicates", len(neg)] + [float(np.median([n[m] for n in neg])) for m in measures]
    neg_row += [float(np.percentile([n[m] for n in neg], 10)) for m in measures] + ["", "", ""]
    rows.append(neg_row)
    data["non_duplicates"] = {
        m: {"median": float(np.median([n[m] for n in neg])), "p99": thresholds[m], "max": float(max(n[m] for n in neg))}
        for m in measures
    }
    flags = [p["flag"] for p in prints.values() if p.get("flag")]
    data["flagged_files"] = {f: flags.count(f) for f in sorted(set(flags))}
    md = "## Fingerprint similarity on ../shared/corpus\n\n"
    md += (
        f"{len(positives)} duplicate pairs vs {len(negatives)} random non-duplicate pairs. J = Jaccard, "
        "C = containment (share of the smaller hash set found in the larger), segJ = best MinHash Jaccard "
        "over 4 s windows. Threshold = 99th percentile of the non-duplicates "
        f"(J {thresholds['jaccard']:.3f}, C {thresholds['containment']:.3f}, "
        f"segJ {thresholds['segment_jaccard']:.3f}); "
        "recall = share of duplicate pairs above it.\n\n"
    )
    md += table(
        [
            "pairs",
            "n",
            "J med",
            "C med",
            "segJ med",
            "J p10",
            "C p10",
            "segJ p10",
            "recall J",
            "recall C",
            "recall segJ",
        ],
        rows,
    )
    md += f"\nFlagged (no fingerprint): {data['flagged_files']}\n"
    return data, md


def _synthetic_minute(folder: Path) -> dict[str, Path]:
    """60 s of 44.1 kHz stereo in each common format, as DEVELOPERS.md measured decode on."""
    rng = np.random.default_rng(0)
    mono = np.concatenate([SOUNDS[k](rng, 7.5, 44100) for k in sorted(SOUNDS)] + [SOUNDS["wind"](rng, 7.5, 44100)])
    stereo = np.stack([mono, np.roll(mono, 441)], axis=1)
    formats = {"wav": {}, "flac": {}, "ogg": VORBIS_Q2, "mp3": MP3_128K}
    files = {}
    for ext, codec in formats.items():
        files[ext] = folder / f"minute.{ext}"
        write_audio(files[ext], stereo, 44100, **codec)
    return files


def _rate(paths: list[str], work, repeat: int = 3) -> float:
    seconds = sum(sf.info(p).duration for p in paths)
    best = float("inf")
    for _ in range(repeat):
        began = time.perf_counter()
        for p in paths:
            work(p)
        best = min(best, time.perf_counter() - began)
    return seconds / best


def throughput() -> tuple[dict, str]:
    extractor = Extractor(SETTINGS)
    extractor.extract(str(next(iter(CORPUS.glob("audio/**/*.wav")), "")), None) if corpus_available() else None
    steps = {
        "decode only (soundfile, all channels)": lambda p: sf.read(p, dtype="float32"),
        "decode step (mono, 8 kHz, PCM digest)": lambda p: decode_mono(
            p, rate=SETTINGS.analysis_rate, max_seconds=SETTINGS.max_seconds
        ),
        "full features": lambda p: extractor.extract(p, "a caption of five words"),
    }
    data: dict = {}
    with tempfile.TemporaryDirectory() as tmp:
        sets = {f"60 s 44.1 kHz stereo {ext.upper()}": [str(p)] for ext, p in _synthetic_minute(Path(tmp)).items()}
        if corpus_available():
            sets["../shared/corpus (mixed)"] = [str(CORPUS / p) for p in load_truth().paths]
        for name, paths in sets.items():
            extractor.extract(paths[0], None)  # warm caches (numba, page cache)
            data[name] = {step: _rate(paths, work) for step, work in steps.items()}
    rows = []
    for name, rates in data.items():
        values = list(rates.values())
        rows.append([name, *[round(v) for v in values], f"{values[2] / values[0]:.2f}", f"{values[2] / values[1]:.2f}"])
    md = "## Throughput per core (x realtime, one process)\n\n"
    md += table(["audio", *steps, "full / decode only", "full / decode step"], rows)
    return data, md


def main() -> None:
    data, md = throughput()
    results = {"throughput_x_realtime_per_core": data}
    if corpus_available():
        q, qmd = quality()
        results["quality"] = q
        md = qmd + "\n" + md
    else:
        md = f"(quality skipped: the evaluation corpus {CORPUS} is absent)\n\n" + md
    write_results("features", results, "# Features benchmark\n\n" + md)


if __name__ == "__main__":
    main()
