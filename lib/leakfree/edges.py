"""The names of what links two files: the sources that propose a candidate pair and the
methods of a verified edge. Defined here once; the config is checked against them."""

from __future__ import annotations

EXACT_BYTES = "exact_bytes"
EXACT_PCM = "exact_pcm"
AUDIO = "audio"
CAPTION = "caption"
# Verified edges that say "the same recording"; caption edges only say "described alike".
DUPLICATE_RELATIONS = (EXACT_BYTES, EXACT_PCM, AUDIO)
# Landmark families, each with MinHash signatures of its own (features.segments.family).
TRIPLET = "triplet"
AUDIO_FAMILIES = ("sparse", "dense", "strong", TRIPLET)
# Nearest window shapes (shapes.py): a source of candidates only, continuous where the
# landmark families are exact.
SHAPE = "shape"
# The same over the middle of the spectrum only (candidates.shape_views): a copy band-limited
# on both sides keeps that band, and its whole-band shape moves away.
MID_SHAPE = "mid_shape"
# Both verified copies of a third file (through.py): a source of candidates only, proposed
# by the pairs stage itself after it verified the others.
THROUGH = "through"
AUDIO_SOURCES = (*AUDIO_FAMILIES, SHAPE, MID_SHAPE, THROUGH)
# A contamination match by a metadata value both sides hold (contamination.key_column).
SHARED_KEY = "metadata_key"
