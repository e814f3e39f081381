"""Audio fingerprints for short sound effects: spectral-peak landmark hashes, and the
log-mel frames the verifier aligns. Pure numpy on a mono signal at the analysis rate.

Why landmarks (pairs of spectral peaks, hashed with their frequency and time distance):
peaks survive lossy codecs, gain, mono downmix, resampling and moderate noise, and a
pair's hash does not depend on where the sound starts, so leading silence, trimming and
excerpts keep their hashes (containment). Measured on ../shared/corpus (bench/), this
beat whole-file spectral features, which fail on excerpts, and sub-band bit patterns,
which lose exact matches under noise.

Short sounds (most of a sound-effects library) yield few sparse peaks, so files with
little active audio also get a dense family, with a smaller peak neighbourhood, and a
strong family of only the peaks within a few dB of the loudest nearby: noise at 20 dB SNR
adds thousands of dense peaks to a pure tone of a hundred (Jaccard 0.002 on the corpus's
phone tone), but none that loud (Jaccard 0.9). The families are kept apart so that none
dilutes another's similarity.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.fft
from numpy.lib.stride_tricks import sliding_window_view
from scipy.ndimage import maximum_filter1d

from leakfree.params import FingerprintParams, PeakParams, TripletParams

_EPS = 1e-10
_NOWHERE = -1.0  # below any power: what lies outside the spectrogram
_LOWEST_PEAK_BIN = 3  # below ~45 Hz at 8 kHz: rumble and DC, unstable across codecs


@dataclass(frozen=True)
class Fingerprint:
    flag: str | None  # None, "silent", "constant" or "near_empty"
    active_seconds: float
    frames: int
    hashes: np.ndarray  # uint32, sparse family
    times: np.ndarray  # int32 anchor frame of each hash
    dense_hashes: np.ndarray  # uint32, empty unless the file is short
    dense_times: np.ndarray
    strong_hashes: np.ndarray  # uint32, only the loudest peaks; empty unless the file is short
    strong_times: np.ndarray
    triplet_hashes: np.ndarray  # uint32, sparse peaks in threes: survive speed, pitch and tempo changes
    triplet_points: np.ndarray  # int32 anchor frame << 10 | anchor bin in half bins, of each triplet hash
    logmel: np.ndarray  # uint8 (frames x bands), 0.5 dB steps below the file's loudest cell
    events: tuple[tuple[int, int], ...]  # [start, end) frames of sounds between silent gaps


def power_spectrogram(x: np.ndarray, n_fft: int, hop: int) -> np.ndarray:
    """Frames x bins power, float32. Frames are centred on every hop-th sample (half a
    window of silence is added at both ends), so even a sound shorter than a window, and
    the first and last moments of any sound, are seen whole."""
    x = np.pad(x, (n_fft // 2, n_fft // 2))
    frames = sliding_window_view(x.astype(np.float32, copy=False), n_fft)[::hop]
    spectrum = scipy.fft.rfft(frames * np.hanning(n_fft).astype(np.float32), axis=1)
    return (spectrum.real**2 + spectrum.imag**2).astype(np.float32)


def to_db(power: np.ndarray) -> np.ndarray:
    return 10 * np.log10(power + _EPS)


def active_frames(frame_db: np.ndarray, floor_db: float, rel_db: float) -> np.ndarray:
    return frame_db > max(floor_db, float(frame_db.max()) - rel_db)


def spectral_peaks(power: np.ndarray, params: PeakParams, floor_db: float) -> tuple[np.ndarray, np.ndarray]:
    """(frame, bin) of local maxima over the neighbourhood, sorted by frame then bin.

    The loudness reference is the loudest frame within ~0.5 s, not the whole file, so the
    same sound gives the same peaks whatever surrounds it (padding, concatenation, fades).
    The 2-D maximum is taken in two steps: across frequency for every cell, then across
    time only for the few cells that are already frequency maxima above the thresholds
    (a full 2-D filter costs as much as decoding the audio). Works on power, not dB:
    the order of values is the same and no logarithm of the whole matrix is needed.
    """
    span_t, span_f = params.neighborhood
    freq_max = running_max(power, span_f)
    nearby_loudest = maximum_filter1d(power.max(axis=1), size=63, mode="nearest")
    threshold = np.maximum(nearby_loudest * 10 ** (-params.rel_db / 10), 10 ** (floor_db / 10))
    candidate = (power == freq_max) & (power > threshold[:, None])
    candidate[:, :_LOWEST_PEAK_BIN] = False
    frames, bins = np.nonzero(candidate)
    reach = span_t // 2
    padded = np.pad(freq_max, ((reach, span_t - 1 - reach), (0, 0)), constant_values=_NOWHERE)
    windows = sliding_window_view(padded, span_t, axis=0)
    is_peak = power[frames, bins] >= windows[frames, bins].max(axis=1)
    return frames[is_peak].astype(np.int32), bins[is_peak].astype(np.int32)


def running_max(x: np.ndarray, size: int) -> np.ndarray:
    """Centred running maximum along the last axis of non-negative values.

    Doubling windows (1, 2, 4, ... cells) need log2(size) vectorised maxima, which beats
    scipy's maximum_filter1d by about 1.6x on spectrogram rows.
    """
    reach = size // 2
    padded = np.full((*x.shape[:-1], x.shape[-1] + size - 1), _NOWHERE, dtype=x.dtype)
    padded[..., reach : reach + x.shape[-1]] = x
    result, width = padded, 1
    while 2 * width <= size:
        result = np.maximum(result[..., :-width], result[..., width:])
        width *= 2
    if size > width:
        rest = size - width
        result = np.maximum(result[..., :-rest], result[..., rest:])
    return result[..., : x.shape[-1]]


def landmark_hashes(frames: np.ndarray, bins: np.ndarray, params: PeakParams) -> tuple[np.ndarray, np.ndarray]:
    """Hash each peak with its next `fan_out` partners in time: (f1, f2, dt) -> 26 bits.

    Each pair is hashed at two roundings of dt, so a one-frame jitter of a peak (which a
    shift by a fraction of the hop causes) still leaves one hash in common.
    """
    n = len(frames)
    if n < 2:
        return np.empty(0, np.uint32), np.empty(0, np.int32)
    reach = min(n - 1, 4 * params.fan_out)
    anchor = np.arange(n)[:, None]
    partner = anchor + np.arange(1, reach + 1)[None, :]
    inside = partner < n
    partner = np.minimum(partner, n - 1)
    dt = frames[partner] - frames[anchor]
    df = np.abs(bins[partner] - bins[anchor])
    ok = inside & (dt >= params.min_dt) & (dt <= params.max_dt) & (df <= params.max_df)
    ok &= np.cumsum(ok, axis=1) <= params.fan_out
    rows, cols = np.nonzero(ok)
    a, p = rows, partner[rows, cols]
    dt = dt[rows, cols]
    base = (bins[a].astype(np.uint32) << 16) | (bins[p].astype(np.uint32) << 7)
    low = base | (dt // params.dt_quant).astype(np.uint32)
    high = base | ((dt + 1) // params.dt_quant).astype(np.uint32)
    hashes = np.concatenate([low, high])
    times = np.concatenate([frames[a], frames[a]])
    order = np.lexsort((hashes, times))
    keep = np.ones(len(order), bool)
    sorted_h, sorted_t = hashes[order], times[order]
    keep[1:] = (sorted_h[1:] != sorted_h[:-1]) | (sorted_t[1:] != sorted_t[:-1])
    return sorted_h[keep], sorted_t[keep]


def mel_basis(params: FingerprintParams, rate: int) -> np.ndarray:
    """Triangular mel filters (bands x bins), the same construction as librosa's (Slaney)."""
    import librosa

    return librosa.filters.mel(
        sr=rate, n_fft=params.n_fft, n_mels=params.mel_bands, fmin=params.mel_fmin, fmax=params.mel_fmax
    ).astype(np.float32)


