"""Training data: corpus articles into packed blocks (CPT), QA pairs into masked harmony chats (SFT),
and CPT data mixtures (articles, augmentation documents, QA, replay text) into one block list.

    articles = formats.read_articles("corpus/demo")
    train, heldout = split.split_articles(articles, 0.1)     # shared with qa build
    blocks = pack_wrapped(tokenize_documents(texts, tok, sep_id), 256)
    items = read_training_qa("qa/demo", "train")             # QAItems of qa/demo/train.jsonl

    sources = parse_sources([{"corpus": "corpus/demo"}, {"replay": "general.txt", "fraction": 0.1}])
    loaded = [load_source(s, 0.1, "text") for s in sources]   # held-out pages dropped everywhere
    mixture = mix_sources(sources, [tokenize_source(d, tok, sep_id, qa_render) for d in loaded], 256, seed, "mixed")

CPT packing is "wrapped": every article is followed by a separator token, all articles are
concatenated and cut into fixed-length blocks, so a batch holds no padding at all. A block can
span two articles; the separator marks the boundary (eager attention on gpt-oss does not isolate
documents inside a block, see shared STACK.md on TRL's `bfd` packing).
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable

from wikitune import formats
from wikitune.errors import WikituneError
from wikitune.formats import QAItem
from wikitune.gptoss.harmony import REASONING_EFFORTS, qa_messages, training_template
from wikitune.split import is_heldout, split_articles

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase

IGNORE_INDEX = -100


# --------------------------------------------------------------------------- corpus (CPT)


def tokenize_documents(texts: Iterable[str], tokenizer: "PreTrainedTokenizerBase", separator_id: int) -> list[list[int]]:
    """Token ids of each text followed by `separator_id` (no BOS, no special-token parsing in the text)."""
    texts = [t for t in texts if t.strip()]
    if not texts:
        return []
    encoded = tokenizer(texts, add_special_tokens=False, split_special_tokens=True)["input_ids"]
    return [list(ids) + [separator_id] for ids in encoded]


def pack_wrapped(docs: list[list[int]], block_size: int) -> list[list[int]]:
    """Concatenate the documents and cut them into blocks of exactly `block_size` tokens.

    The tail shorter than a block is dropped (at most `block_size - 1` tokens of the corpus).
    """
    if block_size < 2:
        raise WikituneError(f"block_size must be 2 or more, got {block_size}")
    stream = [t for doc in docs for t in doc]
    return [stream[i:i + block_size] for i in range(0, len(stream) - block_size + 1, block_size)]


def pad_batches(docs: list[list[int]], block_size: int, batch_size: int, pad_id: int) -> list[dict[str, list]]:
    """The padded alternative to packing (for comparison): one document per row, cut at
    `block_size`, padded to the longest row of its batch. Each batch: input_ids, attention_mask,
    labels (-100 on padding)."""
    batches = []
    for start in range(0, len(docs), batch_size):
        rows = [d[:block_size] for d in docs[start:start + batch_size]]
        width = max(len(r) for r in rows)
        batches.append({
            "input_ids": [r + [pad_id] * (width - len(r)) for r in rows],
            "attention_mask": [[1] * len(r) + [0] * (width - len(r)) for r in rows],
            "labels": [r + [IGNORE_INDEX] * (width - len(r)) for r in rows],
        })
    return batches


# --------------------------------------------------------------------------- QA (SFT)


def read_training_qa(paths: str | Path | list, split: str | None = None) -> list[QAItem]:
    """QA items from one or more QA JSONL files, in file order; a directory means its train.jsonl.
    With `split`, only items of that split (items whose split is null are kept).

    Raises:
        WikituneError: a missing or malformed file, or no item left.
    """
    if isinstance(paths, (str, Path)):
        paths = [paths]
    items: list[QAItem] = []
    for path in map(Path, paths):
        if path.is_dir():
            path = path / formats.QA_TRAIN
        items += [item for item in formats.read_qa_file(path) if split is None or item.split in (None, split)]
    if not items:
        raise WikituneError(f"no QA records in {', '.join(map(str, paths))}")
    return items


def encode_qa(question: str, answer: str, tokenizer: "PreTrainedTokenizerBase", *, template: str,
              system_prompt: str | None, developer_prompt: str | None, reasoning_effort: str) -> dict[str, list[int]]:
    """Token ids and labels of one QA pair: every prompt token (system, developer, user and
    `<|start|>assistant`) is -100; `<|channel|>final<|message|>answer<|return|>` is trained.

    Raises:
        WikituneError: the rendered prompt is not a prefix of the rendered conversation.
    """
    kwargs: dict[str, Any] = {"reasoning_effort": reasoning_effort}
    if system_prompt:
        kwargs["model_identity"] = system_prompt
    full = tokenizer.apply_chat_template(qa_messages(question, answer, developer_prompt), tokenize=False,
                                         chat_template=template, **kwargs)
    prompt = tokenizer.apply_chat_template(qa_messages(question, None, developer_prompt), tokenize=False,
                                           add_generation_prompt=True, chat_template=template, **kwargs)
    if not full.startswith(prompt):
        raise WikituneError("the chat template's generation prompt is not a prefix of the conversation")
    prompt_ids = tokenizer(prompt, add_special_tokens=False)["input_ids"]
    full_ids = tokenizer(full, add_special_tokens=False)["input_ids"]
    if full_ids[:len(prompt_ids)] != prompt_ids:
        raise WikituneError("tokenizing the prompt alone gives other tokens than inside the conversation")
    labels = [IGNORE_INDEX] * len(prompt_ids) + full_ids[len(prompt_ids):]
    return {"input_ids": full_ids, "labels": labels}


def pad_collate(rows: list[dict[str, list[int]]], pad_id: int) -> dict[str, Any]:
    """Right-pad a batch of SFT rows: pad tokens get attention 0 and label -100."""
    import torch

    width = max(len(r["input_ids"]) for r in rows)
    ids, mask, labels = [], [], []
    for r in rows:
        n = len(r["input_ids"])
        ids.append(list(r["input_ids"]) + [pad_id] * (width - n))
        mask.append([1] * n + [0] * (width - n))
        labels.append(list(r["labels"]) + [IGNORE_INDEX] * (width - n))
    return {"input_ids": torch.tensor(ids), "attention_mask": torch.tensor(mask), "labels": torch.tensor(labels)}


def block_collate(rows: list[dict[str, list[int]]]) -> dict[str, Any]:
    """Stack packed CPT blocks (all the same length): labels are the inputs, no mask needed."""
    import torch

    ids = torch.tensor([r["input_ids"] for r in rows])
    return {"input_ids": ids, "labels": ids.clone()}


# --------------------------------------------------------------------------- mixtures (CPT)

SOURCE_KINDS = ("corpus", "augment", "qa", "replay")
"""What an entry of a CPT mixture trains on: a corpus's training articles, an augmentation
directory's documents, QA pairs, or replay text (a corpus directory, a .txt or a .jsonl file)."""
QA_FORMATS = ("harmony", "text")
"""How a qa source is written out: the harmony conversation SFT trains on, or `question\\nanswer`."""
ORDERS = ("mixed", "qa-first")
"""Block order: mixed (the Trainer shuffles all blocks), or qa-first (PIT: every QA block, then the rest)."""
_QA_OPTIONS = ("format", "system_prompt", "developer_prompt", "reasoning_effort")
_MISSING_HINTS = {
    "corpus": "build one with `wikitune extract`",
    "augment": "build one with `wikitune augment CORPUS --out DIR --method facts`",
    "qa": "build one with `wikitune qa build`",
    "replay": "give a corpus directory, a .txt or a .jsonl file",
}


