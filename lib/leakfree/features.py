"""The features stage: decode each catalogued file on the executors and keep what the
dedup stages compare — digests, landmark hashes, MinHash signatures, a log-mel matrix.

Only files that are new or changed since their features were computed (by file_id and
content digest) are decoded; the results are merged into the `features` table.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import partial

import numpy as np
import pyarrow as pa
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from leakfree import rowmap, tables
from leakfree.config import FeaturesConfig
from leakfree.decode import decode_mono
from leakfree.edges import AUDIO_FAMILIES
from leakfree.errors import AudioError
from leakfree.fingerprint import Fingerprint, fingerprint, mel_basis
from leakfree.minhash import MinHasher, caption_shingles, window_spans
from leakfree.rowmap import with_errors
from leakfree.runs import RunLog

log = logging.getLogger("leakfree")

FEATURES_SCHEMA = tables.schema("features")
# Landmark hashes use 25 bits; bit 30 marks the dense family in the stored hash list.
DENSE_TAG = np.uint32(1 << 30)
RESULT_SCHEMA = with_errors(*FEATURES_SCHEMA, ("path", pa.string()))


@dataclass
class Extractor:
    """Per-process state for feature extraction (permutations, mel filters), built once."""

    settings: FeaturesConfig

    def __post_init__(self) -> None:
        self.hasher = MinHasher(self.settings.num_perm, self.settings.seed)
        self.mel = mel_basis(self.settings.fingerprint, self.settings.analysis_rate)

    def extract(self, path: str, caption: str | None) -> dict:
        """One features row; a file that cannot be used comes back with its error class
        (any other exception is the guarded map's to catch)."""
        s = self.settings
        row: dict = {"path": path}
        try:
            decoded = decode_mono(path, rate=s.analysis_rate, max_seconds=s.max_seconds)
        except AudioError as exc:
            return {**row, "error_class": exc.error_class, "message": exc.message}
        fp = fingerprint(decoded.samples, s.analysis_rate, s.fingerprint, self.mel)
        hop_s = s.fingerprint.hop / s.analysis_rate
        spans = signature_spans(fp, window=round(s.segment_s / hop_s), hop=round(s.segment_hop_s / hop_s))
        segments = [
            {"family": family, "start_s": seg.start_frame * hop_s, "signature": seg.signature}
            for family, hashes, times in zip(
                AUDIO_FAMILIES,
                (fp.hashes, fp.dense_hashes, fp.strong_hashes, fp.triplet_hashes),
                (fp.times, fp.dense_times, fp.strong_times, fp.triplet_points >> 10),
                strict=True,
            )
            for seg in self.hasher.segments(hashes, times, spans)
        ]
        shingles = caption_shingles(caption, s.caption_shingle_words)
        return {
            **row,
            "pcm_sha256": decoded.pcm_sha256,
            "decoded_s": decoded.seconds,
            "capped": decoded.capped,
            "flag": fp.flag,
            "active_s": fp.active_seconds,
            "hop_s": hop_s,
            # Both families, the dense one tagged, so that the verifier can align short
            # sounds by their hashes too.
            "hashes": np.concatenate([fp.hashes, fp.dense_hashes | DENSE_TAG]).astype(np.int32),
            "times": np.concatenate([fp.times, fp.dense_times]),
            "triplet_hashes": fp.triplet_hashes.astype(np.int32),
            "triplet_points": fp.triplet_points,
            "segments": segments,
            "caption_signature": self.hasher.text_signature(shingles) if shingles else None,
            "logmel": fp.logmel.tobytes(),
            "logmel_bands": fp.logmel.shape[1],
            "logmel_hop_s": hop_s * s.fingerprint.mel_every,
        }


def signature_spans(fp: Fingerprint, *, window: int, hop: int) -> list[tuple[int, int]]:
    """Windows over the whole file, plus windows over each sound when the file holds several
    (a sound inside a longer file then has a window of its own to match)."""
    spans = window_spans(0, fp.frames, window, hop)
    if len(fp.events) > 1:
        spans += [w for start, end in fp.events for w in window_spans(start, end, window, hop)]
    return sorted(set(spans))


def extract_work(settings: FeaturesConfig) -> rowmap.RowWork:
    """The features row of one catalog row (file_id, path, content_sha256, caption)."""
    extractor = Extractor(settings)
    return lambda r: [
        {"file_id": r["file_id"], "content_sha256": r["content_sha256"], **extractor.extract(r["path"], r["caption"])}
    ]


def forget_older_fingerprints(spark: SparkSession, warehouse: str) -> None:
    """Files fingerprinted by a leakfree without triplet hashes are fingerprinted again:
    their features rows go, and so do their band index rows, so that the candidates stage
    bands them again, triplets included. Their verified edges stay. The index rows go
    first: a run killed in between finds the same old features on its rerun."""
    tables.ensure(spark, warehouse, "features")
    old = tables.read(spark, warehouse, "features").where("triplet_hashes IS NULL").select("file_id").persist()
    count = old.count()
    if count:
        log.warning("features: %d files were fingerprinted by an older leakfree; fingerprinting them again", count)
        if tables.exists(spark, warehouse, "band_index"):
            tables.delete_matching(spark, warehouse, "band_index", old, "t.file_id = s.file_id")
        tables.delete_matching(spark, warehouse, "features", old, "t.file_id = s.file_id")
    old.unpersist()


@contextmanager
def fingerprinted(todo: DataFrame, count: int, settings: FeaturesConfig) -> Iterator[rowmap.Mapped]:
    """Features rows of `todo` (file_id, path, content_sha256, caption; `count` rows),
    decoded on the executors, and the errors (path, file_id, error_class, message)."""
    with rowmap.map_rows(
        todo,
        tasks=rowmap.tasks_for(count, settings.files_per_task),
        keys=("file_id",),
        make_work=partial(extract_work, settings),
        schema=RESULT_SCHEMA,
        error_class="corrupt",
    ) as results:
        yield rowmap.Mapped(
            results.good.select(*FEATURES_SCHEMA.names),
            results.errors.select("path", "file_id", "error_class", "message"),
        )


def build_features(spark: SparkSession, *, settings: FeaturesConfig, warehouse: str, run: RunLog) -> None:
    with run.stage("features") as stats:
        catalog = tables.read(spark, warehouse, "catalog").where("NOT retired")
        caption = (
            F.col(settings.caption_column).cast("string")
            if settings.caption_column in catalog.columns
            else F.lit(None).cast("string")
        )
        todo = catalog.select("file_id", "path", "content_sha256", caption.alias("caption"))
        if tables.exists(spark, warehouse, "features"):
            forget_older_fingerprints(spark, warehouse)
            done = tables.read(spark, warehouse, "features").select("file_id", "content_sha256")
            todo = todo.join(done, ["file_id", "content_sha256"], "left_anti")
        pending = todo.count()
        stats.counters["files_to_fingerprint"] = pending
        log.info("features: decoding %d new or changed files", pending)
        with fingerprinted(todo, pending, settings) as results:
            # Counted (and so cached) before the write: recomputed after it, `todo` would find
            # these files fingerprinted and count none of them.
            stats.counters["files_fingerprinted"] = results.good.count()
            if pending:
                run.write(results.good, "features")
            stats.errors = run.record_errors("features", results.errors)
