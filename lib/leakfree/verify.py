"""Verification of a candidate pair with the real measures, on numpy arrays.

A candidate pair shares a MinHash band, which chance and common sounds can also explain.
Before it becomes an edge it must pass the real test: the two log-mel sequences, slid
over each other, must correlate strongly at one offset over (nearly) all of the shorter
file's active frames. That holds for a copy, a transcode, a noisy or faded copy, an
excerpt, or a sound inside a longer file, and not for two different sounds that merely
share some spectral peaks. The hash evidence (Jaccard, containment, and the offset on
which matching hashes agree) is kept with the edge so a person can see why it was made.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Protocol

import numpy as np
import scipy.fft
import scipy.linalg
import scipy.optimize
from scipy.ndimage import uniform_filter1d

from leakfree.fingerprint import dequantize_logmel, event_spans, set_similarity
from leakfree.params import VerifyParams


@dataclass(frozen=True)
class AudioEvidence:
    correlation: float
    offset_s: float  # where file b starts relative to file a
    overlap_s: float  # active audio the two files share at that offset
    jaccard: float
    containment: float
    aligned_hashes: int  # matching hashes whose time offset agrees with the log-mel offset
    matched_s: float  # time span, in file a, covered by those aligned hashes
    aligned_share: float = 0.0  # distinct hashes among them over the smaller file's distinct hashes
    time_scale: float = 1.0  # b's duration over a's: 1/1.03 for b played 3 % faster
    freq_scale: float = 1.0  # b's frequencies over a's: 1.03 for b played 3 % faster
    triplet_votes: int = 0  # triplet hashes agreeing on time_scale and the offset
    aligned_peaks: int = 0  # spectral peaks of a that b has where time_scale and freq_scale put them
    peak_significance: float = 0.0  # how far their moments stand above chance, in deviations
    rival_significance: float = 0.0  # the peaks' best reading far from this one, if it came within min_reading_lead
    echo_s: float = 0.0  # centre of the echo or reverb tail fitted between the two, 0 if none was
    given_reading: int = -1  # which of the readings given to audio_evidence this is at; -1: one it searched

    def backing_significance(self, params: VerifyParams) -> float:
        """The peaks' significance as backing for the frames. Peaks that agree nearly as
        well at a reading far from theirs (rival_significance) follow a regular structure
        that many readings fit, as a voice's harmonics or a synthetic tone's partials do, not
        one recording: they only point to a reading, where the frames must be sure."""
        if self.rival_significance > self.peak_significance - params.min_reading_lead:
            return min(self.peak_significance, params.hint_peak_significance)
        return self.peak_significance

    @property
    def scale_change(self) -> float:
        """How far from 1 the time or frequency scale the pair matched at lies."""
        return max(abs(self.time_scale - 1), abs(self.freq_scale - 1))

    def verified(self, params: VerifyParams) -> bool:
        """Strong correlation, backed by hashes that agree on an offset unless the correlation
        alone leaves no doubt: two different sounds of one kind (two engines, two impacts)
        can share a spectral shape and envelope, but not exact landmark pairs in time, unless
        they are clicks overlapping for a few frames, where only a share of the landmarks
        backs it. Or a weaker correlation (noise, fades) with a great many hashes agreeing
        on the offset."""
        agreeing = max(self.aligned_hashes, self.triplet_votes)
        significance = self.backing_significance(params)
        many = agreeing >= params.many_aligned_hashes or significance >= params.many_peak_significance
        if many and self.correlation >= params.weak_correlation:
            return True  # hundreds of landmarks agreeing on the offset outweigh a noisy spectrum
        if (
            self.aligned_hashes >= params.min_share_hashes
            and self.aligned_share >= params.min_aligned_share
            and self.matched_s >= params.min_share_span_s
            and self.correlation >= params.share_min_correlation
        ):
            return True  # echoes and reverb blur the spectrum's shape, not the peaks' timing
        if self.aligned_peaks:  # found at the speed and pitch the peaks pointed to: they back it
            # A reading given from outside was not one of the many searched: no scale is far for it.
            scale_change = self.scale_change if self.given_reading < 0 else 0.0
            return self.correlation >= peak_correlation_needed(significance, scale_change, params)
        if self.correlation < params.min_correlation:
            return False
        if self.triplet_votes:  # found at a speed the triplets pointed to: they back it
            return self.triplet_votes >= params.min_triplet_votes
        brief = self.overlap_s < params.min_backed_overlap_s
        backed = self.aligned_hashes >= params.min_aligned_hashes and (
            not brief or self.aligned_share >= params.min_aligned_share
        )
        return backed or self.correlation >= params.sure_correlation


def peak_correlation_needed(significance: float, scale_change: float, params: VerifyParams) -> float:
    """The correlation that peaks agreeing `significance` deviations above chance back:
    min_correlation at min_peak_significance, falling in a straight line to weak_correlation
    at many_peak_significance and staying there; below min_peak_significance, none. The
    surer the peaks, the less the frames' shape must agree, as echoes, reverb and noise
    leave it less to agree on. At a scale further from 1 than one edit reaches
    (max_scale_change), only the line's two ends: such a reading is one of the many that
    only two copies edited apart need, and those usually meet through their original too.
    At sure_peak_significance, chance is out of the question and only sure_peak_correlation
    is asked, at any reading: an echo or a wet room leaves the frames little shape to agree on.
    Peaks below min_peak_significance, from hint_peak_significance up, only point to a
    reading: there the frames must correlate at sure_correlation, as they must as they stand."""
    if significance < params.min_peak_significance:
        return params.sure_correlation if significance >= params.hint_peak_significance else np.inf
    if significance >= params.sure_peak_significance:
        return params.sure_peak_correlation
    surer = min(
        (significance - params.min_peak_significance) / (params.many_peak_significance - params.min_peak_significance),
        1.0,
    )
    if scale_change > params.max_scale_change:
        surer = np.floor(surer)
    return params.min_correlation - surer * (params.min_correlation - params.weak_correlation)


def normalized_frames(logmel: np.ndarray, params: VerifyParams) -> tuple[np.ndarray, np.ndarray]:
    """Unit-length, mean-free frame vectors of the local spectral shape, and the active mask.

    Each band's level is taken relative to its own average over about a second around the
    frame, so a static colouring (an EQ, a codec's low-pass, a mono fold-down) and the
    overall gain drop out and what remains is how the sound changes. Silent frames are
    zero and do not count. Silence is judged against the loudest frame of each sound (a
    run of frames between silent gaps), not of the whole file: a quiet sound placed after
    a loud one in a compilation keeps the active frames it has on its own.
    """
    level = dequantize_logmel(logmel)
    if len(level) == 0:
        return np.zeros((0, logmel.shape[1] if logmel.ndim == 2 else 0), np.float32), np.zeros(0, np.float32)
    loudest = level.max(axis=1)
    audible = loudest > -params.quiet_floor_db
    floor = np.full(len(loudest), -params.quiet_floor_db, np.float32)
    for start, end in event_spans(audible, params.gap_frames):
        floor[start:end] = max(float(loudest[start:end].max()) - params.active_rel_db, -params.quiet_floor_db)
    active = audible & (loudest > floor)
    level = np.maximum(level, floor[:, None])
    weight = active.astype(np.float32)[:, None]
    window = params.local_mean_frames
    local_sum = uniform_filter1d(level * weight, window, axis=0, mode="constant")
    local_count = uniform_filter1d(weight, window, axis=0, mode="constant")
    shape = level - local_sum / np.maximum(local_count, 1e-6)
    shape -= shape.mean(axis=1, keepdims=True)
    norm = np.linalg.norm(shape, axis=1, keepdims=True)
    shape = np.where(norm > 1e-6, shape / np.maximum(norm, 1e-6), 0.0) * weight
    return shape.astype(np.float32), active.astype(np.float32)


def best_alignment(
    a: tuple[np.ndarray, np.ndarray], b: tuple[np.ndarray, np.ndarray], params: VerifyParams
) -> tuple[float, int, int]:
    """(correlation, offset of b in frames, overlapping active frames) at the best offset
    where the overlap covers enough of the shorter file; correlation -1 if none does."""
    return alignment_scores(a, b, params).best()


@dataclass(frozen=True)
class AlignmentScores:
    """The frames' correlation and overlapping active frames at every offset of b (offset
    k at index k + len(b) - 1), and what an offset needs of the overlap."""

    correlation: np.ndarray
    overlap: np.ndarray
    active_a: np.ndarray  # each file's active frames counted up to each frame: [0, ...]
    active_b: np.ndarray
    min_frames: float
    min_share: float

    def best(self, near: int | None = None, within: int = 0) -> tuple[float, int, int]:
        """(correlation, offset, overlap) at the best offset whose overlap covers enough of
        the shorter file (correlation -1 if none does), or only over the offsets within
        `within` of `near`; there, when one file lies wholly inside the other, enough of
        what both hold in the stretch they share will do (inner_need)."""
        first = len(self.active_b) - 2
        lo, hi = 0, len(self.correlation)
        if near is not None:
            lo, hi = max(near - within + first, 0), min(near + within + first + 1, len(self.correlation))
        if lo >= hi:
            return -1.0, 0, 0
        need = self.need(min(self.active_a[-1], self.active_b[-1]))
        if near is not None:
            need = np.minimum(need, self.inner_need(np.arange(lo, hi) - first))
        score = np.where(self.overlap[lo:hi] >= need - 0.5, self.correlation[lo:hi], -1.0)
        k = int(np.argmax(score))
        return float(score[k]), lo + k - first, int(self.overlap[lo + k])

    def need(self, active: float | np.ndarray) -> float | np.ndarray:
        """The overlap `active` frames need: min_share of them, and min_frames of them at least."""
        return np.maximum(np.minimum(self.min_frames, active), self.min_share * active)

    def inner_need(self, offsets: np.ndarray) -> np.ndarray:
        """At each offset, the need of the fewer active frames the two files hold in the
        stretch they share, where one lies wholly inside the other; elsewhere none suffices.
        A landmark offset has placed the shorter file there: a limiter or a compressor makes
        frames active that its original, inside a longer file, leaves quiet."""
        frames_a, frames_b = len(self.active_a) - 1, len(self.active_b) - 1
        start_a, end_a = np.clip(offsets, 0, frames_a), np.clip(offsets + frames_b, 0, frames_a)
        start_b, end_b = np.clip(-offsets, 0, frames_b), np.clip(frames_a - offsets, 0, frames_b)
        held = np.minimum(self.active_a[end_a] - self.active_a[start_a], self.active_b[end_b] - self.active_b[start_b])
        b_in_a = (offsets >= 0) & (offsets + frames_b <= frames_a)
        a_in_b = (offsets <= 0) & (offsets + frames_b >= frames_a)
        return np.where((b_in_a | a_in_b) & (held > 0), self.need(held), np.inf)


def alignment_scores(
    a: tuple[np.ndarray, np.ndarray], b: tuple[np.ndarray, np.ndarray], params: VerifyParams
) -> AlignmentScores:
    """The two files' unit frames slid over each other (normalized_frames: frames, active mask)."""
    frames_a, active_a = a
    frames_b, active_b = b
    counted = [np.concatenate([[0.0], np.cumsum(active)]) for active in (active_a, active_b)]
    need = (params.min_overlap_frames, params.min_overlap_share)
    size = len(frames_a) + len(frames_b) - 1
    if len(frames_a) == 0 or len(frames_b) == 0 or min(active_a.sum(), active_b.sum()) == 0:
        return AlignmentScores(np.zeros(0), np.zeros(0), *counted, *need)  # best: -1, nothing overlaps
    n = scipy.fft.next_fast_len(size, real=True)
    spectra = scipy.fft.rfft(frames_a, n, axis=0) * scipy.fft.rfft(frames_b[::-1], n, axis=0)
    dot = scipy.fft.irfft(spectra.sum(axis=1), n)[:size]
    overlap = np.rint(scipy.fft.irfft(scipy.fft.rfft(active_a, n) * scipy.fft.rfft(active_b[::-1], n), n)[:size])
    return AlignmentScores(dot / np.maximum(overlap, 1), overlap, *counted, *need)


