"""A causal-LM loss that never holds the full-vocabulary fp32 logits of a whole batch.

transformers computes `lm_head(hidden)` for every token, upcasts it to fp32 and takes a
log-softmax: for gpt-oss-20b at batch 8 x 2048 that is 16,384 x 201,088 logits, 13.2 GB in fp32,
and as much again for the log-softmax and its gradient. Here the loss is taken per chunk of
tokens: hidden -> logits -> cross-entropy under `torch.utils.checkpoint`, so a chunk's logits are
freed after its forward and recomputed in its backward; only one chunk's logits live at a time.
On a CUDA GPU with Liger-Kernel installed, its fused linear cross-entropy (Triton) does the same
in one kernel and is used instead.

    loss = chunked_causal_lm_loss(hidden, lm_head.weight, labels)   # labels unshifted, -100 ignored
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from wikitune.errors import WikituneError

if TYPE_CHECKING:
    import torch

IGNORE_INDEX = -100
CHUNK_TOKENS = 1024
"""Tokens per chunk: 1024 x 201,088 fp32 logits are 0.8 GB, small beside gpt-oss-20b's weights."""
LOSSES = ("plain", "chunked")


def _chunk_ce(hidden: "torch.Tensor", weight: "torch.Tensor", bias: "torch.Tensor | None",
              targets: "torch.Tensor") -> "torch.Tensor":
    import torch.nn.functional as F

    logits = F.linear(hidden, weight, bias).float()
    return F.cross_entropy(logits, targets, reduction="sum")


def liger_loss(ignore_index: int) -> Any:
    """Liger-Kernel's fused linear cross-entropy (sum), or None where it cannot run (not
    installed, no Triton/CUDA): imported only when asked, so CPU runs never need it."""
    import torch

    if not torch.cuda.is_available():
        return None
    try:
        from liger_kernel.transformers import LigerFusedLinearCrossEntropyLoss
    except Exception:  # noqa: BLE001 - not installed or Triton missing: the torch path works everywhere
        return None
    return LigerFusedLinearCrossEntropyLoss(ignore_index=ignore_index, reduction="sum")


def chunked_causal_lm_loss(hidden: "torch.Tensor", weight: "torch.Tensor", labels: "torch.Tensor", *,
                           bias: "torch.Tensor | None" = None, num_items_in_batch: "int | torch.Tensor | None" = None,
                           chunk_tokens: int = CHUNK_TOKENS, ignore_index: int = IGNORE_INDEX,
                           use_liger: bool = True) -> "torch.Tensor":
    """Mean next-token cross-entropy of `lm_head(hidden)` against `labels`, chunk by chunk.

    Equal to transformers' causal-LM loss (logits upcast to fp32, targets shifted by one,
    `ignore_index` skipped) up to float rounding.

    Args:
        hidden: final hidden states, (batch, seq, hidden).
        weight: lm_head weight, (vocab, hidden); `bias` its bias or None.
        labels: (batch, seq), not shifted; `ignore_index` marks positions without loss.
        num_items_in_batch: divide the summed loss by this (the Trainer's token count over the
            gradient-accumulation steps); None: by the number of target tokens here.
        chunk_tokens: tokens whose logits are computed at a time.
        ignore_index: label of positions without loss.
        use_liger: use Liger-Kernel's fused kernel when it can run.

    Returns:
        A scalar tensor (fp32).
    """
    import torch
    from torch.utils.checkpoint import checkpoint

    if chunk_tokens < 1:
        raise WikituneError(f"chunk_tokens must be 1 or more, got {chunk_tokens}")
    targets = labels[:, 1:].reshape(-1)
    states = hidden[:, :-1, :].reshape(-1, hidden.shape[-1])
    keep = targets != ignore_index
    # only positions with a target go through lm_head: padding and prompts cost nothing
    states, targets = states[keep], targets[keep]
    denominator = num_items_in_batch if num_items_in_batch is not None else targets.numel()
    if targets.numel() == 0:
        return (hidden.sum() * 0.0).float()  # keeps the graph: a batch without targets adds nothing
    fused = liger_loss(ignore_index) if use_liger and hidden.is_cuda else None
    if fused is not None:
        return fused(weight, states, targets, bias) / denominator
    total = torch.zeros((), dtype=torch.float32, device=hidden.device)
    for start in range(0, targets.numel(), chunk_tokens):
        stop = start + chunk_tokens
        total = total + checkpoint(_chunk_ce, states[start:stop], weight, bias, targets[start:stop], use_reentrant=False)
    return total / denominator


def lm_head_of(model: Any) -> "torch.nn.Module":
    """The Linear that makes the logits, through PEFT's wrappers (a `modules_to_save` copy is the
    active one).

    Raises:
        WikituneError: lm_head carries LoRA (its logits are not one weight; use loss=plain).
    """
    head = model.get_output_embeddings()
    if hasattr(head, "modules_to_save") and hasattr(head, "active_adapters"):
        head = head.modules_to_save[head.active_adapters[0]]
    if hasattr(head, "lora_A"):
        raise WikituneError("loss=chunked cannot take lm_head with LoRA on it; use loss=plain or drop lm_head from "
                            "lora.target_modules")
    return head


def chunked_model_loss(model: Any, inputs: dict[str, Any], num_items_in_batch: Any = None,
                       chunk_tokens: int = CHUNK_TOKENS) -> "torch.Tensor":
    """The causal-LM loss of `model` (a PEFT or transformers causal LM) on a batch, without the
    full logits: the decoder runs (LoRA included: PEFT's layers are inside it), then
    `chunked_causal_lm_loss` with lm_head's weight."""
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    decoder = base.get_decoder()
    batch = {k: v for k, v in inputs.items() if k != "labels"}
    hidden = decoder(**batch).last_hidden_state
    head = lm_head_of(base)
    return chunked_causal_lm_loss(hidden, head.weight, inputs["labels"], bias=head.bias,
                                  num_items_in_batch=num_items_in_batch, chunk_tokens=chunk_tokens)


def chunked_loss_trainer() -> type:
    """A transformers Trainer whose training and evaluation loss is `chunked_model_loss`."""
    from transformers import Trainer

    class ChunkedLossTrainer(Trainer):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            # evaluation reports the loss only (metrics.jsonl's eval_loss): no logits to return
            self.args.prediction_loss_only = True

        def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
            loss = chunked_model_loss(model, inputs, num_items_in_batch)
            if self.args.average_tokens_across_devices and num_items_in_batch is not None:
                # as Trainer.compute_loss: gradients are averaged over processes, the count is global
                loss = loss * self.accelerator.num_processes
            return (loss, {"loss": loss}) if return_outputs else loss

    return ChunkedLossTrainer
