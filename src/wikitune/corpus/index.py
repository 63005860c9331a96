"""The page index: every page of a source with its direct categories, in SQLite.

`extract` fills it in a first pass over the dump (and from SQL dumps when given), computes the
category closure from the roots on it, and leaves it in the corpus as `index.sqlite`, so that
`corpus stats --expect` can later explain why a page the user expected is not in the corpus.
SQLite keeps memory flat whatever the dump size: only the pages reached are held in Python.
"""

from __future__ import annotations

import re
import sqlite3
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Iterator

from wikitune.corpus.names import CATEGORY_NS, MAIN_NS, normalize_category
from wikitune.corpus.writer import safe_stem
from wikitune.errors import WikituneError

INDEX_FILE = "index.sqlite"

SCHEMA = """
CREATE TABLE IF NOT EXISTS pages (
    pageid INTEGER PRIMARY KEY,
    ns INTEGER NOT NULL,
    title TEXT NOT NULL,           -- full title as in the source ("Category:名前" for ns 14)
    name TEXT NOT NULL,            -- bare category name for ns 14, the title otherwise
    redirect TEXT,                 -- redirect target, NULL for a content page
    disambiguation INTEGER NOT NULL DEFAULT 0,
    in_source INTEGER NOT NULL DEFAULT 1   -- 0: known only from a SQL page table, no text
);
CREATE TABLE IF NOT EXISTS files (
    key TEXT PRIMARY KEY,          -- case-folded file stem
    stem TEXT NOT NULL,
    pageid INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS links (
    pageid INTEGER NOT NULL,
    category TEXT NOT NULL,        -- bare, normalized
    position INTEGER NOT NULL,     -- order of appearance, to list categories as the page does
    source TEXT NOT NULL,          -- "wikitext" or "sql"
    UNIQUE (pageid, category)
);
"""

INDEXES = """
CREATE INDEX IF NOT EXISTS links_by_category ON links (category);
CREATE INDEX IF NOT EXISTS pages_by_name ON pages (ns, name);
CREATE INDEX IF NOT EXISTS files_by_page ON files (pageid);
"""


def category_link_pattern(prefixes: Iterable[str]) -> re.Pattern[str]:
    """Regex for membership links `[[Category:名前|sort key]]` with any of the prefixes, any case.

    A link starting with a colon (`[[:Category:X]]`) points at the category without joining it,
    so it is deliberately not matched.
    """
    alternatives = "|".join(re.escape(p) for p in sorted(set(prefixes), key=len, reverse=True))
    return re.compile(
        r"\[\[[ \t]*(?:" + alternatives + r")[ \t]*:[ \t]*([^\[\]\|\{\}<>\n]+?)[ \t]*(?:\|[^\[\]\n]*)?\]\]",
        re.IGNORECASE,
    )


_INVISIBLE = re.compile(r"<!--.*?(?:-->|\Z)|<nowiki>.*?(?:</nowiki>|\Z)|<pre>.*?(?:</pre>|\Z)", re.DOTALL | re.IGNORECASE)


def categories_in_wikitext(wikitext: str, pattern: re.Pattern[str], prefixes: tuple[str, ...]) -> list[str]:
    """Direct categories a page declares in its wikitext, normalized, first occurrence order."""
    if "[[" not in wikitext:
        return []
    visible = _INVISIBLE.sub("", wikitext)
    seen: dict[str, None] = {}
    for match in pattern.finditer(visible):
        name = normalize_category(match.group(1), prefixes)
        if name:
            seen.setdefault(name, None)
    return list(seen)


@dataclass
class Closure:
    """Categories and articles reached from the roots."""

    roots: list[str]
    category_depth: dict[str, dict[str, int]] = field(default_factory=dict)  # name -> {root: depth}
    article_depth: dict[int, dict[str, int]] = field(default_factory=dict)   # pageid -> {root: depth}
    excluded: dict[str, str] = field(default_factory=dict)                   # name -> matching regex


