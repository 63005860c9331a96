"""Benchmark: LoRA CPT steps of a full-size, randomly initialised gpt-oss-20b on one GPU, comparing
implementations in one run.

    .venv/bin/python bench/gpu_train.py --json r.json                 # H100/H200: bf16, seq 2048, 5 arms
    .venv/bin/python bench/gpu_train.py --arms peft+plain+eager,lowrank+chunked+wikitune_flex --batch 8
    .venv/bin/python bench/gpu_train.py --lora attention              # the seed's effective setup
    .venv/bin/python bench/gpu_train.py --tiny --steps 2              # CPU, tiny config: checks the script
    bash bench/device.sh                                              # the prepared run on the device machine

An arm is `EXPERTS+LOSS+ATTENTION`: the expert LoRA path (`peft`: PEFT's `target_parameters`
wrapper, W + BA for every expert; `lowrank`: wikitune's (x·A)·B per routed token,
`LoraSettings.expert_impl`), the loss (`plain`: transformers' full fp32 logits; `chunked`:
`wikitune.train.loss`, Liger's fused kernel where installed) and the attention (`eager`, or
`wikitune_flex`: `wikitune.gptoss.attention`). The default arms change one thing at a time from
the baseline `peft+plain+eager` (the seed's setup), then all three; each arm builds the model
afresh from the same seed and trains the same batches, so ratios against the baseline (same
process, same GPU) and first-step losses compare like with like.

The model is built from `../shared/data/gpt-oss/config.json` on the meta device (no weights
needed: the MXFP4 entry is dropped), then materialised on the GPU in bf16 with random weights;
throughput does not depend on the weights' values. LoRA r=16 on attention and the fused experts
(`wikitune.train.lora.apply_lora`), AdamW (8-bit when bitsandbytes works), random token blocks of
`--seq` tokens (packed: every position is a real token).

Reported per arm: tokens/s, peak GPU memory (beside `--plan`'s estimate; an arm the estimate
says will not fit the GPU is skipped with that reason), and MFU: model FLOPs per token = 6 x
active parameters (top-k experts, attention, router, lm_head) + the attention term 12 x layers x
heads x head_dim x context (context = seq for full layers, the window for sliding ones), over the
GPU's dense bf16 peak (`--peak-tflops`, default 989 for H100/H200 SXM). LoRA skips the frozen
weights' gradients, so hardware does about 2/3 of that; the 6N convention is kept to compare
with other reports. With `--corpus-tokens N` it projects the hours of a 3-epoch CPT of N tokens.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import gc
import io
import json
import sys
import time
import traceback
from pathlib import Path
from typing import NamedTuple

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))
DEFAULT_CONFIG = REPO.parent / "shared" / "data" / "gpt-oss" / "config.json"
TINY = {"num_hidden_layers": 2, "hidden_size": 64, "intermediate_size": 64, "num_local_experts": 4,
        "num_experts_per_tok": 2, "num_attention_heads": 4, "num_key_value_heads": 2, "head_dim": 16,
        "vocab_size": 512, "sliding_window": 32, "layer_types": ["sliding_attention", "full_attention"]}
EXPERTS = ("peft", "lowrank")
BASELINE = "peft+plain+eager"
DEFAULT_ARMS = [BASELINE, "lowrank+plain+eager", "peft+chunked+eager", "peft+plain+wikitune_flex",
                "lowrank+chunked+wikitune_flex"]


class Arm(NamedTuple):
    """One configuration to measure."""

    experts: str
    loss: str
    attn: str

    @property
    def name(self) -> str:
        return f"{self.experts}+{self.loss}+{self.attn}"


def parse_arm(text: str) -> Arm:
    """`EXPERTS+LOSS+ATTENTION`, e.g. `lowrank+chunked+wikitune_flex`."""
    from wikitune.train.loss import LOSSES

    parts = text.strip().split("+")
    if len(parts) != 3 or parts[0] not in EXPERTS or parts[1] not in LOSSES or not parts[2]:
        raise argparse.ArgumentTypeError(
            f"arm {text!r} is not EXPERTS+LOSS+ATTENTION with EXPERTS in {'|'.join(EXPERTS)} and LOSS in "
            f"{'|'.join(LOSSES)}, e.g. {BASELINE}")
    return Arm(*parts)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", type=Path, default=DEFAULT_CONFIG, help="gpt-oss config.json to build from.")
    parser.add_argument("--arms", default=",".join(DEFAULT_ARMS),
                        help=f"Comma-separated EXPERTS+LOSS+ATTENTION arms; ratios are against {BASELINE} "
                             "when it is among them, else the first.")
    parser.add_argument("--seq", type=int, default=2048, help="Tokens per packed block.")
    parser.add_argument("--batch", type=int, default=4, help="Blocks per step.")
    parser.add_argument("--steps", type=int, default=5, help="Timed optimizer steps per arm (after --warmup).")
    parser.add_argument("--warmup", type=int, default=2, help="Untimed steps first (allocation, compilation).")
    parser.add_argument("--lora", choices=["attention", "attention+experts"], default="attention+experts")
    parser.add_argument("--rank", type=int, default=16, help="LoRA rank (alpha = 2 x rank).")
    parser.add_argument("--gradient-checkpointing", action=argparse.BooleanOptionalAction, default=True,
                        help="Recompute activations in backward (default on: batch 4 x 2048 without it exceeds an H200).")
    parser.add_argument("--optim", choices=["adamw_8bit", "adamw"], default="adamw_8bit")
    parser.add_argument("--peak-tflops", type=float, default=989.0, help="Dense bf16 peak of the GPU, TFLOP/s.")
    parser.add_argument("--gpu-memory-gib", type=float, default=None,
                        help="Skip arms whose --plan estimate exceeds this (default: the visible GPU; none on CPU).")
    parser.add_argument("--corpus-tokens", type=int, default=None, help="Project a 3-epoch CPT of this many tokens.")
    parser.add_argument("--tiny", "--dry-run", dest="tiny", action="store_true",
                        help="CPU, fp32, a tiny config of the same architecture (seq <= 64, batch <= 2).")
    parser.add_argument("--json", type=Path, default=None, help="Also write the result here.")
    args = parser.parse_args(argv)
    try:
        args.arms = [parse_arm(text) for text in args.arms.split(",") if text.strip()]
    except argparse.ArgumentTypeError as err:
        parser.error(str(err))
    if not args.arms:
        parser.error("--arms names no arm")
    if args.tiny:
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


def load_gpt_oss_config(args: argparse.Namespace):
    """The GptOssConfig to build: the tiny one, or `--config` without its quantization entry."""
    from transformers import GptOssConfig

    if args.tiny:
        config = GptOssConfig(**TINY)
    else:
        raw = json.loads(args.config.read_text(encoding="utf-8"))
        raw.pop("quantization_config", None)  # random bf16 weights, nothing to dequantize
        config = GptOssConfig(**{k: v for k, v in raw.items() if k not in ("architectures", "transformers_version")})
    config.use_cache = False
    return config


def build_model(config, attn: str, device, dtype):
    """A GptOssForCausalLM with seeded random weights: built on the meta device (no memory),
    then materialised on `device` in `dtype` and initialised there (`init_weights` also
    recomputes the rotary buffers `to_empty` leaves undefined)."""
    import torch
    from transformers import GptOssForCausalLM

    from wikitune.gptoss.attention import ATTENTION, register_attention

    if attn == ATTENTION:
        register_attention()
    config._attn_implementation = attn
    previous = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        with torch.device("meta"):
            model = GptOssForCausalLM(config)
    finally:
        torch.set_default_dtype(previous)
    model.to_empty(device=device)
    torch.manual_seed(0)
    with torch.no_grad():
        model.init_weights()
    return model


class Unavailable(Exception):
    """An arm this checkout cannot run (said in the result, not raised to the user)."""


def lora_settings(arm: Arm, args: argparse.Namespace):
    """The LoraSettings of `arm` (`expert_impl` where train/lora.py has it).

    Raises:
        Unavailable: `lowrank` asked of a LoraSettings without `expert_impl`.
    """
    from wikitune.train.lora import LoraSettings

    targets = [] if args.lora == "attention" else LoraSettings().target_parameters
    kwargs = {"r": args.rank, "alpha": 2 * args.rank, "target_parameters": targets}
    if "expert_impl" in {f.name for f in dataclasses.fields(LoraSettings)}:
        kwargs["expert_impl"] = arm.experts
    elif arm.experts != "peft":
        raise Unavailable("LoraSettings has no expert_impl in this checkout (PEFT's expert path only)")
    return LoraSettings(**kwargs)


def plan_peak_gib(config, arm: Arm, settings, args: argparse.Namespace, dtype_name: str) -> tuple[float, str]:
    """`--plan`'s peak-memory estimate of `arm` (GiB) and its largest part."""
    from wikitune.train.cpt import CPTConfig
    from wikitune.train.plan import GIB, ModelSizes, estimate_memory, peak_bytes

    cfg = CPTConfig(block_size=args.seq, batch_size=args.batch, gradient_checkpointing=args.gradient_checkpointing,
                    attn_implementation=arm.attn, dtype=dtype_name, loss=arm.loss, lora=settings,
                    optim="adamw_8bit" if args.optim == "adamw_8bit" else "adamw_torch")
    parts = estimate_memory(ModelSizes.from_config(config.to_dict()), cfg, args.seq, loss=arm.loss)
    largest = max(parts, key=parts.get)
    return peak_bytes(parts) / GIB, f"{largest} {parts[largest] / GIB:.1f} GiB"


