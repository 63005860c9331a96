"""Optional LLM-written questions for `qa build`, through any OpenAI-compatible server (e.g. `vllm serve`).

    wikitune qa build corpus/anime --out qa/anime --llm-base-url http://127.0.0.1:8000/v1 \\
        --llm-model openai/gpt-oss-120b --llm-per-article 5

The prompt is `wikitune/data/qa_generation_prompt.ja.md`: N questions per article, one JSON
object per line, each answer a phrase found verbatim in the article. Every proposal is checked
before it is kept: valid JSON with a question and an answer, an answer of at most
`max_answer_chars` that occurs in the article text (after normalisation: no hallucinated
answers), a question that does not contain its own answer; duplicates of rule-based or earlier
questions are dropped. What was rejected, and why, is counted in the QA manifest. The split
(train/test by fact, unseen by article) is the same as for rule-based facts.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from dataclasses import dataclass
from importlib import resources
from typing import Any, Iterable

from wikitune.errors import WikituneError
from wikitune.gptoss.generate import GenerationSettings, OpenAIBackend
from wikitune.text.ja import normalize_answer

_JSON_OBJECT = re.compile(r"\{[^{}]*\}")


@dataclass
class LLMQuestionSettings:
    base_url: str
    """API root of the server, e.g. http://127.0.0.1:8000/v1."""
    model: str
    """Model name the server knows."""
    per_article: int = 5
    """Questions asked for per article."""
    max_article_chars: int = 4000
    """The article text is cut to this many characters in the prompt."""
    max_new_tokens: int = 2048
    """Token budget of one reply (reasoning included)."""
    concurrency: int = 4
    """Requests in flight at most."""
    reasoning_effort: str = "low"
    """Reasoning effort asked of the model."""

    def __post_init__(self) -> None:
        if not self.base_url:
            raise WikituneError("the LLM question generator needs a base URL (--llm-base-url)")
        if self.per_article < 1 or self.max_article_chars < 100:
            raise WikituneError("--llm-per-article must be 1 or more (and max_article_chars 100 or more)")


def generation_prompt(title: str, text: str, n: int, max_chars: int) -> str:
    """The user message asking for `n` questions about one article."""
    template = (resources.files("wikitune") / "data" / "qa_generation_prompt.ja.md").read_text(encoding="utf-8")
    return template.replace("{n}", str(n)).replace("{title}", title).replace("{text}", text[:max_chars])


def parse_proposals(reply: str | None) -> list[dict[str, str]]:
    """Question/answer objects found in a reply (JSON lines, a JSON array, or objects inside a code fence)."""
    if not reply:
        return []
    out = []
    for candidate in _JSON_OBJECT.findall(reply):
        try:
            obj = json.loads(candidate)
        except json.JSONDecodeError:
            continue
        if isinstance(obj, dict) and isinstance(obj.get("question"), str) and isinstance(obj.get("answer"), str):
            out.append({"question": obj["question"].strip(), "answer": obj["answer"].strip()})
    return out


def check_proposal(proposal: dict[str, str], article_text: str, max_answer_chars: int) -> str | None:
    """Why a proposal is rejected, or None when it is kept."""
    question, answer = proposal["question"], proposal["answer"]
    if not question or not answer:
        return "llm_empty"
    if len(answer) > max_answer_chars:
        return "llm_answer_too_long"
    key = normalize_answer(answer)
    if not key or key not in normalize_answer(article_text):
        return "llm_answer_not_in_article"
    if key in normalize_answer(question):
        return "llm_answer_in_question"
    return None


def propose_questions(records: Iterable[dict[str, Any]], settings: LLMQuestionSettings, *, max_answer_chars: int,
                      skipped: Counter, backend: Any = None) -> list[tuple[dict, dict[str, str]]]:
    """(article record, {question, answer}) pairs the LLM proposed and the checks kept."""
    records = [r for r in records if (r.get("text") or "").strip()]
    client = backend or OpenAIBackend(settings.base_url, settings.model, GenerationSettings(max_new_tokens=settings.max_new_tokens),
                                      concurrency=settings.concurrency)
    conversations = [[{"role": "user", "content": generation_prompt(r["title"], r["text"], settings.per_article, settings.max_article_chars)}]
                     for r in records]
    kept = []
    for record, gen in zip(records, client.chat(conversations, reasoning_effort=settings.reasoning_effort)):
        reply = gen.final_text()
        proposals = parse_proposals(reply)
        if not proposals:
            skipped["llm_no_parsable_reply"] += 1
        for proposal in proposals[: settings.per_article]:
            why = check_proposal(proposal, record["text"], max_answer_chars)
            if why:
                skipped[why] += 1
            else:
                kept.append((record, proposal))
    return kept
