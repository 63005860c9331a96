"""Training data: corpus articles into packed blocks (CPT), QA pairs into masked harmony chats (SFT).

    articles = formats.read_articles("corpus/demo")
    train, heldout = split.split_articles(articles, 0.1)     # shared with qa build
    blocks = pack_wrapped(tokenize_documents(texts, tok, sep_id), 256)
    items = read_training_qa("qa/demo", "train")             # QAItems of qa/demo/train.jsonl

CPT packing is "wrapped": every article is followed by a separator token, all articles are
concatenated and cut into fixed-length blocks, so a batch holds no padding at all. A block can
span two articles; the separator marks the boundary (eager attention on gpt-oss does not isolate
documents inside a block, see shared STACK.md on TRL's `bfd` packing).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable

from wikitune import formats
from wikitune.errors import WikituneError
from wikitune.formats import QAItem
from wikitune.gptoss.harmony import qa_messages

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
