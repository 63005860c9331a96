"""Answers from servers that separate the channels themselves (vLLM chat, OpenAI Responses) keep final and analysis."""

from wikitune.evaluate.run import result_record
from wikitune.formats import QAItem
from wikitune.gptoss.generate import _chat_generation, _responses_generation

ITEM = QAItem(id="q1", question="銀魂で、桂小太郎のあだ名は？", answer="ヅラ", domain="anime")


def test_vllm_chat_completion_with_reasoning_content():
    data = {"choices": [{"index": 0, "finish_reason": "stop",
                         "message": {"role": "assistant", "content": "ヅラ", "reasoning_content": "Katsura is called Zura."}}],
            "usage": {"prompt_tokens": 80, "completion_tokens": 17}}
    gen = _chat_generation(data)
    assert gen.new_tokens == 17 and gen.stop_reason == "stop"
    assert gen.raw == "<|channel|>analysis<|message|>Katsura is called Zura.<|end|><|start|>assistant<|channel|>final<|message|>ヅラ<|return|>"
    rec = result_record(ITEM, gen, set_name="s", cache_key="k")
    assert rec["final"] == "ヅラ" and rec["analysis"] == "Katsura is called Zura." and rec["scores"]["exact_match"] == 1
    assert rec["flags"] == ["raw_rebuilt"]


def test_chat_completion_cut_by_the_budget_in_analysis():
    data = {"choices": [{"finish_reason": "length", "message": {"content": None, "reasoning_content": "Wait, let's recall"}}],
            "usage": {"completion_tokens": 1024}}
    rec = result_record(ITEM, _chat_generation(data), set_name="s", cache_key="k")
    assert rec["final"] is None and {"no_final", "truncated", "raw_rebuilt"} <= set(rec["flags"])
    assert rec["scores"]["exact_match"] == 0


def test_responses_api_output_items():
    data = {"status": "completed", "usage": {"input_tokens": 50, "output_tokens": 9},
            "output": [{"type": "reasoning", "content": [{"type": "reasoning_text", "text": "Zura."}], "summary": []},
                       {"type": "message", "role": "assistant", "content": [{"type": "output_text", "text": "「ヅラ」です", "annotations": []}]}]}
    gen = _responses_generation(data)
    assert gen.new_tokens == 9 and gen.stop_reason == "stop"
    rec = result_record(ITEM, gen, set_name="s", cache_key="k")
    assert rec["final"] == "「ヅラ」です" and rec["analysis"] == "Zura." and rec["scores"]["contains"] == 1
    incomplete = _responses_generation({"status": "incomplete", "output": [{"type": "reasoning", "content": [{"type": "reasoning_text", "text": "hm"}]}]})
    assert incomplete.stop_reason == "length" and result_record(ITEM, incomplete, set_name="s", cache_key="k")["final"] is None