@dataclass(frozen=True)
class Source:
    """One declared source of a CPT mixture (an entry of the cpt config's `data`)."""

    kind: str
    """One of SOURCE_KINDS."""
    path: str
    """Its directory or file."""
    fraction: float | None = None
    """Share of the packed training tokens, reached by repeating or subsampling its documents;
    None: all its tokens, once."""
    format: str = "harmony"
    """qa sources: one of QA_FORMATS."""
    system_prompt: str | None = None
    """qa sources in harmony: the system message's model identity (None: the template's, as SFT)."""
    developer_prompt: str | None = None
    """qa sources in harmony: a developer message (None: none, as SFT)."""
    reasoning_effort: str = "low"
    """qa sources in harmony: the `Reasoning:` line (SFT's default)."""

    @property
    def name(self) -> str:
        """How messages and summary.json name the source: `corpus corpus/demo`."""
        return f"{self.kind} {self.path}"


def _fraction(value: Any, where: str) -> float | None:
    if value is None:
        return None
    if isinstance(value, str):  # YAML 1.1 reads 1e-1 (no dot) as a string
        try:
            value = float(value)
        except ValueError:
            pass
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 < value < 1.0:
        raise WikituneError(f"{where}.fraction must be a number in (0, 1), a share of the training tokens; got {value!r}")
    return float(value)


