"""Stress corpora: real recordings of Debian data packages that neither ../shared/corpus nor
the tests use, with planted edits harder than the shared corpus's.

- `stress`: three game-data packages (warmux-data, supertux-data, freedroidrpg-data) with
  speed, pitch and tempo changes, reverb and echo, band limits, low bitrates, downsampling,
  heavy noise, compression, a background mix, short excerpts, compilations, chains of two.
  Detection was developed on it.
- `holdout`: seventeen other packages (game effects, keyboard clicks, speech prompts in two
  languages) with other edits and strengths (some beyond the ranges leakfree searches),
  other effects (chorus, flanger, phaser, overdrive, wet-only reverb), codecs (GSM, AAC,
  Opus at 12 kbit/s, 8-bit PCM) and noises (pink, brown). Only measured, never tuned on:
  it stands for the libraries leakfree has not seen.
- `validation`: nine more packages (mostly short game effects) with the issue's families at
  other strengths. A change to the verifier is judged on it and on `stress` before the
  holdout corpus measures it, so that the holdout stays unseen.
- `beyond`: eleven more packages (arcade effects and music, speech icons) with edits past
  the issue's ranges (two semitones, 10 % speed and tempo) and of other kinds (a strong EQ,
  8-bit mu-law telephony, silence stripped and normalised, long fades). Only measured.

Each is written in the shared corpus's format (audio/, truth.csv, metadata.csv) to a cache
outside git ($LEAKFREE_<NAME>_DIR, default ~/.cache/leakfree/<name>),
once: a second call finds it there. Each variant is made with Debian's sox or ffmpeg from its source; `transform` names
the family and strength (speed_1.03, noise_snr5, chain_reverb_room+noise_snr10, ...).

The packages hold natural duplicates of their own (one sound shipped under two names, a
sample reused inside a longer file): an independent check (normalised waveform
cross-correlation, no spectrogram, no hashes) finds them, and truth puts them in one group
so that finding them counts as right.
"""

from __future__ import annotations

import csv
import json
import os
import random
import re
import shutil
import subprocess
import sys
import tempfile
import zlib
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr

CACHE = Path.home() / ".cache" / "leakfree"
AUDIO_EXTENSIONS = {".wav", ".ogg", ".flac"}
MUSIC_SECONDS = 30.0  # long tracks are cut, as in ../shared/corpus
PER_FAMILY = 20  # sources per transformation: one miss moves a row's recall by 0.05
MIN_SOURCE_S = 0.5  # shorter clicks are the short-sound rule's business, not this corpus's
BACKGROUNDS = 20
# Independent same-audio check for natural duplicates: pre-emphasised waveform NCC at the
# best lag. Strict, because the best of thousands of lags is a maximum of chances: short
# tonal sounds (a coin, a step) reach 0.6-0.82 against unrelated ones here; a reuse
# scores 0.84-1.0. A chance pair in truth would cost recall, a missed one shows up as a
# predicted pair truth does not know, checked again by the bench.
SAME_AUDIO_NCC = 0.83
CHECK_RATE = 4000
# Raised whenever a change makes a corpus built before it wrong; an older cache is rebuilt.
# 2: groups keep their extension (grow.ogg and grow.wav are two sounds), excerpts hold sound;
# 3: no background holds an original's audio.
VERSION = "3"


def run(cmd: list[str]) -> None:
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)}: {done.stderr.strip()[-400:]}")


# sox dithers with fresh random numbers on every call unless -R seeds them: without it, two
# builds of one corpus differ, and a change's effect is blurred by the rebuild's.
SOX = ("sox", "-R", "-q")


def sox(effects: str) -> Callable[[Path, Path], None]:
    return lambda src, dst: run([*SOX, str(src), str(dst), *effects.split()])


def sox_to(rate: int) -> Callable[[Path, Path], None]:
    return sox_out("-r", str(rate), "-c", "1")


def sox_out(*options: str) -> Callable[[Path, Path], None]:
    """The audio as it is, written with sox's output `options` (rate, bits, encoding)."""
    return lambda src, dst: run([*SOX, str(src), *options, str(dst)])


def ffmpeg_codec(*args: str) -> Callable[[Path, Path], None]:
    return lambda src, dst: run(["ffmpeg", "-v", "error", "-y", "-i", str(src), *args, str(dst)])


def mp3(kbps: int, rate: int | None = None) -> Callable[[Path, Path], None]:
    return ffmpeg_codec("-c:a", "libmp3lame", "-b:a", f"{kbps}k", *(("-ar", str(rate)) if rate else ()))


def opus(kbps: int) -> Callable[[Path, Path], None]:
    return ffmpeg_codec("-c:a", "libopus", "-b:a", f"{kbps}k")


