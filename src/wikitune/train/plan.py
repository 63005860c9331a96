"""What a training run will cost before it loads anything: `wikitune cpt|sft --plan`.

    wikitune cpt --config configs/gpt-oss-20b/cpt.yaml model=../shared/data/gpt-oss --plan
    wikitune cpt --config configs/gpt-oss-20b/cpt.yaml --plan --json --gpu-memory-gib 80

From the model's `config.json` alone (no weights): parameters (total, active per token, trainable
by kind), tokens per optimizer step, steps per epoch, and an estimate of peak GPU memory by part.
A run whose estimate exceeds the GPU is stopped by `check_fits` before its weights load.

The memory figures are an estimate of what PyTorch allocates on a CUDA GPU, not a measurement:
every part states what it counts, and the constants (elements kept per token, transient copies)
follow transformers' gpt-oss code path, PEFT's `target_parameters` wrapper (transformers 5.24 /
peft 0.21), wikitune's low-rank expert LoRA (`train/expert_lora.py`, `lora.expert_impl`) and its
flex attention (`gptoss/attention.py`, `attn_implementation: wikitune_flex`).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from wikitune.errors import WikituneError
from wikitune.gptoss.attention import ATTENTION as FLEX
from wikitune.gptoss.model import O200K_FILE, O200K_HARMONY_VOCAB, TINY, load_tokenizer
from wikitune.train.data import Source, load_source, parse_sources, read_training_qa
from wikitune.train.lora import LoraSettings
from wikitune.train.runtime import TrainSettings

GIB = 2**30
DEFAULT_GPU_GIB = 80.0
"""GPU memory assumed when none is visible and `--gpu-memory-gib` is not given (an H100)."""
LOSS_CHUNK_TOKENS = 1024
"""Tokens whose vocabulary logits the chunked loss holds at a time (`wikitune.train.loss`)."""
CUDA_CONTEXT_BYTES = GIB
"""CUDA context, cuBLAS workspaces and allocator slack: about 1 GiB on a Hopper GPU."""
SAMPLE_CHARS = 1_000_000
"""Characters of the corpus tokenized to measure characters per token (the rest is extrapolated)."""
ATTENTION_LINEARS = ("q_proj", "k_proj", "v_proj", "o_proj")
EAGER_TRANSIENT_SCORES = 3
"""Score-sized tensors eager attention holds besides the saved probabilities while a layer runs:
the scaled scores, their concatenation with the sinks, and the gradient in backward."""
EAGER_MASKS = 2
"""Additive batch x 1 x seq x seq masks eager attention gets, one per gpt-oss layer kind (sliding
and full), built once per forward and alive until its backward ends."""
FLEX_BYTES_PER_HEAD = 4 + 4 + 2
"""What `wikitune_flex` keeps per token and head besides its output: flex's fp32 log-sum-exp, the
fp32 sink factor sigmoid(lse - sink) and its weights-dtype copy that scales the output."""
LOWRANK_TRANSIENT_OUTPUTS = 2
"""Routed-rows x out tensors the low-rank expert LoRA holds besides the base projection while a
projection runs: (x·A)·B and its scaled copy in forward, the scaled gradient in backward."""
PLAIN_LOSS_FP32_COPIES = 3
"""fp32 vocabulary tensors of transformers' loss: the upcast logits, log-softmax (saved), and the
gradient in backward."""


@dataclass
class ModelSizes:
    """The sizes of a gpt-oss model that decide its parameters and memory (from config.json)."""

    vocab_size: int
    hidden_size: int
    intermediate_size: int
    num_hidden_layers: int
    num_attention_heads: int
    num_key_value_heads: int
    head_dim: int
    num_local_experts: int
    num_experts_per_tok: int
    attention_bias: bool = True
    tie_word_embeddings: bool = False

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> "ModelSizes":
        """From a config.json mapping; `head_dim` defaults to hidden / heads as in transformers."""
        try:
            heads = int(config["num_attention_heads"])
            return cls(
                vocab_size=int(config["vocab_size"]), hidden_size=int(config["hidden_size"]),
                intermediate_size=int(config["intermediate_size"]), num_hidden_layers=int(config["num_hidden_layers"]),
                num_attention_heads=heads, num_key_value_heads=int(config.get("num_key_value_heads", heads)),
                head_dim=int(config.get("head_dim") or int(config["hidden_size"]) // heads),
                num_local_experts=int(config["num_local_experts"]),
                num_experts_per_tok=int(config.get("num_experts_per_tok", config.get("experts_per_token", 1))),
                attention_bias=bool(config.get("attention_bias", True)),
                tie_word_embeddings=bool(config.get("tie_word_embeddings", False)),
            )
        except (KeyError, TypeError, ValueError) as err:
            raise WikituneError(f"config.json lacks a gpt-oss size ({err}); --plan needs a gpt-oss config") from err


def model_sizes(cfg: TrainSettings) -> ModelSizes:
    """The sizes of `cfg.model`: the tiny sizes for tiny-gpt-oss, else the model's config.json
    (a local directory, or a Hugging Face id already in the local cache).

    Raises:
        WikituneError: no config.json to read.
    """
    if cfg.model == TINY:
        tiny = {k: v for k, v in vars(cfg.tiny).items() if k not in ("sliding_window", "max_position_embeddings", "seed")}
        return ModelSizes(vocab_size=_tiny_vocab(cfg), **tiny)
    path = Path(cfg.model) / "config.json"
    if not path.is_file():
        path = _cached_config(cfg.model)
    try:
        return ModelSizes.from_config(json.loads(path.read_text(encoding="utf-8")))
    except (OSError, json.JSONDecodeError) as err:
        raise WikituneError(f"cannot read {path}: {err}") from err


def _tiny_vocab(cfg: TrainSettings) -> int:
    """tiny-gpt-oss's vocabulary: the gpt-oss one when its tokenizer is given, else the BPE's size."""
    if cfg.tokenizer is not None and (Path(cfg.tokenizer) / O200K_FILE).is_file() \
            and not (Path(cfg.tokenizer) / "tokenizer.json").is_file():
        return O200K_HARMONY_VOCAB
    if cfg.tokenizer is not None and (Path(cfg.tokenizer) / "tokenizer.json").is_file():
        vocab = json.loads((Path(cfg.tokenizer) / "tokenizer.json").read_text(encoding="utf-8"))
        return len(vocab["model"]["vocab"]) + sum(1 for t in vocab.get("added_tokens", []) if t["id"] >= len(vocab["model"]["vocab"]))
    return cfg.tokenizer_vocab_size


def _cached_config(model: str) -> Path:
    if Path(model).exists() or model.startswith((".", "/")):
        raise WikituneError(f"{model} holds no config.json: give model= a directory with the model's config.json")
    from huggingface_hub import try_to_load_from_cache

    found = try_to_load_from_cache(model, "config.json")
    if not isinstance(found, str):
        raise WikituneError(f"the config.json of {model} is not in the local Hugging Face cache; give model= a "
                            "directory holding it (e.g. ../shared/data/gpt-oss)")
    return Path(found)


# ---- parameters -------------------------------------------------------------------------------


def linear_shapes(s: ModelSizes) -> dict[str, tuple[int, int]]:
    """(in, out) features of the per-layer attention Linears, and of lm_head."""
    q, kv = s.num_attention_heads * s.head_dim, s.num_key_value_heads * s.head_dim
    return {"q_proj": (s.hidden_size, q), "k_proj": (s.hidden_size, kv), "v_proj": (s.hidden_size, kv),
            "o_proj": (q, s.hidden_size), "lm_head": (s.hidden_size, s.vocab_size)}


def expert_shapes(s: ModelSizes) -> dict[str, tuple[int, int]]:
    """(in, out) features of one expert's fused projections (per layer there are `num_local_experts`)."""
    return {"gate_up_proj": (s.hidden_size, 2 * s.intermediate_size), "down_proj": (s.intermediate_size, s.hidden_size)}


