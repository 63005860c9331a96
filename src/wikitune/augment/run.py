"""`wikitune augment`: training documents made from a corpus's training articles, for CPT.

    wikitune augment corpus/demo --out aug/demo-facts --method facts --k 5 --seed 0 \
        --exclude-qa qa/demo/test.jsonl
    # -> aug/demo-facts/documents.jsonl  {"id", "pageid", "title", "method", "k", "text"} per line
    #    aug/demo-facts/manifest.json    method, generator, counts, rejected facts by reason, ...

Rules every method keeps:

- Only training articles are augmented: `wikitune.split.is_heldout` with `heldout_fraction`
  (the same split as `cpt` and `qa build`), and no fact of a held-out article is stated by a
  training article's document either (`augment.guard`, rejected as `heldout_fact`).
- A fact that a question of an `--exclude-qa` file asks (same subject and normalised answer) is not
  stated (rejected as `excluded_fact`).
- Deterministic: the same corpus, settings and seed give a byte-identical documents.jsonl (the
  manifest differs only in `created` and `seconds`).
- Atomic: everything is written into `AUG_DIR.partial/` and swapped into place when finished
  (`wikitune.outputs.OutputDir`), so a killed run leaves the previous output, or nothing, never a
  half-written directory with a manifest; a directory that is not a wikitune augmentation is
  refused untouched.

Methods: `facts` (`augment.facts`: infobox and lead-sentence facts in K template phrasings, no LLM);
`rephrase`, `entigraph` and `qa` (`augment.generate`: an OpenAI-compatible server writes them,
`augment.llm` sends the requests). An LLM method keeps its reply cache in `AUG_DIR/cache.sqlite`:
while it runs, the cache is in `AUG_DIR.partial/` (kept after a kill, `OutputDir(keep_partial=True)`,
and handed back to the next run), and a finished output's cache is copied there first, so the swap
that installs the new output takes the cache with it and a rerun repeats no request.
"""

from __future__ import annotations

import shutil
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from wikitune import formats
from wikitune.augment.facts import METHOD as FACTS, TEMPLATE_FILE, FactTemplates, facts_documents
from wikitune.augment.generate import LLM_METHODS, QA, Checks, LLMMethodRun
from wikitune.augment.guard import FactGuard
from wikitune.augment.llm import CACHE_FILE, LLMClient, LLMSettings, PromptSet, ReplyCache
from wikitune.errors import WikituneError
from wikitune.formats import Document, QAItem
from wikitune.outputs import OutputDir, stamp

# Private helper of qa.build: the corpus's name index (redirects, bracket-less titles) that
# `mine_facts` and `fact_key` take; there is no public way to build it.
from wikitune.qa.build import QABuildConfig, title_index
from wikitune.split import DEFAULT_HELDOUT_FRACTION, is_heldout, split_articles

KIND = "augment"
METHODS = (FACTS, *LLM_METHODS)
"""The methods this version implements (formats.AUGMENT_METHODS)."""
TOKEN_UNIT = "characters"
"""What the manifest's `tokens` counts: no tokenizer is loaded, so characters of the documents' text."""


