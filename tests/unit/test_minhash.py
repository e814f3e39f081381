from __future__ import annotations

import numpy as np
from datasketch import MinHash

from leakfree.minhash import MinHasher, caption_shingles, from_bytes, jaccard_estimate, window_spans


def test_signature_is_datasketchs_own():
    values = np.random.default_rng(0).integers(0, 1 << 26, size=500).astype(np.uint32)
    reference = MinHash(num_perm=64, seed=7, hashfunc=int)
    reference.update_batch(values.tolist())
    assert np.array_equal(MinHasher(64, 7).signature(values), reference.hashvalues.astype(np.uint32))


def test_text_signature_matches_datasketch_with_its_default_hash():
    shingles = caption_shingles("Door slam, heavy wooden door", 2)
    reference = MinHash(num_perm=32, seed=1)
    reference.update_batch([s.encode("utf-8") for s in shingles])
    assert np.array_equal(from_bytes(MinHasher(32, 1).text_signature(shingles)), reference.hashvalues)


def test_empty_sets_get_no_signature_instead_of_a_shared_one():
    hasher = MinHasher(128, 1)
    assert hasher.signature(np.array([], np.uint32)) is None
    assert hasher.text_signature(set()) is None


def test_estimate_tracks_the_true_jaccard():
    hasher = MinHasher(256, 1)
    a = np.arange(0, 1000, dtype=np.uint32)
    b = np.arange(500, 1500, dtype=np.uint32)  # true Jaccard 1/3
    assert abs(jaccard_estimate(hasher.signature_bytes(a), hasher.signature_bytes(b)) - 1 / 3) < 0.08
    assert len(hasher.signature_bytes(a)) == 256 * 4


def test_segments_cover_the_file_and_skip_empty_windows():
    hasher = MinHasher(16, 1)
    times = np.array([1, 2, 3, 95, 96], np.int32)
    hashes = np.array([10, 11, 12, 13, 14], np.uint32)
    segments = hasher.segments(hashes, times, window_spans(0, 100, 40, 20))
    assert [s.start_frame for s in segments] == [0, 60]  # windows at 20 and 40 hold no hashes
    assert window_spans(0, 100, 40, 20) == [(0, 40), (20, 60), (40, 80), (60, 100)]
    assert window_spans(0, 30, 40, 20) == [(0, 30)]
    assert window_spans(10, 115, 40, 20) == [(10, 50), (30, 70), (50, 90), (70, 110), (75, 115)]


def test_caption_shingles_ignore_case_and_punctuation():
    assert caption_shingles("Rain, on a TIN roof!", 2) == {
        "rain",
        "on",
        "a",
        "tin",
        "roof",
        "rain on",
        "on a",
        "a tin",
        "tin roof",
    }
    assert caption_shingles(None, 2) == set()
