"""An SFT adapter is evaluated on exactly the prompt it was trained on (issue 11, point 7).

`wikitune eval` with the default `prompt.format: auto` reads the adapter's SFT run (config.yaml)
and renders each question as `sft` rendered its training conversations; the prompt tokens must
equal the masked (-100) part of SFT's `encode_qa` for every developer prompt, reasoning effort,
model identity and date, with the real gpt-oss tokenizer and with a tiny run end to end.
"""

from __future__ import annotations

import itertools
import json
import logging

import pytest

from tests.conftest import shared_file
from tests.train.conftest import FAST, QA
from wikitune.config import load_config, write_config
from wikitune.evaluate.run import QAEvalConfig, render_question, resolve_prompt, run_eval, training_prompt
from wikitune.formats import QAItem
from wikitune.gptoss.harmony import PromptSettings
from wikitune.gptoss.model import load_tokenizer, train_bpe_tokenizer
from wikitune.train.data import IGNORE_INDEX
from wikitune.train.sft import SFTConfig, encode_records, run_sft

QUESTION = "銀魂で、桂小太郎のあだ名は？"
DEVELOPER = "質問に日本語で簡潔に答えてください。答えだけを書いてください。"


@pytest.fixture(scope="module")
def gpt_oss_tokenizer(tmp_path_factory):
    """The real gpt-oss tokenizer (o200k + harmony), converted offline from ../shared/data/gpt-oss."""
    from wikitune.gptoss.model import load_gpt_oss_tokenizer

    directory = shared_file("gpt-oss", "o200k_base.tiktoken").parent
    cache = tmp_path_factory.mktemp("cache")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("WIKITUNE_CACHE", str(cache))
        mp.setenv("TIKTOKEN_CACHE_DIR", str(cache / "tiktoken"))
        return load_gpt_oss_tokenizer(directory)


def sft_prompt_ids(tokenizer, sft_cfg: SFTConfig, question: str = QUESTION) -> list[int]:
    """The prompt part of what `sft` trains on: the tokens labelled -100 before the answer."""
    (row,), _ = encode_records([QAItem(id="q", question=question, answer="ヅラ")], tokenizer, sft_cfg)
    first_trained = next(k for k, label in enumerate(row["labels"]) if label != IGNORE_INDEX)
    return row["input_ids"][:first_trained]


def sft_run(directory, **fields) -> SFTConfig:
    """A run directory holding the config.yaml `sft` writes (what evaluation reads)."""
    cfg = SFTConfig(output_dir=str(directory), **fields)
    write_config(cfg, directory / "config.yaml")
    return cfg


def test_eval_prompt_equals_the_sft_prompt_with_the_real_tokenizer(gpt_oss_tokenizer, tmp_path):
    tok = gpt_oss_tokenizer
    combos = itertools.product((DEVELOPER, None), ("low", "medium", "high"), ("2025-08-05", "2026-01-31"),
                               (None, "あなたはアニメに詳しいアシスタントです。"))
    for n, (developer, effort, date, identity) in enumerate(combos):
        run = tmp_path / f"sft{n}"
        sft_cfg = sft_run(run, developer_prompt=developer, reasoning_effort=effort, current_date=date, system_prompt=identity)
        settings = resolve_prompt(QAEvalConfig(adapter=str(run)))  # every prompt setting left at its default
        assert settings.format == "chat_template" and settings.date == date
        prompt = render_question(settings, tok, QUESTION)
        assert tok(prompt, add_special_tokens=False)["input_ids"] == sft_prompt_ids(tok, sft_cfg), (developer, effort, date, identity)
        assert f"Current date: {date}" in prompt and f"Reasoning: {effort}" in prompt
        assert (DEVELOPER in prompt) == (developer is not None)