def read(path: Path) -> tuple[np.ndarray, int]:
    x, rate = sf.read(str(path), dtype="float32", always_2d=True)
    return x, rate


def write_wav(path: Path, x: np.ndarray, rate: int) -> None:
    peak = float(np.abs(x).max()) if x.size else 0.0
    sf.write(str(path), x / peak * 0.98 if peak > 0.98 else x, rate, subtype="PCM_16")


def add_noise(snr_db: float) -> Callable[[Path, Path], None]:
    """White noise at `snr_db` below the signal's RMS over the whole file; each file gets
    noise of its own (one shared noise would be a real common sound between variants)."""

    def apply(src: Path, dst: Path) -> None:
        x, rate = read(src)
        rms = float(np.sqrt(np.mean(x.astype(np.float64) ** 2)))
        seed = zlib.crc32(dst.name.encode())
        noise = np.random.default_rng(seed).standard_normal(x.shape).astype(np.float32)
        write_wav(dst, x + noise * rms * 10 ** (-snr_db / 20), rate)

    return apply


def mix_background(backgrounds: list[Path], below_db: float) -> Callable[[Path, Path], None]:
    """An unrelated recording (looped to length) mixed `below_db` under the signal's RMS:
    one of `backgrounds` (music kept out of the corpus), a different one for each file."""
    turn = iter(range(1 << 30))

    def apply(src: Path, dst: Path) -> None:
        x, rate = read(src)
        bg, bg_rate = read(backgrounds[next(turn) % len(backgrounds)])
        bg = soxr.resample(bg.mean(axis=1), bg_rate, rate)
        bg = np.resize(bg, len(x))[:, None]
        gain = np.sqrt(np.mean(x**2) / max(float(np.mean(bg**2)), 1e-12)) * 10 ** (-below_db / 20)
        write_wav(dst, x + bg * gain, rate)

    return apply


def excerpt(share: float, seed: int) -> Callable[[Path, Path], None]:
    """`share` of the source from a random start, among the starts whose excerpt holds
    sound (an RMS at least half the whole file's): an excerpt of a fading tail or of the
    silence after a sound is no copy of anything."""

    def apply(src: Path, dst: Path) -> None:
        x, rate = read(src)
        n = max(1, int(len(x) * share))
        energy = np.concatenate([[0.0], np.cumsum((x.astype(np.float64) ** 2).sum(axis=1))])
        starts = np.arange(len(x) - n + 1)
        loud = starts[(energy[starts + n] - energy[starts]) / n >= 0.25 * energy[-1] / len(x)]
        start = int(random.Random(seed).choice(loud))
        write_wav(dst, x[start : start + n], rate)

    return apply


@dataclass(frozen=True)
class Family:
    name: str  # transform in truth.csv: family and strength
    steps: tuple[Callable[[Path, Path], None], ...]
    suffix: str = ".wav"
    min_source_s: float = MIN_SOURCE_S


def stress_families(backgrounds: list[Path]) -> list[Family]:
    vorbis_lowest = ffmpeg_codec("-c:a", "libvorbis", "-q:a", "-1")
    compressor = sox("compand 0.005,0.1 -70,-70,-50,-20,-20,-10,0,-6 -3 -60 0.02")
    out: list[Family] = []
    out += [Family(f"speed_{f:.2f}", (sox(f"speed {f}"),)) for f in (0.94, 0.97, 0.99, 1.01, 1.03, 1.06)]
    out += [Family(f"pitch_{c:+d}c", (sox(f"pitch {c}"),)) for c in (-100, 100)]
    out += [Family(f"tempo_{f:.2f}", (sox(f"tempo {f}"),)) for f in (0.95, 1.05)]
    out += [
        Family("reverb_room", (sox("reverb 40 50 20 pad 0 0.3"),)),
        Family("reverb_hall", (sox("reverb 90 30 100 100 40 pad 0 1.5"),)),
        Family("echo_250ms", (sox("pad 0 0.6 echo 0.8 0.8 250 0.5"),)),
        Family("echo_multi", (sox("pad 0 1 echos 0.8 0.7 100 0.4 230 0.3 390 0.2"),)),
        Family("telephone", (sox("sinc 300-3400"),)),
        Family("lowpass_3k", (sox("sinc -3000"),)),
        Family("highpass_500", (sox("sinc 500"),)),
        Family("mp3_32k", (mp3(32),), ".mp3"),
        Family("mp3_64k", (mp3(64),), ".mp3"),
        Family("vorbis_lowest", (vorbis_lowest,), ".ogg"),
        Family("opus_16k", (opus(16),), ".opus"),
        Family("opus_24k", (opus(24),), ".opus"),
        Family("mono_16k", (sox_to(16000),)),
        Family("mono_11k", (sox_to(11025),)),
        Family("noise_snr10", (add_noise(10),)),
        Family("noise_snr5", (add_noise(5),)),
        Family("compressor", (compressor,)),
        Family("limiter", (ffmpeg_codec("-af", "volume=12dB,alimiter=limit=0.5:attack=2:release=30"),)),
        Family("background_m10", (mix_background(backgrounds, 10),)),
        Family("excerpt_25", (excerpt(0.25, 3),), min_source_s=2.0),
    ]
    out += [
        Family("chain_speed_0.97+mp3_64k", (sox("speed 0.97"), mp3(64)), ".mp3"),
        Family("chain_reverb_room+noise_snr10", (sox("reverb 40 50 20 pad 0 0.3"), add_noise(10))),
        Family("chain_lowpass_3k+speed_1.03", (sox("sinc -3000"), sox("speed 1.03"))),
        Family("chain_pitch_+100c+opus_24k", (sox("pitch 100"), opus(24)), ".opus"),
        Family("chain_echo_250ms+mono_16k", (sox("pad 0 0.6 echo 0.8 0.8 250 0.5"), sox_to(16000))),
        Family("chain_tempo_0.95+compressor", (sox("tempo 0.95"), compressor)),
    ]
    return out


