"""Opening audio files: header facts with integrity checks, and errors with a class.

Every failure becomes an AudioError (see errors.py), so the errors table can be grouped
and counted by kind.
"""

from __future__ import annotations

import contextlib
import hashlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import BinaryIO

import numpy as np
import soundfile as sf
import soxr

from leakfree import storage
from leakfree.containers import SHORTFALL_CHECKS
from leakfree.errors import AudioError

# Extensions libsndfile reads; other extensions are reported as unsupported codecs.
LIBSNDFILE_EXTENSIONS = frozenset(
    [
        "wav",
        "wave",
        "flac",
        "ogg",
        "oga",
        "opus",
        "mp3",
        "aif",
        "aiff",
        "aifc",
        "au",
        "snd",
        "w64",
        "caf",
        "rf64",
        "voc",
    ]
)
# Frames read from the end of every file: FLAC and MP3 (Xing) truncation shows up here.
_TAIL_FRAMES = 4096


@dataclass(frozen=True)
class AudioInfo:
    format: str
    subtype: str
    sample_rate: int
    channels: int
    frames: int

    @property
    def duration_s(self) -> float:
        return self.frames / self.sample_rate


@contextlib.contextmanager
def open_audio(path: str) -> Iterator[sf.SoundFile]:
    """A libsndfile handle on a local path or remote URI, failures classified."""
    if storage.extension(path) not in LIBSNDFILE_EXTENSIONS:
        raise AudioError("unsupported_codec", f"no decoder for .{storage.extension(path)} files")
    with _os_errors_classified(), contextlib.ExitStack() as stack:
        # Open it here first: libsndfile reports a missing or forbidden file only as
        # "System error", which would hide why the file could not be read.
        raw = stack.enter_context(storage.open_binary(path))
        source = path if not storage.is_remote(path) else raw
        try:
            handle = stack.enter_context(sf.SoundFile(source))
        except sf.LibsndfileError as exc:
            raise _classify(exc, raw) from None
        except (RuntimeError, ValueError) as exc:  # soundfile's wording for odd headers
            raise AudioError("invalid_header", str(exc)) from None
        yield handle


def read_info(path: str, *, size: int, max_sample_rate: int, max_channels: int) -> AudioInfo:
    """Header facts, after checking that the file holds what the header promises."""
    if size == 0:
        raise AudioError("empty_file", "the file has zero bytes")
    with open_audio(path) as handle:
        info = AudioInfo(
            format=handle.format,
            subtype=handle.subtype,
            sample_rate=int(handle.samplerate),
            channels=int(handle.channels),
            frames=int(handle.frames),
        )
        # Truncation first: a cut-off file often also has odd header values, and
        # "truncated" is the more useful diagnosis.
        _check_container(path, info.format, size)
        _check_header(info, max_sample_rate=max_sample_rate, max_channels=max_channels)
        _check_tail(handle, info)
    return info


def _check_container(path: str, fmt: str, size: int) -> None:
    check = SHORTFALL_CHECKS.get(fmt)
    if check is None:
        return
    with _os_errors_classified(), storage.open_binary(path) as raw:
        shortfall = check(raw, size)
    if shortfall:
        raise AudioError("truncated", shortfall)


def _check_header(info: AudioInfo, *, max_sample_rate: int, max_channels: int) -> None:
    if not 0 < info.sample_rate <= max_sample_rate:
        raise AudioError("invalid_header", f"sample rate {info.sample_rate} Hz")
    if not 0 < info.channels <= max_channels:
        raise AudioError("invalid_header", f"{info.channels} channels")
    if info.frames <= 0:
        raise AudioError("no_audio", "the header declares no samples")


def _check_tail(handle: sf.SoundFile, info: AudioInfo) -> None:
    start = max(info.frames - _TAIL_FRAMES, 0)
    try:
        if handle.seekable():
            handle.seek(start)
            got = start + len(handle.read(info.frames - start, dtype="float32", always_2d=True))
        else:  # GSM 6.10 in WAV: libsndfile cannot seek in it, so it is read through
            got = sum(len(block) for block in _blocks(handle, _TAIL_FRAMES))
    except (sf.LibsndfileError, RuntimeError) as exc:
        raise AudioError("truncated", f"cannot read the last frames: {exc}") from None
    if got < info.frames:
        raise AudioError("truncated", f"header promises {info.frames} frames, {got} readable")


def _classify(exc: sf.LibsndfileError, raw: BinaryIO) -> AudioError:
    text = str(exc)
    if "possibly a pipe" in text:
        # libsndfile's wording when it finds no stream it can read in a file we could open.
        tag = _id3_tag_bytes(raw)
        if tag is not None:
            return AudioError("no_audio", f"an ID3 tag ({tag} bytes) and no MP3 frames after it")
        return AudioError("not_audio", "libsndfile finds no audio stream in it")
    if "not recognised" in text or "unknown format" in text.lower():
        return AudioError("not_audio", text)
    if any(word in text.lower() for word in ("channel count", "sample rate", "samplerate")):
        return AudioError("invalid_header", text)
    if "unsupported" in text.lower() or "not supported" in text.lower():
        return AudioError("unsupported_codec", text)
    return AudioError("corrupt", text)


def _id3_tag_bytes(raw: BinaryIO) -> int | None:
    """The size of an ID3v2 tag that makes up the whole file, else None."""
    raw.seek(0)
    head = raw.read(10)
    if len(head) < 10 or head[:3] != b"ID3":
        return None
    size = 10 + sum((b & 0x7F) << (7 * (3 - i)) for i, b in enumerate(head[6:10]))
    raw.seek(size)
    rest = raw.read(4096)
    return size if not rest.strip(b"\x00") else None


