"""How the fingerprint behaves under each everyday transformation, on numpy arrays.

Every case compares a transformed copy with its source and with an unrelated sound of the
same kind; a duplicate must score well above the unrelated pair.
"""

from __future__ import annotations

import numpy as np
import pytest
import soxr

from leakfree.config import Config
from leakfree.decode import decode_mono
from leakfree.demo import MP3_128K, VORBIS_Q2, add_noise, beeps, bell, engine, footsteps, resample, write_audio
from leakfree.fingerprint import fingerprint, mel_basis, set_similarity

RATE = 44100
SETTINGS = Config.from_toml().features
PARAMS = SETTINGS.fingerprint
MEL = mel_basis(PARAMS, SETTINGS.analysis_rate)


def source(seconds: float, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return 0.5 * bell(rng, seconds, RATE) + 0.5 * beeps(rng, seconds, RATE) + 0.2 * engine(rng, seconds, RATE)


def analyse(x: np.ndarray, tmp_path, name: str = "x.wav", rate: int = RATE, **codec):
    path = tmp_path / name
    write_audio(path, x, rate, **codec)
    decoded = decode_mono(str(path), rate=SETTINGS.analysis_rate, max_seconds=SETTINGS.max_seconds)
    return fingerprint(decoded.samples, SETTINGS.analysis_rate, PARAMS, MEL)


def similarity(a, b) -> tuple[float, float]:
    """Best (Jaccard, containment) over the families both files have."""
    scores = [set_similarity(a.hashes, b.hashes)]
    if len(a.dense_hashes) and len(b.dense_hashes):
        scores.append(set_similarity(a.dense_hashes, b.dense_hashes))
    return max(s[0] for s in scores), max(s[1] for s in scores)


def fade(x: np.ndarray, seconds: float) -> np.ndarray:
    n = min(int(seconds * RATE), len(x) // 5)
    ramp = np.linspace(0, 1, n)
    out = x.copy()
    out[:n] *= ramp
    out[-n:] *= ramp[::-1]
    return out


TRANSFORMS = {
    "mp3_128k": (lambda x: x, "mp3", MP3_128K),
    "vorbis_q2": (lambda x: x, "ogg", VORBIS_Q2),
    "gain_minus_6db": (lambda x: x * 0.5, "wav", {}),
    "fades": (lambda x: fade(x, 0.8), "wav", {}),
    "leading_silence": (lambda x: np.concatenate([np.zeros(int(0.737 * RATE)), x]), "wav", {}),
    "noise_20db": (lambda x: add_noise(x, 20, np.random.default_rng(5)), "wav", {}),
    "trim_head_20pct": (lambda x: x[int(len(x) * 0.2) :], "wav", {}),
}


@pytest.mark.parametrize("seconds", [0.15, 1.0, 5.0])
@pytest.mark.parametrize("name", sorted(TRANSFORMS))
def test_transformed_copy_stays_similar(tmp_path, name, seconds):
    change, ext, codec = TRANSFORMS[name]
    original = analyse(source(seconds, 1), tmp_path, "a.wav")
    copy = analyse(change(source(seconds, 1)), tmp_path, f"b.{ext}", **codec)
    unrelated = analyse(source(seconds, 2), tmp_path, "c.wav")
    jaccard, containment = similarity(original, copy)
    _, unrelated_containment = similarity(original, unrelated)
    assert containment >= unrelated_containment + 0.1, (containment, unrelated_containment)
    if seconds >= 1.0:
        # A 0.15 s tonal sound has only a handful of peaks; a fade over a fifth of it
        # moves most of them, which is why the verifier also aligns log-mel frames.
        assert containment >= 0.35, (jaccard, containment)
        assert containment >= unrelated_containment + 0.25, (containment, unrelated_containment)


def test_resampled_and_mono_copies_stay_similar(tmp_path):
    x = source(3.0, 3)
    original = analyse(np.stack([x, np.roll(x, 300) * 0.7], axis=1), tmp_path, "stereo.wav")
    mono = analyse(x * 0.5 + np.roll(x, 300) * 0.35, tmp_path, "mono.wav")
    low_rate = analyse(resample(x, RATE, 22050), tmp_path, "r22.wav", rate=22050)
    assert similarity(original, mono)[1] >= 0.6
    assert similarity(analyse(x, tmp_path, "src.wav"), low_rate)[1] >= 0.8


@pytest.mark.parametrize("share", [0.3, 0.6])
def test_an_excerpt_is_contained_in_its_source(tmp_path, share):
    x = source(12.0, 4)
    start = int(len(x) * 0.25)
    long = analyse(x, tmp_path, "long.wav")
    excerpt = analyse(x[start : start + int(len(x) * share)], tmp_path, "excerpt.wav")
    jaccard, containment = similarity(long, excerpt)
    assert containment >= 0.8
    assert jaccard <= share + 0.1  # why containment, not Jaccard, must find excerpts


def test_sound_inside_a_concatenation_is_contained(tmp_path):
    a, b = source(1.2, 6), source(2.0, 7)
    joined = np.concatenate([a, np.zeros(RATE // 2), b])
    assert similarity(analyse(a, tmp_path, "a.wav"), analyse(joined, tmp_path, "ab.wav"))[1] >= 0.8


def test_unrelated_sounds_share_almost_nothing(tmp_path):
    prints = [analyse(source(3.0, seed), tmp_path, f"s{seed}.wav") for seed in range(10, 16)]
    worst = max(similarity(a, b)[1] for i, a in enumerate(prints) for b in prints[i + 1 :])
    assert worst < 0.15


def test_hashes_do_not_depend_on_where_the_sound_starts(tmp_path):
    x = source(2.0, 8)
    shifts = [analyse(np.concatenate([np.zeros(k), x]), tmp_path, f"k{k}.wav") for k in (0, 17, 333, 4001)]
    assert min(similarity(shifts[0], s)[1] for s in shifts[1:]) >= 0.8


@pytest.mark.parametrize(
    ("signal", "flag"),
    [
        (np.zeros(RATE), "silent"),
        (np.full(RATE, 1e-5), "silent"),
        (np.full(RATE, 0.5), "constant"),
        (np.concatenate([np.zeros(RATE), np.hanning(64) * 0.5, np.zeros(RATE)]), "near_empty"),
    ],
)
def test_empty_audio_is_flagged_and_gets_no_hashes(tmp_path, signal, flag):
    fp = analyse(signal, tmp_path)
    assert fp.flag == flag
    assert len(fp.hashes) == 0 and len(fp.dense_hashes) == 0


def test_a_sound_at_either_end_of_a_long_silent_file_is_fingerprinted(tmp_path):
    beep = source(0.2, 4)
    for name, x in (
        ("first.wav", np.concatenate([beep, np.zeros(5 * RATE)])),
        ("last.wav", np.concatenate([np.zeros(5 * RATE), beep])),
    ):
        fp = analyse(x, tmp_path, name)
        assert fp.flag is None and len(fp.dense_hashes) > 0, name


def test_short_sounds_get_the_dense_family_and_long_ones_do_not(tmp_path):
    short = analyse(source(0.3, 9), tmp_path, "short.wav")
    long = analyse(source(6.0, 9), tmp_path, "long.wav")
    assert short.flag is None and len(short.dense_hashes) > len(short.hashes)
    assert len(long.dense_hashes) == 0 and len(long.hashes) > 100


def test_a_noisy_copy_of_a_steady_tone_keeps_its_strong_landmarks(tmp_path):
    # A ringing tone (two steady partials, as a phone signal): noise at 20 dB SNR scatters
    # peaks over the whole spectrogram, so the dense family's Jaccard collapses; only the
    # strong family, the peaks near the loudest, still says "the same sound".
    t = np.arange(int(1.2 * RATE)) / RATE
    tone = 0.4 * (np.sin(2 * np.pi * 440 * t) + np.sin(2 * np.pi * 480 * t)) * (t % 0.6 < 0.4)
    clean = analyse(tone, tmp_path, "tone.wav")
    noisy = analyse(add_noise(tone, 20, np.random.default_rng(3)), tmp_path, "noisy.wav")
    other = analyse(0.4 * np.sin(2 * np.pi * 620 * t) * (t % 0.3 < 0.2), tmp_path, "other.wav")
    assert set_similarity(clean.strong_hashes, noisy.strong_hashes)[0] > 0.5
    assert set_similarity(clean.dense_hashes, noisy.dense_hashes)[0] < 0.2
    assert set_similarity(clean.strong_hashes, other.strong_hashes)[0] < 0.1
    assert len(analyse(source(6.0, 9), tmp_path, "long.wav").strong_hashes) == 0  # short sounds only


def test_logmel_matrix_for_the_verifier(tmp_path):
    fp = analyse(source(2.0, 1), tmp_path)
    assert fp.logmel.dtype == np.uint8 and fp.logmel.shape[1] == PARAMS.mel_bands
    frames_per_second = SETTINGS.analysis_rate / (PARAMS.hop * PARAMS.mel_every)
    assert fp.logmel.shape[0] == pytest.approx(2.0 * frames_per_second, abs=5)
    assert fp.logmel.min() == 0  # the loudest cell is the 0 dB reference


def mixed_sound(rng: np.random.Generator) -> np.ndarray:
    """4 s of a bell over footsteps, at the analysis rate."""
    rate = SETTINGS.analysis_rate
    return (0.5 * bell(rng, 4.0, rate) + 0.4 * footsteps(rng, 4.0, rate)).astype(np.float32)


@pytest.mark.parametrize("factor", [0.94, 1.03, 1.06])
def test_triplets_survive_a_speed_change_where_landmarks_do_not(factor):
    rng = np.random.default_rng(61)
    x = mixed_sound(rng)
    y = soxr.resample(x, SETTINGS.analysis_rate * factor, SETTINGS.analysis_rate).astype(np.float32)  # speed
    a, b = (fingerprint(s, SETTINGS.analysis_rate, PARAMS, MEL) for s in (x, y))
    triplets = set_similarity(a.triplet_hashes, b.triplet_hashes)[0]
    assert triplets > 0.1
    assert triplets > 3 * set_similarity(a.hashes, b.hashes)[0]


def test_unrelated_sounds_share_few_triplets():
    # Two bells of one synth do share triplets (their partials keep the same ratios): the
    # verifier tells them apart (test_verify), not the hashes.
    rng = np.random.default_rng(62)
    x = mixed_sound(rng)
    y = engine(rng, 4.0, SETTINGS.analysis_rate).astype(np.float32)
    a, b = (fingerprint(s, SETTINGS.analysis_rate, PARAMS, MEL) for s in (x, y))
    assert set_similarity(a.triplet_hashes, b.triplet_hashes)[0] < 0.03


def test_triplet_points_hold_the_anchor_frame_and_bin():
    fp = fingerprint(mixed_sound(np.random.default_rng(63)), SETTINGS.analysis_rate, PARAMS, MEL)
    frames, half_bins = fp.triplet_points >> 10, fp.triplet_points & 1023
    assert len(fp.triplet_hashes) == len(fp.triplet_points) > 0
    assert frames.min() >= 0 and frames.max() < fp.frames
    assert half_bins.min() >= 2 * 3 and half_bins.max() <= PARAMS.n_fft + 1