def colored_noise(snr_db: float, slope: float) -> Callable[[Path, Path], None]:
    """Noise whose power falls by `slope` per octave in 3 dB steps (1: pink, 2: brown) at
    `snr_db` below the signal's RMS; each file gets noise of its own."""

    def apply(src: Path, dst: Path) -> None:
        x, rate = read(src)
        spectrum = np.fft.rfft(np.random.default_rng(zlib.crc32(dst.name.encode())).standard_normal(len(x)))
        spectrum /= np.maximum(np.arange(len(spectrum)), 1) ** (slope / 2)
        noise = np.fft.irfft(spectrum, len(x))
        noise *= np.sqrt(np.mean(x.astype(np.float64) ** 2) / max(float(np.mean(noise**2)), 1e-20))
        write_wav(dst, x + (noise * 10 ** (-snr_db / 20))[:, None].astype(np.float32), rate)

    return apply


def fades(share: float) -> Callable[[Path, Path], None]:
    """Linear fade-in over the first `share` of the sound and fade-out over the last."""

    def apply(src: Path, dst: Path) -> None:
        x, rate = read(src)
        n = int(len(x) * share)
        ramp = np.ones(len(x), np.float32)
        ramp[:n] = np.linspace(0, 1, n)
        ramp[len(x) - n :] = np.linspace(1, 0, n)
        write_wav(dst, x * ramp[:, None], rate)

    return apply


def laundered(suffix: str, *codec: str) -> Callable[[Path, Path], None]:
    """Encoded with a codec leakfree cannot read (AAC in MP4), decoded back to WAV: a copy
    that went through someone's export chain."""

    def apply(src: Path, dst: Path) -> None:
        with tempfile.TemporaryDirectory() as tmp:
            encoded = Path(tmp) / f"encoded{suffix}"
            run(["ffmpeg", "-v", "error", "-y", "-i", str(src), *codec, str(encoded)])
            run(["ffmpeg", "-v", "error", "-y", "-i", str(encoded), str(dst)])

    return apply


def in_scene(backgrounds: list[Path], below_db: float, seconds: float) -> Callable[[Path, Path], None]:
    """The sound at a random moment of a `seconds` long stretch of an unrelated recording,
    which plays `below_db` under it throughout: a sound inside a longer, busier file."""
    turn = iter(range(1 << 30))

    def apply(src: Path, dst: Path) -> None:
        x, rate = read(src)
        x = x.mean(axis=1)
        k = next(turn)
        bg, bg_rate = read(backgrounds[k % len(backgrounds)])
        bg = np.resize(soxr.resample(bg.mean(axis=1), bg_rate, rate), max(int(seconds * rate), len(x) + rate))
        bg *= np.sqrt(np.mean(x**2) / max(float(np.mean(bg**2)), 1e-12)) * 10 ** (-below_db / 20)
        start = random.Random(k).randrange(0, len(bg) - len(x))
        bg[start : start + len(x)] += x
        write_wav(dst, bg[:, None], rate)

    return apply


