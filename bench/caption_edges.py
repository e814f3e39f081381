"""Caption edges before and after weighing words by their rarity, on real captions.

`caption_pairs` finds the pairs the pipeline's caption family proposes and verifies (MinHash
of word 1-2-grams, LSH at dedup.caption_threshold, an estimated Jaccard of at least
dedup.verify.caption_min_jaccard): what used to join groups. `specific` says which of them
join now (leakfree.captions, the rule the groups stage applies).

`bbc_catalog` measures both on the BBC Sound Effects catalogue (16,000 real descriptions,
the source of SoundDesc, with the CD each recording came from), fetched once from a public
GitHub repository into ~/.cache/leakfree/bbc. A caption edge between recordings of two
different CDs cannot be two takes of one recording session: that is the false-edge rate.
"""

from __future__ import annotations

import csv
import os
import subprocess
from collections import Counter, defaultdict
from dataclasses import replace
from itertools import combinations
from pathlib import Path

from leakfree import lsh
from leakfree.captions import caption_evidence, caption_words, word_bits
from leakfree.config import Config
from leakfree.minhash import MinHasher, caption_shingles, jaccard_estimate

BBC = Path(os.environ.get("LEAKFREE_BBC_DIR", Path.home() / ".cache" / "leakfree" / "bbc")) / "BBCSoundEffects.csv"
BBC_SOURCE = "https://raw.githubusercontent.com/FThompson/BBCSoundDownloader/master/BBCSoundEffects.csv"


def caption_pairs(captions: dict[str, str], cfg: Config) -> list[tuple[str, str]]:
    """The caption edges the pairs stage makes: LSH candidates verified by estimated Jaccard."""
    hasher = MinHasher(cfg.features.num_perm, cfg.features.seed)
    signatures = {}
    for key, text in captions.items():
        shingles = caption_shingles(text, cfg.features.caption_shingle_words)
        if shingles:
            signatures[key] = hasher.text_signature(shingles)
    banding = lsh.Banding.for_threshold(cfg.dedup.caption_threshold, cfg.features.num_perm)
    buckets: dict[tuple[int, bytes], list[str]] = defaultdict(list)
    for key, signature in signatures.items():
        for band in range(banding.bands):
            width = 4 * banding.rows
            buckets[(band, signature[band * width : (band + 1) * width])].append(key)
    candidates = {tuple(sorted(p)) for members in buckets.values() for p in combinations(members, 2)}
    needed = cfg.dedup.verify.caption_min_jaccard
    return sorted(p for p in candidates if jaccard_estimate(signatures[p[0]], signatures[p[1]]) >= needed)


def specific(captions: dict[str, str], pairs: list[tuple[str, str]], cfg: Config) -> set[tuple[str, str]]:
    """The pairs whose captions are specific enough to join (the groups stage's rule)."""
    words = {k: caption_words(t) for k, t in captions.items()}
    captioned = sum(1 for w in words.values() if w)
    files = Counter(w for ws in words.values() for w in ws)
    bits = {w: word_bits(n, captioned) for w, n in files.items()}
    groups = cfg.groups
    return {
        (a, b)
        for a, b in pairs
        if caption_evidence(
            words[a], words[b], bits, captioned_files=captioned, margin_bits=groups.caption_margin_bits
        ).specific(groups.caption_min_similarity)
    }


def fetch_bbc() -> Path | None:
    if not BBC.exists():
        BBC.parent.mkdir(parents=True, exist_ok=True)
        done = subprocess.run(["curl", "-fsSL", "-o", str(BBC), BBC_SOURCE], capture_output=True)
        if done.returncode != 0:
            BBC.unlink(missing_ok=True)
            return None
    return BBC


def bbc_catalog(cfg: Config, margins: tuple[float, ...] = ()) -> dict | None:
    """Caption edges on the BBC catalogue, before and after, with the cross-CD share (also
    at other margins)."""
    source = fetch_bbc()
    if source is None:
        return None
    rows = list(csv.DictReader(source.open(encoding="utf-8", errors="replace")))
    captions = {r["location"]: r["description"] for r in rows}
    cd = {r["location"]: r["CDNumber"] for r in rows}
    before = caption_pairs(captions, cfg)
    after = specific(captions, before, cfg)
    cross_before = [p for p in before if cd[p[0]] != cd[p[1]]]
    cross_after = [p for p in after if cd[p[0]] != cd[p[1]]]
    examples = {
        "dropped": [(captions[a], captions[b]) for a, b in cross_before if (a, b) not in after][:5],
        "kept_across_cds": [(captions[a], captions[b]) for a, b in cross_after][:5],
        "kept_within_a_cd": [(captions[a], captions[b]) for a, b in sorted(after) if cd[a] == cd[b]][:5],
    }
    sweep = {}
    for margin in margins:
        kept = specific(captions, before, cfg.replace(groups=replace(cfg.groups, caption_margin_bits=margin)))
        sweep[margin] = {"joining": len(kept), "cross_cd": sum(1 for a, b in kept if cd[a] != cd[b])}
    return {
        "margin_sweep": sweep,
        "recordings": len(rows),
        "edges_before": len(before),
        "cross_cd_before": len(cross_before),
        "edges_after": len(after),
        "cross_cd_after": len(cross_after),
        "examples": examples,
    }


if __name__ == "__main__":
    import json

    print(json.dumps(bbc_catalog(Config.from_toml()), indent=1))
