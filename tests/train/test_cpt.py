"""CPT end to end on the tiny gpt-oss, CPU: learning, frozen base, every LoRA weight moves,
artifacts, resume after a kill, adapter reload."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import load_file
from transformers import TrainerCallback

from tests.train.conftest import FAST
from wikitune.errors import WikituneError
from wikitune.config import load_config
from wikitune.train.cpt import CPTConfig, run_cpt


class Capture(TrainerCallback):
    """Keep the trained model and its logits on a fixed input at the end of training."""

    def __init__(self):
        self.model = None
        self.initial = None

    def on_train_begin(self, args, state, control, model=None, **kwargs):
        self.initial = {n: p.detach().clone() for n, p in model.named_parameters()}

    def on_train_end(self, args, state, control, model=None, **kwargs):
        self.model = model


def cpt(tmp_path, corpus, *overrides, callbacks=None):
    cfg = load_config(CPTConfig, None, [f"corpus={corpus}", f"output_dir={tmp_path}/run", *FAST, *overrides])
    return run_cpt(cfg, callbacks=callbacks)


@pytest.fixture(scope="module")
def trained(tmp_path_factory, repeated_corpus):
    tmp = tmp_path_factory.mktemp("cpt")
    capture = Capture()
    run = cpt(tmp, repeated_corpus, "max_steps=16", "learning_rate=1e-2", "eval_steps=8", "save_steps=8",
              "heldout_fraction=0.0", "plot=true", callbacks=[capture])
    return run, capture


def test_loss_decreases_on_a_repeated_corpus(trained):
    run, _ = trained
    losses = [r["loss"] for r in map(json.loads, (run / "metrics.jsonl").read_text().splitlines()) if "loss" in r]
    assert len(losses) == 16
    assert sum(losses[-3:]) / 3 < losses[0] - 0.3


def test_base_frozen_and_every_lora_weight_changed(trained):
    _, capture = trained
    after = dict(capture.model.named_parameters())
    lora = [n for n in after if "lora_" in n]
    assert any("experts" in n for n in lora) and any("q_proj" in n for n in lora)
    for name, before in capture.initial.items():
        if "lora_" in name:
            assert not torch.equal(before, after[name]), f"{name} did not change"
        else:
            assert torch.equal(before, after[name]), f"base weight {name} changed"


def test_run_directory_artifacts(trained):
    run, _ = trained
    for name in ("config.yaml", "metrics.jsonl", "summary.json", "lora_coverage.json", "loss.png",
                 "adapter/adapter_config.json", "tokenizer/tokenizer.json"):
        assert (run / name).is_file(), name
    summary = json.loads((run / "summary.json").read_text())
    assert summary["steps"] == 16 and summary["padding_tokens"] == 0 and summary["trainable_by_kind"]["experts"] > 0
    record = json.loads((run / "metrics.jsonl").read_text().splitlines()[-2])
    assert {"step", "epoch", "loss", "lr", "grad_norm", "tokens", "tokens_per_s"} <= set(record)
    assert record["tokens"] == record["step"] * 32 * 4


def test_a_corpus_alone_is_a_one_source_mixture_in_the_summary(trained, repeated_corpus):
    run, _ = trained
    summary = json.loads((run / "summary.json").read_text())
    config = (run / "config.yaml").read_text(encoding="utf-8")
    assert f"corpus: {repeated_corpus}" in config and "data: null" in config and summary["corpus"] == str(repeated_corpus)
    (source,) = summary["sources"]
    assert source["source"] == "corpus" and source["fraction"] is None and source["share"] == 1.0
    assert source["blocks"] == summary["train_blocks"] and source["tokens"] == summary["train_tokens"]
    assert summary["train_tokens"] - summary["train_blocks"] * 32 < 32  # all but the tail shorter than a block


def test_saved_adapter_reloads_to_the_same_logits(trained):
    from wikitune.gptoss.model import load_model_and_tokenizer

    run, capture = trained
    ids = torch.arange(3, 40).reshape(1, -1)
    capture.model.eval()
    with torch.no_grad():
        expected = capture.model(input_ids=ids).logits
        model, tok = load_model_and_tokenizer(None, adapter=run)  # model, tokenizer, sizes from the run
        got = model(input_ids=ids).logits
    # training ran the experts' low-rank path, the reloaded adapter runs PEFT's: the same function
    # summed in another order, so equal to float rounding (a lost or misplaced weight is far off)
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-6)
    assert len(tok) == 400


def test_validation_loss_on_heldout_articles(tmp_path, demo_corpus):
    run = cpt(tmp_path, demo_corpus, "max_steps=2", "eval_steps=1", "save_steps=2")
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    evals = [r for r in records if "eval_loss" in r]
    assert [r["step"] for r in evals] == [1, 2] and all(r["eval_ppl"] > 1 for r in evals)
    summary = json.loads((run / "summary.json").read_text())
    assert summary["heldout_articles"] > 0 and summary["final_eval_loss"] == evals[-1]["eval_loss"]


class Kill(TrainerCallback):
    def on_step_end(self, args, state, control, **kwargs):
        if state.global_step == 4:
            raise KeyboardInterrupt("simulated kill after step 4")


def test_resume_after_a_kill_equals_an_uninterrupted_run(tmp_path, demo_corpus):
    common = ["max_steps=6", "save_steps=3", "eval_steps=3", "learning_rate=3e-3", "lora.dropout=0.1"]
    whole = cpt(tmp_path / "a", demo_corpus, *common)
    with pytest.raises(KeyboardInterrupt):
        cpt(tmp_path / "b", demo_corpus, *common, callbacks=[Kill()])
    with pytest.raises(WikituneError, match="already holds a run"):
        cpt(tmp_path / "b", demo_corpus, *common)
    resumed = cpt(tmp_path / "b", demo_corpus, *common, "resume=true")
    a = load_file(whole / "adapter" / "adapter_model.safetensors")
    b = load_file(resumed / "adapter" / "adapter_model.safetensors")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)

    def losses(run):
        return [(r["step"], r.get("loss"), r.get("eval_loss"))
                for r in map(json.loads, (run / "metrics.jsonl").read_text().splitlines())]

    assert losses(whole) == losses(resumed)
    assert json.loads((resumed / "summary.json").read_text())["resumed_from"].endswith("checkpoint-3")


def test_resume_without_checkpoint_is_an_error(tmp_path, demo_corpus):
    with pytest.raises(WikituneError, match="holds no checkpoint"):
        cpt(tmp_path, demo_corpus, "resume=true")


def test_impossible_target_fails_before_training(tmp_path, demo_corpus):
    with pytest.raises(WikituneError, match="gate_proj match nothing"):
        cpt(tmp_path, demo_corpus, "lora.target_modules=[q_proj, gate_proj]", "max_steps=1")


def test_a_failed_run_leaves_nothing_in_the_way(tmp_path, demo_corpus):
    with pytest.raises(WikituneError, match="gate_proj match nothing"):
        cpt(tmp_path, demo_corpus, "lora.target_modules=[q_proj, gate_proj]", "max_steps=1")
    assert not (tmp_path / "run").exists()  # no config.yaml or tokenizer/ left to trap the next command
    with pytest.raises(WikituneError, match="nothing to resume: run again without --resume"):
        cpt(tmp_path, demo_corpus, "resume=true")
    run = cpt(tmp_path, demo_corpus, "max_steps=1")  # the corrected command just runs
    assert (run / "adapter").is_dir()


def test_a_directory_without_checkpoint_or_adapter_is_not_a_run(tmp_path, demo_corpus):
    leftover = tmp_path / "run"
    (leftover / "tokenizer").mkdir(parents=True)
    (leftover / "config.yaml").write_text("model: tiny-gpt-oss\n", encoding="utf-8")
    run = cpt(tmp_path, demo_corpus, "max_steps=1")
    assert (run / "adapter").is_dir() and "max_steps: 1" in (run / "config.yaml").read_text(encoding="utf-8")


class Groups(TrainerCallback):
    def on_train_begin(self, args, state, control, optimizer=None, **kwargs):
        self.lrs = sorted({g.get("initial_lr", g["lr"]) for g in optimizer.param_groups})


def test_embeddings_in_full_at_their_own_learning_rate(tmp_path, repeated_corpus):
    groups = Groups()
    run = cpt(tmp_path, repeated_corpus, "max_steps=1", "heldout_fraction=0", "learning_rate=1e-3",
              "lora.modules_to_save=[embed_tokens, lm_head]", "lora.modules_to_save_lr=1e-4", callbacks=[groups])
    assert groups.lrs == [1e-4, 1e-3]
    coverage = json.loads((run / "lora_coverage.json").read_text())
    full = {r["target"]: r["trainable_params"] for r in coverage["targets"] if r["via"] == "modules_to_save"}
    assert full == {"embed_tokens": 400 * 64, "lm_head": 400 * 64}


class Seen(TrainerCallback):
    """What the Trainer really trains with: the optimizer class and whether checkpointing is on."""

    def on_train_begin(self, args, state, control, model=None, optimizer=None, **kwargs):
        inner = getattr(optimizer, "optimizer", optimizer)  # accelerate wraps the real optimizer
        self.optimizer = f"{type(inner).__module__}.{type(inner).__name__}"
        self.optim_bits = getattr(inner, "args", None) and getattr(inner.args, "optim_bits", None)
        base = model.get_base_model() if hasattr(model, "get_base_model") else model
        self.checkpointing = [m.gradient_checkpointing for m in base.modules() if hasattr(m, "gradient_checkpointing")
                              and isinstance(m.gradient_checkpointing, bool)]


@pytest.mark.parametrize("on", [True, False])
def test_gradient_checkpointing_is_really_on(tmp_path, repeated_corpus, on):
    seen = Seen()
    run = cpt(tmp_path, repeated_corpus, "max_steps=2", "heldout_fraction=0", f"gradient_checkpointing={str(on).lower()}",
              callbacks=[seen])
    assert json.loads((run / "summary.json").read_text())["steps"] == 2
    assert seen.checkpointing and all(flag == on for flag in seen.checkpointing)


def test_tiny_model_with_the_real_gpt_oss_tokenizer(tmp_path, repeated_corpus, monkeypatch):
    from tests.conftest import shared_file

    directory = shared_file("gpt-oss", "o200k_base.tiktoken").parent
    monkeypatch.setenv("WIKITUNE_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("TIKTOKEN_CACHE_DIR", str(tmp_path / "cache" / "tiktoken"))
    run = cpt(tmp_path, repeated_corpus, "max_steps=1", "heldout_fraction=0", f"tokenizer={directory}")
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(run / "tokenizer")
    assert len(tok) == 201088 and tok.convert_tokens_to_ids("<|endoftext|>") == 199999


def test_eight_bit_adamw_is_the_optimizer_used(tmp_path, repeated_corpus):
    seen = Seen()
    run = cpt(tmp_path, repeated_corpus, "max_steps=2", "heldout_fraction=0", "optim=adamw_8bit", callbacks=[seen])
    assert "optim: adamw_8bit" in (run / "config.yaml").read_text()
    assert seen.optimizer.startswith("bitsandbytes.") and seen.optim_bits == 8
    assert json.loads((run / "summary.json").read_text())["steps"] == 2


def test_eight_bit_adamw_without_bitsandbytes_is_an_error_not_a_fallback(tmp_path, repeated_corpus, monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "bitsandbytes", None)  # `import bitsandbytes` now raises ImportError
    with pytest.raises(WikituneError, match="optim=adamw_8bit needs bitsandbytes.*optim=adamw_torch"):
        cpt(tmp_path, repeated_corpus, "max_steps=2", "heldout_fraction=0", "optim=adamw_8bit")


def test_bnb_4bit_is_refused_for_gpt_oss_at_load(tmp_path):
    (tmp_path / "model").mkdir()
    (tmp_path / "model" / "config.json").write_text('{"model_type": "gpt_oss"}', encoding="utf-8")
    for model in ("tiny-gpt-oss", "openai/gpt-oss-20b", str(tmp_path / "model")):
        with pytest.raises(WikituneError, match="bnb-4bit cannot work for gpt-oss.*mxfp4-dequantize"):
            load_config(CPTConfig, None, [f"model={model}", "quantization=bnb-4bit"])
    assert load_config(CPTConfig, None, ["model=Qwen/Qwen3-0.6B", "quantization=bnb-4bit"]).quantization == "bnb-4bit"


def test_overwrite_with_an_impossible_target_keeps_the_old_run(tmp_path, repeated_corpus):
    run = cpt(tmp_path, repeated_corpus, "max_steps=1")
    before = (run / "adapter" / "adapter_model.safetensors").read_bytes()
    with pytest.raises(WikituneError, match="gate_proj match nothing"):
        cpt(tmp_path, repeated_corpus, "max_steps=1", "overwrite=true", "lora.target_modules=[q_proj, gate_proj]")
    assert (run / "adapter" / "adapter_model.safetensors").read_bytes() == before
    assert not run.with_name(run.name + ".replaced").exists()
    cpt(tmp_path, repeated_corpus, "max_steps=2", "overwrite=true")  # a good config does replace it
    assert json.loads((run / "summary.json").read_text())["steps"] == 2
    assert not run.with_name(run.name + ".replaced").exists()


def test_resume_skips_a_checkpoint_cut_short_by_a_kill(tmp_path, repeated_corpus):
    from wikitune.train.runtime import last_complete_checkpoint

    run = cpt(tmp_path, repeated_corpus, "max_steps=4", "save_steps=2")
    complete = last_complete_checkpoint(run)
    assert complete is not None and complete.name == "checkpoint-4"
    # A kill while saving step 6: the directory exists, its trainer state does not.
    partial = run / "checkpoints" / "checkpoint-6"
    partial.mkdir()
    (partial / "optimizer.pt").write_bytes(b"")
    assert last_complete_checkpoint(run) == complete
    resumed = cpt(tmp_path, repeated_corpus, "max_steps=6", "save_steps=2", "resume=true")
    assert json.loads((resumed / "summary.json").read_text())["resumed_from"].endswith("checkpoint-4")
