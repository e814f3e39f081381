"""A small deterministic demo library: synthetic sound effects with planted near-duplicates.

It stands in for a real library on a machine that has none: `make run` uses it, and the
tests build their audio from the same synthesis functions. Every file is listed in
`truth.csv` (its duplicate group and the transformation that made it) and described in
`metadata.csv` (caption, category, setup), like a real library's sidecar.
"""

from __future__ import annotations

import csv
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr

RATE = 44100
# libsndfile has crashed writing long Ogg files in one call; chunks work.
_OGG_CHUNK = 1 << 15


def impact(rng: np.random.Generator, seconds: float, rate: int = RATE) -> np.ndarray:
    """A struck object: a low thump, a noise crack, and the object's own resonances, then
    a few bounces."""
    t = np.arange(int(seconds * rate)) / rate
    thump = np.sin(2 * np.pi * rng.uniform(40, 90) * t) * np.exp(-t * rng.uniform(6, 12))
    crack = rng.standard_normal(t.size) * np.exp(-t * rng.uniform(20, 60))
    modes = sum(np.sin(2 * np.pi * rng.uniform(250, 3500) * t) * np.exp(-t * rng.uniform(8, 30)) for _ in range(4))
    hit = 0.5 * thump + 0.3 * crack + 0.4 * modes
    out = hit.copy()
    for _ in range(3):
        delay = int(rng.uniform(0.05, 0.4) * rate)
        out[delay:] += hit[: t.size - delay] * rng.uniform(0.2, 0.5)
    return out / (np.abs(out).max() + 1e-9) * 0.8


def beeps(rng: np.random.Generator, seconds: float, rate: int = RATE) -> np.ndarray:
    out = np.zeros(int(seconds * rate))
    step = int(rng.uniform(0.08, 0.25) * rate)
    for start in range(0, out.size - step, step):
        n = int(step * rng.uniform(0.4, 0.9))
        t = np.arange(n) / rate
        out[start : start + n] += np.sin(2 * np.pi * rng.uniform(300, 2500) * t) * np.hanning(n)
    return 0.5 * out


def sweep(rng: np.random.Generator, seconds: float, rate: int = RATE) -> np.ndarray:
    """A rising tone with its own wobble: two plain chirps of one slope would share a
    stretch of the same line, a sweep with vibrato of another rate and phase does not."""
    t = np.arange(int(seconds * rate)) / rate
    f0, f1 = rng.uniform(100, 800), rng.uniform(1000, 8000)
    glide = f0 + (f1 - f0) * (t / max(seconds, 1e-9)) ** rng.uniform(0.6, 1.6)
    wobble = 1 + rng.uniform(0.01, 0.04) * np.sin(2 * np.pi * rng.uniform(3, 9) * t + rng.uniform(0, 2 * np.pi))
    phase = 2 * np.pi * np.cumsum(glide * wobble) / rate
    tone = np.sin(phase) + rng.uniform(0.1, 0.5) * np.sin(2 * phase)
    return 0.35 * tone * np.hanning(t.size) ** 0.3


def engine(rng: np.random.Generator, seconds: float, rate: int = RATE) -> np.ndarray:
    """A running engine: its speed wanders with the load (a smoothed random walk, so no two
    engines trace one pitch curve), its harmonics have their own colour, and each firing
    adds a little noise."""
    t = np.arange(int(seconds * rate)) / rate
    walk = rng.standard_normal(int(seconds * 8) + 2).cumsum() * 0.08
    speed = np.exp(np.interp(t, np.linspace(0, seconds, walk.size), walk))
    phase = 2 * np.pi * np.cumsum(rng.uniform(25, 110) * speed) / rate
    colour = rng.uniform(0.2, 1.0, 8)
    tone = sum(colour[k - 1] * np.sin(k * phase) / k for k in range(1, 9))
    firing = np.maximum(np.sin(phase), 0) ** 8 * rng.standard_normal(t.size) * rng.uniform(0.1, 0.3)
    return 0.3 * (tone + firing) * (1 + 0.3 * np.sin(2 * np.pi * rng.uniform(4, 12) * t))


