"""One frozen config tree, loaded from TOML on top of the embedded defaults (local.toml)."""

from __future__ import annotations

import dataclasses
import fnmatch
import hashlib
import json
import math
import re
import tomllib
import typing
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from leakfree.edges import CAPTION, DUPLICATE_RELATIONS
from leakfree.errors import LeakfreeError
from leakfree.params import BandView, FingerprintParams, ShapeParams, ThroughParams, VerifyParams


class ConfigError(LeakfreeError):
    """A config file or override that names an unknown key or holds a wrong type."""


@dataclass(frozen=True)
class LibraryConfig:
    roots: tuple[str, ...]
    metadata: str
    extensions: tuple[str, ...]


@dataclass(frozen=True)
class WarehouseConfig:
    path: str
    lock_stale_after_s: float


@dataclass(frozen=True)
class SparkConfig:
    master: str
    app_name: str
    jars_dir: str
    progress_bar: bool
    log_level: str
    conf: dict[str, str]


@dataclass(frozen=True)
class CatalogConfig:
    files_per_task: int
    read_chunk_bytes: int
    max_sample_rate: int
    max_channels: int


@dataclass(frozen=True)
class FeaturesConfig:
    files_per_task: int
    analysis_rate: int
    max_seconds: float
    segment_s: float
    segment_hop_s: float
    num_perm: int
    seed: int
    caption_column: str
    caption_shingle_words: int
    fingerprint: FingerprintParams

    def __post_init__(self) -> None:
        fp = self.fingerprint
        if fp.n_fft // 2 + 1 >= 1 << 9:
            raise ConfigError("features.fingerprint.n_fft must be below 1022: landmark hashes keep 9 bits per bin")
        for name, peaks in (("sparse", fp.sparse), ("dense", fp.dense), ("strong", fp.strong)):
            if (peaks.max_dt + 1) // peaks.dt_quant >= 1 << 7:
                raise ConfigError(f"features.fingerprint.{name}: max_dt / dt_quant must stay below 127")
        # Triplet hashes pack each part into a fixed number of bits (fingerprint.triplet_hashes):
        # a part that outgrew its bits would run into its neighbour and make false matches.
        t = fp.triplets
        for key, value, limit in (
            ("8 * anchor_steps", 8 * t.anchor_steps, 31),
            ("time_steps", t.time_steps, 16),
            ("log2(max_dt) * distance_steps", math.log2(max(t.max_dt, 1)) * t.distance_steps, 15),
        ):
            if value > limit:
                raise ConfigError(f"features.fingerprint.triplets: {key} must stay at or below {limit}, got {value}")


@dataclass(frozen=True)
class DedupConfig:
    audio_threshold: float
    triplet_threshold: float
    caption_threshold: float
    max_bucket: int
    pairs_per_task: int
    shapes: ShapeParams
    mid_shapes: BandView
    verify: VerifyParams
    through: ThroughParams


ROLES = ("join", "audit")


# What makes one copy of a recording better than another (canonical.CRITERIA).
CANONICAL_CRITERIA = ("lossless", "sample_rate", "channels", "active_audio", "oldest", "path")


@dataclass(frozen=True)
class GroupsConfig:
    setup_columns: tuple[str, ...]
    coarse_share: float
    caption_margin_bits: float
    caption_min_similarity: float
    checkpoint_every: int
    max_iterations: int
    driver_max_edges: int
    roles: dict[str, str]
    canonical_order: tuple[str, ...]

    def __post_init__(self) -> None:
        unknown = sorted(set(self.canonical_order) - set(CANONICAL_CRITERIA))
        if unknown or len(set(self.canonical_order)) != len(self.canonical_order):
            raise ConfigError(
                f"groups.canonical_order must name distinct criteria of {', '.join(CANONICAL_CRITERIA)}, "
                f"got {list(self.canonical_order)}"
            )
        fixed = (*DUPLICATE_RELATIONS, CAPTION)
        clashes = sorted(set(self.setup_columns) & set(fixed))
        if clashes:
            raise ConfigError(f"groups.setup_columns: {', '.join(clashes)} name edge types; rename the column")
        known = (*fixed, *self.setup_columns)
        for relation, role in self.roles.items():
            if relation not in known:
                raise ConfigError(f"groups.roles.{relation}: not a relation; use one of {', '.join(known)}")
            if role not in ROLES:
                raise ConfigError(f"groups.roles.{relation} must be 'join' or 'audit', got {role!r}")

    def role(self, relation: str) -> str:
        """The role of an edge type or setup column; unnamed relations join."""
        return self.roles.get(relation, "join")


