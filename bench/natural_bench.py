"""Natural duplicates benchmark: every sound effect of the stress corpora's Debian packages,
unedited, in one library, as a user would scan the games they ship with. Which files hold
the same audio is decided without leakfree, by the stress corpus's waveform check
(pre-emphasised correlation at the best lag, SAME_AUDIO_NCC) over every pair of files of
similar length; leakfree's recall on those pairs, within one package and across two, what it
misses, and the pairs it joins beyond them, each checked again on the waveforms as the
robustness bench checks its own. The two speech prompt packs (1,095 prompts) are left out:
they are not sound effects, and they would double the check's pairs. Writes
bench/results/natural.{json,md}.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from collections import Counter
from pathlib import Path

import numpy as np
import soundfile as sf
from common import table, write_results
from dedup_bench import duplicate_edges, run_pipeline
from pyspark.sql import SparkSession
from robustness_bench import checked_pair, confirmed, path_pair, path_pairs
from stress_corpus import (
    AUDIO_EXTENSIONS,
    CACHE,
    CHECK_RATE,
    SAME_AUDIO_NCC,
    SPECS,
    best_ncc,
    corpus_paths,
    fetch_packages,
    mono_at_check_rate,
    readable,
)

from leakfree import tables

HOME = CACHE / "natural"
LONGEST_S = 60.0  # sound effects and jingles; the waveform check of long music costs too much
# The check compares files whose lengths differ by this factor at most (a trim, a fade,
# padding): 0.6 million pairs here, 4 minutes of one core. Excerpts and sounds inside
# longer files are left to the robustness bench, which plants them.
LENGTH_RATIO = 1.5
SKIPPED = ("asterisk-core-sounds-",)
REACHES = ("within a package", "across packages")


def library() -> Path:
    """audio/<package>/<folder>/<file> for every sound effect of the packages, copied once."""
    root = HOME / "library"
    if (root / "audio").is_dir():
        return root
    building = root.with_name("library.building")
    shutil.rmtree(building, ignore_errors=True)
    for spec in SPECS:
        pkgs = fetch_packages(spec)
        for package in spec.packages:
            if package.startswith(SKIPPED):
                continue
            files = sorted(
                p
                for p in (pkgs / package).rglob("*")
                if p.suffix.lower() in AUDIO_EXTENSIONS and readable(p) and sf.info(str(p)).duration <= LONGEST_S
            )
            for file, rel in corpus_paths(package, files, pkgs).items():
                (building / rel).parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(file, building / rel)
    building.rename(root)
    return root


def same_audio(root: Path) -> dict[tuple[str, str], float]:
    """Pairs of files of similar length that the waveform check calls the same audio, with
    their correlation; kept beside the library for as long as its files stay the same."""
    files = sorted(str(p.relative_to(root)) for p in (root / "audio").rglob("*") if p.is_file())
    kept = HOME / "same_audio.json"
    cached = json.loads(kept.read_text()) if kept.exists() else {}
    if cached.get("files") == files:
        return {(a, b): ncc for a, b, ncc in cached["pairs"]}
    signals = {rel: mono_at_check_rate(root / rel) for rel in files}
    by_length = sorted((rel for rel in files if len(signals[rel]) >= CHECK_RATE // 10), key=lambda r: len(signals[r]))
    lengths = np.array([len(signals[rel]) for rel in by_length])
    found = {}
    for i, a in enumerate(by_length):
        for b in by_length[i + 1 : np.searchsorted(lengths, lengths[i] * LENGTH_RATIO, "right")]:
            ncc = best_ncc(signals[a], signals[b])
            if ncc >= SAME_AUDIO_NCC:
                found[tuple(sorted((a, b)))] = round(ncc, 3)
    kept.write_text(json.dumps({"files": files, "pairs": [[a, b, ncc] for (a, b), ncc in sorted(found.items())]}))
    return found


def package(rel: str) -> str:
    return rel.split("/")[1]


def reach(pair: tuple[str, str]) -> str:
    return REACHES[0] if package(pair[0]) == package(pair[1]) else REACHES[1]


def measure() -> dict:
    root = library()
    same = same_audio(root)
    work = Path(tempfile.mkdtemp(prefix="leakfree-natural-"))
    try:
        rel, pairs, _, seconds, _ = run_pipeline(work / "warehouse", root, metadata=False)
        rows = tables.read(SparkSession.getActiveSession(), str(work / "warehouse"), "candidates")
        proposed = path_pairs(rows.select("file_a", "file_b").collect(), rel)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    edges = duplicate_edges(pairs, rel)
    predicted = {path_pair(p, rel) for p in edges}
    recall = {}
    for kind in REACHES:
        pairs_of_kind = {p for p in same if reach(p) == kind}
        recall[kind] = {
            "pairs": len(pairs_of_kind),
            "proposed": len(pairs_of_kind & proposed),
            "found": len(pairs_of_kind & predicted),
        }
    misses = [
        {"a": a, "b": b, "waveform_ncc": same[(a, b)], "proposed": (a, b) in proposed}
        for a, b in sorted(set(same) - predicted, key=lambda p: (-same[p], p))
    ]
    beyond = [checked_pair(p, rel, root) for p in edges if path_pair(p, rel) not in same]
    beyond.sort(key=lambda u: (-u["waveform_correlation"], -u["segment_correlation"], u["a"], u["b"]))
    return {
        "files": len(rel),
        "packages": len({package(r) for r in rel.values()}),
        "seconds": round(seconds, 1),
        "recall": recall,
        "predicted": len(predicted),
        "misses": misses,
        "beyond_the_check": beyond,
    }


def same_by_another_check(checked: dict) -> bool:
    """Confirmed by a waveform check, or a byte or PCM copy (a digest needs no check; some such
    copies are a few samples long, placeholders too short for the waveform check)."""
    return checked["method"] in ("exact_bytes", "exact_pcm") or confirmed(checked)


def packages_and_method(checked: dict) -> tuple[str, str]:
    return " / ".join(sorted({package(checked["a"]), package(checked["b"])})), checked["method"]


def markdown(data: dict) -> str:
    recall, beyond = data["recall"], data["beyond_the_check"]
    found = sum(r["found"] for r in recall.values())
    sure = sum(map(same_by_another_check, beyond))
    md = "# Natural duplicates of real packages\n\n" + " ".join(__doc__.split()).split(" Writes ")[0] + "\n\n"
    md += (
        f"{data['files']} files of {data['packages']} packages, whole pipeline on local[2] in "
        f"{data['seconds']:.0f} s (catalog to pairs, audio only). Same audio by the waveform check: correlation "
        f">= {SAME_AUDIO_NCC} over files whose lengths differ by {LENGTH_RATIO}x at most.\n\n"
    )
    rows = [
        [kind, r["pairs"], r["proposed"] / max(r["pairs"], 1), r["found"] / max(r["pairs"], 1)]
        for kind, r in ((kind, recall[kind]) for kind in REACHES)
    ]
    md += table(["pairs the check finds", "pairs", "proposed", "leakfree"], rows)
    md += (
        f"\nleakfree joins {data['predicted']} pairs: {found} the check finds, and {len(beyond)} more, of which "
        f"{sure} are the same audio by another check (below). Precision by the check alone "
        f"{found / max(data['predicted'], 1):.3f}, counting those {(found + sure) / max(data['predicted'], 1):.3f}.\n"
    )
    md += f"\n## Missed ({len(data['misses'])})\n\n"
    md += table(
        ["a", "b", "waveform correlation", "proposed"],
        [[m["a"], m["b"], m["waveform_ncc"], "yes" if m["proposed"] else "no"] for m in data["misses"]],
    )
    md += (
        f"\n## Joined beyond the check ({len(beyond)} of {data['predicted']} pairs)\n\n"
        "The check above only compares files of similar length, at one strict level; these pairs are checked "
        "again as the robustness bench checks its own: the whole-file waveform correlation and the best "
        f"half-second segment, after undoing the speed leakfree found, and byte or PCM copies count as "
        f"confirmed. {sure} of them are. Per package and method:\n\n"
    )
    by_group = Counter(packages_and_method(u) for u in beyond)
    kept = Counter(packages_and_method(u) for u in beyond if same_by_another_check(u))
    md += table(["packages", "method", "pairs", "confirmed"], [[*k, n, kept[k]] for k, n in by_group.most_common()])
    md += "\nEvery pair with its evidence and checks is in natural.json.\n"
    return md


if __name__ == "__main__":
    data = measure()
    write_results("natural", data, markdown(data))
