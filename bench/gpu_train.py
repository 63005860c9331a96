"""Benchmark: packed LoRA CPT steps on a full-size, randomly initialised gpt-oss-20b on one GPU.

    .venv/bin/python bench/gpu_train.py                               # H100/H200: bf16, seq 2048
    .venv/bin/python bench/gpu_train.py --batch 8 --gradient-checkpointing --steps 10
    .venv/bin/python bench/gpu_train.py --lora attention              # the seed's effective setup
    .venv/bin/python bench/gpu_train.py --dry-run                     # CPU, tiny config: checks the script

The model is built from `../shared/data/gpt-oss/config.json` (no weights needed: the MXFP4
quantization entry is dropped and weights are random bf16), LoRA r=16 is put on attention and
the fused experts with wikitune's `apply_lora`, and random token blocks of `--seq` tokens are
trained with AdamW (8-bit when bitsandbytes works). Throughput does not depend on the weights'
values, so the figures hold for the real checkpoint dequantized to bf16.

Reported: tokens/s (every position is a real token: packed blocks), peak GPU memory, and MFU:
model FLOPs per token = 6 x active parameters (top-k experts, attention, router, lm_head) + the
attention score/value term 12 x layers x heads x head_dim x context (context = seq for full
layers, the window for sliding ones), over the GPU's dense bf16 peak (`--peak-tflops`, default
989 for H100/H200 SXM). LoRA skips the frozen weights' gradients, so hardware does about 2/3 of
that; the 6N convention is kept to compare with other reports. With `--corpus-tokens N` it
projects the hours of a 3-epoch CPT of N tokens.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))
DEFAULT_CONFIG = REPO.parent / "shared" / "data" / "gpt-oss" / "config.json"
TINY = {"num_hidden_layers": 2, "hidden_size": 64, "intermediate_size": 64, "num_local_experts": 4,
        "num_experts_per_tok": 2, "num_attention_heads": 4, "num_key_value_heads": 2, "head_dim": 16,
        "vocab_size": 512, "sliding_window": 32, "layer_types": ["sliding_attention", "full_attention"]}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", type=Path, default=DEFAULT_CONFIG, help="gpt-oss config.json to build from.")
    parser.add_argument("--seq", type=int, default=2048, help="Tokens per packed block.")
    parser.add_argument("--batch", type=int, default=4, help="Blocks per step.")
    parser.add_argument("--steps", type=int, default=8, help="Timed optimizer steps (after --warmup).")
    parser.add_argument("--warmup", type=int, default=2, help="Untimed steps first (allocation, kernels).")
    parser.add_argument("--lora", choices=["attention", "attention+experts"], default="attention+experts")
    parser.add_argument("--rank", type=int, default=16, help="LoRA rank (alpha = 2 x rank).")
    parser.add_argument("--gradient-checkpointing", action="store_true", help="Recompute activations in backward.")
    parser.add_argument("--attn", default="eager", help="attn_implementation (eager, kernels-community/vllm-flash-attn3, ...).")
    parser.add_argument("--optim", choices=["adamw_8bit", "adamw"], default="adamw_8bit")
    parser.add_argument("--peak-tflops", type=float, default=989.0, help="Dense bf16 peak of the GPU, TFLOP/s.")
    parser.add_argument("--corpus-tokens", type=int, default=None, help="Project a 3-epoch CPT of this many tokens.")
    parser.add_argument("--dry-run", action="store_true", help="CPU, fp32, a tiny config of the same architecture.")
    parser.add_argument("--json", type=Path, default=None, help="Also write the result here.")
    args = parser.parse_args(argv)
    if args.dry_run:
        args.seq = min(args.seq, 64)
        args.batch = min(args.batch, 2)
    return args


def model_flops_per_token(cfg, seq: int) -> tuple[float, int]:
    """(6N + attention FLOPs per token, N active parameters) for a GptOssConfig."""
    h, hd = cfg.hidden_size, cfg.head_dim
    q, kv = cfg.num_attention_heads * hd, cfg.num_key_value_heads * hd
    attn = h * q + 2 * h * kv + q * h
    experts = cfg.num_experts_per_tok * (h * 2 * cfg.intermediate_size + cfg.intermediate_size * h)
    router = h * cfg.num_local_experts
    active = cfg.num_hidden_layers * (attn + experts + router) + h * cfg.vocab_size
    attention_term = 0
    for kind in cfg.layer_types:
        context = min(seq, cfg.sliding_window) if kind == "sliding_attention" else seq
        attention_term += 12 * cfg.num_attention_heads * hd * context
    return 6 * active + attention_term, active


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    import torch
    from transformers import GptOssConfig, GptOssForCausalLM

    from wikitune.train.lora import LoraSettings, apply_lora

    cuda = torch.cuda.is_available() and not args.dry_run
    if not cuda and not args.dry_run:
        raise SystemExit("no CUDA GPU: run with --dry-run to check the script on CPU")
    if args.dry_run:
        config = GptOssConfig(**TINY)
    else:
        raw = json.loads(args.config.read_text(encoding="utf-8"))
        raw.pop("quantization_config", None)  # random bf16 weights, nothing to dequantize
        config = GptOssConfig(**{k: v for k, v in raw.items() if k not in ("architectures", "transformers_version")})
    config._attn_implementation = args.attn if cuda else "eager"
    config.use_cache = False
    device = torch.device("cuda" if cuda else "cpu")
    dtype = torch.bfloat16 if cuda else torch.float32

    started = time.perf_counter()
    torch.manual_seed(0)
    previous = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    with device:
        model = GptOssForCausalLM(config)
    torch.set_default_dtype(previous)
    build_s = time.perf_counter() - started
    if args.gradient_checkpointing:
        model.activation_checkpointing_enable(activation_checkpointing_kwargs={"use_reentrant": False})
        model.enable_input_require_grads()
    settings = LoraSettings(r=args.rank, alpha=2 * args.rank,
                            target_parameters=[] if args.lora == "attention" else LoraSettings().target_parameters)
    with contextlib.redirect_stdout(io.StringIO()):
        model, coverage = apply_lora(model, settings)
    model.train()
    params = [p for p in model.parameters() if p.requires_grad]
    optim_name = args.optim
    if args.optim == "adamw_8bit":
        try:
            import bitsandbytes as bnb

            opt = bnb.optim.AdamW8bit(params, lr=2e-4)
        except Exception as err:  # noqa: BLE001
            print(f"warning: 8-bit AdamW unavailable ({err}); using torch AdamW")
            opt, optim_name = torch.optim.AdamW(params, lr=2e-4), "adamw"
    else:
        opt = torch.optim.AdamW(params, lr=2e-4)

    if cuda:
        torch.cuda.reset_peak_memory_stats()
    gen = torch.Generator(device="cpu").manual_seed(0)
    elapsed, tokens, losses = 0.0, 0, []
    for step in range(args.warmup + args.steps):
        ids = torch.randint(0, config.vocab_size, (args.batch, args.seq), generator=gen).to(device)
        if cuda:
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        loss = model(input_ids=ids, labels=ids).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
        if cuda:
            torch.cuda.synchronize()
        if step >= args.warmup:
            elapsed += time.perf_counter() - t0
            tokens += ids.numel()
        losses.append(float(loss.detach()))
    flops_per_token, active = model_flops_per_token(config, args.seq)
    tokens_per_s = tokens / elapsed
    result = {
        "device": torch.cuda.get_device_name() if cuda else "cpu (dry run, tiny config)",
        "seq": args.seq, "batch": args.batch, "lora": args.lora, "rank": args.rank, "optim": optim_name,
        "gradient_checkpointing": args.gradient_checkpointing, "attn": config._attn_implementation,
        "trainable_params": coverage["trainable_params"], "trainable_by_kind": coverage["trainable_by_kind"],
        "active_params": active, "build_seconds": round(build_s, 1),
        "tokens_per_s": tokens_per_s, "step_seconds": elapsed / args.steps,
        "peak_memory_gib": torch.cuda.max_memory_allocated() / 2**30 if cuda else None,
        "mfu": tokens_per_s * flops_per_token / (args.peak_tflops * 1e12) if cuda else None,
        "losses": losses,
    }
    if args.corpus_tokens:
        result["projected_hours_3_epochs"] = 3 * args.corpus_tokens / tokens_per_s / 3600
    print(json.dumps(result, indent=2))
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))
    return result


if __name__ == "__main__":
    main()