@dataclass(frozen=True)
class SplitsConfig:
    names: tuple[str, ...]
    ratios: tuple[float, ...]
    stratify_by: str
    seed: int
    tolerance: float
    merge_policy: str
    frozen: str
    short_sound_split: str
    short_sound_s: float
    short_sound_share: float

    def __post_init__(self) -> None:
        if len(self.names) != len(self.ratios) or len(set(self.names)) != len(self.names):
            raise ConfigError("splits.names must be distinct and as many as splits.ratios")
        if abs(sum(self.ratios) - 1.0) > 1e-6 or min(self.ratios) <= 0:
            raise ConfigError(f"splits.ratios must be positive and sum to 1, got {list(self.ratios)}")
        if self.merge_policy not in ("move_smaller", "frozen"):
            raise ConfigError(f"splits.merge_policy must be 'move_smaller' or 'frozen', got {self.merge_policy!r}")
        if self.merge_policy == "frozen" and self.frozen not in self.names:
            raise ConfigError(f"splits.frozen must name a split ({', '.join(self.names)}), got {self.frozen!r}")
        if self.short_sound_split and self.short_sound_split not in self.names:
            raise ConfigError(
                f'splits.short_sound_split must name a split ({", ".join(self.names)}) or be "", '
                f"got {self.short_sound_split!r}"
            )
        if self.merge_policy == "frozen" and self.short_sound_split == self.frozen:
            raise ConfigError("splits.short_sound_split cannot be the frozen split: it takes no new files")


@dataclass(frozen=True)
class AuditConfig:
    inputs: tuple[str, ...]


@dataclass(frozen=True)
class ReportConfig:
    folder: str
    largest_groups: int
    members_per_group: int
    preview_seconds: float


@dataclass(frozen=True)
class ContaminationConfig:
    references: dict[str, tuple[str, ...]]
    lists: dict[str, str]
    metadata: dict[str, str]
    key_column: str
    min_correlation: float
    forget: tuple[str, ...]

    def __post_init__(self) -> None:
        for kind, names in (("references", self.references), ("lists", self.lists), ("metadata", self.metadata)):
            for name in names:
                if not REFERENCE_NAME.fullmatch(name):
                    raise ConfigError(
                        f"contamination.{kind}: {name!r} is not a reference name (letters, digits, _ and -)"
                    )
        for kind, names in (("lists", self.lists), ("metadata", self.metadata)):
            orphans = sorted(set(names) - set(self.references))
            if orphans:
                raise ConfigError(f"contamination.{kind} names no declared reference: {', '.join(orphans)}")
        clash = sorted(set(self.forget) & set(self.references))
        if clash:
            raise ConfigError(f"contamination: {', '.join(clash)} both declared and forgotten")


REFERENCE_NAME = re.compile(r"[A-Za-z0-9_-]+")


