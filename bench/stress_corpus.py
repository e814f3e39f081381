"""Stress corpus: real recordings of three Debian game-data packages (warmux-data,
supertux-data, freedroidrpg-data; none of them in ../shared/corpus or the tests), with
planted edits harder than the shared corpus's: speed, pitch and tempo changes, reverb and
echo, band limits, low bitrates, downsampling, heavy noise, compression, a background
mix, short excerpts, compilations, and chains of two.

Written in the shared corpus's format (audio/, truth.csv, metadata.csv) to a cache outside
git ($LEAKFREE_STRESS_DIR, default ~/.cache/leakfree/stress), once: a second call finds it
there. Each variant is made with Debian's sox or ffmpeg from its source; `transform` names
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
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr

PACKAGES = ("warmux-data", "supertux-data", "freedroidrpg-data")
STRESS = Path(os.environ.get("LEAKFREE_STRESS_DIR", Path.home() / ".cache" / "leakfree" / "stress"))
CORPUS = STRESS / "corpus"
AUDIO_EXTENSIONS = {".wav", ".ogg", ".flac"}
MUSIC_SECONDS = 30.0  # long tracks are cut, as in ../shared/corpus
PER_FAMILY = 20  # sources per transformation: one miss moves a row's recall by 0.05
MIN_SOURCE_S = 0.5
BACKGROUNDS = 20  # shorter clicks are the short-sound rule's business, not this corpus's
SEED = 5
# Independent same-audio check for natural duplicates: pre-emphasised waveform NCC at the
# best lag. Strict, because the best of thousands of lags is a maximum of chances: short
# tonal sounds (a coin, a step) reach 0.6-0.82 against unrelated ones here; a reuse
# scores 0.84-1.0. A chance pair in truth would cost recall, a missed one shows up as a
# predicted pair truth does not know, checked again by the bench.
SAME_AUDIO_NCC = 0.83
CHECK_RATE = 4000


def run(cmd: list[str]) -> None:
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)}: {done.stderr.strip()[-400:]}")


def sox(effects: str) -> Callable[[Path, Path], None]:
    return lambda src, dst: run(["sox", "-q", str(src), str(dst), *effects.split()])


def sox_to(rate: int) -> Callable[[Path, Path], None]:
    return lambda src, dst: run(["sox", "-q", str(src), "-r", str(rate), "-c", "1", str(dst)])


def ffmpeg_codec(*args: str) -> Callable[[Path, Path], None]:
    return lambda src, dst: run(["ffmpeg", "-v", "error", "-y", "-i", str(src), *args, str(dst)])


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
    def apply(src: Path, dst: Path) -> None:
        x, rate = read(src)
        n = max(1, int(len(x) * share))
        start = random.Random(seed).randrange(0, len(x) - n + 1)
        write_wav(dst, x[start : start + n], rate)

    return apply


@dataclass(frozen=True)
class Family:
    name: str  # transform in truth.csv: family and strength
    steps: tuple[Callable[[Path, Path], None], ...]
    suffix: str = ".wav"
    min_source_s: float = MIN_SOURCE_S


def families(backgrounds: list[Path]) -> list[Family]:
    mp3 = lambda kbps: ffmpeg_codec("-c:a", "libmp3lame", "-b:a", f"{kbps}k")  # noqa: E731
    opus = lambda kbps: ffmpeg_codec("-c:a", "libopus", "-b:a", f"{kbps}k")  # noqa: E731
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


def fetch_packages(work: Path) -> Path:
    """The packages' files under work/pkgs, downloaded and unpacked once."""
    debs, root = work / "debs", work / "pkgs"
    if (root / ".unpacked").exists():
        return root
    debs.mkdir(parents=True, exist_ok=True)
    for package in PACKAGES:
        if not list(debs.glob(f"{package}_*.deb")):
            subprocess.run(["apt-get", "download", package], cwd=debs, check=True)
    for deb in debs.glob("*.deb"):
        run(["dpkg-deb", "-x", str(deb), str(root)])
    (root / ".unpacked").touch()
    return root


def package_of(path: Path) -> str:
    text = str(path)
    return next(p for p, key in zip(PACKAGES, ("warmux", "supertux", "freedroidrpg"), strict=True) if key in text)


def recordings(pkgs: Path) -> tuple[list[Path], list[Path]]:
    """The packages' recordings, and apart from them BACKGROUNDS long tracks (every fourth)
    that stay out of the corpus and serve as backgrounds."""
    files = sorted(p for p in pkgs.rglob("*") if p.suffix.lower() in AUDIO_EXTENSIONS and p.is_file())
    long = [p for p in files if sf.info(str(p)).duration > MUSIC_SECONDS * 1.5]
    backgrounds = long[::4][:BACKGROUNDS]
    return [p for p in files if p not in backgrounds], backgrounds