def mel_frequencies(params: FingerprintParams) -> np.ndarray:
    """Centre frequency of each log-mel band, in Hz."""
    import librosa

    return librosa.mel_frequencies(params.mel_bands + 2, fmin=params.mel_fmin, fmax=params.mel_fmax)[1:-1]


def fingerprint(x: np.ndarray, rate: int, params: FingerprintParams, mel: np.ndarray) -> Fingerprint:
    """Everything the dedup stages need from one decoded, mono signal."""
    power = power_spectrogram(x, params.n_fft, params.hop)
    frame_db = to_db(power.sum(axis=1))
    active = active_frames(frame_db, params.floor_db, params.active_rel_db)
    frames = len(power)
    active_seconds = float(active.sum()) * params.hop / rate
    flag = _flag(x, rate, active, params)
    empty_h, empty_t = np.empty(0, np.uint32), np.empty(0, np.int32)
    if flag is not None:
        nothing = np.zeros((0, params.mel_bands), np.uint8)
        return Fingerprint(flag, active_seconds, frames, *(empty_h, empty_t) * 4, nothing, ())
    sparse_peaks = spectral_peaks(power, params.sparse, params.floor_db)
    hashes, times = landmark_hashes(*sparse_peaks, params.sparse)
    triplets, points = triplet_hashes(*refined_peaks(power, *sparse_peaks), params.triplets)
    dense_hashes, dense_times = strong_hashes, strong_times = empty_h, empty_t
    if active_seconds < params.dense_below_active_s or len(hashes) < params.dense_below_hashes:
        dense_peaks = spectral_peaks(power, params.dense, params.floor_db)
        dense_hashes, dense_times = landmark_hashes(*dense_peaks, params.dense)
        strong_hashes, strong_times = landmark_hashes(
            *spectral_peaks(power, params.strong, params.floor_db), params.strong
        )
        # A short sound has too few sparse peaks to make triplets from: its dense ones too.
        more, more_points = triplet_hashes(*refined_peaks(power, *dense_peaks), params.triplets)
        triplets, points = np.concatenate([triplets, more]), np.concatenate([points, more_points])
    logmel = quantized_logmel(power[:: params.mel_every], mel)
    events = event_spans(active, params.event_gap_frames)
    return Fingerprint(
        None,
        active_seconds,
        frames,
        hashes,
        times,
        dense_hashes,
        dense_times,
        strong_hashes,
        strong_times,
        triplets,
        points,
        logmel,
        events,
    )


