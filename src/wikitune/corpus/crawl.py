"""`wikitune crawl`: build a corpus directory from a live wiki over the MediaWiki Action API.

    wikitune crawl --root 日本のアニメ作品 --root アニメ関連企業 --depth 6 \\
        --exclude 'アニメの登場人物$' --out corpus/anime --contact you@example.org

Stages, each resumable (state in `CORPUS.partial/.crawl.sqlite` while crawling, committed after
every response, and in `CORPUS/.crawl.sqlite` once the corpus is swapped into place):
1. `meta=siteinfo` once: namespace names (category = namespace 14, whatever its prefix) and the
   article URL pattern.
2. listing: categories breadth-first from the roots with `list=categorymembers`
   (`cmtype=page|subcat`, `cmlimit=max`), cycle-safe, down to `--depth`, not entering
   `--exclude`d categories. A listing's `cmcontinue` is saved, so a killed crawl resumes inside a
   long category.
3. the closure (per-root depths) is computed by `PageIndex.closure` on what was listed, exactly
   as `extract` computes it on a dump.
4. fetch: article and category pages in batches of 50 page ids (`prop=revisions|categories`),
   converted by `convert.convert_wikitext` as they arrive; redirects and disambiguation pages are
   recorded as skipped. `--refresh` re-lists the categories and re-fetches only pages whose
   revision changed.
5. write: the corpus through `CorpusWriter`, the same code `extract` uses, and `index.sqlite`
   (what the crawl saw) so `corpus stats --expect` can explain gaps.
"""

from __future__ import annotations

import json
import logging
import re
import sqlite3
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from difflib import get_close_matches
from pathlib import Path
from typing import Any

from wikitune.corpus import convert
from wikitune.corpus.index import (
    INDEX_FILE, Closure, PageIndex, categories_in_wikitext, category_link_pattern, compile_excludes, matching_exclude,
)
from wikitune.corpus.names import CATEGORY_NS, MAIN_NS, normalize_category
from wikitune.corpus.page import DISAMBIGUATION, REDIRECT, classify
from wikitune.corpus.sources.mediawiki import (
    BATCH, MediaWikiClient, SiteInfo, as_page, category_members, is_missing, latest_revision, merge_pages,
    page_categories, response_pages,
)
from wikitune.corpus.writer import CRAWL_STATE, CRAWL_STATE_FILES, CorpusWriter, article_record, corpus_output
from wikitune.errors import WikituneError

log = logging.getLogger(__name__)

DEFAULT_API = "https://ja.wikipedia.org/w/api.php"

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS categories (
    name TEXT PRIMARY KEY,          -- bare, normalized
    depth INTEGER NOT NULL,         -- shortest depth from any root
    seq INTEGER NOT NULL,           -- discovery order: the frontier is a FIFO queue
    status TEXT NOT NULL,           -- queued | listed | excluded
    cont TEXT                       -- JSON continuation of a listing in progress
);
CREATE TABLE IF NOT EXISTS members (
    category TEXT NOT NULL, pageid INTEGER NOT NULL, ns INTEGER NOT NULL, title TEXT NOT NULL,
    UNIQUE (category, pageid)
);
CREATE TABLE IF NOT EXISTS pages (
    pageid INTEGER PRIMARY KEY,
    ns INTEGER NOT NULL,
    title TEXT NOT NULL,
    revid INTEGER,
    timestamp TEXT,
    status TEXT NOT NULL,           -- article | redirect | disambiguation | empty_text | missing | category
    categories TEXT NOT NULL,       -- JSON list of bare names, in the page's own order
    converted TEXT                  -- JSON {text, markdown, infobox} of an article
);
CREATE TABLE IF NOT EXISTS counters (kind TEXT PRIMARY KEY, n INTEGER NOT NULL);
"""


@dataclass
class CrawlConfig:
    """Options of `wikitune crawl`."""

    roots: list[str]
    """Root categories (`Category:名前`, `カテゴリ:名前` or `名前`); at least one."""
    out: Path
    """Corpus directory to write (swapped in complete); an interrupted or finished crawl of it is resumed."""
    api: str = DEFAULT_API
    """URL of the wiki's `api.php`."""
    depth: int | None = None
    """Most sub-category steps below a root (root members are depth 0); None = unlimited."""
    exclude: list[str] = field(default_factory=list)
    """Regexes; a category matching one is not entered (searched in `名前` and `Category:名前`)."""
    contact: str | None = None
    """E-mail or URL for the User-Agent, so wiki operators can reach you (Wikimedia policy)."""
    interval: float = 1.0
    """Minimum seconds between two requests (0 = as fast as the server answers, serially)."""
    max_retries: int = 8
    """Retries of one request (429, 5xx, connection errors, maxlag) before the crawl fails."""
    backoff: float = 1.0
    """First retry delay in seconds, doubled on each further retry (plus jitter)."""
    timeout: float = 60.0
    """Socket timeout of one request, in seconds."""
    refresh: bool = False
    """Re-list the categories and re-fetch pages whose revision changed since the last crawl."""
    restart: bool = False
    """Discard a crawl state in `out` and start from scratch."""
    progress: bool | None = None
    """Progress bar on stderr; None = only when stderr is a terminal (else log lines)."""

    def __post_init__(self) -> None:
        self.out = Path(self.out)
        if not [r for r in self.roots if r.strip()]:
            raise WikituneError("crawl needs at least one --root CATEGORY")
        if self.depth is not None and self.depth < 0:
            raise WikituneError(f"--depth must be 0 or more, got {self.depth}")
        if self.interval < 0:
            raise WikituneError(f"--interval must be 0 or more seconds, got {self.interval}")
        if self.max_retries < 0:
            raise WikituneError(f"--max-retries must be 0 or more, got {self.max_retries}")
        if not re.match(r"^https?://", self.api):
            raise WikituneError(f"--api {self.api!r} is not an http(s) URL of api.php")
        compile_excludes(self.exclude)

    def fingerprint(self) -> dict[str, Any]:
        """What must match for a crawl state to be resumed."""
        return {"api": self.api, "roots": [r.strip() for r in self.roots if r.strip()],
                "depth": self.depth, "exclude": list(self.exclude)}


