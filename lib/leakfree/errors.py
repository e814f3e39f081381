"""What can go wrong with a file, by class: the `error_class` values of the errors table."""

from __future__ import annotations

ERROR_CLASSES = {
    # listing
    "unlistable": "a folder or root that could not be listed",
    "bad_name": "a file name that is not valid UTF-8 (the path shows the raw bytes escaped)",
    "broken_link": "a symbolic link to nothing",
    "symlink_loop": "a symbolic link back into a folder already listed",
    "fifo": "a named pipe with an audio extension (never opened: a read would wait for a writer)",
    "device": "a device node with an audio extension (never opened)",
    "socket": "a socket with an audio extension (never opened)",
    "audio_named_folder": "a folder with an audio extension; reported, and its contents listed",
    # metadata sidecar
    "metadata_orphan": "a metadata row whose file is not in the library",
    "metadata_duplicate": "a second metadata row for the same path (the first one is used)",
    "metadata_unparsable": "a metadata row the parser could not read (e.g. broken quoting)",
    # reading a file
    "missing_file": "listed, but gone by the time it was read",
    "unreadable": "the operating system refused to read it",
    "empty_file": "zero bytes",
    "size_mismatch": "more bytes than its size said when listed (a kernel file, or one still being written)",
    "not_audio": "an audio extension, but the bytes are no audio format",
    "unsupported_codec": "audio, but no decoder here reads it",
    "invalid_header": "header values no real recording has",
    "no_audio": "a valid header with zero samples",
    "truncated": "the file ends before the audio its header promises",
    "corrupt": "the decoder failed part-way, or the code reading the file raised (the message says what)",
    # verifying a pair
    "unverifiable": "a candidate pair whose stored features could not be compared (the message names the other file)",
}


class LeakfreeError(Exception):
    """A problem with what the user asked for; the CLI prints its message, not a traceback."""


class AudioError(Exception):
    """A file that cannot be used, with its class (a key of ERROR_CLASSES)."""

    def __init__(self, error_class: str, message: str):
        if error_class not in ERROR_CLASSES:
            raise ValueError(f"unknown error class {error_class!r}")
        super().__init__(f"{error_class}: {message}")
        self.error_class = error_class
        self.message = message