def parse_sources(entries: Any, order: str = "mixed") -> list[Source]:
    """The declared mixture (`data:` of a cpt config) as Sources, every entry checked.

    Only the declaration is checked here (a config loads without its files); paths are read by
    `load_source`.

    Raises:
        WikituneError: not a list of mappings, an entry without exactly one of SOURCE_KINDS, an
            unknown key, a fraction outside (0, 1), fractions summing to 1 or more, every source
            with a fraction, a bad qa format or reasoning effort, order qa-first without a qa source.
    """
    if not isinstance(entries, list) or not entries:
        raise WikituneError("data must be a non-empty list of sources such as `- {corpus: DIR}`")
    sources = []
    for i, entry in enumerate(entries):
        where = f"data[{i}]"
        if not isinstance(entry, dict):
            raise WikituneError(f"{where} must be a mapping such as {{corpus: DIR}}, got {formats.json_kind(entry)}")
        kinds = [key for key in entry if key in SOURCE_KINDS]
        if len(kinds) != 1:
            raise WikituneError(f"{where} must name exactly one source key of {', '.join(SOURCE_KINDS)}; "
                                f"got {', '.join(map(str, entry)) or 'no key'}")
        kind = kinds[0]
        allowed = {kind, "fraction", *(_QA_OPTIONS if kind == "qa" else ())}
        unknown = sorted(set(map(str, entry)) - allowed)
        if unknown:
            raise WikituneError(f"{where}: unknown key(s) {', '.join(unknown)} of a {kind} source; "
                                f"valid: {', '.join(sorted(allowed))}")
        path = entry[kind]
        if not isinstance(path, str) or not path.strip():
            raise WikituneError(f"{where}.{kind} must be a path, got {formats.json_kind(path)}")
        options = {key: entry[key] for key in _QA_OPTIONS if key in entry}
        if options.get("format", "harmony") not in QA_FORMATS:
            raise WikituneError(f"{where}.format must be one of {', '.join(QA_FORMATS)}, got {options['format']!r}")
        if options.get("reasoning_effort", "low") not in REASONING_EFFORTS:
            raise WikituneError(f"{where}.reasoning_effort must be one of {', '.join(REASONING_EFFORTS)}, "
                                f"got {options['reasoning_effort']!r}")
        for key in ("system_prompt", "developer_prompt"):
            if options.get(key) is not None and not isinstance(options[key], str):
                raise WikituneError(f"{where}.{key} must be a string or null, got {formats.json_kind(options[key])}")
        sources.append(Source(kind, path, _fraction(entry.get("fraction"), where), **options))
    fractions = [s.fraction for s in sources if s.fraction is not None]
    if sum(fractions) >= 1.0:
        raise WikituneError(f"data: the fractions sum to {sum(fractions):g}; they must sum to less than 1 "
                            "(the rest of the training tokens are the sources without a fraction)")
    if len(fractions) == len(sources):
        raise WikituneError("data: every source has a fraction; leave at least one without "
                            "(it keeps all its tokens, and the fractions are shares of the total)")
    if order not in ORDERS:
        raise WikituneError(f"order must be one of {', '.join(ORDERS)}, got {order!r}")
    if order == "qa-first" and not any(s.kind == "qa" for s in sources):
        raise WikituneError("order: qa-first needs a qa source in data (its blocks come first)")
    return sources


