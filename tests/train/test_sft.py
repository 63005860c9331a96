"""SFT: the label mask (prompt -100, final answer and <|return|> trained), training from the base
or on a CPT adapter (continue / merge), resume, and merge into a plain model."""

from __future__ import annotations

import json

import pytest
import torch
from transformers import TrainerCallback

from tests.conftest import shared_file
from tests.train.conftest import FAST
from wikitune.errors import WikituneError
from wikitune.gptoss.harmony import harmony_chat_template, pinned_template
from wikitune.gptoss.model import train_bpe_tokenizer
from wikitune.config import load_config
from wikitune.train.data import IGNORE_INDEX, encode_qa
from wikitune.train.sft import SFTConfig, run_sft

SFT_FAST = [o for o in FAST if not o.startswith("block_size")] + ["current_date=2025-08-05"]


def _check_mask(tok, row, answer):
    ids, labels = row["input_ids"], row["labels"]
    trained = [i for i, label in zip(ids, labels) if label != IGNORE_INDEX]
    assert tok.decode(trained) == f"<|channel|>final<|message|>{answer}<|return|>"
    first = next(k for k, label in enumerate(labels) if label != IGNORE_INDEX)
    assert all(label == IGNORE_INDEX for label in labels[:first])  # the whole prompt is masked
    assert tok.decode(ids[:first]).endswith("<|start|>user<|message|>Q?<|end|><|start|>assistant")
    assert labels[first:] == ids[first:] and ids[-1] == tok.convert_tokens_to_ids("<|return|>")


def test_label_mask_bpe(tmp_path):
    tok = train_bpe_tokenizer(["銀魂 ヅラ 質問 答え"] * 3, 300, tmp_path)
    template = pinned_template(harmony_chat_template(), "2025-08-05")
    row = encode_qa("Q?", "ヅラです", tok, template=template, system_prompt=None,
                    developer_prompt="日本語で答える", reasoning_effort="low")
    _check_mask(tok, row, "ヅラです")
    text = tok.decode(row["input_ids"])
    assert "Current date: 2025-08-05" in text and "Reasoning: low" in text and "日本語で答える" in text


def test_label_mask_real_gpt_oss_tokenizer(tmp_path, monkeypatch):
    from wikitune.gptoss.model import load_gpt_oss_tokenizer

    directory = shared_file("gpt-oss", "o200k_base.tiktoken").parent
    monkeypatch.setenv("WIKITUNE_CACHE", str(tmp_path))
    monkeypatch.setenv("TIKTOKEN_CACHE_DIR", str(tmp_path / "tiktoken"))
    tok = load_gpt_oss_tokenizer(directory)
    template = pinned_template(tok.chat_template, "2025-08-05")
    row = encode_qa("Q?", "桃月学園の1年C組", tok, template=template, system_prompt="You are a helper.",
                    developer_prompt=None, reasoning_effort="high")
    _check_mask(tok, row, "桃月学園の1年C組")
    assert row["input_ids"][-1] == 200002


def sft(tmp_path, qa_file, *overrides, callbacks=None):
    return run_sft(load_config(SFTConfig, None, [f"qa={qa_file}", f"output_dir={tmp_path}", *SFT_FAST, *overrides]),
                   callbacks=callbacks)


def _losses(run):
    return [(r["step"], r.get("loss")) for r in map(json.loads, (run / "metrics.jsonl").read_text().splitlines())]


def test_sft_from_base_learns_and_writes_the_run(tmp_path, qa_file):
    run = sft(tmp_path / "run", qa_file, "max_steps=12", "learning_rate=1e-2", "eval_qa=" + str(qa_file),
              "eval_steps=6", "save_steps=6")
    losses = [loss for _, loss in _losses(run) if loss is not None]
    assert len(losses) == 12 and losses[-1] < losses[0]
    summary = json.loads((run / "summary.json").read_text())
    assert summary["conversations"] == 3 and summary["dropped_too_long"] == 0  # the test-split record is left out
    assert summary["final_eval_loss"] is not None and summary["trainable_by_kind"]["experts"] > 0
    assert (run / "adapter" / "adapter_config.json").is_file() and (run / "tokenizer" / "tokenizer.json").is_file()


def test_too_long_conversations_are_dropped_not_cut(tmp_path, qa_file):
    with pytest.raises(WikituneError, match="every conversation is longer than max_length=8"):
        sft(tmp_path / "run", qa_file, "max_steps=1", "max_length=8")


