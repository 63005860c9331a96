"""gpt-oss attention on torch `flex_attention`, offline: causal, sliding window and attention sinks.

    from wikitune.gptoss.attention import ATTENTION, register_attention
    register_attention()                                  # idempotent
    model.set_attn_implementation(ATTENTION)              # or attn_implementation="wikitune_flex"
    # in a train config:  attn_implementation: wikitune_flex

gpt-oss's eager attention materialises batch x heads x seq x (seq + 1) scores per layer (the +1
is the learned per-head sink logit that joins the softmax denominator); transformers refuses
SDPA for it, and its own `flex_attention` refuses sinks on CPU and rounds the log-sum-exp to
bf16. Here:

- the mask is a flex `BlockMask` built by transformers' mask machinery (causal, the layer's
  sliding window, padding from a 2-D `attention_mask`, packed sequences from `position_ids`),
  registered under the same name in `AttentionMaskInterface`, so whole blocks outside the
  window or the causal triangle are skipped;
- the sinks: flex returns `o = sum_j softmax(s)_j v_j` and `lse = log sum_j exp(s_j)`; eager's
  softmax over `[s, sink]` gives `sum_j exp(s_j) v_j / (exp(lse) + exp(sink)) = o * sigmoid(lse -
  sink)`, so the output is renormalised by that factor in fp32. Gradients flow through `lse`
  (flex's backward takes a gradient for it) and reach the sinks through the sigmoid.
- On CUDA flex_attention is compiled (one fused kernel per mask shape). On CPU it runs
  uncompiled for inference; torch 2.13 has no flex backward on CPU (`_validate_device`), so with
  gradients on CPU the same `(o, lse)` pair is computed densely from the BlockMask's `mask_mod`
  (scores materialised, as eager) and goes through the same renormalisation: CPU training runs,
  and tests compare it with eager.

torch and transformers are imported inside the functions: importing this module is cheap.
"""

from __future__ import annotations

import functools
import warnings
from typing import TYPE_CHECKING, Any, Callable

from wikitune.errors import WikituneError

if TYPE_CHECKING:
    import torch

ATTENTION = "wikitune_flex"
"""The `attn_implementation` name this module registers."""


def register_attention() -> str:
    """Register `ATTENTION` with transformers' attention and attention-mask interfaces (again is a
    no-op). Returns the name, to pass as `attn_implementation`."""
    from transformers import AttentionInterface, AttentionMaskInterface

    if AttentionInterface._global_mapping.get(ATTENTION) is not flex_sink_attention:
        AttentionInterface.register(ATTENTION, flex_sink_attention)
    if AttentionMaskInterface._global_mapping.get(ATTENTION) is not block_mask:
        AttentionMaskInterface.register(ATTENTION, block_mask)
    return ATTENTION


def block_mask(batch_size: int, q_length: int, kv_length: int, q_offset: int = 0, kv_offset: int = 0,
               mask_function: Callable | None = None, attention_mask: "torch.Tensor | None" = None,
               device: "torch.device | str" = "cpu", **kwargs: Any) -> Any:
    """A flex `BlockMask` for one layer kind: the `AttentionMaskInterface` entry of `ATTENTION`.

    transformers' `flex_attention_mask` with one change: `create_block_mask` is compiled on CUDA
    only (on CPU, compiling it would invoke the C++ toolchain on every new shape).

    Args:
        batch_size, q_length, kv_length, q_offset, kv_offset: sizes and cache offsets, as
            transformers' mask functions receive them.
        mask_function: the layer's mask_mod (causal, sliding window, packed sequences).
        attention_mask: the 2-D padding mask (1 = token), or None.
        device: where the mask lives (the queries' device).
    """
    import torch
    from torch.nn.attention.flex_attention import create_block_mask
    from transformers.masking_utils import (add_offsets_to_mask_function, and_masks, causal_mask_function,
                                            padding_mask_function, prepare_padding_mask)

    mask_function = mask_function or causal_mask_function
    if attention_mask is not None and not bool(attention_mask.all()):
        padding = prepare_padding_mask(attention_mask, kv_length, kv_offset)
        mask_function = and_masks(mask_function, padding_mask_function(padding))
    mask_function = add_offsets_to_mask_function(mask_function, q_offset, kv_offset)
    return create_block_mask(mask_function, B=batch_size, H=None, Q_LEN=q_length, KV_LEN=kv_length,
                             device=device, _compile=torch.device(device).type == "cuda")


def _causal_block_mask(batch_size: int, q_length: int, kv_length: int, sliding_window: int | None,
                       device: "torch.device") -> Any:
    """The mask when the caller gave none: causal (queries are the last `q_length` positions),
    within `sliding_window` on sliding layers."""
    from transformers.masking_utils import causal_mask_function, sliding_window_causal_mask_function

    function = sliding_window_causal_mask_function(sliding_window) if sliding_window else causal_mask_function
    return block_mask(batch_size, q_length, kv_length, q_offset=kv_length - q_length, mask_function=function,
                      device=device)


@functools.cache
def _compiled_flex() -> Callable:
    """flex_attention compiled once per process (the fused Triton kernel on CUDA)."""
    import torch
    from torch.nn.attention.flex_attention import flex_attention

    return torch.compile(flex_attention, dynamic=False)


