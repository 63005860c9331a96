"""Merge a run's LoRA adapter into its base model: a plain Hugging Face model usable without PEFT.

    wikitune merge runs/tiny-sft --out models/tiny-sft-merged
    python -c "from transformers import AutoModelForCausalLM as M; M.from_pretrained('models/tiny-sft-merged')"

An SFT run trained on top of a merged CPT adapter (`adapter_mode: merge`) merges both, in order.
The merged weights are written in the dtype they were loaded in (bf16 on GPU, fp32 on CPU);
a tiny-gpt-oss merge includes its random base, so it reloads anywhere.
"""

from __future__ import annotations

import json
from pathlib import Path

from wikitune.errors import WikituneError
from wikitune.gptoss.model import is_run_dir, load_model_and_tokenizer, resolve_adapter


def run_merge(run: str | Path, out: str | Path, *, overwrite: bool = False) -> Path:
    """Load the run's base model and adapter, merge, save model and tokenizer to `out`.

    Raises:
        WikituneError: `run` has no adapter, or `out` exists and is not empty (without overwrite).
    """
    run, out = Path(run), Path(out)
    resolve_adapter(run)
    if out.exists() and any(out.iterdir()) and not overwrite:
        raise WikituneError(f"{out} exists and is not empty; choose another --out")
    model, tokenizer = load_model_and_tokenizer(None if is_run_dir(run) else _base_of(run), adapter=run)
    merged = model.merge_and_unload()
    merged.config.use_cache = True
    out.mkdir(parents=True, exist_ok=True)
    merged.save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out


def _base_of(adapter_dir: Path) -> str:
    """The base model an adapter directory names (adapter_config.json)."""
    config = json.loads((resolve_adapter(adapter_dir) / "adapter_config.json").read_text(encoding="utf-8"))
    base = config.get("base_model_name_or_path")
    if not base:
        raise WikituneError(f"{adapter_dir}: adapter_config.json names no base model; merge a run directory instead")
    return base
