"""MinHash signatures with datasketch's permutations, vectorised over whole hash sets.

datasketch's MinHash.update_batch calls a Python hash function per element; fingerprint
hashes are already uniform integers, so the same permutation arithmetic is applied to the
whole array at once (a test checks the result equals datasketch's own, bit for bit).
Signatures are stored as little-endian uint32 bytes: 4 bytes per permutation.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np
from datasketch import MinHash
from datasketch.hashfunc import sha1_hash32

_MERSENNE_PRIME = np.uint64((1 << 61) - 1)
_MAX_HASH = np.uint64((1 << 32) - 1)
_WORD = re.compile(r"\w+", re.UNICODE)


@dataclass(frozen=True)
class Segment:
    start_frame: int
    signature: bytes


class MinHasher:
    def __init__(self, num_perm: int, seed: int):
        self.num_perm = num_perm
        self.seed = seed
        self._a, self._b = MinHash(num_perm=num_perm, seed=seed).permutations

    def signature(self, values: np.ndarray) -> np.ndarray | None:
        """uint32 signature of a set of 32-bit hash values; None for an empty set.

        An empty set would get the all-max signature, which every other empty set shares:
        returning None keeps such files out of the LSH buckets altogether.
        """
        if len(values) == 0:
            return None
        hv = np.unique(values.astype(np.uint64))[:, None]
        permuted = np.bitwise_and((hv * self._a + self._b) % _MERSENNE_PRIME, _MAX_HASH)
        return permuted.min(axis=0).astype(np.uint32)

    def signature_bytes(self, values: np.ndarray) -> bytes | None:
        sig = self.signature(values)
        return None if sig is None else sig.astype("<u4").tobytes()

    def segments(self, hashes: np.ndarray, times: np.ndarray, frames: int, window: int, hop: int) -> list[Segment]:
        """One signature per window of `window` frames every `hop` frames (the last window
        ends at the last frame). Windows make similarity independent of file length, so an
        excerpt or a sound inside a longer file still has a high Jaccard with its source."""
        out = []
        for start in window_starts(frames, window, hop):
            inside = (times >= start) & (times < start + window)
            sig = self.signature_bytes(hashes[inside])
            if sig is not None:
                out.append(Segment(start, sig))
        return out

    def text_signature(self, shingles: set[str]) -> bytes | None:
        """Same as datasketch MinHash(num_perm, seed).update_batch(encoded shingles)."""
        values = np.array([sha1_hash32(s.encode("utf-8")) for s in sorted(shingles)], dtype=np.uint64)
        return self.signature_bytes(values)


def window_starts(frames: int, window: int, hop: int) -> list[int]:
    last = max(0, frames - window)
    starts = list(range(0, last + 1, hop))
    if starts[-1] != last:
        starts.append(last)
    return starts


def caption_shingles(text: str | None, max_words: int) -> set[str]:
    """Word n-grams (n = 1..max_words) of a caption, case- and punctuation-insensitive."""
    words = _WORD.findall((text or "").lower())
    return {" ".join(words[i : i + n]) for n in range(1, max_words + 1) for i in range(len(words) - n + 1)}


def from_bytes(signature: bytes) -> np.ndarray:
    return np.frombuffer(signature, dtype="<u4")


def jaccard_estimate(a: bytes, b: bytes) -> float:
    return float(np.mean(from_bytes(a) == from_bytes(b)))
