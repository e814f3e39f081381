from __future__ import annotations

import io

import pytest

from leakfree.containers import ogg_shortfall, wav_shortfall
from leakfree.demo import write_audio
from tests.conftest import tone


@pytest.fixture
def encoded(tmp_path):
    def make(ext: str) -> bytes:
        path = tmp_path / f"x.{ext}"
        write_audio(path, tone("engine", 2.0), 44100)
        return path.read_bytes()

    return make


@pytest.mark.parametrize(("ext", "check"), [("wav", wav_shortfall), ("ogg", ogg_shortfall)])
def test_whole_files_pass(encoded, ext, check):
    data = encoded(ext)
    assert check(io.BytesIO(data), len(data)) is None


@pytest.mark.parametrize(("ext", "check"), [("wav", wav_shortfall), ("ogg", ogg_shortfall)])
@pytest.mark.parametrize("keep", [0.999, 0.5, 0.02])
def test_truncated_files_are_caught(encoded, ext, check, keep):
    data = encoded(ext)
    cut = data[: int(len(data) * keep)]
    assert check(io.BytesIO(cut), len(cut))


def test_wav_with_streaming_length_is_not_called_truncated(encoded):
    data = bytearray(encoded("wav"))
    at = data.index(b"data") + 4
    data[at : at + 4] = b"\xff\xff\xff\xff"
    assert wav_shortfall(io.BytesIO(bytes(data)), len(data)) is None


def test_wav_header_claiming_gigabytes_is_caught(encoded):
    data = bytearray(encoded("wav"))
    at = data.index(b"data") + 4
    data[at : at + 4] = (3_000_000_000).to_bytes(4, "little")
    assert "promises 3000000000 bytes" in wav_shortfall(io.BytesIO(bytes(data)), len(data))
