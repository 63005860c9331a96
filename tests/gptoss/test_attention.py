"""wikitune_flex attention against gpt-oss's eager attention on the tiny model, CPU: logits and
gradients (sinks, sliding window shorter than the sequence, full layers, padding), generation,
and training through the normal CPT path."""

from __future__ import annotations

import pytest
import torch

from tests.train.conftest import FAST, repeated_corpus  # noqa: F401 - the fixture, for the CPT run
from wikitune import formats
from wikitune.config import load_config
from wikitune.errors import WikituneError
from wikitune.gptoss.attention import (ATTENTION, add_sinks, dense_attention_lse, flex_sink_attention,
                                       register_attention)
from wikitune.gptoss.model import TinyGptOssConfig, build_tiny_gpt_oss, load_model_and_tokenizer
from wikitune.train.cpt import CPTConfig, run_cpt

WINDOW = 8
SEQ = 40  # five windows: the sliding layers see much less than the full ones


@pytest.fixture(scope="module")
def model():
    """Tiny gpt-oss, 2 sliding + 2 full layers, sinks far from their zero init so they matter."""
    register_attention()
    net = build_tiny_gpt_oss(300, TinyGptOssConfig(num_hidden_layers=4, sliding_window=WINDOW), pad_token_id=0)
    with torch.no_grad(), torch.random.fork_rng():
        torch.manual_seed(1)
        for layer in net.model.layers:
            layer.self_attn.sinks.normal_(0.0, 2.0)
    return net


def batch(padding: str | None):
    torch.manual_seed(2)
    ids = torch.randint(1, 300, (3, SEQ))
    mask = torch.ones_like(ids)
    if padding == "left":
        mask[0, :11], mask[2, :3] = 0, 0
    elif padding == "right":
        mask[0, -13:], mask[1, -2:] = 0, 0
    return ids, mask


def forward_backward(model, attn: str, ids, mask):
    """Logits and every parameter's gradient of a loss over the real (unpadded) positions."""
    model.set_attn_implementation(attn)
    model.zero_grad(set_to_none=True)
    logits = model(input_ids=ids, attention_mask=mask, use_cache=False).logits
    (logits.square() * mask[..., None]).mean().backward()
    grads = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
    model.set_attn_implementation("eager")
    return logits.detach(), grads


@pytest.mark.parametrize("padding", [None, "left", "right"])
def test_logits_and_gradients_equal_eager(model, padding):
    ids, mask = batch(padding)
    eager_logits, eager_grads = forward_backward(model, "eager", ids, mask)
    flex_logits, flex_grads = forward_backward(model, ATTENTION, ids, mask)
    real = mask.bool()
    torch.testing.assert_close(flex_logits[real], eager_logits[real], rtol=1e-4, atol=1e-5)
    assert flex_grads.keys() == eager_grads.keys()
    for name, grad in eager_grads.items():
        torch.testing.assert_close(flex_grads[name], grad, rtol=1e-3, atol=1e-6, msg=name)
    # sliding and full layers both carry gradient to their sinks, which eager has too
    sinks = [n for n in eager_grads if n.endswith("sinks")]
    assert len(sinks) == 4 and all(eager_grads[n].abs().sum() > 0 for n in sinks)


def test_the_window_and_the_sinks_change_the_result(model):
    """The comparisons here are not vacuous: with sliding layers made full eager's logits differ,
    and sinks change the attention output."""
    ids, mask = batch(None)
    with torch.no_grad():
        reference = model(input_ids=ids, use_cache=False).logits
        saved = [layer.self_attn.sliding_window for layer in model.model.layers]
        try:
            model.config.sliding_window = SEQ  # the mask built for the sliding layers now covers everything
            widened = model(input_ids=ids, use_cache=False).logits
        finally:
            model.config.sliding_window = WINDOW
    assert saved == [WINDOW, None, WINDOW, None]
    assert not torch.allclose(widened, reference, atol=1e-3)
    q, k, v = torch.randn(1, 4, 6, 16), torch.randn(1, 2, 6, 16), torch.randn(1, 2, 6, 16)
    plain, _ = flex_sink_attention(model.model.layers[1].self_attn, q, k, v, None)
    sunk, _ = flex_sink_attention(model.model.layers[1].self_attn, q, k, v, None, s_aux=torch.full((4,), 1.0))
    assert not torch.allclose(plain, sunk, atol=1e-3)


def test_inference_uses_flex_itself_and_matches_eager(model):
    """Without gradients, CPU runs torch's flex_attention (no dense fallback): same logits."""
    ids, mask = batch("left")
    with torch.no_grad():
        eager = model(input_ids=ids, attention_mask=mask, use_cache=False).logits
        model.set_attn_implementation(ATTENTION)
        flex = model(input_ids=ids, attention_mask=mask, use_cache=False).logits
        model.set_attn_implementation("eager")
    torch.testing.assert_close(flex[mask.bool()], eager[mask.bool()], rtol=1e-4, atol=1e-5)


