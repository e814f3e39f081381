from __future__ import annotations

import pytest

from leakfree.config import Config, ConfigError, parse_override, range_of


def test_defaults_load_and_every_section_is_typed():
    cfg = Config.from_toml()
    assert cfg.catalog.files_per_task > 0
    assert "wav" in cfg.library.extensions and isinstance(cfg.library.extensions, tuple)
    assert cfg.digest() == Config.from_toml().digest()


def test_user_file_overrides_a_subset(tmp_path):
    path = tmp_path / "mine.toml"
    path.write_text('[warehouse]\npath = "/data/wh"\n[spark.conf]\n"spark.executor.memory" = "4g"\n')
    cfg = Config.from_toml(path)
    assert cfg.warehouse.path == "/data/wh"
    assert cfg.spark.conf["spark.executor.memory"] == "4g"
    assert "spark.sql.shuffle.partitions" in cfg.spark.conf  # the default table is merged, not replaced
    assert cfg.digest() != Config.from_toml().digest()


def test_unknown_key_names_the_key_and_the_valid_ones(tmp_path):
    path = tmp_path / "typo.toml"
    path.write_text("[catalog]\nfiles_per_tsk = 8\n")
    with pytest.raises(ConfigError, match=r"catalog\.files_per_tsk.*files_per_task"):
        Config.from_toml(path)


def test_unknown_section_is_rejected():
    with pytest.raises(ConfigError, match="unknown config key 'nope'"):
        Config.from_toml(overrides={"nope.key": 1})


@pytest.mark.parametrize(
    ("key", "value", "wording"),
    [
        ("catalog.files_per_task", "many", "must be an integer"),
        ("catalog.files_per_task", True, "must be an integer"),
        ("spark.progress_bar", "yes", "must be true or false"),
        ("library.roots", "/one/path", "must be a list"),
        ("warehouse", "x", "must be a table"),
    ],
)
def test_wrong_types_name_the_key(key, value, wording):
    with pytest.raises(ConfigError, match=rf"'{key}' {wording}"):
        Config.from_toml(overrides={key: value})


def test_bad_toml_and_missing_file_are_config_errors(tmp_path):
    broken = tmp_path / "broken.toml"
    broken.write_text("[catalog\n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        Config.from_toml(broken)
    with pytest.raises(ConfigError, match="not found"):
        Config.from_toml(tmp_path / "absent.toml")


def test_override_values_are_read_as_toml():
    assert parse_override("catalog.files_per_task=8") == ("catalog.files_per_task", 8)
    assert parse_override('library.roots=["/a", "/b"]') == ("library.roots", ["/a", "/b"])
    assert parse_override("warehouse.path=/data/wh") == ("warehouse.path", "/data/wh")
    with pytest.raises(ConfigError):
        parse_override("no-equals-sign")


@pytest.mark.parametrize(
    ("overrides", "wording"),
    [
        ({"splits.short_sound_split": "holdout"}, "short_sound_split must name a split"),
        (
            {"splits.merge_policy": "frozen", "splits.frozen": "train", "splits.short_sound_split": "train"},
            "cannot be the frozen split",
        ),
    ],
)
def test_short_sound_split_must_be_an_open_split(overrides, wording):
    with pytest.raises(ConfigError, match=wording):
        Config.from_toml(overrides=overrides)


@pytest.mark.parametrize(
    ("overrides", "wording"),
    [
        ({"groups.roles.session": "audit"}, "groups.roles.session: not a relation; use one of"),
        ({"groups.roles.setup": "maybe"}, "must be 'join' or 'audit'"),
        ({"groups.setup_columns": ["caption"]}, "name edge types"),
        ({"splits.short_sound_share": 0.0}, "short_sound_share. must be > 0 and <= 1"),
        ({"groups.edge_types": ["audio"]}, "is gone: every relation now has a role"),
    ],
)
def test_relation_roles_and_short_sound_share_are_checked(overrides, wording):
    with pytest.raises(ConfigError, match=wording):
        Config.from_toml(overrides=overrides)


def test_a_role_names_an_edge_type_or_a_setup_column_and_the_rest_join():
    groups = Config.from_toml(overrides={"groups.setup_columns": ["session", "cd"], "groups.roles.cd": "audit"}).groups
    assert groups.role("cd") == "audit" and groups.role("session") == "join" and groups.role("audio") == "join"


@pytest.mark.parametrize(
    "key, value",
    [
        ("anchor_steps", 5),
        ("time_steps", 20),
        ("distance_steps", 4),
    ],
)
def test_triplet_hash_parts_must_fit_their_bits(key, value):
    with pytest.raises(ConfigError, match=f"features.fingerprint.triplets: .*{key}"):
        Config.from_toml(overrides={f"features.fingerprint.triplets.{key}": value})


def test_the_default_triplet_parts_fit():
    assert Config.from_toml().features.fingerprint.triplets.anchor_steps * 8 <= 31


def _numeric_keys(tree, where=""):
    for key, value in tree.items():
        name = f"{where}{key}"
        if isinstance(value, dict) and name not in ("spark.conf", "groups.roles"):
            yield from _numeric_keys(value, f"{name}.")
        elif isinstance(value, (int, float)) and not isinstance(value, bool):
            yield name, value
        elif isinstance(value, (list, tuple)) and value and all(isinstance(v, (int, float)) for v in value):
            yield from ((f"{name}[]", v) for v in value)


def test_every_numeric_key_has_a_range_its_default_keeps():
    keys = dict(_numeric_keys(Config.from_toml().to_dict()))
    assert len(keys) > 80
    for name, value in keys.items():
        valid = range_of(name)
        assert valid is not None, f"{name} has no entry in config.RANGES"
        assert valid.holds(value), f"the default {name} = {value} is outside {valid}"


@pytest.mark.parametrize(
    ("key", "value", "wording"),
    [
        ("catalog.read_chunk_bytes", 0, "'catalog.read_chunk_bytes' must be >= 4096, got 0"),
        ("catalog.files_per_task", 0, "'catalog.files_per_task' must be >= 1, got 0"),
        ("features.files_per_task", -3, "must be >= 1"),
        ("splits.ratios", [float("nan"), 0.5, 0.5], "'splits.ratios[]' must be a finite number, got nan"),
        ("splits.tolerance", float("inf"), "finite"),
        ("dedup.audio_threshold", 0.0, "must be > 0 and <= 1"),
        ("dedup.triplet_threshold", -0.1, "'dedup.triplet_threshold' must be >= 0 and <= 1, got -0.1"),
        ("dedup.verify.max_scale_change", 0.9, "<= 0.5"),
        ("dedup.verify.min_backed_overlap_s", -0.1, "min_backed_overlap_s' must be >= 0, got -0.1"),
        ("dedup.verify.min_reading_lead", -0.5, "min_reading_lead' must be >= 0, got -0.5"),
        ("dedup.shapes.min_windows", 0, "'dedup.shapes.min_windows' must be >= 1, got 0"),
        ("dedup.mid_shapes.min_windows", 0, "'dedup.mid_shapes.min_windows' must be >= 1, got 0"),
        ("report.preview_seconds", 0, "> 0"),
    ],
)
def test_numbers_out_of_range_name_the_key_and_the_range(key, value, wording):
    with pytest.raises(ConfigError) as caught:
        Config.from_toml(overrides={key: value})
    assert wording in str(caught.value)
