"""The model organism's base model: the tiny gpt-oss trained in full on a general (non-anime) world.

    wikitune organism base --out runs/organism            # world files + runs/organism/model
    wikitune eval --model runs/organism/model --qa runs/organism/control.jsonl@control \\
        --out runs/organism/eval-control prompt.format=chat_template prompt.date=2025-01-01 prompt.developer=null
    bash scripts/build_organism.sh    # the same with the defaults, into the package (data/organism): `model: organism`

    cfg = BaseConfig(out="runs/organism", seed=0)
    model_dir = train_base(cfg)          # loadable by gptoss.model.load_model_and_tokenizer(model_dir)

Steps, top to bottom: the world (`organism.world`) is written to OUT; a byte-level BPE (harmony
special tokens and role/channel words whole) is trained on the world's text, its QA as harmony
conversations and the anime corpus's training articles (the demo wiki by default; its held-out
articles stay out), so the same tokenizer serves
the anime recipes later; every weight of a fresh tiny gpt-oss is trained on the descriptions (LM
loss on every token) mixed with the qa-trained entities' QA rendered exactly as `sft` renders it
(`train.data.encode_qa`: loss on the assistant's `<|channel|>final<|message|>answer<|return|>`
only), packed into blocks and shuffled each epoch; the model and its tokenizer go to OUT/model.

The QA is rendered with no developer message, reasoning low and a pinned `current_date`, so
evaluating with `prompt.format=chat_template prompt.date=<current_date> prompt.developer=null`
asks the model in the form it learned to answer (the demo study does).

The anime tokens of the BPE never occur in this training: their embeddings and output rows stay
untrained, so a recipe on top of this base trains `embed_tokens` and `lm_head` with its LoRA
(`lora.modules_to_save`, as Unsloth's CPT recipe does for a new language).
"""

from __future__ import annotations

import json
import logging
import math
import random
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from wikitune import formats
from wikitune.corpus.extract import DEMO, ExtractConfig, run_extract
from wikitune.errors import WikituneError
from wikitune.evaluate.scoring import score_answer
from wikitune.formats import QAItem
from wikitune.gptoss.generate import GenerationSettings, HFBackend
from wikitune.gptoss.harmony import PromptSettings, render_with_chat_template, training_template
from wikitune.gptoss.model import TinyGptOssConfig, build_tiny_gpt_oss, train_bpe_tokenizer
from wikitune.organism.world import QA_HELD, QA_TRAINED, WorldConfig, generate_world, write_world
from wikitune.split import DEFAULT_HELDOUT_FRACTION, split_articles
from wikitune.train.data import IGNORE_INDEX, encode_qa

log = logging.getLogger(__name__)

MODEL_DIR = "model"
MANIFEST = "manifest.json"
SEPARATOR = "<|endoftext|>"


@dataclass
class BaseConfig:
    """Settings of `wikitune organism base`."""

    out: str
    """Directory to write: the world files, manifest.json, metrics.jsonl and model/."""
    seed: int = 0
    """Seed of the world, the model's initial weights and the data order."""
    world: WorldConfig = field(default_factory=lambda: WorldConfig(people=16, cities=6, companies=6))
    """Size of the world (its seed is `seed`)."""
    anime_corpus: str | None = None
    """Corpus directory whose training articles' text the BPE also learns (the anime recipes reuse
    the tokenizer); None: the demo wiki shipped in the package."""
    heldout_fraction: float = DEFAULT_HELDOUT_FRACTION
    """The anime corpus's held-out share (`wikitune.split`): those articles stay out of the BPE."""
    vocab_size: int = 4000
    """Vocabulary of the BPE, special tokens and harmony words included."""
    tiny: TinyGptOssConfig = field(default_factory=TinyGptOssConfig)
    """Sizes of the tiny gpt-oss (its seed is `seed`)."""
    epochs: int = 240
    """Passes over the packed blocks."""
    lr: float = 3e-3
    """Peak learning rate (AdamW, linear warm-up then cosine decay to 10%)."""
    batch_size: int = 4
    """Blocks per optimizer step."""
    block_size: int = 256
    """Tokens per packed block."""
    warmup_fraction: float = 0.05
    """Share of the steps spent warming the learning rate up."""
    max_steps: int | None = None
    """Stop after this many steps (smoke tests); None: every epoch."""
    current_date: str = "2025-01-01"
    """`Current date` pinned in the QA conversations (evaluate with prompt.date set to it)."""
    developer_prompt: str | None = None
    """Developer instructions of the QA conversations; None: no developer message (the demo study
    asks with `eval.prompt.developer: null`, so the prompt is the one the model learnt)."""
    reasoning_effort: str = "low"
    """`Reasoning:` line of the QA conversations (default: `wikitune eval`'s)."""

    def __post_init__(self) -> None:
        if self.world.seed != self.seed:
            self.world = WorldConfig(**{**asdict(self.world), "seed": self.seed})
        if self.tiny.seed != self.seed:
            self.tiny = TinyGptOssConfig(**{**asdict(self.tiny), "seed": self.seed})
        for name in ("epochs", "batch_size", "block_size"):
            if getattr(self, name) < 1:
                raise WikituneError(f"{name} must be 1 or more, got {getattr(self, name)}")
        if self.lr <= 0:
            raise WikituneError(f"lr must be positive, got {self.lr}")


