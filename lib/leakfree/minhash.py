"""MinHash signatures, computed by datasketch, stored as bytes.

datasketch's "affine32" scheme is used: the hash values are pre-mixed with MurmurHash3's
finalizer and permuted modulo 2^32 (no division), and each permutation keeps 4 bytes, so a
128-permutation signature is 512 bytes. Fingerprint hashes are already integers, so they go
in as they are (hashfunc=int); caption shingles are hashed with datasketch's default SHA-1.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from datasketch import MinHash
from datasketch.hashfunc import sha1_hash32

from leakfree.captions import WORD

SCHEME = "affine32"


@dataclass(frozen=True)
class Segment:
    start_frame: int
    signature: bytes


class MinHasher:
    def __init__(self, num_perm: int, seed: int):
        self.num_perm = num_perm
        self.seed = seed
        # Drawing the permutations is the costly part of a MinHash; draw them once.
        self._permutations = MinHash(num_perm=num_perm, seed=seed, scheme=SCHEME).permutations

    def signature(self, values: np.ndarray, hashfunc=int) -> np.ndarray | None:
        """uint32 signature of a set of values; None for an empty set.

        An empty set would get the all-max signature, which every other empty set shares:
        returning None keeps such files out of the LSH buckets altogether.
        """
        if len(values) == 0:
            return None
        sketch = MinHash(
            num_perm=self.num_perm,
            seed=self.seed,
            hashfunc=hashfunc,
            permutations=self._permutations,
            scheme=SCHEME,
        )
        sketch.update_batch(values.tolist() if isinstance(values, np.ndarray) else values)
        return sketch.hashvalues.astype(np.uint32)

    def signature_bytes(self, values, hashfunc=int) -> bytes | None:
        sig = self.signature(values, hashfunc)
        return None if sig is None else sig.astype("<u4").tobytes()

    def segments(self, hashes: np.ndarray, times: np.ndarray, spans: list[tuple[int, int]]) -> list[Segment]:
        """One signature per span [start, end) of anchor frames; spans with no hashes get none.

        Windows make similarity independent of file length, so an excerpt, or a sound
        inside a longer file, still has a high Jaccard with its source's window."""
        out = []
        for start, end in spans:
            inside = (times >= start) & (times < end)
            sig = self.signature_bytes(hashes[inside])
            if sig is not None:
                out.append(Segment(start, sig))
        return out

    def text_signature(self, shingles: set[str]) -> bytes | None:
        return self.signature_bytes([t.encode("utf-8") for t in sorted(shingles)], sha1_hash32)


def window_spans(start: int, end: int, window: int, hop: int) -> list[tuple[int, int]]:
    """Windows of `window` frames every `hop` frames over [start, end); the last one ends at
    `end`, and a span shorter than a window is one window."""
    last = max(start, end - window)
    starts = list(range(start, last + 1, hop))
    if starts[-1] != last:
        starts.append(last)
    return [(s, min(s + window, end)) for s in starts]


def caption_shingles(text: str | None, max_words: int) -> set[str]:
    """Word n-grams (n = 1..max_words) of a caption, case- and punctuation-insensitive."""
    words = WORD.findall((text or "").lower())
    return {" ".join(words[i : i + n]) for n in range(1, max_words + 1) for i in range(len(words) - n + 1)}


def from_bytes(signature: bytes) -> np.ndarray:
    return np.frombuffer(signature, dtype="<u4")


def jaccard_estimate(a: bytes, b: bytes) -> float:
    return float(np.mean(from_bytes(a) == from_bytes(b)))