def test_dense_fallback_equals_flex_attention_output_and_lse():
    from torch.nn.attention.flex_attention import AuxRequest, flex_attention
    from transformers.masking_utils import sliding_window_causal_mask_function

    from wikitune.gptoss.attention import block_mask

    torch.manual_seed(3)
    q, k, v = torch.randn(2, 4, 20, 16), torch.randn(2, 2, 20, 16), torch.randn(2, 2, 20, 16)
    padding = torch.ones(2, 20, dtype=torch.bool)
    padding[1, :6] = False  # left padding: the first queries of row 1 see no key at all
    mask = block_mask(2, 20, 20, mask_function=sliding_window_causal_mask_function(5), attention_mask=padding)
    out, aux = flex_attention(q, k, v, block_mask=mask, scale=0.25, enable_gqa=True, return_aux=AuxRequest(lse=True))
    dense_out, dense_lse = dense_attention_lse(q, k, v, mask, 0.25)
    torch.testing.assert_close(dense_out, out, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(dense_lse, aux.lse, rtol=1e-5, atol=1e-5)
    assert torch.isinf(dense_lse[1, :, :6]).all() and (dense_out[1, :, :6] == 0).all()
    sinks = torch.randn(4)
    assert (add_sinks(dense_out, dense_lse, sinks)[1, :, :6] == 0).all()  # as eager: all weight on the sink


def test_a_query_without_keys_has_finite_gradients():
    """Left padding leaves queries that see no key: their output is 0 and no NaN reaches the grads."""
    from wikitune.gptoss.attention import block_mask

    q = torch.randn(1, 2, 6, 8, requires_grad=True)
    k, v = torch.randn(1, 2, 6, 8, requires_grad=True), torch.randn(1, 2, 6, 8, requires_grad=True)
    sinks = torch.zeros(2, requires_grad=True)
    mask = block_mask(1, 6, 6, attention_mask=torch.tensor([[0, 0, 1, 1, 1, 1]], dtype=torch.bool))
    out, lse = dense_attention_lse(q, k, v, mask, 0.3)
    add_sinks(out, lse, sinks).sum().backward()
    for tensor in (q, k, v, sinks):
        assert torch.isfinite(tensor.grad).all()
    assert (q.grad[:, :, :2] == 0).all()


def test_greedy_generation_equals_eager(model):
    ids, mask = batch("left")
    ids, mask = ids[:, :12], mask[:, :12]
    outputs = {}
    for attn in ("eager", ATTENTION):
        model.set_attn_implementation(attn)
        outputs[attn] = model.generate(input_ids=ids, attention_mask=mask, max_new_tokens=WINDOW + 4,
                                       do_sample=False, pad_token_id=0)
    model.set_attn_implementation("eager")
    assert torch.equal(outputs[ATTENTION], outputs["eager"])


def test_dropout_and_prepared_masks_are_refused(model):
    q = k = v = torch.randn(1, 4, 5, 16)
    attention = model.model.layers[0].self_attn
    with pytest.raises(WikituneError, match="dropout"):
        flex_sink_attention(attention, q, k, v, None, dropout=0.1)
    with pytest.raises(WikituneError, match="2-D padding mask"):
        flex_sink_attention(attention, q, k, v, torch.zeros(1, 1, 5, 5))


def test_register_is_idempotent_and_the_loader_takes_the_name(tmp_path):
    from transformers import AttentionInterface, AttentionMaskInterface

    assert register_attention() == register_attention() == ATTENTION
    assert AttentionInterface._global_mapping[ATTENTION] is flex_sink_attention
    assert ATTENTION in AttentionMaskInterface._global_mapping
    tok = tmp_path / "tok"
    from wikitune.gptoss.model import train_bpe_tokenizer

    train_bpe_tokenizer(["テスト文です。" * 5], 300, tok)
    net, _ = load_model_and_tokenizer("tiny-gpt-oss", tokenizer=tok, attn_implementation=ATTENTION)
    assert net.config._attn_implementation == ATTENTION
    net.save_pretrained(tmp_path / "model")
    (tmp_path / "model" / "tokenizer.json").write_bytes((tok / "tokenizer.json").read_bytes())
    for name in ("tokenizer_config.json", "special_tokens_map.json"):
        if (tok / name).is_file():
            (tmp_path / "model" / name).write_bytes((tok / name).read_bytes())
    loaded, _ = load_model_and_tokenizer(str(tmp_path / "model"), attn_implementation=ATTENTION)
    assert loaded.config._attn_implementation == ATTENTION


@pytest.mark.slow
def test_cpt_with_wikitune_flex_trains_as_eager_does(tmp_path, repeated_corpus, monkeypatch):
    """The normal CPT path, offline, with `attn_implementation: wikitune_flex` (a window shorter
    than the blocks): flex is what runs, and the loss curve is eager's."""
    from transformers import TrainerCallback

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    seen = []

    class Watch(TrainerCallback):
        def on_step_end(self, args, state, control, model=None, **kwargs):
            seen.append(model.get_base_model().config._attn_implementation)

    losses = {}
    for attn in ("eager", ATTENTION):
        cfg = load_config(CPTConfig, None, [f"corpus={repeated_corpus}", f"output_dir={tmp_path}/{attn}", *FAST,
                                            "max_steps=4", "learning_rate=1e-2", "heldout_fraction=0.0",
                                            f"attn_implementation={attn}", "tiny.sliding_window=8"])
        run = run_cpt(cfg, callbacks=[Watch()])
        losses[attn] = [row["loss"] for row in formats.read_metrics(run) if "loss" in row]
    assert seen == ["eager"] * 4 + [ATTENTION] * 4
    assert len(losses[ATTENTION]) == 4 and losses[ATTENTION][-1] < losses[ATTENTION][0]
    assert losses[ATTENTION] == pytest.approx(losses["eager"], rel=1e-3)
