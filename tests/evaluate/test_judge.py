"""The optional LLM judge: rubric shipped, verdicts parsed, records scored, failures flagged (not zeroed)."""

import pytest

from wikitune.errors import WikituneError
from wikitune.gptoss.generate import Generation
from wikitune.evaluate.judge import JudgeSettings, judge_message, judge_records, parse_verdict, rubric


def test_rubric_and_message():
    text = rubric()
    assert "評価: N" in text and "5:" in text and "1:" in text
    message = judge_message("NISAとは？", "非課税制度です。", None)
    assert message.startswith("質問:\nNISAとは？") and "模範解答" not in message
    assert "模範解答:\nヅラ" in judge_message("あだ名は？", "ズラ", "ヅラ")


@pytest.mark.parametrize(
    "verdict, score",
    [
        ("回答は正確で簡潔です。\n評価: 5", 5),
        ("評価：3", 3),
        ("**評価: 2**", 2),
        ("Score: 4/5", 4),
        ("評価: 2 ... 見直すと\n評価: 4", 4),  # the last verdict counts
        ("とても良い回答です。", None),
        ("評価: 7", None),
        (None, None),
    ],
)
def test_parse_verdict(verdict, score):
    assert parse_verdict(verdict) == score


class ScriptedJudge:
    """Answers each judgement with the next scripted harmony completion (like a judge server would)."""

    def __init__(self, finals):
        self.finals = list(finals)
        self.seen = []

    def chat(self, conversations, reasoning_effort=None):
        self.seen.extend(conversations)
        return [Generation(raw=f"<|channel|>analysis<|message|>checking<|end|><|start|>assistant<|channel|>final<|message|>{f}<|return|>",
                           new_tokens=10, stop_reason="stop") for f in self.finals[: len(conversations)]]


def records():
    return [
        {"question": "NISAの概要は？", "answer": "", "final": "少額投資の利益が非課税になる制度です。", "flags": [], "scores": {}},
        {"question": "国債の違いは？", "answer": "", "final": "建設国債は公共事業、赤字国債は歳入不足に。", "flags": [], "scores": {}},
        {"question": "国債？", "answer": "", "final": None, "flags": ["no_final"], "scores": {}},
        {"question": "あだ名は？", "answer": "ヅラ", "final": "ヅラ", "flags": [], "scores": {"exact_match": 1}},
    ]


def test_judge_scores_long_answers_only_by_default():
    recs = records()
    judge = ScriptedJudge(["正確です。\n評価: 5", "曖昧な回答。"])
    settings = JudgeSettings(enabled=True, base_url="http://127.0.0.1:1/v1", model="judge-model")
    assert judge_records(recs, settings, backend=judge) == 2
    assert recs[0]["scores"]["judge"] == 1.0 and recs[0]["judge"]["score"] == 5
    assert "judge" not in recs[1]["scores"] and "judge_failed" in recs[1]["flags"]
    assert recs[2]["scores"]["judge"] == 0.0  # no final answer: nothing to judge is the worst answer
    assert "judge" not in recs[3]["scores"]  # short-answer questions keep their automatic scores
    assert judge.seen[0][0]["role"] == "system" and "評価: N" in judge.seen[0][0]["content"]
    # resumed: already judged by this model, nothing asked again
    assert judge_records(recs, settings, backend=ScriptedJudge([])) == 0


def test_settings_validation():
    with pytest.raises(WikituneError, match="judge.base_url"):
        JudgeSettings(enabled=True)
    with pytest.raises(WikituneError, match="judge.questions"):
        JudgeSettings(questions="some")
