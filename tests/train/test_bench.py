"""The training benchmarks run: bench/gpu_train.py's argument parsing, its arms compared on CPU (tiny model), the
plan's skip, its FLOP count."""

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
    args = bench.parse_args(["--seq", "4096", "--lora", "attention", "--no-gradient-checkpointing",
                             "--arms", "lowrank+chunked+wikitune_flex, peft+plain+eager"])
    assert args.seq == 4096 and args.lora == "attention" and not args.gradient_checkpointing and not args.tiny
    assert [a.name for a in args.arms] == ["lowrank+chunked+wikitune_flex", "peft+plain+eager"]
    default = bench.parse_args([])
    assert default.gradient_checkpointing and default.arms[0].name == bench.BASELINE and len(default.arms) == 5
    tiny = bench.parse_args(["--tiny"])
    assert tiny.seq == 64 and tiny.batch == 2
    for bad in (["--lora", "mlp"], ["--arms", "peft+plain"], ["--arms", "dense+plain+eager"], ["--arms", "peft+fused+eager"]):
        with pytest.raises(SystemExit):
            bench.parse_args(bad)


@pytest.mark.slow
def test_gpu_train_compares_every_arm_on_cpu(tmp_path):
    """The default arms, tiny model, CPU: each measured, ratios against the baseline, and the
    same first loss everywhere (same weights and batch: the implementations agree)."""
    bench = _load("gpu_train")
    out = tmp_path / "r.json"
    result = bench.main(["--tiny", "--steps", "1", "--warmup", "1", "--optim", "adamw", "--json", str(out)])
    assert json.loads(out.read_text()) == json.loads(json.dumps(result))
    arms = {a["arm"]: a for a in result["arms"]}
    assert list(arms) == bench.DEFAULT_ARMS and result["baseline"] == bench.BASELINE
    for arm in arms.values():
        assert arm["status"] == "ok", arm
        assert arm["tokens_per_s"] > 0 and len(arm["losses"]) == 2 and arm["plan_peak_gib"] > 0
        assert arm["trainable_by_kind"]["experts"] > 0
        assert arm["vs_baseline"]["first_loss_delta"] == pytest.approx(0.0, abs=1e-4)
    assert arms[bench.BASELINE]["vs_baseline"]["tokens_per_s"] == 1.0
    # the plan counts eager's score tensors and the plain loss's fp32 logits: the new arm needs less
    assert arms["lowrank+chunked+wikitune_flex"]["plan_peak_gib"] < arms[bench.BASELINE]["plan_peak_gib"]


def test_gpu_train_skips_an_arm_the_plan_says_will_not_fit():
    bench = _load("gpu_train")
    result = bench.main(["--tiny", "--steps", "1", "--warmup", "0", "--optim", "adamw", "--gpu-memory-gib", "0.01",
                         "--arms", "peft+plain+eager"])
    (arm,) = result["arms"]
    assert arm["status"] == "skipped" and "--plan estimates" in arm["reason"] and "0.0 GiB" in arm["reason"]
    assert result["baseline"] is None


def test_gpt_oss_20b_active_parameters():
    from transformers import GptOssConfig

    raw = json.loads(shared_file("gpt-oss", "config.json").read_text())
    raw.pop("quantization_config")
    config = GptOssConfig(**{k: v for k, v in raw.items() if k not in ("architectures", "transformers_version")})
    flops, active = _load("gpu_train").model_flops_per_token(config, 2048)
    assert 3.5e9 < active < 3.7e9  # OpenAI: 3.6B active parameters per token (lm_head included)
    assert flops > 6 * active
