"""Names of pages and categories: one normal form, whatever the source spelled.

MediaWiki treats spaces and underscores alike, upper-cases the first letter of titles on
`first-letter` wikis, and accepts any case plus localized aliases for a namespace prefix
(`Category:`, `category:`, `カテゴリ:`). Every stage compares names only after `normalize_title`
or `normalize_category`, so a root typed as `Category:日本のアニメ作品` matches a link written
`[[カテゴリ:日本の_アニメ作品|かな]]`.
"""

from __future__ import annotations

import html
import re

CATEGORY_NS = 14
MAIN_NS = 0

# Prefixes that name the category namespace on every wiki we read, in addition to whatever
# `<siteinfo>` or `meta=siteinfo` says: English canonical name and the Japanese alias.
DEFAULT_CATEGORY_PREFIXES = ("Category", "カテゴリ")

_SPACES = re.compile(r"[\s_\u3000]+")


def normalize_title(title: str) -> str:
    """Return the canonical form of a page title (first-letter case, spaces not underscores).

    Args:
        title (str): a title as written in wikitext, a dump or on the command line.

    Returns:
        str: the title with HTML entities decoded, underscores and runs of whitespace turned into
        one space, surrounding space removed and the first letter upper-cased.
    """
    title = html.unescape(title)
    title = _SPACES.sub(" ", title).strip()
    return title[:1].upper() + title[1:]


def strip_namespace(title: str, prefixes: tuple[str, ...] | set[str]) -> str | None:
    """Return the title without one of the namespace `prefixes`, or None if it has none of them.

    Prefix comparison ignores case and spaces around the colon, as MediaWiki does.
    """
    head, sep, rest = title.partition(":")
    if not sep:
        return None
    head = _SPACES.sub(" ", head).strip().casefold()
    if any(head == p.casefold() for p in prefixes):
        return rest
    return None


def normalize_category(name: str, prefixes: tuple[str, ...] | set[str] = DEFAULT_CATEGORY_PREFIXES) -> str:
    """Return a category's bare canonical name (`日本のアニメ作品`).

    Accepts `Category:名前`, `カテゴリ:名前`, `:Category:名前` or a bare `名前`.
    """
    name = name.strip().lstrip(":")
    bare = strip_namespace(name, prefixes)
    return normalize_title(bare if bare is not None else name)