@dataclass
class CrawlResult:
    out: Path
    manifest: dict[str, Any]


# ---- progress ------------------------------------------------------------------------------------
class Progress:
    """A one-line progress bar on a terminal, or an INFO log line every few seconds otherwise."""

    def __init__(self, enabled: bool | None):
        self.tty = sys.stderr.isatty() if enabled is None else enabled
        self.values = {"categories": 0, "pages": 0, "requests": 0, "retries": 0}
        self.phase = ""
        self._last = 0.0

    def update(self, force: bool = False, **values: int) -> None:
        self.values.update(values)
        now = time.monotonic()
        if not force and now - self._last < (0.1 if self.tty else 5.0):
            return
        self._last = now
        line = f"crawl {self.phase:<9} " + "  ".join(f"{k} {v}" for k, v in self.values.items())
        if self.tty:
            sys.stderr.write("\r" + line + "\x1b[K")
            sys.stderr.flush()
        else:
            log.info(line)

    def close(self) -> None:
        if self.tty:
            self.update(force=True)
            sys.stderr.write("\n")


# ---- the state ---------------------------------------------------------------------------------
class CrawlState:
    """SQLite state in the corpus directory; every method commits before returning."""

    def __init__(self, path: Path):
        self.db = sqlite3.connect(path)
        # A rollback journal with synchronous=FULL: a transaction is either wholly on disk or not
        # at all, whenever the process is killed.
        self.db.execute("PRAGMA synchronous=FULL")
        self.db.executescript(SCHEMA)
        self.db.commit()

    def get(self, key: str, default: Any = None) -> Any:
        row = self.db.execute("SELECT value FROM meta WHERE key=?", (key,)).fetchone()
        return json.loads(row[0]) if row else default

    def set(self, key: str, value: Any) -> None:
        self.db.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (key, json.dumps(value, ensure_ascii=False)))

    def counters(self) -> Counter:
        return Counter(dict(self.db.execute("SELECT kind, n FROM counters")))

    def add_counters(self, delta: Counter) -> None:
        for kind, n in delta.items():
            if n:
                self.db.execute("INSERT INTO counters VALUES (?, ?) ON CONFLICT(kind) DO UPDATE SET n = n + ?", (kind, n, n))

    def commit(self) -> None:
        self.db.commit()

    def close(self) -> None:
        self.db.commit()
        self.db.close()


