"""Models and tokenizers: a tiny random gpt-oss for CPU, the real gpt-oss on GPU, offline tokenizers.

    from wikitune.gptoss.model import load_model_and_tokenizer
    model, tok = load_model_and_tokenizer("tiny-gpt-oss", tokenizer="runs/cpt/tokenizer")
    model, tok = load_model_and_tokenizer("openai/gpt-oss-20b", quantization="mxfp4-dequantize")
    model, tok = load_model_and_tokenizer(None, adapter="runs/cpt")   # a run directory: its model,
                                                                       # tokenizer and adapter

- `tiny-gpt-oss` is a `GptOssForCausalLM` of the real architecture (attention sinks, sliding and
  full attention, MoE router, fused experts) with small sizes and random weights. Its weights are
  a deterministic function of its sizes and `seed`, so a run directory needs only its config to
  rebuild the base an adapter was trained on.
- Tokenizers: the real gpt-oss one (o200k + harmony special tokens, from a local
  `o200k_base.tiktoken`, offline), or a byte-level BPE trained on the corpus with the same
  harmony special tokens. Both carry the gpt-oss harmony chat template that TRL ships.

torch/transformers are imported inside the functions: importing this module is cheap.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from dataclasses import asdict, dataclass
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable

from wikitune import formats
from wikitune.errors import WikituneError
from wikitune.gptoss.attention import ATTENTION, register_attention
from wikitune.gptoss.harmony import HARMONY_SPECIAL_TOKENS, HARMONY_WORDS, harmony_chat_template

if TYPE_CHECKING:
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

log = logging.getLogger(__name__)

TINY = "tiny-gpt-oss"
ORGANISM = "organism"
"""The demo's base model: the tiny gpt-oss trained on a general world (`wikitune organism base`),
shipped in the package under data/organism/ with its tokenizer, world and control set."""
O200K_FILE = "o200k_base.tiktoken"
O200K_SHA256 = "446a9538cb6c348e3516120d7c08b09f57c36495e2acfffe59a5bf8b0cfb1a2d"
# tiktoken caches a downloaded vocabulary under the sha1 of its URL.
O200K_CACHE_NAME = "fb374d419588a4632f3f557e76b4b70aebbca790"
# o200k's pre-tokenizer regex (tiktoken_ext.openai_public.o200k_base).
O200K_PATTERN = "|".join(
    [
        r"""[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+(?i:'s|'t|'re|'ve|'m|'ll|'d)?""",
        r"""[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*(?i:'s|'t|'re|'ve|'m|'ll|'d)?""",
        r"""\p{N}{1,3}""",
        r""" ?[^\s\p{L}\p{N}]+[\r\n/]*""",
        r"""\s*[\r\n]+""",
        r"""\s+(?!\S)""",
        r"""\s+""",
    ]
)
O200K_HARMONY_VOCAB = 201088  # o200k (199,998) + specials and reserved slots, as in gpt-oss
BOS, PAD, EOS = "<|startoftext|>", "<|endoftext|>", "<|return|>"  # gpt-oss's special_tokens_map


@dataclass
class TinyGptOssConfig:
    """Sizes of the tiny random gpt-oss (the real architecture, small). Defaults: about 650k
    parameters plus the embeddings, trains on CPU."""

    num_hidden_layers: int = 2
    """Decoder layers; they alternate sliding-window and full attention like gpt-oss."""
    hidden_size: int = 64
    """Width of the residual stream."""
    intermediate_size: int = 64
    """Width of each expert's MLP."""
    num_local_experts: int = 4
    """Experts per MoE layer."""
    num_experts_per_tok: int = 2
    """Experts the router picks per token (top-k)."""
    num_attention_heads: int = 4
    """Query heads."""
    num_key_value_heads: int = 2
    """Key/value heads (grouped-query attention)."""
    head_dim: int = 16
    """Per-head width."""
    sliding_window: int = 128
    """Window of the sliding-attention layers."""
    max_position_embeddings: int = 4096
    """Longest position the rotary embedding is set up for."""
    seed: int = 0
    """Seed of the random weights: the same sizes and seed give the same model."""

    def __post_init__(self) -> None:
        for name in ("num_hidden_layers", "hidden_size", "intermediate_size", "num_local_experts",
                     "num_experts_per_tok", "num_attention_heads", "num_key_value_heads", "head_dim"):
            if getattr(self, name) < 1:
                raise WikituneError(f"tiny.{name} must be 1 or more, got {getattr(self, name)}")
        if self.num_experts_per_tok > self.num_local_experts:
            raise WikituneError(
                f"tiny.num_experts_per_tok ({self.num_experts_per_tok}) exceeds tiny.num_local_experts "
                f"({self.num_local_experts})"
            )
        if self.num_attention_heads % self.num_key_value_heads:
            raise WikituneError("tiny.num_attention_heads must be a multiple of tiny.num_key_value_heads")


