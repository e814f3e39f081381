from __future__ import annotations

import os

import numpy as np
import pytest

from leakfree.decode import read_info
from leakfree.demo import write_audio
from leakfree.errors import AudioError
from tests.conftest import tone

LIMITS = {"max_sample_rate": 768000, "max_channels": 64}


def info_or_error(path):
    try:
        return read_info(str(path), size=os.path.getsize(path), **LIMITS)
    except AudioError as exc:
        return exc.error_class


@pytest.mark.parametrize(("ext", "fmt"), [("wav", "WAV"), ("flac", "FLAC"), ("ogg", "OGG"), ("mp3", "MP3")])
def test_reads_header_facts(tmp_path, ext, fmt):
    path = tmp_path / f"x.{ext}"
    write_audio(path, tone("bell", 1.0, rate=48000), 48000, fmt="MP3" if ext == "mp3" else None)
    info = read_info(str(path), size=path.stat().st_size, **LIMITS)
    assert (info.format, info.sample_rate, info.channels) == (fmt, 48000, 1)
    assert info.duration_s == pytest.approx(1.0, abs=0.06)


@pytest.mark.parametrize("ext", ["wav", "flac", "ogg", "mp3"])
def test_truncation_is_caught_for_each_codec(tmp_path, ext):
    whole = tmp_path / f"whole.{ext}"
    write_audio(whole, tone("engine", 3.0), 44100, fmt="MP3" if ext == "mp3" else None)
    cut = tmp_path / f"cut.{ext}"
    cut.write_bytes(whole.read_bytes()[: int(whole.stat().st_size * 0.6)])
    assert info_or_error(cut) == "truncated"


def test_classes_of_bad_files(tmp_path):
    (tmp_path / "empty.wav").write_bytes(b"")
    (tmp_path / "random.wav").write_bytes(os.urandom(3000))
    (tmp_path / "song.m4a").write_bytes(os.urandom(3000))
    write_audio(tmp_path / "silent.wav", tone("bell", 0.0), 44100)
    assert info_or_error(tmp_path / "empty.wav") == "empty_file"
    assert info_or_error(tmp_path / "random.wav") == "not_audio"
    assert info_or_error(tmp_path / "song.m4a") == "unsupported_codec"
    assert info_or_error(tmp_path / "silent.wav") == "no_audio"


def test_an_mp3_of_tags_only_has_no_audio_and_says_so(tmp_path):
    tag_only = tmp_path / "tag.mp3"
    tag_only.write_bytes(b"ID3\x04\x00\x00\x00\x00\x00\x64" + bytes(100))
    with pytest.raises(AudioError) as caught:
        read_info(str(tag_only), size=110, max_sample_rate=768000, max_channels=64)
    assert caught.value.error_class == "no_audio" and "ID3 tag" in caught.value.message
    assert "pipe" not in caught.value.message


def test_absurd_header_is_invalid(tmp_path):
    path = tmp_path / "x.wav"
    write_audio(path, tone("bell", 0.5), 44100)
    data = bytearray(path.read_bytes())
    data[24:28] = (5_000_000).to_bytes(4, "little")  # the fmt chunk's sample rate
    path.write_bytes(bytes(data))
    assert info_or_error(path) == "invalid_header"


def test_pcm_digest_is_the_same_across_lossless_containers(tmp_path):
    import soundfile as sf

    from leakfree.decode import decode_mono

    x = (np.stack([tone("bell", 1.0), tone("sweep", 1.0)], axis=1) * 32767).astype(np.int16)
    sf.write(tmp_path / "a.wav", x, 44100)
    sf.write(tmp_path / "a.flac", x, 44100)
    sf.write(tmp_path / "quieter.wav", (x * 0.9).astype(np.int16), 44100)
    digest = {
        n: decode_mono(str(tmp_path / n), rate=8000, max_seconds=60).pcm_sha256
        for n in ("a.wav", "a.flac", "quieter.wav")
    }
    assert digest["a.wav"] == digest["a.flac"] != digest["quieter.wav"]
    assert (tmp_path / "a.wav").read_bytes() != (tmp_path / "a.flac").read_bytes()


def test_decode_mono_resamples_downmixes_and_caps(tmp_path):
    from leakfree.decode import decode_mono

    x = np.stack([tone("engine", 3.0, rate=48000), tone("wind", 3.0, rate=48000)], axis=1)
    write_audio(tmp_path / "x.wav", x, 48000)
    whole = decode_mono(str(tmp_path / "x.wav"), rate=8000, max_seconds=60)
    capped = decode_mono(str(tmp_path / "x.wav"), rate=8000, max_seconds=1.0)
    assert whole.samples.ndim == 1 and len(whole.samples) == pytest.approx(24000, abs=64)
    assert not whole.capped and whole.seconds == pytest.approx(3.0)
    assert capped.capped and len(capped.samples) == 8000
    assert capped.pcm_sha256 == whole.pcm_sha256  # the digest covers the whole file either way
    expected = (x[:, 0] + x[:, 1]) / 2
    ratio = np.std(whole.samples[4000:20000]) / np.std(expected[24000:120000])
    assert ratio == pytest.approx(1.0, abs=0.05)


