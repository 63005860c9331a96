"""LoRA that does what it says: resolve every target, refuse the ones that match nothing, report coverage.

    from wikitune.train.lora import LoraSettings, apply_lora
    model, coverage = apply_lora(model, LoraSettings(), out_dir=run_dir)   # writes lora_coverage.json

gpt-oss keeps its MoE experts as fused 3-D parameters (`mlp.experts.gate_up_proj`,
`mlp.experts.down_proj`), not Linear modules, so the usual `gate_proj/up_proj/down_proj` module
names match nothing and PEFT says nothing: a run trains attention only (shared STACK.md).
Here module targets are matched by their last name component (or the ModuleList that holds
them, for the per-expert Linear modules of 4-bit checkpoints) and parameter targets through PEFT
`target_parameters`; a target that matches nothing is an error naming what does exist.
Those expert parameters run PEFT's ParamWrapper (`expert_impl: peft`, W + BA for every expert at
every forward) or, by default, `train/expert_lora.py`'s low-rank path on the same LoRA weights
(`expert_impl: lowrank`); either saves the same PEFT adapter.
"""

from __future__ import annotations

import logging
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from wikitune import formats
from wikitune.errors import WikituneError
from wikitune.gptoss.model import resolve_adapter
from wikitune.train.expert_lora import use_lowrank_experts

if TYPE_CHECKING:
    import torch

log = logging.getLogger(__name__)

COVERAGE_FILE = "lora_coverage.json"
EXPERT_IMPLS = ("lowrank", "peft")


@dataclass
class LoraSettings:
    """LoRA hyper-parameters and targets."""

    r: int = 16
    """Rank of every LoRA update."""
    alpha: int = 32
    """Scaling numerator: updates are scaled by alpha / r."""
    dropout: float = 0.0
    """Dropout on the LoRA input of module targets (attention). Expert parameter targets take
    none: PEFT refuses dropout there, and the coverage table says so."""
    target_modules: list[str] = field(default_factory=lambda: ["q_proj", "k_proj", "v_proj", "o_proj"])
    """Linear modules, by last name component (`q_proj`) or by the ModuleList holding them
    (`gate_up_projs` for the per-expert Linears of a 4-bit checkpoint)."""
    target_parameters: list[str] = field(default_factory=lambda: ["mlp.experts.gate_up_proj", "mlp.experts.down_proj"])
    """Parameters adapted through PEFT `target_parameters`, by name suffix: gpt-oss's fused
    experts. Empty list: attention only."""
    modules_to_save: list[str] = field(default_factory=list)
    """Modules trained in full and saved with the adapter, e.g. `embed_tokens`, `lm_head`,
    `router`."""
    modules_to_save_lr: float | None = None
    """Learning rate of `modules_to_save` (Unsloth's CPT recipe trains embeddings at a tenth of
    the LoRA rate); None = the main learning rate."""
    expert_impl: str = "lowrank"
    """How LoRA on the fused expert parameters is computed: `lowrank` adds (x·A)·B per routed
    token (train/expert_lora.py), `peft` is PEFT's ParamWrapper, which builds W + BA for every
    expert at every forward. Same parameters and saved adapter either way."""

    def __post_init__(self) -> None:
        if self.r < 1:
            raise WikituneError(f"lora.r must be 1 or more, got {self.r}")
        if not 0.0 <= self.dropout < 1.0:
            raise WikituneError(f"lora.dropout must be in [0, 1), got {self.dropout}")
        if not self.target_modules and not self.target_parameters:
            raise WikituneError("lora.target_modules and lora.target_parameters are both empty: nothing to train")
        if self.modules_to_save_lr is not None and self.modules_to_save_lr <= 0:
            raise WikituneError("lora.modules_to_save_lr must be positive")
        if self.expert_impl not in EXPERT_IMPLS:
            raise WikituneError(f"lora.expert_impl must be one of {', '.join(EXPERT_IMPLS)}, got {self.expert_impl!r}")


def _linear_types() -> tuple[type, ...]:
    import torch

    types: list[type] = [torch.nn.Linear]
    bnb = sys.modules.get("bitsandbytes")  # only when a 4-bit model loaded it; importing it is slow
    if bnb is not None:
        types.append(bnb.nn.Linear4bit)
    return tuple(types)