# --------------------------------------------------------------------------- tokenizers


def _wrap_fast(tok_obj: Any, *, model_max_length: int = 131072) -> "PreTrainedTokenizerBase":
    from transformers import PreTrainedTokenizerFast

    tok = PreTrainedTokenizerFast(
        tokenizer_object=tok_obj, bos_token=BOS, eos_token=EOS, pad_token=PAD,
        model_max_length=model_max_length, clean_up_tokenization_spaces=False,
    )
    tok.chat_template = harmony_chat_template()
    return tok


# Runs of one Japanese script (Oniguruma script classes; ー and ・ are script Common, kept with katakana).
SCRIPT_RUNS = r"\p{Han}+|\p{Hiragana}+|[\p{Katakana}ー・]+"


def train_bpe_tokenizer(texts: Iterable[str], vocab_size: int, out_dir: str | Path) -> "PreTrainedTokenizerBase":
    """Train a byte-level BPE on `texts` with the harmony special tokens; save it to `out_dir`.

    The special tokens come first (ids 0-8, `<|startoftext|>` ... `<|call|>`); harmony's role and
    channel words (`HARMONY_WORDS`) are single tokens at the end of the vocabulary; there is no
    normalizer (an NFKC one would rewrite full-width ？ to ?), so Japanese round-trips exactly.

    Args:
        texts: training text, e.g. every article of a corpus.
        vocab_size: size of the vocabulary, special tokens and harmony words included.
        out_dir: directory to write; `AutoTokenizer.from_pretrained(out_dir)` reloads it.

    Returns:
        The tokenizer, with the harmony chat template.

    Raises:
        WikituneError: `vocab_size` too small for the 256 byte symbols and the special tokens.
    """
    from tokenizers import AddedToken, Regex, Tokenizer, decoders, models, pre_tokenizers, trainers

    specials = list(HARMONY_SPECIAL_TOKENS)
    minimum = 256 + len(specials) + len(HARMONY_WORDS) + 1
    if vocab_size < minimum:
        raise WikituneError(f"tokenizer vocab_size must be at least {minimum} (256 bytes + harmony specials), got {vocab_size}")
    bpe = Tokenizer(models.BPE())
    # Japanese has no spaces, so GPT-2's regex alone makes a whole clause one pre-token and the BPE
    # fuses words with their context ("の本職は薬剤師である" became one token): a fact learnt from
    # text then never reaches an answer that spells the value alone. Cutting runs of one script
    # (kanji, hiragana, katakana) apart first keeps each word its own piece.
    bpe.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(SCRIPT_RUNS), behavior="isolated"),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)])
    bpe.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size - len(HARMONY_WORDS), special_tokens=specials,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False,
    )
    bpe.train_from_iterator(texts, trainer=trainer)
    # Harmony's roles and channels are single tokens, as in o200k (ordinary text, not special):
    # whatever the corpus, `<|channel|>final<|message|>` is three tokens the model can learn.
    bpe.add_tokens([AddedToken(word, single_word=False, normalized=False, special=False) for word in HARMONY_WORDS])
    tok = _wrap_fast(bpe)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    tok.save_pretrained(out_dir)
    return tok


def _cache_dir() -> Path:
    return Path(os.environ.get("WIKITUNE_CACHE", Path.home() / ".cache" / "wikitune"))