def make_optimizer(params, name: str):
    """(optimizer, the name actually used): 8-bit AdamW when bitsandbytes works, else torch's."""
    import torch

    if name == "adamw_8bit":
        try:
            import bitsandbytes as bnb

            return bnb.optim.AdamW8bit(params, lr=2e-4), name
        except Exception as err:  # noqa: BLE001 - a benchmark still measures with torch's AdamW, and says so
            print(f"warning: 8-bit AdamW unavailable ({type(err).__name__}: {err}); using torch AdamW", file=sys.stderr)
    return torch.optim.AdamW(params, lr=2e-4), "adamw"


def train_arm(arm: Arm, settings, config, args: argparse.Namespace, device, dtype, batches) -> dict:
    """Build, apply LoRA, train warmup + timed steps on `batches`; measurements of one arm."""
    import torch

    from wikitune.train.lora import apply_lora
    from wikitune.train.loss import chunked_model_loss

    cuda = device.type == "cuda"
    if cuda:
        torch.cuda.reset_peak_memory_stats()
    started = time.perf_counter()
    model = build_model(config, arm.attn, device, dtype)
    if args.gradient_checkpointing:
        model.activation_checkpointing_enable(activation_checkpointing_kwargs={"use_reentrant": False})
        model.enable_input_require_grads()
    with contextlib.redirect_stdout(io.StringIO()):  # the coverage table: one per arm is noise here
        model, coverage = apply_lora(model, settings)
    model.train()
    build_s = time.perf_counter() - started
    params = [p for p in model.parameters() if p.requires_grad]
    opt, optim_name = make_optimizer(params, args.optim)

    timed, tokens, warmup_s, losses = 0.0, 0, 0.0, []
    for step, ids in enumerate(batches):
        ids = ids.to(device)
        if cuda:
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        if arm.loss == "chunked":
            loss = chunked_model_loss(model, {"input_ids": ids, "labels": ids})
        else:
            loss = model(input_ids=ids, labels=ids).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
        if cuda:
            torch.cuda.synchronize()
        seconds = time.perf_counter() - t0
        if step >= args.warmup:
            timed += seconds
            tokens += ids.numel()
        else:
            warmup_s += seconds
        losses.append(float(loss.detach()))
    flops_per_token, _ = model_flops_per_token(config, args.seq)
    tokens_per_s = tokens / timed
    out = {
        "status": "ok", "tokens_per_s": tokens_per_s, "step_seconds": timed / args.steps,
        "mfu": tokens_per_s * flops_per_token / (args.peak_tflops * 1e12) if cuda else None,
        "peak_memory_gib": torch.cuda.max_memory_allocated() / 2**30 if cuda else None,
        "build_seconds": round(build_s, 1), "warmup_seconds": round(warmup_s, 1), "optim": optim_name,
        "trainable_params": coverage["trainable_params"], "trainable_by_kind": coverage["trainable_by_kind"],
        "losses": losses,
    }
    if args.corpus_tokens:
        out["projected_hours_3_epochs"] = 3 * args.corpus_tokens / tokens_per_s / 3600
    del model, opt, params, loss
    return out