def holdout_families(backgrounds: list[Path]) -> list[Family]:
    """Edits the detector was not tuned on: other strengths (some beyond the issue's
    ranges, to show where detection ends), other effects and codecs, other noises."""
    reverb_large = sox("pad 0 1.5 reverb 70 40 100 100 20")
    echo_500ms = sox("pad 0 1.2 echos 0.8 0.7 500 0.45 1000 0.25")
    chorus = sox("chorus 0.7 0.9 55 0.4 0.25 2 -t")
    out = [Family(f"speed_{f:.3f}", (sox(f"speed {f}"),)) for f in (0.92, 0.96, 1.02, 1.045, 1.08)]
    out += [Family(f"pitch_{c:+d}c", (sox(f"pitch {c}"),)) for c in (-150, -60, 60, 150)]
    out += [Family(f"tempo_{f:.2f}", (sox(f"tempo {f}"),)) for f in (0.93, 1.07)]
    out += [
        Family("reverb_large", (reverb_large,)),
        Family("reverb_wet_only", (sox("pad 0 1 reverb -w 50 50 80"),)),
        Family("echo_500ms", (echo_500ms,)),
        Family("chorus", (chorus,)),
        Family("flanger", (sox("flanger"),)),
        Family("phaser", (sox("phaser 0.8 0.74 3 0.4 0.5 -t"),)),
        Family("bandpass_800-2500", (sox("sinc 800-2500"),)),
        Family("bass_+12", (sox("bass +12"),)),
        Family("treble_-15", (sox("treble -15"),)),
        Family("overdrive", (sox("overdrive 20"),)),
        Family("pcm_8bit", (sox_out("-b", "8"),)),
        Family("gsm_8k", (sox_out("-r", "8000", "-c", "1", "-e", "gsm-full-rate"),)),
        Family("aac_48k", (laundered(".m4a", "-c:a", "aac", "-b:a", "48k"),)),
        Family("mp3_48k_22k", (mp3(48, 22050),), ".mp3"),
        Family("opus_12k", (opus(12),), ".opus"),
        Family("vorbis_q0", (ffmpeg_codec("-c:a", "libvorbis", "-q:a", "0"),), ".ogg"),
        Family("pink_snr10", (colored_noise(10, 1),)),
        Family("brown_snr5", (colored_noise(5, 2),)),
        Family("gain_-24", (sox("gain -24"),)),
        Family("fades_30", (fades(0.3),)),
        Family("background_m5", (mix_background(backgrounds, 5),)),
        Family("in_scene_m6", (in_scene(backgrounds, 6, 20.0),)),
        Family("excerpt_20", (excerpt(0.2, 7),), min_source_s=2.0),
        Family("excerpt_30", (excerpt(0.3, 8),), min_source_s=2.0),
    ]
    out += [
        Family("chain_speed_1.04+reverb_large", (sox("speed 1.04"), reverb_large)),
        Family("chain_pitch_-100c+pink_snr10", (sox("pitch -100"), colored_noise(10, 1))),
        Family("chain_tempo_1.05+mp3_48k_22k", (sox("tempo 1.05"), mp3(48, 22050)), ".mp3"),
        Family("chain_bandpass_800-2500+echo_500ms", (sox("sinc 800-2500"), echo_500ms)),
        Family("chain_chorus+opus_16k", (chorus, opus(16)), ".opus"),
        Family("chain_speed_0.96+lowpass_2k", (sox("speed 0.96"), sox("sinc -2000"))),
    ]
    return out


def validation_families(backgrounds: list[Path]) -> list[Family]:
    """The issue's families at strengths and settings neither other corpus has, to judge a
    change to the verifier on before the holdout corpus measures it."""
    limiter = ffmpeg_codec("-af", "volume=18dB,alimiter=limit=0.3:attack=1:release=50")
    reverb_mid = sox("reverb 60 40 60 100 30 pad 0 1")
    echo_slap = sox("pad 0 0.8 echos 0.8 0.75 120 0.5 300 0.35")
    out = [Family(f"speed_{f:.3f}", (sox(f"speed {f}"),)) for f in (0.95, 0.985, 1.015, 1.05)]
    out += [Family(f"pitch_{c:+d}c", (sox(f"pitch {c}"),)) for c in (-80, 80)]
    out += [Family(f"tempo_{f:.2f}", (sox(f"tempo {f}"),)) for f in (0.96, 1.04)]
    out += [
        Family("reverb_mid", (reverb_mid,)),
        Family("echo_slap", (echo_slap,)),
        Family("telephone_narrow", (sox("sinc 400-3000"),)),
        Family("lowpass_2500", (sox("sinc -2500"),)),
        Family("highpass_800", (sox("sinc 800"),)),
        Family("mp3_40k", (mp3(40),), ".mp3"),
        Family("opus_20k", (opus(20),), ".opus"),
        Family("mono_12k", (sox_to(12000),)),
        Family("noise_snr7", (add_noise(7),)),
        Family("limiter_hard", (limiter,)),
        Family("background_m8", (mix_background(backgrounds, 8),)),
        Family("excerpt_25", (excerpt(0.25, 5),), min_source_s=2.0),
    ]
    out += [
        Family("chain_pitch_+80c+reverb_mid", (sox("pitch 80"), reverb_mid)),
        Family("chain_speed_1.05+noise_snr10", (sox("speed 1.05"), add_noise(10))),
        Family("chain_echo_slap+mp3_40k", (echo_slap, mp3(40)), ".mp3"),
        Family("chain_tempo_0.96+highpass_800", (sox("tempo 0.96"), sox("sinc 800"))),
    ]
    return out