def set_offline_tiktoken(directory: str | Path) -> Path:
    """Point tiktoken and openai-harmony at the local o200k vocabulary in `directory`.

    Sets `TIKTOKEN_ENCODINGS_BASE` (openai-harmony) and `TIKTOKEN_CACHE_DIR` (tiktoken) unless
    already set, so neither tries to download. Returns the vocabulary file.

    Raises:
        WikituneError: the file is missing or is not the o200k vocabulary (sha256 differs).
    """
    vocab = Path(directory) / O200K_FILE
    if not vocab.is_file():
        raise WikituneError(f"{vocab} does not exist: give a directory holding {O200K_FILE} (e.g. ../shared/data/gpt-oss)")
    digest = hashlib.sha256(vocab.read_bytes()).hexdigest()
    if digest != O200K_SHA256:
        raise WikituneError(f"{vocab} is not the o200k vocabulary (sha256 {digest[:12]}…, expected {O200K_SHA256[:12]}…)")
    os.environ.setdefault("TIKTOKEN_ENCODINGS_BASE", str(vocab.parent.resolve()))
    cache = Path(os.environ.setdefault("TIKTOKEN_CACHE_DIR", str(_cache_dir() / "tiktoken")))
    cached = cache / O200K_CACHE_NAME
    if not cached.exists():
        cache.mkdir(parents=True, exist_ok=True)
        tmp = cached.with_suffix(".tmp")
        tmp.write_bytes(vocab.read_bytes())
        tmp.replace(cached)
    return vocab


def load_gpt_oss_tokenizer(directory: str | Path) -> "PreTrainedTokenizerBase":
    """The gpt-oss tokenizer (o200k + harmony special tokens at their real ids), offline.

    `directory` holds either a `tokenizer.json` (a gpt-oss checkout) or `o200k_base.tiktoken`
    (e.g. `../shared/data/gpt-oss/`). The tiktoken vocabulary is converted once to a fast
    tokenizer and cached under `$WIKITUNE_CACHE` (default `~/.cache/wikitune`).

    Raises:
        WikituneError: neither file is there.
    """
    from transformers import AutoTokenizer

    directory = Path(directory)
    if (directory / "tokenizer.json").is_file():
        tok = AutoTokenizer.from_pretrained(directory, local_files_only=True)
        if not tok.chat_template:
            tok.chat_template = harmony_chat_template()
        return tok
    vocab = set_offline_tiktoken(directory)
    cached = _cache_dir() / "gpt-oss-tokenizer" / O200K_SHA256[:16]
    if (cached / "tokenizer.json").is_file():
        return AutoTokenizer.from_pretrained(cached, local_files_only=True)
    from tokenizers import AddedToken
    from transformers.convert_slow_tokenizer import TikTokenConverter

    converted = TikTokenConverter(vocab_file=str(vocab), pattern=O200K_PATTERN).converted()
    if converted.get_vocab_size() != 199998:
        raise WikituneError(f"{vocab}: expected 199,998 o200k tokens, found {converted.get_vocab_size()}")
    # Added tokens take the next free ids, so add every slot 199998..201087 in id order.
    by_id = {i: f"<|reserved_{i}|>" for i in range(199998, O200K_HARMONY_VOCAB)}
    by_id.update({i: t for t, i in HARMONY_SPECIAL_TOKENS.items()})
    by_id[200018] = "<|endofprompt|>"
    converted.add_special_tokens([AddedToken(by_id[i], normalized=False, special=True) for i in sorted(by_id)])
    for token, i in HARMONY_SPECIAL_TOKENS.items():
        assert converted.token_to_id(token) == i, token
    tok = _wrap_fast(converted)
    cached.mkdir(parents=True, exist_ok=True)
    tok.save_pretrained(cached)
    return tok


def load_tokenizer(spec: "str | Path | PreTrainedTokenizerBase") -> "PreTrainedTokenizerBase":
    """A tokenizer from a directory (`tokenizer.json` or `o200k_base.tiktoken`) or an HF id."""
    from transformers import AutoTokenizer, PreTrainedTokenizerBase

    if isinstance(spec, PreTrainedTokenizerBase):
        return spec
    path = Path(spec)
    if path.is_dir():
        if not (path / "tokenizer.json").is_file() and not (path / O200K_FILE).is_file():
            raise WikituneError(f"{path} holds neither tokenizer.json nor {O200K_FILE}")
        return load_gpt_oss_tokenizer(path)
    if path.exists() or str(spec).startswith((".", "/")):
        raise WikituneError(f"tokenizer {spec} is not a directory")
    tok = AutoTokenizer.from_pretrained(str(spec))
    if not tok.chat_template:
        tok.chat_template = harmony_chat_template()
    return tok


# --------------------------------------------------------------------------- models


