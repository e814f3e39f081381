"""Window shapes on numpy arrays: an edited copy's windows are nearest to its original's,
and the nearest-neighbour search agrees with a plain sort."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import scipy.signal

from leakfree.candidates import shape_views
from leakfree.config import ConfigError
from leakfree.demo import add_noise
from leakfree.fingerprint import fingerprint
from leakfree.shapes import best_in_rows, dimension, similarities, window_shapes
from tests.unit.test_verify import MEL, RATE, SETTINGS, faster, sound

PARAMS = SETTINGS.dedup.shapes


def nearest(queries, query_files, index, index_files, params):
    return best_in_rows(similarities(queries, query_files, index, index_files), params)


def shapes_of(x: np.ndarray) -> np.ndarray:
    return window_shapes(fingerprint(x.astype(np.float32), RATE, SETTINGS.features.fingerprint, MEL).logmel, PARAMS)


def test_shapes_are_unit_vectors_one_per_window_of_sound():
    x = sound(1, 3.0)
    padded = np.concatenate([np.zeros(RATE), x, np.zeros(RATE)])  # a second of silence on each side
    shapes = shapes_of(x)
    assert shapes.dtype == np.float16 and shapes.shape[1] == dimension(PARAMS)
    assert np.allclose(np.linalg.norm(shapes.astype(np.float32), axis=1), 1, atol=1e-2)
    frame_s = SETTINGS.features.fingerprint.hop * SETTINGS.features.fingerprint.mel_every / RATE
    expected = (3.0 / frame_s - PARAMS.window_frames) / PARAMS.hop_frames + 1
    assert len(shapes) == pytest.approx(expected, abs=2)
    # Silent windows are skipped: only those reaching into the sound are added.
    edge_windows = 2 * (PARAMS.window_frames // PARAMS.hop_frames)
    assert len(shapes) <= len(shapes_of(padded)) <= len(shapes) + edge_windows
    assert len(shapes_of(np.zeros(RATE, np.float32) + 1e-7)) == 0


def test_a_short_click_is_one_window():
    click = sound(2, 0.2)
    assert len(shapes_of(click)) == 1


@pytest.mark.parametrize(
    "edit",
    [
        lambda x: faster(x, 1.06),
        lambda x: faster(x, 0.94),
        lambda x: 0.1 * x,
        lambda x: add_noise(x, 5, np.random.default_rng(9)),
    ],
    ids=["6% faster", "6% slower", "20 dB quieter", "noise at 5 dB SNR"],
)
def test_an_edited_copys_windows_find_their_original_among_other_sounds(edit):
    originals = [sound(seed, 3.0) for seed in range(10, 20)]
    index = [shapes_of(x) for x in originals]
    index_files = np.repeat(np.arange(len(index)), [len(s) for s in index])
    copy = shapes_of(edit(originals[3]))
    rows, cols, _ = nearest(copy, np.full(len(copy), -1), np.concatenate(index), index_files, PARAMS)
    # Sounds of one kind (all ten are bells, steps and beeps) are close too, so the
    # original need not be every window's nearest; it is the file named most often among
    # the neighbours, by a third of the windows or more.
    named = np.zeros(len(index), int)
    for row in np.unique(rows):
        named[np.unique(index_files[cols[rows == row]])] += 1
    assert int(np.argmax(named)) == 3 and named[3] >= len(copy) / 3, named


def band_passed(x: np.ndarray, low_hz: float, high_hz: float) -> np.ndarray:
    sos = scipy.signal.butter(8, [low_hz, high_hz], "bandpass", fs=RATE, output="sos")
    return scipy.signal.sosfilt(sos, x)


@pytest.mark.parametrize("band", [(800, 2500), (300, 3400), (500, 2000)], ids=str)
def test_a_band_limited_copy_keeps_its_mid_band_shapes(band):
    """Cut to a band, a copy's whole-band shapes move away from its original's (half its
    windows or more below the mid view's similarity); over the middle of the spectrum,
    every window's nearest is still its original's, at that similarity."""
    whole, mid = shape_views(SETTINGS.dedup, SETTINGS.features.fingerprint)
    originals = [sound(seed, 3.0) for seed in range(10, 20)]
    logmels = [fingerprint(x.astype(np.float32), RATE, SETTINGS.features.fingerprint, MEL).logmel for x in originals]
    copy = fingerprint(band_passed(originals[3], *band).astype(np.float32), RATE, SETTINGS.features.fingerprint, MEL)
    best = {}
    for view in (whole, mid):
        index = [window_shapes(logmel, view.params, view.held) for logmel in logmels]
        index_files = np.repeat(np.arange(len(index)), [len(s) for s in index])
        windows = window_shapes(copy.logmel, view.params, view.held)
        similarity = similarities(windows, np.full(len(windows), -1), np.concatenate(index), index_files)
        best[view.source] = (index_files[similarity.argmax(axis=1)], similarity.max(axis=1))
    files, values = best[mid.source]
    assert (files == 3).all() and (values >= mid.params.min_similarity).all(), best
    if band != (300, 3400):  # the telephone band keeps most of the bands the whole view holds
        assert np.median(best[whole.source][1]) < mid.params.min_similarity, best


def test_the_mid_view_is_off_at_no_neighbours_and_refused_narrower_than_its_bands():
    dedup = SETTINGS.dedup
    off = dataclasses.replace(dedup, mid_shapes=dataclasses.replace(dedup.mid_shapes, neighbors=0))
    assert [view.source for view in shape_views(off, SETTINGS.features.fingerprint)] == ["shape"]
    _, mid = shape_views(dedup, SETTINGS.features.fingerprint)
    assert mid.held.sum() >= mid.params.bands and not mid.held[0] and not mid.held[-1]
    narrow = dataclasses.replace(dedup, mid_shapes=dataclasses.replace(dedup.mid_shapes, low_hz=1000, high_hz=1100))
    with pytest.raises(ConfigError, match="fewer than its 6 bands"):
        shape_views(narrow, SETTINGS.features.fingerprint)


def test_nearest_agrees_with_a_plain_sort():
    rng = np.random.default_rng(0)
    index = rng.standard_normal((300, 12)).astype(np.float32)
    index /= np.linalg.norm(index, axis=1, keepdims=True)
    index_files = rng.integers(0, 40, len(index))
    queries, query_files = index[:50], index_files[:50]
    params = PARAMS.__class__(**{**PARAMS.__dict__, "neighbors": 4, "min_similarity": 0.2})
    rows, cols, similarity = nearest(queries, query_files, index, index_files, params)
    found = {(int(r), int(c)) for r, c in zip(rows, cols, strict=True)}
    expected = set()
    for r in range(len(queries)):
        ranked = sorted(
            (float(queries[r] @ index[c]), c) for c in range(len(index)) if index_files[c] != query_files[r]
        )[::-1][:4]
        expected |= {(r, c) for value, c in ranked if value >= 0.2}
    assert found == expected
    assert np.allclose(similarity, np.einsum("ij,ij->i", queries[rows], index[cols]), atol=1e-5)
