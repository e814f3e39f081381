"""Window shapes: a short vector per half second of sound that a change of speed, pitch,
tempo, a codec, noise or reverb moves only a little, and nearest neighbours among them.

Landmark hashes are exact: a 6 % speed change, a semitone of pitch or noise at 5 dB SNR
leaves two copies few hashes in common, and LSH never proposes the pair. A shape is
continuous instead: the window's average spectrum (coarse bands, level-free) and how fast
each band's level moves (the magnitudes of its envelope's lowest modulation frequencies,
which do not depend on where the sound starts within the window). Copies end up close,
unrelated sounds of one kind close too, so a shape only proposes a pair: its nearest
neighbours go to the verifier, which decides.

Nearest, not "within a distance": on bench/stress_corpus.py the shapes of unrelated
windows are far from spread evenly (all sounds share a spectral tilt), so random-hyperplane
LSH at any useful recall proposed over half of all file pairs; the ten nearest windows
above a similarity of 0.8 proposed 2 % of them and found 0.92 of the planted pairs.
"""

from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from leakfree.fingerprint import dequantize_logmel
from leakfree.params import ShapeParams


def window_shapes(logmel: np.ndarray, params: ShapeParams, held: np.ndarray | None = None) -> np.ndarray:
    """Unit-length shapes (windows x dimension, float16) of a quantised log-mel matrix
    (frames x bands), over the bands `held` (a mask; all when None); a sound shorter than a
    window is one window, padded with silence."""
    level = dequantize_logmel(logmel if held is None else logmel[:, held])
    if level.size == 0:
        return np.zeros((0, dimension(params)), np.float16)
    frames, bands = level.shape
    if frames < params.window_frames:
        level = np.pad(level, ((0, params.window_frames - frames), (0, 0)), constant_values=level.min())
    windows = sliding_window_view(level, params.window_frames, axis=0)[:: params.hop_frames]  # n x bands x frames
    loudest = windows.max(axis=(1, 2))
    windows = windows[loudest >= level.max() - params.silence_db]
    if len(windows) == 0:
        return np.zeros((0, dimension(params)), np.float16)
    floor = windows.max(axis=(1, 2), keepdims=True) - params.range_db
    windows = np.maximum(windows, floor)
    edges = np.linspace(0, bands, params.bands + 1).round().astype(int)
    coarse = np.add.reduceat(windows, edges[:-1], axis=1) / np.diff(edges)[None, :, None]  # n x coarse x frames
    spectrum = coarse.mean(axis=2)
    spectrum = _unit(spectrum - spectrum.mean(axis=1, keepdims=True))
    envelope = coarse - coarse.mean(axis=2, keepdims=True)
    modulation = np.abs(np.fft.rfft(envelope, axis=2))[:, :, 1 : params.modulations + 1]
    modulation = modulation.reshape(len(windows), -1)
    modulation = _unit(modulation - modulation.mean(axis=1, keepdims=True))
    shapes = _unit(np.concatenate([spectrum, modulation], axis=1))
    return shapes[np.linalg.norm(shapes, axis=1) > 0.5].astype(np.float16)


def dimension(params: ShapeParams) -> int:
    return params.bands * (1 + params.modulations)


def similarities(
    queries: np.ndarray, query_files: np.ndarray, index: np.ndarray, index_files: np.ndarray
) -> np.ndarray:
    """Cosine of every query window with every index window; -inf within one file."""
    similarity = queries.astype(np.float32) @ index.astype(np.float32).T
    similarity[query_files[:, None] == index_files[None, :]] = -np.inf
    return similarity


def best_in_rows(similarity: np.ndarray, params: ShapeParams) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(row, column, value) of every row's `neighbors` largest values of `min_similarity`
    or more."""
    if similarity.size == 0:
        empty = np.zeros(0, np.int64)
        return empty, empty, np.zeros(0, np.float32)
    k = min(params.neighbors, similarity.shape[1])
    best = np.argpartition(-similarity, k - 1, axis=1)[:, :k]
    rows = np.repeat(np.arange(similarity.shape[0]), k)
    cols = best.ravel()
    values = similarity[rows, cols]
    keep = values >= params.min_similarity
    return rows[keep], cols[keep], values[keep].astype(np.float32)


def _unit(x: np.ndarray) -> np.ndarray:
    norm = np.linalg.norm(x, axis=1, keepdims=True)
    return np.where(norm > 1e-9, x / np.maximum(norm, 1e-9), 0.0)