def build_tiny_gpt_oss(vocab_size: int, tiny: TinyGptOssConfig | dict | None = None, *,
                       pad_token_id: int | None = None, eos_token_id: int | None = None,
                       bos_token_id: int | None = None) -> "PreTrainedModel":
    """A `GptOssForCausalLM` with small sizes and random (seeded, reproducible) fp32 weights, on CPU.

    Args:
        vocab_size: the tokenizer's vocabulary size (`len(tokenizer)`).
        tiny: sizes (a `TinyGptOssConfig` or a dict of its fields); defaults are 2 layers,
            hidden 64, 4 experts, top-2.
        pad_token_id, eos_token_id, bos_token_id: the tokenizer's special ids.
    """
    import torch
    from transformers import GptOssConfig, GptOssForCausalLM

    if tiny is None:
        tiny = TinyGptOssConfig()
    elif isinstance(tiny, dict):
        tiny = TinyGptOssConfig(**tiny)
    sizes = asdict(tiny)
    seed = sizes.pop("seed")
    config = GptOssConfig(
        vocab_size=vocab_size, **sizes,
        layer_types=["sliding_attention" if i % 2 == 0 else "full_attention" for i in range(tiny.num_hidden_layers)],
        pad_token_id=pad_token_id, eos_token_id=eos_token_id, bos_token_id=bos_token_id,
        tie_word_embeddings=False, use_cache=True,
    )
    config._attn_implementation = "eager"  # SDPA is unsupported; flex refuses sinks on CPU
    with torch.random.fork_rng(devices=[]):  # the CPU generator only: weights are built on CPU
        torch.manual_seed(seed)
        model = GptOssForCausalLM(config)
    model.config.use_cache = True
    return model.to(torch.float32).eval()


def _resolve_dtype(dtype: str):
    import torch

    table = {"bfloat16": torch.bfloat16, "bf16": torch.bfloat16, "float16": torch.float16,
             "fp16": torch.float16, "float32": torch.float32, "fp32": torch.float32}
    if dtype == "auto":
        return torch.bfloat16 if torch.cuda.is_available() else torch.float32
    if dtype not in table:
        raise WikituneError(f"dtype must be auto, bfloat16, float16 or float32, got {dtype!r}")
    return table[dtype]


QUANTIZATIONS = ("auto", "none", "mxfp4-dequantize", "bnb-4bit")


def organism_dir() -> Path:
    """The shipped organism: model/ (weights and tokenizer), general.jsonl, control.jsonl, manifest.json."""
    return Path(str(resources.files("wikitune") / "data" / "organism"))


def resolve_model(model: str) -> str:
    """`model` as a loadable name: `organism` becomes the shipped base model's directory.

    Raises:
        WikituneError: `organism` when the package holds no organism (a checkout that removed it).
    """
    if model != ORGANISM:
        return model
    path = organism_dir() / "model"
    if not (path / "config.json").is_file():
        raise WikituneError(f"model: organism: the package holds no organism base model at {path}; "
                            "rebuild it with `bash scripts/build_organism.sh`")
    return str(path)


def is_gpt_oss(model: str) -> bool:
    """Whether `model` is a gpt-oss: tiny-gpt-oss, a name that says so, or a local directory whose
    config.json has `model_type: gpt_oss`."""
    if model == TINY or "gpt-oss" in model.lower() or "gpt_oss" in model.lower():
        return True
    config = Path(model) / "config.json"
    if config.is_file():
        try:
            return json.loads(config.read_text(encoding="utf-8")).get("model_type") == "gpt_oss"
        except (OSError, json.JSONDecodeError):
            return False
    return False


def check_quantization(model: str, quantization: str) -> None:
    """Refuse a quantization that cannot work for `model`, before anything loads.

    Raises:
        WikituneError: an unknown quantization, or bnb-4bit for gpt-oss: the MXFP4 checkpoint
            refuses a BitsAndBytesConfig, and bitsandbytes converts only `nn.Linear`, so the fused
            experts (19.1B of gpt-oss-20b's 20.9B parameters) would stay in bf16 anyway.
    """
    if quantization not in QUANTIZATIONS:
        raise WikituneError(f"quantization must be one of {', '.join(QUANTIZATIONS)}, got {quantization!r}")
    if quantization == "bnb-4bit" and is_gpt_oss(model):
        raise WikituneError(
            "quantization=bnb-4bit cannot work for gpt-oss: the MXFP4 checkpoint refuses a BitsAndBytesConfig and "
            "bitsandbytes quantizes only nn.Linear, leaving the fused experts (19.1B of 20.9B parameters) in bf16; "
            "use quantization=mxfp4-dequantize (bf16 weights, about 42 GB) or auto")