@contextlib.contextmanager
def _os_errors_classified() -> Iterator[None]:
    try:
        yield
    except FileNotFoundError as exc:
        raise AudioError("missing_file", exc.strerror or str(exc)) from None
    except (PermissionError, IsADirectoryError) as exc:
        raise AudioError("unreadable", exc.strerror or str(exc)) from None
    except OSError as exc:
        raise AudioError("unreadable", str(exc)) from None


@dataclass(frozen=True)
class Decoded:
    samples: np.ndarray  # mono float32 at `rate`, at most max_seconds long
    rate: int
    pcm_sha256: str  # of the whole decoded file, all channels, as 16-bit PCM, with its rate
    seconds: float  # of the whole file as decoded
    capped: bool  # True when `samples` holds only the first max_seconds


def decode_mono(path: str, *, rate: int, max_seconds: float, block_frames: int = 1 << 16) -> Decoded:
    """Decode in blocks: downmix, resample with soxr, keep at most `max_seconds`.

    Memory stays bounded by the cap whatever the file's length, while the PCM digest still
    covers every sample, so two long files that differ only after the cap are not called
    identical. The digest is over 16-bit PCM so that WAV, FLAC and a re-muxed Ogg of the
    same samples agree.

    libsndfile gives up partway through some files other players read: an Ogg Opus stream
    whose first page's granule position runs ahead of the rest, as ffmpeg writes it after
    a timestamp offset in its source (2 of the 43 Opus files of bench/stress_corpus.py).
    Such a file is decoded again by FFmpeg's decoders (PyAV), and kept if they read all
    the frames its header declares.
    """
    with open_audio(path) as handle:
        declared = int(handle.frames)
        mono = _Mono(int(handle.samplerate), handle.channels, rate, max_seconds)
        try:
            for block in _blocks(handle, block_frames):
                mono.add(block)
            return mono.decoded()
        except (sf.LibsndfileError, RuntimeError) as exc:
            failure = f"libsndfile stopped after {mono.total} of {declared} frames: {exc}"
    return _decode_with_ffmpeg(path, declared, failure, rate, max_seconds)


class _Mono:
    """One file's blocks as they come: digested whole, downmixed, resampled, capped."""

    def __init__(self, native: int, channels: int, rate: int, max_seconds: float):
        self.native, self.rate, self.limit = native, rate, int(max_seconds * rate)
        self.max_seconds = max_seconds
        self.digest = hashlib.sha256(f"{native}:{channels}:".encode())
        self.stream = soxr.ResampleStream(native, rate, 1, dtype="float32", quality="LQ") if native != rate else None
        # A matrix-vector product: several times faster than mean(axis=1) on interleaved frames.
        self.downmix = np.full(channels, 1.0 / channels, dtype=np.float32)
        self.kept: list[np.ndarray] = []
        self.kept_samples = self.total = 0

    def add(self, block: np.ndarray) -> None:
        self.total += len(block)
        self.digest.update(_pcm16(block).tobytes())
        if self.kept_samples >= self.limit:
            return
        mono = block[:, 0] if block.shape[1] == 1 else block @ self.downmix
        out = self.stream.resample_chunk(mono) if self.stream is not None else mono
        self.kept.append(out)
        self.kept_samples += len(out)

    def decoded(self) -> Decoded:
        if self.stream is not None and self.kept_samples < self.limit:
            self.kept.append(self.stream.resample_chunk(np.zeros(0, np.float32), last=True))
        samples = np.concatenate(self.kept) if self.kept else np.zeros(0, np.float32)
        seconds = self.total / self.native
        return Decoded(samples[: self.limit], self.rate, self.digest.hexdigest(), seconds, seconds > self.max_seconds)


def _decode_with_ffmpeg(path: str, declared: int, failure: str, rate: int, max_seconds: float) -> Decoded:
    """decode_mono through PyAV, for a file libsndfile stopped in (`failure` says where)."""
    import av  # only files libsndfile cannot finish need it

    with _os_errors_classified(), storage.open_binary(path) as raw:
        try:
            with av.open(raw) as container:
                stream = container.streams.audio[0]
                channels = stream.codec_context.channels
                mono = _Mono(stream.codec_context.sample_rate, channels, rate, max_seconds)
                packed = av.AudioResampler(format="flt", layout=stream.codec_context.layout, rate=mono.native)
                for frame in container.decode(stream):
                    for out in packed.resample(frame):
                        mono.add(out.to_ndarray().reshape(-1, channels))
        except (av.FFmpegError, IndexError, ValueError) as exc:
            raise AudioError("corrupt", f"{failure}; FFmpeg could not decode it either: {exc}") from None
    if mono.total < declared:
        raise AudioError("corrupt", f"{failure}; FFmpeg decoded only {mono.total} frames")
    return mono.decoded()


def _blocks(handle: sf.SoundFile, frames: int) -> Iterator[np.ndarray]:
    """The file's frames in blocks. SoundFile.blocks refuses a file libsndfile calls
    unseekable (GSM 6.10 in WAV, as telephony prompts ship); reading in turn works for all."""
    while len(block := handle.read(frames, dtype="float32", always_2d=True)):
        yield block


def _pcm16(block: np.ndarray) -> np.ndarray:
    # libsndfile reads 16-bit PCM as n / 32768, so this gives back the stored integers.
    scaled = np.multiply(block, 32768.0, dtype=np.float32)
    np.clip(scaled, -32768.0, 32767.0, out=scaled)
    return np.rint(scaled, out=scaled).astype("<i2")
