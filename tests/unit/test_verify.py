"""The verifier on numpy arrays: copies and excerpts pass, different sounds do not."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import scipy.signal
import soxr

from leakfree.config import Config
from leakfree.demo import add_noise, beeps, bell, engine, footsteps, impact, sweep
from leakfree.features import DENSE_TAG
from leakfree.fingerprint import fingerprint, mel_basis, mel_frequencies
from leakfree.verify import (
    AlignmentScores,
    AudioEvidence,
    OffsetCells,
    TripletVote,
    aligner,
    alignment_scores,
    band_levels,
    band_limited,
    best_alignment,
    echo_evidence,
    echo_fit,
    landmark_offset,
    matching_hashes,
    normalized_frames,
    peak_alignment,
    peak_evidence,
    scaled_evidence,
    shared_bands,
    triplet_vote,
    warp_logmel,
)
from leakfree.verify import audio_evidence as evidence_at_speeds

SETTINGS = Config.from_toml()
RATE = SETTINGS.features.analysis_rate
PARAMS = SETTINGS.dedup.verify
MEL = mel_basis(SETTINGS.features.fingerprint, RATE)
MEL_HZ = mel_frequencies(SETTINGS.features.fingerprint)


def audio_evidence(a: dict, b: dict, params):
    return evidence_at_speeds(a, b, params, MEL_HZ)


def features(x: np.ndarray) -> dict:
    fp = fingerprint(x.astype(np.float32), RATE, SETTINGS.features.fingerprint, MEL)
    hop_s = SETTINGS.features.fingerprint.hop / RATE
    return {
        "hashes": np.concatenate([fp.hashes, fp.dense_hashes | DENSE_TAG]),
        "times": np.concatenate([fp.times, fp.dense_times]),
        "triplet_hashes": fp.triplet_hashes,
        "triplet_points": fp.triplet_points,
        "logmel": fp.logmel,
        "hop_s": hop_s,
        "logmel_hop_s": hop_s * SETTINGS.features.fingerprint.mel_every,
    }


def faster(x: np.ndarray, factor: float) -> np.ndarray:
    """x played `factor` times faster, pitch and tempo together, as resampling does."""
    return soxr.resample(x, RATE * factor, RATE).astype(np.float32)


def sound(seed: int, seconds: float = 3.0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return 0.5 * bell(rng, seconds, RATE) + 0.4 * footsteps(rng, seconds, RATE) + 0.2 * beeps(rng, seconds, RATE)


def test_a_noisy_copy_is_verified_with_agreeing_hashes():
    x = sound(1)
    evidence = audio_evidence(features(x), features(add_noise(x, 20, np.random.default_rng(2))), PARAMS)
    assert evidence.verified(PARAMS)
    assert evidence.correlation > 0.8 and evidence.aligned_hashes >= 10
    assert abs(evidence.offset_s) < 0.05


def test_offset_and_overlap_of_a_sound_inside_a_longer_file():
    x = sound(3, 2.0)
    longer = np.concatenate([sound(4, 1.5), np.zeros(RATE // 2), x, sound(5, 1.0)])
    evidence = audio_evidence(features(longer), features(x), PARAMS)
    assert evidence.verified(PARAMS)
    assert evidence.offset_s == pytest.approx(2.0, abs=0.05)  # x starts 2 s into the longer file
    assert evidence.overlap_s == pytest.approx(2.0, abs=0.3)
    assert evidence.aligned_hashes >= 10 and evidence.containment > 0.5


def test_a_quiet_sound_after_a_loud_one_is_found_in_the_compilation():
    # Footsteps 20 dB under an engine: judged against the engine, their decays would be
    # silence and too little of them would overlap to count.
    steps = footsteps(np.random.default_rng(6), 0.8, RATE)
    steps *= 0.1 / np.max(np.abs(steps))
    loud = engine(np.random.default_rng(7), 2.0, RATE)
    loud /= np.max(np.abs(loud))
    compilation = np.concatenate([loud, np.zeros(RATE // 2), steps])
    evidence = audio_evidence(features(compilation), features(steps), PARAMS)
    assert evidence.verified(PARAMS)
    assert evidence.offset_s == pytest.approx(2.5, abs=0.05)


def test_a_sound_a_short_pause_after_a_loud_one_keeps_its_own_active_frames():
    # 40 dB under the engine: judged as one sound with it, the bell would be all silence.
    quiet = bell(np.random.default_rng(6), 1.0, RATE)
    quiet *= 0.01 / np.max(np.abs(quiet))
    loud = engine(np.random.default_rng(7), 2.0, RATE)
    loud /= np.max(np.abs(loud))
    alone = normalized_frames(features(quiet)["logmel"], PARAMS)[1]
    compilation = np.concatenate([loud, np.zeros(int(0.15 * RATE)), quiet])
    within = normalized_frames(features(compilation)["logmel"], PARAMS)[1][-len(alone) :]
    assert within.sum() >= alone.sum() - 2 > 0


@pytest.mark.parametrize("make", [engine, impact, bell, footsteps])
def test_different_sounds_of_one_kind_are_not_verified(make):
    a = make(np.random.default_rng(10), 2.0, RATE)
    b = make(np.random.default_rng(11), 2.0, RATE)
    assert not audio_evidence(features(a), features(b), PARAMS).verified(PARAMS)


def click(seed: int) -> np.ndarray:
    """A key click: 60 ms of decaying noise through one resonance, between short silences."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(0.06 * RATE)) / RATE
    burst = rng.standard_normal(t.size) * np.exp(-t / 0.008)
    b, a = scipy.signal.iirpeak(1200.0, 4, RATE)
    x = scipy.signal.lfilter(b, a, burst) + 0.3 * burst
    return np.concatenate([np.zeros(RATE // 20), 0.8 * x / np.abs(x).max(), np.zeros(RATE // 10)]).astype(np.float32)


def test_landmarks_back_a_correlation_over_a_few_frames_only_as_a_share_of_the_sound():
    # Two key presses of one keyboard (bucklespring's, measured): 0.8 over 5 frames, and 4 of
    # their 400 landmarks, the onset's, at one offset.
    presses = AudioEvidence(0.8, 0.0, 0.08, 0.0, 0.0, 4, 0.02, aligned_share=0.01)
    assert not presses.verified(PARAMS)
    assert replace(presses, overlap_s=PARAMS.min_backed_overlap_s).verified(PARAMS)
    # A noisy copy of a click overlaps it as briefly, and keeps most of its landmarks.
    x = click(4)
    copy = audio_evidence(features(x), features(add_noise(x, 20, np.random.default_rng(99))), PARAMS)
    assert copy.overlap_s < PARAMS.min_backed_overlap_s and copy.correlation < PARAMS.sure_correlation
    assert copy.aligned_share >= PARAMS.min_aligned_share and copy.verified(PARAMS)


def test_silence_has_no_alignment():
    evidence = audio_evidence(features(np.zeros(RATE)), features(sound(1)), PARAMS)
    assert evidence.correlation == -1.0 and not evidence.verified(PARAMS)


def test_matching_hashes_pairs_every_equal_hash():
    a_index, b_index = matching_hashes(np.array([5, 7, 5], np.uint32), np.array([5, 9, 5], np.uint32))
    assert sorted(zip(a_index.tolist(), b_index.tolist(), strict=True)) == [(0, 0), (0, 2), (2, 0), (2, 2)]


def test_the_aligned_share_counts_each_hash_once_when_a_sound_repeats_itself():
    # Counted in pairs of hashes, each of the four repetitions added the sound's hashes again.
    repeated = features(np.tile(impact(np.random.default_rng(5), 0.5, RATE), 4))
    evidence = audio_evidence(repeated, repeated, PARAMS)
    assert evidence.aligned_hashes > 2 * len(np.unique(repeated["hashes"]))
    assert evidence.aligned_share == pytest.approx(1.0)


def test_offset_cells_bin_each_phase_as_flooring_the_shifted_values():
    rng = np.random.default_rng(3)
    blocks = [rng.normal(0, 40, size=(5, 300)), rng.normal(30, 20, size=(2, 40))]  # rows of two lengths
    blocks[0][2, :10] = [-3.5, -3.0, -2.5, 0.0, 0.5, 1.0, 7.5, 8.0, -0.25, 0.75]  # on cell edges
    cells = OffsetCells(blocks)
    shifts = [row for block in blocks for row in block]
    assert cells.counts.tolist() == [300] * 5 + [40] * 2
    for phase in (0, 1):
        for row, values in enumerate(shifts):
            floors = np.floor(values + phase / 2).astype(int)
            assert (cells.origin + cells.row(row, phase) == floors).all()
            counts = np.bincount(floors - cells.origin, minlength=cells.votes(phase).shape[1])
            assert (cells.votes(phase)[row] == counts).all()
            assert cells.spans(phase)[row] == np.ptp(floors) + 1
        assert cells.centre(0, phase) == cells.origin + 0.5 - phase / 2


@pytest.mark.parametrize("factor", [0.95, 1.04])
def test_a_speed_changed_copy_is_verified_at_its_speed(factor):
    x = sound(21, 4.0)
    evidence = audio_evidence(features(x), features(faster(x, factor)), PARAMS)
    assert evidence.verified(PARAMS)
    assert evidence.freq_scale == pytest.approx(factor, abs=0.01)
    assert evidence.time_scale == pytest.approx(1 / factor, abs=0.01)
    assert evidence.triplet_votes >= PARAMS.min_triplet_votes


def test_speed_changes_leave_unrelated_sounds_unverified():
    turned_away = 0
    for seed in range(30, 40):
        a, b = sound(seed, 3.0), faster(sound(seed + 100, 3.0), 1.04)
        assert not audio_evidence(features(a), features(b), PARAMS).verified(PARAMS)
        # Proposed by triplets alone, most are turned away by the vote before any alignment
        # (sounds of one synthetic kind share structure, so some get past it, then fail).
        gated = evidence_at_speeds(features(a), features(b), PARAMS, MEL_HZ, triplets_only=True)
        assert gated is None or not gated.verified(PARAMS)
        turned_away += gated is None
    assert turned_away >= 6


def test_a_copy_proposed_by_triplets_alone_passes_the_vote():
    x = sound(22, 4.0)
    evidence = evidence_at_speeds(features(x), features(faster(x, 1.03)), PARAMS, MEL_HZ, triplets_only=True)
    assert evidence is not None and evidence.verified(PARAMS) and evidence.triplet_votes >= PARAMS.min_triplet_votes


def test_a_pair_only_its_captions_proposed_is_judged_as_it_stands():
    x = sound(23, 4.0)
    copy, faster_copy = features(add_noise(x, 30, np.random.default_rng(3))), features(faster(x, 1.04))
    assert evidence_at_speeds(features(x), copy, PARAMS, MEL_HZ, as_is_only=True).verified(PARAMS)
    assert evidence_at_speeds(features(x), faster_copy, PARAMS, MEL_HZ).verified(PARAMS)
    as_is = evidence_at_speeds(features(x), faster_copy, PARAMS, MEL_HZ, as_is_only=True)
    assert not as_is.verified(PARAMS) and (as_is.time_scale, as_is.freq_scale) == (1.0, 1.0)


def with_triplets(row: dict, frames: np.ndarray) -> dict:
    """`row` with one triplet per frame, hash i at frames[i], all anchored at one bin."""
    points = (frames.astype(np.int64) << 10) | 80  # bin 40, in half bins
    return row | {"triplet_hashes": np.arange(len(frames), dtype=np.uint32), "triplet_points": points}


def test_a_pair_only_triplets_proposed_needs_a_larger_share_of_them_agreeing():
    x = features(sound(23, 3.0))
    rng = np.random.default_rng(4)
    frames = np.arange(64) * 4
    scattered = frames.copy()
    scattered[8:] = rng.permutation(np.arange(56) * 40 + 2000)  # 8 of 64 agree on one offset
    a, b = with_triplets(x, frames), with_triplets(x, scattered)
    share = 8 / 64
    assert PARAMS.min_vote_share < share < PARAMS.triplets_only_vote_share
    assert len(triplet_vote(a, b, PARAMS).anchors) == 8
    assert triplet_vote(a, b, PARAMS, PARAMS.triplets_only_vote_share) is None
    assert evidence_at_speeds(a, b, PARAMS, MEL_HZ, triplets_only=True) is None
    lenient = replace(PARAMS, triplets_only_vote_share=PARAMS.min_vote_share)
    assert evidence_at_speeds(a, b, lenient, MEL_HZ, triplets_only=True) is not None


@pytest.mark.parametrize("voted_correlation, tried", [(0.1, 1), (0.5, 5)])
def test_the_readings_around_a_voted_speed_are_tried_only_when_the_voted_one_correlates(voted_correlation, tried):
    x = features(sound(24, 2.0))
    voted = (0.97, 1.02)
    readings = []

    def aligned(time_scale: float, freq_scale: float) -> tuple[float, int, int]:
        readings.append((time_scale, freq_scale))
        return voted_correlation + (0.2 if (time_scale, freq_scale) != voted else 0.0), 0, 100

    assert PARAMS.min_voted_correlation == pytest.approx(0.3)
    evidence = scaled_evidence(x, x, PARAMS, aligned, TripletVote(*voted, anchors=np.array([0.0, 50.0])))
    assert len(set(readings)) == tried and readings[0] == voted
    assert evidence.correlation == pytest.approx(voted_correlation + (0.2 if tried > 1 else 0.0))


def test_an_echoed_copy_is_verified_by_its_aligned_landmarks():
    x = sound(41, 3.0)
    delay = int(0.25 * RATE)
    echoed = np.concatenate([x, np.zeros(3 * delay)])
    for k in (1, 2, 3):
        echoed[k * delay : k * delay + len(x)] += 0.7**k * x
    evidence = audio_evidence(features(x), features(echoed), PARAMS)
    assert evidence.verified(PARAMS)
    assert evidence.aligned_share >= PARAMS.min_aligned_share


def test_a_copy_under_strong_echoes_is_judged_where_its_landmarks_place_it():
    # The frames' best offset falls on the last tap; most landmarks agree on the dry sound's.
    x = features(sound(21, 1.5))
    wet = features(echoes(sound(21, 1.5), ((0.25, 0.9), (0.5, 0.8), (0.75, 0.7))))
    frames_offset = aligner(x, wet, PARAMS, MEL_HZ)(1.0, 1.0)[1]
    offset, votes = landmark_offset(x, wet, matching_hashes(x["hashes"], wet["hashes"]), PARAMS)
    assert offset == 0 and votes >= PARAMS.min_share_hashes and abs(frames_offset) > PARAMS.offset_bin_frames
    evidence = audio_evidence(x, wet, PARAMS)
    assert evidence.verified(PARAMS) and evidence.offset_s == 0.0 and evidence.aligned_hashes >= PARAMS.min_share_hashes


def test_the_landmark_offset_is_where_most_matches_agree_within_a_bin():
    rng = np.random.default_rng(5)
    per_mel = round(LOGMEL_HOP_S / (SETTINGS.features.fingerprint.hop / RATE))
    a = {"times": rng.integers(0, 4000, 300).astype(np.int32), "hop_s": 1.0, "logmel_hop_s": float(per_mel)}
    b = {"times": rng.integers(0, 4000, 300).astype(np.int32)}
    # Matches of random times, 20 that place b 40 log-mel frames into a and 5 at 41.
    ia, ib = rng.integers(0, 300, 200), rng.integers(0, 300, 200)
    b["times"][ib[:25]] = a["times"][ia[:25]] - per_mel * np.repeat([40, 41], [20, 5])
    offset, votes = landmark_offset(a, b, (ia, ib), PARAMS)
    shifts = np.rint((a["times"][ia].astype(np.int64) - b["times"][ib]) / per_mel)
    mode = max(range(-200, 200), key=lambda k: np.sum(shifts == k))
    assert offset == mode == 40 and votes == np.sum(np.abs(shifts - mode) <= PARAMS.offset_bin_frames) >= 25
    assert landmark_offset(a, b, (ia[:0], ib[:0]), PARAMS) == (0, 0)


def test_a_short_file_inside_a_longer_one_needs_only_what_both_hold_there_at_a_given_offset():
    # b (10 frames, all active) lies at offset 20 of a, where a holds 4 active frames: the
    # overlap there (4) covers too little of b, but all of what a holds.
    active_a, active_b = np.zeros(50), np.ones(10)
    active_a[:15] = active_a[22:26] = 1
    correlation = np.full(59, 0.3)
    correlation[20 + 9] = 0.9
    overlap = np.rint(np.convolve(active_a, active_b[::-1]))
    counted = [np.concatenate([[0.0], np.cumsum(x)]) for x in (active_a, active_b)]
    scores = AlignmentScores(correlation, overlap, *counted, min_frames=3, min_share=0.6)
    assert scores.best()[:2] == (0.3, -4)  # the first offset whose overlap suffices
    assert scores.best(near=21, within=2) == (0.9, 20, 4)
    assert scores.best(near=45, within=2)[0] == -1.0  # b hangs off a's end there: not inside


def test_nothing_aligns_with_an_empty_or_silent_file_at_any_offset_or_near_one():
    x = normalized_frames(features(sound(3, 1.0))["logmel"], PARAMS)
    empty = (np.zeros((0, x[0].shape[1]), np.float32), np.zeros(0, np.float32))
    silent = (np.zeros_like(x[0]), np.zeros_like(x[1]))
    for a, b in ((x, empty), (empty, x), (x, silent), (silent, x), (empty, empty)):
        scores = alignment_scores(a, b, PARAMS)
        assert scores.best() == scores.best(near=0, within=2) == (-1.0, 0, 0)


def echoes(x: np.ndarray, taps=((0.25, 0.6), (0.5, 0.36))) -> np.ndarray:
    """x through a delay line of several taps (delay s, gain), as sox's `echos` makes it."""
    out = np.concatenate([x, np.zeros(RATE)])
    for delay, gain in taps:
        start = int(delay * RATE)
        out[start : start + len(x)] += gain * x
    return out.astype(np.float32)


def frame_correlation(a: np.ndarray, b: np.ndarray) -> float:
    return best_alignment(normalized_frames(a, PARAMS), normalized_frames(b, PARAMS), PARAMS)[0]


LOGMEL_HOP_S = SETTINGS.features.fingerprint.hop * SETTINGS.features.fingerprint.mel_every / RATE
ECHO_DELAYS = (round(PARAMS.min_echo_s / LOGMEL_HOP_S), round(PARAMS.max_echo_s / LOGMEL_HOP_S))


@pytest.mark.parametrize("seed", [84, 88, 89])
def test_an_echo_fit_turns_the_dry_copy_into_the_echoed_one_and_not_another_sound(seed):
    dry, wet = features(sound(seed))["logmel"], features(echoes(sound(seed)))["logmel"]
    fitted, centre = echo_fit(dry, wet, 0, ECHO_DELAYS, PARAMS.active_rel_db)
    assert frame_correlation(fitted, wet) >= 0.9 > frame_correlation(dry, wet) + 0.15
    # Taps of 0.36 and 0.13 times the power, 0.25 and 0.5 s late: the centre about 0.1 s late.
    assert PARAMS.min_echo_s <= centre * LOGMEL_HOP_S <= 0.2
    # A tail only adds: it cannot take the echoes back out of the wet copy...
    unfitted, _ = echo_fit(wet, dry, 0, ECHO_DELAYS, PARAMS.active_rel_db)
    assert frame_correlation(unfitted, dry) < frame_correlation(dry, wet) + 0.02
    # ...nor make another sound into it.
    other, _ = echo_fit(features(sound(seed + 100))["logmel"], wet, 0, ECHO_DELAYS, PARAMS.active_rel_db)
    assert frame_correlation(other, wet) < 0.3


def test_a_blur_is_not_taken_for_an_echo_and_a_silent_file_fits_none():
    x = features(sound(89))
    level = x["logmel"].astype(np.float32)
    blurred = dict(x, logmel=np.rint(np.minimum(level, np.roll(level, 1, axis=0))).astype(np.uint8))
    peaks = AudioEvidence(0.1, 0.0, 3.0, 0.0, 0.0, 0, 0.0, aligned_peaks=50, peak_significance=20.0)
    assert echo_evidence(x, blurred, PARAMS, MEL_HZ, peaks) == peaks  # a one-frame smear: nothing fitted
    silent = np.full((0, x["logmel"].shape[1]), 255, np.uint8)
    assert echo_fit(silent, x["logmel"], 0, ECHO_DELAYS, PARAMS.active_rel_db)[1] == 0.0
    far_apart = echo_fit(x["logmel"], x["logmel"], 10 * len(x["logmel"]), ECHO_DELAYS, PARAMS.active_rel_db)
    assert far_apart[1] == 0.0 and (far_apart[0] == 255).all()  # no overlap: no tail, silence


# The landmark hashes' routes closed, and 0.75 asked of the frames at any significance of
# peaks: the echoes leave the frames less.
BY_READINGS = replace(
    PARAMS,
    min_aligned_hashes=10**9,
    min_share_hashes=10**9,
    many_aligned_hashes=10**9,
    sure_correlation=2.0,
    min_correlation=0.75,
    weak_correlation=0.75,
    sure_peak_significance=1e9,
)


def test_a_copy_under_echoes_is_verified_after_the_echo_fit_and_the_edge_says_so():
    strict = replace(BY_READINGS, min_triplet_votes=10**9)  # only the peaks' route
    x = sound(88)
    evidence = audio_evidence(features(x), features(echoes(x)), strict)
    assert evidence.verified(strict) and evidence.correlation >= 0.75
    assert PARAMS.min_echo_s <= evidence.echo_s <= 0.2 and evidence.peak_significance >= strict.min_peak_significance
    without_fit = replace(strict, max_echo_gain=0.0)
    assert not audio_evidence(features(x), features(echoes(x)), without_fit).verified(without_fit)


def test_a_pair_only_triplets_proposed_goes_no_further_than_the_reading_they_vote_for():
    x = sound(88)
    a, b = features(x), features(echoes(x))
    assert triplet_vote(a, b, BY_READINGS, BY_READINGS.triplets_only_vote_share) is not None
    proposed_otherwise = audio_evidence(a, b, BY_READINGS)
    assert proposed_otherwise.verified(BY_READINGS) and proposed_otherwise.aligned_peaks > 0
    by_triplets = evidence_at_speeds(a, b, BY_READINGS, MEL_HZ, triplets_only=True)
    assert not by_triplets.verified(BY_READINGS) and by_triplets.aligned_peaks == 0


def test_over_a_long_sound_the_speed_is_found_between_the_steps_tried():
    """Half a step (0.0025) off drifts 50 ms over 20 s, three log-mel frames: the agreeing
    points' line gives the scale, where the steps alone could not come closer than that."""
    x = sound(71, 20.0)
    true_scale = 0.9725  # halfway between the steps 0.970 and 0.975
    a, b = features(x), features(faster(x, 1 / true_scale))
    assert triplet_vote(a, b, PARAMS).time_scale == pytest.approx(true_scale, abs=0.0008)
    assert peak_alignment(a, b, PARAMS).time_scale == pytest.approx(true_scale, abs=0.0008)
    evidence = audio_evidence(a, b, PARAMS)
    assert evidence.verified(PARAMS) and evidence.time_scale == pytest.approx(true_scale, abs=0.0008)


def test_warping_a_logmel_to_its_speed_undoes_the_change():
    x = sound(51, 4.0)
    original = features(x)["logmel"].astype(np.float32)
    changed = features(faster(x, 1.05))["logmel"]
    warped = warp_logmel(changed, 1 / 1.05, 1.05, MEL_HZ).astype(np.float32)
    n = min(len(original), len(warped), len(changed))
    mid = slice(10, 26)  # the bands whose frequencies stay inside the warped range

    def error(candidate: np.ndarray) -> float:
        return float(np.mean(np.abs(original[:n, mid] - candidate[:n, mid])))

    assert error(warped) < 0.6 * error(changed.astype(np.float32))
    assert len(warped) == pytest.approx(len(original), abs=3)


def test_peaks_find_the_reading_of_a_copy_and_stay_near_chance_for_another_sound():
    x = sound(61, 3.0)
    found = peak_alignment(features(x), features(faster(x, 1.1)), PARAMS)
    assert found.freq_scale == pytest.approx(1.1, abs=PARAMS.peak_freq_tolerance)
    assert found.time_scale == pytest.approx(1 / 1.1, abs=PARAMS.peak_freq_tolerance)
    assert found.significance >= PARAMS.many_peak_significance
    assert peak_alignment(features(x), features(faster(sound(161, 3.0), 1.1)), PARAMS) is None


def test_peaks_align_nothing_with_a_file_that_has_no_peaks():
    audio = sound(63, 3.0)
    x, silent = features(audio), features(np.zeros_like(audio))
    assert len(silent["triplet_points"]) == 0
    assert peak_alignment(x, silent, PARAMS) is None
    assert peak_alignment(silent, x, PARAMS) is None


def test_two_copies_edited_apart_meet_through_their_peaks():
    # 6 % slower and 6 % faster: 13 % apart, outside the triplet vote's scales.
    x = sound(62, 4.0)
    slow, fast = features(faster(x, 0.94)), features(faster(x, 1.06))
    evidence = audio_evidence(slow, fast, PARAMS)
    assert evidence.verified(PARAMS)
    assert evidence.aligned_peaks > 0 and evidence.peak_significance >= PARAMS.min_peak_significance
    assert evidence.freq_scale == pytest.approx(1.06 / 0.94, abs=PARAMS.peak_freq_tolerance)
    without_peaks = replace(PARAMS, min_peak_significance=1e9, many_peak_significance=1e9, hint_peak_significance=1e9)
    assert not audio_evidence(slow, fast, without_peaks).verified(without_peaks)


def test_unrelated_sounds_edited_apart_stay_unverified():
    for seed in range(70, 80):
        a, b = faster(sound(seed, 3.0), 0.94), faster(sound(seed + 100, 3.0), 1.06)
        assert not audio_evidence(features(a), features(b), PARAMS).verified(PARAMS)


def engine_sound(seed: int, seconds: float = 3.0) -> np.ndarray:
    return engine(np.random.default_rng(seed), seconds, RATE).astype(np.float32)


def band_passed(x: np.ndarray, low_hz: float, high_hz: float) -> np.ndarray:
    sos = scipy.signal.butter(10, [low_hz, high_hz], btype="bandpass", fs=RATE, output="sos")
    return scipy.signal.sosfiltfilt(sos, x).astype(np.float32)


def test_a_band_passed_copy_is_compared_over_the_bands_it_holds():
    x = engine_sound(81, 4.0)
    original, telephone = features(x), features(band_passed(x, 800, 2500))
    held, *_ = shared_bands(band_levels(original["logmel"], PARAMS), band_levels(telephone["logmel"], PARAMS), PARAMS)
    assert held.sum() >= PARAMS.min_shared_bands
    assert not held[MEL_HZ < 600].any() and not held[MEL_HZ > 3200].any()
    evidence = audio_evidence(original, telephone, PARAMS)
    assert evidence.verified(PARAMS)
    all_bands = replace(PARAMS, band_floor_db=1e9, band_mismatch_db=1e9)
    assert not audio_evidence(original, telephone, all_bands).verified(all_bands)


def test_only_the_ends_of_the_spectrum_are_trimmed():
    # One file's level over the other's: 0 dB in the middle, -25 dB in the bottom 4 bands
    # (a high-pass), +20 dB in one band in the middle (noise there), -30 dB in the top band.
    levels_a = np.zeros(32, np.float32)
    levels_b = levels_a.copy()
    levels_b[:4], levels_b[15], levels_b[31] = -25.0, 20.0, -30.0
    held = np.ones(32, bool)
    limited = band_limited(levels_a, levels_b, held, PARAMS)
    assert not limited[:4].any() and not limited[31]
    assert limited[4:31].all()


def test_bands_are_kept_when_trimming_would_leave_too_few_or_none_agree():
    held = np.ones(32, bool)
    # A steep tilt: only the few bands around the median agree, fewer than min_shared_bands.
    tilt = (-0.5 * PARAMS.band_mismatch_db * np.arange(32)).astype(np.float32)
    assert (band_limited(np.zeros(32, np.float32), tilt, held, PARAMS) == held).all()
    split = np.where(np.arange(32) < 16, -2 * PARAMS.band_mismatch_db, 2 * PARAMS.band_mismatch_db)
    assert (band_limited(np.zeros(32, np.float32), split.astype(np.float32), held, PARAMS) == held).all()


def gently_high_passed(x: np.ndarray, hz: float = 800.0) -> np.ndarray:
    """A 2-pole high-pass, as sox's `highpass`: 12 dB an octave, so the bands below it
    keep some level."""
    sos = scipy.signal.butter(2, hz, btype="highpass", fs=RATE, output="sos")
    return scipy.signal.sosfilt(sos, x).astype(np.float32)


@pytest.mark.parametrize("seed", [84, 86])
def test_a_gently_high_passed_copy_is_compared_without_the_bands_it_attenuated(seed):
    # An engine's energy sits low: high-passed, its bottom bands lose 10-30 dB and stay
    # above band_floor_db. The other copy is 4 % slower, so no landmark hash agrees either.
    x = engine_sound(seed, 4.0)
    slower, high_passed = features(faster(x, 0.96)), features(gently_high_passed(x))
    levels = band_levels(slower["logmel"], PARAMS), band_levels(high_passed["logmel"], PARAMS)
    held, limited = shared_bands(*levels, PARAMS)
    assert held[MEL_HZ < 400].all() and not limited[MEL_HZ < 400].any()
    assert (limited[MEL_HZ > 1000] == held[MEL_HZ > 1000]).all()
    assert audio_evidence(slower, high_passed, PARAMS).verified(PARAMS)
    unlimited = replace(PARAMS, band_mismatch_db=1e9)
    assert len(shared_bands(*levels, unlimited)) == 1
    assert not audio_evidence(slower, high_passed, unlimited).verified(unlimited)


@pytest.mark.parametrize("make", [engine_sound, sound])
@pytest.mark.parametrize("limit", [lambda x: band_passed(x, 800, 2500), gently_high_passed])
def test_unrelated_sounds_band_limited_stay_unverified(make, limit):
    for seed in range(82, 88):
        a, b = make(seed), limit(make(seed + 100))
        assert not audio_evidence(features(a), features(b), PARAMS).verified(PARAMS)


def verified_at_peaks(correlation: float, significance: float, freq_scale: float = 1.0, rival: float = 0.0) -> bool:
    evidence = AudioEvidence(
        correlation,
        0.0,
        1.0,
        0.0,
        0.0,
        0,
        1.0,
        freq_scale=freq_scale,
        aligned_peaks=20,
        peak_significance=significance,
        rival_significance=rival,
    )
    return evidence.verified(PARAMS)


def test_surer_peaks_back_a_weaker_correlation_on_a_straight_line_within_one_edits_reach():
    verified = verified_at_peaks
    low, high = PARAMS.min_peak_significance, PARAMS.many_peak_significance
    halfway = (PARAMS.min_correlation + PARAMS.weak_correlation) / 2
    assert verified(PARAMS.min_correlation, low) and not verified(PARAMS.min_correlation - 0.01, low)
    assert verified(halfway + 0.01, (low + high) / 2) and not verified(halfway - 0.01, (low + high) / 2)
    assert verified(PARAMS.weak_correlation, high + 5) and not verified(PARAMS.weak_correlation - 0.01, high + 5)
    assert not verified(PARAMS.sure_correlation - 0.01, low - 0.1)  # below low, only sure frames will do
    beyond = 1 + PARAMS.max_scale_change + 0.01  # only two copies edited apart match there
    assert verified(PARAMS.min_correlation, (low + high) / 2, beyond)
    assert not verified(halfway + 0.01, (low + high) / 2, beyond)
    assert verified(PARAMS.weak_correlation, high, beyond)
    sure = PARAMS.sure_peak_significance  # chance is out of the question: a weak shape will do
    assert sure > high and PARAMS.sure_peak_correlation < PARAMS.weak_correlation
    assert verified(PARAMS.sure_peak_correlation, sure) and verified(PARAMS.sure_peak_correlation, sure, beyond)
    assert not verified(PARAMS.sure_peak_correlation - 0.01, sure)
    assert not verified(PARAMS.sure_peak_correlation, sure - 0.1)


def test_peaks_that_do_not_stand_out_only_point_to_where_the_frames_must_be_sure():
    low, hint = PARAMS.min_peak_significance, PARAMS.hint_peak_significance
    beyond = 1 + PARAMS.peak_max_scale_change
    assert hint < low - 0.1
    assert verified_at_peaks(PARAMS.sure_correlation, low - 0.1)
    assert verified_at_peaks(PARAMS.sure_correlation, hint, beyond)
    assert not verified_at_peaks(PARAMS.sure_correlation - 0.01, low - 0.1)
    assert not verified_at_peaks(0.99, hint - 0.1)


def test_peaks_nearly_as_strong_at_a_reading_far_from_theirs_only_point_to_it():
    sure, lead = PARAMS.sure_peak_significance + 10, PARAMS.min_reading_lead
    assert verified_at_peaks(PARAMS.weak_correlation, sure, rival=sure - lead)
    assert not verified_at_peaks(0.89, sure, rival=sure - lead + 0.1)
    assert verified_at_peaks(PARAMS.sure_correlation, sure, rival=sure - lead + 0.1)


def test_the_peaks_reading_is_weighed_against_the_best_reading_far_from_it():
    x = sound(64, 3.0)
    a = features(x)
    as_is = AudioEvidence(0.5, 0.0, 1.0, 0.0, 0.0, 0, 0.0)

    def peaks(b: dict):
        # The frames' alignment does not enter the peaks' readings: any will do.
        return peak_evidence(a, b, PARAMS, lambda *reading: (0.5, 0, 100), as_is, PARAMS.min_peak_significance)

    alone = peaks(features(faster(x, 1.1)))
    assert alone.freq_scale == pytest.approx(1.1, abs=PARAMS.peak_freq_tolerance) and alone.rival_significance == 0
    # The same sound twice, as it is and 10 % faster: two readings as strong as each other.
    pause = np.zeros(RATE // 2, np.float32)
    twice = peaks(features(np.concatenate([x, pause, faster(x, 1.1)])))
    assert twice.peak_significance >= PARAMS.many_peak_significance
    assert twice.peak_significance - PARAMS.min_reading_lead < twice.rival_significance <= twice.peak_significance
    assert twice.backing_significance(PARAMS) == PARAMS.hint_peak_significance


def test_a_short_sound_sped_up_is_found_where_its_few_peaks_point():
    x = sweep(np.random.default_rng(2), 1.2, RATE).astype(np.float32)
    original, sped_up = features(x), features(faster(x, 1.08))
    evidence = audio_evidence(original, sped_up, PARAMS)
    assert evidence.verified(PARAMS) and evidence.correlation >= PARAMS.sure_correlation
    assert PARAMS.hint_peak_significance <= evidence.peak_significance < PARAMS.min_peak_significance
    assert evidence.freq_scale == pytest.approx(1.08, abs=PARAMS.peak_freq_tolerance)
    no_hints = replace(PARAMS, hint_peak_significance=PARAMS.min_peak_significance)
    assert not audio_evidence(original, sped_up, no_hints).verified(no_hints)


def test_two_copies_edited_past_the_search_meet_at_the_reading_given_through_their_original():
    # 8 % slower and 8 % faster: 17 % apart, past every scale searched; their edges to the
    # original compose to that reading, and only there do they align.
    x = sound(62, 4.0)
    slow, fast = features(faster(x, 0.92)), features(faster(x, 1.08))
    assert not audio_evidence(slow, fast, PARAMS).verified(PARAMS)
    composed = (0.92 / 1.08, 1.08 / 0.92, 0.0)
    found = evidence_at_speeds(slow, fast, PARAMS, MEL_HZ, given=[(1.0, 1.0, 0.0), composed])
    assert found.verified(PARAMS) and found.given_reading == 1
    assert (found.time_scale, found.freq_scale) == (round(composed[0], 4), round(composed[1], 4))
    assert found.correlation > 0.8 and found.peak_significance >= PARAMS.many_peak_significance
    # At the same reading but another offset the frames align elsewhere: another match.
    elsewhere = evidence_at_speeds(slow, fast, PARAMS, MEL_HZ, given=[(composed[0], composed[1], 0.5)])
    assert not elsewhere.verified(PARAMS) and elsewhere.given_reading == -1
    other = features(faster(sound(162, 4.0), 1.08))
    assert not evidence_at_speeds(slow, other, PARAMS, MEL_HZ, given=[composed]).verified(PARAMS)