def count_parameters(s: ModelSizes) -> dict[str, int]:
    """Parameters of the base model: total, experts (all), and active per token.

    `active` counts what a token is multiplied by: everything but the input embedding table (a
    lookup) and the experts the router does not pick; for gpt-oss-20b it is the model card's 3.6B.
    """
    h, e, bias = s.hidden_size, s.num_local_experts, s.attention_bias
    attn = sum(i * o + (o if bias else 0) for name, (i, o) in linear_shapes(s).items() if name != "lm_head")
    attn += s.num_attention_heads  # the sinks
    experts = sum(e * (i * o + o) for i, o in expert_shapes(s).values())
    router = h * e + e
    layer = attn + experts + router + 2 * h  # two RMSNorms
    embed = s.vocab_size * h
    lm_head = 0 if s.tie_word_embeddings else s.vocab_size * h
    total = embed + lm_head + s.num_hidden_layers * layer + h
    all_experts = s.num_hidden_layers * experts
    unused = all_experts - all_experts * s.num_experts_per_tok // e
    return {"total": total, "experts": all_experts, "active": total - unused - embed}


def count_trainable(s: ModelSizes, lora: LoraSettings) -> dict[str, int]:
    """Trainable parameters PEFT creates for `lora` on a model of sizes `s`, by kind.

    A Linear target gets A (r x in) and B (out x r); a fused expert parameter gets A (experts*r x in)
    and B (out x experts*r); a module in `modules_to_save` is copied and trained in full.

    Raises:
        WikituneError: a target this estimate does not know (it would not match gpt-oss either).
    """
    r, n = lora.r, s.num_hidden_layers
    linears, experts = linear_shapes(s), expert_shapes(s)
    kinds = {"attention": 0, "experts": 0, "other": 0, "modules_to_save": 0}
    for target in lora.target_modules:
        if target not in linears:
            raise WikituneError(f"--plan knows the Linear targets {', '.join(linears)}, not {target!r}")
        i, o = linears[target]
        kinds["attention" if target in ATTENTION_LINEARS else "other"] += r * (i + o) * (1 if target == "lm_head" else n)
    for target in lora.target_parameters:
        name = target.split(".")[-1]
        if name not in experts:
            raise WikituneError(f"--plan knows the parameter targets {', '.join(experts)}, not {target!r}")
        i, o = experts[name]
        kinds["experts"] += n * s.num_local_experts * r * (i + o)
    full = {"embed_tokens": s.vocab_size * s.hidden_size, "lm_head": s.vocab_size * s.hidden_size,
            "router": n * (s.hidden_size * s.num_local_experts + s.num_local_experts)}
    for module in lora.modules_to_save:
        if module not in full:
            raise WikituneError(f"--plan knows modules_to_save {', '.join(full)}, not {module!r}")
        kinds["modules_to_save"] += full[module]
    return {k: v for k, v in kinds.items() if v or k in ("attention", "experts")}