# ---- the crawler ---------------------------------------------------------------------------------
class Crawler:
    """One run of `wikitune crawl`; see the module docstring."""

    def __init__(self, cfg: CrawlConfig, client: MediaWikiClient, state: CrawlState, progress: Progress):
        self.cfg = cfg
        self.client = client
        self.state = state
        self.progress = progress
        self.excludes = compile_excludes(cfg.exclude)
        self.site: SiteInfo = SiteInfo()
        self.prefixes: tuple[str, ...] = ()
        self.roots: list[str] = []
        self._counted_requests = 0
        self._counted_retries: Counter = Counter()
        client.on_request = self._on_request

    # -- bookkeeping: requests and retries are counted per phase, and persisted with each commit
    def _on_request(self) -> None:
        self.progress.update(requests=self._total("requests") + self.client.requests - self._counted_requests,
                             retries=self._total_retries() + sum(self.client.retries.values()) - sum(self._counted_retries.values()))

    def _total(self, kind: str) -> int:
        return sum(n for k, n in self.state.counters().items() if k.startswith(kind + ":"))

    def _total_retries(self) -> int:
        return self._total("retries")

    def commit(self, phase: str) -> None:
        delta = Counter({f"requests:{phase}": self.client.requests - self._counted_requests})
        for kind, n in self.client.retries.items():
            delta[f"retries:{kind}"] = n - self._counted_retries.get(kind, 0)
        self._counted_requests = self.client.requests
        self._counted_retries = Counter(self.client.retries)
        self.state.add_counters(delta)
        self.state.commit()

    # -- 1. siteinfo
    def load_siteinfo(self) -> None:
        raw = self.state.get("siteinfo")
        if raw is None:
            raw = self.client.get({"meta": "siteinfo", "siprop": "general|namespaces|namespacealiases"})
            self.state.set("siteinfo", raw)
            self.commit("siteinfo")
        self.site = SiteInfo.from_response(raw)
        self.prefixes = self.site.category_prefixes()
        self.link_pattern = category_link_pattern(self.prefixes)
        self.roots = list(dict.fromkeys(normalize_category(r, self.prefixes) for r in self.cfg.roots if r.strip()))

    def category_name(self, title: str) -> str:
        return normalize_category(title, self.prefixes)

    # -- 2. listing
    def check_roots(self) -> None:
        """Fail early, naming it, on a root the wiki has neither a page nor members for."""
        if self.state.get("roots_checked"):
            return
        titles = [self.site.category_title(r) for r in self.roots]
        root_pages: dict[str, int] = {}
        for start in range(0, len(titles), BATCH):
            response = self.client.get({"prop": "categoryinfo", "titles": "|".join(titles[start:start + BATCH])})
            for page in response_pages(response):
                info = page.get("categoryinfo") or {}
                if is_missing(page) and not info.get("size"):
                    name = self.category_name(page.get("title", ""))
                    hints = self.similar_categories(name)
                    hint = f"; did you mean {', '.join(hints)}?" if hints else ""
                    raise WikituneError(
                        f"unknown category {name!r}: {self.cfg.api} has no page for it and no page in it{hint} "
                        f"(a root may be written Category:名前, カテゴリ:名前 or 名前)"
                    )
                if not is_missing(page):
                    root_pages[self.category_name(page["title"])] = page["pageid"]
        self.state.set("root_pages", root_pages)
        self.state.set("roots_checked", True)
        self.commit("roots")

    def similar_categories(self, name: str, n: int = 3) -> list[str]:
        """Existing categories spelled like `name` (same first characters), for the error message."""
        response = self.client.get({"list": "allcategories", "acprefix": name[:2], "aclimit": "max"})
        found = [c.get("category") or c.get("*") or "" for c in response.get("query", {}).get("allcategories", [])]
        return get_close_matches(name, [f for f in found if f], n=n, cutoff=0.5)

    def seed(self) -> None:
        if self.state.get("seeded"):
            return
        for seq, root in enumerate(self.roots):
            status = "excluded" if self._excluded(root) else "queued"
            self.state.db.execute("INSERT OR IGNORE INTO categories VALUES (?, 0, ?, ?, NULL)", (root, seq, status))
        self.state.set("seeded", True)
        self.state.commit()

    def _excluded(self, name: str) -> bool:
        return matching_exclude(name, self.excludes) is not None

    def list_categories(self) -> None:
        """Breadth-first listing of every category the closure may enter (shortest depth first)."""
        db = self.state.db
        self.progress.phase = "listing"
        while True:
            row = db.execute(
                "SELECT name, depth, cont FROM categories WHERE status='queued' ORDER BY depth, seq LIMIT 1"
            ).fetchone()
            if row is None:
                return
            name, depth, cont = row
            params = {"list": "categorymembers", "cmtitle": self.site.category_title(name),
                      "cmtype": "page|subcat", "cmprop": "ids|title|type", "cmlimit": "max"}
            for response, nxt in self.client.query(params, start=json.loads(cont) if cont else None):
                for member in category_members(response):
                    db.execute("INSERT OR IGNORE INTO members VALUES (?, ?, ?, ?)",
                               (name, member["pageid"], member["ns"], member["title"]))
                    if member["ns"] == CATEGORY_NS:
                        self._discover(self.category_name(member["title"]), depth + 1)
                if nxt is None:
                    db.execute("UPDATE categories SET status='listed', cont=NULL WHERE name=?", (name,))
                else:
                    db.execute("UPDATE categories SET cont=? WHERE name=?", (json.dumps(nxt), name))
                self.commit("listing")
                self.progress.update(categories=db.execute("SELECT COUNT(*) FROM categories WHERE status='listed'").fetchone()[0])

    def _discover(self, name: str, depth: int) -> None:
        if self.cfg.depth is not None and depth > self.cfg.depth:
            return
        db = self.state.db
        known = db.execute("SELECT depth FROM categories WHERE name=?", (name,)).fetchone()
        if known is not None:
            return  # listed in shortest-depth order, so the first discovery had the smallest depth
        seq = db.execute("SELECT COALESCE(MAX(seq), 0) + 1 FROM categories").fetchone()[0]
        status = "excluded" if self._excluded(name) else "queued"
        db.execute("INSERT INTO categories VALUES (?, ?, ?, ?, NULL)", (name, depth, seq, status))

    # -- 3. the closure, on a page index of what was listed
    def build_index(self, path: Path) -> tuple[PageIndex, Closure]:
        """A `PageIndex` of everything the crawl saw, and the closure computed on it."""
        db = self.state.db
        index = PageIndex.create(path)
        rows: dict[int, tuple] = {}
        links: dict[int, list[str]] = {}
        for category, pageid, ns, title in db.execute("SELECT category, pageid, ns, title FROM members ORDER BY rowid"):
            name = self.category_name(title) if ns == CATEGORY_NS else title
            rows.setdefault(pageid, (pageid, ns, title, name, None, False))
            links.setdefault(pageid, []).append(category)
        for pageid, ns, title, status, categories, converted in db.execute(
                "SELECT pageid, ns, title, status, categories, converted FROM pages"):
            if status == "missing":
                continue
            name = self.category_name(title) if ns == CATEGORY_NS else title
            redirect = json.loads(converted)["redirect"] if status == "redirect" else None
            # The page's own categories (in its order) first; memberships seen in listings after.
            rows[pageid] = (pageid, ns, title, name, redirect, status == "disambiguation")
            links[pageid] = list(dict.fromkeys(json.loads(categories) + links.get(pageid, [])))
        index.add_pages((*row, links.get(pageid, [])) for pageid, row in rows.items())
        index.finish_loading()
        closure = index.closure(self.roots, self.cfg.depth, self.excludes)
        return index, closure

    # -- 4. fetching
    def check_revisions(self, wanted: list[int]) -> None:
        """--refresh: forget fetched pages whose latest revision differs from the stored one."""
        db = self.state.db
        done_upto = self.state.get("refresh_checked_upto", -1)
        stored = dict(db.execute("SELECT pageid, revid FROM pages WHERE pageid > ?", (done_upto,)).fetchall())
        ids = sorted(pid for pid in wanted if pid in stored)
        self.progress.phase = "checking"
        for start in range(0, len(ids), BATCH):
            batch = ids[start:start + BATCH]
            merged: dict = {}
            for response, _ in self.client.query({"prop": "revisions", "rvprop": "ids", "pageids": "|".join(map(str, batch))}):
                merge_pages(merged, response)
            for pid in batch:
                page = merged.get(pid)
                rev = latest_revision(page) if page else None
                if rev is None or rev["revid"] != stored[pid]:
                    db.execute("DELETE FROM pages WHERE pageid=?", (pid,))
            self.state.set("refresh_checked_upto", batch[-1])
            self.commit("checking")

    def fetch(self, wanted: list[int], kind: str) -> None:
        """Fetch and store every page of `wanted` not stored yet, in batches of 50 page ids."""
        db = self.state.db
        have = {r[0] for r in db.execute("SELECT pageid FROM pages")}
        todo = sorted(pid for pid in wanted if pid not in have)
        self.progress.phase = f"fetch {kind}"
        for start in range(0, len(todo), BATCH):
            batch = todo[start:start + BATCH]
            merged: dict = {}
            params = {"prop": "revisions|categories", "rvslots": "main", "rvprop": "ids|timestamp|content",
                      "cllimit": "max", "pageids": "|".join(map(str, batch))}
            for response, _ in self.client.query(params):
                merge_pages(merged, response)
            for pid in batch:
                db.execute("INSERT OR REPLACE INTO pages VALUES (?, ?, ?, ?, ?, ?, ?, ?)", self._page_row(pid, merged.get(pid)))
            self.commit(f"fetch_{kind}")
            self.progress.update(pages=db.execute("SELECT COUNT(*) FROM pages WHERE status='article'").fetchone()[0])

    def _page_row(self, pageid: int, api_page: dict | None) -> tuple:
        if api_page is None or is_missing(api_page):
            title = (api_page or {}).get("title", "")
            return (pageid, (api_page or {}).get("ns", MAIN_NS), title, None, None, "missing", "[]", None)
        page = as_page(api_page)
        categories = self.ordered_categories(api_page, page.wikitext)
        kind = classify(page)
        # Only articles and categories are fetched, so a page outside the main namespace is a category.
        status, converted = "category", None
        if kind.name == REDIRECT:
            status = REDIRECT
            converted = json.dumps({"redirect": kind.redirect}, ensure_ascii=False)
        elif kind.name == DISAMBIGUATION:
            status = DISAMBIGUATION
        elif kind.is_article:
            result = convert.convert_wikitext(page.wikitext, page.title)
            status = "article" if result.text.strip() else "empty_text"
            converted = json.dumps({"text": result.text, "markdown": result.markdown, "infobox": result.infobox}, ensure_ascii=False)
        return (pageid, page.ns, page.title, page.revid, page.timestamp, status,
                json.dumps(categories, ensure_ascii=False), converted)

    def ordered_categories(self, page: dict, wikitext: str) -> list[str]:
        """The page's direct categories (from the API, which knows template-added ones too), in
        the order the wikitext names them, so a crawl lists them as `extract` does; categories
        only templates add follow, in the API's order."""
        api = [self.category_name(t) for t in page_categories(page)]
        in_text = categories_in_wikitext(wikitext, self.link_pattern, self.prefixes)
        present = set(api)
        return [c for c in in_text if c in present] + [c for c in dict.fromkeys(api) if c not in set(in_text)]


