"""The chunked causal-LM loss equals transformers' plain loss, and never holds a whole batch's logits."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

from wikitune.train.loss import IGNORE_INDEX, chunked_causal_lm_loss, chunked_model_loss  # noqa: E402

VOCAB, HIDDEN = 400, 64  # the tiny model's sizes in the training tests


def plain_loss(hidden, weight, labels):
    """transformers' causal-LM loss: full logits, upcast to fp32, shifted targets."""
    from transformers.loss.loss_utils import ForCausalLMLoss

    return ForCausalLMLoss(torch.nn.functional.linear(hidden, weight), labels, vocab_size=weight.shape[0])


def batch(seed=0, b=3, s=37):
    gen = torch.Generator().manual_seed(seed)
    hidden = torch.randn(b, s, HIDDEN, generator=gen, requires_grad=True)
    weight = (torch.randn(VOCAB, HIDDEN, generator=gen) * 0.1).requires_grad_()
    labels = torch.randint(0, VOCAB, (b, s), generator=gen)
    labels[0, :10] = IGNORE_INDEX  # a prompt
    labels[2, 30:] = IGNORE_INDEX  # padding
    return hidden, weight, labels


@pytest.mark.parametrize("chunk", [1, 16, 1000])
def test_loss_and_gradients_equal_the_plain_loss(chunk):
    hidden, weight, labels = batch()
    expected = plain_loss(hidden, weight, labels)
    grads_expected = torch.autograd.grad(expected, (hidden, weight))
    got = chunked_causal_lm_loss(hidden, weight, labels, chunk_tokens=chunk)
    grads = torch.autograd.grad(got, (hidden, weight))
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-6)
    for g, e in zip(grads, grads_expected):
        torch.testing.assert_close(g, e, rtol=1e-4, atol=1e-6)
    # the last position has no next token: its hidden state gets no gradient
    assert torch.count_nonzero(grads[0][:, -1]) == 0


def test_num_items_in_batch_divides_the_sum():
    hidden, weight, labels = batch(1)
    targets = int((labels[:, 1:] != IGNORE_INDEX).sum())
    mean = chunked_causal_lm_loss(hidden, weight, labels, chunk_tokens=8)
    summed = chunked_causal_lm_loss(hidden, weight, labels, chunk_tokens=8, num_items_in_batch=2 * targets)
    torch.testing.assert_close(summed, mean / 2)


def test_all_ignored_gives_zero_with_a_graph():
    hidden, weight, labels = batch(2)
    labels[:] = IGNORE_INDEX
    loss = chunked_causal_lm_loss(hidden, weight, labels)
    loss.backward()
    assert loss.item() == 0.0 and hidden.grad is not None


class LargestTensor(torch.utils._python_dispatch.TorchDispatchMode):
    """Records the most token rows of any vocabulary-wide tensor (logits, their log-softmax and
    gradients) an operator returns, forward and backward; lm_head's weight (and its transpose and
    gradient) is not one."""

    def __init__(self):
        super().__init__()
        self.largest = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        for t in out if isinstance(out, (tuple, list)) else [out]:
            if isinstance(t, torch.Tensor) and t.dim() >= 2 and t.shape[-1] == VOCAB and tuple(t.shape) != (HIDDEN, VOCAB):
                self.largest = max(self.largest, t.numel() // VOCAB)
        return out


def test_only_one_chunk_of_logits_exists_at_a_time():
    hidden, weight, labels = batch(3, b=4, s=64)
    chunk = 16
    with LargestTensor() as chunked:
        chunked_causal_lm_loss(hidden, weight, labels, chunk_tokens=chunk).backward()
    with LargestTensor() as plain:
        plain_loss(hidden, weight, labels).backward()
    targets = int((labels[:, 1:] != IGNORE_INDEX).sum())
    assert plain.largest >= targets  # the plain loss holds every token's logits
    assert chunked.largest == chunk  # the chunked one a chunk's, never more


def test_model_loss_equals_the_models_own_loss_with_lora():
    """On the tiny gpt-oss with attention + expert LoRA: same loss and LoRA gradients as model(labels=...)."""
    from wikitune.gptoss.model import build_tiny_gpt_oss
    from wikitune.train.lora import LoraSettings, apply_lora

    model, _ = apply_lora(build_tiny_gpt_oss(VOCAB), LoraSettings(r=4, dropout=0.0))
    for name, p in model.named_parameters():
        if "lora_B" in name:  # B starts at zero: give the LoRA path a gradient through A too
            torch.nn.init.normal_(p, std=0.02)
    model.train()
    gen = torch.Generator().manual_seed(0)
    ids = torch.randint(0, VOCAB, (2, 24), generator=gen)
    labels = ids.clone()
    labels[1, 18:] = IGNORE_INDEX
    inputs = {"input_ids": ids, "attention_mask": torch.ones_like(ids), "labels": labels}
    params = [p for p in model.parameters() if p.requires_grad]
    expected = model(**inputs).loss
    grads_expected = torch.autograd.grad(expected, params)
    got = chunked_model_loss(model, inputs, chunk_tokens=8)
    grads = torch.autograd.grad(got, params)
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-6)
    for g, e in zip(grads, grads_expected):
        torch.testing.assert_close(g, e, rtol=1e-4, atol=1e-7)


def test_a_cpt_run_with_loss_chunked_trains_like_plain(tmp_path, demo_corpus, monkeypatch):
    """`loss: chunked` in a real CPT run: the same logged training and validation losses as plain."""
    from tests.train.conftest import FAST
    from wikitune import formats
    from wikitune.config import load_config
    from wikitune.train import loss as loss_module
    from wikitune.train.cpt import CPTConfig, run_cpt

    calls = {"plain": 0, "chunked": 0}
    real = loss_module.chunked_causal_lm_loss

    def counted(*args, **kwargs):  # the real function, counted per run
        calls[current] += 1
        return real(*args, **kwargs)

    monkeypatch.setattr(loss_module, "chunked_causal_lm_loss", counted)
    logged = {}
    for current in ("plain", "chunked"):
        loss = current
        cfg = load_config(CPTConfig, None, [f"corpus={demo_corpus}", f"output_dir={tmp_path}/{loss}", *FAST,
                                            "max_steps=3", "eval_steps=3", "save_steps=3", f"loss={loss}"])
        logged[loss] = [(r.get("loss"), r.get("eval_loss")) for r in formats.read_metrics(run_cpt(cfg))]
    assert calls["plain"] == 0 and calls["chunked"] >= 3  # each training step (and validation) went through it
    assert len(logged["chunked"]) == len(logged["plain"]) >= 4
    for (a, ea), (b, eb) in zip(logged["plain"], logged["chunked"]):
        assert (a is None) == (b is None) and (ea is None) == (eb is None)
        assert a is None or abs(a - b) < 1e-4
        assert ea is None or abs(ea - eb) < 1e-4


def test_an_unknown_loss_setting_is_refused():
    from wikitune.config import load_config
    from wikitune.errors import WikituneError
    from wikitune.train.cpt import CPTConfig

    with pytest.raises(WikituneError, match="loss must be one of plain, chunked"):
        load_config(CPTConfig, None, ["loss=fused"])
