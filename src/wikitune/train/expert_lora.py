"""gpt-oss expert LoRA applied in low-rank form: the frozen experts as they are, plus (x·Aᵉ)·Bᵉ per routed token.

    from wikitune.train.expert_lora import use_lowrank_experts
    peft_model = get_peft_model(model, LoraConfig(target_parameters=["mlp.experts.gate_up_proj", ...]))
    use_lowrank_experts(peft_model)        # same parameters, same saved adapter, no W + BA

PEFT adapts gpt-oss's fused 3-D expert parameters (`target_parameters`) with a `ParamWrapper` that
parametrizes the weight as `W + scaling·A·B` for every expert at every forward and keeps the sum
for backward: two (experts, 2880, 5760) tensors per layer on gpt-oss-20b, whether a batch routes
to an expert or not. Here the wrapped experts module computes, for the tokens routed to expert e,

    gate_up = x·Wᵉ_gu + bᵉ_gu + scaling·(x·Aᵉ_gu)·Bᵉ_gu       (before the SwiGLU)
    out     = h·Wᵉ_d  + bᵉ_d  + scaling·(h·Aᵉ_d)·Bᵉ_d

with one grouped matmul over all experts on CUDA (`torch.nn.functional.grouped_mm` /
`torch._grouped_mm`) and a loop over the experts otherwise. PEFT's `ParamWrapper` modules and
their `lora_A` / `lora_B` parameters stay where they are, so `save_pretrained` writes PEFT's
format, `PeftModel.from_pretrained` loads it and `merge_and_unload` merges it. Only the forward of
the outermost wrapper of each experts module is replaced (an instance attribute); merged,
disabled or multi-adapter states fall back to PEFT's own forward.
"""

from __future__ import annotations

import logging
import types
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch

log = logging.getLogger(__name__)

EXPERT_PARAMS = ("gate_up_proj", "down_proj")
"""The fused expert parameters of gpt-oss, each (experts, in, out)."""
GROUPED_MODES = ("auto", "grouped", "loop")
"""`auto`: grouped matmul on a CUDA GPU (bf16, sm80+, rank a multiple of 8), the loop elsewhere."""
_MARK = "_wikitune_expert_impl"


def _param_wrapper_type() -> type:
    from peft.tuners.lora.layer import ParamWrapper

    return ParamWrapper


def _wrapper_chain(wrapper: Any) -> tuple[list[Any], Any]:
    """The nested ParamWrappers from `wrapper` inwards (PEFT nests one per targeted parameter) and
    the experts module they wrap."""
    param_wrapper = _param_wrapper_type()
    chain = []
    module = wrapper
    while isinstance(module, param_wrapper):
        chain.append(module)
        module = module.base_layer
    return chain, module


def _is_gpt_oss_experts(module: Any) -> bool:
    """gpt-oss's layout: fused (experts, in, out) weights with biases, interleaved gate/up."""
    return (all(hasattr(module, n) and hasattr(module, n + "_bias") for n in EXPERT_PARAMS)
            and hasattr(module, "_apply_gate") and getattr(module, "is_transposed", False)
            and not getattr(module, "_is_expert_parallel", False))


def expert_wrappers(model: "torch.nn.Module") -> list[Any]:
    """The outermost PEFT ParamWrapper of every gpt-oss experts module in `model`."""
    param_wrapper = _param_wrapper_type()
    wrappers = [m for m in model.modules() if isinstance(m, param_wrapper)]
    inner = {id(m.base_layer) for m in wrappers}
    outer = [m for m in wrappers if id(m) not in inner]
    return [m for m in outer if _is_gpt_oss_experts(_wrapper_chain(m)[1])
            and all(w.parameter_name in EXPERT_PARAMS for w in _wrapper_chain(m)[0])]


def use_lowrank_experts(model: "torch.nn.Module", grouped: str = "auto") -> int:
    """Make every LoRA-wrapped gpt-oss experts module of `model` apply its LoRA in low-rank form.

    Args:
        model: a PEFT model whose experts were adapted through `target_parameters`.
        grouped: `auto`, `grouped` (always `grouped_mm`; fails where torch has none) or `loop`.

    Returns:
        How many experts modules now run low-rank (0: none found; PEFT's path stays).

    Raises:
        ValueError: an unknown `grouped` mode.
    """
    if grouped not in GROUPED_MODES:
        raise ValueError(f"grouped must be one of {', '.join(GROUPED_MODES)}, got {grouped!r}")
    wrappers = expert_wrappers(model)
    for wrapper in wrappers:
        wrapper.forward = types.MethodType(_lowrank_wrapper_forward, wrapper)
        setattr(wrapper, _MARK, grouped)
    return len(wrappers)


def use_peft_experts(model: "torch.nn.Module") -> int:
    """Undo `use_lowrank_experts`: PEFT's own ParamWrapper forward again. Returns how many."""
    count = 0
    for wrapper in expert_wrappers(model):
        if getattr(wrapper, _MARK, None) is not None:
            del wrapper.forward  # the instance attribute; the class's forward shows through again
            delattr(wrapper, _MARK)
            count += 1
    return count


def _lowrank_wrapper_forward(self, hidden_states, router_indices=None, routing_weights=None, *args, **kwargs):
    """The forward `use_lowrank_experts` gives the outermost ParamWrapper of an experts module."""
    chain, experts = _wrapper_chain(self)
    adapters = self.active_adapters
    if (args or kwargs or len(adapters) != 1 or router_indices is None
            or any(w.disable_adapters or w.merged for w in chain)):
        # states this path does not cover (merged, disabled, several adapters): PEFT's forward
        return type(self).forward(self, hidden_states, router_indices, routing_weights, *args, **kwargs)
    factors = {w.parameter_name: lowrank_factors(w, adapters[0]) for w in chain}
    return lowrank_experts_forward(experts, hidden_states, router_indices, routing_weights, factors,
                                   getattr(self, _MARK))


