"""Shared fixtures: one local SparkSession for the whole test session, and audio makers."""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import numpy as np
import pytest

from leakfree.config import Config
from leakfree.demo import SOUNDS, write_audio

SHARED_CORPUS = Path(__file__).resolve().parents[2] / "shared" / "corpus"


@pytest.fixture(scope="session")
def test_config() -> Config:
    return Config.from_toml(
        overrides={
            "spark.master": "local[2]",
            "spark.progress_bar": False,
            "spark.log_level": "ERROR",
            "spark.conf": {
                "spark.ui.enabled": "false",
                "spark.sql.shuffle.partitions": "2",
                "spark.databricks.delta.snapshotPartitions": "2",
            },
        }
    )


@pytest.fixture(scope="session")
def spark(test_config):
    from leakfree.session import build_session

    session = build_session(test_config.spark)
    yield session
    session.stop()


def library_config(test_config: Config, *roots: Path | str, metadata: Path | str = "", warehouse: Path) -> Config:
    """The test config for a library (roots and sidecar) and a warehouse."""
    return test_config.replace(
        library=dataclasses.replace(test_config.library, roots=tuple(str(r) for r in roots), metadata=str(metadata)),
        warehouse=dataclasses.replace(test_config.warehouse, path=str(warehouse)),
    )


@pytest.fixture
def make_config(test_config, tmp_path):
    """The test config for a library (roots and sidecar) with a fresh warehouse in tmp_path."""

    def make(*roots: Path | str, metadata: Path | str = "", warehouse: Path | None = None) -> Config:
        return library_config(test_config, *roots, metadata=metadata, warehouse=warehouse or tmp_path / "warehouse")

    return make


def tone(kind: str = "bell", seconds: float = 1.0, seed: int = 0, rate: int = 44100) -> np.ndarray:
    """A deterministic synthetic sound effect."""
    return SOUNDS[kind](np.random.default_rng(seed), seconds, rate)


@pytest.fixture
def audio_file(tmp_path):
    """Write a synthetic sound and return its path: audio_file("a.flac", kind="sweep")."""

    def make(
        name: str,
        kind: str = "bell",
        seconds: float = 1.0,
        seed: int = 0,
        rate: int = 44100,
        channels: int = 1,
        folder: Path | None = None,
    ) -> Path:
        signal = tone(kind, seconds, seed, rate)
        if channels > 1:
            signal = np.stack([signal] * channels, axis=1)
        path = (folder or tmp_path / "library") / name
        fmt = "MP3" if name.endswith(".mp3") else None
        write_audio(path, signal, rate, fmt=fmt)
        return path

    return make


def corpus_or_skip() -> Path:
    if not (SHARED_CORPUS / "truth.csv").exists():
        pytest.skip(f"needs the shared evaluation corpus at {SHARED_CORPUS} (not on users' machines)")
    return SHARED_CORPUS


def running_as_root() -> bool:
    return os.geteuid() == 0
