"""The training benchmarks run: bench/gpu_train.py's argument parsing and CPU dry run, its FLOP count."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

from tests.conftest import shared_file

REPO = Path(__file__).resolve().parents[2]


def _load(name: str):
    spec = importlib.util.spec_from_file_location(name, REPO / "bench" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_gpu_train_arguments():
    bench = _load("gpu_train")
    args = bench.parse_args(["--seq", "4096", "--lora", "attention", "--gradient-checkpointing"])
    assert args.seq == 4096 and args.lora == "attention" and args.gradient_checkpointing and not args.dry_run
    dry = bench.parse_args(["--dry-run"])
    assert dry.seq == 64 and dry.batch == 2
    with pytest.raises(SystemExit):
        bench.parse_args(["--lora", "mlp"])


def test_gpu_train_dry_run_on_cpu(tmp_path):
    bench = _load("gpu_train")
    out = tmp_path / "r.json"
    result = bench.main(["--dry-run", "--steps", "2", "--warmup", "1", "--optim", "adamw", "--json", str(out)])
    assert result["tokens_per_s"] > 0 and result["trainable_by_kind"]["experts"] > 0
    assert len(result["losses"]) == 3 and json.loads(out.read_text())["seq"] == 64


def test_gpt_oss_20b_active_parameters():
    from transformers import GptOssConfig

    raw = json.loads(shared_file("gpt-oss", "config.json").read_text())
    raw.pop("quantization_config")
    config = GptOssConfig(**{k: v for k, v in raw.items() if k not in ("architectures", "transformers_version")})
    flops, active = _load("gpu_train").model_flops_per_token(config, 2048)
    assert 3.5e9 < active < 3.7e9  # OpenAI: 3.6B active parameters per token (lm_head included)
    assert flops > 6 * active