def test_the_training_prompt_is_followed_only_for_sft_runs_and_only_by_default(tmp_path, caplog):
    (tmp_path / "cpt").mkdir()
    (tmp_path / "cpt" / "config.yaml").write_text("model: tiny-gpt-oss\ncorpus: corpus/demo\ncurrent_date: '2025-03-04'\n")
    sft_run(tmp_path / "sft", developer_prompt=None, reasoning_effort="high", current_date="2025-03-04")

    # no adapter, a CPT run, a bare adapter directory: harmony with the settings given, as before
    for adapter in (None, str(tmp_path / "cpt"), str(tmp_path / "bare"), str(tmp_path / "sft" / "elsewhere")):
        assert training_prompt(adapter) is None
        assert resolve_prompt(QAEvalConfig(adapter=adapter)) == PromptSettings(format="harmony")
    # the adapter directory inside an SFT run, or a checkpoint of it, belongs to the run
    for inside in ("sft/adapter", "sft/checkpoints/checkpoint-2"):
        assert training_prompt(str(tmp_path / inside)) == training_prompt(str(tmp_path / "sft"))

    # auto: the run's prompt wins over explicit settings, and a warning names what it overrode
    with caplog.at_level(logging.WARNING, logger="wikitune.evaluate.run"):
        auto = resolve_prompt(QAEvalConfig(adapter=str(tmp_path / "sft"), prompt=PromptSettings(reasoning_effort="medium")))
    assert (auto.format, auto.reasoning_effort, auto.developer, auto.date) == ("chat_template", "high", None, "2025-03-04")
    assert "reasoning_effort ('medium' -> 'high')" in caplog.text and "prompt.format=chat_template or harmony" in caplog.text

    # told otherwise: an explicit format keeps the settings given (the date still the run's)
    told = resolve_prompt(QAEvalConfig(adapter=str(tmp_path / "sft"), prompt=PromptSettings(format="chat_template", reasoning_effort="medium")))
    assert (told.reasoning_effort, told.developer, told.date) == ("medium", PromptSettings().developer, "2025-03-04")
    assert resolve_prompt(QAEvalConfig(adapter=str(tmp_path / "sft"), prompt=PromptSettings(format="harmony"))) == PromptSettings(format="harmony")


def test_sft_then_eval_renders_the_training_prompt_end_to_end(tmp_path):
    qa = tmp_path / "qa.jsonl"
    qa.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in QA), encoding="utf-8")
    run = run_sft(load_config(SFTConfig, None, [
        f"qa={qa}", f"output_dir={tmp_path / 'sft'}", *[o for o in FAST if not o.startswith("block_size")],
        "max_steps=1", "current_date=2025-08-05", "reasoning_effort=high", "developer_prompt=一言で答えて。",
        "system_prompt=あなたはアニメに詳しいアシスタントです。",
    ]))
    out = run_eval(load_config(QAEvalConfig, None, [
        f"output_dir={tmp_path / 'eval'}", f"adapter={run}", f"qa={json.dumps([str(qa)])}",
        "generation.max_new_tokens=4", "generation.batch_size=4",
    ]))

    tok = load_tokenizer(run / "tokenizer")
    sft_cfg = load_config(SFTConfig, run / "config.yaml")
    records = [json.loads(line) for line in (out / "results.jsonl").read_text(encoding="utf-8").splitlines()]
    assert [r["id"] for r in records] == [r["id"] for r in QA]
    for record in records:
        training = sft_prompt_ids(tok, sft_cfg, record["question"])
        assert record["prompt"] == tok.decode(training)
        assert tok(record["prompt"], add_special_tokens=False)["input_ids"] == training
    assert "Current date: 2025-08-05" in records[0]["prompt"] and "一言で答えて。" in records[0]["prompt"]
    # config.yaml says which prompt was rendered; harmony's rendering would have been another one
    resolved = load_config(QAEvalConfig, out / "config.yaml").prompt
    assert (resolved.format, resolved.reasoning_effort, resolved.date) == ("chat_template", "high", "2025-08-05")
    assert render_question(PromptSettings(format="harmony"), tok, records[0]["question"]) != records[0]["prompt"]


def test_chat_template_without_a_tokenizer_template_uses_the_one_sft_falls_back_to(tmp_path):
    tok = train_bpe_tokenizer(["銀魂で、桂小太郎のあだ名は？ヅラ。"] * 20, 300, tmp_path / "tok")
    expected = render_question(PromptSettings(format="chat_template", date="2025-08-05"), tok, QUESTION)
    tok.chat_template = None  # sft renders with TRL's gpt-oss template then; so must evaluation
    sft_cfg = SFTConfig(developer_prompt=PromptSettings().developer, current_date="2025-08-05")
    assert render_question(PromptSettings(format="chat_template", date="2025-08-05"), tok, QUESTION) == expected
    assert tok(expected, add_special_tokens=False)["input_ids"] == sft_prompt_ids(tok, sft_cfg)