@dataclass
class AugmentConfig:
    """Options of `wikitune augment`."""

    corpus: Path
    """Corpus directory written by `extract` or `crawl`."""
    out: Path
    """Augmentation directory to write (documents.jsonl, manifest.json)."""
    method: str = FACTS
    """How documents are made: `facts` (template phrasings of infobox and lead facts, no LLM)."""
    k: int = 5
    """Phrasings per fact; `facts` writes k documents per article."""
    seed: int = 0
    """Seed of every choice (phrasing per round, sentence order); the same seed gives the same bytes."""
    heldout_fraction: float = DEFAULT_HELDOUT_FRACTION
    """Share of articles held out (must match cpt's and qa build's); they are never augmented."""
    exclude_qa: list[Path] = field(default_factory=list)
    """wikitune QA JSONL files whose questions' facts no document may state (e.g. the evaluation's test.jsonl)."""
    # ---- LLM methods (rephrase, entigraph, qa): see augment.llm.LLMSettings and augment.generate.Checks
    base_url: str | None = None
    """OpenAI-compatible API root of the generator, e.g. http://127.0.0.1:8000/v1."""
    model: str | None = None
    """The generator's model name on that server."""
    concurrency: int = 8
    """Requests in flight at most."""
    temperature: float = 1.0
    """Sampling temperature of the generator."""
    top_p: float = 1.0
    """Nucleus sampling mass of the generator."""
    max_new_tokens: int = 2048
    """Token limit of one reply (a reasoning model's analysis included)."""
    reasoning_effort: str | None = None
    """low | medium | high for a reasoning model; None sends none."""
    timeout: float = 600.0
    """Seconds one request may take before it is retried."""
    retries: int = 4
    """Retries of a request after a 5xx, a timeout or a connection error."""
    retry_backoff: float = 1.0
    """Seconds before the first retry, doubled at each next one."""
    max_tokens_total: int | None = None
    """Budget of generated tokens for the whole output (cached replies count); the run stops sending when spent."""
    triples: bool = False
    """entigraph: also K texts about entity triples."""
    max_entities: int = 10
    """entigraph: entities extracted per article."""
    qa_per_request: int = 5
    """qa: question/answer pairs asked for per request."""
    domain: str = "anime"
    """qa: the `domain` of the generated QA records."""
    max_article_chars: int = 8000
    """An article is cut to this many characters in a prompt."""
    checks: Checks = field(default_factory=Checks)
    """Limits every generated output must keep (length, language, near-duplicates)."""

    def __post_init__(self) -> None:
        self.corpus = Path(self.corpus)
        self.out = Path(self.out)
        self.exclude_qa = [Path(p) for p in self.exclude_qa]
        if self.method not in METHODS:
            raise WikituneError(f"unknown augmentation method {self.method!r}; choose one of: {', '.join(METHODS)}")
        if isinstance(self.k, bool) or not isinstance(self.k, int) or self.k < 1:
            raise WikituneError(f"k (phrasings per fact) must be an integer of 1 or more, got {self.k!r}")
        is_heldout(0, self.heldout_fraction)  # raises the one-line error for a fraction outside [0, 1)
        if self.method in LLM_METHODS:
            self.llm_settings()  # checks them before anything is read
            if min(self.max_entities, self.qa_per_request, self.max_article_chars) < 1 or self.max_entities < 2:
                raise WikituneError("max_entities must be 2 or more, qa_per_request and max_article_chars 1 or more")

    def llm_settings(self) -> LLMSettings:
        """The generator's settings (LLM methods)."""
        return LLMSettings(base_url=self.base_url or "", model=self.model or "", concurrency=self.concurrency,
                           temperature=self.temperature, top_p=self.top_p, max_new_tokens=self.max_new_tokens,
                           reasoning_effort=self.reasoning_effort, timeout=self.timeout, retries=self.retries,
                           retry_backoff=self.retry_backoff, max_tokens_total=self.max_tokens_total)


@dataclass
class AugmentResult:
    out: Path
    manifest: dict[str, Any]


def _read_inputs(cfg: AugmentConfig) -> tuple[list[dict], list[QAItem]]:
    """The corpus's articles and the excluded questions, checked before anything is written."""
    if not (cfg.corpus / formats.ARTICLES).is_file():
        raise WikituneError(f"{cfg.corpus} has no {formats.ARTICLES}: give a corpus directory written by `wikitune extract`")
    records = list(formats.iter_articles(cfg.corpus))
    if not records:
        raise WikituneError(f"{cfg.corpus / formats.ARTICLES} holds no articles")
    excluded = [item for path in cfg.exclude_qa for item in formats.read_qa_file(path)]
    return records, excluded


