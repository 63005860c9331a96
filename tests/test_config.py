"""Config precedence (defaults -> YAML -> key=value), unknown keys, types, and every shipped YAML."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from wikitune.errors import WikituneError
from wikitune.config import field_help, load_config, parse_overrides, write_config
from wikitune.train.cpt import CPTConfig
from wikitune.train.lora import LoraSettings

REPO = Path(__file__).resolve().parents[1]


def test_precedence_defaults_yaml_overrides(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("max_steps: 10\nlearning_rate: 1e-3\nlora:\n  r: 8\n  dropout: 0.1\n", encoding="utf-8")
    cfg = load_config(CPTConfig, path, ["lora.r=4", "seed=7", "lora.target_parameters=[]"])
    assert cfg.max_steps == 10 and cfg.learning_rate == 1e-3  # YAML (2e-4 style without a dot too)
    assert cfg.lora.r == 4 and cfg.lora.dropout == 0.1 and cfg.lora.target_parameters == []
    assert cfg.seed == 7 and cfg.block_size == CPTConfig().block_size  # override, default
    write_config(cfg, tmp_path / "out.yaml")
    again = load_config(CPTConfig, tmp_path / "out.yaml")
    assert again == cfg


@pytest.mark.parametrize("overrides, message", [
    (["nope=1"], "unknown config key(s) nope"),
    (["lora.rank=4"], "unknown config key(s) lora.rank"),
    (["max_steps=ten"], "max_steps must be an integer"),
    (["max_steps=0"], "max_steps must be -1"),
    (["lora.r=0"], "lora.r must be 1 or more"),
    (["heldout_fraction=1.5"], "heldout_fraction must be in"),
    (["justakey"], "is not key=value"),
    (["tiny.num_experts_per_tok=9"], "exceeds tiny.num_local_experts"),
])
def test_bad_config_is_one_clear_error(overrides, message):
    with pytest.raises(WikituneError, match=message.replace("(", r"\(").replace(")", r"\)")):
        load_config(CPTConfig, None, overrides)


def test_parse_overrides_nested():
    assert parse_overrides(["a.b=1", "a.c=[x, y]", "d=null"]) == {"a": {"b": 1, "c": ["x", "y"]}, "d": None}


def test_every_field_has_help():
    import dataclasses

    from wikitune.gptoss.model import TinyGptOssConfig
    from wikitune.train.sft import SFTConfig

    for cls in (CPTConfig, SFTConfig, LoraSettings, TinyGptOssConfig):

        helps = field_help(cls)
        missing = [f.name for f in dataclasses.fields(cls) if not helps.get(f.name)]
        assert not missing, f"{cls.__name__} fields without help: {missing}"


def _config_class(path: Path):
    from wikitune.train.sft import SFTConfig

    return {"cpt": CPTConfig, "sft": SFTConfig}[path.stem.split("-")[0]]


TRAIN_CONFIGS = sorted(p for p in (REPO / "configs").glob("*/*.yaml") if p.stem.split("-")[0] in ("cpt", "sft"))
ACCELERATE_CONFIGS = sorted((REPO / "configs" / "accelerate").glob("*.yaml"))


def test_train_configs_are_shipped():
    names = {f"{p.parent.name}/{p.name}" for p in TRAIN_CONFIGS}
    assert {"tiny/cpt.yaml", "tiny/sft.yaml", "gpt-oss-20b/cpt.yaml", "gpt-oss-20b/sft.yaml",
            "gpt-oss-20b/cpt-gintama.yaml"} <= names


@pytest.mark.parametrize("path", ACCELERATE_CONFIGS, ids=lambda p: p.name)
def test_accelerate_configs_parse(path):
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    assert data["distributed_type"] in ("MULTI_GPU", "FSDP", "DEEPSPEED")
    assert path.read_text(encoding="utf-8").startswith("# accelerate launch --config_file configs/accelerate/")


@pytest.mark.parametrize("path", TRAIN_CONFIGS,
                         ids=lambda p: f"{p.parent.name}/{p.name}")
def test_every_shipped_config_loads_and_starts_with_its_command(path):
    first = path.read_text(encoding="utf-8").splitlines()[0]
    stage = path.stem.split("-")[0]
    assert first.startswith(f"# wikitune {stage} --config configs/{path.parent.name}/{path.name}"), first
    load_config(_config_class(path), path)