def beyond_families(backgrounds: list[Path]) -> list[Family]:
    """Edits past the issue's ranges and of other kinds, as a private corpus may hold them:
    two semitones, 10 % speed and tempo, a strong EQ, 8-bit mu-law telephony, silence
    stripped and normalised (what a library's ingest does), long fades, and chains."""
    mulaw_8k = sox_out("-r", "8000", "-c", "1", "-e", "mu-law", "-b", "8")
    out = [Family(f"speed_{f:.2f}", (sox(f"speed {f}"),)) for f in (0.90, 1.10)]
    out += [Family(f"pitch_{c:+d}c", (sox(f"pitch {c}"),)) for c in (-200, 200)]
    out += [Family(f"tempo_{f:.2f}", (sox(f"tempo {f}"),)) for f in (0.90, 1.10)]
    out += [
        Family("eq_treble+12_bass-12", (sox("treble 12 bass -12 gain -n -1"),)),
        Family("mulaw_8k", (mulaw_8k,)),
        Family("stripped_normalised", (sox("silence 1 0.01 1% reverse silence 1 0.01 1% reverse norm -1"),)),
        Family("fades", (fades(0.4),)),
        Family("chain_speed_0.95+reverb", (sox("speed 0.95"), sox("reverb 50 50 50 pad 0 0.5"))),
        Family("chain_pitch_-150c+mulaw_8k", (sox("pitch -150"), mulaw_8k)),
    ]
    return out


@dataclass(frozen=True)
class Spec:
    """One stress corpus: which packages (each with the most originals taken from it, None:
    all), which edits, and how compilations are made."""

    name: str
    packages: dict[str, int | None]
    families: Callable[[list[Path]], list[Family]]
    seed: int
    compilation_parts: int
    compilation_gap_s: float
    about: str

    @property
    def home(self) -> Path:
        """$LEAKFREE_<NAME>_DIR, default ~/.cache/leakfree/<name>: packages, checks, corpus."""
        return Path(os.environ.get(f"LEAKFREE_{self.name.upper()}_DIR", CACHE / self.name))


STRESS = Spec(
    "stress",
    {"warmux-data": None, "supertux-data": None, "freedroidrpg-data": None},
    stress_families,
    seed=5,
    compilation_parts=3,
    compilation_gap_s=0.4,
    about="warmux-data, supertux-data and freedroidrpg-data with the edits the detector was developed on",
)
# Kept for measuring, not tuning: other packages (game effects, keyboard clicks, speech
# prompts in two languages, which are one voice and one kind of sound), other edits.
HOLDOUT = Spec(
    "holdout",
    {
        "hedgewars-data": 120,
        "boswars-data": 60,
        "btanks-data": 50,
        "lbreakout2-data": None,
        "tuxpaint-data": None,
        "brainparty-data": None,
        "atanks-data": None,
        "tuxtype-data": None,
        "tuxmath-data": None,
        "frozen-bubble-data": None,
        "amoebax-data": None,
        "alienblaster-data": None,
        "chromium-bsu-data": None,
        "bomberclone-data": None,
        "asterisk-core-sounds-en-wav": 60,
        "asterisk-core-sounds-es-wav": 40,
        "bucklespring-data": 40,
    },
    holdout_families,
    seed=11,
    compilation_parts=4,
    compilation_gap_s=0.15,
    about="17 other packages (game effects, keyboard clicks, speech prompts) with edits the detector was not tuned on",
)
# For judging a change to the verifier: other packages, the families at other
# strengths. A change is kept on what it does here and on the stress corpus, and only then
# measured on the holdout corpus.
VALIDATION = Spec(
    "validation",
    {
        "scorched3d-data": 80,
        "minetest-data": 80,
        "mirrormagic-data": None,
        "marsshooter-data": None,
        "freedink-data": None,
        "holotz-castle-data": None,
        "lordsawar-data": None,
        "xmoto-data": None,
        "funnyboat": None,
    },
    validation_families,
    seed=17,
    compilation_parts=3,
    compilation_gap_s=0.25,
    about="9 other packages with the issue's edits at other strengths, for judging a change before the holdout",
)
# Measured only: edits past the ranges, on eleven more packages.
BEYOND = Spec(
    "beyond",
    {
        "torus-trooper-data": None,
        "tumiki-fighters-data": None,
        "titanion-data": None,
        "gunroar-data": None,
        "noiz2sa-data": None,
        "powermanga-data": None,
        "solarwolf": None,
        "pangzero": None,
        "xblast-tnt-sounds": None,
        "sound-icons": None,
        "pokerth-data": None,
    },
    beyond_families,
    seed=23,
    compilation_parts=2,
    compilation_gap_s=0.3,
    about="11 other packages with edits past the issue's ranges (2 semitones, 10 % speed, mu-law, ingest clean-up)",
)
SPECS = (STRESS, HOLDOUT, VALIDATION, BEYOND)
CORPUS = STRESS.home / "corpus"


