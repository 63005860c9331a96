"""The one runtime of the training stages: what CPT and SFT share around the Hugging Face Trainer.

`TrainSettings` holds the config fields both stages have (run, model, LoRA, optimisation,
logging); `CPTConfig` and `SFTConfig` add their data fields to it. Each stage's script (`cpt.py`,
`sft.py`) turns its data into rows, then calls these steps in order:

    state, resume_from = start_run(cfg)                      # run directory, config.yaml, seed
    tokenizer = load_run_tokenizer(cfg, state, resume_from, texts)
    model, coverage = load_model_with_lora(cfg, tokenizer)
    trained = train(cfg, model, rows, eval_rows, collate, resume_from, tokens_per_step, callbacks)
    finish_run(cfg, trained, tokenizer, coverage, stage="cpt", title=..., fields={...})

There is no trainer base class to inherit from: a stage reads top to bottom.
"""

from __future__ import annotations

import json
import logging
import math
import os
import shutil
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

from wikitune import formats
from wikitune.config import write_config
from wikitune.errors import WikituneError
from wikitune.outputs import OutputLock
from wikitune.gptoss.model import (TINY, TinyGptOssConfig, check_quantization, load_model_and_tokenizer, load_tokenizer,
                                   train_bpe_tokenizer)
from wikitune.train.lora import LoraSettings, apply_lora, continue_adapter
from wikitune.train.loss import LOSSES, chunked_loss_trainer

if TYPE_CHECKING:
    import torch
    from accelerate import PartialState
    from transformers import PreTrainedTokenizerBase, Trainer

log = logging.getLogger(__name__)

CHECKPOINTS = "checkpoints"
LOSS_PNG = "loss.png"
TOKENIZER_DIR = "tokenizer"
BF16_SETTINGS = ("auto", "true", "false")
TENSORBOARD_DIR = "tensorboard"
REPORT_TO = ("none", "tensorboard")
"""What `report_to` may name: nothing that needs an account or a network (tensorboard writes
event files under RUN/tensorboard; `tensorboard --logdir RUN/tensorboard` shows them)."""


