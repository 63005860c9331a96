"""Continued pre-training with LoRA on a corpus directory: `wikitune cpt`.

    wikitune extract demo --out corpus/demo
    wikitune cpt --config configs/tiny/cpt.yaml                       # CPU, minutes
    wikitune cpt --config configs/tiny/cpt.yaml max_steps=20 lora.r=8 # key=value overrides
    wikitune cpt --config configs/tiny/cpt.yaml --resume              # continue a killed run
    accelerate launch --config_file configs/accelerate/ddp.yaml -m wikitune.cli cpt --config ...

Data -> model + LoRA -> train -> save, each step but the data through the shared runtime
(`wikitune.train.runtime`). The run directory gets config.yaml, lora_coverage.json,
metrics.jsonl, checkpoints/, adapter/, tokenizer/, summary.json, loss.png.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from wikitune import formats
from wikitune.errors import WikituneError
from wikitune.split import split_articles
from wikitune.train import runtime
from wikitune.train.data import block_collate, pack_wrapped, tokenize_documents
from wikitune.train.runtime import TrainSettings


@dataclass
class CPTConfig(TrainSettings):
    """Continued pre-training (LoRA) of a causal LM on a corpus directory."""

    output_dir: str = "runs/tiny-cpt"
    """Run directory to write (config.yaml, metrics.jsonl, adapter/, checkpoints/, ...)."""
    # ---- data
    corpus: str = "corpus/demo"
    """Corpus directory (written by `wikitune extract` or `crawl`)."""
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
        WikituneError: bad corpus, impossible LoRA targets, nothing to train on, a run in the
            way (see `resume`/`overwrite`).
    """
    with runtime.keep_replaced_run_until_success(Path(cfg.output_dir)):
        return _run_cpt(cfg, callbacks)


def _run_cpt(cfg: CPTConfig, callbacks: list | None) -> Path:
    from datasets import Dataset

    state, resume_from = runtime.start_run(cfg)

    # ---------------------------------------------------------------- data
    articles = formats.read_articles(cfg.corpus, cfg.text_field)
    train_articles, heldout_articles = split_articles(articles, cfg.heldout_fraction)
    if not train_articles:
        raise WikituneError(f"{cfg.corpus}: every article is held out; lower heldout_fraction")
    tokenizer = runtime.load_run_tokenizer(cfg, state, resume_from, [a["text"] for a in train_articles])
    separator_id = tokenizer.convert_tokens_to_ids(cfg.separator)
    if separator_id is None or separator_id == tokenizer.unk_token_id:
        raise WikituneError(f"separator {cfg.separator!r} is not a token of the tokenizer")
    train_docs = tokenize_documents([a["text"] for a in train_articles], tokenizer, separator_id)
    train_blocks = pack_wrapped(train_docs, cfg.block_size)
    if not train_blocks:
        raise WikituneError(f"{cfg.corpus}: fewer training tokens than one block of {cfg.block_size}; lower block_size")
    eval_blocks = pack_wrapped(tokenize_documents([a["text"] for a in heldout_articles], tokenizer, separator_id),
                               cfg.block_size)[: cfg.max_eval_blocks]
    train_tokens = sum(len(d) for d in train_docs)
    print(f"cpt: {len(train_articles)} training articles ({train_tokens:,} tokens -> {len(train_blocks)} blocks of "
          f"{cfg.block_size}), {len(heldout_articles)} held out ({len(eval_blocks)} validation blocks)")

    # ---------------------------------------------------------------- model + LoRA, train, save
    model, coverage = runtime.load_model_with_lora(cfg, tokenizer)
    trained = runtime.train(
        cfg, model, Dataset.from_dict({"input_ids": train_blocks}),
        Dataset.from_dict({"input_ids": eval_blocks}) if eval_blocks else None,
        block_collate, resume_from, cfg.tokens_per_step, callbacks,
    )
    data_summary = {
        "corpus": cfg.corpus, "train_articles": len(train_articles), "heldout_articles": len(heldout_articles),
        "train_tokens": train_tokens, "train_blocks": len(train_blocks), "eval_blocks": len(eval_blocks),
        "block_size": cfg.block_size, "padding_tokens": 0,
    }
    return runtime.finish_run(cfg, trained, tokenizer, coverage, stage="cpt",
                              title=f"CPT {cfg.model} on {Path(cfg.corpus).name}", fields=data_summary)