@dataclass
class SourceData:
    """A source's text as read from disk, pages of the held-out split left out."""

    source: Source
    texts: list[str] = field(default_factory=list)
    """Documents to train on (every kind but qa)."""
    items: list[QAItem] = field(default_factory=list)
    """QA pairs to train on (qa)."""
    heldout_texts: list[str] = field(default_factory=list)
    """Held-out articles (a corpus source's validation text)."""
    heldout: int = 0
    """Articles held out (corpus, replay corpus), or documents / QA pairs of held-out pages dropped (augment, qa)."""

    def raw_texts(self) -> list[str]:
        """Its plain text (what a tiny model's BPE is trained on)."""
        return self.texts + [f"{item.question}\n{item.answer}" for item in self.items]


def _qa_pageid(item: QAItem) -> int | None:
    pageid = (item.source or {}).get("pageid")
    return pageid if isinstance(pageid, int) and not isinstance(pageid, bool) else None


def load_source(source: Source, heldout_fraction: float, text_field: str = "text") -> SourceData:
    """Read a source; held-out pages are never trained on, whatever the source: a corpus's
    held-out articles become validation text, and augmentation documents or QA pairs about a
    held-out page (by page id, the same split) are dropped and counted.

    Raises:
        WikituneError: a missing path, or a file the source's reader refuses.
    """
    path = Path(source.path)
    if not path.exists():
        raise WikituneError(f"{source.name} does not exist: {_MISSING_HINTS[source.kind]}")
    if source.kind == "corpus" or (source.kind == "replay" and path.is_dir()):
        train, held = split_articles(formats.read_articles(path, text_field), heldout_fraction)
        return SourceData(source, texts=[a["text"] for a in train], heldout_texts=[a["text"] for a in held],
                          heldout=len(held))
    if source.kind == "replay":
        return SourceData(source, texts=formats.read_text_documents(path))
    if source.kind == "augment":
        documents = formats.read_documents(path)
        kept = [d.text for d in documents if not is_heldout(d.pageid, heldout_fraction)]
        return SourceData(source, texts=kept, heldout=len(documents) - len(kept))
    items = read_training_qa(path, "train")
    kept_items = [i for i in items if _qa_pageid(i) is None or not is_heldout(_qa_pageid(i), heldout_fraction)]
    return SourceData(source, items=kept_items, heldout=len(items) - len(kept_items))


def qa_conversations(items: list[QAItem], tokenizer: "PreTrainedTokenizerBase", source: Source,
                     current_date: str) -> list[list[int]]:
    """Token ids of each QA pair as the whole harmony conversation SFT trains on (the tokenizer's
    chat template, `Current date:` pinned), for plain LM loss on every token."""
    template = training_template(tokenizer, current_date)
    return [encode_qa(item.question, item.answer, tokenizer, template=template, system_prompt=source.system_prompt,
                      developer_prompt=source.developer_prompt, reasoning_effort=source.reasoning_effort)["input_ids"]
            for item in items]


def tokenize_source(data: SourceData, tokenizer: "PreTrainedTokenizerBase", separator_id: int,
                    current_date: str | None = None) -> list[list[int]]:
    """A source's documents as token ids, each followed by `separator_id` (as `tokenize_documents`);
    harmony QA as whole conversations (`qa_conversations`, dated `current_date`).

    Raises:
        WikituneError: the source yields no token.
    """
    if data.items and data.source.format == "harmony":
        if current_date is None:
            raise WikituneError("harmony QA needs a current_date to render the system message")
        docs = [ids + [separator_id] for ids in qa_conversations(data.items, tokenizer, data.source, current_date)]
    else:
        docs = tokenize_documents(data.raw_texts(), tokenizer, separator_id)
    if not docs:
        why = "every page of it is held out; lower heldout_fraction" if data.heldout else "it holds no text"
        raise WikituneError(f"{data.source.name}: no tokens to train on: {why}")
    return docs