def copy_originals(files: list[Path], pkgs: Path, root: Path) -> list[tuple[str, Path, float]]:
    """(corpus path, file, seconds) of every recording; music cut."""
    originals = []
    for file in files:
        info = sf.info(str(file))
        package = package_of(file)
        inside = file.relative_to(pkgs).parts
        rel = Path("audio") / package / "/".join(inside[-2:])
        dst = root / rel
        if dst.exists():
            raise RuntimeError(f"two recordings map to {rel}")
        dst.parent.mkdir(parents=True, exist_ok=True)
        if info.duration > MUSIC_SECONDS * 1.5:
            run(["sox", "-q", str(file), str(dst), "trim", "0", str(MUSIC_SECONDS)])
        else:
            shutil.copyfile(file, dst)
        originals.append((str(rel), dst, min(info.duration, MUSIC_SECONDS)))
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


def cached_natural_duplicates(originals: list[tuple[str, Path, float]]) -> list[tuple[str, str, float]]:
    """The check costs minutes; its answer is kept beside the packages."""
    kept = STRESS / "natural_duplicates.json"
    if not kept.exists():
        kept.write_text(json.dumps(natural_duplicates(originals)))
    present = {rel for rel, _, _ in originals}
    return [(a, b, ncc) for a, b, ncc in json.loads(kept.read_text()) if a in present and b in present]


def groups_of(originals: list[str], same: list[tuple[str, str, float]]) -> dict[str, str]:
    """Union-find of originals joined by the natural-duplicate check; a group is named by
    its first member."""
    parent = {p: p for p in originals}

    def find(p: str) -> str:
        while parent[p] != p:
            parent[p] = parent[parent[p]]
            p = parent[p]
        return p

    for a, b, _ in same:
        ra, rb = sorted((find(a), find(b)))
        parent[rb] = ra
    return {p: re.sub(r"\.\w+$", "", find(p).removeprefix("audio/")) for p in originals}


def caption(rel: str) -> str:
    """A caption from the file name, as many real libraries have."""
    stem = Path(rel).stem
    words = re.sub(r"([a-z])([A-Z])", r"\1 \2", stem).replace("_", " ").replace("-", " ")
    return f"{' '.join(words.lower().split())} ({Path(rel).parent.name})"


def build() -> Path:
    """The corpus, made once: it is built beside its place and renamed when whole."""
    if (CORPUS / "truth.csv").exists():
        return CORPUS
    pkgs = fetch_packages(STRESS)
    root = CORPUS.with_name("corpus.building")
    shutil.rmtree(root, ignore_errors=True)
    files, backgrounds = recordings(pkgs)
    originals = copy_originals(files, pkgs, root)
    by_path = {rel: (path, seconds) for rel, path, seconds in originals}
    print(f"stress corpus: {len(originals)} originals; checking them for natural duplicates", flush=True)
    same = cached_natural_duplicates(originals)
    group = groups_of([rel for rel, _, _ in originals], same)
    truth = [(rel, group[rel], "original", rel) for rel, _, _ in originals]
    rng = random.Random(SEED)
    music = [rel for rel, _, s in originals if s >= MUSIC_SECONDS]
    eligible = [rel for rel, _, s in originals if s >= MIN_SOURCE_S]
    variants = root / "audio" / "variants"
    variants.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        for index, family in enumerate(families(backgrounds)):
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
            parts = rng.sample(effects, 3)
            name = f"c{k:02d}_compilation.wav"
            pieces, rate = [], 44100
            for rel in parts:
                x, r = read(by_path[rel][0])
                pieces += [soxr.resample(x.mean(axis=1), r, rate), np.zeros(int(0.4 * rate), np.float32)]
            write_wav(variants / name, np.concatenate(pieces)[:, None], rate)
            truth += [(f"audio/variants/{name}", group[rel], "compilation", rel) for rel in parts]
    write_tables(root, truth, same)
    root.rename(CORPUS)
    return CORPUS


def write_tables(root: Path, truth: list[tuple[str, str, str, str]], same: list[tuple[str, str, float]]) -> None:
    with (root / "truth.csv").open("w", newline="", encoding="utf-8") as f:
        out = csv.writer(f)
        out.writerow(["path", "group", "transform", "source"])
        out.writerows(truth)
    rng = random.Random(SEED + 1)
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
    print(build())
    sys.exit(0)
