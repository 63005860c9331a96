"""The one runtime of CPT and SFT: the settings both configs are built on, and the summary.json
both stages write through `finish_run`."""

from __future__ import annotations

import dataclasses

import pytest

from tests.train.conftest import FAST
from wikitune import formats
from wikitune.config import load_config
from wikitune.errors import WikituneError
from wikitune.train.cpt import CPTConfig, run_cpt
from wikitune.train.runtime import TrainSettings
from wikitune.train.sft import SFTConfig, run_sft

# What every training run's summary.json reports (the study report reads several of them).
SHARED_SUMMARY_KEYS = {
    "stage", "model", "steps", "epochs", "train_loss_mean", "first_loss", "final_loss", "final_eval_loss",
    "final_eval_ppl", "median_tokens_per_s", "tokens", "tokens_per_s", "train_seconds", "resumed_from",
    "trainable_params", "trainable_by_kind", "device",
}
# The YAML keys of configs/*/cpt*.yaml and sft*.yaml: fields only the stage has.
CPT_ONLY = {"corpus", "text_field", "heldout_fraction", "block_size", "separator", "max_eval_blocks", "data", "order",
            "current_date"}
SFT_ONLY = {"qa", "qa_split", "eval_qa", "system_prompt", "developer_prompt", "reasoning_effort", "current_date",
            "max_length", "adapter_mode"}


def _names(cls) -> set[str]:
    return {f.name for f in dataclasses.fields(cls)}


def test_both_configs_are_the_shared_settings_plus_their_data():
    assert _names(CPTConfig) == _names(TrainSettings) | CPT_ONLY
    assert _names(SFTConfig) == _names(TrainSettings) | SFT_ONLY
    assert {"output_dir", "lora", "learning_rate", "eval_steps", "plot"} <= _names(TrainSettings)
    # the stages' own defaults
    assert (CPTConfig().output_dir, CPTConfig().epochs) == ("runs/tiny-cpt", 1.0)
    assert (SFTConfig().output_dir, SFTConfig().epochs) == ("runs/tiny-sft", 3.0)


@pytest.mark.parametrize("cls", [CPTConfig, SFTConfig])
@pytest.mark.parametrize("override, message", [
    ("max_steps=0", "max_steps must be -1"),
    ("bf16=maybe", "bf16 must be auto, true or false"),
    ("grad_accum=0", "grad_accum must be 1 or more"),
    ("learning_rate=0", "learning_rate must be positive"),
])
def test_shared_settings_are_checked_once_for_both_stages(cls, override, message):
    with pytest.raises(WikituneError, match=message):
        load_config(cls, None, [override])


def test_cpt_and_sft_write_the_same_shared_summary(tmp_path, repeated_corpus, qa_file):
    cpt = run_cpt(load_config(CPTConfig, None, [f"corpus={repeated_corpus}", f"output_dir={tmp_path}/cpt", *FAST,
                                                "max_steps=2", "heldout_fraction=0"]))
    sft = run_sft(load_config(SFTConfig, None, [f"qa={qa_file}", f"output_dir={tmp_path}/sft", *[o for o in FAST if not o.startswith("block_size")],
                                                "current_date=2025-08-05", "max_steps=2"]))
    summaries = {run.name: formats.read_summary(run) for run in (cpt, sft)}
    for name, run in (("cpt", cpt), ("sft", sft)):
        summary = summaries[name]
        assert SHARED_SUMMARY_KEYS <= set(summary), SHARED_SUMMARY_KEYS - set(summary)
        assert summary["stage"] == name and summary["steps"] == 2 and summary["resumed_from"] is None
        train = [r for r in formats.read_metrics(run) if "loss" in r]
        assert summary["final_loss"] == train[-1]["loss"] and summary["first_loss"] == train[0]["loss"]
        # tokens: what metrics.jsonl counted up to the last step; speed: those tokens over the training time
        assert summary["tokens"] == train[-1]["tokens"] > 0
        assert summary["train_seconds"] > 0
        assert summary["tokens_per_s"] == pytest.approx(summary["tokens"] / summary["train_seconds"])
    assert summaries["cpt"]["tokens"] == 2 * 32 * 4  # steps x block_size x batch_size: packed, no padding
    # SFT counts the non-padding tokens of its conversations, prompts included: all 3 in each step's batch
    assert summaries["sft"]["tokens"] > 2 * summaries["sft"]["trained_tokens_per_epoch"]
    assert summaries["cpt"]["padding_tokens"] == 0 and summaries["sft"]["conversations"] == 3
