"""A library in the shape many real ones have: sound effects of several game packages, each
captioned by its file name ("click", "explosion 2") and keyed by its package as the setup.

Built from the originals of ../shared/corpus (six Debian packages) and of the stress corpus
(three more, bench/stress_corpus.py), PER_PACKAGE files from each, music left out. Which files
are duplicates is decided without leakfree, by the stress corpus's waveform check, plus the
shared corpus's own truth for its originals.
"""

from __future__ import annotations

import csv
import random
import re
from collections import defaultdict
from pathlib import Path

import soundfile as sf
from common import CORPUS
from stress_corpus import CORPUS as STRESS_CORPUS
from stress_corpus import SAME_AUDIO_NCC, best_ncc, groups_of, mono_at_check_rate

PER_PACKAGE = 60
LONGEST_S = 12.0  # sound effects, not music
SEED = 3


def file_name_caption(path: str) -> str:
    """ "SmallExplosion_2.wav" -> "small explosion 2": what a library without descriptions has."""
    stem = re.sub(r"([a-z])([A-Z])", r"\1 \2", Path(path).stem)
    stem = re.sub(r"([A-Za-z])(\d)", r"\1 \2", stem)
    return " ".join(re.sub(r"[_\-.]+", " ", stem).lower().split())


def originals(corpus: Path) -> dict[str, list[Path]]:
    """Package -> its original recordings in one corpus (truth's `original` rows)."""
    found = defaultdict(list)
    with (corpus / "truth.csv").open(encoding="utf-8") as f:
        for row in csv.DictReader(f):
            if row["transform"] == "original":
                found[Path(row["path"]).parts[1]].append(corpus / row["path"])
    return found


def build(root: Path) -> tuple[Path, dict[str, str]] | None:
    """The library under root (symlinks) with metadata.csv; returns it and path -> truth group.
    None when either source corpus is absent."""
    if not (CORPUS / "truth.csv").exists() or not (STRESS_CORPUS / "truth.csv").exists():
        return None
    rng = random.Random(SEED)
    chosen: list[tuple[str, Path]] = []
    for corpus in (CORPUS, STRESS_CORPUS):
        for package, files in sorted(originals(corpus).items()):
            effects = sorted(f for f in files if sf.info(str(f)).duration <= LONGEST_S)
            for file in rng.sample(effects, min(PER_PACKAGE, len(effects))):
                chosen.append((f"{package}/{file.parent.name}/{file.name}", file))
    library = root / "packages"
    for rel, file in chosen:
        (library / rel).parent.mkdir(parents=True, exist_ok=True)
        (library / rel).symlink_to(file)
    with (library / "metadata.csv").open("w", newline="", encoding="utf-8") as f:
        out = csv.writer(f)
        out.writerow(["path", "caption", "setup"])
        out.writerows((rel, file_name_caption(rel), rel.split("/")[0]) for rel, _ in chosen)
    return library, truth_groups(chosen)


def truth_groups(chosen: list[tuple[str, Path]]) -> dict[str, str]:
    """path -> group: files joined by the waveform check, or by the shared corpus's truth."""
    same = []
    signals = {rel: mono_at_check_rate(file) for rel, file in chosen}
    rels = sorted(signals)
    for i, a in enumerate(rels):
        for b in rels[i + 1 :]:
            if min(len(signals[a]), len(signals[b])) >= 400 and best_ncc(signals[a], signals[b]) >= SAME_AUDIO_NCC:
                same.append((a, b, 1.0))
    shared_group = {}
    with (CORPUS / "truth.csv").open(encoding="utf-8") as f:
        for row in csv.DictReader(f):
            shared_group.setdefault(str(CORPUS / row["path"]), row["group"])
    by_group = defaultdict(list)
    for rel, file in chosen:
        if str(file) in shared_group:
            by_group[shared_group[str(file)]].append(rel)
    same += [(members[0], other, 1.0) for members in by_group.values() for other in members[1:]]
    return groups_of(rels, same)
