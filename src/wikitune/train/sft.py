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
`adapter_mode: merge` merges it into the base weights and trains a new LoRA on top.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path

from wikitune.errors import WikituneError
from wikitune.gptoss.harmony import REASONING_EFFORTS, harmony_chat_template, pinned_template
from wikitune.gptoss.model import TINY, TinyGptOssConfig
from wikitune.train.lora import LoraSettings

log = logging.getLogger(__name__)



@dataclass
class SFTConfig:
    """Supervised fine-tuning (LoRA) on QA pairs, loss on the assistant's final message only."""

    # ---- run
    output_dir: str = "runs/tiny-sft"
    """Run directory to write (config.yaml, metrics.jsonl, adapter/, checkpoints/, ...)."""
    seed: int = 42
    """Seed of LoRA initialisation, data order and dropout."""
    resume: bool = False
    """Continue the run in output_dir from its last checkpoint."""
    overwrite: bool = False
    """Replace an existing run in output_dir instead of refusing."""
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
    model: str = TINY
    """`tiny-gpt-oss`, a local model directory or a Hugging Face id."""
    tokenizer: str | None = None
    """Tokenizer directory or id. None: the adapter run's tokenizer/, else the model's own; for
    tiny-gpt-oss without either, a BPE trained on the QA text."""
    tokenizer_vocab_size: int = 2000
    """Vocabulary size of a BPE trained for tiny-gpt-oss."""
    tiny: TinyGptOssConfig = field(default_factory=TinyGptOssConfig)
    """Sizes of tiny-gpt-oss (must match the CPT run's when starting from its adapter)."""
    adapter: str | None = None
    """Start from this adapter (a CPT run directory or adapter path); None: the base model."""
    adapter_mode: str = "continue"
    """With `adapter`: continue (keep training it) or merge (merge it, train a new LoRA)."""
    dtype: str = "auto"
    """Weights dtype: auto (bf16 on GPU, fp32 on CPU), bfloat16, float32."""
    quantization: str = "auto"
    """auto (dequantize MXFP4 checkpoints), none, mxfp4-dequantize, bnb-4bit."""
    attn_implementation: str | None = None
    """Attention kernel (eager on CPU)."""
    gradient_checkpointing: bool = False
    """Recompute activations in backward: less memory, about half the speed."""
    # ---- LoRA
    lora: LoraSettings = field(default_factory=LoraSettings)
    """LoRA targets and hyper-parameters of a new adapter (ignored by adapter_mode=continue,
    which keeps the adapter's own, except dropout)."""
    # ---- optimisation
    epochs: float = 3.0
    """Passes over the QA pairs (ignored when max_steps > 0)."""
    max_steps: int = -1
    """Optimizer steps to run; -1 = as many as `epochs` takes."""
    batch_size: int = 8
    """Conversations per device per micro-batch (padded to the longest)."""
    grad_accum: int = 1
    """Micro-batches per optimizer step."""
    learning_rate: float = 2e-4
    """Peak learning rate."""
    lr_scheduler: str = "cosine"
    """Learning-rate schedule after warmup."""
    warmup: float = 0.03
    """Warmup: a fraction of the steps when below 1, else a number of steps."""
    weight_decay: float = 0.0
    """AdamW weight decay."""
    max_grad_norm: float = 1.0
    """Gradient clipping norm."""
    optim: str = "adamw_8bit"
    """Optimizer; 8-bit AdamW falls back to adamw_torch when bitsandbytes does not work."""
    bf16: str = "auto"
    """bf16 mixed precision: auto (on a bf16 GPU), true, false."""
    # ---- logging and checkpoints
    logging_steps: int = 1
    """Log training metrics every N optimizer steps."""
    eval_steps: int = 50
    """Validate on eval_qa every N steps."""
    save_steps: int = 50
    """Write a resumable checkpoint every N steps."""
    save_total_limit: int | None = 2
    """Most checkpoints kept; None keeps all."""
    plot: bool = True
    """Write loss.png at the end."""

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
        for name in ("max_length", "batch_size", "grad_accum", "logging_steps", "eval_steps", "save_steps"):
            if getattr(self, name) < 1:
                raise WikituneError(f"{name} must be 1 or more, got {getattr(self, name)}")
        if self.max_steps == 0 or self.max_steps < -1:
            raise WikituneError(f"max_steps must be -1 (use epochs) or positive, got {self.max_steps}")
        if self.max_steps == -1 and self.epochs <= 0:
            raise WikituneError(f"epochs must be positive, got {self.epochs}")
        if self.bf16 not in ("auto", "true", "false"):
            raise WikituneError(f"bf16 must be auto, true or false, got {self.bf16!r}")