def fetch_packages(spec: Spec) -> Path:
    """Each package's files under <home>/pkgs/<package>, downloaded and unpacked once."""
    debs, root = spec.home / "debs", spec.home / "pkgs"
    if (root / ".unpacked-by-package").exists():
        return root
    debs.mkdir(parents=True, exist_ok=True)
    for package in spec.packages:
        if not list(debs.glob(f"{package}_*.deb")):
            subprocess.run(["apt-get", "download", package], cwd=debs, check=True)
        deb = next(iter(debs.glob(f"{package}_*.deb")))
        (root / package).mkdir(parents=True, exist_ok=True)
        run(["dpkg-deb", "-x", str(deb), str(root / package)])
    (root / ".unpacked-by-package").touch()
    return root


def recordings(spec: Spec, pkgs: Path) -> tuple[dict[str, list[Path]], list[Path]]:
    """Package -> its recordings (at most its limit, drawn at random), and apart from them
    BACKGROUNDS long tracks (every fourth) that stay out of the corpus as backgrounds."""
    files = {
        package: sorted(p for p in (pkgs / package).rglob("*") if p.suffix.lower() in AUDIO_EXTENSIONS and readable(p))
        for package in spec.packages
    }
    # In the order of the paths inside the packages, which decides the backgrounds.
    every = sorted((f for fs in files.values() for f in fs), key=lambda f: f.relative_to(pkgs / package_of(f, pkgs)))
    long = [p for p in every if sf.info(str(p)).duration > MUSIC_SECONDS * 1.5]
    backgrounds = long[::4][:BACKGROUNDS]
    rng = random.Random(spec.seed)
    chosen = {}
    for package, limit in spec.packages.items():
        kept = [f for f in files[package] if f not in backgrounds]
        chosen[package] = sorted(rng.sample(kept, limit)) if limit is not None and limit < len(kept) else kept
    return chosen, backgrounds


def readable(path: Path) -> bool:
    """A file libsndfile opens (an Ogg file may hold a video instead)."""
    try:
        return path.is_file() and sf.info(str(path)).frames > 0
    except sf.LibsndfileError:
        return False


def package_of(path: Path, pkgs: Path) -> str:
    return path.relative_to(pkgs).parts[0]


def corpus_paths(package: str, files: list[Path], pkgs: Path) -> dict[Path, str]:
    """audio/<package>/<folder>/<file> for each file; a longer tail of its path inside the
    package where two files would share that name (voice packs: one folder per voice)."""
    inside = {f: f.relative_to(pkgs / package).parts for f in files}
    short = {f: "/".join(parts[-2:]) for f, parts in inside.items()}
    taken = defaultdict(int)
    for name in short.values():
        taken[name] += 1
    return {
        f: str(Path("audio") / package / (short[f] if taken[short[f]] == 1 else "/".join(inside[f]))) for f in files
    }


def copy_originals(chosen: dict[str, list[Path]], pkgs: Path, root: Path) -> list[tuple[str, Path, float]]:
    """(corpus path, file, seconds) of every recording, in the order of their paths inside
    their packages; music cut."""
    paths = {file: rel for package, files in chosen.items() for file, rel in corpus_paths(package, files, pkgs).items()}
    originals = []
    for file in sorted(paths, key=lambda f: f.relative_to(pkgs / package_of(f, pkgs))):
        info, dst = sf.info(str(file)), root / paths[file]
        dst.parent.mkdir(parents=True, exist_ok=True)
        if info.duration > MUSIC_SECONDS * 1.5:
            run([*SOX, str(file), str(dst), "trim", "0", str(MUSIC_SECONDS)])
        else:
            shutil.copyfile(file, dst)
        originals.append((paths[file], dst, min(info.duration, MUSIC_SECONDS)))
    return originals


def mono_at_check_rate(path: Path) -> np.ndarray:
    """Pre-emphasised (x[n] - 0.97 x[n-1]): with the rumble and DC left in, smooth low
    sounds correlate with each other at some lag by chance (0.96 for a laser and a voice)."""
    x, rate = read(path)
    x = soxr.resample(x.mean(axis=1), rate, CHECK_RATE).astype(np.float64)
    return np.append(x[:1], x[1:] - 0.97 * x[:-1])