def dense_attention_lse(query: "torch.Tensor", key: "torch.Tensor", value: "torch.Tensor", mask: Any,
                        scale: float) -> tuple["torch.Tensor", "torch.Tensor"]:
    """What flex_attention returns, `(output, lse)`, computed with plain torch ops (any device,
    with autograd): softmax attention over the keys `mask`'s `mask_mod` allows.

    A query that may see no key gets output 0 and lse -inf, as flex gives, with finite gradients.

    Args:
        query: (batch, heads, q_len, head_dim); key, value: (batch, kv_heads, kv_len, head_dim).
        mask: a flex BlockMask (its `mask_mod` is evaluated for every query/key pair).
        scale: multiplier of the scores.

    Returns:
        output (batch, heads, q_len, head_dim) in the query's dtype; lse (batch, heads, q_len), fp32.
    """
    import torch
    from torch.nn.attention.flex_attention import create_mask

    batch, heads, q_len, _ = query.shape
    groups = heads // key.shape[1]
    key, value = key.repeat_interleave(groups, dim=1), value.repeat_interleave(groups, dim=1)
    allowed = create_mask(mask.mask_mod, batch, None, q_len, key.shape[2], device=query.device)
    scores = torch.matmul(query.float(), key.float().transpose(-1, -2)) * scale
    scores = scores.masked_fill(~allowed, float("-inf"))
    peak = scores.amax(dim=-1, keepdim=True)
    peak = torch.where(torch.isfinite(peak), peak, torch.zeros_like(peak))  # rows without keys: no -inf - -inf
    weights = torch.exp(scores - peak)
    total = weights.sum(dim=-1, keepdim=True)
    seen = total > 0
    # clamp keeps log/division finite (and their gradients zero) on rows without keys
    lse = torch.where(seen, peak + torch.log(total.clamp_min(1e-30)), torch.full_like(total, float("-inf")))
    output = torch.matmul(weights / total.clamp_min(1e-30), value.float())
    return output.to(query.dtype), lse.squeeze(-1)


def add_sinks(output: "torch.Tensor", lse: "torch.Tensor", sinks: "torch.Tensor") -> "torch.Tensor":
    """Put the sink logits into the softmax denominator of attention computed without them.

    `output` is softmax(s) @ v with `lse = logsumexp(s)`; eager gpt-oss computes
    softmax([s, sink])[:-1] @ v = output * exp(lse) / (exp(lse) + exp(sink)) = output *
    sigmoid(lse - sink), here in fp32 (lse -inf, a query without keys, gives 0 as eager does).

    Args:
        output: (batch, heads, q_len, head_dim); lse: (batch, heads, q_len); sinks: (heads,).
    """
    factor = (lse.float() - sinks.float().view(1, -1, 1)).sigmoid()
    return output * factor.unsqueeze(-1).to(output.dtype)


def flex_sink_attention(module: Any, query: "torch.Tensor", key: "torch.Tensor", value: "torch.Tensor",
                        attention_mask: Any, scaling: float | None = None, dropout: float = 0.0,
                        sliding_window: int | None = None, s_aux: "torch.Tensor | None" = None,
                        **kwargs: Any) -> tuple["torch.Tensor", None]:
    """The `AttentionInterface` entry of `ATTENTION` (called by transformers' GptOssAttention).

    Args:
        module: the attention module (its `training` flag is read).
        query: (batch, heads, q_len, head_dim); key, value: (batch, kv_heads, kv_len, head_dim).
        attention_mask: the BlockMask `block_mask` made for this layer kind, or None (causal,
            within `sliding_window`).
        scaling: score multiplier (head_dim ** -0.5 for gpt-oss).
        dropout: attention dropout; only 0 is supported.
        sliding_window: the layer's window (None on full-attention layers); used when no mask
            is given.
        s_aux: the per-head sink logits (None: plain softmax attention).

    Returns:
        (output as (batch, q_len, heads, head_dim), None): no attention weights exist to return.

    Raises:
        WikituneError: dropout > 0, or a mask that is not a BlockMask (a 4-D float mask built
            for another attention implementation).
    """
    import torch
    from torch.nn.attention.flex_attention import AuxRequest, BlockMask, flex_attention

    if dropout:
        raise WikituneError(f"attn_implementation={ATTENTION} has no attention dropout (got {dropout}); set the model's "
                            "attention_dropout to 0 or use attn_implementation=eager")
    batch, heads, q_len, head_dim = query.shape
    if attention_mask is None:
        attention_mask = _causal_block_mask(batch, q_len, key.shape[2], sliding_window, query.device)
    elif not isinstance(attention_mask, BlockMask):
        raise WikituneError(f"attn_implementation={ATTENTION} takes a 2-D padding mask (turned into a flex BlockMask), "
                            f"not a prepared {tuple(attention_mask.shape)} tensor mask; pass the 2-D attention_mask or "
                            "use attn_implementation=eager")
    scale = scaling if scaling is not None else head_dim ** -0.5
    needs_grad = torch.is_grad_enabled() and any(t.requires_grad for t in (query, key, value))
    if query.device.type == "cpu" and needs_grad:
        output, lse = dense_attention_lse(query, key, value, attention_mask, scale)
    else:
        flex = _compiled_flex() if query.device.type == "cuda" else flex_attention
        with warnings.catch_warnings():
            # uncompiled on CPU on purpose (see the module docstring): torch's advice to compile is noise
            warnings.filterwarnings("ignore", message="flex_attention called without torch.compile")
            output, aux = flex(query, key, value, block_mask=attention_mask, scale=scale,
                               enable_gqa=key.shape[1] != heads, return_aux=AuxRequest(lse=True))
        lse = aux.lse
    if s_aux is not None:
        output = add_sinks(output, lse, s_aux)
    return output.transpose(1, 2).contiguous(), None