@dataclass(frozen=True)
class Config:
    library: LibraryConfig
    warehouse: WarehouseConfig
    spark: SparkConfig
    catalog: CatalogConfig
    features: FeaturesConfig
    dedup: DedupConfig
    groups: GroupsConfig
    splits: SplitsConfig
    audit: AuditConfig
    report: ReportConfig
    contamination: ContaminationConfig

    @classmethod
    def from_toml(cls, path: str | Path | None = None, overrides: dict[str, Any] | None = None) -> Config:
        """Defaults, then the file at `path` (if any), then dotted-key `overrides`."""
        data = default_dict()
        if path is not None:
            try:
                user = tomllib.loads(Path(path).read_text(encoding="utf-8"))
            except FileNotFoundError as exc:
                raise ConfigError(f"config file not found: {path}") from exc
            except tomllib.TOMLDecodeError as exc:
                raise ConfigError(f"config file {path} is not valid TOML: {exc}") from exc
            data = _merge(data, user, where="")
        for dotted, value in (overrides or {}).items():
            data = _merge(data, _nest(dotted.split("."), value), where="")
        return _build(cls, data, where="")

    def replace(self, **sections: Any) -> Config:
        return dataclasses.replace(self, **sections)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def digest(self) -> str:
        canonical = json.dumps(self.to_dict(), sort_keys=True, default=list)
        return hashlib.sha256(canonical.encode()).hexdigest()[:16]


@dataclass(frozen=True)
class Range:
    """The values a numeric key may take; None leaves a side open."""

    low: float | None = None
    high: float | None = None
    above: bool = False  # the low end itself is excluded

    def holds(self, value: float) -> bool:
        if self.low is not None and (value <= self.low if self.above else value < self.low):
            return False
        return self.high is None or value <= self.high

    def __str__(self) -> str:
        low = "" if self.low is None else f"{'>' if self.above else '>='} {self.low:g}"
        high = "" if self.high is None else f"<= {self.high:g}"
        return " and ".join(filter(None, [low, high]))


POSITIVE = Range(0, above=True)
COUNT = Range(1)
NON_NEGATIVE = Range(0)
SHARE = Range(0, 1)
POSITIVE_SHARE = Range(0, 1, above=True)

