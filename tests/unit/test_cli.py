from __future__ import annotations

import tomllib

from leakfree.cli import to_toml
from leakfree.config import Config


def test_show_config_prints_toml_that_loads_back(tmp_path):
    cfg = Config.from_toml(overrides={"library.roots": ["/a b", "s3a://x/y"]})
    text = to_toml(cfg.to_dict())
    path = tmp_path / "round.toml"
    path.write_text(text)
    assert Config.from_toml(path) == cfg
    assert tomllib.loads(text)["spark"]["conf"]["spark.sql.shuffle.partitions"] == "16"
