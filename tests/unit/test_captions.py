"""Caption evidence: generic captions say nothing, specific ones name a recording."""

from __future__ import annotations

import math
from collections import Counter

from leakfree.captions import caption_evidence, caption_words, word_bits


def evidence_in(library: list[str], i: int, j: int, margin: float = 6.0):
    words = [caption_words(c) for c in library]
    files = Counter(w for ws in words for w in ws)
    bits = {w: word_bits(n, len(library)) for w, n in files.items()}
    return caption_evidence(words[i], words[j], bits, captioned_files=len(library), margin_bits=margin)


def filler(n: int) -> list[str]:
    return [f"sound number {k} of the set" for k in range(n)]


def test_words_are_distinct_lower_case_singular_and_without_punctuation():
    assert caption_words("Rain, on a TIN roof! rain") == ["a", "on", "rain", "roof", "tin"]
    assert caption_words("Engines, glass, bus") == ["bus", "engine", "glass"]
    assert caption_words(None) == [] and caption_words("  ") == []


def test_a_one_word_caption_never_joins_however_rare():
    library = ["click", "click", *filler(500)]
    evidence = evidence_in(library, 0, 1)
    assert evidence.similarity == 1.0
    assert evidence.shared_bits == math.log2(502 / 2) < evidence.needed_bits
    assert not evidence.specific(0.8)


def test_a_specific_description_joins_and_a_common_one_does_not():
    library = [
        "Ruston Hornsey YEX 6 pumping engine, slow down and stop.",
        "Ruston Hornsey YEX 6 pumping engines, slow down and stop.",
        "Applause and whistles.",
        "Applause and whistles.",
        *[f"applause and whistles at match {k}" for k in range(30)],
        *filler(400),
    ]
    assert evidence_in(library, 0, 1).specific(0.8)
    assert not evidence_in(library, 2, 3).specific(0.8)


def test_captions_that_share_rare_words_but_differ_in_most_do_not_join():
    library = ["old steam train departs station", "old steam train whistle distant heavy rain", *filler(300)]
    evidence = evidence_in(library, 0, 1)
    assert evidence.shared_bits > evidence.needed_bits and evidence.similarity < 0.8
    assert not evidence.specific(0.8)