# Every numeric key's valid values, by dotted name (`*` any part, `[]` a list's items); the
# first match wins. A value outside fails before Spark starts, e.g. read_chunk_bytes = 0 would
# hash every file as empty, and a NaN ratio would pass every comparison.
RANGES: dict[str, Range] = {
    "*.files_per_task": COUNT,
    "*.seed": NON_NEGATIVE,
    "warehouse.lock_stale_after_s": POSITIVE,
    "catalog.read_chunk_bytes": Range(4096),
    "catalog.max_sample_rate": COUNT,
    "catalog.max_channels": COUNT,
    "features.analysis_rate": Range(2000, 192000),
    "features.max_seconds": POSITIVE,
    "features.segment_s": POSITIVE,
    "features.segment_hop_s": POSITIVE,
    "features.num_perm": Range(2),
    "features.caption_shingle_words": COUNT,
    "features.fingerprint.n_fft": Range(32),
    "features.fingerprint.floor_db": Range(-300, 0),
    "features.fingerprint.*.neighborhood[]": COUNT,
    "features.fingerprint.*.min_dt": NON_NEGATIVE,
    "features.fingerprint.*.max_octaves": POSITIVE,
    "features.fingerprint.*rel_db": POSITIVE,
    "features.fingerprint.dense_below_*": NON_NEGATIVE,
    "features.fingerprint.mel_fmin": NON_NEGATIVE,
    "features.fingerprint.mel_fmax": POSITIVE,
    "features.fingerprint.*": COUNT,  # bins, frames, steps, fan-outs
    "dedup.triplet_threshold": SHARE,  # 0: triplets are not banded
    "dedup.*_threshold": POSITIVE_SHARE,
    "dedup.max_bucket": Range(2),
    "dedup.pairs_per_task": COUNT,
    "dedup.shapes.*_db": POSITIVE,
    "dedup.shapes.min_similarity": Range(-1, 1),
    "dedup.shapes.*": COUNT,  # frames, bands, neighbours, windows
    "dedup.mid_shapes.*_hz": NON_NEGATIVE,
    "dedup.mid_shapes.neighbors": NON_NEGATIVE,
    "dedup.mid_shapes.min_similarity": Range(-1, 1),
    "dedup.mid_shapes.bands": COUNT,
    "dedup.mid_shapes.min_windows": COUNT,
    "contamination.min_correlation": SHARE,
    "dedup.verify.*correlation": SHARE,
    "dedup.verify.*_share": SHARE,
    "dedup.verify.caption_min_jaccard": SHARE,
    "dedup.verify.min_share_span_s": NON_NEGATIVE,
    "dedup.verify.min_backed_overlap_s": NON_NEGATIVE,
    "dedup.verify.*_echo_s": NON_NEGATIVE,
    "dedup.verify.max_echo_gain": SHARE,
    "dedup.verify.given_offset_error_s": POSITIVE,
    "dedup.verify.*_db": POSITIVE,
    "dedup.verify.*max_scale_change": Range(0, 0.5),
    "dedup.verify.scale_step": POSITIVE,
    "dedup.verify.peak_freq_tolerance": POSITIVE_SHARE,
    "dedup.verify.*_significance": POSITIVE,
    "dedup.verify.min_reading_lead": NON_NEGATIVE,
    "dedup.verify.*": COUNT,  # hashes, votes, frames
    "dedup.through.max_degree": NON_NEGATIVE,
    "dedup.through.*": SHARE,
    "groups.coarse_share": POSITIVE_SHARE,
    "groups.caption_margin_bits": NON_NEGATIVE,
    "groups.caption_min_similarity": SHARE,
    "groups.driver_max_edges": NON_NEGATIVE,
    "groups.*": COUNT,
    "splits.ratios[]": POSITIVE_SHARE,
    "splits.tolerance": SHARE,
    "splits.short_sound_s": NON_NEGATIVE,
    "splits.short_sound_share": POSITIVE_SHARE,
    "report.largest_groups": NON_NEGATIVE,
    "report.members_per_group": COUNT,
    "report.preview_seconds": POSITIVE,
}


def range_of(name: str) -> Range | None:
    return next((r for pattern, r in RANGES.items() if fnmatch.fnmatchcase(name, pattern)), None)


def _check_range(name: str, value: float) -> None:
    if isinstance(value, float) and not math.isfinite(value):
        raise ConfigError(f"config key '{name}' must be a finite number, got {value}")
    valid = range_of(name)
    if valid is not None and not valid.holds(value):
        raise ConfigError(f"config key '{name}' must be {valid}, got {value!r}")


# Keys an older config may still hold, and what replaced them.
RETIRED_KEYS = {
    "groups.edge_types": "every relation now has a role: --set groups.roles.caption=audit stops caption joins",
    "audit.setup_columns": "every column of groups.setup_columns is audited; give it the role audit "
    '(groups.roles.<column> = "audit") to audit it without joining',
}


def default_dict() -> dict[str, Any]:
    text = resources.files("leakfree").joinpath("local.toml").read_text(encoding="utf-8")
    return tomllib.loads(text)


def parse_override(assignment: str) -> tuple[str, Any]:
    """`key.sub=value` with value read as a TOML value, falling back to a plain string."""
    key, sep, raw = assignment.partition("=")
    if not sep or not key.strip():
        raise ConfigError(f"override {assignment!r} is not of the form section.key=value")
    try:
        value = tomllib.loads(f"v = {raw}")["v"]
    except tomllib.TOMLDecodeError:
        value = raw
    return key.strip(), value


def _nest(keys: list[str], value: Any) -> dict[str, Any]:
    return {keys[0]: value} if len(keys) == 1 else {keys[0]: _nest(keys[1:], value)}