def resample(docs: list[list[int]], tokens: int, rng: random.Random) -> list[list[int]]:
    """Documents in seeded random order, pass after pass (each pass shuffled anew), until they hold
    at least `tokens` tokens: a subsample when the source is larger, repetitions when smaller."""
    out: list[list[int]] = []
    total = 0
    while total < tokens:
        order = list(range(len(docs)))
        rng.shuffle(order)
        for i in order:
            out.append(docs[i])
            total += len(docs[i])
            if total >= tokens:
                break
    return out


@dataclass
class Mixture:
    """The packed training blocks of a mixture, the source of each, and what each source gave."""

    blocks: list[list[int]]
    source_ids: list[int]
    """Index of each block's source in the declared sources."""
    stats: list[dict[str, Any]]
    """Per source: source, path, fraction, documents, tokens (all of its documents), train_tokens
    (of its blocks), blocks, share (of the packed training tokens), passes (train_tokens / tokens)."""


def mix_sources(sources: list[Source], docs: list[list[list[int]]], block_size: int, seed: int,
                order: str = "mixed") -> Mixture:
    """Pack every source the same way (`pack_wrapped`, on its own, so each block has one source)
    and mix them.

    A source without a fraction keeps all its tokens (less the tail shorter than a block). With
    B blocks from those, a source of fraction f gets round(f * B / (1 - sum of fractions))
    blocks, drawn from its documents by `resample` (seeded with `seed` and its position), so its
    realised share of the packed tokens is f within one block. `order` qa-first puts the qa
    sources' blocks first, each group shuffled with the seed (train them in this order);
    mixed leaves the shuffling to the Trainer.

    Raises:
        WikituneError: a source without a fraction that has fewer tokens than one block.
    """
    packed: list[list[list[int]] | None] = []
    for source, source_docs in zip(sources, docs):
        if source.fraction is not None:
            packed.append(None)
            continue
        blocks = pack_wrapped(source_docs, block_size)
        if not blocks:
            raise WikituneError(f"{source.name}: fewer training tokens than one block of {block_size}; lower block_size "
                                "or give the source a fraction")
        packed.append(blocks)
    fixed = sum(len(b) for b in packed if b is not None)
    total = fixed / (1.0 - sum(s.fraction for s in sources if s.fraction is not None))
    for i, (source, source_docs) in enumerate(zip(sources, docs)):
        if source.fraction is not None:
            n = round(source.fraction * total)
            packed[i] = pack_wrapped(resample(source_docs, n * block_size, random.Random(f"{seed}:{i}")), block_size)[:n]
    blocks = [block for source_blocks in packed for block in source_blocks or []]
    ids = [i for i, source_blocks in enumerate(packed) for _ in source_blocks or []]
    if order == "qa-first":
        rng = random.Random(f"{seed}:order")
        phases = [[j for j, i in enumerate(ids) if (sources[i].kind == "qa") == first] for first in (True, False)]
        for phase in phases:
            rng.shuffle(phase)
        blocks, ids = [blocks[j] for p in phases for j in p], [ids[j] for p in phases for j in p]
    stats = []
    for i, (source, source_docs) in enumerate(zip(sources, docs)):
        tokens = sum(len(d) for d in source_docs)
        n = len(packed[i] or [])
        stats.append({
            "source": source.kind, "path": source.path, "fraction": source.fraction, "documents": len(source_docs),
            "tokens": tokens, "train_tokens": n * block_size, "blocks": n, "share": n / len(blocks),
            "passes": n * block_size / tokens,
        })
    return Mixture(blocks=blocks, source_ids=ids, stats=stats)
