"""Continued pre-training with LoRA on a corpus directory: `wikitune cpt`.

    wikitune extract demo --out corpus/demo
    wikitune cpt --config configs/tiny/cpt.yaml                       # CPU, minutes
    wikitune cpt --config configs/tiny/cpt.yaml max_steps=20 lora.r=8 # key=value overrides
    wikitune cpt --config configs/tiny/cpt.yaml --resume              # continue a killed run
    accelerate launch --config_file configs/accelerate/ddp.yaml -m wikitune.cli cpt --config ...

Model -> data -> LoRA -> trainer -> train -> save. The run directory gets config.yaml,
lora_coverage.json, metrics.jsonl, checkpoints/, adapter/, tokenizer/, summary.json, loss.png.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path

from wikitune.errors import WikituneError
from wikitune.gptoss.model import TINY, TinyGptOssConfig
from wikitune.train.lora import LoraSettings

log = logging.getLogger(__name__)


@dataclass
class CPTConfig:
    """Continued pre-training (LoRA) of a causal LM on a corpus directory."""

    # ---- run
    output_dir: str = "runs/tiny-cpt"
    """Run directory to write (config.yaml, metrics.jsonl, adapter/, checkpoints/, ...)."""
    seed: int = 42
    """Seed of LoRA initialisation, data order and dropout."""
    resume: bool = False
    """Continue the run in output_dir from its last checkpoint (same data order, optimizer and
    scheduler state): the result equals an uninterrupted run."""
    overwrite: bool = False
    """Replace an existing run in output_dir instead of refusing."""
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
    # ---- model
    model: str = TINY
    """`tiny-gpt-oss`, a local model directory or a Hugging Face id (e.g. openai/gpt-oss-20b)."""
    tokenizer: str | None = None
    """Tokenizer directory or id. None: the model's own; for tiny-gpt-oss a byte-level BPE
    trained on the training articles (saved to RUN/tokenizer)."""
    tokenizer_vocab_size: int = 2000
    """Vocabulary size of the BPE trained for tiny-gpt-oss."""
    tiny: TinyGptOssConfig = field(default_factory=TinyGptOssConfig)
    """Sizes of tiny-gpt-oss."""
    adapter: str | None = None
    """Start from this adapter (a run directory or adapter path) and keep training it."""
    dtype: str = "auto"
    """Weights dtype: auto (bf16 on GPU, fp32 on CPU), bfloat16, float32."""
    quantization: str = "auto"
    """auto (dequantize MXFP4 checkpoints), none, mxfp4-dequantize, bnb-4bit."""
    attn_implementation: str | None = None
    """Attention kernel (eager on CPU; e.g. kernels-community/vllm-flash-attn3 on Hopper)."""
    gradient_checkpointing: bool = False
    """Recompute activations in backward: less memory, about half the speed."""
    # ---- LoRA
    lora: LoraSettings = field(default_factory=LoraSettings)
    """LoRA targets and hyper-parameters (see lora_coverage.json after a run)."""
    # ---- optimisation
    epochs: float = 1.0
    """Passes over the training blocks (ignored when max_steps > 0)."""
    max_steps: int = -1
    """Optimizer steps to run; -1 = as many as `epochs` takes."""
    batch_size: int = 8
    """Blocks per device per micro-batch."""
    grad_accum: int = 1
    """Micro-batches per optimizer step."""
    learning_rate: float = 2e-4
    """Peak learning rate of the LoRA weights."""
    lr_scheduler: str = "cosine"
    """Learning-rate schedule after warmup (a transformers scheduler name)."""
    warmup: float = 0.03
    """Warmup: a fraction of the steps when below 1, else a number of steps."""
    weight_decay: float = 0.0
    """AdamW weight decay of the LoRA weights."""
    max_grad_norm: float = 1.0
    """Gradient clipping norm."""
    optim: str = "adamw_8bit"
    """Optimizer (a transformers `optim` name); 8-bit AdamW falls back to adamw_torch when
    bitsandbytes does not work, with a message."""
    bf16: str = "auto"
    """bf16 mixed precision: auto (on a bf16 GPU), true, false. fp32 on CPU."""
    # ---- logging and checkpoints
    logging_steps: int = 1
    """Log training metrics every N optimizer steps."""
    eval_steps: int = 50
    """Validate on held-out articles every N steps (and at the end)."""
    save_steps: int = 50
    """Write a resumable checkpoint every N steps."""
    save_total_limit: int | None = 2
    """Most checkpoints kept (oldest deleted); None keeps all."""
    plot: bool = True
    """Write loss.png at the end."""

    def __post_init__(self) -> None:
        if not 0.0 <= self.heldout_fraction < 1.0:
            raise WikituneError(f"heldout_fraction must be in [0, 1), got {self.heldout_fraction}")
        for name in ("block_size", "batch_size", "grad_accum", "logging_steps", "eval_steps", "save_steps"):
            if getattr(self, name) < 1:
                raise WikituneError(f"{name} must be 1 or more, got {getattr(self, name)}")
        if self.block_size < 2:
            raise WikituneError("block_size must be 2 or more")
        if self.max_steps == 0 or self.max_steps < -1:
            raise WikituneError(f"max_steps must be -1 (use epochs) or positive, got {self.max_steps}")
        if self.max_steps == -1 and self.epochs <= 0:
            raise WikituneError(f"epochs must be positive, got {self.epochs}")
        if self.learning_rate <= 0:
            raise WikituneError("learning_rate must be positive")
        if self.text_field not in ("text", "markdown"):
            raise WikituneError(f"text_field must be text or markdown, got {self.text_field!r}")
        if self.bf16 not in ("auto", "true", "false"):
            raise WikituneError(f"bf16 must be auto, true or false, got {self.bf16!r}")

    def tokens_per_step(self, world_size: int = 1) -> int:
        """Tokens consumed by one optimizer step (all blocks are full: no padding)."""
        return self.block_size * self.batch_size * self.grad_accum * world_size


def _load_tokenizer(cfg: CPTConfig, run_dir: Path, train_texts: list[str], reuse_saved: bool):
    """The run's tokenizer: reloaded from RUN/tokenizer on resume, else as configured."""
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
        return train_bpe_tokenizer(train_texts, cfg.tokenizer_vocab_size, saved)
    return load_tokenizer(cfg.model)