def match_modules(model: "torch.nn.Module", target: str) -> list[str]:
    """Full names of the Linear modules `target` selects: last component equal to it, or held
    directly by a ModuleList of that name (`...experts.gate_up_projs.3`)."""
    linear = _linear_types()
    found = []
    for name, module in model.named_modules():
        if not isinstance(module, linear):
            continue
        parts = name.split(".")
        if name == target or parts[-1] == target or (len(parts) >= 2 and parts[-1].isdigit() and parts[-2] == target):
            found.append(name)
    return found


def match_parameters(model: "torch.nn.Module", target: str) -> list[str]:
    """Full names of the parameters `target` selects (PEFT's rule: equal, or ending in `.target`)."""
    return [n for n, _ in model.named_parameters() if n == target or n.endswith("." + target)]


def _available(model: "torch.nn.Module") -> tuple[list[str], list[str]]:
    """Names a user could target: Linear module names (deduplicated by role) and parameter names."""
    import re

    linear = _linear_types()
    modules = sorted({re.sub(r"\.\d+(?=\.|$)", "", n).split(".")[-1] if not n.split(".")[-1].isdigit()
                      else n.split(".")[-2] for n, m in model.named_modules() if isinstance(m, linear)})
    params = sorted({re.sub(r"^.*?layers\.\d+\.", "", n) for n, p in model.named_parameters() if p.dim() >= 2
                     and not isinstance(_owner(model, n), linear)})
    return modules, params


def _owner(model: "torch.nn.Module", param_name: str) -> Any:
    module_name = param_name.rpartition(".")[0]
    return model.get_submodule(module_name) if module_name else model


def _module_names(model: "torch.nn.Module") -> set[str]:
    return {n.split(".")[-1] for n, _ in model.named_modules() if n}


def resolve_targets(model: "torch.nn.Module", settings: LoraSettings) -> dict[str, Any]:
    """Match every target against `model`; raise on the first that matches nothing.

    Returns:
        {"modules": {target: [full names]}, "parameters": {target: [full names]},
         "modules_to_save": {name: [full names]}}

    Raises:
        WikituneError: a target that matches nothing, with the names that do exist.
    """
    modules = {t: match_modules(model, t) for t in settings.target_modules}
    params = {t: match_parameters(model, t) for t in settings.target_parameters}
    names = _module_names(model)
    saved = {t: [n for n, _ in model.named_modules() if n.split(".")[-1] == t] for t in settings.modules_to_save}
    missing = [t for t, hits in {**modules, **params}.items() if not hits]
    missing += [t for t, hits in saved.items() if not hits or t not in names]
    if missing:
        have_modules, have_params = _available(model)
        raise WikituneError(
            f"LoRA target(s) {', '.join(missing)} match nothing in {type(model).__name__}; "
            f"Linear modules there: {', '.join(have_modules)}; "
            f"weight parameters (for target_parameters): {', '.join(have_params)}"
        )
    return {"modules": modules, "parameters": params, "modules_to_save": saved}


def apply_lora(model: "torch.nn.Module", settings: LoraSettings, out_dir: str | Path | None = None):
    """Wrap `model` in a PEFT LoRA model on the resolved targets; print and save the coverage table.

    Args:
        model: a transformers causal LM (frozen by PEFT except the LoRA weights).
        settings: targets and hyper-parameters.
        out_dir: where to write `lora_coverage.json` (None: do not write).

    Returns:
        (peft_model, coverage dict).

    Raises:
        WikituneError: a target that matches nothing.
    """
    from peft import LoraConfig, get_peft_model

    resolved = resolve_targets(model, settings)
    module_names = sorted({n for hits in resolved["modules"].values() for n in hits})
    config = LoraConfig(
        r=settings.r, lora_alpha=settings.alpha,
        # PEFT refuses lora_dropout != 0 as soon as a parameter is targeted (lora.ParamWrapper), so
        # the config says 0 and dropout is put on the module targets' LoRA layers below.
        lora_dropout=0.0 if settings.target_parameters else settings.dropout,
        target_modules=module_names or None,
        target_parameters=list(settings.target_parameters) or None,
        modules_to_save=list(settings.modules_to_save) or None,
        bias="none", task_type="CAUSAL_LM",
    )
    peft_model = get_peft_model(model, config)
    if settings.target_parameters and settings.dropout > 0:
        set_module_dropout(peft_model, module_names, settings.dropout)
    lowrank = apply_expert_impl(peft_model, settings)
    coverage = coverage_table(peft_model, settings, resolved, lowrank)
    _report_coverage(coverage, out_dir)
    return peft_model, coverage