def run_arm(arm: Arm, config, args: argparse.Namespace, device, dtype, gpu_gib: float | None, batches) -> dict:
    """One arm's result: measured (`status: ok`), or `unavailable`, `skipped` (the plan says it
    will not fit), `oom` or `error`, with the reason; the other arms run regardless."""
    import torch

    result: dict = {"arm": arm.name, **arm._asdict()}
    try:
        settings = lora_settings(arm, args)
        plan_gib, largest = plan_peak_gib(config, arm, settings, args, "bfloat16" if device.type == "cuda" else "float32")
        result.update(plan_peak_gib=plan_gib, plan_largest_part=largest)
        if gpu_gib is not None and plan_gib > gpu_gib:
            return {**result, "status": "skipped",
                    "reason": f"--plan estimates {plan_gib:.1f} GiB > the GPU's {gpu_gib:.1f} GiB (largest part: {largest})"}
        result.update(train_arm(arm, settings, config, args, device, dtype, batches))
    except Unavailable as err:
        result.update(status="unavailable", reason=str(err))
    except torch.cuda.OutOfMemoryError as err:
        result.update(status="oom", reason=str(err).splitlines()[0])
    except Exception as err:  # noqa: BLE001 - one broken arm must not cost the device run the others
        traceback.print_exc()
        result.update(status="error", reason=f"{type(err).__name__}: {err}")
    finally:
        gc.collect()
        if device.type == "cuda":
            torch.cuda.empty_cache()
    return result


