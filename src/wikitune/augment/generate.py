"""The LLM methods of `wikitune augment`: `rephrase`, `entigraph` and `qa`, and the checks of every reply.

    wikitune augment corpus/demo --out aug/demo-rephrase --method rephrase --k 5 \
        --base-url http://127.0.0.1:8000/v1 --model gpt-oss-20b --concurrency 8
    wikitune augment corpus/demo --out aug/demo-entigraph --method entigraph --k 8 --triples ...
    wikitune augment corpus/demo --out aug/demo-qa --method qa --k 3 --exclude-qa qa/demo/test.jsonl ...

- `rephrase` (WRAP, Maini et al. 2024; the "rephrase" baseline of EntiGraph): K rewrites of each
  article, rewrite r in the style of the r-th prompt file `prompts/rephrase-*.ja.md`
  (encyclopedic paraphrase, plain explanation, a list of facts, a dialogue, an introduction told
  in another order), cycling when K is larger, each with its own sampling seed.
- `entigraph` (Yang et al. 2024, EntiGraph): one request extracts the article's salient entities
  (`entigraph-1-entities`; names that do not occur in the article are dropped), then K entity
  pairs (and with `--triples` K triples), drawn with a seeded shuffle, each get a text about how
  they relate, grounded in the article (`entigraph-2-pair`, `entigraph-3-triple`).
- `qa`: K requests per article (`qa.ja.md`, different seeds) each ask for several question/answer
  pairs as JSON lines; a pair is kept when its answer occurs in the article.

Every reply is read with the evaluator's parser (`Reply.parse`: a reasoning model's analysis is
never used, only its final channel) and checked; what fails is counted in the manifest's
`rejected` by reason:

- the reply: `request_refused` (the server answered 400), `no_final`, `truncated` (cut by the
  token limit), `not_japanese` (under `min_japanese` of its letters kana or kanji), `too_short`,
  `too_long`, `near_duplicate` (character-trigram Jaccard of `near_duplicate` or more with an
  output already kept for the article; outputs are judged in job order, so the same replies always
  keep the same ones), `entity_missing` (an entigraph text that does not name its entities);
- parts of a reply: `entity_not_in_article` (an extracted entity), `malformed` (a QA line that is
  not the asked JSON), `answer_not_in_article`, `answer_in_question`, and a pair that asks a
  held-out fact or an `--exclude-qa` fact (`heldout_fact`, `excluded_fact`: `FactGuard.reason`
  with the pair's subject, and again with the article as subject);
- sentences of a document that restate such a fact are cut out and counted as
  `heldout_fact_sentence` / `excluded_fact_sentence` (`FactGuard.sentence_reason`): a rewrite of
  a training article states that article's facts, and one excluded fact must not cost the rest.
"""

from __future__ import annotations

import itertools
import json
import random
import re
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Iterator

from wikitune.augment.guard import FactGuard
from wikitune.augment.llm import Job, LLMClient, PromptSet, Reply, job_seed, request_key
from wikitune.formats import Document, QAItem
from wikitune.qa.build import Fact, QABuildConfig, answer_aliases
from wikitune.text.ja import char_ngrams, contains_term, japanese_share, normalize_answer, split_sentences

REPHRASE, ENTIGRAPH, QA = "rephrase", "entigraph", "qa"
LLM_METHODS = (REPHRASE, ENTIGRAPH, QA)
_BULLET = re.compile(r"^\s*(?:[-*・●•]|\d+\s*[.)．、:：])\s*")
_FENCE = re.compile(r"^\s*```")


@dataclass
class Checks:
    """Limits a generated output must keep (the quality options of `augment`)."""

    min_chars: int = 80
    """A document shorter than this (characters) is rejected as too_short."""
    max_chars: int = 8000
    """A document longer than this is rejected as too_long."""
    max_answer_chars: int = 40
    """A QA answer longer than this is rejected as too_long (qa build's limit)."""
    min_japanese: float = 0.5
    """Share of a text's letters that must be kana or kanji."""
    near_duplicate: float = 0.8
    """Character-trigram Jaccard at or above which an output duplicates one kept before it."""


