"""LoRA targets: experts are really adapted, impossible targets fail helpfully, coverage is written."""

from __future__ import annotations

import json

import pytest
import torch

from wikitune.errors import WikituneError
from wikitune.gptoss.model import build_tiny_gpt_oss
from wikitune.train.expert_lora import expert_wrappers
from wikitune.train.lora import COVERAGE_FILE, LoraSettings, apply_lora, continue_adapter, match_modules


def test_coverage_counts_attention_and_experts(tmp_path):
    model, cov = apply_lora(build_tiny_gpt_oss(300), LoraSettings(r=4, dropout=0.05), tmp_path)
    rows = {r["target"]: r for r in cov["targets"]}
    assert rows["q_proj"]["matched"] == 2 and rows["q_proj"]["trainable_params"] == 2 * (4 * 64 + 64 * 4)
    # fused experts: 2 layers, 4 experts, rank 4: A (experts·r × in), B (out × experts·r)
    assert rows["mlp.experts.gate_up_proj"]["matched"] == 2
    assert rows["mlp.experts.gate_up_proj"]["trainable_params"] == 2 * (16 * 64 + 128 * 16)
    assert rows["mlp.experts.down_proj"]["trainable_params"] == 2 * (16 * 64 + 64 * 16)
    assert cov["trainable_by_kind"]["experts"] > cov["trainable_by_kind"]["attention"] > 0
    assert cov["trainable_params"] == sum(p.numel() for p in model.parameters() if p.requires_grad)
    # dropout: applied on attention, refused by PEFT on experts and said so
    assert rows["q_proj"]["dropout"] == 0.05 and rows["mlp.experts.down_proj"]["dropout"] == 0.0
    assert "refuses dropout" in rows["mlp.experts.down_proj"]["note"]
    q = model.get_submodule("base_model.model.model.layers.0.self_attn.q_proj")
    assert q.lora_dropout["default"].p == 0.05
    assert json.loads((tmp_path / COVERAGE_FILE).read_text())["trainable_params"] == cov["trainable_params"]


def test_seed_report_target_names_fail_with_the_names_that_exist():
    settings = LoraSettings(target_modules=["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"],
                            target_parameters=[])
    with pytest.raises(WikituneError) as err:
        apply_lora(build_tiny_gpt_oss(300), settings)
    message = str(err.value)
    assert "gate_proj, up_proj, down_proj match nothing" in message
    assert "q_proj" in message and "mlp.experts.gate_up_proj" in message


def test_unknown_parameter_and_module_to_save_fail():
    with pytest.raises(WikituneError, match="mlp.experts.nope match nothing"):
        apply_lora(build_tiny_gpt_oss(300), LoraSettings(target_parameters=["mlp.experts.nope"]))
    with pytest.raises(WikituneError, match="embeddings match nothing"):
        apply_lora(build_tiny_gpt_oss(300), LoraSettings(modules_to_save=["embeddings"]))


def test_gradients_reach_expert_lora_weights():
    model, _ = apply_lora(build_tiny_gpt_oss(300), LoraSettings(r=4))
    # LoRA B starts at zero; give it values so A gets a gradient too
    for name, p in model.named_parameters():
        if "lora_B" in name:
            torch.nn.init.normal_(p, std=0.02)
    ids = torch.randint(0, 300, (2, 16))
    model(input_ids=ids, labels=ids).loss.backward()
    expert_grads = {n: p.grad for n, p in model.named_parameters() if "experts" in n and "lora_" in n}
    assert len(expert_grads) == 8  # 2 layers × 2 parameters × (A, B)
    assert all(g is not None and g.abs().sum() > 0 for g in expert_grads.values())


def test_per_expert_linear_modules_match_by_their_module_list():
    class Experts(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.gate_up_projs = torch.nn.ModuleList([torch.nn.Linear(8, 16) for _ in range(3)])
            self.down_projs = torch.nn.ModuleList([torch.nn.Linear(8, 8) for _ in range(3)])

    model = torch.nn.Module()
    model.experts = Experts()
    assert match_modules(model, "gate_up_projs") == [f"experts.gate_up_projs.{i}" for i in range(3)]
    assert match_modules(model, "down_projs") == [f"experts.down_projs.{i}" for i in range(3)]


def test_modules_to_save_router_is_trained_in_full(tmp_path):
    model, cov = apply_lora(build_tiny_gpt_oss(300), LoraSettings(r=4, modules_to_save=["router"],
                                                                  modules_to_save_lr=1e-5))
    row = next(r for r in cov["targets"] if r["target"] == "router")
    assert row["matched"] == 2 and row["trainable_params"] == 2 * (4 * 64 + 4) and "lr 1e-05" in row["note"]


def test_expert_impl_is_validated_and_selects_the_expert_path(tmp_path):
    with pytest.raises(WikituneError, match="lora.expert_impl must be one of lowrank, peft, got 'fast'"):
        LoraSettings(expert_impl="fast")
    assert LoraSettings().expert_impl == "lowrank"
    low, cov = apply_lora(build_tiny_gpt_oss(300), LoraSettings(r=4))
    assert all("forward" in vars(w) for w in expert_wrappers(low)) and len(expert_wrappers(low)) == 2
    rows = {r["target"]: r for r in cov["targets"]}
    assert "low-rank path on 2 experts modules" in rows["mlp.experts.down_proj"]["note"]
    peft, cov = apply_lora(build_tiny_gpt_oss(300), LoraSettings(r=4, expert_impl="peft"))
    assert not any("forward" in vars(w) for w in expert_wrappers(peft))
    assert cov["settings"]["expert_impl"] == "peft"
    assert "PEFT ParamWrapper" in {r["target"]: r for r in cov["targets"]}["mlp.experts.down_proj"]["note"]
    # an adapter continued in training keeps the chosen path
    peft.save_pretrained(tmp_path / "adapter")
    again, cov = continue_adapter(build_tiny_gpt_oss(300), tmp_path / "adapter", LoraSettings())
    assert all("forward" in vars(w) for w in expert_wrappers(again)) and cov["settings"]["expert_impl"] == "lowrank"