def frames_per_mel(row: dict) -> int:
    """Hash frames (the times of hashes and peaks) per log-mel frame."""
    return round(row["logmel_hop_s"] / row["hop_s"])


def matching_hashes(hashes_a: np.ndarray, hashes_b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(index in a, index in b) of every pair of equal hashes."""
    if len(hashes_a) == 0 or len(hashes_b) == 0:
        return np.empty(0, np.int64), np.empty(0, np.int64)
    order_b = np.argsort(hashes_b, kind="stable")
    sorted_b = hashes_b[order_b]
    a_index, positions = expand_ranges(
        np.searchsorted(sorted_b, hashes_a, "left"), np.searchsorted(sorted_b, hashes_a, "right")
    )
    return a_index, order_b[positions]


def expand_ranges(lo: np.ndarray, hi: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(i, j) for every j in lo[i] .. hi[i] - 1, built without a Python loop."""
    counts = hi - lo
    starts = np.repeat(lo - np.concatenate([[0], np.cumsum(counts)[:-1]]), counts)
    return np.repeat(np.arange(len(lo)), counts), starts + np.arange(counts.sum())


Reading = tuple[float, float, float]  # (time scale, frequency scale, offset in s) relating b to a, as AudioEvidence


def audio_evidence(
    a: dict,
    b: dict,
    params: VerifyParams,
    mel_hz: np.ndarray,
    *,
    triplets_only: bool = False,
    as_is_only: bool = False,
    given: Sequence[Reading] = (),
) -> AudioEvidence | None:
    """Compare two feature rows (hashes, times, triplets, logmel matrix, hop lengths): the
    evidence searched_evidence finds, or when that fails, the first of the `given` readings
    (what two edges through a third file compose to) at which the pair holds (given_evidence).
    """
    aligned = aligner(a, b, params, mel_hz)
    searched = searched_evidence(a, b, params, mel_hz, aligned, triplets_only=triplets_only, as_is_only=as_is_only)
    if searched is None or searched.verified(params):
        return searched
    for index, reading in enumerate(given):
        at = given_evidence(a, b, params, aligned, searched, reading, index)
        if at is not None and at.verified(params):
            return at
    return searched


def searched_evidence(
    a: dict,
    b: dict,
    params: VerifyParams,
    mel_hz: np.ndarray,
    aligned: Aligner,
    *,
    triplets_only: bool,
    as_is_only: bool,
) -> AudioEvidence | None:
    """The evidence at the readings the pair's own features point to.

    The log-mel alignment gives an offset; the landmark hashes are counted only where they
    agree with it (within a bin), so hashes shared by chance, at other offsets, do not count.
    A pair that fails as it stands is tried once more at the speed the triplet hashes
    point to (`mel_hz`: the log-mel bands' centre frequencies, to shift them by), then at the
    reading single spectral peaks agree on, and there once more after fitting an echo or
    reverb tail between the two (echo_evidence).

    A pair that only triplet hashes proposed (`triplets_only`) is first asked whether they
    agree on one speed and offset, a larger share of them than other pairs need
    (triplets_only_vote_share); None when they do not. Triplets are coarse and proposed most
    candidates, most of them chance that the vote alone rejects. Such a pair goes no further
    than the reading they vote for: the vote is all that speaks for it, and sounds of one
    kind with a regular structure (synthetic beeps, sweeps, bells) pass it by the thousand,
    to fail at every reading the peaks would then search.

    A pair that nothing in its sound proposed (`as_is_only`: its captions did) is judged as
    it stands: a description two files share says nothing of a speed or an echo between
    them, and no audio signature of theirs pointed to one. Searched further on 4,800 demo
    files, such pairs (about a sixth of the candidates) gave 10 edges besides the 18 found as
    they stand, all 10 between different sounds (8 of the 18 were copies).
    """
    vote = None
    if triplets_only:
        vote = triplet_vote(a, b, params, params.triplets_only_vote_share)
        if vote is None:
            return None
    as_is = unscaled_evidence(a, b, params, aligned)
    if as_is.verified(params) or as_is_only or len(a["triplet_hashes"]) == 0 or len(b["triplet_hashes"]) == 0:
        return as_is
    scaled = scaled_evidence(a, b, params, aligned, vote)
    if scaled is not None and scaled.verified(params):
        return scaled
    if triplets_only:
        return as_is
    # Mere hints of peaks are followed only for frames that correlate at weak_correlation as
    # they stand: a copy a few per cent off in speed still lines up in part, most others do not.
    hinted = as_is.correlation >= params.weak_correlation
    least = min(params.hint_peak_significance, params.min_peak_significance) if hinted else params.min_peak_significance
    peaks = peak_evidence(a, b, params, aligned, as_is, least)
    if peaks is None:
        return as_is
    if peaks.verified(params):
        return peaks
    significance = peaks.backing_significance(params)
    if significance < params.min_peak_significance:
        return as_is  # a hint points to a reading; it backs no echo fit
    needed = peak_correlation_needed(significance, peaks.scale_change, params)
    if needed - peaks.correlation > params.max_echo_gain:
        return as_is
    echoed = echo_evidence(a, b, params, mel_hz, peaks)
    return echoed if echoed.verified(params) else as_is


class Aligner(Protocol):
    def __call__(self, time_scale: float, freq_scale: float, near: int | None = None) -> tuple[float, int, int]: ...


def aligner(a: dict, b: dict, params: VerifyParams, mel_hz: np.ndarray) -> Aligner:
    """best_alignment of a with b warped to a (time scale, frequency scale) reading, the
    best over the sets of bands shared_bands gives, or only over the offsets within
    offset_bin_frames of `near`; a's frames are normalized once per set of bands and each
    reading is aligned once, however many ways lead to it."""
    levels_a = band_levels(a["logmel"], params)

    @functools.cache
    def frames_a(bands: bytes) -> tuple[np.ndarray, np.ndarray]:
        return normalized_frames(a["logmel"][:, np.frombuffer(bands, bool)], params)

    @functools.cache
    def scores(time_scale: float, freq_scale: float) -> list[AlignmentScores]:
        frames_b, band_sets = at_reading(levels_a, b["logmel"], (time_scale, freq_scale), params, mel_hz)
        return [
            alignment_scores(frames_a(bands.tobytes()), normalized_frames(frames_b[:, bands], params), params)
            for bands in band_sets
        ]

    def aligned(time_scale: float, freq_scale: float, near: int | None = None) -> tuple[float, int, int]:
        return max(found.best(near, params.offset_bin_frames) for found in scores(time_scale, freq_scale))

    return aligned


def at_reading(
    levels_a: np.ndarray, logmel_b: np.ndarray, reading: tuple[float, float], params: VerifyParams, mel_hz: np.ndarray
) -> tuple[np.ndarray, list[np.ndarray]]:
    """b's log-mel warped to a (time scale, frequency scale) reading, and the sets of bands
    to compare it with a (whose band_levels are levels_a) over there (shared_bands)."""
    if reading != (1.0, 1.0):
        logmel_b = warp_logmel(logmel_b, *reading, mel_hz)
    return logmel_b, shared_bands(levels_a, band_levels(logmel_b, params), params)


def band_levels(logmel: np.ndarray, params: VerifyParams) -> np.ndarray:
    """Each band's mean level over a file's active frames, in dB from its loudest band."""
    level = dequantize_logmel(logmel)
    if len(level) == 0:
        return np.zeros(logmel.shape[1], np.float32)
    loudest = level.max(axis=1)
    profile = level[loudest >= loudest.max() - params.active_rel_db].mean(axis=0)
    return profile - profile.max()


def shared_bands(levels_a: np.ndarray, levels_b: np.ndarray, params: VerifyParams) -> list[np.ndarray]:
    """The sets of bands to compare two files over, the best of which counts: the bands
    both hold, or all if they share fewer than min_shared_bands, and those without the ends
    one of them lacks (band_limited) when they differ. A band-limited copy (a telephone
    band, a low-pass, a speed change that moved the top band out of range) holds nothing in
    the others, and they would only dilute the correlation with what the edit took away."""
    held = (levels_a >= -params.band_floor_db) & (levels_b >= -params.band_floor_db)
    if held.sum() < params.min_shared_bands:
        return [np.ones(len(held), bool)]
    limited = band_limited(levels_a, levels_b, held, params)
    return [held] if (limited == held).all() else [held, limited]


def band_limited(levels_a: np.ndarray, levels_b: np.ndarray, held: np.ndarray, params: VerifyParams) -> np.ndarray:
    """`held` without its lowest and highest bands where one file's level over the other's
    strays more than band_mismatch_db from its median over `held`: a gentle high-pass or
    low-pass leaves those bands above band_floor_db, but attenuated, they fall below the
    silence floor in some frames and not in others, and their shape no longer matches. Only
    the ends: a band limit cuts the bottom or the top of a spectrum, where noise, a mix or
    another sound changes bands anywhere. `held` itself when fewer than min_shared_bands
    would remain."""
    gain = levels_b - levels_a
    agree = np.flatnonzero(held & (np.abs(gain - np.median(gain[held])) <= params.band_mismatch_db))
    if len(agree) == 0:
        return held
    limited = held.copy()
    limited[: agree[0]] = False
    limited[agree[-1] + 1 :] = False
    return limited if limited.sum() >= params.min_shared_bands else held


def unscaled_evidence(a: dict, b: dict, params: VerifyParams, aligned: Aligner) -> AudioEvidence:
    """The evidence as the files stand: at the offset the frames align best or, when that
    fails, at the one most matching landmark hashes agree on (landmark_offset), if
    min_share_hashes of them do. An echo or reverb drags the frames' best offset towards its
    delay, and in a long file (a compilation) a copy whose frames correlate weakly (a
    compressor, a limiter) loses to chance at another offset; the landmarks' timing stays.
    Placed by the landmarks, the pair holds only if they are min_aligned_share of the
    smaller file's: there the overlap may be short (AlignmentScores.inner_need), and two
    robot voices of one game that share a 0.1 s syllable had 25-30 landmarks at one offset,
    0.6 % of theirs, and frames correlating 0.7 over it."""
    similarity = set_similarity(a["hashes"], b["hashes"])
    matches = matching_hashes(a["hashes"], b["hashes"])
    alignment = aligned(1.0, 1.0)
    evidence = _landmark_evidence(a, b, params, alignment, matches, similarity)
    if evidence.verified(params):
        return evidence
    offset, votes = landmark_offset(a, b, matches, params)
    if votes < params.min_share_hashes or abs(offset - alignment[1]) <= params.offset_bin_frames:
        return evidence
    voted = _landmark_evidence(a, b, params, aligned(1.0, 1.0, near=offset), matches, similarity)
    return voted if voted.verified(params) and voted.aligned_share >= params.min_aligned_share else evidence


def _landmark_evidence(
    a: dict,
    b: dict,
    params: VerifyParams,
    alignment: tuple[float, int, int],
    matches: tuple[np.ndarray, np.ndarray],
    similarity: tuple[float, float, int],
) -> AudioEvidence:
    """The evidence at an alignment, with the matching hashes (a's and b's index of each)
    that agree with its offset; `similarity`: set_similarity of the two files' hashes."""
    jaccard, containment, smaller = similarity
    a_index, b_index = matches
    per_mel = frames_per_mel(a)
    anchors = a["times"][a_index].astype(np.int64)
    # b's offset relative to a is minus the shift of b's frames that aligned the log-mels.
    agree = np.abs(b["times"][b_index] - anchors + alignment[1] * per_mel) <= params.offset_bin_frames * per_mel
    # The share counts distinct hashes, as `smaller` does: a sound that repeats a landmark
    # (bounces, a beep train, a hum) pairs it with each repetition, and counted in pairs, two
    # different impacts of one kind shared 4.8 times the smaller's hashes.
    return _evidence(
        alignment,
        (jaccard, containment),
        a,
        anchors[agree],
        aligned_hashes=int(agree.sum()),
        aligned_share=len(np.unique(a["hashes"][a_index[agree]])) / max(smaller, 1),
    )


def landmark_offset(a: dict, b: dict, matches: tuple[np.ndarray, np.ndarray], params: VerifyParams) -> tuple[int, int]:
    """(the offset of b in log-mel frames, as alignments give it, that most matching hashes
    put it at, how many put it within offset_bin_frames of there); (0, 0) when none match."""
    a_index, b_index = matches
    if len(a_index) == 0:
        return 0, 0
    shifts = a["times"][a_index].astype(np.int64) - b["times"][b_index]
    offsets = np.rint(shifts / frames_per_mel(a)).astype(np.int64)
    lowest = int(offsets.min())
    counts = np.bincount(offsets - lowest)
    k = int(np.argmax(counts))
    return k + lowest, int(counts[max(k - params.offset_bin_frames, 0) : k + params.offset_bin_frames + 1].sum())


_PHASES = (0, 1)  # in half cells: two binnings of offsets, so a cluster on one's cell edge is whole in the other


@dataclass(frozen=True)
class TripletVote:
    """The time and frequency scale most matching triplet hashes agree on."""

    time_scale: float
    freq_scale: float
    anchors: np.ndarray  # frames in a of the triplets that agree


def triplet_vote(a: dict, b: dict, params: VerifyParams, min_share: float | None = None) -> TripletVote | None:
    """Every matching triplet votes, for each time scale tried, for the offset at which it
    puts b; the time scale with the most votes in one offset wins, and the frequency scale is
    the median ratio of its voters' anchor frequencies. None when the votes scatter (fewer
    than min_share of the matching triplets agree, min_vote_share unless given: chance, not
    a copy) or point outside the scales tried."""
    ia, ib = matching_hashes(a["triplet_hashes"], b["triplet_hashes"])
    if len(ia) < params.min_triplet_votes:
        return None
    points_a, points_b = a["triplet_points"][ia].astype(np.int64), b["triplet_points"][ib].astype(np.int64)
    time_a, time_b = (points_a >> 10).astype(np.float64), (points_b >> 10).astype(np.float64)
    bins_a, bins_b = (points_a & 1023) / 2.0, (points_b & 1023) / 2.0
    steps = round(params.max_scale_change / params.scale_step)
    scales = 1.0 + params.scale_step * np.arange(-steps, steps + 1)
    width = params.offset_bin_frames * frames_per_mel(a)
    best_votes, time_scale, centre = 0, 1.0, 0.0
    cells = OffsetCells([offset_shifts(time_a, time_b, scales, width)])
    for phase in _PHASES:
        votes = cells.votes(phase)
        row, cell = np.unravel_index(int(np.argmax(votes)), votes.shape)
        if votes[row, cell] > best_votes:
            best_votes, time_scale, centre = int(votes[row, cell]), float(scales[row]), cells.centre(cell, phase)
    voters = np.abs(time_b - time_scale * time_a - centre * width) <= width
    voters &= (bins_a >= 3) & (bins_b >= 3)
    share = params.min_vote_share if min_share is None else min_share
    if voters.sum() < max(params.min_triplet_votes, share * len(ia)):
        return None
    freq_scale = float(np.median(bins_b[voters] / bins_a[voters]))
    if abs(freq_scale - 1) > params.max_scale_change:
        return None
    time_scale = fitted_time_scale(time_a[voters], time_b[voters], time_scale, params.scale_step, frames_per_mel(a))
    return TripletVote(time_scale, freq_scale, time_a[voters])


def fitted_time_scale(time_a: np.ndarray, time_b: np.ndarray, voted: float, step: float, frame: int) -> float:
    """The slope of the least-squares line through the points that agree (a frame of a, the
    frame of b it found), kept within a step of the scale they voted for. Over a long sound
    the steps tried are too coarse: half a step off is 75 ms of drift over 30 s of music, and
    log-mel frames (`frame` hash frames each) no longer line up; points spread over the
    sound pin the scale down to about a frame over their span. Over a span where half a
    step drifts less than a frame the voted scale stays: there the fit only adds noise."""
    if len(time_a) < 2 or np.ptp(time_a) * step / 2 < frame:
        return voted
    centred = time_a - time_a.mean()
    spread = float(centred @ centred)
    slope = float(centred @ (time_b - time_b.mean())) / spread
    return float(np.clip(slope, voted - step, voted + step))


def scaled_evidence(
    a: dict, b: dict, params: VerifyParams, aligned: Aligner, vote: TripletVote | None = None
) -> AudioEvidence | None:
    """The evidence at the time and frequency scale that the triplet hashes point to.

    A speed change by resampling scales time by 1/s and frequency by s; a pitch shift only
    frequency; a time stretch only time. Over a short sound, time scales a few percent apart
    put b at nearly the same offsets, so the vote cannot tell them apart: b's log-mel is
    warped to a's scale under each reading (speed, from either scale; pitch: time 1; tempo:
    frequency 1; or both as voted) and the best alignment counts. Unless the reading as voted
    correlates min_voted_correlation, the others are not tried: they only refine it."""
    vote = vote or triplet_vote(a, b, params)
    if vote is None:
        return None
    time_scale, freq_scale = vote.time_scale, vote.freq_scale
    voted = (round(time_scale, 4), round(freq_scale, 4))
    readings = {voted}
    if aligned(*voted)[0] >= params.min_voted_correlation:
        readings |= {
            (round(t, 4), round(f, 4))
            for t, f in (
                (1 / freq_scale, freq_scale),
                (time_scale, 1 / time_scale),
                (1.0, freq_scale),
                (time_scale, 1.0),
            )
        }
    (correlation, offset, overlap), (time_scale, freq_scale) = max((aligned(t, f), (t, f)) for t, f in sorted(readings))
    return _evidence(
        (correlation, offset, overlap),
        set_similarity(a["triplet_hashes"], b["triplet_hashes"])[:2],
        a,
        vote.anchors,
        aligned_hashes=0,
        time_scale=round(time_scale, 4),
        freq_scale=round(freq_scale, 4),
        triplet_votes=len(vote.anchors),
    )


_PEAK_VOTES_AT_ONCE = 1 << 21  # peak pairs x time scales voted in one array: 16 MB of offsets


@dataclass(frozen=True)
class PeakAlignment:
    """The time and frequency scale and the offset (b's frame = time_scale * a's frame +
    offset, in hash frames) at which a's spectral peaks best find b's, and how far that
    stands above chance."""

    time_scale: float
    freq_scale: float
    offset: float
    aligned: int  # distinct peaks of a that find one of b's there
    significance: float
    anchors: np.ndarray  # frames in a of those peaks


def spectral_points(row: dict) -> tuple[np.ndarray, np.ndarray]:
    """(frame, FFT bin) of the peaks a file's triplet hashes are anchored on, each once."""
    points = np.unique(row["triplet_points"].astype(np.int64))
    return (points >> 10).astype(np.float64), (points & 1023) / 2.0


def peak_alignment(
    a: dict,
    b: dict,
    params: VerifyParams,
    least: float | None = None,
    readings: list[tuple[float, np.ndarray]] | None = None,
) -> PeakAlignment | None:
    """Every pair of peaks (one of a, one of b) at frequencies the reading relates votes for
    the offset it implies. Readings: frequency scales in steps of the frequency tolerance
    over 1 +- peak_max_scale_change, each with the time scale of a pitch shift (1) and of a
    speed change (its inverse); at frequency scale 1, also those of a time stretch.

    Significance is counted in moments (frames of a that hold an agreeing peak), not peaks:
    a transient's broadband peaks line up with any other transient's all together, so they
    are one chance event, not many. The chance count is what the best offset would
    hold if the reading's votes spread evenly over the offsets they span, in a's moments
    per peak; significance is the excess in deviations of a count. The reading with the
    most significant offset wins; None when none reaches `least` (min_peak_significance
    unless given). `readings`: (frequency scale, its time scales), peak_readings unless given.

    Single peaks survive edits that break the pairs and triplets that hashes are made of:
    an echo or reverb adds peaks and masks some, noise buries the weaker ones, and a hash
    is lost when any one of its peaks is.

    All readings vote at once, in blocks of at most _PEAK_VOTES_AT_ONCE votes: most pairs
    asked are different sounds, and one pass over a few arrays costs them less than a pass
    per reading."""
    least = params.min_peak_significance if least is None else least
    time_a, bins_a = spectral_points(a)
    time_b, bins_b = spectral_points(b)
    if len(time_a) == 0 or len(time_b) == 0:
        return None
    order = np.argsort(bins_b, kind="stable")
    bins_b, time_b = bins_b[order], time_b[order]
    tolerance, width, per_mel = params.peak_freq_tolerance, float(params.peak_offset_frames), frames_per_mel(a)
    readings = peak_readings(params, np.ptp(time_a)) if readings is None else readings
    freq_scales = np.array([freq_scale for freq_scale, _ in readings])
    lo = np.searchsorted(bins_b, np.outer(freq_scales * (1 - tolerance), bins_a) - 0.5)
    hi = np.searchsorted(bins_b, np.outer(freq_scales * (1 + tolerance), bins_a) + 0.5, "right")
    moment_starts = np.flatnonzero(np.diff(time_a, prepend=-1.0))  # spectral_points sorts by frame
    moments_per_peak = len(moment_starts) / len(time_a)
    pairs = (hi - lo).sum(axis=1)
    moments = (np.add.reduceat(hi > lo, moment_starts, axis=1) > 0).sum(axis=1)
    # Chance is least where the offsets spread widest: no offset of a reading can do better.
    widest = (np.ptp(time_b) + np.array([t.max() for _, t in readings]) * np.ptp(time_a)) / width + 2
    hopeful = (pairs > 0) & (significance(moments, pairs / widest * moments_per_peak) >= least)
    tried = np.flatnonzero(hopeful)
    flat, all_ib = expand_ranges(lo[tried].ravel(), hi[tried].ravel())
    bounds = np.cumsum([0, *pairs[tried]])
    parts = {int(r): slice(bounds[k], bounds[k + 1]) for k, r in enumerate(tried)}
    all_ia = flat % len(time_a)
    pairs_of = lambda r: (all_ia[parts[r]], all_ib[parts[r]])  # noqa: E731
    anchors_of = functools.cache(lambda r: time_a[pairs_of(r)[0]])  # sorted: pairs come in a's order
    best, floor = None, least
    for block in _vote_blocks([(int(r), readings[r][1], int(pairs[r])) for r in tried]):
        rows = [(r, float(time_scale)) for r, time_scales in block for time_scale in time_scales]
        cells = OffsetCells(
            [offset_shifts(anchors_of(r), time_b[pairs_of(r)[1]], time_scales, width) for r, time_scales in block]
        )
        row_anchors = [anchors_of(r) for r, _ in rows]
        for phase in _PHASES:
            found = _most_significant_offset(cells, phase, row_anchors, moments_per_peak, floor)
            if found is not None:
                row, cell, agree, found_significance = found
                (r, time_scale), (ia, ib) = rows[row], pairs_of(rows[row][0])
                peaks = np.unique(ia[agree])
                best = PeakAlignment(
                    fitted_time_scale(time_a[ia][agree], time_b[ib][agree], time_scale, tolerance, per_mel),
                    float(readings[r][0]),
                    cells.centre(cell, phase) * width,
                    len(peaks),
                    found_significance,
                    time_a[peaks],
                )
                floor = np.nextafter(found_significance, np.inf)  # a tie keeps the first found
    return best


def _vote_blocks(readings: list[tuple[int, np.ndarray, int]]) -> list[list[tuple[int, np.ndarray]]]:
    """(reading, its time scales, its pairs of peaks) grouped into blocks of (reading, some
    of its time scales) that each cast at most _PEAK_VOTES_AT_ONCE votes, or one row's."""
    blocks: list[list[tuple[int, np.ndarray]]] = [[]]
    room = _PEAK_VOTES_AT_ONCE
    for r, time_scales, pairs in readings:
        at_once = max(1, _PEAK_VOTES_AT_ONCE // pairs)
        for first in range(0, len(time_scales), at_once):
            chunk = time_scales[first : first + at_once]
            if len(chunk) * pairs > room and blocks[-1]:
                blocks.append([])
                room = _PEAK_VOTES_AT_ONCE
            blocks[-1].append((r, chunk))
            room -= len(chunk) * pairs
    return [block for block in blocks if block]


def peak_readings(params: VerifyParams, span: float) -> list[tuple[float, np.ndarray]]:
    """(frequency scale, the time scales tried with it) of every reading peak_alignment tries
    for a file whose peaks span `span` frames. Time stretches are tried in steps that move
    its last peak by an offset cell at most (never finer than scale_step): a second-long
    sound needs a fifth of the steps of a five-second one, and the agreeing peaks' line
    (fitted_time_scale) finds the scale between them."""
    tolerance = params.peak_freq_tolerance
    top = np.floor(np.log1p(params.peak_max_scale_change) / tolerance)
    step = max(params.scale_step, params.peak_offset_frames / max(span, 1.0))
    steps = np.floor(params.peak_max_scale_change / step + 1e-9)
    stretches = 1.0 + step * np.arange(-steps, steps + 1)
    return [
        (freq_scale, stretches if abs(freq_scale - 1) < tolerance / 2 else np.array([1.0, 1 / freq_scale]))
        for freq_scale in np.exp(np.arange(-top, top + 1) * tolerance)
    ]


def _most_significant_offset(
    cells: OffsetCells,
    phase: int,
    anchors: list[np.ndarray],
    moments_per_peak: float,
    floor: float,
) -> tuple[int, int, np.ndarray, float] | None:
    """(row, offset cell, which shifts fall in it, significance) of the fullest cell of the
    row whose fullest cell stands furthest above chance, if that is at least `floor`;
    `anchors[row]`: the frames in a, sorted, of the row's shifts."""
    votes = cells.votes(phase)
    top = votes.argmax(axis=1)
    chance = cells.counts / cells.spans(phase) * moments_per_peak
    # The most any row can reach: every vote in its fullest cell a moment of its own.
    bound = significance(votes[np.arange(len(votes)), top], chance)
    found = None
    for row in np.argsort(-bound, kind="stable"):
        if bound[row] < floor:
            break
        agree = cells.row(row, phase) == top[row]
        row_significance = significance(distinct_count(anchors[row][agree]), chance[row])
        if row_significance >= floor:
            found = int(row), int(top[row]), agree, float(row_significance)
            floor = np.nextafter(row_significance, np.inf)
    return found


def significance(moments: float | np.ndarray, chance: float | np.ndarray) -> float | np.ndarray:
    """How far a count stands above what chance puts there, in deviations of a count."""
    return (moments - chance) / np.sqrt(chance + 1)


def distinct_count(sorted_values: np.ndarray) -> int:
    return int(np.count_nonzero(np.diff(sorted_values))) + 1 if len(sorted_values) else 0


def offset_shifts(time_a: np.ndarray, time_b: np.ndarray, time_scales: np.ndarray, width: float) -> np.ndarray:
    """(time_b - time_scale * time_a) / width, a row per time scale: the offset, in cells of
    `width` frames, at which each pair of points puts b under each time scale."""
    shifts = np.multiply.outer(time_scales, time_a)
    np.subtract(time_b, shifts, out=shifts)
    shifts /= width
    return shifts


def _half_cells(shifts: np.ndarray) -> np.ndarray:
    doubled = shifts * 2
    return np.floor(doubled, out=doubled).astype(np.int64)


class OffsetCells:
    """Rows of shifts binned into unit cells at two phases (cell edges at the integers, and
    half a cell on), counted once in half cells: floor(x) and floor(x + 1/2) are
    floor(2x) // 2 and (floor(2x) + 1) // 2. Cells count from an even half cell below every
    shift, so both phases index their cells from one origin. The rows come in blocks (rows x
    shifts), and a block's rows may hold another number of shifts than the next block's."""

    def __init__(self, blocks: list[np.ndarray]):
        halves = [_half_cells(block) for block in blocks]
        lowest = np.concatenate([h.min(axis=1) for h in halves])
        highest = np.concatenate([h.max(axis=1) for h in halves])
        self.origin = int(lowest.min()) // 2
        self.lowest, self.highest = lowest - 2 * self.origin, highest - 2 * self.origin
        self._block_of = np.repeat(np.arange(len(halves)), [len(h) for h in halves])
        self._first_row = np.cumsum([0] + [len(h) for h in halves])
        self.counts = np.concatenate([np.full(len(h), h.shape[1]) for h in halves])
        self._span = 2 * ((int(self.highest.max()) + 1) // 2 + 1)  # whole cells at phase 1 too
        # Each half cell from the origin, plus span times its row in the block: the codes a
        # block's votes are counted by, made in place (a long file's block holds millions).
        for h in halves:
            h += (self._span * np.arange(len(h)) - 2 * self.origin)[:, None]
        self._codes = halves
        self.half_votes = np.concatenate(
            [np.bincount(codes.ravel(), minlength=self._span * len(codes)).reshape(-1, self._span) for codes in halves]
        )

    def votes(self, phase: int) -> np.ndarray:
        """votes[row, cell] at a phase of 0 or 1 half cell."""
        even, odd = self.half_votes[:, 0::2], self.half_votes[:, 1::2]
        if phase == 0:
            return even + odd
        votes = even.copy()
        votes[:, 1:] += odd[:, :-1]
        return votes

    def row(self, row: int, phase: int) -> np.ndarray:
        """The cell of each of one row's shifts."""
        block = self._block_of[row]
        local = row - self._first_row[block]
        return (self._codes[block][local] - self._span * local + phase) // 2

    def spans(self, phase: int) -> np.ndarray:
        """How many cells each row's shifts cover."""
        return (self.highest + phase) // 2 - (self.lowest + phase) // 2 + 1

    def centre(self, cell: int, phase: int) -> float:
        """The shift at the middle of a cell."""
        return self.origin + cell + 0.5 - phase / 2


def peak_evidence(
    a: dict, b: dict, params: VerifyParams, aligned: Aligner, as_is: AudioEvidence, least: float
) -> AudioEvidence | None:
    """The evidence at the reading single spectral peaks agree on (peak_alignment): the
    log-mel correlation with b warped to it, how far the peaks agree above chance, and,
    when that is enough to back it, how far they do at the best rival reading far from it
    (rival_alignment). None when they do not stand `least` deviations above chance."""
    found = peak_alignment(a, b, params, least)
    if found is None:
        return None
    rival = rival_alignment(a, b, params, found) if found.significance >= params.min_peak_significance else None
    return _evidence(
        aligned(found.time_scale, found.freq_scale),
        (as_is.jaccard, as_is.containment),
        a,
        found.anchors,
        aligned_hashes=0,
        time_scale=round(found.time_scale, 4),
        freq_scale=round(found.freq_scale, 4),
        aligned_peaks=found.aligned,
        peak_significance=round(float(found.significance), 2),
        rival_significance=0.0 if rival is None else round(float(rival.significance), 2),
    )


# Readings this many frequency tolerances from the peaks' own share their pairs of peaks
# (a pair matches within a tolerance either side), so only those further away are rivals.
_RIVAL_STEPS = 2.5


def rival_alignment(a: dict, b: dict, params: VerifyParams, found: PeakAlignment) -> PeakAlignment | None:
    """The best reading more than _RIVAL_STEPS frequency tolerances from found's at which
    the peaks come within min_reading_lead deviations of found's significance; None if
    none does."""
    far = [
        reading
        for reading in peak_readings(params, np.ptp(spectral_points(a)[0]))
        if abs(np.log(reading[0] / found.freq_scale)) > _RIVAL_STEPS * params.peak_freq_tolerance
    ]
    return peak_alignment(a, b, params, found.significance - params.min_reading_lead, far) if far else None


def given_evidence(
    a: dict, b: dict, params: VerifyParams, aligned: Aligner, as_is: AudioEvidence, reading: Reading, index: int
) -> AudioEvidence | None:
    """The evidence at the `index`-th reading given from outside: the frames aligned with b
    warped to it, and the peaks voting at that reading alone when they stand
    hint_peak_significance above chance. None when the frames align further than
    given_offset_error_s from the offset it gives: that is another match than the one given."""
    time_scale, freq_scale, offset_s = reading
    time_scale, freq_scale = round(time_scale, 4), round(freq_scale, 4)
    alignment = aligned(time_scale, freq_scale)
    if abs(alignment[1] * a["logmel_hop_s"] - offset_s) > params.given_offset_error_s:
        return None
    found = peak_alignment(a, b, params, params.hint_peak_significance, [(freq_scale, np.array([time_scale]))])
    return _evidence(
        alignment,
        (as_is.jaccard, as_is.containment),
        a,
        np.zeros(0) if found is None else found.anchors,
        aligned_hashes=0,
        time_scale=time_scale,
        freq_scale=freq_scale,
        aligned_peaks=0 if found is None else found.aligned,
        peak_significance=0.0 if found is None else round(float(found.significance), 2),
        given_reading=index,
    )


def echo_evidence(a: dict, b: dict, params: VerifyParams, mel_hz: np.ndarray, peaks: AudioEvidence) -> AudioEvidence:
    """The peaks' evidence with the correlation after fitting an echo or reverb tail
    (echo_fit) from either file to the other at the peaks' reading and offset: the peaks
    survive an echo, the frames' shape does not, as each frame now also holds earlier ones.
    A fit counts when it puts the frames' centre of energy min_echo_s late or more."""
    reading = (peaks.time_scale, peaks.freq_scale)
    frames_b, (bands, *_) = at_reading(band_levels(a["logmel"], params), b["logmel"], reading, params, mel_hz)
    frames_a, frames_b = a["logmel"][:, bands], frames_b[:, bands]
    hop_s = a["logmel_hop_s"]
    offset = round(peaks.offset_s / hop_s)
    delays = (round(params.min_echo_s / hop_s), round(params.max_echo_s / hop_s))
    best = (peaks.correlation, 0.0)
    for dry, wet, shift in ((frames_a, frames_b, offset), (frames_b, frames_a, -offset)):
        fitted, centre = echo_fit(dry, wet, shift, delays, params.active_rel_db)
        if centre * hop_s < params.min_echo_s:
            continue  # too weak a tail to tell from a blur, which makes any two noise bursts alike
        correlation = best_alignment(normalized_frames(fitted, params), normalized_frames(wet, params), params)[0]
        best = max(best, (correlation, centre * hop_s))
    return replace(peaks, correlation=best[0], echo_s=round(best[1], 3))


_ECHO_FRAMES_AT_ONCE = 2048  # wet frames whose delayed copies are built at once: 13 MB at 32 bands


def echo_fit(
    dry: np.ndarray, wet: np.ndarray, offset: int, delays: tuple[int, int], range_db: float
) -> tuple[np.ndarray, float]:
    """dry's log-mel steps turned into wet's frames by the echo or reverb tail that fits best,
    and the tail's centre in frames. Wet's frame t is taken as a non-negative sum of dry's
    frame t + offset and its frames t + offset - k, k = delays[0] .. delays[1], one weight per
    k for every band (a delay line or a room spreads every band alike in time), fitted on power
    with errors relative to wet's level down to range_db below its loudest cell, as levels,
    not powers, are compared. The shortest delay stays clear of the spectrogram's own smear:
    shorter ones only blur, and blurred, any two bursts of noise look alike."""
    if len(dry) == 0 or len(wet) == 0:
        return dry, 0.0
    dry_power, wet_power = _power(dry), _power(wet)
    shortest, longest = delays
    lags = np.concatenate([[0], np.arange(max(shortest, 1), longest + 1)])
    index = np.arange(len(wet) + longest) + offset - longest
    padded = np.zeros((len(index), dry.shape[1]), np.float32)
    inside = (index >= 0) & (index < len(dry))
    padded[inside] = dry_power[index[inside]]
    windows = np.lib.stride_tricks.sliding_window_view(padded, longest + 1, axis=0)
    parts = [slice(start, start + _ECHO_FRAMES_AT_ONCE) for start in range(0, len(wet), _ECHO_FRAMES_AT_ONCE)]

    def delayed(part: slice) -> np.ndarray:
        """[t, band, i]: dry's power lags[i] frames before the frame aligned with wet's frame t."""
        return windows[part][:, :, longest - lags]

    weight = 1 / np.sqrt(np.maximum(wet_power, wet_power.max() * 10 ** (-range_db / 10)))
    gram = np.zeros((len(lags), len(lags)))
    moment = np.zeros(len(lags))
    for part in parts:
        design = (delayed(part) * weight[part, :, None]).reshape(-1, len(lags)).astype(np.float64)
        gram += design.T @ design
        moment += design.T @ (wet_power[part] * weight[part]).ravel()
    # Least squares through its normal equations, so memory does not grow with the file.
    ridge = 1e-9 * max(np.trace(gram), 1e-30)
    factor = scipy.linalg.cholesky(gram + ridge * np.eye(len(lags)))
    kernel, _ = scipy.optimize.nnls(factor, scipy.linalg.solve_triangular(factor, moment, trans="T"))
    fitted = np.concatenate([delayed(part) @ kernel.astype(np.float32) for part in parts])
    centre = float(kernel @ lags / kernel.sum()) if kernel.sum() > 0 else 0.0
    return _steps(fitted), centre


def _power(steps: np.ndarray) -> np.ndarray:
    return 10 ** (dequantize_logmel(steps) / 10)


def _steps(power: np.ndarray) -> np.ndarray:
    """Power back to log-mel steps below the loudest cell, as quantized_logmel makes them."""
    level = 10 * np.log10(np.maximum(power / max(float(power.max(initial=0.0)), 1e-30), 1e-30))
    return np.clip(np.rint(-2 * level), 0, 255).astype(np.uint8)


def _evidence(
    alignment: tuple[float, int, int], similarity: tuple[float, float], a: dict, anchors: np.ndarray, **counts
) -> AudioEvidence:
    """Evidence from an alignment (correlation, offset and overlap in log-mel frames), the
    hash sets' (Jaccard, containment), and the anchor frames in a of the hashes that back it."""
    correlation, offset, overlap = alignment
    return AudioEvidence(
        correlation=correlation,
        offset_s=offset * a["logmel_hop_s"],
        overlap_s=overlap * a["logmel_hop_s"],
        jaccard=similarity[0],
        containment=similarity[1],
        matched_s=float(anchors.max() - anchors.min()) * a["hop_s"] if len(anchors) else 0.0,
        **counts,
    )


def warp_logmel(logmel: np.ndarray, time_scale: float, freq_scale: float, mel_hz: np.ndarray) -> np.ndarray:
    """b's log-mel steps as they would be at a's speed: frame u of the result is b's frame
    u * time_scale, band m holds b's level at frequency mel_hz[m] * freq_scale (linear
    interpolation, in quantised dB steps; outside b's bands, silence)."""
    frames, bands = logmel.shape
    if frames == 0:
        return logmel
    level = logmel.astype(np.float32)
    at = np.arange(int(np.floor((frames - 1) / time_scale)) + 1) * time_scale
    low = np.minimum(at.astype(np.int64), frames - 1)
    high = np.minimum(low + 1, frames - 1)
    frac = (at - low)[:, None].astype(np.float32)
    level = level[low] * (1 - frac) + level[high] * frac
    band = np.interp(mel_hz * freq_scale, mel_hz, np.arange(bands), left=-1.0, right=-1.0)
    inside = band >= 0
    lo = np.clip(np.floor(band).astype(np.int64), 0, bands - 1)
    hi = np.minimum(lo + 1, bands - 1)
    w = (band - lo).astype(np.float32)
    out = level[:, lo] * (1 - w) + level[:, hi] * w
    out[:, ~inside] = 255.0
    return np.rint(out).astype(np.uint8)
