"""Supervised fine-tuning with LoRA on QA pairs rendered as harmony conversations: `wikitune sft`.

    wikitune qa build corpus/demo --out qa/demo
    wikitune sft --config configs/tiny/sft.yaml                        # from the base model
    wikitune sft --config configs/tiny/sft.yaml adapter=runs/tiny-cpt  # on top of the CPT adapter
    wikitune sft --config configs/tiny/sft.yaml --resume

Each pair becomes system (+ optional developer) + user question + the answer in the assistant's
final channel. Loss is on `<|channel|>final<|message|>answer<|return|>` only: every prompt token,
`<|start|>assistant` included, is labelled -100 (the model is prompted with `<|start|>assistant`
at inference and must produce the rest).

Starting from a CPT run (`adapter=RUN`): `adapter_mode: continue` keeps training that adapter;
`adapter_mode: merge` merges it into the base weights and trains a new LoRA on top. Everything
but the data goes through the runtime CPT uses too (`wikitune.train.runtime`).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path

from wikitune import formats
from wikitune.errors import WikituneError
from wikitune.formats import QAItem
from wikitune.gptoss.harmony import REASONING_EFFORTS, training_template
from wikitune.gptoss.model import TINY, TinyGptOssConfig
from wikitune.train import runtime
from wikitune.train.data import IGNORE_INDEX, encode_qa, pad_collate, read_training_qa
from wikitune.train.runtime import TrainSettings


@dataclass
class SFTConfig(TrainSettings):
    """Supervised fine-tuning (LoRA) on QA pairs, loss on the assistant's final message only."""

    output_dir: str = "runs/tiny-sft"
    """Run directory to write (config.yaml, metrics.jsonl, adapter/, checkpoints/, ...)."""
    epochs: float = 3.0
    """Passes over the QA pairs (ignored when max_steps > 0)."""
    # ---- data
    qa: str | list[str] = "qa/demo/train.jsonl"
    """QA JSONL file(s) (DESIGN.md) to train on; a directory means its train.jsonl."""
    qa_split: str | None = "train"
    """Keep only records of this split (records with split null are kept); None keeps all."""
    eval_qa: str | list[str] | None = None
    """QA file(s) for validation loss (e.g. qa/demo/test.jsonl); None: no validation."""
    system_prompt: str | None = None
    """Model identity line of the harmony system message; None: the template's default."""
    developer_prompt: str | None = None
    """Developer instructions (harmony developer message); None: no developer message."""
    reasoning_effort: str = "low"
    """`Reasoning:` line of the system message: low, medium or high."""
    current_date: str | None = None
    """`Current date:` of the system message (YYYY-MM-DD). None: today, pinned in config.yaml
    so a resumed run renders the same tokens."""
    max_length: int = 1024
    """Longest conversation in tokens; longer ones are dropped (counted in summary.json), never
    cut (a cut would lose `<|return|>`)."""
    # ---- model
    adapter_mode: str = "continue"
    """With `adapter`: continue (keep training it) or merge (merge it, train a new LoRA)."""

    def __post_init__(self) -> None:
        if self.reasoning_effort not in REASONING_EFFORTS:
            raise WikituneError(f"reasoning_effort must be one of {', '.join(REASONING_EFFORTS)}, got {self.reasoning_effort!r}")
        if self.adapter_mode not in ("continue", "merge"):
            raise WikituneError(f"adapter_mode must be continue or merge, got {self.adapter_mode!r}")
        if self.current_date is not None:
            try:
                dt.date.fromisoformat(self.current_date)
            except ValueError as err:
                raise WikituneError(f"current_date must be YYYY-MM-DD, got {self.current_date!r}") from err
        if self.max_length < 1:
            raise WikituneError(f"max_length must be 1 or more, got {self.max_length}")
        super().__post_init__()


def encode_records(items: list[QAItem], tokenizer, cfg: SFTConfig) -> tuple[list[dict], int]:
    """Encoded rows (input_ids, labels) of the QA items, and how many were too long."""
    template = training_template(tokenizer, cfg.current_date or dt.date.today().isoformat())
    rows, too_long = [], 0
    for item in items:
        row = encode_qa(item.question, item.answer, tokenizer, template=template,
                        system_prompt=cfg.system_prompt, developer_prompt=cfg.developer_prompt,
                        reasoning_effort=cfg.reasoning_effort)
        if len(row["input_ids"]) > cfg.max_length:
            too_long += 1
            continue
        rows.append(row)
    return rows, too_long


def run_sft(cfg: SFTConfig, callbacks: list | None = None) -> Path:
    """Run supervised fine-tuning; return the run directory.

    Raises:
        WikituneError: bad QA files, impossible LoRA targets, every conversation too long, a run
            in the way (see `resume`/`overwrite`).
    """
    with runtime.keep_replaced_run_until_success(Path(cfg.output_dir)):
        return _run_sft(cfg, callbacks)


def _run_sft(cfg: SFTConfig, callbacks: list | None) -> Path:
    from datasets import Dataset

    run_dir = Path(cfg.output_dir)
    if cfg.adapter is not None and cfg.model == TINY and (Path(cfg.adapter) / formats.RUN_CONFIG).is_file():
        # the adapter was trained on a tiny model of the CPT run's sizes: rebuild exactly that one
        sizes = formats.read_run_config(cfg.adapter).get("tiny")
        if sizes:
            cfg.tiny = TinyGptOssConfig(**sizes)
    if cfg.resume and cfg.current_date is None and (run_dir / formats.RUN_CONFIG).is_file():
        cfg.current_date = formats.read_run_config(run_dir).get("current_date")
    if cfg.current_date is None:
        cfg.current_date = dt.date.today().isoformat()
    state, resume_from = runtime.start_run(cfg)

    # ---------------------------------------------------------------- data
    items = read_training_qa(cfg.qa, cfg.qa_split)
    tokenizer = runtime.load_run_tokenizer(cfg, state, resume_from, [f"{i.question}\n{i.answer}" for i in items])
    rows, too_long = encode_records(items, tokenizer, cfg)
    if not rows:
        raise WikituneError(f"every conversation is longer than max_length={cfg.max_length}")
    eval_rows: list[dict] = []
    if cfg.eval_qa:
        eval_rows, _ = encode_records(read_training_qa(cfg.eval_qa, None), tokenizer, cfg)
    trained_tokens = sum(sum(1 for t in r["labels"] if t != IGNORE_INDEX) for r in rows)
    print(f"sft: {len(rows)} conversations ({too_long} dropped as longer than {cfg.max_length} tokens), "
          f"{trained_tokens:,} trained tokens; {len(eval_rows)} validation conversations")

    # ---------------------------------------------------------------- model + LoRA, train, save
    model, coverage = runtime.load_model_with_lora(cfg, tokenizer, merge_adapter=cfg.adapter_mode == "merge")
    pad_id = tokenizer.pad_token_id
    trained = runtime.train(
        cfg, model, Dataset.from_list(rows), Dataset.from_list(eval_rows) if eval_rows else None,
        lambda batch: pad_collate(batch, pad_id), resume_from, None, callbacks,
    )
    data_summary = {
        "qa": cfg.qa, "adapter": cfg.adapter, "adapter_mode": cfg.adapter_mode,
        "conversations": len(rows), "dropped_too_long": too_long, "trained_tokens_per_epoch": trained_tokens,
        "eval_conversations": len(eval_rows),
    }
    return runtime.finish_run(cfg, trained, tokenizer, coverage, stage="sft", title=f"SFT {cfg.model}",
                              fields=data_summary)