# ---- memory -----------------------------------------------------------------------------------


def dtype_bytes(dtype: str) -> int:
    """Bytes per weight element on a GPU: `auto` is bf16 there."""
    return 4 if dtype in ("float32", "fp32") else 2


def optimizer_bytes_per_param(optim: str) -> int:
    """Optimizer state per trainable parameter: AdamW keeps two moments, 1 byte each in 8-bit."""
    if "8bit" in optim:
        return 2
    if optim.startswith("sgd"):
        return 0
    return 8


def eager_attention(attn_implementation: str | None) -> bool:
    """Whether the attention materialises batch x heads x seq x seq scores: eager does, and
    transformers falls back to it for gpt-oss when none is named (SDPA does not take sinks)."""
    return attn_implementation in (None, "", "eager")


def attention_bytes(s: ModelSizes, cfg: TrainSettings, seq_len: int, kept_layers: int) -> int:
    """What the attention kernel itself keeps and holds, beyond q/k/v and the output `activations`
    counts, for `kept_layers` layers whose backward state is alive at the peak.

    eager: the probabilities (batch x heads x seq x seq+1 with the sink) kept per layer, plus
    `EAGER_TRANSIENT_SCORES` of the same size while a layer runs, plus `EAGER_MASKS`.
    wikitune_flex (CUDA: one compiled flex kernel, no scores): per layer flex's output, kept by
    the sink renormalisation `output * sigmoid(lse - sink)`, and `FLEX_BYTES_PER_HEAD` per token
    and head. (Its CPU training path computes dense fp32 scores: this is a GPU estimate.)
    Any other kernel (flash-attention style, e.g. kernels-community/vllm-flash-attn3, which takes
    the sinks itself): its fp32 log-sum-exp per token and head.
    """
    a = dtype_bytes(cfg.dtype)
    tokens, heads = cfg.batch_size * seq_len, s.num_attention_heads
    if eager_attention(cfg.attn_implementation):
        scores = cfg.batch_size * heads * seq_len * (seq_len + 1) * a
        return (kept_layers + EAGER_TRANSIENT_SCORES) * scores + EAGER_MASKS * cfg.batch_size * seq_len * seq_len * a
    if cfg.attn_implementation == FLEX:
        return kept_layers * tokens * (heads * s.head_dim * a + heads * FLEX_BYTES_PER_HEAD)
    return kept_layers * tokens * heads * 4