def best_ncc(x: np.ndarray, y: np.ndarray) -> float:
    """Highest normalised cross-correlation of y slid along x, over lags where the shorter
    signal overlaps fully (a sound inside a longer file) or nearly so (80 %)."""
    if len(x) < len(y):
        x, y = y, x
    n = 1 << (len(x) + len(y) - 1).bit_length()
    cross = np.fft.irfft(np.fft.rfft(x, n) * np.conj(np.fft.rfft(y, n)), n)
    lags = np.arange(-(len(y) - 1), len(x))
    cross = np.concatenate([cross[n - (len(y) - 1) :], cross[: len(x)]])
    ex = np.concatenate([[0.0], np.cumsum(x * x)])
    ey = np.concatenate([[0.0], np.cumsum(y * y)])
    start = np.maximum(lags, 0)
    end = np.minimum(lags + len(y), len(x))
    energy_x = ex[end] - ex[start]
    energy_y = ey[end - lags] - ey[start - lags]
    overlap_ok = (end - start) >= 0.8 * len(y)
    # The overlap must hold most of the shorter sound's energy, and the longer one must not
    # be silent there (rounding noise over digital silence would divide by nearly zero).
    overlap_ok &= (energy_y >= 0.5 * ey[-1]) & (energy_x >= 1e-3 * energy_y) & (energy_y > 0)
    ncc = np.abs(cross) / np.sqrt(np.maximum(energy_x * energy_y, 1e-20))
    return float(ncc[overlap_ok].max()) if overlap_ok.any() else 0.0


