"""One page of a wiki, whichever source read it (a dump or the API), and what kind of page it is.

    page = Page(pageid=1, title="星海のアルカディア", ns=0, wikitext="'''星海のアルカディア'''は…")
    kind = classify(page)     # Kind(name="article")
    kind.skip_reason          # None; "redirect", "disambiguation" or "namespace" otherwise

`extract` and `crawl` both decide with `classify`, so a page is an article in a crawled corpus
exactly when it is one in an extracted corpus.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from wikitune.corpus.convert import is_disambiguation
from wikitune.corpus.names import MAIN_NS

ARTICLE = "article"
REDIRECT = "redirect"
DISAMBIGUATION = "disambiguation"
NAMESPACE = "namespace"
"""A page outside the main namespace (a category, a template, …)."""

# `#REDIRECT [[target]]` and its Japanese spellings; a redirect's wikitext starts with it.
_REDIRECT_TEXT = re.compile(r"^\s*#\s*(?:REDIRECT|転送|リダイレクト)\s*:?\s*\[\[([^\]|]+)", re.IGNORECASE)


@dataclass
class Page:
    """One page: its latest revision's wikitext and metadata."""

    pageid: int
    title: str
    ns: int
    wikitext: str
    revid: int | None = None
    timestamp: str | None = None
    redirect: str | None = None
    """The target the source names for a redirect (a dump's `<redirect title>`), else None."""


@dataclass(frozen=True)
class Kind:
    """What `classify` decided about a page."""

    name: str
    """`article`, `redirect`, `disambiguation` or `namespace`."""
    redirect: str | None = None
    """The target of a redirect, in any namespace (a category may redirect too)."""

    @property
    def is_article(self) -> bool:
        return self.name == ARTICLE

    @property
    def skip_reason(self) -> str | None:
        """The key under which the manifest's `counts.skipped` counts this page; None for an article."""
        return None if self.is_article else self.name


def redirect_in_text(wikitext: str) -> str | None:
    """The target of a `#REDIRECT [[…]]` (`#転送`, `#リダイレクト`) wikitext, else None."""
    # Cheap test first: almost no page starts with "#", and this runs on every page of a dump.
    if wikitext.lstrip()[:1] != "#":
        return None
    match = _REDIRECT_TEXT.match(wikitext)
    return match.group(1).strip() if match else None


def classify(page: Page) -> Kind:
    """Decide whether a page is an article, and if not why it is skipped.

    Args:
        page (Page): the page; `page.redirect` (what the source says) wins over the wikitext.

    Returns:
        Kind: `namespace` outside the main namespace, else `redirect`, else `disambiguation`
        (a disambiguation template or category, or a `(曖昧さ回避)` title), else `article`.
    """
    redirect = page.redirect if page.redirect is not None else redirect_in_text(page.wikitext)
    if page.ns != MAIN_NS:
        return Kind(NAMESPACE, redirect)
    if redirect is not None:
        return Kind(REDIRECT, redirect)
    if is_disambiguation(page.wikitext, page.title):
        return Kind(DISAMBIGUATION)
    return Kind(ARTICLE)
