"""`wikitune cpt|sft --plan`: parameter counts against hand-computed and real PEFT figures, the
memory estimate's parts, the JSON output, and the run stopped before loading when it cannot fit."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from wikitune.config import load_config
from wikitune.train.cpt import CPTConfig
from wikitune.train.plan import (GIB, ModelSizes, count_parameters, count_trainable, logits_fp32_bytes, make_plan,
                                 model_sizes)
from wikitune.train.lora import LoraSettings

REPO = Path(__file__).resolve().parents[2]
GPT_OSS = REPO.parent / "shared" / "data" / "gpt-oss"
needs_gpt_oss = pytest.mark.skipif(not (GPT_OSS / "config.json").is_file(),
                                   reason=f"{GPT_OSS}/config.json (the real gpt-oss-20b config) is not here")


def cfg_for(*overrides: str) -> CPTConfig:
    return load_config(CPTConfig, None, list(overrides))


@needs_gpt_oss
def test_gpt_oss_20b_trainable_parameters_by_hand():
    c = json.loads((GPT_OSS / "config.json").read_text())
    h, heads, kv, d = c["hidden_size"], c["num_attention_heads"], c["num_key_value_heads"], c["head_dim"]
    layers, experts, inter, r = c["num_hidden_layers"], c["num_local_experts"], c["intermediate_size"], 16
    # LoRA on a Linear (in -> out): A r x in + B out x r
    attention = layers * r * ((h + heads * d) * 2 + (h + kv * d) * 2)  # q, o; k, v
    # on a fused expert parameter: A (experts*r) x in + B out x (experts*r)
    expert = layers * experts * r * ((h + 2 * inter) + (inter + h))  # gate_up_proj, down_proj
    assert attention == 7_962_624 and attention + expert == 184_909_824

    cfg = cfg_for(f"model={GPT_OSS}", "lora.r=16")
    by_kind = count_trainable(model_sizes(cfg), cfg.lora)
    assert by_kind == {"attention": attention, "experts": expert}
    only_attention = count_trainable(model_sizes(cfg), LoraSettings(r=16, target_parameters=[]))
    assert sum(only_attention.values()) == 7_962_624
    params = count_parameters(model_sizes(cfg))
    assert round(params["total"] / 1e9, 2) == 20.91 and round(params["active"] / 1e9, 2) == 3.61  # the model card's


@pytest.mark.parametrize("lora", [
    LoraSettings(r=4),
    LoraSettings(r=8, target_modules=["q_proj", "v_proj"], target_parameters=["mlp.experts.down_proj"],
                 modules_to_save=["embed_tokens", "router"]),
])
def test_tiny_counts_equal_what_peft_creates(lora):
    import torch  # noqa: F401 - the tiny model is built for real

    from wikitune.gptoss.model import TinyGptOssConfig, build_tiny_gpt_oss
    from wikitune.train.lora import apply_lora

    tiny = TinyGptOssConfig(num_hidden_layers=3, hidden_size=48, intermediate_size=40, num_local_experts=3)
    cfg = cfg_for("tokenizer_vocab_size=300", "tiny.num_hidden_layers=3", "tiny.hidden_size=48",
                  "tiny.intermediate_size=40", "tiny.num_local_experts=3")
    sizes = model_sizes(cfg)
    model = build_tiny_gpt_oss(300, tiny)
    assert count_parameters(sizes)["total"] == sum(p.numel() for p in model.parameters())
    peft_model, coverage = apply_lora(model, lora)
    real = sum(p.numel() for p in peft_model.parameters() if p.requires_grad)
    by_kind = count_trainable(sizes, lora)
    assert sum(by_kind.values()) == real
    assert by_kind["experts"] == coverage["trainable_by_kind"]["experts"]


def test_logits_term_of_batch_8_by_2048_with_the_gpt_oss_vocabulary():
    sizes = ModelSizes(vocab_size=201_088, hidden_size=2880, intermediate_size=2880, num_hidden_layers=24,
                       num_attention_heads=64, num_key_value_heads=8, head_dim=64, num_local_experts=32,
                       num_experts_per_tok=4)
    assert round(logits_fp32_bytes(sizes, 8, 2048) / 1e9, 1) == 13.2


def test_chunked_loss_and_checkpointing_shrink_their_parts():
    base = make_plan(cfg_for("block_size=512", "batch_size=8"), gpu_memory_gib=80, count_corpus=False)
    ckpt = make_plan(cfg_for("block_size=512", "batch_size=8", "gradient_checkpointing=true"), gpu_memory_gib=80,
                     count_corpus=False)
    assert ckpt["memory_bytes"]["activations"] < base["memory_bytes"]["activations"]
    assert ckpt["memory_bytes"]["weights"] == base["memory_bytes"]["weights"]
    flash = make_plan(cfg_for("block_size=512", "attn_implementation=flash_attention_2"), gpu_memory_gib=80,
                      count_corpus=False)
    assert flash["memory_bytes"]["attention_scores"] == 0 < base["memory_bytes"]["attention_scores"]


MID = {  # a gpt-oss shape whose weights fit 10 GiB but whose plain loss at batch 8 x 2048 does not
    "model_type": "gpt_oss", "vocab_size": 201_088, "hidden_size": 512, "intermediate_size": 512,
    "num_hidden_layers": 4, "num_attention_heads": 8, "num_key_value_heads": 2, "head_dim": 64,
    "num_local_experts": 4, "num_experts_per_tok": 2,
}


def wikitune(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "wikitune.cli", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=300)


@pytest.fixture
def mid_model(tmp_path) -> Path:
    model = tmp_path / "model"
    model.mkdir()
    (model / "config.json").write_text(json.dumps(MID))
    return model


def test_plan_json_is_one_object_and_matches_the_estimate(mid_model, tmp_path):
    args = [f"model={mid_model}", "block_size=2048", "batch_size=8", "attn_implementation=sdpa"]
    done = wikitune("cpt", *args, "--plan", "--json", "--gpu-memory-gib", "10", "--corpus-tokens", "1000000",
                    cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    plan = json.loads(done.stdout)  # nothing else on stdout
    expected = make_plan(cfg_for(*args), gpu_memory_gib=10, corpus_tokens=1_000_000)
    assert plan["trainable_params"] == expected["trainable_params"] > 0
    assert plan["peak_memory_gib"] == round(sum(expected["memory_bytes"].values()) / GIB, 2)
    assert plan["steps_per_epoch"] == -(-(1_000_000 // 2048) // 8)
    assert plan["fits"] is False and "loss=chunked" in plan["advice"]
    text = wikitune("cpt", *args, "--plan", "--gpu-memory-gib", "10", cwd=tmp_path)
    assert "logits_loss" in text.stdout and "does NOT fit" in text.stdout


def test_a_run_over_the_gpu_stops_before_loading_naming_the_setting(mid_model, tmp_path):
    corpus = tmp_path / "missing-corpus"  # never read: the check comes first
    done = wikitune("cpt", f"model={mid_model}", f"corpus={corpus}", f"output_dir={tmp_path / 'run'}",
                    "block_size=2048", "batch_size=8", "attn_implementation=sdpa", "--gpu-memory-gib", "10", cwd=tmp_path)
    assert done.returncode == 2
    line = done.stderr.strip().splitlines()[-1]
    assert line.startswith("error: estimated peak GPU memory") and "loss=chunked" in line
    assert not (tmp_path / "run").exists()


def test_sft_plan_counts_qa_rows(tmp_path, mid_model):
    qa = tmp_path / "train.jsonl"
    rows = [{"id": f"q{i}", "question": f"問{i}", "answer": f"答{i}", "domain": "anime", "split": "train"}
            for i in range(10)]
    qa.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    done = wikitune("sft", f"model={mid_model}", f"qa={qa}", "batch_size=4", "--plan", "--json", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    plan = json.loads(done.stdout)
    assert plan["rows"] == 10 and plan["steps_per_epoch"] == 3


SHIPPED = REPO / "configs" / "gpt-oss-20b"
SEED_SEQUENCES_PER_STEP = 16
"""The seed study's optimizer step: batch 8 x grad-accum 2 sequences (its memory, not its batch, changes)."""


