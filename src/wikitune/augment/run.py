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

Methods: `facts` (`augment.facts`: infobox and lead-sentence facts in K template phrasings, no LLM).
"""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from wikitune import formats
from wikitune.augment.facts import METHOD as FACTS, TEMPLATE_FILE, FactTemplates, facts_documents
from wikitune.augment.guard import FactGuard
from wikitune.errors import WikituneError
from wikitune.formats import Document, QAItem
from wikitune.outputs import OutputDir, stamp

# Private helper of qa.build: the corpus's name index (redirects, bracket-less titles) that
# `mine_facts` and `fact_key` take; there is no public way to build it.
from wikitune.qa.build import QABuildConfig, title_index
from wikitune.split import DEFAULT_HELDOUT_FRACTION, is_heldout, split_articles

KIND = "augment"
METHODS = (FACTS,)
"""The methods this version implements (the contract names more: formats.AUGMENT_METHODS)."""
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

    def __post_init__(self) -> None:
        self.corpus = Path(self.corpus)
        self.out = Path(self.out)
        self.exclude_qa = [Path(p) for p in self.exclude_qa]
        if self.method not in METHODS:
            raise WikituneError(f"unknown augmentation method {self.method!r}; choose one of: {', '.join(METHODS)}")
        if isinstance(self.k, bool) or not isinstance(self.k, int) or self.k < 1:
            raise WikituneError(f"k (phrasings per fact) must be an integer of 1 or more, got {self.k!r}")
        is_heldout(0, self.heldout_fraction)  # raises the one-line error for a fraction outside [0, 1)


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
            directory that is not a wikitune augmentation, or a corpus that yields no document.
    """
    started = time.monotonic()
    records, excluded = _read_inputs(cfg)
    names = title_index(cfg.corpus, records)
    train, heldout = split_articles(records, cfg.heldout_fraction)
    qa_cfg = QABuildConfig(corpus=cfg.corpus, out=cfg.out, heldout_fraction=cfg.heldout_fraction)
    guard = FactGuard.build(heldout, excluded, names, qa_cfg)
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
            "corpus": str(cfg.corpus), "k": cfg.k, "seed": cfg.seed, "heldout_fraction": cfg.heldout_fraction,
            "exclude_qa": [str(p) for p in cfg.exclude_qa], "excluded_questions": len(excluded),
            "articles": articles, "training_articles": len(train), "heldout_articles": len(heldout),
            "documents": len(documents), "facts": facts, "sentences": facts * cfg.k,
            "tokens": sum(len(d.text) for d in documents), "token_unit": TOKEN_UNIT,
            "rejected": dict(sorted(rejected.items())), "requests": 0,
            "seconds": round(time.monotonic() - started, 3),
        }, KIND)
        formats.write_json(out.work / formats.AUG_MANIFEST, manifest)
        out.commit()
    return AugmentResult(out=cfg.out, manifest=manifest)