def run_crawl(cfg: CrawlConfig, client: MediaWikiClient | None = None) -> CrawlResult:
    """Crawl a wiki into a corpus directory; see the module docstring.

    Args:
        cfg (CrawlConfig): the options.
        client (MediaWikiClient | None): an HTTP client to use instead of one built from `cfg`.

    Returns:
        CrawlResult: the corpus directory and its manifest.

    Raises:
        WikituneError: bad options, an unknown root, a state from a different crawl, or a
            request that failed after every retry.
    """
    client = client or MediaWikiClient(cfg.api, contact=cfg.contact, interval=cfg.interval,
                                       max_retries=cfg.max_retries, backoff=cfg.backoff, timeout=cfg.timeout)
    # The corpus is rebuilt in OUT.partial/ and swapped into OUT once complete. The crawl state
    # lives in OUT.partial/ while crawling (kept after a failure or a kill, for the next run to
    # resume) and moves into OUT with the finished corpus.
    with corpus_output(cfg.out, keep_partial=True) as output:
        _prepare_state(cfg, output.work)
        manifest = _crawl_into(cfg, client, output.work)
        output.commit()
    return CrawlResult(out=cfg.out, manifest=manifest)


def _prepare_state(cfg: CrawlConfig, work: Path) -> None:
    """Put the crawl state to resume into `work`: the interrupted one there, or a copy of the
    finished crawl's in the corpus (a copy: the corpus stays intact if this run fails)."""
    finished = cfg.out / CRAWL_STATE
    if cfg.restart:
        for name in CRAWL_STATE_FILES:
            (work / name).unlink(missing_ok=True)
    elif not (work / CRAWL_STATE).is_file() and finished.is_file():
        source = sqlite3.connect(finished)
        target = sqlite3.connect(work / CRAWL_STATE)
        try:
            source.backup(target)
        finally:
            target.close()
            source.close()
    if (work / CRAWL_STATE).is_file():
        old = CrawlState(work / CRAWL_STATE)
        previous = old.get("config")
        old.close()
        if previous is not None and previous != cfg.fingerprint():
            raise WikituneError(
                f"{cfg.out} holds a crawl with other options ({json.dumps(previous, ensure_ascii=False)}); "
                f"rerun with the same --api/--root/--depth/--exclude to resume, or add --restart"
            )