@pytest.fixture(scope="module")
def cpt_run(tmp_path_factory, repeated_corpus):
    from wikitune.train.cpt import CPTConfig, run_cpt

    out = tmp_path_factory.mktemp("cpt") / "run"
    return run_cpt(load_config(CPTConfig, None, [f"corpus={repeated_corpus}", f"output_dir={out}", *FAST,
                                                 "max_steps=3", "learning_rate=1e-2", "heldout_fraction=0"]))


class FirstLogits(TrainerCallback):
    """The model's logits on a fixed input just before SFT's first step (eval mode, no dropout)."""

    logits = None

    def on_train_begin(self, args, state, control, model=None, **kwargs):
        was_training = model.training
        model.eval()
        with torch.no_grad():
            self.logits = model(input_ids=torch.arange(3, 20).reshape(1, -1)).logits.clone()
        model.train(was_training)


@pytest.mark.parametrize("mode", ["continue", "merge"])
def test_sft_on_a_cpt_adapter(tmp_path, qa_file, cpt_run, mode):
    first = FirstLogits()
    run = sft(tmp_path / "run", qa_file, "max_steps=2", f"adapter={cpt_run}", f"adapter_mode={mode}",
              "lora.r=4", callbacks=[first])
    # SFT really starts from what CPT learned: before its first step the model computes exactly
    # the CPT adapter's logits (continue: the same adapter; merge: CPT merged, new LoRA B = 0).
    from wikitune.gptoss.model import load_model_and_tokenizer as _load

    cpt_model, _ = _load(None, adapter=cpt_run)
    with torch.no_grad():
        expected = cpt_model.eval()(input_ids=torch.arange(3, 20).reshape(1, -1)).logits
    torch.testing.assert_close(first.logits, expected, atol=1e-5, rtol=1e-5)
    coverage = json.loads((run / "lora_coverage.json").read_text())
    if mode == "continue":
        assert coverage["continued_from"].endswith("adapter") and coverage["settings"]["r"] == 16
    else:
        assert "continued_from" not in coverage and coverage["settings"]["r"] == 4
    # the run reloads with its whole chain (base, CPT adapter merged or continued, SFT adapter)
    from wikitune.gptoss.model import load_model_and_tokenizer

    model, tok = load_model_and_tokenizer(None, adapter=run)
    assert len(tok) == 400
    ids = torch.arange(3, 20).reshape(1, -1)
    with torch.no_grad():
        assert torch.isfinite(model(input_ids=ids).logits).all()


def test_sft_resume_equals_uninterrupted(tmp_path, qa_file):
    from transformers import TrainerCallback

    class Kill(TrainerCallback):
        def on_step_end(self, args, state, control, **kwargs):
            if state.global_step == 3:
                raise KeyboardInterrupt("simulated kill")

    common = ["max_steps=4", "save_steps=2", "batch_size=2", "lora.dropout=0.1"]
    whole = sft(tmp_path / "a", qa_file, *common)
    with pytest.raises(KeyboardInterrupt):
        sft(tmp_path / "b", qa_file, *common, callbacks=[Kill()])
    resumed = sft(tmp_path / "b", qa_file, *common, "resume=true")
    assert _losses(whole) == _losses(resumed)
    from safetensors.torch import load_file

    a = load_file(whole / "adapter" / "adapter_model.safetensors")
    b = load_file(resumed / "adapter" / "adapter_model.safetensors")
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_merge_writes_a_plain_model_with_the_same_logits(tmp_path, cpt_run):
    from transformers import AutoModelForCausalLM

    from wikitune.gptoss.model import load_model_and_tokenizer
    from wikitune.gptoss.merge import run_merge

    out = run_merge(cpt_run, tmp_path / "merged")
    merged = AutoModelForCausalLM.from_pretrained(out, attn_implementation="eager").eval()
    peft_model, _ = load_model_and_tokenizer(None, adapter=cpt_run)
    ids = torch.arange(3, 30).reshape(1, -1)
    with torch.no_grad():
        torch.testing.assert_close(merged(input_ids=ids).logits, peft_model(input_ids=ids).logits,
                                   atol=1e-4, rtol=1e-4)
    assert not any("lora" in n for n, _ in merged.named_parameters())
    with pytest.raises(WikituneError, match="not empty"):
        run_merge(cpt_run, out)
