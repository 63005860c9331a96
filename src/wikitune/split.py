"""The one deterministic train/held-out article split that `cpt` and `qa build` share (DESIGN.md).

    from wikitune.split import is_heldout, split_articles
    train = [a for a in articles if not is_heldout(a["pageid"])]
    train, heldout = split_articles(articles, 0.1)

An article is held out when a hash of its page id falls below `fraction`: the split depends on
nothing but the page id, so it is the same in every run, on every machine, for any corpus that
contains the article, and growing a corpus never moves an article between the sides.
"""

from __future__ import annotations

import hashlib

from wikitune.errors import WikituneError

DEFAULT_HELDOUT_FRACTION = 0.1


def heldout_score(pageid: int) -> float:
    """A number in [0, 1) that is a fixed, uniform-looking function of the page id."""
    digest = hashlib.sha256(f"wikitune-split:{int(pageid)}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def is_heldout(pageid: int, fraction: float = DEFAULT_HELDOUT_FRACTION) -> bool:
    """True when the article `pageid` belongs to the held-out side (never trained on by `cpt`).

    Raises:
        WikituneError: `fraction` outside [0, 1).
    """
    if not 0.0 <= fraction < 1.0:
        raise WikituneError(f"held-out fraction must be in [0, 1), got {fraction}")
    return heldout_score(pageid) < fraction


def split_articles(articles: list[dict], fraction: float = DEFAULT_HELDOUT_FRACTION) -> tuple[list[dict], list[dict]]:
    """(train, held-out) article records (each with a `pageid`), in their order, by `is_heldout`."""
    train = [a for a in articles if not is_heldout(a["pageid"], fraction)]
    held = [a for a in articles if is_heldout(a["pageid"], fraction)]
    return train, held
