"""Continued pre-training with LoRA on a corpus directory or a data mixture: `wikitune cpt`.

    wikitune extract demo --out corpus/demo
    wikitune cpt --config configs/tiny/cpt.yaml                       # CPU, minutes
    wikitune cpt --config configs/tiny/cpt.yaml max_steps=20 lora.r=8 # key=value overrides
    wikitune cpt --config configs/tiny/cpt.yaml --resume              # continue a killed run
    wikitune cpt --config configs/tiny/cpt-mixture.yaml               # articles + augmentation + QA
    accelerate launch --config_file configs/accelerate/ddp.yaml -m wikitune.cli cpt --config ...

A mixture (`data:`) lists sources, each packed like the articles (`wikitune.train.data.mix_sources`):

    data:
      - {corpus: corpus/anime}                       # training articles (the held-out split never)
      - {augment: aug/anime-facts}                   # AUG_DIR/documents.jsonl
      - {qa: qa/anime/train.jsonl, format: harmony}  # QA as SFT's conversations, LM loss on all tokens
      - {replay: corpus/general, fraction: 0.1}      # 10% of the training tokens
    order: mixed                                     # or qa-first (PIT)

Data -> model + LoRA -> train -> save, each step but the data through the shared runtime
(`wikitune.train.runtime`). The run directory gets config.yaml, lora_coverage.json,
metrics.jsonl, checkpoints/, adapter/, tokenizer/, summary.json (with tokens and realised share
per source), loss.png.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from wikitune import formats
from wikitune.errors import WikituneError
from wikitune.train import runtime
from wikitune.train.data import (ORDERS, Source, block_collate, load_source, mix_sources, pack_wrapped, parse_sources,
                                 tokenize_documents, tokenize_source)
from wikitune.train.runtime import TrainSettings

DEFAULT_CORPUS = "corpus/demo"


@dataclass
class CPTConfig(TrainSettings):
    """Continued pre-training (LoRA) of a causal LM on a corpus directory or a data mixture."""

    output_dir: str = "runs/tiny-cpt"
    """Run directory to write (config.yaml, metrics.jsonl, adapter/, checkpoints/, ...)."""
    # ---- data
    corpus: str | None = None
    """Corpus directory (written by `wikitune extract` or `crawl`) to train on, without `data`;
    None: corpus/demo. Give either corpus or data."""
    data: list[dict] | None = None
    """A mixture to train on instead of `corpus`: a list of sources, each one of
    `{corpus: DIR}` (training articles), `{augment: AUG_DIR}`, `{qa: FILE, format: harmony|text}`,
    `{replay: DIR|FILE.txt|FILE.jsonl}`, with an optional `fraction` (its share of the training
    tokens; the others keep all theirs)."""
    order: str = "mixed"
    """Block order of a mixture: mixed (shuffled), or qa-first (PIT: every QA block, then the rest)."""
    current_date: str | None = None
    """`Current date:` of harmony QA sources (YYYY-MM-DD). None: today, pinned in config.yaml so a
    resumed run renders the same tokens."""
    text_field: str = "text"
    """Article field to train on: text or markdown."""
    heldout_fraction: float = 0.1
    """Share of articles held out for validation, by a hash of the page id (shared with qa build)."""
    block_size: int = 256
    """Tokens per packed training block (sequence length)."""
    separator: str = "<|endoftext|>"
    """Token appended after every article (o200k's document separator; gpt-oss's eos `<|return|>`
    ends an assistant turn, not a document)."""
    max_eval_blocks: int = 64
    """Most held-out blocks evaluated each time (the first ones, always the same)."""

    def __post_init__(self) -> None:
        if self.order not in ORDERS:
            raise WikituneError(f"order must be one of {', '.join(ORDERS)}, got {self.order!r}")
        if self.data is not None:
            if self.corpus is not None:
                raise WikituneError("give corpus or data, not both: put the corpus in data as `- {corpus: DIR}`")
            parse_sources(self.data, self.order)  # the declaration only: a config loads without its files
        else:
            if self.corpus is None:
                self.corpus = DEFAULT_CORPUS
            if self.order != "mixed":
                raise WikituneError(f"order: {self.order} needs a mixture in data (order applies to its sources)")
        if self.current_date is not None:
            try:
                dt.date.fromisoformat(self.current_date)
            except ValueError as err:
                raise WikituneError(f"current_date must be YYYY-MM-DD, got {self.current_date!r}") from err
        if not 0.0 <= self.heldout_fraction < 1.0:
            raise WikituneError(f"heldout_fraction must be in [0, 1), got {self.heldout_fraction}")
        if self.block_size < 1:
            raise WikituneError(f"block_size must be 1 or more, got {self.block_size}")
        if self.block_size < 2:
            raise WikituneError("block_size must be 2 or more")
        if self.text_field not in formats.ARTICLE_TEXT_FIELDS:
            raise WikituneError(f"text_field must be text or markdown, got {self.text_field!r}")
        super().__post_init__()

    def tokens_per_step(self, world_size: int = 1) -> int:
        """Tokens consumed by one optimizer step (all blocks are full: no padding)."""
        return self.block_size * self.batch_size * self.grad_accum * world_size


def run_cpt(cfg: CPTConfig, callbacks: list | None = None) -> Path:
    """Run continued pre-training; return the run directory.

    Args:
        cfg: the resolved config.
        callbacks: extra transformers TrainerCallbacks (tests use one to simulate a kill).

    Raises:
        WikituneError: bad corpus or mixture source (missing, empty, smaller than a block),
            impossible LoRA targets, nothing to train on, a run in the way (see `resume`/`overwrite`).
    """
    with runtime.keep_replaced_run_until_success(Path(cfg.output_dir)):
        return _run_cpt(cfg, callbacks)


def sources_of(cfg: CPTConfig) -> list[Source]:
    """The declared mixture, or the corpus alone when there is none."""
    return parse_sources(cfg.data, cfg.order) if cfg.data is not None else [Source("corpus", cfg.corpus)]


def _run_cpt(cfg: CPTConfig, callbacks: list | None) -> Path:
    from datasets import Dataset

    run_dir = Path(cfg.output_dir)
    sources = sources_of(cfg)
    if any(s.kind == "qa" and s.format == "harmony" for s in sources) and cfg.current_date is None:
        if cfg.resume and (run_dir / formats.RUN_CONFIG).is_file():
            cfg.current_date = formats.read_run_config(run_dir).get("current_date")
        cfg.current_date = cfg.current_date or dt.date.today().isoformat()
    # Every source is read (and a missing or empty one refused) before the run directory is touched.
    loaded = [load_source(s, cfg.heldout_fraction, cfg.text_field) for s in sources]
    state, resume_from = runtime.start_run(cfg)

    # ---------------------------------------------------------------- data
    tokenizer = runtime.load_run_tokenizer(cfg, state, resume_from, [t for d in loaded for t in d.raw_texts()])
    separator_id = tokenizer.convert_tokens_to_ids(cfg.separator)
    if separator_id is None or separator_id == tokenizer.unk_token_id:
        raise WikituneError(f"separator {cfg.separator!r} is not a token of the tokenizer")
    docs = [tokenize_source(d, tokenizer, separator_id, cfg.current_date) for d in loaded]
    mixture = mix_sources(sources, docs, cfg.block_size, cfg.seed, cfg.order)
    heldout_texts = [t for d in loaded if d.source.kind == "corpus" for t in d.heldout_texts]
    eval_blocks = pack_wrapped(tokenize_documents(heldout_texts, tokenizer, separator_id), cfg.block_size)[: cfg.max_eval_blocks]
    # tokens of the documents packed: a source with a fraction counts the tokens of its blocks
    train_tokens = sum(st["tokens"] if st["fraction"] is None else st["train_tokens"] for st in mixture.stats)
    per_source = [{**st, "heldout": d.heldout} for st, d in zip(mixture.stats, loaded)]
    for st, d in zip(per_source, loaded):
        print(f"cpt: {d.source.name}: {st['documents']} documents ({st['heldout']} held out), {st['tokens']:,} tokens "
              f"-> {st['blocks']} blocks, {st['share']:.1%} of the training tokens")
        if st["heldout"] and d.source.kind in ("augment", "qa"):
            print(f"cpt: warning: {d.source.name}: dropped {st['heldout']} records about held-out pages "
                  f"(heldout_fraction={cfg.heldout_fraction}; were they made with another split?)")
    corpora = [d for d in loaded if d.source.kind == "corpus"]
    train_articles = sum(len(d.texts) for d in corpora)
    print(f"cpt: {train_articles} training articles ({train_tokens:,} tokens -> {len(mixture.blocks)} blocks of "
          f"{cfg.block_size}), {sum(d.heldout for d in corpora)} held out ({len(eval_blocks)} validation blocks)")

    # ---------------------------------------------------------------- model + LoRA, train, save
    model, coverage = runtime.load_model_with_lora(cfg, tokenizer)
    trained = runtime.train(
        cfg, model, Dataset.from_dict({"input_ids": mixture.blocks}),
        Dataset.from_dict({"input_ids": eval_blocks}) if eval_blocks else None,
        block_collate, resume_from, cfg.tokens_per_step, callbacks,
        shuffle=cfg.order != "qa-first",  # qa-first: the blocks in mix_sources' order
    )
    data_summary: dict[str, Any] = {
        "corpus": cfg.corpus, "order": cfg.order, "train_articles": train_articles,
        "heldout_articles": sum(d.heldout for d in corpora),
        "train_tokens": train_tokens, "train_blocks": len(mixture.blocks), "eval_blocks": len(eval_blocks),
        "block_size": cfg.block_size, "padding_tokens": 0, "sources": per_source,
    }
    names = " + ".join(Path(s.path).name for s in sources)
    return runtime.finish_run(cfg, trained, tokenizer, coverage, stage="cpt",
                              title=f"CPT {cfg.model} on {names}", fields=data_summary)