def test_a_two_hour_file_is_decoded_in_bounded_memory(tmp_path):
    import tracemalloc

    import soundfile as sf

    from leakfree.decode import decode_mono

    path = tmp_path / "two_hours.wav"
    rate, minutes = 8000, 120
    block = (np.sin(np.arange(rate * 60) * 0.07) * 8000).astype(np.int16)
    with sf.SoundFile(path, "w", rate, 1, subtype="PCM_16") as out:
        for _ in range(minutes):
            out.write(block)
    tracemalloc.start()
    decoded = decode_mono(str(path), rate=8000, max_seconds=60)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert decoded.seconds == pytest.approx(minutes * 60) and decoded.capped
    assert len(decoded.samples) == 60 * rate
    # The whole file as float32 would take 230 MB; the kept minute and a few blocks do not.
    assert peak < 40 * 2**20, peak


def test_a_gsm_wav_libsndfile_cannot_seek_is_probed_and_decoded_whole(tmp_path):
    """Telephony prompts ship as GSM 6.10 in WAV, in which libsndfile cannot seek."""
    import soundfile as sf

    from leakfree.decode import decode_mono, read_info

    x = tone("bell", 2.0, rate=8000)
    sf.write(tmp_path / "prompt.wav", x, 8000, subtype="GSM610")
    assert not sf.SoundFile(tmp_path / "prompt.wav").seekable()
    size = (tmp_path / "prompt.wav").stat().st_size
    info = read_info(str(tmp_path / "prompt.wav"), size=size, max_sample_rate=48000, max_channels=2)
    assert info.frames == pytest.approx(16000, abs=400)
    decoded = decode_mono(str(tmp_path / "prompt.wav"), rate=8000, max_seconds=60, block_frames=4096)
    assert decoded.seconds == pytest.approx(2.0, abs=0.05)
    assert len(decoded.samples) == pytest.approx(16000, abs=400)
    # A lossy codec: the shape survives, not the samples.
    n = min(len(x), len(decoded.samples))
    assert np.corrcoef(x[:n], decoded.samples[:n])[0, 1] > 0.8


def _ogg_crc(page: bytes) -> int:
    crc = 0
    for byte in page:
        crc ^= byte << 24
        for _ in range(8):
            crc = ((crc << 1) ^ 0x04C11DB7) if crc & 0x80000000 else crc << 1
        crc &= 0xFFFFFFFF
    return crc


def _ogg_pages(data: bytes) -> list[tuple[int, int]]:
    """[start, end) of each page of an Ogg stream."""
    pages, start = [], 0
    while start < len(data):
        segments = data[start + 26]
        end = start + 27 + segments + sum(data[start + 27 : start + 27 + segments])
        pages.append((start, end))
        start = end
    return pages


def _advance_first_audio_granule(data: bytes, by: int) -> bytes:
    """The Ogg Opus stream with its first audio page's granule position `by` samples ahead of
    the pages after it (pages 0 and 1 hold the headers), its checksum made good again."""
    out = bytearray(data)
    start, end = _ogg_pages(data)[2]
    granule = int.from_bytes(out[start + 6 : start + 14], "little") + by
    out[start + 6 : start + 14] = granule.to_bytes(8, "little")
    out[start + 22 : start + 26] = bytes(4)
    out[start + 22 : start + 26] = _ogg_crc(bytes(out[start:end])).to_bytes(4, "little")
    return bytes(out)


def test_an_opus_file_libsndfile_stops_in_is_decoded_whole_by_ffmpeg(tmp_path):
    """ffmpeg writes such streams after a timestamp offset in its source; libsndfile calls
    them malformed two pages in, other players read them."""
    import soundfile as sf

    from leakfree.decode import decode_mono

    x = tone("engine", 3.0, rate=48000)
    sf.write(tmp_path / "clean.opus", x, 48000, format="OGG", subtype="OPUS")
    odd = tmp_path / "odd.opus"
    odd.write_bytes(_advance_first_audio_granule((tmp_path / "clean.opus").read_bytes(), 448))
    with pytest.raises(sf.LibsndfileError, match="malformed"):
        sf.read(odd)
    decoded = decode_mono(str(odd), rate=8000, max_seconds=60)
    clean = decode_mono(str(tmp_path / "clean.opus"), rate=8000, max_seconds=60)
    assert decoded.seconds == pytest.approx(3.0, abs=0.05)
    assert len(decoded.samples) == pytest.approx(len(clean.samples), abs=80)
    n = min(len(decoded.samples), len(clean.samples))
    assert np.corrcoef(decoded.samples[:n], clean.samples[:n])[0, 1] > 0.95


def test_an_opus_file_ffmpeg_cannot_read_whole_either_stays_corrupt(tmp_path):
    import soundfile as sf

    from leakfree.decode import decode_mono

    sf.write(tmp_path / "clean.opus", tone("engine", 3.0, rate=48000), 48000, format="OGG", subtype="OPUS")
    data = bytearray(_advance_first_audio_granule((tmp_path / "clean.opus").read_bytes(), 448))
    start, end = _ogg_pages(bytes(data))[4]  # after the page libsndfile stops at
    data[start + 100 : end - 100] = bytes(end - start - 200)
    (tmp_path / "hole.opus").write_bytes(bytes(data))
    with pytest.raises(AudioError) as caught:
        decode_mono(str(tmp_path / "hole.opus"), rate=8000, max_seconds=60)
    assert caught.value.error_class == "corrupt"
    assert "libsndfile stopped" in caught.value.message and "FFmpeg decoded only" in caught.value.message
