from __future__ import annotations

import tomllib

import pytest

from leakfree.cli import is_read_only, to_toml
from leakfree.config import Config


@pytest.mark.parametrize(
    "query",
    [
        "SELECT * FROM catalog",
        "  with x as (select 1) select * from x",
        "DESCRIBE HISTORY catalog",
        "SELECT 'DROP TABLE catalog' AS joke",
        "-- a comment\nSHOW TABLES",
    ],
)
def test_reading_statements_are_allowed(query):
    assert is_read_only(query)


@pytest.mark.parametrize(
    "query",
    [
        "DROP TABLE catalog",
        "DELETE FROM splits",
        "with x as (select 1) insert into catalog select * from x",
        "SELECT 1; DROP TABLE catalog",
        "UPDATE splits SET split = 'train'",
        "/* SELECT */ TRUNCATE TABLE errors",
        "",
    ],
)
def test_writing_statements_are_refused(query):
    assert not is_read_only(query)


def test_show_config_prints_toml_that_loads_back(tmp_path):
    cfg = Config.from_toml(overrides={"library.roots": ["/a b", "s3a://x/y"]})
    text = to_toml(cfg.to_dict())
    path = tmp_path / "round.toml"
    path.write_text(text)
    assert Config.from_toml(path) == cfg
    assert tomllib.loads(text)["spark"]["conf"]["spark.sql.shuffle.partitions"] == "16"