def compare(arms: list[dict]) -> str | None:
    """Add `vs_baseline` (tokens/s and peak-memory ratios, first-loss difference) to every measured
    arm; returns the baseline's name (None when no arm was measured)."""
    measured = [a for a in arms if a["status"] == "ok"]
    if not measured:
        return None
    base = next((a for a in measured if a["arm"] == BASELINE), measured[0])
    for arm in measured:
        ratios = {"tokens_per_s": arm["tokens_per_s"] / base["tokens_per_s"],
                  # every arm starts from the same weights (LoRA B = 0) and batch: equal first losses
                  # say the implementations compute the same model
                  "first_loss_delta": arm["losses"][0] - base["losses"][0]}
        if arm["peak_memory_gib"] is not None:
            ratios["peak_memory"] = arm["peak_memory_gib"] / base["peak_memory_gib"]
        arm["vs_baseline"] = ratios
    return base["arm"]


def format_arm(arm: dict) -> str:
    if arm["status"] != "ok":
        return f"{arm['arm']:<32} {arm['status']}: {arm['reason']}"
    mfu = f"MFU {100 * arm['mfu']:.1f}%" if arm["mfu"] is not None else "MFU n/a (CPU)"
    peak = f"peak {arm['peak_memory_gib']:.1f} GiB" if arm["peak_memory_gib"] is not None else "peak n/a (CPU)"
    ratio = f" ({arm['vs_baseline']['tokens_per_s']:.2f}x)" if "vs_baseline" in arm else ""
    return (f"{arm['arm']:<32} {arm['tokens_per_s']:>10,.0f} tokens/s{ratio}  {mfu}  "
            f"{peak} (plan {arm['plan_peak_gib']:.1f})  first loss {arm['losses'][0]:.4f}")


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    import peft
    import torch
    import transformers

    from wikitune.train.loss import liger_loss
    from wikitune.train.plan import visible_gpu_memory_gib

    cuda = torch.cuda.is_available() and not args.tiny
    if not cuda and not args.tiny:
        raise SystemExit("no CUDA GPU: run with --tiny to check the script on CPU")
    device = torch.device("cuda" if cuda else "cpu")
    dtype = torch.bfloat16 if cuda else torch.float32
    config = load_gpt_oss_config(args)
    gpu_gib = args.gpu_memory_gib if args.gpu_memory_gib is not None else (visible_gpu_memory_gib() if cuda else None)
    gen = torch.Generator(device="cpu").manual_seed(0)
    batches = [torch.randint(0, config.vocab_size, (args.batch, args.seq), generator=gen)
               for _ in range(args.warmup + args.steps)]

    _, active = model_flops_per_token(config, args.seq)
    result = {
        "device": torch.cuda.get_device_name() if cuda else "cpu (tiny config)",
        "config": "tiny" if args.tiny else str(args.config), "dtype": str(dtype).removeprefix("torch."),
        "seq": args.seq, "batch": args.batch, "steps": args.steps, "warmup": args.warmup, "lora": args.lora,
        "rank": args.rank, "gradient_checkpointing": args.gradient_checkpointing, "gpu_memory_gib": gpu_gib,
        "peak_tflops": args.peak_tflops, "active_params": active,
        "chunked_loss_kernel": "liger" if cuda and liger_loss(-100) is not None else "torch chunks",
        "versions": {"torch": torch.__version__, "transformers": transformers.__version__, "peft": peft.__version__},
        "baseline": None, "arms": [],
    }
    for arm in args.arms:
        result["arms"].append(run_arm(arm, config, args, device, dtype, gpu_gib, batches))
        print(format_arm(result["arms"][-1]), flush=True)
        result["baseline"] = compare(result["arms"])
        if args.json:  # after every arm: a run cut short by its time limit still leaves what it measured
            args.json.write_text(json.dumps(result, indent=2))
    print(f"\nvs baseline {result['baseline']}:\n" + "\n".join(format_arm(a) for a in result["arms"]))
    return result


if __name__ == "__main__":
    main()
