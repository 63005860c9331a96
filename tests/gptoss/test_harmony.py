"""Harmony: prompts rendered as openai-harmony renders them; real-shaped completions parsed into channels."""

import datetime as dt

import pytest

from tests.conftest import shared_file
from wikitune.errors import WikituneError
from wikitune.evaluate.run import QAEvalConfig, resolve_prompt
from wikitune.gptoss.harmony import (
    PromptSettings,
    check_reasoning_effort,
    parse_completion,
    parse_server_reply,
    pinned_template,
    render_prompt,
    render_prompt_with_harmony,
    render_with_chat_template,
)
from wikitune.gptoss.model import load_gpt_oss_tokenizer, train_bpe_tokenizer
from wikitune.train.data import encode_qa

# The seed report's looping analysis (table 2), as a model emits it: no final, cut by the token budget.
LOOP = (
    "The user asks: \"ぱにぽにだっしゅ！で、主人公のレベッカ宮本が担任しているクラスは何組ですか？\" "
    + "Actually, Rebecca Miyamoto is a teacher at a school, but the class is 3rd year of junior high? "
    "Wait, let's recall: In the anime, Rebecca Miyamoto is a teacher at a school, but the class is 3rd year of junior high? " * 12
)
SYSTEM = ("<|start|>system<|message|>You are ChatGPT, a large language model trained by OpenAI.\nKnowledge cutoff: 2024-06\n"
          "Current date: 2025-11-26\n\nReasoning: medium\n\n# Valid channels: analysis, commentary, final. "
          "Channel must be included for every message.<|end|>")


def test_render_matches_openai_harmony(monkeypatch):
    vocab_dir = shared_file("gpt-oss", "o200k_base.tiktoken").parent
    monkeypatch.setenv("TIKTOKEN_ENCODINGS_BASE", str(vocab_dir))
    for settings in [
        PromptSettings(),
        PromptSettings(reasoning_effort="high", date="2025-11-26", developer=None),
        PromptSettings(reasoning_effort="medium", system_identity="あなたはアニメに詳しいアシスタントです。", developer="一言で答えて。"),
    ]:
        for context in (None, "[1] 銀魂: 桂小太郎は「ヅラ」と呼ばれる。"):
            question = "銀魂で、桂小太郎のあだ名はなんですか？"
            assert render_prompt(settings, question, context=context) == render_prompt_with_harmony(settings, question, context=context)


def test_render_shape_and_validation():
    prompt = render_prompt(PromptSettings(reasoning_effort="high"), "Q？")
    assert prompt.startswith("<|start|>system<|message|>") and prompt.endswith("<|start|>user<|message|>Q？<|end|><|start|>assistant")
    assert "Reasoning: high" in prompt and "Current date" not in prompt
    with pytest.raises(WikituneError, match="reasoning_effort"):
        PromptSettings(reasoning_effort="max")
    with pytest.raises(WikituneError, match="date"):
        PromptSettings(date="26/11/2025")


def test_clean_final_answer():
    raw = ("<|channel|>analysis<|message|>The user asks about Gintama. Katsura is called Zura.<|end|>"
           "<|start|>assistant<|channel|>final<|message|>ヅラ<|return|>")
    p = parse_completion(raw)
    assert p.final == "ヅラ" and p.analysis.startswith("The user asks") and p.flags == []
    assert [m.channel for m in p.messages] == ["analysis", "final"]


def test_analysis_only_truncated():
    p = parse_completion("<|channel|>analysis<|message|>" + LOOP)
    assert p.final is None and p.analysis.startswith("The user asks")
    assert set(p.flags) == {"no_final", "truncated"}
    assert parse_completion("<|channel|>analysis<|message|>" + LOOP, stop_reason="loop").flags == ["loop_stopped", "no_final"]


def test_seed_prompt_echo_never_becomes_the_answer():
    # the seed's table 5: the whole prompt decoded back, then analysis, then final
    raw = (SYSTEM + "<|start|>user<|message|>NISA（少額投資非課税制度）について、その概要とメリットを簡潔に教えてください。<|end|>"
           "<|start|>assistant<|channel|>analysis<|message|>The user asks in Japanese about NISA. Keep it concise.<|end|>"
           "<|start|>assistant<|channel|>final<|message|>NISAは投資の利益が非課税になる制度です。<|return|>")
    p = parse_completion(raw)
    assert p.final == "NISAは投資の利益が非課税になる制度です。"
    assert "prompt_echo" in p.flags and "You are ChatGPT" not in p.final and "NISA（少額" not in p.final
    # echo with no final: no answer at all, never the prompt
    p = parse_completion(SYSTEM + "<|start|>user<|message|>銀魂で？<|end|><|start|>assistant<|channel|>analysis<|message|>" + LOOP)
    assert p.final is None and {"prompt_echo", "no_final", "truncated"} <= set(p.flags)