@dataclass
class TrainSettings:
    """What every LoRA training stage is configured by: run, model, LoRA, optimisation, logging.

    `CPTConfig` and `SFTConfig` add their data fields (and their own defaults of `output_dir`
    and `epochs`); the YAML keys are the field names, flat.
    """

    # ---- run
    output_dir: str = "runs/tiny"
    """Run directory to write (config.yaml, metrics.jsonl, adapter/, checkpoints/, ...)."""
    seed: int = 42
    """Seed of LoRA initialisation, data order and dropout."""
    resume: bool = False
    """Continue the run in output_dir from its last checkpoint (same data order, optimizer and
    scheduler state): the result equals an uninterrupted run."""
    overwrite: bool = False
    """Replace an existing run in output_dir instead of refusing."""
    # ---- model
    model: str = TINY
    """`tiny-gpt-oss`, a local model directory or a Hugging Face id (e.g. openai/gpt-oss-20b)."""
    tokenizer: str | None = None
    """Tokenizer directory or id. None: the adapter run's tokenizer/, else the model's own; for
    tiny-gpt-oss without either, a byte-level BPE trained on the training text (saved to
    RUN/tokenizer)."""
    tokenizer_vocab_size: int = 2000
    """Vocabulary size of the BPE trained for tiny-gpt-oss."""
    tiny: TinyGptOssConfig = field(default_factory=TinyGptOssConfig)
    """Sizes of tiny-gpt-oss (must match the adapter run's when starting from an adapter)."""
    adapter: str | None = None
    """Start from this adapter (a run directory, e.g. a CPT run, or an adapter path) and keep
    training it; None: a new LoRA on the base model."""
    dtype: str = "auto"
    """Weights dtype: auto (bf16 on GPU, fp32 on CPU), bfloat16, float32."""
    quantization: str = "auto"
    """auto (dequantize MXFP4 checkpoints), none, mxfp4-dequantize, bnb-4bit."""
    attn_implementation: str | None = None
    """Attention kernel: eager (the default on CPU), wikitune_flex (torch flex attention with
    gpt-oss's sinks and sliding window, no download, CPU and GPU), or e.g.
    kernels-community/vllm-flash-attn3 on Hopper."""
    gradient_checkpointing: bool = False
    """Recompute activations in backward: less memory, about half the speed."""
    loss: str = "plain"
    """Causal-LM loss: plain (transformers': full-vocabulary fp32 logits of the whole batch) or
    chunked (`wikitune.train.loss`: a chunk of tokens' logits at a time, Liger's fused kernel on
    a GPU where installed); same value and gradients."""
    # ---- LoRA
    lora: LoraSettings = field(default_factory=LoraSettings)
    """LoRA targets and hyper-parameters of a new adapter (see lora_coverage.json after a run);
    a continued adapter keeps its own, except dropout."""
    # ---- optimisation
    epochs: float = 1.0
    """Passes over the training rows (ignored when max_steps > 0)."""
    max_steps: int = -1
    """Optimizer steps to run; -1 = as many as `epochs` takes."""
    batch_size: int = 8
    """Training rows per device per micro-batch (CPT: packed blocks; SFT: conversations, padded
    to the longest)."""
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
    """Optimizer (a transformers `optim` name); 8-bit AdamW (bitsandbytes) stops the run with a
    message where bitsandbytes does not import, rather than training with another optimizer."""
    bf16: str = "auto"
    """bf16 mixed precision: auto (on a bf16 GPU), true, false. fp32 on CPU."""
    # ---- logging and checkpoints
    logging_steps: int = 1
    """Log training metrics every N optimizer steps."""
    eval_steps: int = 50
    """Validate every N steps and at the end (CPT: held-out articles; SFT: eval_qa)."""
    save_steps: int = 50
    """Write a resumable checkpoint every N steps."""
    save_total_limit: int | None = 2
    """Most checkpoints kept (oldest deleted); None keeps all."""
    plot: bool = True
    """Write loss.png at the end."""
    report_to: str | list[str] = "none"
    """Where else the Trainer logs besides metrics.jsonl: none, or tensorboard (event files in
    RUN/tensorboard, offline; needs `pip install tensorboard`)."""

    def __post_init__(self) -> None:
        for name in ("batch_size", "grad_accum", "logging_steps", "eval_steps", "save_steps"):
            if getattr(self, name) < 1:
                raise WikituneError(f"{name} must be 1 or more, got {getattr(self, name)}")
        if self.max_steps == 0 or self.max_steps < -1:
            raise WikituneError(f"max_steps must be -1 (use epochs) or positive, got {self.max_steps}")
        if self.max_steps == -1 and self.epochs <= 0:
            raise WikituneError(f"epochs must be positive, got {self.epochs}")
        if self.learning_rate <= 0:
            raise WikituneError("learning_rate must be positive")
        if self.loss not in LOSSES:
            raise WikituneError(f"loss must be one of {', '.join(LOSSES)}, got {self.loss!r}")
        if self.bf16 not in BF16_SETTINGS:
            raise WikituneError(f"bf16 must be auto, true or false, got {self.bf16!r}")
        self.report_targets()
        check_quantization(self.model, self.quantization)

    def report_targets(self) -> list[str]:
        """The Trainer integrations `report_to` names (none: an empty list).

        Raises:
            WikituneError: a name other than none or tensorboard, none beside another name, or
                tensorboard without the tensorboard package.
        """
        import importlib.util

        names = [self.report_to] if isinstance(self.report_to, str) else list(self.report_to)
        bad = [name for name in names if name not in REPORT_TO]
        if bad or not names or ("none" in names and len(names) > 1):
            raise WikituneError(f"report_to must be none or tensorboard, got {self.report_to!r}")
        if "tensorboard" in names and importlib.util.find_spec("tensorboard") is None:
            raise WikituneError("report_to=tensorboard needs the tensorboard package, which is not installed: "
                                "pip install tensorboard (or report_to=none)")
        return [name for name in names if name != "none"]


