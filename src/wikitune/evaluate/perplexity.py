"""Perplexity of a model (with or without adapter) on held-out corpus articles and control text, per domain.

    texts = heldout_texts("corpus/demo", 0.1)                # articles CPT (heldout_fraction 0.1) never trained on
    result = perplexity(model, tokenizer, texts, block_size=256)
    # {"tokens": 5120, "nll": 3.41, "perplexity": 30.3, "documents": 4}

`wikitune eval ... perplexity=true` adds a `perplexity` block to summary.json: `anime-heldout`
(held-out articles of `corpus`: the split of wikitune.split at the eval's `heldout_fraction`, which
must be CPT's, as the study passes it), and `control` when
`perplexity_control` names a JSQuAD file or a plain-text file (general text whose perplexity
should not rise after CPT if general knowledge survived).

Each document is cut into non-overlapping windows of `block_size` tokens; the loss is the mean
next-token negative log-likelihood over every predicted token of every window.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any, Iterable

from wikitune import formats
from wikitune.errors import WikituneError
from wikitune.split import is_heldout


def heldout_texts(corpus: str | Path, heldout_fraction: float, *, limit: int | None = None) -> list[str]:
    """Texts of the held-out articles of a corpus (the articles CPT never sees), in page-id order.

    Args:
        corpus: a corpus directory.
        heldout_fraction: CPT's held-out fraction (`wikitune.split.is_heldout`); no default, so
            that the perplexity of "held-out" articles is never measured on trained ones.
        limit: keep at most this many texts.
    """
    texts = [rec["text"] for rec in formats.iter_articles(corpus)
             if is_heldout(rec["pageid"], heldout_fraction) and (rec.get("text") or "").strip()]
    return texts[:limit] if limit else texts


def control_texts(path: str | Path, *, limit: int | None = None) -> list[str]:
    """General-knowledge text: the contexts of a JSQuAD file, or the paragraphs of a plain-text file."""
    path = Path(path)
    if not path.is_file():
        raise WikituneError(f"perplexity_control {path} does not exist")
    raw = path.read_text(encoding="utf-8")
    texts: list[str]
    if raw.lstrip().startswith("{") and '"data"' in raw[:200]:
        data = json.loads(raw)
        texts = [p["context"].split("[SEP]", 1)[-1].strip() for a in data["data"] for p in a["paragraphs"]]
    else:
        texts = [t.strip() for t in raw.split("\n\n") if t.strip()]
    return texts[:limit] if limit else texts


def perplexity(model: Any, tokenizer: Any, texts: Iterable[str], *, block_size: int = 256, batch_size: int = 8) -> dict[str, Any]:
    """Token-weighted mean NLL and perplexity of `texts`.

    Returns:
        dict: tokens (predicted), nll (nats per token), perplexity, documents.
    """
    import torch

    if block_size < 2:
        raise WikituneError(f"block_size must be 2 or more, got {block_size}")
    windows: list[list[int]] = []
    documents = 0
    for text in texts:
        ids = tokenizer(text, add_special_tokens=False)["input_ids"]
        if len(ids) < 2:
            continue
        documents += 1
        windows.extend(ids[i : i + block_size] for i in range(0, len(ids) - 1, block_size) if len(ids[i : i + block_size]) >= 2)
    if not windows:
        raise WikituneError("no text to measure perplexity on (every document is shorter than two tokens)")
    device = next(model.parameters()).device
    total_nll, total_tokens = 0.0, 0
    windows.sort(key=len)  # similar lengths together: little padding
    with torch.inference_mode():
        for start in range(0, len(windows), batch_size):
            batch = windows[start : start + batch_size]
            width = max(len(w) for w in batch)
            ids = torch.full((len(batch), width), tokenizer.pad_token_id or 0, dtype=torch.long)
            mask = torch.zeros((len(batch), width), dtype=torch.long)
            for b, w in enumerate(batch):  # right padding: positions stay 0..len-1 as in training
                ids[b, : len(w)] = torch.tensor(w)
                mask[b, : len(w)] = 1
            ids, mask = ids.to(device), mask.to(device)
            logits = model(input_ids=ids, attention_mask=mask).logits.float()
            logprobs = torch.log_softmax(logits[:, :-1], dim=-1)
            target = ids[:, 1:]
            nll = -logprobs.gather(-1, target.unsqueeze(-1)).squeeze(-1)
            valid = mask[:, 1:].bool()
            total_nll += float(nll[valid].sum())
            total_tokens += int(valid.sum())
    mean = total_nll / total_tokens
    return {"tokens": total_tokens, "nll": round(mean, 6), "perplexity": round(math.exp(mean), 4), "documents": documents}