def test_special_tokens_stripped_by_the_decoder():
    # the seed's table 2 shape: skip_special_tokens=True leaves "analysis…assistantfinal…"
    p = parse_completion("analysisWe need to answer. Class 3-2.assistantfinalレベッカ宮本が担任しているクラスは「3年2組」です。")
    assert p.final == "レベッカ宮本が担任しているクラスは「3年2組」です。" and p.analysis == "We need to answer. Class 3-2."
    assert "special_tokens_stripped" in p.flags
    p = parse_completion("analysis" + LOOP, stop_reason="length")
    assert p.final is None and {"no_final", "truncated", "special_tokens_stripped"} <= set(p.flags)


def test_malformed_and_unknown_tokens():
    p = parse_completion("<|channel|>final<|message|>ヅラ<|reserved_200012|>です<|return|>")
    assert p.final == "ヅラです" and "unknown_token" in p.flags
    # a channel switch without <|end|><|start|>: still split, flagged
    p = parse_completion("<|channel|>analysis<|message|>think<|channel|>final<|message|>ヅラ<|return|>")
    assert p.final == "ヅラ" and p.analysis == "think" and "malformed" in p.flags
    # plain text with no channel is not a final answer
    p = parse_completion("ヅラです")
    assert p.final is None and {"malformed", "no_final"} <= set(p.flags)
    p = parse_completion("")
    assert p.final is None and "empty" in p.flags
    # final cut off by the budget: the partial final is kept, flagged truncated
    p = parse_completion("<|channel|>final<|message|>桃月学園の", stop_reason="length")
    assert p.final == "桃月学園の" and p.flags == ["truncated"]
    # a tool call ends the turn with <|call|>; the constrain token is skipped
    p = parse_completion("<|channel|>commentary to=functions.search <|constrain|>json<|message|>{\"q\": \"銀魂\"}<|call|>")
    assert p.commentary == '{"q": "銀魂"}' and p.final is None and "truncated" not in p.flags
    # text after <|endoftext|> is not part of the answer
    p = parse_completion("<|channel|>final<|message|>ヅラ<|return|><|endoftext|>junk")
    assert p.final == "ヅラ"


def test_chat_template_prompt_equals_the_sft_training_prompt(tmp_path):
    """prompt.format=chat_template gives exactly the prompt tokens `sft` trains on (labels -100)."""
    tok = train_bpe_tokenizer(["銀魂で、桂小太郎のあだ名は？ヅラ。簡潔に答えて。"] * 20, 400, tmp_path / "tok")
    for developer, effort in ((None, "low"), ("簡潔に答えて。", "high")):
        settings = PromptSettings(format="chat_template", date="2025-11-26", developer=developer, reasoning_effort=effort)
        prompt = render_with_chat_template(tok, settings, "銀魂で、桂小太郎のあだ名は？")
        row = encode_qa("銀魂で、桂小太郎のあだ名は？", "ヅラ", tok, template=pinned_template(tok.chat_template, "2025-11-26"),
                        system_prompt=None, developer_prompt=developer, reasoning_effort=effort)
        n_prompt = row["labels"].index(next(x for x in row["labels"] if x != -100))
        assert tok(prompt, add_special_tokens=False)["input_ids"] == row["input_ids"][:n_prompt]
        assert "Current date: 2025-11-26" in prompt and f"Reasoning: {effort}" in prompt
    with pytest.raises(WikituneError, match="prompt.format"):
        PromptSettings(format="jinja")


def test_chat_template_date_comes_from_the_adapter_run(tmp_path):
    (tmp_path / "config.yaml").write_text("model: tiny-gpt-oss\ncurrent_date: '2025-03-04'\n")
    assert resolve_prompt(QAEvalConfig(adapter=str(tmp_path), prompt=PromptSettings(format="chat_template"))).date == "2025-03-04"
    given = PromptSettings(format="chat_template", date="2025-01-01")
    assert resolve_prompt(QAEvalConfig(adapter=str(tmp_path), prompt=given)).date == "2025-01-01"
    # no run date: today's, pinned (config.yaml and the cache key then say which date the prompts carried)
    before = dt.date.today().isoformat()
    today = resolve_prompt(QAEvalConfig(prompt=PromptSettings(format="chat_template"))).date
    assert today in (before, dt.date.today().isoformat())


