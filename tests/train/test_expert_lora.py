"""Low-rank expert LoRA: the same logits, loss, gradients, saved adapter and merge as PEFT's
ParamWrapper, without ever building a tensor the size of the expert weights."""

from __future__ import annotations

import copy

import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten

from wikitune import formats
from wikitune.gptoss.merge import run_merge
from wikitune.gptoss.model import TINY, TinyGptOssConfig, build_tiny_gpt_oss, train_bpe_tokenizer
from wikitune.train.expert_lora import _grouped_mm_fn, expert_wrappers, use_lowrank_experts, use_peft_experts
from wikitune.train.lora import LoraSettings, apply_lora

VOCAB = 300
# intermediate != hidden, so a transposed factor or weight cannot go unnoticed
TINY_SIZES = TinyGptOssConfig(hidden_size=64, intermediate_size=48, num_local_experts=4, num_experts_per_tok=2)
GATE_UP_SHAPE = (4, 64, 96)  # (experts, hidden, 2 * intermediate)
DOWN_SHAPE = (4, 48, 64)  # (experts, intermediate, hidden)
MODES = ["loop", pytest.param("grouped", marks=pytest.mark.skipif(_grouped_mm_fn() is None,
                                                                  reason="this torch has no grouped_mm"))]


def _randomise_lora(model: torch.nn.Module, seed: int = 0) -> None:
    """PEFT starts B at zero, which would hide a wrong B layout and give A no gradient."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, param in model.named_parameters():
            if "lora_" in name:
                param.copy_(torch.randn(param.shape, generator=gen) * 0.05)


def _lora_model(expert_impl: str, tiny=TINY_SIZES, **build):
    model, _ = apply_lora(build_tiny_gpt_oss(VOCAB, tiny, **build), LoraSettings(r=4, expert_impl=expert_impl))
    _randomise_lora(model)
    return model


def _ids(batch: int = 3, length: int = 20) -> torch.Tensor:
    return torch.randint(0, VOCAB, (batch, length), generator=torch.Generator().manual_seed(1))


def _step(model, ids):
    """Logits, loss and the gradient of every trainable parameter after one backward."""
    model.zero_grad()
    out = model(input_ids=ids, labels=ids)
    out.loss.backward()
    grads = {n: p.grad.clone() for n, p in model.named_parameters() if p.requires_grad}
    return out.logits.detach(), out.loss.detach(), grads


@pytest.mark.parametrize("mode", MODES)
def test_lowrank_equals_peft_in_logits_loss_and_gradients(mode):
    model = _lora_model("peft")
    ids = _ids()
    ref_logits, ref_loss, ref_grads = _step(model, ids)
    assert use_lowrank_experts(model, mode) == 2  # one experts module per layer
    logits, loss, grads = _step(model, ids)
    torch.testing.assert_close(logits, ref_logits, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(loss, ref_loss, rtol=1e-6, atol=1e-6)
    expert_lora = [n for n in grads if "experts" in n and "lora_" in n]
    assert len(expert_lora) == 8  # 2 layers x (gate_up, down) x (A, B)
    for name in grads:
        assert grads[name].abs().sum() > 0, name
        torch.testing.assert_close(grads[name], ref_grads[name], rtol=1e-4, atol=1e-6, msg=name)


def test_lowrank_matches_when_only_one_expert_parameter_is_adapted():
    settings = dict(r=4, target_parameters=["mlp.experts.down_proj"])
    peft_model, _ = apply_lora(build_tiny_gpt_oss(VOCAB, TINY_SIZES), LoraSettings(expert_impl="peft", **settings))
    low_model, _ = apply_lora(build_tiny_gpt_oss(VOCAB, TINY_SIZES), LoraSettings(expert_impl="lowrank", **settings))
    _randomise_lora(peft_model)
    _randomise_lora(low_model)
    ids = _ids()
    torch.testing.assert_close(_step(low_model, ids)[0], _step(peft_model, ids)[0], rtol=1e-5, atol=1e-5)


class _OutputShapes(TorchDispatchMode):
    """Records the shape of every tensor any operator returns (forward and backward)."""

    def __init__(self):
        super().__init__()
        self.shapes: list[tuple[int, ...]] = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        self.shapes += [tuple(t.shape) for t in tree_flatten(out)[0] if isinstance(t, torch.Tensor)]
        return out


@pytest.mark.parametrize("mode", MODES)
def test_lowrank_never_builds_a_tensor_of_the_expert_weight_shape(mode):
    model = _lora_model("peft")
    experts = model.get_submodule("base_model.model.model.layers.0.mlp.experts").get_base_layer()
    assert tuple(experts.gate_up_proj.shape) == GATE_UP_SHAPE and tuple(experts.down_proj.shape) == DOWN_SHAPE
    ids = _ids()

    def shapes_seen():
        with _OutputShapes() as seen:
            model(input_ids=ids, labels=ids).loss.backward()
        return seen.shapes

    # the check does see PEFT's W + BA: it would fail for PEFT's path
    peft_shapes = shapes_seen()
    assert GATE_UP_SHAPE in peft_shapes and DOWN_SHAPE in peft_shapes
    use_lowrank_experts(model, mode)
    low_shapes = shapes_seen()
    assert GATE_UP_SHAPE not in low_shapes and DOWN_SHAPE not in low_shapes
    assert len(low_shapes) > 100  # the mode did record the forward and backward


def test_switching_back_restores_peft_and_disabled_adapter_gives_the_base_model():
    model = _lora_model("lowrank")
    ids = _ids()
    with torch.no_grad():
        low = model(input_ids=ids).logits
        with model.disable_adapter():
            disabled = model(input_ids=ids).logits
        base = build_tiny_gpt_oss(VOCAB, TINY_SIZES)(input_ids=ids).logits
    torch.testing.assert_close(disabled, base)
    assert not torch.allclose(low, base, atol=1e-3)  # the adapter does change the output
    assert use_peft_experts(model) == 2
    assert all("forward" not in vars(w) for w in expert_wrappers(model))
    with torch.no_grad():
        torch.testing.assert_close(model(input_ids=ids).logits, low, rtol=1e-5, atol=1e-5)


def test_lowrank_survives_deepcopy_and_activation_checkpointing():
    model = _lora_model("lowrank")
    ids = _ids()
    logits, _, grads = _step(model, ids)
    twin = copy.deepcopy(model)  # e.g. a reference model; the copy must run its own experts
    assert all(w.forward.__self__ is w for w in expert_wrappers(twin))
    model.train().get_base_model().activation_checkpointing_enable(
        activation_checkpointing_kwargs={"use_reentrant": False})
    ckpt_logits, _, ckpt_grads = _step(model, ids)  # the experts run again in backward
    torch.testing.assert_close(ckpt_logits, logits)
    for name in grads:
        torch.testing.assert_close(ckpt_grads[name], grads[name], msg=name)
    with torch.no_grad():
        torch.testing.assert_close(twin(input_ids=ids).logits, logits)


def test_unknown_grouped_mode_fails():
    with pytest.raises(ValueError, match="grouped must be one of auto, grouped, loop"):
        use_lowrank_experts(_lora_model("peft"), "fast")


def test_saved_lowrank_adapter_is_peft_format_and_reloads(tmp_path):
    from peft import PeftModel
    from safetensors.torch import load_file

    low = _lora_model("lowrank")
    peft = _lora_model("peft")  # same seeds: the same LoRA weights
    low.save_pretrained(tmp_path / "low")
    peft.save_pretrained(tmp_path / "peft")
    low_saved = load_file(tmp_path / "low" / "adapter_model.safetensors")
    peft_saved = load_file(tmp_path / "peft" / "adapter_model.safetensors")
    assert low_saved.keys() == peft_saved.keys() and any("experts.lora_A" in k for k in low_saved)
    for key in low_saved:
        torch.testing.assert_close(low_saved[key], peft_saved[key])

    ids = _ids()
    with torch.no_grad():
        expected = low(input_ids=ids).logits
        loaded = PeftModel.from_pretrained(build_tiny_gpt_oss(VOCAB, TINY_SIZES), str(tmp_path / "low"))
        torch.testing.assert_close(loaded(input_ids=ids).logits, expected, rtol=1e-5, atol=1e-5)
        use_lowrank_experts(loaded)
        torch.testing.assert_close(loaded(input_ids=ids).logits, expected, rtol=1e-5, atol=1e-5)


def _run_dir(path, model, tok):
    """A run directory as merge reads it: config.yaml naming the tiny model, tokenizer/, adapter/."""
    import yaml

    path.mkdir(parents=True)
    (path / formats.RUN_CONFIG).write_text(yaml.safe_dump({"model": TINY, "tiny": vars(TINY_SIZES)}), encoding="utf-8")
    tok.save_pretrained(path / "tokenizer")
    model.save_pretrained(path / formats.ADAPTER_DIR)
    return path


def test_merge_of_a_lowrank_adapter_equals_peft_merge(tmp_path):
    from transformers import AutoModelForCausalLM

    tok = train_bpe_tokenizer(["銀魂は空知英秋の漫画。", "進撃の巨人"] * 20, 400, tmp_path / "tok")
    specials = dict(pad_token_id=tok.pad_token_id, eos_token_id=tok.eos_token_id, bos_token_id=tok.bos_token_id)

    def model(expert_impl):
        net, _ = apply_lora(build_tiny_gpt_oss(len(tok), TINY_SIZES, **specials),
                            LoraSettings(r=4, expert_impl=expert_impl))
        _randomise_lora(net)
        return net

    low, peft = model("lowrank"), model("peft")
    merged = AutoModelForCausalLM.from_pretrained(run_merge(_run_dir(tmp_path / "run", low, tok), tmp_path / "merged"))
    reference = peft.merge_and_unload().state_dict()
    for name, tensor in merged.state_dict().items():
        torch.testing.assert_close(tensor, reference[name], rtol=1e-6, atol=1e-6, msg=name)
    ids = torch.randint(0, len(tok), (2, 12), generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        torch.testing.assert_close(merged.eval()(input_ids=ids).logits, low(input_ids=ids).logits,
                                   rtol=1e-4, atol=1e-5)