def _report_coverage(coverage: dict[str, Any], out_dir: str | Path | None) -> None:
    """Print the coverage table and save it as RUN/lora_coverage.json, before training starts."""
    print(format_coverage(coverage))
    if out_dir is not None:
        Path(out_dir).mkdir(parents=True, exist_ok=True)
        formats.write_json(Path(out_dir) / COVERAGE_FILE, coverage)


def continue_adapter(model: "torch.nn.Module", adapter: str | Path, settings: LoraSettings,
                     out_dir: str | Path | None = None):
    """Load an existing adapter as trainable (to keep training it); its own targets and rank
    apply, `settings.dropout` is put on its module targets. Returns (peft_model, coverage)."""
    from peft import PeftConfig, PeftModel

    path = resolve_adapter(adapter)
    peft_config = PeftConfig.from_pretrained(str(path))
    own = LoraSettings(
        r=peft_config.r, alpha=peft_config.lora_alpha, dropout=settings.dropout,
        # the adapter stores full module names; group them back by role for the table
        target_modules=sorted({_role(name) for name in (peft_config.target_modules or [])}),
        target_parameters=list(peft_config.target_parameters or []),
        modules_to_save=list(peft_config.modules_to_save or []),
        modules_to_save_lr=settings.modules_to_save_lr, expert_impl=settings.expert_impl,
    )
    resolved = resolve_targets(model, own)
    peft_model = PeftModel.from_pretrained(model, str(path), is_trainable=True)
    module_names = sorted({n for hits in resolved["modules"].values() for n in hits})
    if own.target_parameters and own.dropout > 0:
        set_module_dropout(peft_model, module_names, own.dropout)
    lowrank = apply_expert_impl(peft_model, own)
    coverage = coverage_table(peft_model, own, resolved, lowrank)
    coverage["continued_from"] = str(path)
    print(f"continuing adapter {path}")
    _report_coverage(coverage, out_dir)
    return peft_model, coverage


def apply_expert_impl(peft_model: "torch.nn.Module", settings: LoraSettings) -> int:
    """Switch the adapted gpt-oss experts of `peft_model` to `settings.expert_impl`.

    Returns:
        How many experts modules run the low-rank path (0 with `peft`, or when no parameter
        target is a gpt-oss experts module: PEFT's path then stays, and the log says so).
    """
    if settings.expert_impl != "lowrank" or not settings.target_parameters:
        return 0
    count = use_lowrank_experts(peft_model)
    if count == 0:
        log.warning("lora.expert_impl lowrank: no gpt-oss experts module among the parameter targets; "
                    "PEFT's ParamWrapper computes them")
    return count


def _role(module_name: str) -> str:
    """`model.layers.0.self_attn.q_proj` -> `q_proj`; `...experts.gate_up_projs.3` -> `gate_up_projs`."""
    parts = module_name.split(".")
    return parts[-2] if parts[-1].isdigit() and len(parts) > 1 else parts[-1]


def set_module_dropout(peft_model: "torch.nn.Module", module_names: list[str], p: float) -> int:
    """Give the LoRA layers of `module_names` dropout `p` (PEFT config holds 0 because of the
    expert parameters). Returns how many layers got it."""
    import torch

    wanted = set(module_names)
    count = 0
    for name, module in peft_model.named_modules():
        bare = name.removeprefix("base_model.model.")
        if bare in wanted and hasattr(module, "lora_dropout"):
            for adapter in list(module.lora_dropout.keys()):
                module.lora_dropout[adapter] = torch.nn.Dropout(p)
                count += 1
    return count