def test_chat_template_and_openai_harmony_differ_only_after_the_developer_text(tmp_path, monkeypatch):
    """The published gpt-oss chat template (sft's) and openai-harmony (`render_prompt`), with the real
    tokenizer, on every setting both accept: the same token ids, except that the template writes
    "\n\n" after the developer instructions, before that message's <|end|>."""
    monkeypatch.setenv("WIKITUNE_CACHE", str(tmp_path))
    monkeypatch.setenv("TIKTOKEN_CACHE_DIR", str(tmp_path / "tiktoken"))
    tok = load_gpt_oss_tokenizer(shared_file("gpt-oss", "o200k_base.tiktoken").parent)

    def ids(text: str) -> list[int]:
        return tok(text, add_special_tokens=False)["input_ids"]

    for developer in (None, "簡潔に答えて。"):
        for effort in ("low", "medium", "high"):
            for date in ("2025-08-05", "2026-01-31"):
                for identity in ("You are ChatGPT, a large language model trained by OpenAI.", "あなたはアシスタントです。"):
                    settings = PromptSettings(developer=developer, reasoning_effort=effort, date=date, system_identity=identity)
                    harmony = render_prompt(settings, "銀魂で、桂小太郎のあだ名は？")
                    template = render_with_chat_template(tok, settings, "銀魂で、桂小太郎のあだ名は？")
                    if developer is None:
                        assert ids(template) == ids(harmony)
                    else:
                        assert ids(template) != ids(harmony)
                        tail = f"# Instructions\n\n{developer}"
                        assert template == harmony.replace(f"{tail}<|end|>", f"{tail}\n\n<|end|>")
    # what only harmony accepts: no date line, another knowledge cutoff
    assert "Current date" not in render_prompt(PromptSettings(), "Q") and "Current date" in render_with_chat_template(tok, PromptSettings(), "Q")
    with pytest.raises(WikituneError, match="knowledge_cutoff"):
        PromptSettings(format="chat_template", knowledge_cutoff="2025-01")


@pytest.mark.parametrize("analysis, final, stop_reason", [
    ("Zura.", "ヅラ", "stop"), (None, "ヅラ", "stop"), ("Wait, let's recall", None, "length"), ("考え中", "桃月学園の", "length"),
])
def test_a_servers_separated_channels_parse_as_sent(analysis, final, stop_reason):
    parsed = parse_server_reply(final, analysis, stop_reason=stop_reason)
    assert (parsed.analysis, parsed.final) == (analysis, final)
    assert ("truncated" in parsed.flags) == (stop_reason == "length") and ("no_final" in parsed.flags) == (final is None)
    assert "leaked_harmony" not in parsed.flags


def test_server_replies_that_leak_harmony():
    # the reasoning field with its own header leaked, a plain final
    p = parse_server_reply("ヅラ", "<|channel|>analysis<|message|>Zura.<|end|>", stop_reason="stop")
    assert (p.final, p.analysis, p.flags) == ("ヅラ", "Zura.", ["leaked_harmony"])
    # the first <|channel|> eaten with the prompt: "analysis<|message|>…"
    p = parse_server_reply("analysis<|message|>Zura.<|end|><|start|>assistant<|channel|>final<|message|>ヅラ<|return|>", stop_reason="stop")
    assert (p.final, p.analysis, p.flags) == ("ヅラ", "Zura.", ["leaked_harmony"])
    # the whole prompt echoed into content: only the assistant's final is the answer
    p = parse_server_reply(SYSTEM + "<|start|>user<|message|>銀魂で？<|end|><|start|>assistant<|channel|>final<|message|>ヅラ<|return|>")
    assert p.final == "ヅラ" and {"prompt_echo", "leaked_harmony"} <= set(p.flags)
    # a token harmony does not define is no leak of harmony: dropped and flagged as in any completion
    p = parse_server_reply("ヅラ<|im_end|>", stop_reason="stop")
    assert p.final == "ヅラ" and p.flags == ["unknown_token"]
    # with the analysis given apart, content that starts with "analysis" is the answer, not the stripped form
    p = parse_server_reply("analysis of the show: ヅラ", "Zura.", stop_reason="stop")
    assert p.final == "analysis of the show: ヅラ" and p.flags == []


def test_reasoning_effort_is_checked_in_one_place():
    assert check_reasoning_effort("high") == "high"
    with pytest.raises(WikituneError, match=r"judge.reasoning_effort must be one of low, medium, high, got 'max'"):
        check_reasoning_effort("max", "judge.reasoning_effort")