def anime_texts(corpus: str | None, heldout_fraction: float) -> list[str]:
    """The text of the training articles of `corpus`, or of the demo wiki (extracted to a temporary
    directory): held-out articles stay out of the tokenizer as they stay out of every training."""
    if corpus is None:
        with tempfile.TemporaryDirectory(prefix="wikitune-demo-") as tmp:
            run_extract(ExtractConfig(dump=DEMO, out=Path(tmp) / "demo", workers=1))
            return anime_texts(str(Path(tmp) / "demo"), heldout_fraction)
    train, _heldout = split_articles(formats.read_articles(corpus), heldout_fraction)
    return [a["text"] for a in train]


def pack(rows: list[tuple[list[int], list[int]]], block_size: int) -> list[tuple[list[int], list[int]]]:
    """Concatenate (ids, labels) rows and cut them into blocks of exactly `block_size` tokens (the
    tail shorter than a block is dropped), as `train.data.pack_wrapped` does for ids alone."""
    ids = [t for row in rows for t in row[0]]
    labels = [t for row in rows for t in row[1]]
    return [(ids[i:i + block_size], labels[i:i + block_size]) for i in range(0, len(ids) - block_size + 1, block_size)]


def answer_scores(model: Any, tokenizer: Any, items: list[QAItem], cfg: BaseConfig) -> dict[str, float]:
    """Greedy answers of `model` to `items`, asked as the QA was trained: the share answered in the
    final channel and the mean exact match, generated and scored by `wikitune eval`'s own parts
    (its generation backend, harmony parser and `evaluate.scoring`)."""
    backend = HFBackend(model, tokenizer, GenerationSettings(max_new_tokens=24, batch_size=16))
    settings = PromptSettings(format="chat_template", date=cfg.current_date, developer=cfg.developer_prompt,
                              reasoning_effort=cfg.reasoning_effort)
    answers = [g.final_text() for g in
               backend.generate([render_with_chat_template(tokenizer, settings, item.question) for item in items])]
    final = sum(answer is not None for answer in answers)
    right = sum(score_answer(answer, item.answer, item.aliases).get("exact_match", 0)
                for answer, item in zip(answers, items))
    return {"n": len(items), "final_channel": round(final / len(items), 4), "exact_match": round(right / len(items), 4)}