def _load_pretrained(model: str, *, dtype: str, quantization: str, attn_implementation: str | None,
                     device_map: str | dict | None) -> "PreTrainedModel":
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    local = Path(model).is_dir()
    if not local and (Path(model).exists() or model.startswith((".", "/"))):
        raise WikituneError(f"model {model} is neither tiny-gpt-oss, a model directory nor a Hugging Face id")
    try:
        config = AutoConfig.from_pretrained(model, local_files_only=local)
    except OSError as err:
        raise WikituneError(f"cannot load the config of {model}: {str(err).splitlines()[0]}") from err
    torch_dtype = _resolve_dtype(dtype)
    kwargs: dict[str, Any] = {"dtype": torch_dtype, "local_files_only": local}
    quant_method = (getattr(config, "quantization_config", None) or {}).get("quant_method") \
        if isinstance(getattr(config, "quantization_config", None), dict) else None
    if quantization == "auto":
        quantization = "mxfp4-dequantize" if quant_method == "mxfp4" else "none"
    if quantization == "mxfp4-dequantize":
        if quant_method != "mxfp4":
            raise WikituneError(f"quantization=mxfp4-dequantize but {model} is not an MXFP4 checkpoint")
        from transformers import Mxfp4Config

        # MXFP4 weights cannot be trained: dequantize to dtype (bf16 on GPU) while loading.
        kwargs["quantization_config"] = Mxfp4Config(dequantize=True)
    elif quantization == "bnb-4bit":
        if not torch.cuda.is_available():
            raise WikituneError("quantization=bnb-4bit needs a CUDA GPU (bitsandbytes 4-bit)")
        from transformers import BitsAndBytesConfig

        if quant_method != "bitsandbytes":
            kwargs["quantization_config"] = BitsAndBytesConfig(
                load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_compute_dtype=torch.bfloat16,
                bnb_4bit_use_double_quant=True,
            )
    elif quantization != "none":
        raise WikituneError(f"quantization must be one of {', '.join(QUANTIZATIONS)}, got {quantization!r}")
    if attn_implementation == ATTENTION:
        register_attention()  # transformers accepts only names it knows
    if attn_implementation:
        kwargs["attn_implementation"] = attn_implementation
    elif not torch.cuda.is_available():
        kwargs["attn_implementation"] = "eager"
    if device_map is not None:
        kwargs["device_map"] = device_map
    elif torch.cuda.is_available():
        kwargs["device_map"] = {"": torch.cuda.current_device()}
    return AutoModelForCausalLM.from_pretrained(model, **kwargs)


def is_run_dir(path: str | Path) -> bool:
    """A run directory written by cpt or sft (it holds its resolved config), not a bare adapter directory."""
    return (Path(path) / formats.RUN_CONFIG).is_file()


def resolve_adapter(adapter: str | Path) -> Path:
    """A PEFT adapter directory from a run directory (`RUN/adapter`) or an adapter directory."""
    path = Path(adapter)
    if (path / "adapter_config.json").is_file():
        return path
    if (path / formats.ADAPTER_DIR / "adapter_config.json").is_file():
        return path / formats.ADAPTER_DIR
    raise WikituneError(f"{adapter} holds no PEFT adapter (no adapter_config.json there or in {formats.ADAPTER_DIR}/)")


