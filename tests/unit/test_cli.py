from __future__ import annotations

import tomllib

from leakfree.config import Config, to_toml


def test_show_config_prints_toml_that_loads_back(tmp_path):
    cfg = Config.from_toml(
        overrides={
            "library.roots": ["/a b", "s3a://x/y"],
            "contamination.references": {"clotho_eval": "/data/clotho/evaluation", "esc50": ["/e/1", "/e/2"]},
            "contamination.lists": {"clotho_eval": "/data/clotho/eval.csv"},
        }
    )
    text = to_toml(cfg.to_dict())
    path = tmp_path / "round.toml"
    path.write_text(text)
    assert Config.from_toml(path) == cfg
    assert tomllib.loads(text)["spark"]["conf"]["spark.sql.shuffle.partitions"] == "16"


def test_the_cli_loads_without_scipy_or_spark():
    import subprocess
    import sys

    code = "import sys, leakfree.cli; print(sorted(m for m in ('scipy', 'pyspark', 'librosa') if m in sys.modules))"
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert loaded.strip() == "[]"  # `leakfree --help` answers at once


def test_contamination_options_take_name_equals_value(capsys):
    from leakfree.cli import main

    assert main(["contamination", "--reference", "/data/eval"]) == 2  # refused before Spark starts
    assert "--reference takes NAME=VALUE" in capsys.readouterr().err
    assert main(["contamination", "--reference", "eval=/e", "--list", "other=/l.txt"]) == 2
    assert "contamination.lists names no declared reference: other" in capsys.readouterr().err
