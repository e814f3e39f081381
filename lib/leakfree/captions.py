"""Whether two near-identical captions say the two files are takes of one recording.

A caption is evidence only when it is specific: `click` on two files of two games, or the
same file name's word, says nothing. Each word carries log2(N / files with the word) bits
in a library of N captioned files; the words two captions share must carry enough bits that
a caption like theirs would rarely be shared by chance, and both captions must agree on
most of their information.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

WORD = re.compile(r"\w+", re.UNICODE)


def caption_words(text: str | None) -> list[str]:
    """The distinct words of a caption, lower-cased, a plural `s` dropped ("engines" and
    "engine" are one word to a reader), sorted."""
    return sorted({_singular(w) for w in WORD.findall((text or "").lower())})


def _singular(word: str) -> str:
    return word[:-1] if len(word) > 3 and word.endswith("s") and not word.endswith("ss") else word


def word_bits(files_with_word: int, captioned_files: int) -> float:
    """Information of one word: how rare it is among the captioned files."""
    return math.log2(max(captioned_files, 1) / max(files_with_word, 1))


@dataclass(frozen=True)
class CaptionEvidence:
    shared_bits: float  # information of the words both captions hold
    needed_bits: float  # what a caption must carry to be specific in this library
    similarity: float  # shared bits over the bits of all words either caption holds

    def specific(self, min_similarity: float) -> bool:
        return self.shared_bits >= self.needed_bits and self.similarity >= min_similarity

    def describe(self) -> str:
        return (
            f"captions share {self.shared_bits:.1f} bits of words ({self.needed_bits:.1f} needed), "
            f"similarity {self.similarity:.2f}"
        )


def caption_evidence(
    a: Iterable[str], b: Iterable[str], bits: Mapping[str, float], *, captioned_files: int, margin_bits: float
) -> CaptionEvidence:
    """Evidence of two captions' words; `bits` holds every word's information."""
    a, b = set(a), set(b)
    shared = sum(bits[w] for w in a & b)
    union = sum(bits[w] for w in a | b)
    needed = math.log2(max(captioned_files, 1)) + margin_bits
    return CaptionEvidence(shared, needed, shared / union if union > 0 else 0.0)