def load_model_and_tokenizer(
    model: str | None,
    tokenizer: "str | Path | PreTrainedTokenizerBase | None" = None,
    adapter: str | Path | None = None,
    *,
    tiny: TinyGptOssConfig | dict | None = None,
    dtype: str = "auto",
    quantization: str = "auto",
    attn_implementation: str | None = None,
    device_map: str | dict | None = None,
    gradient_checkpointing: bool = False,
    trainable: bool = False,
    merge_adapter: bool = False,
) -> tuple["PreTrainedModel", "PreTrainedTokenizerBase"]:
    """Load a model and its tokenizer, optionally with a PEFT adapter on top.

    Args:
        model: `tiny-gpt-oss`, a local model directory (loaded with no network access) or a
            Hugging Face id. None: take it from the run directory given as `adapter`.
        tokenizer: a directory (`tokenizer.json` or `o200k_base.tiktoken`), an HF id or a
            tokenizer. Default: the model's own; for `tiny-gpt-oss` it is required (a BPE saved
            by `train_bpe_tokenizer`, or the gpt-oss vocabulary directory), except when
            `adapter` is a run directory, whose `tokenizer/` is used.
        adapter: a PEFT adapter directory or a run directory (`RUN/adapter`).
        tiny: sizes of `tiny-gpt-oss` (default: the run's, else `TinyGptOssConfig()`).
        dtype: `auto` (bf16 on GPU, fp32 on CPU), `bfloat16`, `float16`, `float32`.
        quantization: `auto` (dequantize an MXFP4 checkpoint, else none), `none`,
            `mxfp4-dequantize` (`Mxfp4Config(dequantize=True)`), `bnb-4bit` (NF4, GPU only).
        attn_implementation: e.g. `eager`, `wikitune_flex` (`wikitune.gptoss.attention`: flex
            attention with sinks and sliding window, offline; the only one tiny-gpt-oss takes
            besides eager), `flash_attention_2`, `kernels-community/vllm-flash-attn3`; default
            eager on CPU, the transformers default on GPU.
        device_map: passed to `from_pretrained`; default the current GPU, or CPU.
        gradient_checkpointing: enable it (training on GPU saves memory at some speed).
        trainable: load the adapter's weights as trainable (to continue training it).
        merge_adapter: merge the adapter into the weights (`merge_and_unload`) and return the
            plain model: for inference. A `target_parameters` adapter (gpt-oss's fused experts)
            otherwise rebuilds W + BA for every expert at every forward pass, about 19B elements
            per generated token on gpt-oss-20b. The adapter on disk is only read.

    Returns:
        (model, tokenizer); the model is in eval mode unless `trainable`.

    Raises:
        WikituneError: a missing path, a missing tokenizer for tiny-gpt-oss, an unknown option,
            `merge_adapter` with `trainable`.
    """
    if merge_adapter and trainable:
        raise WikituneError("merge_adapter and trainable exclude each other: a merged adapter has no weights left to train")
    run_cfg: dict = {}
    if adapter is not None and is_run_dir(adapter):
        run_cfg = formats.read_run_config(adapter)
    if model is None:
        model = run_cfg.get("model")
        if model is None:
            raise WikituneError("no model given, and adapter is not a run directory naming one")
    if tokenizer is None and run_cfg and (Path(adapter) / "tokenizer").is_dir():
        tokenizer = Path(adapter) / "tokenizer"  # the run trained (and saved) with this one
    if model == TINY:
        if tokenizer is None:
            raise WikituneError(
                "tiny-gpt-oss needs a tokenizer: a directory saved by train_bpe_tokenizer or one holding "
                f"{O200K_FILE} (e.g. ../shared/data/gpt-oss)"
            )
        tok = load_tokenizer(tokenizer)
        if tiny is None:
            tiny = run_cfg.get("tiny")
        net = build_tiny_gpt_oss(len(tok), tiny, pad_token_id=tok.pad_token_id,
                                 eos_token_id=tok.eos_token_id, bos_token_id=tok.bos_token_id)
        if dtype not in ("auto", "float32", "fp32"):
            net = net.to(_resolve_dtype(dtype))
        if attn_implementation == ATTENTION:  # built eager; the flex attention runs on CPU too
            net.set_attn_implementation(register_attention())
    else:
        net = _load_pretrained(model, dtype=dtype, quantization=quantization,
                               attn_implementation=attn_implementation, device_map=device_map)
        tok = load_tokenizer(tokenizer if tokenizer is not None else model)
    if gradient_checkpointing:
        net.activation_checkpointing_enable(activation_checkpointing_kwargs={"use_reentrant": False})
        net.config.use_cache = False
    if adapter is not None:
        from peft import PeftModel

        if run_cfg.get("adapter") and run_cfg.get("adapter_mode") == "merge":
            # an SFT run trained on top of a merged CPT adapter: rebuild that base first
            net = PeftModel.from_pretrained(net, str(resolve_adapter(run_cfg["adapter"]))).merge_and_unload()
        net = PeftModel.from_pretrained(net, str(resolve_adapter(adapter)), is_trainable=trainable)
        if merge_adapter:
            net = net.merge_and_unload()
    if not trainable:
        net.eval()
    return net, tok
