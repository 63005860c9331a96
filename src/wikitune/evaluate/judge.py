"""An optional LLM judge for long answers (the seed's 国債 and NISA questions), through an OpenAI-compatible server.

    wikitune eval --config configs/tiny/eval.yaml judge.enabled=true judge.base_url=http://127.0.0.1:8000/v1 \\
        judge.model=openai/gpt-oss-120b

Off by default. The rubric is `wikitune/data/judge_rubric.ja.md` (1-5, last line `評価: N`).
By default only questions without a gold short answer are judged (`judge.questions=no_gold`);
`all` judges every answer. A judged record gets `scores.judge` = (N - 1) / 4 in [0, 1] and a
`judge` object {score, verdict, model}; a verdict without a readable `評価: N` line gets the flag
`judge_failed` and no score (absent, not zero). A record without a final answer is not sent:
it scores 0 (nothing to judge is the worst answer).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from importlib import resources
from typing import Any

from wikitune.errors import WikituneError
from wikitune.gptoss.generate import GenerationSettings, OpenAIBackend

_VERDICT = re.compile(r"(?:評価|score|Score|SCORE)\s*[:：=]\s*\**\s*([1-5])(?:\s*/\s*5)?")


@dataclass
class JudgeSettings:
    """The LLM judge (off unless enabled)."""

    enabled: bool = False
    """Judge answers with an LLM through an OpenAI-compatible server."""
    base_url: str | None = None
    """API root of the judge's server, e.g. http://127.0.0.1:8001/v1."""
    model: str = "openai/gpt-oss-120b"
    """Model name the judge's server knows."""
    api: str = "chat"
    """chat (/chat/completions) | responses (/responses)."""
    concurrency: int = 4
    """Judge requests in flight at most."""
    max_new_tokens: int = 2048
    """Token budget of one verdict (reasoning included)."""
    reasoning_effort: str = "medium"
    """Reasoning effort asked of the judge."""
    questions: str = "no_gold"
    """no_gold (questions without a short gold answer) | all."""

    def __post_init__(self) -> None:
        if self.enabled and not self.base_url:
            raise WikituneError("judge.enabled needs judge.base_url (an OpenAI-compatible server)")
        if self.questions not in ("no_gold", "all"):
            raise WikituneError(f"judge.questions must be no_gold or all, got {self.questions!r}")
        if self.max_new_tokens < 1 or self.concurrency < 1:
            raise WikituneError("judge.max_new_tokens and judge.concurrency must be 1 or more")


def rubric() -> str:
    """The judge's system prompt (the rubric file shipped in the package)."""
    return (resources.files("wikitune") / "data" / "judge_rubric.ja.md").read_text(encoding="utf-8")


def judge_message(question: str, answer: str, gold: str | None) -> str:
    """The user message of one judgement."""
    parts = [f"質問:\n{question}"]
    if gold:
        parts.append(f"模範解答:\n{gold}")
    parts.append(f"採点対象の回答:\n{answer}")
    return "\n\n".join(parts)


def parse_verdict(text: str | None) -> int | None:
    """The 1-5 score of a verdict (its last `評価: N`), or None when there is none."""
    if not text:
        return None
    found = _VERDICT.findall(text)
    return int(found[-1]) if found else None


def judge_records(records: list[dict[str, Any]], settings: JudgeSettings, *, backend: Any = None) -> int:
    """Judge the records that need it, in place; returns how many verdicts were requested.

    Records already judged with the same judge model keep their verdict (a resumed run does not
    ask again).
    """
    todo = []
    for rec in records:
        wanted = settings.questions == "all" or not rec.get("answer")
        if not wanted or (rec.get("judge") or {}).get("model") == settings.model:
            continue
        if not rec.get("final"):
            rec["judge"] = {"score": 1, "verdict": None, "model": settings.model}
            rec["scores"]["judge"] = 0.0
            continue
        todo.append(rec)
    if not todo:
        return 0
    client = backend or OpenAIBackend(settings.base_url, settings.model, GenerationSettings(max_new_tokens=settings.max_new_tokens),
                                      api=settings.api, concurrency=settings.concurrency)
    system = rubric()
    conversations = [[{"role": "system", "content": system},
                      {"role": "user", "content": judge_message(r["question"], r["final"], r.get("answer"))}] for r in todo]
    for rec, gen in zip(todo, client.chat(conversations, reasoning_effort=settings.reasoning_effort)):
        verdict = gen.final_text()
        score = parse_verdict(verdict)
        rec["judge"] = {"score": score, "verdict": verdict, "model": settings.model}
        rec["flags"] = [f for f in rec["flags"] if f != "judge_failed"]
        if score is None:
            rec["flags"].append("judge_failed")
            rec["scores"].pop("judge", None)
        else:
            rec["scores"]["judge"] = (score - 1) / 4
    return len(todo)