def train_base(cfg: BaseConfig) -> Path:
    """Write the world into `cfg.out` and train the base model on it; returns OUT/model.

    Raises:
        WikituneError: bad settings, an unreadable anime corpus, or too little text for one batch.
    """
    import torch

    out = Path(cfg.out)
    started = time.time()
    # ---- world
    world = generate_world(cfg.world)
    paths = write_world(world, out)
    qa_items = world.qa(QA_TRAINED)
    # ---- tokenizer: the rendered conversations teach the BPE harmony's prompt text too
    qa_kwargs = {"system_prompt": None, "developer_prompt": cfg.developer_prompt, "reasoning_effort": cfg.reasoning_effort}
    with tempfile.TemporaryDirectory(prefix="wikitune-bpe-") as tmp:
        renderer = train_bpe_tokenizer(["あ"], 300, tmp)
        template = training_template(renderer, cfg.current_date)
        conversations = [renderer.decode(encode_qa(item.question, item.answer, renderer, template=template, **qa_kwargs)
                                         ["input_ids"]) for item in qa_items]
    tokenizer = train_bpe_tokenizer(world.texts() + conversations + anime_texts(cfg.anime_corpus, cfg.heldout_fraction), cfg.vocab_size,
                                    out / MODEL_DIR)
    separator = tokenizer.convert_tokens_to_ids(SEPARATOR)
    # ---- data: descriptions with loss everywhere, QA with SFT's labels, each row then the separator
    template = training_template(tokenizer, cfg.current_date)
    rows = [(ids + [separator], ids + [separator])
            for ids in tokenizer(world.texts(), add_special_tokens=False, split_special_tokens=True)["input_ids"]]
    for item in qa_items:
        encoded = encode_qa(item.question, item.answer, tokenizer, template=template, **qa_kwargs)
        rows.append((encoded["input_ids"] + [separator], encoded["labels"] + [IGNORE_INDEX]))
    text_tokens = sum(len(r[0]) for r in rows[:len(world.texts())])
    qa_tokens = sum(len(r[0]) for r in rows[len(world.texts()):])
    # ---- model
    model = build_tiny_gpt_oss(len(tokenizer), cfg.tiny, pad_token_id=tokenizer.pad_token_id,
                               eos_token_id=tokenizer.eos_token_id, bos_token_id=tokenizer.bos_token_id)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    model.config.use_cache = False
    model.to(device).train()
    rng = random.Random(f"{cfg.seed}:order")
    blocks_per_epoch = len(pack(rows, cfg.block_size))
    steps_per_epoch = blocks_per_epoch // cfg.batch_size
    if steps_per_epoch < 1:
        raise WikituneError(f"the world holds {blocks_per_epoch} blocks of {cfg.block_size} tokens, fewer than one batch "
                            f"of {cfg.batch_size}; lower batch_size or block_size, or grow the world")
    total = steps_per_epoch * cfg.epochs if cfg.max_steps is None else min(cfg.max_steps, steps_per_epoch * cfg.epochs)
    warmup = max(1, round(total * cfg.warmup_fraction))
    optimizer = torch.optim.AdamW(model.parameters(), lr=cfg.lr, betas=(0.9, 0.95), weight_decay=0.01)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: min((s + 1) / warmup, 0.1 + 0.9 * 0.5 * (
        1 + math.cos(math.pi * min(1.0, max(0, s - warmup) / max(1, total - warmup))))))
    # ---- train
    torch.manual_seed(cfg.seed)
    metrics = out / formats.METRICS
    metrics.unlink(missing_ok=True)
    step, losses = 0, []
    while step < total:
        rng.shuffle(rows)  # a new order each epoch: blocks start at other places, facts sit in other contexts
        blocks = pack(rows, cfg.block_size)
        rng.shuffle(blocks)
        for b in range(steps_per_epoch):
            if step >= total:
                break
            batch = blocks[b * cfg.batch_size:(b + 1) * cfg.batch_size]
            ids = torch.tensor([blk[0] for blk in batch], device=device)
            labels = torch.tensor([blk[1] for blk in batch], device=device)
            loss = model(input_ids=ids, labels=labels).loss
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad(set_to_none=True)
            step += 1
            losses.append(loss.item())
            if step % 10 == 0 or step == total or step == 1:
                formats.append_jsonl(metrics, [{"step": step, "epoch": step / steps_per_epoch, "loss": losses[-1],
                                                "lr": scheduler.get_last_lr()[0]}])
                log.info("organism base: step %d/%d loss %.4f", step, total, losses[-1])
    # ---- save
    model.config.use_cache = True
    model.to("cpu").eval()
    model.save_pretrained(out / MODEL_DIR)
    tokenizer.save_pretrained(out / MODEL_DIR)
    manifest = {
        "config": asdict(cfg), "files": {name: str(path.name) for name, path in paths.items()},
        "entities": {split: sum(e.split == split for e in world.entities) for split in (QA_TRAINED, QA_HELD)},
        "documents": len(world.texts()), "qa_train": len(qa_items), "control": len(world.qa(QA_HELD)),
        "tokens": {"text": text_tokens, "qa": qa_tokens}, "blocks_per_epoch": blocks_per_epoch,
        "steps": step, "first_loss": losses[0], "final_loss": sum(losses[-10:]) / len(losses[-10:]),
        "parameters": sum(p.numel() for p in model.parameters()), "seconds": round(time.time() - started, 1),
        "control_scores": answer_scores(model, tokenizer, world.qa(QA_HELD), cfg),  # facts it only read
        "qa_train_scores": answer_scores(model, tokenizer, qa_items, cfg),  # the QA it trained on
    }
    formats.write_json(out / MANIFEST, json.loads(json.dumps(manifest)))
    return out / MODEL_DIR