def wind(rng: np.random.Generator, seconds: float, rate: int = RATE) -> np.ndarray:
    n = int(seconds * rate)
    spectrum = np.fft.rfft(rng.standard_normal(n))
    freqs = np.fft.rfftfreq(n, 1 / rate)
    centre = rng.uniform(300, 1500)
    spectrum *= np.exp(-(((freqs - centre) / (centre * 0.7)) ** 2))
    gust = 0.6 + 0.4 * np.sin(2 * np.pi * rng.uniform(0.1, 0.6) * np.arange(n) / rate)
    signal = np.fft.irfft(spectrum, n) * gust
    return 0.5 * signal / (np.abs(signal).max() + 1e-9)


def bell(rng: np.random.Generator, seconds: float, rate: int = RATE) -> np.ndarray:
    t = np.arange(int(seconds * rate)) / rate
    base = rng.uniform(200, 900)
    ratios = (1.0, 2.76, 5.4, 8.93)
    return 0.4 * sum(
        np.sin(2 * np.pi * base * r * t) * np.exp(-t * rng.uniform(1.5, 4) * r**0.5) / (i + 1)
        for i, r in enumerate(ratios)
    )


def footsteps(rng: np.random.Generator, seconds: float, rate: int = RATE) -> np.ndarray:
    out = np.zeros(int(seconds * rate))
    at = 0.05
    while at < seconds - 0.15:
        i = int(at * rate)
        n = int(0.12 * rate)
        t = np.arange(n) / rate
        out[i : i + n] += rng.standard_normal(n) * np.exp(-t * 45) * rng.uniform(0.4, 0.9)
        at += rng.uniform(0.35, 0.6)
    return 0.7 * out


SOUNDS: dict[str, Callable[[np.random.Generator, float, int], np.ndarray]] = {
    "impact": impact,
    "beeps": beeps,
    "sweep": sweep,
    "engine": engine,
    "wind": wind,
    "bell": bell,
    "footsteps": footsteps,
}


def add_noise(x: np.ndarray, snr_db: float, rng: np.random.Generator) -> np.ndarray:
    power = np.mean(x**2) + 1e-12
    return x + rng.standard_normal(x.shape) * np.sqrt(power / 10 ** (snr_db / 10))


def resample(x: np.ndarray, rate_in: int, rate_out: int) -> np.ndarray:
    return soxr.resample(x, rate_in, rate_out)


# soundfile settings for the lossy codecs of the evaluation corpus: MP3 at 128 kbit/s
# constant bit rate, and Vorbis at about quality 2.
MP3_128K = {"fmt": "MP3", "compression_level": 0.65, "bitrate_mode": "CONSTANT"}
VORBIS_Q2 = {"subtype": "VORBIS", "compression_level": 0.8}


def write_audio(
    path: Path,
    x: np.ndarray,
    rate: int,
    fmt: str | None = None,
    subtype: str | None = None,
    compression_level: float | None = None,
    bitrate_mode: str | None = None,
) -> None:
    """Write float audio (frames or frames x channels), clipped to [-1, 1]."""
    path.parent.mkdir(parents=True, exist_ok=True)
    data = np.clip(x, -1, 1).astype(np.float32)
    channels = 1 if data.ndim == 1 else data.shape[1]
    with sf.SoundFile(
        path,
        "w",
        rate,
        channels,
        format=fmt,
        subtype=subtype,
        compression_level=compression_level,
        bitrate_mode=bitrate_mode,
    ) as out:
        for start in range(0, len(data), _OGG_CHUNK):
            out.write(data[start : start + _OGG_CHUNK])


@dataclass(frozen=True)
class DemoFile:
    rel_path: str
    group: str
    transform: str
    caption: str
    category: str
    setup: str