def unrelated(backgrounds: list[Path], originals: list[tuple[str, Path, float]]) -> list[Path]:
    """The backgrounds none of whose first MUSIC_SECONDS (all a mix uses) holds an original's
    audio: one game's music track may be another's weapon jingle (supertux's chipdisko
    is warmux's disco grenade), and a mix with it would be a true duplicate of that file."""
    signals = [mono_at_check_rate(path) for _, path, _ in originals]
    kept = []
    for background in backgrounds:
        x = mono_at_check_rate(background)[: int(MUSIC_SECONDS * CHECK_RATE)]
        if all(best_ncc(x, y) < SAME_AUDIO_NCC for y in signals if len(y) >= CHECK_RATE // 10):
            kept.append(background)
    return kept


def natural_duplicates(originals: list[tuple[str, Path, float]]) -> list[tuple[str, str, float]]:
    """Pairs of originals that hold the same audio by the waveform check."""
    signals = [mono_at_check_rate(path) for _, path, _ in originals]
    found = []
    for i in range(len(originals)):
        for j in range(i + 1, len(originals)):
            a, b = signals[i], signals[j]
            shorter, longer = sorted((len(a), len(b)))
            if shorter < CHECK_RATE // 10 or (longer > 10 * CHECK_RATE and longer > 4 * shorter):
                continue  # a click, or an effect inside a music track: left unchecked (cost)
            ncc = best_ncc(a, b)
            if ncc >= SAME_AUDIO_NCC:
                found.append((originals[i][0], originals[j][0], ncc))
    return found


def cached_natural_duplicates(spec: Spec, originals: list[tuple[str, Path, float]]) -> list[tuple[str, str, float]]:
    """The check costs minutes; its answer is kept beside the packages, with the originals
    it checked, and made again when they change."""
    kept = spec.home / "natural_duplicates.json"
    checked = sorted(rel for rel, _, _ in originals)
    answer = json.loads(kept.read_text()) if kept.exists() else None
    if not isinstance(answer, dict) or answer.get("originals") != checked:
        kept.write_text(json.dumps({"originals": checked, "pairs": natural_duplicates(originals)}))
    return [tuple(pair) for pair in json.loads(kept.read_text())["pairs"]]


def components(pairs: Iterable[tuple[str, str]], paths: list[str]) -> dict[str, str]:
    """Each path's connected component under the pairs, named by its first member in sorted
    order, so that the names do not depend on the pairs' order."""
    parent = {p: p for p in paths}

    def find(p: str) -> str:
        while parent[p] != p:
            parent[p] = parent[parent[p]]
            p = parent[p]
        return p

    for a, b in pairs:
        ra, rb = sorted((find(a), find(b)))
        parent[rb] = ra
    return {p: find(p) for p in paths}


def groups_of(originals: list[str], same: list[tuple[str, str, float]]) -> dict[str, str]:
    """Originals joined by the natural-duplicate check; a group is named by its first
    member's path, extension included: a package may ship two different sounds as grow.ogg
    and grow.wav."""
    named = components(((a, b) for a, b, _ in same), originals)
    return {p: group.removeprefix("audio/") for p, group in named.items()}


def caption(rel: str) -> str:
    """A caption from the file name, as many real libraries have."""
    stem = Path(rel).stem
    words = re.sub(r"([a-z])([A-Z])", r"\1 \2", stem).replace("_", " ").replace("-", " ")
    return f"{' '.join(words.lower().split())} ({Path(rel).parent.name})"


def build(spec: Spec | None = None) -> Path:
    """The corpus, made once: it is built beside its place and renamed when whole."""
    spec = spec or STRESS
    corpus = spec.home / "corpus"
    stamp = corpus / "VERSION"
    if (corpus / "truth.csv").exists() and stamp.exists() and stamp.read_text().strip() == VERSION:
        return corpus
    shutil.rmtree(corpus, ignore_errors=True)
    pkgs = fetch_packages(spec)
    root = corpus.with_name("corpus.building")
    shutil.rmtree(root, ignore_errors=True)
    files, backgrounds = recordings(spec, pkgs)
    originals = copy_originals(files, pkgs, root)
    by_path = {rel: (path, seconds) for rel, path, seconds in originals}
    print(f"{spec.name} corpus: {len(originals)} originals; checking them for natural duplicates", flush=True)
    same = cached_natural_duplicates(spec, originals)
    kept = unrelated(backgrounds, originals)
    print(f"  backgrounds: {len(kept)} of {len(backgrounds)} kept; the others hold an original's audio", flush=True)
    backgrounds = kept
    group = groups_of([rel for rel, _, _ in originals], same)
    truth = [(rel, group[rel], "original", rel) for rel, _, _ in originals]
    rng = random.Random(spec.seed)
    music = [rel for rel, _, s in originals if s >= MUSIC_SECONDS]
    eligible = [rel for rel, _, s in originals if s >= MIN_SOURCE_S]
    variants = root / "audio" / "variants"
    variants.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        for index, family in enumerate(spec.families(backgrounds)):
            pool = [rel for rel in eligible if by_path[rel][1] >= family.min_source_s and rel not in music]
            chosen = rng.sample(pool, PER_FAMILY - 2) + rng.sample([m for m in music if m in eligible], 2)
            for k, rel in enumerate(chosen):
                name = f"v{index:02d}{k:02d}_{family.name}{family.suffix}"
                current = by_path[rel][0]
                for step_index, step in enumerate(family.steps):
                    last = step_index == len(family.steps) - 1
                    out = variants / name if last else Path(tmp) / f"step{step_index}.wav"
                    step(current, out)
                    current = out
                truth.append((f"audio/variants/{name}", group[rel], family.name, rel))
            print(f"  {family.name}: {len(chosen)} variants", flush=True)
        effects = [rel for rel in eligible if rel not in music]
        for k in range(PER_FAMILY):
            parts = rng.sample(effects, spec.compilation_parts)
            name = f"c{k:02d}_compilation.wav"
            pieces, rate = [], 44100
            gap = np.zeros(int(spec.compilation_gap_s * rate), np.float32)
            for rel in parts:
                x, r = read(by_path[rel][0])
                pieces += [soxr.resample(x.mean(axis=1), r, rate), gap]
            write_wav(variants / name, np.concatenate(pieces)[:, None], rate)
            truth += [(f"audio/variants/{name}", group[rel], "compilation", rel) for rel in parts]
    write_tables(root, truth, same, spec.seed)
    (root / "VERSION").write_text(VERSION + "\n")
    root.rename(corpus)
    return corpus


def write_tables(
    root: Path, truth: list[tuple[str, str, str, str]], same: list[tuple[str, str, float]], seed: int
) -> None:
    with (root / "truth.csv").open("w", newline="", encoding="utf-8") as f:
        out = csv.writer(f)
        out.writerow(["path", "group", "transform", "source"])
        out.writerows(truth)
    rng = random.Random(seed + 1)
    with (root / "metadata.csv").open("w", newline="", encoding="utf-8") as f:
        out = csv.writer(f)
        out.writerow(["path", "caption", "category", "setup"])
        for path in sorted({row[0] for row in truth}):
            source = next(row[3] for row in truth if row[0] == path)
            setup = f"upload:{rng.randrange(60)}" if "variants" in path else f"{Path(path).parts[1]}:{Path(path).stem}"
            out.writerow([path, caption(source), Path(source).parent.name, setup])
    with (root / "natural_duplicates.csv").open("w", newline="", encoding="utf-8") as f:
        out = csv.writer(f)
        out.writerow(["a", "b", "waveform_ncc"])
        out.writerows((a, b, f"{ncc:.3f}") for a, b, ncc in same)


if __name__ == "__main__":
    for spec in SPECS:
        print(build(spec))
    sys.exit(0)
