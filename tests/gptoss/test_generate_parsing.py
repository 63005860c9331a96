"""Generations become result records through the one parser: a server's text and an in-process completion
are told apart only by what `raw` holds, and the record keeps exactly what was generated or sent."""

import jsonschema

from wikitune import formats
from wikitune.evaluate.run import result_record
from wikitune.formats import QAItem
from wikitune.gptoss.generate import Generation

ITEM = QAItem(id="q1", question="銀魂で、桂小太郎のあだ名は？", answer="ヅラ", domain="anime")
COMPLETION = "<|channel|>analysis<|message|>Katsura is called Zura.<|end|><|start|>assistant<|channel|>final<|message|>ヅラ<|return|>"


def record(gen):
    rec = result_record(ITEM, gen, set_name="s", cache_key="k")
    assert jsonschema.Draft202012Validator(formats.schema("eval_result")).is_valid(rec)
    return rec


def test_a_servers_separated_channels_keep_what_it_sent():
    rec = record(Generation(raw="ヅラ", new_tokens=17, stop_reason="stop", reasoning="Katsura is called Zura.", server_text=True))
    assert (rec["raw"], rec["raw_reasoning"]) == ("ヅラ", "Katsura is called Zura.")
    assert rec["final"] == "ヅラ" and rec["analysis"] == "Katsura is called Zura." and rec["flags"] == []
    assert rec["scores"]["exact_match"] == 1


def test_an_in_process_completion_and_the_same_text_leaked_by_a_server():
    local = record(Generation(raw=COMPLETION, new_tokens=17, stop_reason="stop"))
    leaked = record(Generation(raw=COMPLETION, new_tokens=17, stop_reason="stop", server_text=True))
    assert "raw_reasoning" not in local and leaked["raw_reasoning"] is None
    assert local["raw"] == leaked["raw"] == COMPLETION
    assert (local["final"], local["analysis"]) == (leaked["final"], leaked["analysis"]) == ("ヅラ", "Katsura is called Zura.")
    assert local["flags"] == [] and leaked["flags"] == ["leaked_harmony"]


def test_plain_text_is_a_final_answer_only_from_a_server():
    """A server's `content` is its final channel; a model that writes plain text after `<|start|>assistant` gave no channel."""
    served = record(Generation(raw="ヅラ", new_tokens=2, stop_reason="stop", server_text=True))
    generated = record(Generation(raw="ヅラ", new_tokens=2, stop_reason="stop"))
    assert served["final"] == "ヅラ" and served["scores"]["exact_match"] == 1
    assert generated["final"] is None and {"malformed", "no_final"} <= set(generated["flags"])


def test_a_server_reply_cut_by_the_budget_in_analysis():
    rec = record(Generation(raw="", new_tokens=1024, stop_reason="length", reasoning="Wait, let's recall", server_text=True))
    assert rec["final"] is None and rec["analysis"] == "Wait, let's recall" and rec["flags"] == ["truncated", "no_final"]
    assert rec["raw"] == "" and rec["scores"]["exact_match"] == 0