@dataclass
class LLMMethodRun:
    """One run of an LLM method: the articles, the prompts, the client and what was kept or rejected.

    Attributes:
        method (str): rephrase, entigraph or qa.
        records (list[dict]): the training articles, in page-id order (never a held-out one).
        guard (FactGuard): the facts no output may state.
        names (dict[str, list[str]]): the corpus's name index, for answer aliases.
        qa_cfg (QABuildConfig): `qa build`'s mining settings, for the articles' own facts.
        prompts (PromptSet): the method's prompt files.
        client (LLMClient): requests through the cache.
        k (int): outputs (rewrites, pairs, QA requests) per article.
        seed (int): the run's seed; every job's sampling seed derives from it.
        checks (Checks): the limits.
        max_article_chars (int): an article is cut to this many characters in a prompt.
        triples (bool): entigraph: also K entity triples.
        max_entities (int): entigraph: entities asked for per article.
        qa_per_request (int): qa: pairs asked for per request.
        domain (str): qa: the `domain` of the QA records.
    """

    method: str
    records: list[dict]
    guard: FactGuard
    names: dict[str, list[str]]
    qa_cfg: QABuildConfig
    prompts: PromptSet
    client: LLMClient
    k: int
    seed: int
    checks: Checks = field(default_factory=Checks)
    max_article_chars: int = 8000
    triples: bool = False
    max_entities: int = 10
    qa_per_request: int = 5
    domain: str = "anime"
    rejected: Counter = field(default_factory=Counter)
    documents: list[Document] = field(default_factory=list)
    qa_items: list[QAItem] = field(default_factory=list)

    # ---- requests --------------------------------------------------------------------------------
    def article(self, record: dict) -> str:
        """The article's text as a prompt shows it (cut at `max_article_chars`)."""
        return (record.get("text") or "")[: self.max_article_chars].strip()

    def job(self, record: dict, name: str, prompt: str, **values: Any) -> Job:
        """The request of one output of `record`: `name` says which (`rephrase:0`, `pair:3`)."""
        messages = self.prompts.messages(self.prompts.get(prompt), title=record["title"], article=self.article(record), **values)
        full = f"{record['pageid']}:{name}"
        seed = job_seed(self.seed, f"{self.method}:{full}")
        key = request_key(revision=[record["pageid"], record.get("revid")], method=self.method, k=self.k, job=name,
                          prompt_sha256=self.prompts.sha256, model=self.client.settings.model,
                          sampling=self.client.settings.sampling(), seed=seed, messages=messages)
        return Job(key=key, name=full, messages=messages, seed=seed)

    def run(self) -> None:
        """Request every output the budget allows and keep the ones that pass the checks."""
        {REPHRASE: self._rephrase, ENTIGRAPH: self._entigraph, QA: self._qa}[self.method]()

    # ---- the methods -----------------------------------------------------------------------------
    def _rephrase(self) -> None:
        styles = [p.name for p in self.prompts.prompts]
        plan = [(record, [self.job(record, f"rephrase:{r}", styles[r % len(styles)]) for r in range(self.k)])
                for record in self.records]
        replies = self.client.run([job for _, jobs in plan for job in jobs])
        for record, jobs in plan:
            kept: list[set[str]] = []
            for r, job in enumerate(jobs):
                self._keep_document(record, replies.get(job.key), f"rephrase:{r}", [], kept)

    def _entigraph(self) -> None:
        extract = {record["pageid"]: self.job(record, "entities", "entigraph-1-entities", max_entities=self.max_entities)
                   for record in self.records}
        replies = self.client.run(list(extract.values()))
        plan = []
        for record in self.records:
            entities = self._entities(record, replies.get(extract[record["pageid"]].key))
            if entities is None:
                continue
            groups = self._groups(record, entities, 2, "pairs")
            if self.triples:
                groups += self._groups(record, entities, 3, "triples")
            jobs = []
            for n, group in enumerate(groups):
                kind = "pair" if len(group) == 2 else "triple"
                values = {f"entity{i + 1}": name for i, name in enumerate(group)}
                jobs.append((f"{kind}:{n}", group, self.job(record, f"{kind}:{n}", f"entigraph-{len(group)}-{kind}", **values)))
            plan.append((record, jobs))
        replies = self.client.run([job for _, jobs in plan for _, _, job in jobs])
        for record, jobs in plan:
            kept: list[set[str]] = []
            for name, group, job in jobs:
                self._keep_document(record, replies.get(job.key), name, group, kept)

    def _qa(self) -> None:
        plan = [(record, [self.job(record, f"qa:{r}", "qa", n=self.qa_per_request) for r in range(self.k)]) for record in self.records]
        replies = self.client.run([job for _, jobs in plan for job in jobs])
        for record, jobs in plan:
            kept: list[set[str]] = []
            for r, job in enumerate(jobs):
                final = self._final(replies.get(job.key))
                if final is None:
                    continue
                pairs = [item for item in self._qa_pairs(record, final, f"{record['pageid']}:qa:{r}", kept)]
                if pairs:
                    self.qa_items.extend(pairs)
                    text = "\n\n".join(f"問：{item.question}\n答：{item.answer}" for item in pairs)
                    self.documents.append(self._document(record, f"qa:{r}", text))

    # ---- checks ----------------------------------------------------------------------------------
    def _final(self, reply: Reply | None) -> str | None:
        """The reply's final-channel text, or None (counted) when it has none worth reading."""
        if reply is None:  # not sent: the budget was spent
            return None
        if reply.refused is not None:
            self.rejected["request_refused"] += 1
            return None
        parsed = reply.parse()
        if parsed.final is None or not parsed.final.strip():
            self.rejected["no_final"] += 1
            return None
        if reply.stop_reason != "stop" or "truncated" in parsed.flags:
            self.rejected["truncated"] += 1
            return None
        return parsed.final.strip()

    def _japanese(self, text: str) -> bool:
        if japanese_share(text) < self.checks.min_japanese:
            self.rejected["not_japanese"] += 1
            return False
        return True

    def _unique(self, text: str, kept: list[set[str]]) -> bool:
        """True (and `text` remembered) unless it nearly duplicates an output kept before."""
        grams = set(char_ngrams(text, 3))
        for other in kept:
            union = len(grams | other)
            if union and len(grams & other) / union >= self.checks.near_duplicate:
                self.rejected["near_duplicate"] += 1
                return False
        kept.append(grams)
        return True

    def _document(self, record: dict, name: str, text: str) -> Document:
        pageid = int(record["pageid"])
        return Document(id=f"{pageid}:{self.method}:{name}", pageid=pageid, title=record["title"], method=self.method,
                        k=self.k, text=text)

    def _keep_document(self, record: dict, reply: Reply | None, name: str, entities: list[str], kept: list[set[str]]) -> None:
        text = self._final(reply)
        if text is None or not self._japanese(text):
            return
        if len(text) < self.checks.min_chars:
            self.rejected["too_short"] += 1
            return
        if len(text) > self.checks.max_chars:
            self.rejected["too_long"] += 1
            return
        normed = normalize_answer(text)
        if any(not contains_term(normed, normalize_answer(entity)) for entity in entities):
            self.rejected["entity_missing"] += 1
            return
        text = self._without_guarded_sentences(record, text)
        if text and self._unique(text, kept):
            self.documents.append(self._document(record, name, text))

    def _without_guarded_sentences(self, record: dict, text: str) -> str:
        """`text` without the sentences that restate a held-out or excluded fact (each counted)."""
        about = self.guard.subject_forms(record["title"])
        guarded = self.guard.guarded_facts(record, self.qa_cfg)
        lines = []
        for line in text.splitlines():
            sentences = []
            for sentence in split_sentences(line):
                why = self.guard.sentence_reason(sentence, about, guarded)
                if why is None:
                    sentences.append(sentence)
                else:
                    self.rejected[f"{why}_sentence"] += 1
            if sentences:
                lines.append("".join(sentences))
        return "\n".join(lines)

    def _entities(self, record: dict, reply: Reply | None) -> list[str] | None:
        """The extracted entities that occur in the article, in reply order, or None when under two."""
        final = self._final(reply)
        if final is None:
            return None
        article = normalize_answer(record.get("text") or "")
        entities: dict[str, str] = {}
        for line in final.splitlines():
            name = _BULLET.sub("", line).strip().strip("「」")
            key = normalize_answer(name)
            if not key or _FENCE.match(line) or key in entities:
                continue
            if contains_term(article, key):
                entities[key] = name
            else:
                self.rejected["entity_not_in_article"] += 1
        found = list(entities.values())[: self.max_entities]
        if len(found) < 2:
            self.rejected["too_few_entities"] += 1
            return None
        return found

    def _groups(self, record: dict, entities: list[str], size: int, what: str) -> list[tuple[str, ...]]:
        """K groups of `size` entities, drawn by a seeded shuffle of all of them (in extraction order)."""
        groups = list(itertools.combinations(entities, size))
        random.Random(f"{self.seed}:{self.method}:{record['pageid']}:{what}").shuffle(groups)  # a str seed hashes alike everywhere
        return groups[: self.k]

    def _qa_pairs(self, record: dict, final: str, prefix: str, kept: list[set[str]]) -> Iterator[QAItem]:
        """The acceptable question/answer pairs of one reply."""
        article = normalize_answer(record.get("text") or "")
        for n, pair in enumerate(_json_lines(final)):
            if pair is None:
                self.rejected["malformed"] += 1
                continue
            question, answer, subject = pair
            q, a = normalize_answer(question), normalize_answer(answer)
            if not self._japanese(question):
                continue
            if len(q) < 5 or not a:
                self.rejected["too_short"] += 1
                continue
            if len(question) > 200 or len(answer) > self.checks.max_answer_chars:
                self.rejected["too_long"] += 1
                continue
            if not contains_term(article, a):
                self.rejected["answer_not_in_article"] += 1
                continue
            if contains_term(q, a):
                self.rejected["answer_in_question"] += 1
                continue
            aliases = answer_aliases(answer, self.names)
            why = None
            for about in dict.fromkeys([subject, record["title"]]):
                fact = Fact(id=f"{prefix}:{n}", question=question, answer=answer, aliases=aliases, pageid=int(record["pageid"]),
                            title=record["title"], rule="llm:qa", subject=about or "")
                why = why or self.guard.reason(fact)
            if why is not None:
                self.rejected[why] += 1
                continue
            if not self._unique(question, kept):
                continue
            yield QAItem(id=f"{prefix}:{n}", question=question, answer=answer, aliases=aliases, domain=self.domain,
                         split="train", source={"pageid": int(record["pageid"]), "title": record["title"]})


def _json_lines(text: str) -> Iterator[tuple[str, str, str] | None]:
    """(question, answer, subject) of each JSON line of a QA reply (or of a JSON array); None for a bad line."""
    stripped = text.strip()
    if stripped.startswith("["):
        try:
            items = json.loads(stripped)
        except ValueError:
            items = None
        if isinstance(items, list):
            for item in items:
                yield _pair(item)
            return
    for line in stripped.splitlines():
        line = _BULLET.sub("", line).strip().rstrip(",")
        if not line or _FENCE.match(line):
            continue
        try:
            yield _pair(json.loads(line))
        except ValueError:
            yield None


def _pair(item: Any) -> tuple[str, str, str] | None:
    if not isinstance(item, dict) or not isinstance(item.get("question"), str) or not isinstance(item.get("answer"), str):
        return None
    subject = item.get("subject") if isinstance(item.get("subject"), str) else ""
    return item["question"].strip(), item["answer"].strip(), subject.strip()