def expert_lora_bytes(s: ModelSizes, cfg: TrainSettings, tokens: int, kept_layers: int) -> int:
    """What LoRA on the fused expert parameters costs beyond the experts' own activations.

    peft (`ParamWrapper`): W + BA, every expert of a targeted parameter, built in the weights dtype
    at each forward and kept for backward, per layer whose backward state is alive, plus its
    gradient while that layer runs backward: `(kept_layers + 1)` x experts x in x out.
    lowrank (`train/expert_lora.py`): per routed token (tokens x experts_per_tok rows) and
    targeted parameter the r-wide x·A that backward needs, per kept layer, plus
    `LOWRANK_TRANSIENT_OUTPUTS` rows x out tensors of the widest projection while it runs.
    """
    a = dtype_bytes(cfg.dtype)
    shapes = [shape for name, shape in expert_shapes(s).items()
              if any(t.split(".")[-1] == name for t in cfg.lora.target_parameters)]
    if not shapes:
        return 0
    if cfg.lora.expert_impl == "peft":
        return (kept_layers + 1) * sum(s.num_local_experts * i * o * a for i, o in shapes)
    rows = tokens * s.num_experts_per_tok
    return (kept_layers * rows * cfg.lora.r * len(shapes) * a
            + LOWRANK_TRANSIENT_OUTPUTS * rows * max(o for _, o in shapes) * a)


def estimate_memory(s: ModelSizes, cfg: TrainSettings, seq_len: int, *, loss: str = "plain") -> dict[str, int]:
    """Peak GPU memory of one training micro-batch, in bytes, by part.

    Parts (a = bytes of a bf16/weights-dtype activation element, tokens = batch_size x seq_len):
        weights: every base parameter at the weights dtype.
        trainable: LoRA and modules_to_save in fp32 (PEFT upcasts adapters), their gradients,
            and the optimizer state (`optimizer_bytes_per_param`).
        activations: what backward keeps per token and layer (residual, norms, q/k/v before and
            after RoPE, attention output, router, and per routed expert its input, gate_up output
            and the SwiGLU intermediates, plus LoRA dropout copies of the input); with gradient
            checkpointing only each layer's input is kept, and one layer's activations are
            recomputed at a time.
        expert_lora: by `lora.expert_impl` (`expert_lora_bytes`): peft's materialised W + BA,
            or the low-rank path's per-token activations.
        logits_loss: plain: the weights-dtype logits of every token, the fp32 upcast, its
            log-softmax and the gradient (`PLAIN_LOSS_FP32_COPIES`); chunked: the same for
            `LOSS_CHUNK_TOKENS` tokens at a time.
        attention: by `attn_implementation` (`attention_bytes`): eager's score tensors, or
            what a flex/flash kernel keeps instead.
        cuda_context: `CUDA_CONTEXT_BYTES`.
    """
    a = dtype_bytes(cfg.dtype)
    h, n, k = s.hidden_size, s.num_hidden_layers, s.num_experts_per_tok
    q, kv, inter = s.num_attention_heads * s.head_dim, s.num_key_value_heads * s.head_dim, s.intermediate_size
    tokens = cfg.batch_size * seq_len
    lora = cfg.lora
    trainable = sum(count_trainable(s, lora).values())

    attn_elems = 4 * h + 3 * q + 4 * kv
    mlp_elems = 4 * h + s.num_local_experts + k * (2 * h + 7 * inter)
    if lora.dropout > 0:  # each LoRA'd Linear drops out its own copy of its input
        attn_elems += sum(linear_shapes(s)[t][0] for t in lora.target_modules if t in ATTENTION_LINEARS)
    per_layer = tokens * (attn_elems + mlp_elems) * a
    if cfg.gradient_checkpointing:
        activations = n * tokens * h * a + per_layer
    else:
        activations = n * per_layer
    kept_layers = 1 if cfg.gradient_checkpointing else n

    loss_tokens = min(tokens, LOSS_CHUNK_TOKENS) if loss == "chunked" else tokens
    logits_loss = loss_tokens * s.vocab_size * (a + PLAIN_LOSS_FP32_COPIES * 4)

    return {
        "weights": count_parameters(s)["total"] * a,
        "trainable": trainable * (4 + 4 + optimizer_bytes_per_param(cfg.optim)),
        "activations": activations,
        "expert_lora": expert_lora_bytes(s, cfg, tokens, kept_layers),
        "logits_loss": logits_loss,
        "attention": attention_bytes(s, cfg, seq_len, kept_layers),
        "cuda_context": CUDA_CONTEXT_BYTES,
    }


