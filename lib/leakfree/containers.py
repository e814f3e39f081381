"""Container-level integrity checks that libsndfile does not make.

libsndfile quietly shortens a truncated WAV or Ogg file to what is there, so a cut-off
download would pass as a shorter, valid recording. These checks compare what the container
promises with what the file holds. (FLAC and MP3-with-Xing truncation shows up as a failed
read of the last frames, which the catalog's probe tries for every file.)
"""

from __future__ import annotations

import struct
from typing import BinaryIO

# Streaming writers put these in the RIFF/data size when the length is not known yet.
_UNKNOWN_SIZES = (0, 0xFFFFFFFF)
_OGG_HEADER = struct.Struct("<4sBBqIIIB")


def wav_shortfall(f: BinaryIO, size: int) -> str | None:
    """Why a RIFF/WAVE file is cut short, or None when its data chunk is whole."""
    f.seek(0)
    head = f.read(12)
    if len(head) < 12 or head[:4] != b"RIFF" or head[8:12] != b"WAVE":
        return None
    offset = 12
    while offset + 8 <= size:
        f.seek(offset)
        chunk_id, chunk_size = struct.unpack("<4sI", f.read(8))
        body = offset + 8
        if chunk_id == b"data":
            if chunk_size in _UNKNOWN_SIZES:
                return None
            held = size - body
            if chunk_size > held:
                return f"header promises {chunk_size} bytes of audio, file holds {held}"
            return None
        offset = body + chunk_size + (chunk_size & 1)
    return "no complete 'data' chunk"


def ogg_shortfall(f: BinaryIO, size: int) -> str | None:
    """Why an Ogg stream is cut short (its last page runs past the end), or None."""
    offset = 0
    pages = 0
    while offset < size:
        f.seek(offset)
        header = f.read(_OGG_HEADER.size)
        if len(header) < _OGG_HEADER.size:
            return f"page header {pages} cut off at byte {offset}"
        capture, *_rest, segments = _OGG_HEADER.unpack(header)
        if capture != b"OggS":
            # Trailing junk after a complete stream is harmless; junk at the start is not Ogg.
            return None if pages else "no Ogg page at the start"
        table = f.read(segments)
        if len(table) < segments:
            return f"page {pages} cut off in its segment table"
        end = offset + _OGG_HEADER.size + segments + sum(table)
        if end > size:
            return f"page {pages} needs {end - size} more bytes than the file holds"
        offset = end
        pages += 1
    return None


SHORTFALL_CHECKS = {"WAV": wav_shortfall, "WAVEX": wav_shortfall, "OGG": ogg_shortfall}
