"""What CPT and SFT share around the Hugging Face Trainer: run directory, optimizer choice,
metrics.jsonl, resume bookkeeping, loss-curve plot, summary.

Each stage's script (`cpt.py`, `sft.py`) reads top to bottom and calls these helpers; there is no
trainer base class to inherit from.
"""

from __future__ import annotations

import json
import logging
import math
import shutil
from contextlib import contextmanager
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from wikitune.errors import WikituneError

if TYPE_CHECKING:
    import torch

log = logging.getLogger(__name__)

METRICS = "metrics.jsonl"
SUMMARY = "summary.json"
CHECKPOINTS = "checkpoints"
LOSS_PNG = "loss.png"


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
            raise WikituneError(f"--resume: {ckpt_dir} holds no checkpoint-N directory written to the end to resume from")
        return str(last)
    if not main:
        return None
    if (run_dir / "config.yaml").exists():
        if not overwrite:
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


def _replaced(run_dir: Path) -> Path:
    return run_dir.with_name(run_dir.name + ".replaced")


@contextmanager
def keep_replaced_run_until_success(run_dir: Path):
    """Around a run with overwrite=true: drop the old run when the new one succeeds, restore it if not."""
    run_dir = Path(run_dir)
    backup = _replaced(run_dir)
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
        raise
    if backup.exists():
        shutil.rmtree(backup)


def resolve_optim(name: str) -> str:
    """The Trainer `optim` to use: 8-bit AdamW needs bitsandbytes; fall back to torch AdamW with a
    clear message when it does not import."""
    if name in ("adamw_8bit", "adamw_bnb_8bit", "paged_adamw_8bit"):
        try:
            import bitsandbytes  # noqa: F401
        except Exception as err:  # noqa: BLE001 - any import failure means "not usable here"
            msg = f"8-bit AdamW unavailable (bitsandbytes: {err}); falling back to adamw_torch"
            log.warning(msg)
            print(f"warning: {msg}")
            return "adamw_torch"
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


def trim_metrics(run_dir: Path, up_to_step: int) -> None:
    """On resume, drop metrics logged after the checkpoint (they will be logged again)."""
    path = run_dir / METRICS
    if not path.exists():
        return
    keep = [line for line in path.read_text(encoding="utf-8").splitlines()
            if line.strip() and json.loads(line).get("step", 0) <= up_to_step]
    path.write_text("".join(line + "\n" for line in keep), encoding="utf-8")


def metrics_callback(run_dir: Path, tokens_per_step: int | None):
    """A TrainerCallback appending one JSON object per log to RUN/metrics.jsonl.

    Training entries: step, epoch, loss, lr, grad_norm, tokens (seen so far), tokens_per_s
    (since the previous log). Evaluation entries: step, epoch, eval_loss, eval_ppl.
    `tokens_per_step` None: count the non-padding tokens of each batch instead (SFT).
    """
    from transformers import TrainerCallback

    class MetricsCallback(TrainerCallback):
        def __init__(self) -> None:
            self.path = run_dir / METRICS
            self.last_time: float | None = None
            self.last_tokens = 0
            self.tokens = 0

        def on_train_begin(self, args, state, control, **kwargs):
            self.last_time = time.perf_counter()
            self.tokens = self._tokens_at(state.global_step, state)
            self.last_tokens = self.tokens

        def _tokens_at(self, step: int, state) -> int:
            if tokens_per_step is not None:
                return step * tokens_per_step
            return int(getattr(state, "num_input_tokens_seen", 0) or 0)

        def on_log(self, args, state, control, logs=None, **kwargs):
            if not logs or not state.is_world_process_zero:
                return
            now = time.perf_counter()
            record: dict[str, Any] = {"step": state.global_step, "epoch": round(state.epoch or 0.0, 4)}
            if "eval_loss" in logs:
                record["eval_loss"] = logs["eval_loss"]
                record["eval_ppl"] = math.exp(min(logs["eval_loss"], 50.0))
            elif "loss" in logs:
                tokens = self._tokens_at(state.global_step, state)
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


def read_metrics(run_dir: Path) -> list[dict[str, Any]]:
    path = run_dir / METRICS
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def plot_losses(run_dir: Path, title: str) -> Path | None:
    """RUN/loss.png from metrics.jsonl: training loss per step, validation loss where measured."""
    records = read_metrics(run_dir)
    train = [(r["step"], r["loss"]) for r in records if "loss" in r]
    evals = [(r["step"], r["eval_loss"]) for r in records if "eval_loss" in r]
    if not train and not evals:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4))
    if train:
        ax.plot(*zip(*train), label="train loss")
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


def write_summary(run_dir: Path, summary: dict[str, Any]) -> Path:
    path = run_dir / SUMMARY
    path.write_text(json.dumps(summary, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
    return path


def final_losses(run_dir: Path) -> dict[str, Any]:
    """First/last training loss and last validation loss/perplexity from metrics.jsonl."""
    records = read_metrics(run_dir)
    train = [r for r in records if "loss" in r]
    evals = [r for r in records if "eval_loss" in r]
    speeds = [r["tokens_per_s"] for r in train if r.get("tokens_per_s")]
    return {
        "first_loss": train[0]["loss"] if train else None,
        "final_loss": train[-1]["loss"] if train else None,
        "final_eval_loss": evals[-1]["eval_loss"] if evals else None,
        "final_eval_ppl": evals[-1]["eval_ppl"] if evals else None,
        "median_tokens_per_s": sorted(speeds)[len(speeds) // 2] if speeds else None,
        "tokens": train[-1]["tokens"] if train else 0,
    }