def _tokenizer(cfg: SFTConfig, run_dir: Path, records: list[dict], reuse_saved: bool):
    from transformers import AutoTokenizer

    from wikitune.gptoss.model import load_tokenizer, train_bpe_tokenizer

    saved = run_dir / "tokenizer"
    if reuse_saved and (saved / "tokenizer.json").is_file():
        return AutoTokenizer.from_pretrained(saved)
    if cfg.tokenizer is not None:
        return load_tokenizer(cfg.tokenizer)
    if cfg.adapter is not None and (Path(cfg.adapter) / "tokenizer" / "tokenizer.json").is_file():
        return AutoTokenizer.from_pretrained(Path(cfg.adapter) / "tokenizer")
    if cfg.model == TINY:
        return train_bpe_tokenizer([f"{r['question']}\n{r['answer']}" for r in records], cfg.tokenizer_vocab_size, saved)
    return load_tokenizer(cfg.model)


def encode_records(records: list[dict], tokenizer, cfg: SFTConfig) -> tuple[list[dict], int]:
    """Encoded rows (input_ids, labels) of the QA records, and how many were too long."""
    from wikitune.train.data import encode_qa

    template = tokenizer.chat_template if isinstance(tokenizer.chat_template, str) else harmony_chat_template()
    template = pinned_template(template, cfg.current_date or dt.date.today().isoformat())
    rows, too_long = [], 0
    for record in records:
        row = encode_qa(record["question"], record["answer"], tokenizer, template=template,
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
    from wikitune.train import runtime as R

    with R.keep_replaced_run_until_success(Path(cfg.output_dir)):
        return _run_sft(cfg, callbacks)


def _run_sft(cfg: SFTConfig, callbacks: list | None) -> Path:
    import torch
    from accelerate import PartialState
    from datasets import Dataset
    from transformers import Trainer, TrainingArguments, set_seed

    from wikitune.gptoss.model import load_model_and_tokenizer, read_run_config
    from wikitune.train import data as D
    from wikitune.train import runtime as R
    from wikitune.config import write_config
    from wikitune.train.lora import apply_lora, continue_adapter

    run_dir = Path(cfg.output_dir)
    if cfg.adapter is not None and cfg.model == TINY and (Path(cfg.adapter) / "config.yaml").is_file():
        # the adapter was trained on a tiny model of the CPT run's sizes: rebuild exactly that one
        sizes = read_run_config(cfg.adapter).get("tiny")
        if sizes:
            cfg.tiny = TinyGptOssConfig(**sizes)
    if cfg.resume and cfg.current_date is None and (run_dir / "config.yaml").is_file():
        cfg.current_date = read_run_config(run_dir).get("current_date")
    if cfg.current_date is None:
        cfg.current_date = dt.date.today().isoformat()
    # several processes under `accelerate launch`: the main one prepares the run directory and the
    # tokenizer first, the others then reuse what it wrote
    state = PartialState()
    with state.main_process_first():
        resume_from = R.prepare_run_dir(run_dir, resume=cfg.resume, overwrite=cfg.overwrite,
                                        main=state.is_main_process)
        if state.is_main_process:
            write_config(cfg, run_dir / "config.yaml")
    set_seed(cfg.seed)

    # ---------------------------------------------------------------- data
    records = D.read_qa(cfg.qa, cfg.qa_split)
    with state.main_process_first():
        tokenizer = _tokenizer(cfg, run_dir, records, resume_from is not None or not state.is_main_process)
    rows, too_long = encode_records(records, tokenizer, cfg)
    if not rows:
        raise WikituneError(f"every conversation is longer than max_length={cfg.max_length}")
    eval_rows: list[dict] = []
    if cfg.eval_qa:
        eval_rows, _ = encode_records(D.read_qa(cfg.eval_qa, None), tokenizer, cfg)
    trained_tokens = sum(sum(1 for t in r["labels"] if t != D.IGNORE_INDEX) for r in rows)
    print(f"sft: {len(rows)} conversations ({too_long} dropped as longer than {cfg.max_length} tokens), "
          f"{trained_tokens:,} trained tokens; {len(eval_rows)} validation conversations")

    # ---------------------------------------------------------------- model + LoRA
    base_adapter = cfg.adapter if cfg.adapter_mode == "merge" else None
    model, _ = load_model_and_tokenizer(
        cfg.model, tokenizer=tokenizer, adapter=base_adapter, tiny=cfg.tiny, dtype=cfg.dtype,
        quantization=cfg.quantization, attn_implementation=cfg.attn_implementation,
        gradient_checkpointing=cfg.gradient_checkpointing,
    )
    if base_adapter is not None:
        model = model.merge_and_unload()  # the CPT knowledge becomes base weights; a new LoRA goes on top
    if cfg.gradient_checkpointing:
        model.enable_input_require_grads()
    if cfg.adapter is not None and cfg.adapter_mode == "continue":
        model, coverage = continue_adapter(model, cfg.adapter, cfg.lora, run_dir)
    else:
        model, coverage = apply_lora(model, cfg.lora, run_dir)

    # ---------------------------------------------------------------- trainer
    args = TrainingArguments(
        output_dir=str(run_dir / R.CHECKPOINTS),
        per_device_train_batch_size=cfg.batch_size, per_device_eval_batch_size=cfg.batch_size,
        gradient_accumulation_steps=cfg.grad_accum,
        num_train_epochs=cfg.epochs, max_steps=cfg.max_steps,
        learning_rate=cfg.learning_rate, lr_scheduler_type=cfg.lr_scheduler, warmup_steps=cfg.warmup,
        weight_decay=cfg.weight_decay, max_grad_norm=cfg.max_grad_norm,
        optim=R.resolve_optim(cfg.optim), bf16=R.use_bf16(cfg.bf16),
        seed=cfg.seed, data_seed=cfg.seed,
        logging_steps=cfg.logging_steps, logging_first_step=True,
        eval_strategy="steps" if eval_rows else "no", eval_steps=cfg.eval_steps,
        save_strategy="steps", save_steps=cfg.save_steps, save_total_limit=cfg.save_total_limit,
        include_num_input_tokens_seen="non_padding",
        report_to="none", dataloader_num_workers=0, dataloader_pin_memory=torch.cuda.is_available(),
        remove_unused_columns=False, disable_tqdm=True,
    )
    optimizer = R.make_optimizer(model, args, cfg.lora.modules_to_save_lr)
    if resume_from is not None:
        R.trim_metrics(run_dir, int(Path(resume_from).name.split("-")[-1]))
    pad_id = tokenizer.pad_token_id
    trainer = Trainer(
        model=model, args=args,
        train_dataset=Dataset.from_list(rows),
        eval_dataset=Dataset.from_list(eval_rows) if eval_rows else None,
        data_collator=lambda batch: D.pad_collate(batch, pad_id),
        optimizers=(optimizer, None),
        callbacks=[R.metrics_callback(run_dir, None), *(callbacks or [])],
    )

    # ---------------------------------------------------------------- train
    started = time.perf_counter()
    result = trainer.train(resume_from_checkpoint=resume_from)
    elapsed = time.perf_counter() - started
    if eval_rows and trainer.state.global_step % cfg.eval_steps:
        trainer.evaluate()

    # ---------------------------------------------------------------- save
    if trainer.is_world_process_zero():
        model.save_pretrained(run_dir / "adapter")
        tokenizer.save_pretrained(run_dir / "tokenizer")
        if cfg.plot:
            R.plot_losses(run_dir, f"SFT {cfg.model}")
        R.write_summary(run_dir, {
            "stage": "sft", "model": cfg.model, "qa": cfg.qa, "adapter": cfg.adapter, "adapter_mode": cfg.adapter_mode,
            "steps": trainer.state.global_step, "epochs": trainer.state.epoch,
            "conversations": len(rows), "dropped_too_long": too_long, "trained_tokens_per_epoch": trained_tokens,
            "eval_conversations": len(eval_rows), "train_loss_mean": result.training_loss,
            **R.final_losses(run_dir),
            "train_seconds": elapsed, "resumed_from": resume_from,
            "trainable_params": coverage["trainable_params"], "trainable_by_kind": coverage["trainable_by_kind"],
            "device": "cuda" if torch.cuda.is_available() else "cpu",
        })
    return run_dir
