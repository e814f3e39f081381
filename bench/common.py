"""Shared pieces of the benchmarks: the evaluation corpus, its truth, and result files."""

from __future__ import annotations

import csv
import itertools
import json
import random
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

CORPUS = Path(__file__).resolve().parents[2] / "shared" / "corpus"
RESULTS = Path(__file__).resolve().parent / "results"
# Beside a stress corpus: the candidate pairs truth calls different that the last whole
# pipeline run on it proposed, as [path a, path b, proposed by triplets alone].
CANDIDATES = "candidates-truth-calls-different.json"


@dataclass(frozen=True)
class Truth:
    paths: list[str]  # corpus-relative, sorted
    groups: dict[str, set[str]]  # path -> its duplicate groups (a concat file has two)
    transform: dict[str, str]  # path -> how it was made ("original", "mp3_128k", ...)

    def pairs(self) -> list[tuple[str, str]]:
        """Every pair of files that share a group: the duplicates a perfect run finds."""
        members = defaultdict(list)
        for path, groups in self.groups.items():
            for group in groups:
                members[group].append(path)
        return sorted({pair for m in members.values() for pair in itertools.combinations(sorted(m), 2)})

    def random_non_pairs(self, count: int, seed: int = 0) -> list[tuple[str, str]]:
        rng = random.Random(seed)
        found: set[tuple[str, str]] = set()
        while len(found) < count:
            a, b = sorted(rng.sample(self.paths, 2))
            if not self.groups[a] & self.groups[b]:
                found.add((a, b))
        return sorted(found)

    def kind(self, a: str, b: str) -> str:
        """The single transformation a pair tests (an original against its variant); two
        variants of one original combine two transformations: var-var; two originals that
        the packages themselves duplicate: orig-orig."""
        ta, tb = self.transform[a], self.transform[b]
        if ta == tb == "original":
            return "orig-orig"
        if "original" in (ta, tb):
            return tb if ta == "original" else ta
        return "var-var"


def load_truth(corpus: Path = CORPUS) -> Truth:
    rows = list(csv.DictReader((corpus / "truth.csv").open(encoding="utf-8")))
    groups: dict[str, set[str]] = defaultdict(set)
    for row in rows:
        groups[row["path"]].add(row["group"])
    transform = {row["path"]: row["transform"] for row in rows}
    return Truth(sorted(groups), dict(groups), transform)


def different_pairs(corpus: Path, truth, count: int, seed: int = 0) -> list[tuple[str, str]]:
    """Pairs of files made from different originals of one package folder, none in one group."""
    folders = defaultdict(set)
    with (corpus / "truth.csv").open(encoding="utf-8") as f:
        for row in csv.DictReader(f):
            folders[str(Path(row["source"]).parent)].add(row["path"])
    rng = random.Random(seed)
    crowded = sorted(k for k, v in folders.items() if len(v) > 1)
    weights = [len(folders[k]) ** 2 for k in crowded]
    found: set[tuple[str, str]] = set()
    for _ in range(count * 50):
        if len(found) >= count:
            break
        members = sorted(folders[rng.choices(crowded, weights)[0]])
        a, b = sorted(rng.sample(members, 2))
        if not truth.groups[a] & truth.groups[b]:
            found.add((a, b))
    return sorted(found)


def corpus_available() -> bool:
    return (CORPUS / "truth.csv").exists()


def write_results(name: str, data: dict, markdown: str) -> None:
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"{name}.json").write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")
    (RESULTS / f"{name}.md").write_text(markdown)
    print(markdown)


def table(header: list[str], rows: list[list]) -> str:
    def cell(v) -> str:
        return f"{v:.3f}" if isinstance(v, float) else str(v)

    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]
    return "\n".join(lines) + "\n"