def _crawl_into(cfg: CrawlConfig, client: MediaWikiClient, out: Path) -> dict[str, Any]:
    started = time.perf_counter()
    writer = CorpusWriter(out)
    state = CrawlState(out / CRAWL_STATE)
    progress = Progress(cfg.progress)
    index: PageIndex | None = None
    try:
        if state.get("config") is None:
            state.set("config", cfg.fingerprint())
            state.set("runs", 0)
            state.commit()
        state.set("runs", state.get("runs", 0) + 1)
        if cfg.refresh and state.get("phase") == "done":
            # Re-list (memberships change too), then re-check every stored page's revision.
            state.db.execute("DELETE FROM categories")
            state.db.execute("DELETE FROM members")
            state.set("seeded", False)
            state.set("refreshing", True)
            state.set("refresh_checked_upto", -1)
        state.set("phase", "crawling")
        state.commit()

        crawler = Crawler(cfg, client, state, progress)
        crawler.load_siteinfo()
        crawler.check_roots()
        crawler.seed()
        crawler.list_categories()
        index, closure = crawler.build_index(out / INDEX_FILE)
        articles = sorted(closure.article_depth)
        category_ids = {pid for name in closure.category_depth if (pid := index.category_page_id(name)) is not None}
        root_pages = state.get("root_pages", {})
        category_ids = sorted(category_ids | {root_pages[r] for r in closure.category_depth if r in root_pages})
        if state.get("refreshing"):
            crawler.check_revisions(articles + category_ids)
        crawler.fetch(articles, "articles")
        crawler.fetch(category_ids, "categories")
        index.close()
        index = None
        # Rebuilt with the fetched pages' own categories (parents of categories, redirects).
        index, closure = crawler.build_index(out / INDEX_FILE)

        progress.phase = "writing"
        skipped: Counter = Counter()
        rows = state.db.execute(
            "SELECT pageid, title, revid, timestamp, status, categories, converted FROM pages WHERE ns=? ORDER BY pageid", (MAIN_NS,)
        )
        for pageid, title, revid, timestamp, status, categories, converted in rows:
            if pageid not in closure.article_depth:
                continue
            if status != "article":
                skipped[status] += 1
                continue
            c = json.loads(converted)
            writer.add(article_record(
                pageid=pageid, title=title, revid=revid, timestamp=timestamp, url=crawler.site.article_url(title),
                categories=json.loads(categories), depth=closure.article_depth[pageid],
                converted=convert.Converted(text=c["text"], markdown=c["markdown"], infobox=c["infobox"]),
                file=index.claim_file(pageid, title),
            ))
        # Members of other namespaces (templates, files, …) in the listed categories.
        skipped["namespace"] = state.db.execute(
            "SELECT COUNT(DISTINCT pageid) FROM members WHERE ns NOT IN (?, ?)", (MAIN_NS, CATEGORY_NS)
        ).fetchone()[0]
        categories = index.category_records(closure)
        counters = state.counters()
        requests = {k.split(":", 1)[1]: n for k, n in sorted(counters.items()) if k.startswith("requests:")}
        retries = {k.split(":", 1)[1]: n for k, n in sorted(counters.items()) if k.startswith("retries:")}
        manifest = {
            "source": cfg.api,
            "source_kind": "api",
            "sitename": crawler.site.sitename,
            "roots": crawler.roots,
            "depth": cfg.depth,
            "excludes": list(cfg.exclude),
            "sql": None,
            "counts": {
                "articles": writer.count,
                "characters": writer.characters,
                "categories": len(categories),
                "categories_listed": state.db.execute("SELECT COUNT(*) FROM categories WHERE status='listed'").fetchone()[0],
                "skipped": dict(sorted((k, v) for k, v in skipped.items() if v)),
                "truncated": 0,
            },
            "truncation": None,
            "excluded_categories": dict(sorted(closure.excluded.items())),
            "requests": {"total": sum(requests.values()), "by_phase": requests},
            "retries": {"total": sum(retries.values()), "by_kind": retries},
            "runs": state.get("runs"),
            "seconds": round(time.perf_counter() - started, 3),
        }
        manifest = writer.finish(categories, manifest)
        state.set("phase", "done")
        state.set("refreshing", False)
        state.commit()
        return manifest
    finally:
        progress.close()
        if index is not None:
            index.close()
        state.close()