def lowrank_factors(wrapper: Any, adapter: str) -> "tuple[torch.Tensor, torch.Tensor, float] | None":
    """`(A, B, scaling)` of one ParamWrapper, A (experts, in, r) and B (experts, r, out), such that
    PEFT's delta weight is `scaling · A[e] @ B[e]` for expert e (None: the adapter is not on it).

    PEFT stores `lora_A` as Linear(in, r·experts) with rows grouped by expert (e·r + k) and `lora_B`
    as Linear(r·experts, out) with columns interleaved (k·experts + e); see
    `ParamWrapper.get_delta_weight` ("o r e, e r i -> e i o").
    """
    if adapter not in wrapper.lora_A:
        return None
    experts = wrapper.num_experts
    weight = wrapper.get_param()
    a = wrapper.lora_A[adapter].weight  # (experts·r, in)
    b = wrapper.lora_B[adapter].weight  # (out, r·experts)
    a = a.view(experts, -1, a.shape[-1]).transpose(1, 2)  # (experts, in, r), a view: no copy
    # (experts, r, out) contiguous: grouped_mm wants one unit stride; it is r·out·experts, small
    b = b.view(b.shape[0], -1, experts).permute(2, 1, 0).contiguous()
    return a.to(weight.dtype), b.to(weight.dtype), wrapper.scaling[adapter]


def _grouped_mm_fn():
    import torch

    return getattr(torch.nn.functional, "grouped_mm", None) or getattr(torch, "_grouped_mm", None)


def _use_grouped(mode: str, x: "torch.Tensor", factors: dict[str, Any]) -> bool:
    import torch

    if mode != "auto":
        return mode == "grouped"
    if not x.is_cuda or _grouped_mm_fn() is None or x.dtype != torch.bfloat16:
        return False
    if torch.cuda.get_device_capability(x.device) < (8, 0):
        return False
    # the (tokens, r) intermediate is an operand of the second grouped_mm: its rows must be
    # 16-byte aligned, i.e. r a multiple of 8 in bf16
    return all(f is None or f[0].shape[-1] % 8 == 0 for f in factors.values())


def _expert_mm(x: "torch.Tensor", weight: "torch.Tensor", offsets: "torch.Tensor",
               counts: list[int] | None) -> "torch.Tensor":
    """Rows of `x` sorted by expert times their expert's matrix: `weight` is (experts, in, out);
    `offsets` the cumulative row counts (grouped_mm), `counts` the same as a list (loop)."""
    import torch

    if counts is None:
        return _grouped_mm_fn()(x.to(weight.dtype), weight, offs=offsets)
    parts, start = [], 0
    for expert, n in enumerate(counts):
        if n:
            parts.append(x[start:start + n] @ weight[expert])
        start += n
    if not parts:
        return x.new_zeros(0, weight.shape[-1])
    return torch.cat(parts)


def _project(x, weight, bias_rows, factor, offsets, counts):
    """One expert projection of the sorted rows: frozen weight, bias, and the LoRA path."""
    out = _expert_mm(x, weight, offsets, counts) + bias_rows
    if factor is not None:
        a, b, scaling = factor
        out = out + scaling * _expert_mm(_expert_mm(x, a, offsets, counts), b, offsets, counts)
    return out


def lowrank_experts_forward(experts: Any, hidden_states: "torch.Tensor", router_indices: "torch.Tensor",
                            routing_weights: "torch.Tensor", factors: dict[str, Any],
                            grouped: str = "auto") -> "torch.Tensor":
    """gpt-oss's experts forward with LoRA factors added per routed token.

    Args:
        experts: a `GptOssExperts` (gate_up_proj (E, H, 2I), down_proj (E, I, H), their biases).
        hidden_states: (tokens, H).
        router_indices: (tokens, top_k) expert ids.
        routing_weights: (tokens, top_k) weights of those experts.
        factors: per parameter name, `lowrank_factors(...)` or None (no LoRA on it).
        grouped: `auto`, `grouped` or `loop` (see `GROUPED_MODES`).

    Returns:
        (tokens, H), the weighted sum of each token's experts.
    """
    import torch

    tokens, top_k = router_indices.shape
    num_experts = experts.num_experts
    flat = router_indices.reshape(-1)
    # sort the (token, slot) pairs by expert: each expert's rows are then one contiguous block
    order = torch.argsort(flat, stable=True)
    expert_ids = flat[order]
    x = hidden_states[order // top_k]
    counts = torch.zeros(num_experts, dtype=torch.int32, device=flat.device)
    counts.scatter_add_(0, expert_ids, torch.ones_like(expert_ids, dtype=torch.int32))
    offsets = torch.cumsum(counts, dim=0, dtype=torch.int32)
    # the loop needs the counts on the host (one sync, as transformers' eager experts do)
    host_counts = None if _use_grouped(grouped, hidden_states, factors) else counts.tolist()

    gate_up = _project(x, experts.gate_up_proj, experts.gate_up_proj_bias[expert_ids],
                       factors.get("gate_up_proj"), offsets, host_counts)
    h = experts._apply_gate(gate_up)
    out = _project(h, experts.down_proj, experts.down_proj_bias[expert_ids],
                   factors.get("down_proj"), offsets, host_counts)
    out = out * routing_weights.reshape(-1)[order].unsqueeze(-1)
    # back to (token, slot) order and sum the slots: deterministic, unlike index_add_ on CUDA
    inverse = torch.empty_like(order)
    inverse[order] = torch.arange(order.numel(), device=order.device)
    return out[inverse].view(tokens, top_k, -1).sum(dim=1).to(hidden_states.dtype)
