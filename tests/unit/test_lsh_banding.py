from __future__ import annotations

import dataclasses

import numpy as np

from leakfree.candidates import bandings_for
from leakfree.config import Config
from leakfree.edges import AUDIO_FAMILIES, TRIPLET
from leakfree.lsh import Banding


def _missed_area(banding: Banding, threshold: float) -> float:
    """False positives below the threshold plus false negatives above it, integrated."""
    below = np.linspace(0, threshold, 400)
    above = np.linspace(threshold, 1, 400)
    chance = np.vectorize(banding.probability)
    return float(np.trapezoid(chance(below), below) + np.trapezoid(1 - chance(above), above))


def test_the_banding_misses_least_of_every_banding_that_fits():
    for threshold in (0.1, 0.15, 0.3, 0.5, 0.8):
        chosen = Banding.for_threshold(threshold, 128)
        assert chosen.bands * chosen.rows <= 128
        best = min(_missed_area(Banding(b, r), threshold) for r in range(1, 129) for b in range(1, 128 // r + 1))
        assert _missed_area(chosen, threshold) <= best + 1e-3, threshold


def test_candidate_probability_rises_through_the_threshold():
    banding = Banding.for_threshold(0.1, 128)
    assert banding.probability(0.0) == 0.0 and banding.probability(1.0) == 1.0
    assert banding.probability(0.02) < 0.05 < 0.9 < banding.probability(0.3)
    values = [banding.probability(j / 20) for j in range(21)]
    assert values == sorted(values)


def test_triplets_are_banded_only_at_a_threshold_above_zero():
    dedup = Config.from_toml().dedup
    for threshold in (0.0, 0.15):
        audio, caption = bandings_for(dataclasses.replace(dedup, triplet_threshold=threshold), 128)
        landmarks = set(AUDIO_FAMILIES) - {TRIPLET}
        assert set(audio) == (landmarks | {TRIPLET} if threshold else landmarks)
        assert all(audio[family] == Banding.for_threshold(dedup.audio_threshold, 128) for family in landmarks)
    assert audio[TRIPLET] == Banding.for_threshold(0.15, 128)
    assert caption == Banding.for_threshold(dedup.caption_threshold, 128)