def run_cpt(cfg: CPTConfig, callbacks: list | None = None) -> Path:
    """Run continued pre-training; return the run directory.

    Args:
        cfg: the resolved config.
        callbacks: extra transformers TrainerCallbacks (tests use one to simulate a kill).

    Raises:
        WikituneError: bad corpus, impossible LoRA targets, nothing to train on, a run in the
            way (see `resume`/`overwrite`).
    """
    from wikitune.train import runtime as R

    with R.keep_replaced_run_until_success(Path(cfg.output_dir)):
        return _run_cpt(cfg, callbacks)


def _run_cpt(cfg: CPTConfig, callbacks: list | None) -> Path:
    import torch
    from accelerate import PartialState
    from datasets import Dataset
    from transformers import Trainer, TrainingArguments, set_seed

    from wikitune.gptoss.model import load_model_and_tokenizer
    from wikitune.train import data as D
    from wikitune.train import runtime as R
    from wikitune.config import write_config
    from wikitune.train.lora import apply_lora, continue_adapter

    run_dir = Path(cfg.output_dir)
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
    articles = D.read_articles(cfg.corpus, cfg.text_field)
    train_articles, heldout_articles = D.split_articles(articles, cfg.heldout_fraction)
    if not train_articles:
        raise WikituneError(f"{cfg.corpus}: every article is held out; lower heldout_fraction")
    with state.main_process_first():
        tokenizer = _load_tokenizer(cfg, run_dir, [a["text"] for a in train_articles],
                                    resume_from is not None or not state.is_main_process)
    separator_id = tokenizer.convert_tokens_to_ids(cfg.separator)
    if separator_id is None or separator_id == tokenizer.unk_token_id:
        raise WikituneError(f"separator {cfg.separator!r} is not a token of the tokenizer")
    train_docs = D.tokenize_documents([a["text"] for a in train_articles], tokenizer, separator_id)
    train_blocks = D.pack_wrapped(train_docs, cfg.block_size)
    if not train_blocks:
        raise WikituneError(f"{cfg.corpus}: fewer training tokens than one block of {cfg.block_size}; lower block_size")
    eval_blocks = D.pack_wrapped(D.tokenize_documents([a["text"] for a in heldout_articles], tokenizer, separator_id),
                                 cfg.block_size)[: cfg.max_eval_blocks]
    train_tokens = sum(len(d) for d in train_docs)
    print(f"cpt: {len(train_articles)} training articles ({train_tokens:,} tokens -> {len(train_blocks)} blocks of "
          f"{cfg.block_size}), {len(heldout_articles)} held out ({len(eval_blocks)} validation blocks)")

    # ---------------------------------------------------------------- model + LoRA
    model, _ = load_model_and_tokenizer(
        cfg.model, tokenizer=tokenizer, tiny=cfg.tiny, dtype=cfg.dtype, quantization=cfg.quantization,
        attn_implementation=cfg.attn_implementation, gradient_checkpointing=cfg.gradient_checkpointing,
    )
    if cfg.gradient_checkpointing:
        model.enable_input_require_grads()
    if cfg.adapter is not None:
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
        eval_strategy="steps" if eval_blocks else "no", eval_steps=cfg.eval_steps,
        save_strategy="steps", save_steps=cfg.save_steps, save_total_limit=cfg.save_total_limit,
        # gradient checkpointing, when asked, is already enabled on the model (non-reentrant)
        report_to="none", dataloader_num_workers=0, dataloader_pin_memory=torch.cuda.is_available(),
        remove_unused_columns=False, disable_tqdm=True,
    )
    optimizer = R.make_optimizer(model, args, cfg.lora.modules_to_save_lr)
    world = args.world_size
    if resume_from is not None:
        R.trim_metrics(run_dir, int(Path(resume_from).name.split("-")[-1]))
    trainer = Trainer(
        model=model, args=args,
        train_dataset=Dataset.from_dict({"input_ids": train_blocks}),
        eval_dataset=Dataset.from_dict({"input_ids": eval_blocks}) if eval_blocks else None,
        data_collator=D.block_collate,
        optimizers=(optimizer, None),
        callbacks=[R.metrics_callback(run_dir, cfg.tokens_per_step(world)), *(callbacks or [])],
    )

    # ---------------------------------------------------------------- train
    started = time.perf_counter()
    result = trainer.train(resume_from_checkpoint=resume_from)
    elapsed = time.perf_counter() - started
    if eval_blocks and trainer.state.global_step % cfg.eval_steps:
        trainer.evaluate()  # validation loss of the final weights (logged to metrics.jsonl)

    # ---------------------------------------------------------------- save
    if trainer.is_world_process_zero():
        model.save_pretrained(run_dir / "adapter")
        tokenizer.save_pretrained(run_dir / "tokenizer")
        if cfg.plot:
            R.plot_losses(run_dir, f"CPT {cfg.model} on {Path(cfg.corpus).name}")
        steps_run = trainer.state.global_step - (int(Path(resume_from).name.split("-")[-1]) if resume_from else 0)
        R.write_summary(run_dir, {
            "stage": "cpt", "model": cfg.model, "corpus": cfg.corpus,
            "steps": trainer.state.global_step, "epochs": trainer.state.epoch,
            "train_articles": len(train_articles), "heldout_articles": len(heldout_articles),
            "train_tokens": train_tokens, "train_blocks": len(train_blocks), "eval_blocks": len(eval_blocks),
            "block_size": cfg.block_size, "padding_tokens": 0,
            "train_loss_mean": result.training_loss,
            **R.final_losses(run_dir),
            "tokens": trainer.state.global_step * cfg.tokens_per_step(world),
            "tokens_per_s": steps_run * cfg.tokens_per_step(world) / elapsed if elapsed > 0 else None,
            "train_seconds": elapsed, "resumed_from": resume_from,
            "trainable_params": coverage["trainable_params"], "trainable_by_kind": coverage["trainable_by_kind"],
            "device": "cuda" if torch.cuda.is_available() else "cpu",
        })
    return run_dir