def run_augment(cfg: AugmentConfig) -> AugmentResult:
    """Make the documents of `cfg.method` and write the augmentation directory.

    Returns:
        AugmentResult: the directory and its manifest.

    Raises:
        WikituneError: a missing or empty corpus, an unreadable `--exclude-qa` file, an output
            directory that is not a wikitune augmentation, a corpus that yields no document
            (facts), or a request that failed for good (LLM methods; the replies are cached).
    """
    started = time.monotonic()
    records, excluded = _read_inputs(cfg)
    names = title_index(cfg.corpus, records)
    train, heldout = split_articles(records, cfg.heldout_fraction)
    qa_cfg = QABuildConfig(corpus=cfg.corpus, out=cfg.out, heldout_fraction=cfg.heldout_fraction)
    guard = FactGuard.build(heldout, excluded, names, qa_cfg)
    common = {"corpus": str(cfg.corpus), "k": cfg.k, "seed": cfg.seed, "heldout_fraction": cfg.heldout_fraction,
              "exclude_qa": [str(p) for p in cfg.exclude_qa], "excluded_questions": len(excluded),
              "training_articles": len(train), "heldout_articles": len(heldout)}
    if cfg.method in LLM_METHODS:
        return _run_llm_method(cfg, train, names, qa_cfg, guard, common, started)
    templates = FactTemplates.load()

    rejected: Counter = Counter()
    documents: list[Document] = []
    articles = facts = 0
    for docs, stated in facts_documents(train, names, qa_cfg, guard, templates, cfg.k, cfg.seed, rejected):
        articles += 1
        facts += stated
        documents.extend(docs)
    if not documents:
        raise WikituneError(f"{cfg.corpus} yields no document: its training articles have no fact the rules know "
                            f"(rejected: {dict(rejected) or 'none'})")

    with OutputDir(cfg.out, KIND, manifest=formats.AUG_MANIFEST) as out:
        formats.write_documents(out.work / formats.AUG_DOCUMENTS, documents)
        manifest = stamp({
            "method": cfg.method,
            "generator": {"model": None, "base_url": None, "prompt_sha256": templates.sha256,
                          "prompt": f"wikitune/augment/templates/{TEMPLATE_FILE}"},
            **common, "articles": articles, "documents": len(documents), "facts": facts, "sentences": facts * cfg.k,
            "tokens": sum(len(d.text) for d in documents), "token_unit": TOKEN_UNIT,
            "rejected": dict(sorted(rejected.items())), "requests": 0,
            "seconds": round(time.monotonic() - started, 3),
        }, KIND)
        formats.write_json(out.work / formats.AUG_MANIFEST, manifest)
        out.commit()
    return AugmentResult(out=cfg.out, manifest=manifest)


def _run_llm_method(cfg: AugmentConfig, train: list[dict], names: dict[str, list[str]], qa_cfg: QABuildConfig, guard: FactGuard,
                    common: dict[str, Any], started: float) -> AugmentResult:
    """`rephrase`, `entigraph` or `qa`: requests through the cache kept beside the output (module docstring)."""
    settings = cfg.llm_settings()
    prompts = PromptSet.load(cfg.method)
    with OutputDir(cfg.out, KIND, manifest=formats.AUG_MANIFEST, keep_partial=True) as out:
        cache_path = out.work / CACHE_FILE
        finished = out.path / CACHE_FILE
        if not cache_path.exists() and finished.is_file():
            shutil.copyfile(finished, cache_path)  # we hold the lock: nobody writes the finished one
        with ReplyCache(cache_path) as cache:
            client = LLMClient(settings, cache)
            run = LLMMethodRun(method=cfg.method, records=train, guard=guard, names=names, qa_cfg=qa_cfg, prompts=prompts, client=client,
                               k=cfg.k, seed=cfg.seed, checks=cfg.checks, max_article_chars=cfg.max_article_chars,
                               triples=cfg.triples, max_entities=cfg.max_entities, qa_per_request=cfg.qa_per_request,
                               domain=cfg.domain)
            run.run()
        formats.write_documents(out.work / formats.AUG_DOCUMENTS, run.documents)
        if cfg.method == QA:
            formats.write_qa_file(out.work / formats.AUG_QA, run.qa_items)
        stats = client.stats
        manifest = stamp({
            "method": cfg.method,
            "generator": {"model": settings.model, "base_url": settings.base_url, "prompt_sha256": prompts.sha256,
                          "prompts": prompts.paths(), **settings.sampling(), "seed": cfg.seed},
            **common, "articles": len({d.pageid for d in run.documents}), "documents": len(run.documents),
            **({"qa": len(run.qa_items)} if cfg.method == QA else {}),
            "tokens": sum(len(d.text) for d in run.documents), "token_unit": TOKEN_UNIT,
            "rejected": dict(sorted(run.rejected.items())),
            "requests": stats.requests, "retries": stats.retries, "replies": stats.replies, "cached_replies": stats.cached,
            "generated_tokens": stats.tokens,
            "budget": {"max_tokens_total": settings.max_tokens_total, "spent": stats.tokens,
                       "exhausted": stats.budget_exhausted, "unsent_requests": stats.unsent},
            "complete": not stats.budget_exhausted,
            "cache": CACHE_FILE, "concurrency": settings.concurrency,
            "seconds": round(time.monotonic() - started, 3),
        }, KIND)
        formats.write_json(out.work / formats.AUG_MANIFEST, manifest)
        out.commit()
    return AugmentResult(out=cfg.out, manifest=manifest)