def _kind(target: str) -> str:
    if "expert" in target or target in ("gate_up_projs", "down_projs"):
        return "experts"
    if target in ("q_proj", "k_proj", "v_proj", "o_proj"):
        return "attention"
    if target == "router":
        return "router"
    return "other"


def coverage_table(peft_model: "torch.nn.Module", settings: LoraSettings, resolved: dict[str, Any],
                   lowrank: int = 0) -> dict[str, Any]:
    """Per target: matched modules/parameters, trainable LoRA parameters, dropout actually applied;
    `lowrank`: how many experts modules run the low-rank path (`apply_expert_impl`)."""
    trainable = {n: p.numel() for n, p in peft_model.named_parameters() if p.requires_grad}
    rows = []
    for target, hits in resolved["modules"].items():
        count = sum(v for n, v in trainable.items() if "lora_" in n and any(f"{h}.lora_" in n for h in hits))
        rows.append({"target": target, "via": "target_modules", "kind": _kind(target), "matched": len(hits),
                     "trainable_params": count, "dropout": settings.dropout, "note": ""})
    for target, hits in resolved["parameters"].items():
        # a wrapped parameter's LoRA weights live on the module that owns it; with two parameters
        # on one module PEFT nests wrappers, so count by owner module and parameter shape.
        count = _param_lora_count(peft_model, hits, settings.r)
        notes = ["PEFT refuses dropout on parameter targets; none applied"] if settings.dropout else []
        notes.append(f"low-rank path on {lowrank} experts modules" if lowrank else "PEFT ParamWrapper (W + BA)")
        rows.append({"target": target, "via": "target_parameters", "kind": _kind(target), "matched": len(hits),
                     "trainable_params": count, "dropout": 0.0, "note": "; ".join(notes)})
    for target, hits in resolved["modules_to_save"].items():
        count = sum(v for n, v in trainable.items() if "modules_to_save" in n and any(h in n for h in hits))
        rows.append({"target": target, "via": "modules_to_save", "kind": "full", "matched": len(hits),
                     "trainable_params": count, "dropout": 0.0,
                     "note": f"lr {settings.modules_to_save_lr}" if settings.modules_to_save_lr else ""})
    by_kind: dict[str, int] = {}
    for row in rows:
        by_kind[row["kind"]] = by_kind.get(row["kind"], 0) + row["trainable_params"]
    total = sum(p.numel() for p in peft_model.parameters())
    return {"settings": asdict(settings), "targets": rows, "trainable_by_kind": by_kind,
            "trainable_params": sum(trainable.values()), "total_params": total}


def _param_lora_count(peft_model: "torch.nn.Module", hits: list[str], r: int) -> int:
    """LoRA parameters PEFT created for the fused parameters `hits` (A: experts·r·in, B: out·experts·r)."""
    base = peft_model.get_base_model()
    count = 0
    for name in hits:
        module_name, _, param_name = name.rpartition(".")
        module = base.get_submodule(module_name)
        # after wrapping the parameter is reached through the wrapper; look at the LoRA layers
        # whose `parameter_name` is this one
        wrapper = module
        while wrapper is not None:
            if getattr(wrapper, "parameter_name", None) == param_name:
                count += sum(p.numel() for k, p in wrapper.named_parameters() if "lora_" in k and p.requires_grad
                             and "base_layer" not in k)
                break
            wrapper = getattr(wrapper, "base_layer", None)
    return count


def format_coverage(coverage: dict[str, Any]) -> str:
    """The coverage table as text, one line per target, then trainable parameters per kind."""
    lines = [f"{'target':32} {'via':18} {'kind':10} {'matched':>7} {'trainable':>12} {'dropout':>7}  note"]
    for row in coverage["targets"]:
        lines.append(f"{row['target']:32} {row['via']:18} {row['kind']:10} {row['matched']:>7} "
                     f"{row['trainable_params']:>12,} {row['dropout']:>7}  {row['note']}")
    kinds = ", ".join(f"{k} {v:,}" for k, v in coverage["trainable_by_kind"].items())
    lines.append(f"trainable {coverage['trainable_params']:,} of {coverage['total_params']:,} parameters ({kinds})")
    return "\n".join(lines)
