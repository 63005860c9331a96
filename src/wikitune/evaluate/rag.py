"""The retrieval baseline (`rag` mode): BM25 over passages of the corpus, top-k into the developer message.

    index = BM25Index.from_corpus("corpus/demo")
    hits = index.search("テレビアニメ『星海のアルカディア』の監督は誰ですか？", k=3)
    context = format_context(hits)   # "[1] 星海のアルカディア: …" lines for PromptSettings/render_prompt

Japanese has no spaces, so passages and queries are tokenised into character bigrams
(`wikitune.text.ja.char_ngrams`): no dictionary to install, and names and terms match well.
A passage is the article title followed by consecutive sentences up to `chunk_chars`
characters; the title in every passage lets a question that names the work find it.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

from wikitune import formats
from wikitune.errors import WikituneError
from wikitune.text.ja import char_ngrams, split_sentences


@dataclass
class Passage:
    pageid: int
    title: str
    text: str


@dataclass
class Hit:
    passage: Passage
    score: float


def chunk_article(pageid: int, title: str, text: str, chunk_chars: int = 400) -> list[Passage]:
    """Passages of one article: whole sentences, at most about `chunk_chars` characters each."""
    passages: list[Passage] = []
    current = ""
    for paragraph in text.split("\n"):
        for sentence in split_sentences(paragraph):
            if current and len(current) + len(sentence) > chunk_chars:
                passages.append(Passage(pageid, title, current))
                current = ""
            current += sentence
    if current:
        passages.append(Passage(pageid, title, current))
    return passages


class BM25Index:
    """BM25 (bm25s) over character-bigram tokens of passages."""

    def __init__(self, passages: list[Passage], *, ngram: int = 2) -> None:
        import bm25s

        # bm25s sets its own logger to DEBUG at import, which prints under `wikitune -v`'s root handler
        logging.getLogger("bm25s").setLevel(logging.WARNING)
        if not passages:
            raise WikituneError("nothing to index: the corpus has no article text")
        self.passages = passages
        self.ngram = ngram
        self.retriever = bm25s.BM25()
        # The title counts three times: a question names the work or person its answer belongs to.
        self.retriever.index([self._tokens(" ".join([p.title] * 3 + [p.text])) for p in passages], show_progress=False)

    def _tokens(self, text: str) -> list[str]:
        return char_ngrams(text, self.ngram) or ["<empty>"]

    @classmethod
    def from_corpus(cls, corpus: str | Path, *, chunk_chars: int = 400, ngram: int = 2) -> "BM25Index":
        """Index every article of a corpus directory (articles.jsonl)."""
        passages: list[Passage] = []
        for rec in formats.iter_articles(corpus):
            passages.extend(chunk_article(rec["pageid"], rec["title"], rec.get("text") or "", chunk_chars))
        return cls(passages, ngram=ngram)

    def search(self, query: str, k: int = 3) -> list[Hit]:
        """The k best passages for `query`, best first (passages with score 0 are left out)."""
        tokens = [t for t in self._tokens(query) if t in self.retriever.vocab_dict]
        if not tokens:
            return []
        scores = self.retriever.get_scores(tokens)
        order = sorted(range(len(scores)), key=lambda i: (-float(scores[i]), i))[:k]
        return [Hit(self.passages[i], float(scores[i])) for i in order if scores[i] > 0]


def format_context(hits: Iterable[Hit]) -> str:
    """Retrieved passages as text for the developer message."""
    lines = ["次の資料を参考にして答えてください。"]
    for i, hit in enumerate(hits, 1):
        lines.append(f"[{i}] {hit.passage.title}: {hit.passage.text}")
    return "\n".join(lines)


def retrieval_hit(source: dict | None, hits: Iterable[Hit]) -> int | None:
    """1 when a retrieved passage comes from the question's source article, 0 when none does, None without a source."""
    if not source or source.get("pageid") is None:
        return None
    return int(any(h.passage.pageid == int(source["pageid"]) for h in hits))