# (transform name, extension, function of (signal, rate, rng) -> (signal, rate), format kwargs)
_TRANSFORMS: list[tuple[str, str, Callable, dict]] = [
    ("flac", "flac", lambda x, r, g: (x, r), {}),
    ("ogg_q2", "ogg", lambda x, r, g: (x, r), VORBIS_Q2),
    ("mp3_128k", "mp3", lambda x, r, g: (x, r), MP3_128K),
    ("gain_m6", "wav", lambda x, r, g: (x * 0.5, r), {}),
    ("resample_22k", "wav", lambda x, r, g: (resample(x, r, 22050), 22050), {}),
    ("noise_snr20", "wav", lambda x, r, g: (add_noise(x, 20, g), r), {}),
    ("excerpt_60", "wav", lambda x, r, g: (x[int(len(x) * 0.2) : int(len(x) * 0.8)], r), {}),
    ("pad_silence", "wav", lambda x, r, g: (np.concatenate([np.zeros(r // 2), x]), r), {}),
]


_WORDS = {
    "impact": ["door slam", "box drop", "metal clang", "wood knock", "crate hit", "bin lid"],
    "beeps": ["alarm beeps", "microwave timer", "phone keypad", "truck reversing", "pager"],
    "sweep": ["laser zap", "riser", "sci-fi sweep", "whistle slide", "radar ping"],
    "engine": ["idling diesel", "motorbike pass", "generator hum", "boat engine", "lawnmower"],
    "wind": ["wind through trees", "gusty coast", "draughty hall", "desert wind", "storm"],
    "bell": ["church bell", "bicycle bell", "shop door chime", "ship bell", "gong"],
    "footsteps": ["steps on gravel", "heels on stone", "boots in snow", "running on wood"],
}
_PLACES = ["close", "distant", "indoors", "outdoors", "in a yard", "in a tunnel", "at night", "stereo"]
_MOODS = ["heavy", "light", "sharp", "soft", "long", "short", "muffled", "bright", "slow", "fast", "old", "big"]
# What a recordist notes about one take; two takes of a large library rarely share both.
_DETAILS = [
    "rain behind",
    "crowd murmur",
    "traffic far off",
    "birds in background",
    "room tone",
    "slight hum",
    "with reverb",
    "dry",
    "single",
    "repeated",
    "two in a row",
    "slow approach",
    "fading away",
    "handheld",
    "on a stand",
    "wind noise",
    "echo",
    "low rumble",
    "clicks",
    "close mic",
    "from above",
    "from below",
    "left to right",
    "right to left",
    "getting louder",
    "quiet start",
    "abrupt end",
    "long tail",
    "pitched down",
    "recorded at dawn",
    "recorded at dusk",
    "summer",
    "winter",
    "wet",
]


def _caption(rng: np.random.Generator, kind: str) -> str:
    detail = " and ".join(rng.choice(_DETAILS, 2, replace=False))
    return (
        f"{rng.choice(_MOODS)} {rng.choice(_WORDS[kind])}, {detail}, {rng.choice(_PLACES)}, take {rng.integers(1, 9)}"
    )


def write_demo_library(folder: str | Path, seed: int = 7, originals: int = 96) -> list[DemoFile]:
    """Write the demo library under `folder`; the same seed gives the same bytes."""
    root = Path(folder)
    rng = np.random.default_rng(seed)
    files: list[DemoFile] = []
    kinds = sorted(SOUNDS)
    for i in range(originals):
        kind = kinds[i % len(kinds)]
        seconds = float(rng.choice([0.4, 0.8, 1.5, 3.0, 5.0]))
        signal = SOUNDS[kind](rng, seconds, RATE)
        setup = f"session-{i // 2:02d}"
        name = f"{kind}/{kind}_{i:03d}.wav"
        group = f"g{i:03d}"
        caption = _caption(rng, kind)
        write_audio(root / name, signal, RATE)
        files.append(DemoFile(name, group, "original", caption, kind, setup))
        if i % 2 == 0:
            transform, ext, change, fmt = _TRANSFORMS[(i // 2) % len(_TRANSFORMS)]
            variant, rate = change(signal, RATE, rng)
            vname = f"variants/{kind}_{i:03d}_{transform}.{ext}"
            write_audio(root / vname, variant, rate, **fmt)
            files.append(DemoFile(vname, group, transform, f"{caption} ({transform})", kind, f"upload-{i:03d}"))
    broken = root / "broken"
    broken.mkdir(parents=True, exist_ok=True)
    (broken / "empty.wav").write_bytes(b"")
    (broken / "not_audio.wav").write_bytes(rng.bytes(4096))
    _write_csv(
        root / "metadata.csv",
        ["path", "caption", "category", "setup"],
        [(f.rel_path, f.caption, f.category, f.setup) for f in files],
    )
    _write_csv(root / "truth.csv", ["path", "group", "transform"], [(f.rel_path, f.group, f.transform) for f in files])
    return files


def _write_csv(path: Path, header: list[str], rows: list[tuple]) -> None:
    with path.open("w", newline="", encoding="utf-8") as out:
        writer = csv.writer(out)
        writer.writerow(header)
        writer.writerows(rows)