def _merge(base: dict[str, Any], extra: dict[str, Any], where: str) -> dict[str, Any]:
    merged = dict(base)
    for key, value in extra.items():
        name = f"{where}{key}"
        if name in RETIRED_KEYS:
            raise ConfigError(f"config key '{name}' is gone: {RETIRED_KEYS[name]}")
        if key not in base:
            valid = ", ".join(sorted(base)) or "(none)"
            raise ConfigError(f"unknown config key '{name}'; valid keys here: {valid}")
        if isinstance(base[key], dict) and not _is_free_table(name):
            if not isinstance(value, dict):
                raise ConfigError(f"config key '{name}' must be a table of settings")
            merged[key] = _merge(base[key], value, where=f"{name}.")
        elif isinstance(base[key], dict):
            merged[key] = {**base[key], **value} if isinstance(value, dict) else value
        else:
            merged[key] = value
    return merged


def _is_free_table(dotted: str) -> bool:
    """Tables whose keys are free-form (passed through), not fixed settings."""
    return dotted in (
        "spark.conf",
        "groups.roles",
        *(f"contamination.{k}" for k in ("references", "lists", "metadata")),
    )


def _build(cls: type, data: dict[str, Any], where: str) -> Any:
    hints = typing.get_type_hints(cls)
    values = {}
    for field in dataclasses.fields(cls):
        name = f"{where}{field.name}"
        if field.name not in data:
            raise ConfigError(f"config key '{name}' is missing")
        values[field.name] = _coerce(hints[field.name], data[field.name], name)
    return cls(**values)


def _coerce(kind: Any, value: Any, name: str) -> Any:
    if dataclasses.is_dataclass(kind):
        return _build(kind, value, where=f"{name}.")
    origin = typing.get_origin(kind)
    if origin is tuple:
        args = typing.get_args(kind)
        if not isinstance(value, list):
            raise ConfigError(f"config key '{name}' must be a list, got {value!r}")
        if args[-1] is Ellipsis:
            return tuple(_coerce(args[0], item, f"{name}[]") for item in value)
        if len(value) != len(args):
            raise ConfigError(f"config key '{name}' must be a list of {len(args)} values, got {value!r}")
        return tuple(_coerce(k, item, f"{name}[]") for k, item in zip(args, value, strict=True))
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"config key '{name}' must be a table, got {value!r}")
        items = typing.get_args(kind)[1]
        if items is str:
            return {str(k): str(v) for k, v in value.items()}
        # A list-valued table (reference roots) takes one value as a list of one.
        return {str(k): _coerce(items, [v] if isinstance(v, str) else v, f"{name}.{k}") for k, v in value.items()}
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    if kind is bool and not isinstance(value, bool):
        raise ConfigError(f"config key '{name}' must be true or false, got {value!r}")
    if kind is int and (isinstance(value, bool) or not isinstance(value, int)):
        raise ConfigError(f"config key '{name}' must be an integer, got {value!r}")
    if not isinstance(value, kind):
        raise ConfigError(f"config key '{name}' must be a {kind.__name__}, got {value!r}")
    if kind in (int, float):
        _check_range(name, value)
    return value


def to_toml(data: dict[str, Any], prefix: str = "") -> str:
    """The config tree (`Config.to_dict()`) as TOML that `Config.from_toml` reads back."""
    scalars = [(k, v) for k, v in data.items() if not isinstance(v, dict)]
    tables_ = [(k, v) for k, v in data.items() if isinstance(v, dict)]
    lines = [f"[{prefix}]"] if prefix and scalars else []
    lines += [f"{_toml_key(k)} = {_toml_value(v)}" for k, v in scalars]
    for key, value in tables_:
        block = to_toml(value, f"{prefix}.{_toml_key(key)}" if prefix else _toml_key(key))
        lines += ["", block] if lines else [block]
    return "\n".join(lines)


def _toml_key(key: str) -> str:
    return key if re.fullmatch(r"[A-Za-z0-9_-]+", key) else json.dumps(key)


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    return json.dumps(str(value), ensure_ascii=False)