@needs_gpt_oss
@pytest.mark.parametrize("name, section", [
    ("cpt.yaml", None), ("cpt-gintama.yaml", None), ("sft.yaml", None), ("study.yaml", "cpt"), ("study.yaml", "sft"),
], ids=lambda v: v or "")
def test_shipped_gpt_oss_20b_configs_fit_80_gb_with_the_seeds_batch(name, section):
    import yaml

    from wikitune.config import build
    from wikitune.train.sft import SFTConfig

    data = yaml.safe_load((SHIPPED / name).read_text(encoding="utf-8"))
    if section is not None:  # a study section: the study sets the model for every stage
        data = data[section]
    stage = section or name.split("-")[0].removesuffix(".yaml")
    cfg = build({"cpt": CPTConfig, "sft": SFTConfig}[stage], {**data, "model": str(GPT_OSS)})
    plan = make_plan(cfg, gpu_memory_gib=80, count_corpus=False)
    assert plan["peak_memory_gib"] <= 80 and plan["fits"], plan["memory_gib"]
    assert cfg.batch_size * cfg.grad_accum == SEED_SEQUENCES_PER_STEP
    assert cfg.loss == "chunked" and cfg.gradient_checkpointing
    assert plan["seq_len"] == (2048 if stage == "cpt" else cfg.max_length)