def refined_peaks(power: np.ndarray, frames: np.ndarray, bins: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(frame, bin) of each peak to a fraction of a cell: the vertex of a parabola through
    the peak's log power and its two neighbours, along time and along frequency. A bin is
    16 Hz wide; after a 3 % speed change a peak near 300 Hz moves by half a bin, and only
    fractional positions keep its frequency ratios to other peaks."""

    def offset(left: np.ndarray, mid: np.ndarray, right: np.ndarray) -> np.ndarray:
        curve = left - 2 * mid + right
        return np.where(curve < 0, 0.5 * (left - right) / np.where(curve < 0, curve, -1.0), 0.0).clip(-0.5, 0.5)

    db = lambda f, b: to_db(power[np.clip(f, 0, len(power) - 1), np.clip(b, 0, power.shape[1] - 1)])  # noqa: E731
    mid = db(frames, bins)
    fine_bins = bins + offset(db(frames, bins - 1), mid, db(frames, bins + 1))
    fine_frames = frames + offset(db(frames - 1, bins), mid, db(frames + 1, bins))
    return fine_frames, fine_bins


def triplet_hashes(frames: np.ndarray, bins: np.ndarray, params: TripletParams) -> tuple[np.ndarray, np.ndarray]:
    """Hash each peak with every two of its next `fan_out` partners in time, by what a
    change of speed, pitch or tempo leaves alone: the partners' frequencies as ratios to
    the anchor's (log-frequency differences), and the nearer partner's share of the
    farther one's time distance. The anchor's own frequency and the farther distance enter
    coarsely, for entropy. 23 bits.

    Exact (f1, f2, dt) landmarks lose nearly every hash to a 3 % speed change, since every
    frequency and time distance scales; on bench/stress_corpus.py copies changed by 3-6 %
    in speed or pitch keep a triplet Jaccard of 0.1-0.2, unrelated pairs stay under 0.055
    in 99 % of cases. Returns the hashes and each one's anchor point
    (frame << 10 | bin in half bins), from which the verifier estimates the speed factor.
    """
    n = len(frames)
    if n < 3:
        return np.empty(0, np.uint32), np.empty(0, np.int32)
    order = np.lexsort((bins, frames))
    frames, bins = frames[order], bins[order]
    reach = min(n - 1, 4 * params.fan_out)
    anchor = np.arange(n)[:, None]
    partner = np.minimum(anchor + np.arange(1, reach + 1)[None, :], n - 1)
    inside = anchor + np.arange(1, reach + 1)[None, :] < n
    dt = frames[partner] - frames[anchor]
    octaves = np.log2(np.maximum(bins[partner], 1.0) / np.maximum(bins[anchor], 1.0))
    ok = inside & (dt >= params.min_dt) & (dt <= params.max_dt) & (np.abs(octaves) <= params.max_octaves)
    ok &= np.cumsum(ok, axis=1) <= params.fan_out
    # Every two partners (near, far) of one anchor, the near one strictly earlier.
    rows, cols = np.nonzero(ok)
    near, far = np.triu_indices(params.fan_out, 1)
    slots = np.full((n, params.fan_out), -1)
    rank = np.cumsum(ok, axis=1)[rows, cols] - 1
    slots[rows, rank] = cols
    a = np.repeat(np.arange(n), len(near))
    j, k = slots[:, near].ravel(), slots[:, far].ravel()
    valid = (j >= 0) & (k >= 0)
    a, j, k = a[valid], j[valid], k[valid]
    dt_near, dt_far = dt[a, j], dt[a, k]
    keep = dt_far > dt_near
    a, j, k, dt_near, dt_far = a[keep], j[keep], k[keep], dt_near[keep], dt_far[keep]
    span = round(params.max_octaves * params.ratio_steps)
    # 5 bits each, like the coarse parts below: partners at the edge of max_octaves can round one past them.
    r1 = np.clip(np.rint(octaves[a, j] * params.ratio_steps).astype(np.int64) + span, 0, 31)
    r2 = np.clip(np.rint(octaves[a, k] * params.ratio_steps).astype(np.int64) + span, 0, 31)
    share = np.minimum((dt_near / dt_far * params.time_steps).astype(np.int64), params.time_steps - 1)
    coarse_f = np.clip(np.log2(np.maximum(bins[a], 1.0)) * params.anchor_steps, 0, 31).astype(np.int64)
    coarse_t = np.clip(np.log2(dt_far) * params.distance_steps, 0, 15).astype(np.int64)
    hashes = ((((coarse_f * 32 + r1) * 32 + r2) * 16 + share) * 16 + coarse_t).astype(np.uint32)
    points = (np.rint(frames[a]).astype(np.int64) << 10 | np.rint(bins[a] * 2).astype(np.int64)).astype(np.int32)
    return hashes, points


def event_spans(active: np.ndarray, min_gap: int) -> tuple[tuple[int, int], ...]:
    """[start, end) of the runs of sound separated by at least `min_gap` silent frames.

    Libraries often hold several takes in one file, and a leak can be one of them: giving
    each sound its own signature windows lets a short sound match inside a longer file."""
    frames = np.flatnonzero(active)
    if len(frames) == 0:
        return ()
    breaks = np.flatnonzero(np.diff(frames) > min_gap)
    starts = np.concatenate([[frames[0]], frames[breaks + 1]])
    ends = np.concatenate([frames[breaks], [frames[-1]]]) + 1
    return tuple((int(s), int(e)) for s, e in zip(starts, ends, strict=True))


def quantized_logmel(power: np.ndarray, mel: np.ndarray) -> np.ndarray:
    """Log-mel in 0.5 dB steps below the loudest cell, clipped at 127.5 dB down: uint8."""
    level = to_db(power @ mel.T)
    steps = np.clip((level.max() - level) * 2.0, 0, 255)
    return np.round(steps).astype(np.uint8)


def dequantize_logmel(steps: np.ndarray) -> np.ndarray:
    """Back to dB relative to the file's loudest cell (0 dB = loudest)."""
    return -steps.astype(np.float32) / 2.0


_RINGING_S = 0.02  # leaves out 10 times the ringing soxr gives a constant signal at its ends


def _flag(x: np.ndarray, rate: int, active: np.ndarray, params: FingerprintParams) -> str | None:
    """Why a signal has nothing to fingerprint; such files must not all share one signature."""
    floor = 10 ** (params.floor_db / 20)
    if len(x) == 0 or float(np.max(np.abs(x))) < floor:
        return "silent"
    # The ends are left out, as resampling a constant signal rings there for under 2 ms, but
    # only that long: a beep in the first quarter second of a long silent file is not constant.
    edge = min(len(x) // 20, int(_RINGING_S * rate))
    if float(np.ptp(x[edge : len(x) - edge])) < 2 * floor:
        return "constant"
    if int(active.sum()) < params.min_active_frames:
        return "near_empty"
    return None


def set_similarity(a: np.ndarray, b: np.ndarray) -> tuple[float, float, int]:
    """(Jaccard, containment, size of the smaller set) of two hash sets; containment is the
    share of the smaller set found in the larger, which stays high for an excerpt of a
    longer recording."""
    left, right = np.unique(a), np.unique(b)
    smaller = min(len(left), len(right))
    if smaller == 0:
        return 0.0, 0.0, 0
    shared = len(np.intersect1d(left, right, assume_unique=True))
    return shared / (len(left) + len(right) - shared), shared / smaller, smaller