def logits_fp32_bytes(s: ModelSizes, batch_size: int, seq_len: int) -> int:
    """Bytes of the full-vocabulary fp32 logits of a micro-batch (what the plain loss upcasts)."""
    return batch_size * seq_len * s.vocab_size * 4


def visible_gpu_memory_gib() -> float | None:
    """Memory of the visible CUDA GPU in GiB, or None without one (torch is imported only when
    it already is, or to ask: a CPU-only check does not need CUDA)."""
    import torch

    if not torch.cuda.is_available():
        return None
    return torch.cuda.get_device_properties(torch.cuda.current_device()).total_memory / GIB


# ---- the plan ---------------------------------------------------------------------------------


def seq_len_of(cfg: TrainSettings) -> int:
    """Tokens per training row: CPT's block_size, SFT's max_length (the longest a padded batch gets)."""
    for name in ("block_size", "max_length"):
        if hasattr(cfg, name):
            return int(getattr(cfg, name))
    raise WikituneError(f"{type(cfg).__name__} has neither block_size nor max_length")


def loss_of(cfg: TrainSettings) -> str:
    """The loss setting of `cfg` (`plain` where the config predates it)."""
    return getattr(cfg, "loss", "plain")


def peak_bytes(parts: dict[str, int]) -> int:
    return sum(parts.values())


