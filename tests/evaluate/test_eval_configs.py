"""Every eval YAML under configs/ loads into QAEvalConfig (unknown keys would be errors)."""

from pathlib import Path

import pytest

from wikitune.evaluate.run import QAEvalConfig
from wikitune.config import load_config

CONFIGS = sorted((Path(__file__).resolve().parents[2] / "configs").glob("*/eval*.yaml"))


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_eval_config_loads(path):
    cfg = load_config(QAEvalConfig, path)
    assert cfg.qa and cfg.output_dir.startswith("runs/")
    assert path.read_text(encoding="utf-8").startswith(f"# wikitune eval --config configs/{path.parent.name}/{path.name}")


def test_there_are_eval_configs():
    assert len(CONFIGS) >= 2