# ---- run directory ----------------------------------------------------------------------------


def start_run(cfg: TrainSettings) -> tuple["PartialState", str | None]:
    """Prepare the run directory, write its config.yaml, seed everything.

    Under `accelerate launch` the main process prepares the directory first; the others then
    only look up the checkpoint.

    Returns:
        (the accelerate process state, the checkpoint to resume from or None).

    Raises:
        WikituneError: a run in the way, or nothing to resume (see `prepare_run_dir`).
    """
    from accelerate import PartialState
    from transformers import set_seed

    run_dir = Path(cfg.output_dir)
    state = PartialState(cpu=processes_on_cpu())
    with state.main_process_first():
        resume_from = prepare_run_dir(run_dir, resume=cfg.resume, overwrite=cfg.overwrite, main=state.is_main_process)
        if state.is_main_process:
            write_config(cfg, run_dir / formats.RUN_CONFIG)
    set_seed(cfg.seed)
    return state, resume_from


def processes_on_cpu() -> bool:
    """Whether this process is one of several (`accelerate launch`, torchrun) that share no CUDA
    GPU, or is told to use the CPU (ACCELERATE_USE_CPU). accelerate joins processes into a gloo
    group on the CPU only when asked to use the CPU: otherwise each one would train alone on all
    the data and write the run's files as if it were the only one."""
    import torch

    if os.environ.get("ACCELERATE_USE_CPU", "").lower() in ("1", "true", "yes"):
        return True
    return int(os.environ.get("WORLD_SIZE", "1")) > 1 and not torch.cuda.is_available()


def rank_zero() -> bool:
    """Whether this is the main process (rank 0 under `accelerate launch`; a lone process is)."""
    return int(os.environ.get("RANK", "0")) == 0


def prepare_run_dir(run_dir: Path, *, resume: bool, overwrite: bool, main: bool = True) -> str | None:
    """Create the run directory; return the checkpoint to resume from (or None).

    Under `accelerate launch` only the main process (`main`) checks, clears and creates the
    directory; the others (run after it) only look up the checkpoint.

    Raises:
        WikituneError: the directory holds a run and neither resume nor overwrite is set, or
            resume is asked but there is no checkpoint.
    """
    ckpt_dir = run_dir / CHECKPOINTS
    if resume:
        last = last_complete_checkpoint(run_dir)
        if last is None:
            raise WikituneError(f"--resume: {ckpt_dir} holds no checkpoint-N directory written to the end, so there is "
                                "nothing to resume: run again without --resume")
        return str(last)
    if not main:
        return None
    if (run_dir / formats.RUN_CONFIG).exists():
        # A directory with neither a checkpoint nor a saved adapter is a failed attempt, not a run:
        # replacing it loses nothing (and it is set aside, restored if this attempt fails too).
        if not overwrite and holds_a_run(run_dir):
            raise WikituneError(
                f"{run_dir} already holds a run: pass --resume to continue it, overwrite=true to replace it, "
                "or another output_dir"
            )
        # Set aside, not deleted: if the new run fails (a LoRA target that matches nothing, say),
        # `keep_replaced_run_until_success` puts the old one back.
        backup = _replaced(run_dir)
        if backup.exists():
            shutil.rmtree(backup)
        run_dir.rename(backup)
    run_dir.mkdir(parents=True, exist_ok=True)
    return None


def holds_a_run(run_dir: Path) -> bool:
    """Whether `run_dir` holds something a rerun would lose: a complete checkpoint or a saved adapter."""
    return last_complete_checkpoint(run_dir) is not None or (run_dir / formats.ADAPTER_DIR).is_dir()