class PageIndex:
    """SQLite-backed page index; see the module docstring."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self.db = sqlite3.connect(self.path)
        self.db.execute("PRAGMA journal_mode=OFF")
        self.db.execute("PRAGMA synchronous=OFF")
        self.db.executescript(SCHEMA)

    @classmethod
    def create(cls, path: Path) -> "PageIndex":
        """A new, empty index at `path` (an old file there is replaced)."""
        path = Path(path)
        if path.exists():
            path.unlink()
        return cls(path)

    def close(self) -> None:
        self.db.commit()
        self.db.close()

    # ---- filling ------------------------------------------------------------------------------
    def add_pages(self, rows: Iterable[tuple[int, int, str, str, str | None, bool, list[str]]]) -> None:
        """Insert pages `(pageid, ns, title, name, redirect, disambiguation, categories)` from the source."""
        page_rows, link_rows = [], []
        for pageid, ns, title, name, redirect, disambiguation, categories in rows:
            page_rows.append((pageid, ns, title, name, redirect, int(disambiguation)))
            link_rows.extend((pageid, cat, pos, "wikitext") for pos, cat in enumerate(categories))
        # A later revision of the same page id in a dump replaces the earlier one.
        self.db.executemany("INSERT OR REPLACE INTO pages (pageid, ns, title, name, redirect, disambiguation) VALUES (?,?,?,?,?,?)", page_rows)
        # Wikitext links replace a SQL row for the same category, so the page's own order is kept.
        self.db.executemany("INSERT OR REPLACE INTO links VALUES (?,?,?,?)", link_rows)

    def add_sql_pages(self, rows: Iterable[tuple[int, int, str, str]]) -> None:
        """Pages known from a SQL `page` table `(pageid, ns, title, name)`; never overrides the dump."""
        self.db.executemany(
            "INSERT OR IGNORE INTO pages (pageid, ns, title, name, in_source) VALUES (?,?,?,?,0)", rows
        )

    def add_sql_links(self, rows: Iterable[tuple[int, str]]) -> None:
        """Memberships `(pageid, category)` from a SQL `categorylinks` table (after the wikitext ones)."""
        self.db.executemany(
            "INSERT OR IGNORE INTO links VALUES (?,?,1000000,'sql')", ((pid, cat) for pid, cat in rows)
        )

    def claim_file(self, pageid: int, title: str) -> str:
        """A file stem for an article, unique among the stems claimed so far.

        Uniqueness is case-insensitive (macOS and Windows file systems would put `NEON DRIVE`
        and `Neon Drive` in one file): the first page claiming a stem keeps it, later ones get
        `~<pageid>`. Claims happen in dump order, so names are the same on every run.
        """
        claimed = self.db.execute("SELECT stem FROM files WHERE pageid=?", (pageid,)).fetchone()
        if claimed:  # the same page twice in one dump: its later revision replaces the earlier
            return claimed[0]
        stem = safe_stem(title)
        for candidate in (stem, f"{stem}~{pageid}"):
            try:
                self.db.execute("INSERT INTO files VALUES (?, ?, ?)", (candidate.casefold(), candidate, pageid))
            except sqlite3.IntegrityError:
                continue
            return candidate
        raise AssertionError(f"page id {pageid} claimed a file twice")  # page ids are unique

    def is_content_article(self, pageid: int) -> bool:
        row = self.db.execute(
            "SELECT 1 FROM pages WHERE pageid=? AND ns=? AND in_source=1 AND redirect IS NULL AND disambiguation=0",
            (pageid, MAIN_NS),
        ).fetchone()
        return row is not None

    def count_content_articles(self) -> int:
        return self.db.execute(
            "SELECT COUNT(*) FROM pages WHERE ns=? AND in_source=1 AND redirect IS NULL AND disambiguation=0", (MAIN_NS,)
        ).fetchone()[0]

    def finish_loading(self) -> None:
        self.db.executescript(INDEXES)
        self.db.commit()

    # ---- queries ------------------------------------------------------------------------------
    def categories_of(self, pageid: int) -> list[str]:
        rows = self.db.execute("SELECT category FROM links WHERE pageid=? ORDER BY position, rowid", (pageid,))
        return [r[0] for r in rows]

    def members(self, category: str) -> Iterator[tuple[int, int, str]]:
        """(pageid, ns, name) of every page that declares `category` (subcategories by bare name)."""
        yield from self.db.execute(
            "SELECT p.pageid, p.ns, p.name FROM links l JOIN pages p ON p.pageid = l.pageid WHERE l.category=?",
            (category,),
        )

    def category_exists(self, name: str) -> bool:
        """A category exists if it has a page or at least one member."""
        row = self.db.execute("SELECT 1 FROM pages WHERE ns=? AND name=? LIMIT 1", (CATEGORY_NS, name)).fetchone()
        return row is not None or self.db.execute("SELECT 1 FROM links WHERE category=? LIMIT 1", (name,)).fetchone() is not None

    def all_category_names(self) -> list[str]:
        rows = self.db.execute("SELECT DISTINCT category FROM links UNION SELECT name FROM pages WHERE ns=?", (CATEGORY_NS,))
        return sorted(r[0] for r in rows)

    def category_page_id(self, name: str) -> int | None:
        row = self.db.execute("SELECT pageid FROM pages WHERE ns=? AND name=? ORDER BY in_source DESC LIMIT 1", (CATEGORY_NS, name)).fetchone()
        return row[0] if row else None

    def parents(self, name: str) -> list[str]:
        pageid = self.category_page_id(name)
        return self.categories_of(pageid) if pageid is not None else []

    def find_page(self, title: str) -> tuple[int, int, str, str | None, bool] | None:
        """(pageid, ns, title, redirect, disambiguation) of a page by title, or None."""
        row = self.db.execute(
            "SELECT pageid, ns, title, redirect, disambiguation FROM pages WHERE title=? ORDER BY in_source DESC LIMIT 1", (title,)
        ).fetchone()
        return (row[0], row[1], row[2], row[3], bool(row[4])) if row else None

    # ---- the closure --------------------------------------------------------------------------
    def closure(self, roots: list[str], max_depth: int | None, excludes: list[re.Pattern[str]]) -> Closure:
        """Breadth-first walk down from each root through subcategories.

        Cycle-safe (a category is expanded once per root, at its shortest depth); a category
        matching an exclude regex is neither expanded nor used to reach articles; root members
        are at depth 0 and `max_depth` bounds the number of subcategory steps.
        """
        result = Closure(roots=list(roots))
        for root in roots:
            queue: deque[tuple[str, int]] = deque([(root, 0)])
            seen = {root}
            while queue:
                category, depth = queue.popleft()
                regex = matching_exclude(category, excludes)
                if regex is not None:
                    result.excluded[category] = regex
                    continue
                result.category_depth.setdefault(category, {})[root] = depth
                for pageid, ns, name in self.members(category):
                    if ns == CATEGORY_NS:
                        if name not in seen and (max_depth is None or depth + 1 <= max_depth):
                            seen.add(name)
                            queue.append((name, depth + 1))
                    elif ns == MAIN_NS:
                        depths = result.article_depth.setdefault(pageid, {})
                        if root not in depths or depth < depths[root]:
                            depths[root] = depth
        return result

    def category_records(self, closure: Closure | None) -> list[dict[str, Any]]:
        """The `categories.jsonl` records: the closure's categories (shallowest first, then by
        name) with their parents and per-root depths; without a closure, every category by name."""
        if closure is None:
            names = self.all_category_names()
            depths: dict[str, dict[str, int]] = {name: {} for name in names}
        else:
            depths = closure.category_depth
            names = sorted(depths, key=lambda n: (min(depths[n].values()), n))
        return [{"title": name, "parents": self.parents(name), "depth": depths[name]} for name in names]


def compile_excludes(patterns: list[str]) -> list[re.Pattern[str]]:
    """The `--exclude` regexes, compiled; an invalid one is a `WikituneError` that names it."""
    compiled = []
    for pattern in patterns:
        try:
            compiled.append(re.compile(pattern))
        except re.error as err:
            raise WikituneError(f"--exclude {pattern!r} is not a valid regex: {err}") from err
    return compiled


def matching_exclude(category: str, excludes: list[re.Pattern[str]]) -> str | None:
    """The first exclude regex found in the bare name or in `Category:name`, or None."""
    for regex in excludes:
        if regex.search(category) or regex.search("Category:" + category):
            return regex.pattern
    return None