def make_plan(cfg: TrainSettings, *, gpu_memory_gib: float | None = None, corpus_tokens: int | None = None,
              count_corpus: bool = True) -> dict[str, Any]:
    """Everything `--plan` reports for the run `cfg` would be (see the module docstring).

    Args:
        cfg: a CPTConfig or SFTConfig.
        gpu_memory_gib: the GPU to check against; None: the visible one, else `DEFAULT_GPU_GIB`.
        corpus_tokens: training tokens per epoch; None: counted or estimated from the data.
        count_corpus: read the data to count (False: leave steps per epoch out).
    """
    sizes = model_sizes(cfg)
    seq = seq_len_of(cfg)
    params = count_parameters(sizes)
    trainable = count_trainable(sizes, cfg.lora)
    parts = estimate_memory(sizes, cfg, seq, loss=loss_of(cfg))
    if gpu_memory_gib is None:
        visible = visible_gpu_memory_gib()
        gpu_source = "visible GPU" if visible is not None else f"default (no GPU visible: {DEFAULT_GPU_GIB:g} GiB)"
        gpu_memory_gib = visible if visible is not None else DEFAULT_GPU_GIB
    else:
        gpu_source = "--gpu-memory-gib"
    tokens_per_step = seq * cfg.batch_size * cfg.grad_accum
    data: dict[str, Any] = {"corpus_tokens": corpus_tokens, "corpus_tokens_source": "--corpus-tokens" if corpus_tokens else None}
    if corpus_tokens is None and count_corpus:
        try:
            data = count_training_data(cfg)
        except WikituneError as err:  # a plan is worth having before the data exists
            data = {"corpus_tokens": None, "corpus_tokens_source": f"not counted: {err}"}
    steps = None
    if data.get("corpus_tokens"):
        steps = max(1, math.ceil(data["corpus_tokens"] // seq / (cfg.batch_size * cfg.grad_accum))) \
            if hasattr(cfg, "block_size") else max(1, math.ceil(data["corpus_tokens"] / tokens_per_step))
    elif data.get("rows"):
        steps = math.ceil(data["rows"] / (cfg.batch_size * cfg.grad_accum))
    peak = peak_bytes(parts)
    plan = {
        "model": cfg.model, "sizes": vars(sizes),
        "total_params": params["total"], "active_params": params["active"], "expert_params": params["experts"],
        "trainable_params": sum(trainable.values()), "trainable_by_kind": trainable,
        "seq_len": seq, "batch_size": cfg.batch_size, "grad_accum": cfg.grad_accum,
        "tokens_per_step": tokens_per_step,
        **data, "steps_per_epoch": steps,
        "epochs": cfg.epochs, "max_steps": cfg.max_steps,
        "settings": {"dtype": cfg.dtype, "optim": cfg.optim, "gradient_checkpointing": cfg.gradient_checkpointing,
                     "attn_implementation": cfg.attn_implementation, "loss": loss_of(cfg),
                     "expert_impl": cfg.lora.expert_impl},
        "logits_fp32_bytes": logits_fp32_bytes(sizes, cfg.batch_size, seq),
        "memory_bytes": parts,
        "memory_gib": {k: round(v / GIB, 2) for k, v in parts.items()},
        "peak_memory_gib": round(peak / GIB, 2),
        "gpu_memory_gib": round(gpu_memory_gib, 2), "gpu_memory_source": gpu_source,
        "fits": peak <= gpu_memory_gib * GIB,
    }
    if not plan["fits"]:
        plan["advice"] = advice(cfg, sizes, gpu_memory_gib)
    return plan


def count_training_data(cfg: TrainSettings) -> dict[str, Any]:
    """Training tokens per epoch of a CPT corpus or mixture (with the run's tokenizer when it can be
    loaded without training one, on a sample, else estimated from characters and said so), or
    the training rows of an SFT QA set."""
    if hasattr(cfg, "qa"):
        return {"rows": len(read_training_qa(cfg.qa, cfg.qa_split)), "corpus_tokens": None,
                "corpus_tokens_source": "SFT: steps from the number of QA pairs"}
    sources = parse_sources(cfg.data, cfg.order) if cfg.data else [Source("corpus", cfg.corpus)]
    texts = [t for source in sources for t in load_source(source, cfg.heldout_fraction, cfg.text_field).raw_texts()]
    chars = sum(len(t) for t in texts)
    tokenizer = _cheap_tokenizer(cfg)
    if tokenizer is None:
        return {"corpus_tokens": chars, "corpus_characters": chars,
                "corpus_tokens_source": "estimated from characters at 1 token per character (no tokenizer to count "
                                        "with: tiny-gpt-oss trains its BPE at run time); give --corpus-tokens"}
    sample, taken = [], 0
    for text in texts:
        if taken >= SAMPLE_CHARS:
            break
        sample.append(text)
        taken += len(text)
    counted = sum(len(ids) + 1 for ids in tokenizer(sample, add_special_tokens=False)["input_ids"])
    tokens = round(counted * chars / max(taken, 1))
    how = "counted" if taken >= chars else f"counted on {taken:,} of {chars:,} characters and extrapolated"
    return {"corpus_tokens": tokens, "corpus_characters": chars, "corpus_tokens_source": f"{how} with the run's tokenizer"}


def _cheap_tokenizer(cfg: TrainSettings) -> Any:
    """The run's tokenizer when it is on disk (none for tiny-gpt-oss without `tokenizer`, whose BPE
    is trained at run time)."""
    spec = cfg.tokenizer or (cfg.model if cfg.model != TINY and Path(cfg.model).is_dir() else None)
    if spec is None:
        return None
    path = Path(spec)
    if not ((path / "tokenizer.json").is_file() or (path / O200K_FILE).is_file()):
        return None
    return load_tokenizer(path)


def advice(cfg: TrainSettings, sizes: ModelSizes, gpu_memory_gib: float) -> str:
    """The first change that makes the estimate fit, as `setting=value` a user can pass: one
    memory-saving setting alone, then all of them, then all of them with a smaller batch (same
    sequences per optimizer step) or shorter rows."""
    from dataclasses import replace

    limit = gpu_memory_gib * GIB
    seq = seq_len_of(cfg)
    loss = loss_of(cfg)
    # each saving as (what to tell the user, the config and loss with it)
    savings: list[tuple[str, dict[str, Any], str | None]] = []
    if not cfg.gradient_checkpointing:
        savings.append(("gradient_checkpointing=true", {"gradient_checkpointing": True}, None))
    if loss != "chunked":
        savings.append(("loss=chunked", {}, "chunked"))
    if eager_attention(cfg.attn_implementation):
        savings.append((f"attn_implementation={FLEX}", {"attn_implementation": FLEX}, None))
    if cfg.lora.expert_impl != "lowrank" and cfg.lora.target_parameters:
        savings.append(("lora.expert_impl=lowrank", {"lora": replace(cfg.lora, expert_impl="lowrank")}, None))

    def fits(changes: dict[str, Any], with_loss: str, length: int = seq) -> bool:
        return peak_bytes(estimate_memory(sizes, replace(cfg, **changes), length, loss=with_loss)) <= limit

    for label, changes, with_loss in savings:
        if fits(changes, with_loss or loss):
            return f"set {label}"
    every = {k: v for _, changes, _ in savings for k, v in changes.items()}  # and the chunked loss
    settings = " ".join(label for label, _, _ in savings)
    if len(savings) > 1 and fits(every, "chunked"):
        return f"set {settings}"
    also = f" with {settings}" if settings else ""
    for batch in range(cfg.batch_size - 1, 0, -1):
        if fits({**every, "batch_size": batch}, "chunked"):
            accum = math.ceil(cfg.batch_size * cfg.grad_accum / batch)
            return f"set batch_size={batch} grad_accum={accum} (same sequences per step){also}"
    name = "block_size" if hasattr(cfg, "block_size") else "max_length"
    length = seq // 2
    while length >= 2:
        if fits({**every, "batch_size": 1}, "chunked", length):
            return f"set {name}={length} batch_size=1{also}"
        length //= 2
    return "the weights alone exceed this GPU: use a larger GPU or several (FSDP)"


def check_fits(cfg: TrainSettings, gpu_memory_gib: float | None) -> None:
    """Stop a run whose memory estimate exceeds the GPU, before any weight loads.

    Checked only on a CUDA GPU or when `gpu_memory_gib` is given; on CPU without it, nothing.

    Raises:
        WikituneError: the estimate exceeds the GPU; the message names the setting to change.
    """
    if gpu_memory_gib is None and visible_gpu_memory_gib() is None:
        return
    plan = make_plan(cfg, gpu_memory_gib=gpu_memory_gib, count_corpus=False)
    if not plan["fits"]:
        worst = max(plan["memory_gib"].items(), key=lambda kv: kv[1])
        raise WikituneError(
            f"estimated peak GPU memory {plan['peak_memory_gib']:.1f} GiB exceeds the GPU's {plan['gpu_memory_gib']:.1f} GiB "
            f"(largest part: {worst[0]} {worst[1]:.1f} GiB): {plan['advice']} (see --plan)")


def format_plan(plan: dict[str, Any]) -> str:
    """The plan as text, one fact per line, memory by part."""
    kinds = ", ".join(f"{k} {v:,}" for k, v in plan["trainable_by_kind"].items())
    steps = f"{plan['steps_per_epoch']:,}" if plan["steps_per_epoch"] else "unknown (give --corpus-tokens)"
    lines = [
        f"model {plan['model']}: {plan['total_params']:,} parameters, {plan['active_params']:,} active per token",
        f"trainable {plan['trainable_params']:,} ({kinds})",
        f"tokens per optimizer step {plan['tokens_per_step']:,} ({plan['batch_size']} x {plan['seq_len']} x grad_accum "
        f"{plan['grad_accum']})",
    ]
    if plan.get("corpus_tokens"):
        lines.append(f"corpus {plan['corpus_tokens']:,} tokens per epoch ({plan['corpus_tokens_source']})")
    elif plan.get("rows"):
        lines.append(f"{plan['rows']:,} training rows ({plan['corpus_tokens_source']})")
    elif plan.get("corpus_tokens_source"):
        lines.append(f"corpus {plan['corpus_tokens_source']}")
    lines.append(f"steps per epoch {steps}")
    lines.append("peak GPU memory estimate by part (GiB):")
    for part, gib in plan["memory_gib"].items():
        lines.append(f"  {part:20} {gib:8.2f}")
    verdict = "fits" if plan["fits"] else f"does NOT fit: {plan['advice']}"
    lines.append(f"  {'total':20} {plan['peak_memory_gib']:8.2f} of {plan['gpu_memory_gib']:.2f} GiB "
                 f"({plan['gpu_memory_source']}): {verdict}")
    return "\n".join(lines)