def last_complete_checkpoint(run_dir: Path) -> Path | None:
    """The newest `checkpoints/checkpoint-N` that was written to the end, or None.

    A process killed while saving leaves a `checkpoint-N` without its trainer state (the Trainer
    writes that last); resuming from it fails, so it is skipped, and the save is redone.
    """
    found = []
    for path in (Path(run_dir) / CHECKPOINTS).glob("checkpoint-*"):
        step = path.name.rpartition("-")[2]
        if not step.isdigit():
            continue
        try:
            json.loads((path / "trainer_state.json").read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        found.append((int(step), path))
    return max(found)[1] if found else None


def checkpoint_step(checkpoint: str | Path) -> int:
    """The optimizer step a `checkpoint-N` directory was saved at."""
    return int(Path(checkpoint).name.split("-")[-1])


def _replaced(run_dir: Path) -> Path:
    return run_dir.with_name(run_dir.name + ".replaced")


def check_run_dir(run_dir: Path) -> None:
    """Refuse a directory that is not empty and holds no wikitune run (no config.yaml): it is not ours.

    Raises:
        WikituneError: `run_dir` is a file, or a non-empty directory without a run's config.yaml.
    """
    if run_dir.exists() and not run_dir.is_dir():
        raise WikituneError(f"{run_dir} exists and is not a directory; choose a new output_dir")
    if run_dir.is_dir() and any(run_dir.iterdir()) and not (run_dir / formats.RUN_CONFIG).is_file() \
            and not last_complete_checkpoint(run_dir):
        raise WikituneError(f"{run_dir} is not empty and holds no wikitune run (no {formats.RUN_CONFIG}); nothing was "
                            "changed: choose an empty or new output_dir")


@contextmanager
def keep_replaced_run_until_success(run_dir: Path):
    """Around a whole training run: the directory is checked to be ours and locked (`OUTPUT.lock`
    beside it, by the main process: a second run into it stops at once, naming the holder); with
    overwrite=true the old run is dropped when the new one succeeds and restored if not; a run
    that fails before its first checkpoint leaves nothing behind."""
    run_dir = Path(run_dir)
    check_run_dir(run_dir)
    # Under `accelerate launch` every process runs this; only the main one (rank 0) holds the lock.
    lock = OutputLock(run_dir) if rank_zero() else None
    if lock is not None:
        lock.acquire()
    try:
        with _restore_on_failure(run_dir):
            yield
    finally:
        if lock is not None:
            lock.release()


@contextmanager
def _restore_on_failure(run_dir: Path):
    backup = _replaced(run_dir)
    before = set(os.listdir(run_dir)) if run_dir.is_dir() else None
    try:
        yield
    except Exception:
        # A new run that failed before its first checkpoint is worth less than the old run; one
        # with checkpoints can be resumed, and the user asked to replace the old one.
        if backup.exists():
            if last_complete_checkpoint(run_dir) is not None:
                shutil.rmtree(backup)
            else:
                if run_dir.exists():
                    shutil.rmtree(run_dir)
                backup.rename(run_dir)
        elif run_dir.is_dir() and last_complete_checkpoint(run_dir) is None:
            # Nothing to resume: remove what this attempt wrote (config.yaml, tokenizer/ ...), so
            # that the corrected command simply runs, instead of "already holds a run".
            if before is None:
                shutil.rmtree(run_dir, ignore_errors=True)
            else:
                for name in set(os.listdir(run_dir)) - before:
                    path = run_dir / name
                    shutil.rmtree(path, ignore_errors=True) if path.is_dir() else path.unlink(missing_ok=True)
        raise
    if backup.exists():
        shutil.rmtree(backup)


# ---- tokenizer and model ----------------------------------------------------------------------


def load_run_tokenizer(cfg: TrainSettings, state: "PartialState", resume_from: str | None,
                       texts: list[str]) -> "PreTrainedTokenizerBase":
    """The run's tokenizer: RUN/tokenizer when resuming (or on a process other than the main
    one, which wrote it first), else `cfg.tokenizer`, the adapter run's, a BPE trained on
    `texts` for tiny-gpt-oss, or the model's own."""
    from transformers import AutoTokenizer

    run_dir = Path(cfg.output_dir)
    saved = run_dir / TOKENIZER_DIR
    with state.main_process_first():
        if (resume_from is not None or not state.is_main_process) and (saved / "tokenizer.json").is_file():
            return AutoTokenizer.from_pretrained(saved)
        if cfg.tokenizer is not None:
            return load_tokenizer(cfg.tokenizer)
        if cfg.adapter is not None and (Path(cfg.adapter) / TOKENIZER_DIR / "tokenizer.json").is_file():
            return AutoTokenizer.from_pretrained(Path(cfg.adapter) / TOKENIZER_DIR)
        if cfg.model == TINY:
            return train_bpe_tokenizer(texts, cfg.tokenizer_vocab_size, saved)
        return load_tokenizer(cfg.model)


def load_model_with_lora(cfg: TrainSettings, tokenizer: "PreTrainedTokenizerBase", *,
                         merge_adapter: bool = False) -> tuple[Any, dict[str, Any]]:
    """The model with its trainable LoRA, and the coverage table (written to RUN/lora_coverage.json).

    With `cfg.adapter`: keep training that adapter, or with `merge_adapter` merge it into the
    base weights first and put a new LoRA on top.

    Raises:
        WikituneError: a LoRA target that matches nothing.
    """
    base_adapter = cfg.adapter if merge_adapter else None
    model, _ = load_model_and_tokenizer(
        cfg.model, tokenizer=tokenizer, adapter=base_adapter, tiny=cfg.tiny, dtype=cfg.dtype,
        quantization=cfg.quantization, attn_implementation=cfg.attn_implementation,
        gradient_checkpointing=cfg.gradient_checkpointing,
    )
    if base_adapter is not None:
        model = model.merge_and_unload()  # the adapter's knowledge becomes base weights; a new LoRA goes on top
    if cfg.gradient_checkpointing:
        model.enable_input_require_grads()
    out_dir = cfg.output_dir if rank_zero() else None  # one writer of lora_coverage.json
    if cfg.adapter is not None and base_adapter is None:
        return continue_adapter(model, cfg.adapter, cfg.lora, out_dir)
    return apply_lora(model, cfg.lora, out_dir)


# ---- optimizer --------------------------------------------------------------------------------


def resolve_optim(name: str) -> str:
    """The Trainer `optim` for `name`. 8-bit AdamW needs bitsandbytes: without it the run stops
    with a message instead of silently training with another optimizer than the config says.

    Raises:
        WikituneError: an 8-bit optimizer is asked for and bitsandbytes does not import.
    """
    if name in ("adamw_8bit", "adamw_bnb_8bit", "paged_adamw_8bit"):
        try:
            import bitsandbytes  # noqa: F401
        except Exception as err:  # noqa: BLE001 - any import failure means "not usable here"
            raise WikituneError(f"optim={name} needs bitsandbytes, which does not import here ({err}); "
                                "install bitsandbytes or set optim=adamw_torch") from err
    return name


def use_bf16(setting: str) -> bool:
    """bf16 mixed precision: `auto` = on a CUDA GPU with bf16 support, never on CPU (slower there,
    and TRL/Trainer would leave the model wrapped in autocast)."""
    import torch

    if setting == "auto":
        return torch.cuda.is_available() and torch.cuda.is_bf16_supported()
    if setting == "true":
        return True
    if setting == "false":
        return False
    raise WikituneError(f"bf16 must be auto, true or false, got {setting!r}")


def make_optimizer(model: "torch.nn.Module", args: Any, lr_full: float | None):
    """The Trainer's optimizer class and kwargs, with `modules_to_save` (embeddings, lm_head,
    router copies) in their own group at `lr_full` when given; None when no separate rate."""
    if lr_full is None:
        return None
    from transformers import Trainer

    cls, kwargs = Trainer.get_optimizer_cls_and_kwargs(args, model)
    full, lora = [], []
    for name, param in model.named_parameters():
        if param.requires_grad:
            (full if "modules_to_save" in name else lora).append(param)
    groups = [{"params": lora, "weight_decay": args.weight_decay}]
    if full:
        groups.append({"params": full, "weight_decay": 0.0, "lr": lr_full})
    return cls(groups, **kwargs)


# ---- training ---------------------------------------------------------------------------------


@dataclass
class Trained:
    """What `train` hands to `finish_run`."""

    trainer: "Trainer"
    model: Any
    train_loss_mean: float
    """The Trainer's mean training loss over the steps of this process's run."""
    seconds: float
    """Wall time of `trainer.train` (not the final evaluation)."""
    resumed_from: str | None
    tokens_at_start: int
    """Tokens seen before this process's run (those of the checkpoint resumed from)."""
    tokens_per_step: int | None
    """Tokens of one optimizer step when fixed (CPT); None: the Trainer counts them (SFT)."""


def train(cfg: TrainSettings, model: Any, rows: Any, eval_rows: Any, collate: Callable, resume_from: str | None,
          tokens_per_step: Callable[[int], int] | None, callbacks: list | None = None, *, shuffle: bool = True) -> Trained:
    """Train `model` on `rows` (a datasets.Dataset) with the Trainer; validate on `eval_rows` every
    `cfg.eval_steps` and at the end; log to RUN/metrics.jsonl.

    Args:
        cfg: the stage's settings.
        model: the model with its trainable LoRA.
        rows: training rows; `eval_rows`: validation rows, or None for no validation.
        collate: makes a batch of rows.
        resume_from: the checkpoint to resume from, or None.
        tokens_per_step: tokens of one optimizer step, given the world size, when every row is
            full (CPT's packed blocks); None: the Trainer counts the non-padding tokens (SFT).
        callbacks: extra transformers TrainerCallbacks (tests use one to simulate a kill).
        shuffle: draw the rows in a seeded random order (the default); False: in their order
            (a curriculum such as CPT's `order: qa-first`).
    """
    import torch
    from transformers import Trainer, TrainingArguments

    run_dir = Path(cfg.output_dir)
    args = TrainingArguments(
        output_dir=str(run_dir / CHECKPOINTS),
        per_device_train_batch_size=cfg.batch_size, per_device_eval_batch_size=cfg.batch_size,
        gradient_accumulation_steps=cfg.grad_accum,
        num_train_epochs=cfg.epochs, max_steps=cfg.max_steps,
        learning_rate=cfg.learning_rate, lr_scheduler_type=cfg.lr_scheduler, warmup_steps=cfg.warmup,
        weight_decay=cfg.weight_decay, max_grad_norm=cfg.max_grad_norm,
        optim=resolve_optim(cfg.optim), bf16=use_bf16(cfg.bf16),
        seed=cfg.seed, data_seed=cfg.seed, train_sampling_strategy="random" if shuffle else "sequential",
        logging_steps=cfg.logging_steps, logging_first_step=True,
        eval_strategy="steps" if eval_rows is not None else "no", eval_steps=cfg.eval_steps,
        save_strategy="steps", save_steps=cfg.save_steps, save_total_limit=cfg.save_total_limit,
        # padded rows: only the Trainer knows how many real tokens went through
        **({"include_num_input_tokens_seen": "non_padding"} if tokens_per_step is None else {}),
        # gradient checkpointing, when asked, is already enabled on the model (non-reentrant)
        report_to=cfg.report_targets() or "none", use_cpu=processes_on_cpu(),
        dataloader_num_workers=0, dataloader_pin_memory=torch.cuda.is_available(),
        remove_unused_columns=False, disable_tqdm=True,
    )
    optimizer = make_optimizer(model, args, cfg.lora.modules_to_save_lr)
    if resume_from is not None and args.process_index == 0:  # one writer of metrics.jsonl
        trim_metrics(run_dir, checkpoint_step(resume_from))
    per_step = tokens_per_step(args.world_size) if tokens_per_step is not None else None
    metrics = metrics_callback(run_dir, per_step)
    trainer_cls = chunked_loss_trainer() if cfg.loss == "chunked" else Trainer
    trainer = trainer_cls(
        model=model, args=args, train_dataset=rows, eval_dataset=eval_rows, data_collator=collate,
        optimizers=(optimizer, None), callbacks=[metrics, *(callbacks or [])],
    )
    log_tensorboard_to(trainer, run_dir / TENSORBOARD_DIR)
    started = time.perf_counter()
    result = trainer.train(resume_from_checkpoint=resume_from)
    elapsed = time.perf_counter() - started
    final = trainer.state.global_step
    if eval_rows is not None and not any("eval_loss" in e and e.get("step") == final for e in trainer.state.log_history):
        # validation loss of the final weights (logged to metrics.jsonl); transformers 5 evaluates
        # the last step itself, and a second evaluation would log it twice
        trainer.evaluate()
    return Trained(trainer=trainer, model=model, train_loss_mean=result.training_loss, seconds=elapsed,
                   resumed_from=resume_from, tokens_at_start=metrics.tokens_at_start, tokens_per_step=per_step)


def log_tensorboard_to(trainer: "Trainer", directory: Path) -> None:
    """Point the Trainer's TensorBoard callback (when report_to names tensorboard) at `directory`.

    TrainingArguments has no logging_dir any more: transformers would write to a new dated folder
    under checkpoints/runs/ on every (resumed) attempt; one fixed folder is what
    `tensorboard --logdir RUN/tensorboard` and a resumed run need.
    """
    from transformers.integrations import TensorBoardCallback

    for callback in trainer.callback_handler.callbacks:
        if isinstance(callback, TensorBoardCallback):
            callback.logging_dir = str(directory)


def tokens_seen(state: Any, tokens_per_step: int | None) -> int:
    """Tokens trained on up to the Trainer `state`'s step: counted from the step when every step
    has the same number (`tokens_per_step`), else the Trainer's count of non-padding tokens."""
    if tokens_per_step is not None:
        return state.global_step * tokens_per_step
    return int(getattr(state, "num_input_tokens_seen", 0) or 0)


def trim_metrics(run_dir: Path, up_to_step: int) -> None:
    """On resume, drop metrics logged after the checkpoint (they will be logged again)."""
    path = run_dir / formats.METRICS
    if path.exists():
        formats.write_jsonl(path, [r for r in formats.read_metrics(run_dir) if r.get("step", 0) <= up_to_step])


def metrics_callback(run_dir: Path, tokens_per_step: int | None):
    """A TrainerCallback appending one JSON object per log to RUN/metrics.jsonl.

    Training entries: step, epoch, loss, lr, grad_norm, tokens (seen so far), tokens_per_s
    (since the previous log). Evaluation entries: step, epoch, eval_loss, eval_ppl.
    `tokens_per_step` None: count the non-padding tokens of each batch instead (SFT).
    The callback's `tokens_at_start` is the count when training began (after a resume, the
    checkpoint's).
    """
    from transformers import TrainerCallback

    class MetricsCallback(TrainerCallback):
        def __init__(self) -> None:
            self.path = run_dir / formats.METRICS
            self.last_time: float | None = None
            self.last_tokens = 0
            self.tokens_at_start = 0

        def on_train_begin(self, args, state, control, **kwargs):
            # the Trainer has restored a resumed checkpoint's state by now
            self.last_time = time.perf_counter()
            self.tokens_at_start = self.last_tokens = tokens_seen(state, tokens_per_step)

        def on_log(self, args, state, control, logs=None, **kwargs):
            if not logs or not state.is_world_process_zero:
                return
            now = time.perf_counter()
            record: dict[str, Any] = {"step": state.global_step, "epoch": round(state.epoch or 0.0, 4)}
            if "eval_loss" in logs:
                record["eval_loss"] = logs["eval_loss"]
                record["eval_ppl"] = math.exp(min(logs["eval_loss"], 50.0))
            elif "loss" in logs:
                tokens = tokens_seen(state, tokens_per_step)
                elapsed = now - (self.last_time or now)
                record.update({
                    "loss": logs["loss"], "lr": logs.get("learning_rate"), "grad_norm": logs.get("grad_norm"),
                    "tokens": tokens,
                    "tokens_per_s": (tokens - self.last_tokens) / elapsed if elapsed > 0 else None,
                })
                self.last_time, self.last_tokens = now, tokens
            else:
                return
            with self.path.open("a", encoding="utf-8") as handle:
                handle.write(json.dumps(record) + "\n")

    return MetricsCallback()


# ---- the end of a run -------------------------------------------------------------------------


def finish_run(cfg: TrainSettings, trained: Trained, tokenizer: "PreTrainedTokenizerBase", coverage: dict[str, Any],
               *, stage: str, title: str, fields: dict[str, Any]) -> Path:
    """Save adapter/ and tokenizer/, plot loss.png, write summary.json (on the main process only;
    under `accelerate launch` the others wait until it has).

    summary.json holds `stage`, `model`, the stage's own `fields`, then what every training run
    reports: steps, epochs, losses (`final_losses`), tokens, tokens_per_s, train_seconds,
    resumed_from, trainable parameters, device.

    Returns:
        The run directory.
    """
    run_dir = Path(cfg.output_dir)
    trainer = trained.trainer
    if trainer.is_world_process_zero():
        _write_run_outputs(cfg, trained, tokenizer, coverage, stage=stage, title=title, fields=fields)
    # The other processes return once the run's files exist: their caller may read summary.json.
    trainer.accelerator.wait_for_everyone()
    return run_dir


def _write_run_outputs(cfg: TrainSettings, trained: Trained, tokenizer: "PreTrainedTokenizerBase",
                       coverage: dict[str, Any], *, stage: str, title: str, fields: dict[str, Any]) -> None:
    import torch

    run_dir = Path(cfg.output_dir)
    trainer = trained.trainer
    trained.model.save_pretrained(run_dir / formats.ADAPTER_DIR)
    tokenizer.save_pretrained(run_dir / TOKENIZER_DIR)
    if cfg.plot:
        plot_losses(run_dir, title)
    tokens = tokens_seen(trainer.state, trained.tokens_per_step)
    formats.write_summary(run_dir, {
        "stage": stage, "model": cfg.model, **fields,
        "steps": trainer.state.global_step, "epochs": trainer.state.epoch,
        "train_loss_mean": trained.train_loss_mean,
        **final_losses(run_dir),
        "tokens": tokens,
        "tokens_per_s": (tokens - trained.tokens_at_start) / trained.seconds if trained.seconds > 0 else None,
        "train_seconds": trained.seconds, "resumed_from": trained.resumed_from,
        "trainable_params": coverage["trainable_params"], "trainable_by_kind": coverage["trainable_by_kind"],
        "device": "cuda" if torch.cuda.is_available() else "cpu",
    })


def plot_losses(run_dir: Path, title: str) -> Path | None:
    """RUN/loss.png from metrics.jsonl: training loss per step, validation loss where measured."""
    records = formats.read_metrics(run_dir)
    train_losses = [(r["step"], r["loss"]) for r in records if "loss" in r]
    evals = [(r["step"], r["eval_loss"]) for r in records if "eval_loss" in r]
    if not train_losses and not evals:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4))
    if train_losses:
        ax.plot(*zip(*train_losses), label="train loss")
    if evals:
        ax.plot(*zip(*evals), marker="o", label="validation loss (held-out)")
    ax.set_xlabel("optimizer step")
    ax.set_ylabel("cross-entropy (nats/token)")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    out = run_dir / LOSS_PNG
    fig.savefig(out, dpi=100)
    plt.close(fig)
    return out


def final_losses(run_dir: Path) -> dict[str, Any]:
    """First/last training loss, last validation loss/perplexity and the median logged speed
    from metrics.jsonl."""
    records = formats.read_metrics(run_dir)
    train_records = [r for r in records if "loss" in r]
    evals = [r for r in records if "eval_loss" in r]
    speeds = [r["tokens_per_s"] for r in train_records if r.get("tokens_per_s")]
    return {
        "first_loss": train_records[0]["loss"] if train_records else None,
        "final_loss": train_records[-1]["loss"] if train_records else None,
        "final_eval_loss": evals[-1]["eval_loss"] if evals else None,
        "final_eval_ppl": evals[-1]["eval_ppl"] if evals else None,
        "median_tokens_per_s": sorted(speeds)[len(speeds) // 2] if speeds else None,
    }
