from __future__ import annotations

from datasketch.lsh import _optimal_param

from leakfree.lsh import Banding


def test_banding_is_datasketchs_choice():
    for threshold in (0.1, 0.3, 0.5, 0.8):
        chosen = Banding.for_threshold(threshold, 128)
        assert (chosen.bands, chosen.rows) == _optimal_param(threshold, 128, 0.5, 0.5)
        assert chosen.bands * chosen.rows <= 128


def test_candidate_probability_rises_through_the_threshold():
    banding = Banding.for_threshold(0.1, 128)
    assert banding.probability(0.0) == 0.0 and banding.probability(1.0) == 1.0
    assert banding.probability(0.02) < 0.05 < 0.9 < banding.probability(0.3)
    values = [banding.probability(j / 20) for j in range(21)]
    assert values == sorted(values)
