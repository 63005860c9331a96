"""`wikitune extract`: build a corpus directory from a Wikipedia XML dump, offline.

    wikitune extract jawiki-latest-pages-articles.xml.bz2 --out corpus/anime \\
        --root 日本のアニメ作品 --root アニメ関連企業 --depth 6 --exclude 'アニメの登場人物$'
    wikitune extract demo --out corpus/demo          # the fictional wiki shipped in the package

In constant memory, whatever the dump size:
1. index: every page's namespace, redirect/disambiguation status and direct categories (from
   `[[Category:…]]` links, plus SQL `categorylinks` dumps when given) go into `index.sqlite`.
   With `--root`, this is a pass of its own, and the category closure from the roots then picks
   the articles; without `--root` every article is wanted and indexing rides along with step 2.
2. convert: the articles are converted to text/Markdown/infobox fields by worker processes (all
   cores by default) and written, in dump order, through `CorpusWriter`.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import re
import signal
import threading
import time
from collections import Counter, deque
from contextlib import closing, contextmanager
from dataclasses import asdict, dataclass, field
from difflib import get_close_matches
from importlib import resources
from pathlib import Path
from typing import Any, Callable, Iterator

from wikitune.corpus import convert
from wikitune.corpus.index import (
    INDEX_FILE, Closure, PageIndex, categories_in_wikitext, category_link_pattern, compile_excludes, matching_exclude,
)
from wikitune.corpus.names import CATEGORY_NS, MAIN_NS, normalize_category, normalize_title
from wikitune.corpus.page import DISAMBIGUATION, Page, classify
from wikitune.corpus.sources import sqldump
from wikitune.corpus.sources.dump import DumpReader, check_dump
from wikitune.corpus.writer import CorpusWriter, article_record, corpus_output
from wikitune.errors import WikituneError

log = logging.getLogger(__name__)

DEMO = "demo"
# Roots of the demo wiki's anime tree, mirroring the seed report's roots on Japanese Wikipedia.
DEMO_ROOTS = ("日本のアニメ作品", "アニメ関連人物", "アニメ関連企業")


def demo_dump_path() -> Path:
    """Path of the fictional demo wiki (MediaWiki export-0.11 XML) inside the package."""
    return Path(str(resources.files("wikitune") / "data" / "demo_wiki.xml"))


def dump_path(dump: str) -> Path:
    """The file a `dump` argument names: the package's demo wiki for `demo`, else the path itself.

    Callers that must fingerprint the dump's content (the study's cache key) use this, and still
    pass the word `demo` on to `ExtractConfig`, so that the manifest records `source: demo`.
    """
    return demo_dump_path() if dump == DEMO else Path(dump)


@dataclass
class ExtractConfig:
    """Options of `wikitune extract`."""

    dump: str
    """Path of a pages-articles XML dump (.xml, .bz2 incl. multistream, .gz), or `demo`."""
    out: Path
    """Corpus directory to write (created; an old corpus there is replaced once the new one is
    complete; a non-empty directory that is not a wikitune corpus is refused)."""
    roots: list[str] = field(default_factory=list)
    """Root categories (`Category:名前`, `カテゴリ:名前` or `名前`); none = every article."""
    depth: int | None = None
    """Most sub-category steps below a root (root members are depth 0); None = unlimited."""
    exclude: list[str] = field(default_factory=list)
    """Regexes; a category matching one is not entered (searched in `名前` and `Category:名前`)."""
    categorylinks: Path | None = None
    """SQL dump of `categorylinks` (old `cl_to` or 2025 `cl_target_id` schema) adding memberships."""
    linktarget: Path | None = None
    """SQL dump of `linktarget`, needed with a 2025-schema `categorylinks`."""
    page: Path | None = None
    """SQL dump of `page`, resolving category page ids the XML dump does not contain."""
    workers: int = 0
    """Conversion processes; 0 = one per CPU core, 1 = convert in this process."""

    def __post_init__(self) -> None:
        self.out = Path(self.out)
        if self.depth is not None and self.depth < 0:
            raise WikituneError(f"--depth must be 0 or more, got {self.depth}")
        if self.workers < 0:
            raise WikituneError(f"--workers must be 0 or more, got {self.workers}")
        compile_excludes(self.exclude)
        if (self.linktarget or self.page) and not self.categorylinks:
            raise WikituneError("--linktarget and --page only make sense with --categorylinks")
        for flag in ("categorylinks", "linktarget", "page"):
            path = getattr(self, flag)
            if path is not None and not Path(path).is_file():
                raise WikituneError(f"--{flag} {path}: no such file")
        if self.dump != DEMO:
            if Path(self.dump).is_dir():
                raise WikituneError(f"dump {self.dump} is a directory; give the pages-articles .xml/.xml.bz2 file in it, or `demo`")
            if not Path(self.dump).is_file():
                raise WikituneError(f"dump {self.dump}: no such file (give a pages-articles .xml/.xml.bz2 path, or `demo`)")
            check_dump(Path(self.dump))

    def dump_path(self) -> Path:
        return dump_path(self.dump)

    def root_names(self) -> list[str]:
        return list(dict.fromkeys(normalize_category(r) for r in self.roots if r.strip()))


@dataclass
class ExtractResult:
    out: Path
    manifest: dict[str, Any]


# ---- the page index ------------------------------------------------------------------------------
class _Indexer:
    """Turns dump pages into index rows, counting the pages that are not articles."""

    def __init__(self, reader: DumpReader):
        self.reader = reader
        self.skipped: Counter = Counter()
        self._pattern: re.Pattern[str] | None = None
        self._prefixes: tuple[str, ...] = ()

    def row(self, page: Page) -> tuple:
        if self._pattern is None:
            # <siteinfo> precedes the first page, so its namespace names are known by now.
            self._prefixes = self.reader.siteinfo.category_prefixes()
            self._pattern = category_link_pattern(self._prefixes)
        kind = classify(page)
        categories: list[str] = []
        name = page.title
        if page.ns in (MAIN_NS, CATEGORY_NS):
            categories = categories_in_wikitext(page.wikitext, self._pattern, self._prefixes)
        if page.ns == CATEGORY_NS:
            name = normalize_category(page.title, self._prefixes)
        if kind.skip_reason:
            self.skipped[kind.skip_reason] += 1
        return page.pageid, page.ns, page.title, name, kind.redirect, kind.name == DISAMBIGUATION, categories

    @staticmethod
    def is_article(row: tuple) -> bool:
        _pageid, ns, _title, _name, redirect, disambiguation, _categories = row
        return ns == MAIN_NS and redirect is None and not disambiguation


def load_sql(cfg: ExtractConfig, index: PageIndex) -> dict[str, Any]:
    """Add memberships from SQL dumps (before the XML, whose wikitext links then take precedence)."""
    if not cfg.categorylinks:
        return {}
    if cfg.page:
        index.add_sql_pages(
            (pid, ns, f"Category:{title}", normalize_title(title))
            for pid, ns, title, _redirect in sqldump.iter_pages(cfg.page, namespaces=[CATEGORY_NS])
        )
    _, columns, _rows = sqldump.read_table(cfg.categorylinks)
    sql: dict[str, Any] = {"categorylinks": str(cfg.categorylinks), "schema": sqldump.detect_schema(columns)}
    before = index.db.total_changes
    index.add_sql_links((pid, normalize_category(cat)) for pid, cat in sqldump.iter_category_links(cfg.categorylinks, cfg.linktarget))
    sql["links"] = index.db.total_changes - before
    return sql


def index_dump(reader: DumpReader, indexer: _Indexer, index: PageIndex, batch_size: int = 5000) -> None:
    """Pass 1 (with roots): every page of the dump into the index, in batches."""
    rows = (indexer.row(page) for page in reader)
    while batch := [row for _, row in zip(range(batch_size), rows)]:
        index.add_pages(batch)
        if reader.pages_read % 100_000 < len(batch):
            log.info("index: %d pages read", reader.pages_read)
    index.finish_loading()


def check_roots(roots: list[str], index: PageIndex) -> None:
    """Fail with a helpful message for a root category the source does not know."""
    for root in roots:
        if not index.category_exists(root):
            hints = get_close_matches(root, index.all_category_names(), n=3, cutoff=0.5)
            hint = f"; did you mean {', '.join(hints)}?" if hints else ""
            raise WikituneError(f"unknown category {root!r}: the dump has no page for it and no page in it{hint}")


# ---- pass 2: conversion --------------------------------------------------------------------------
def _convert_job(title: str, wikitext: str) -> convert.Converted:
    return convert.convert_wikitext(wikitext, title)


def _ignore_sigint() -> None:
    # Ctrl-C reaches the whole process group. A worker killed by it while holding the pool's task
    # queue lock would leave the main process waiting on that lock forever at shutdown; so the
    # workers ignore SIGINT and the main process, on KeyboardInterrupt, terminates them.
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def _converted_pages(pages: Iterator[Page], workers: int) -> Iterator[tuple[Page, convert.Converted]]:
    """Convert pages in worker processes, yielding in input order with a bounded backlog."""
    if workers <= 1:
        for page in pages:
            yield page, convert.convert_wikitext(page.wikitext, page.title)
        return
    method = "fork" if "fork" in multiprocessing.get_all_start_methods() else "spawn"
    window = workers * 8  # enough to keep every worker busy, small enough for constant memory
    with multiprocessing.get_context(method).Pool(workers, initializer=_ignore_sigint) as pool:
        pending: deque = deque()
        for page in pages:
            pending.append((page, pool.apply_async(_convert_job, (page.title, page.wikitext))))
            while len(pending) > window or (pending and pending[0][1].ready()):
                done, result = pending.popleft()
                yield done, result.get()
        while pending:
            done, result = pending.popleft()
            yield done, result.get()


def run_extract(cfg: ExtractConfig) -> ExtractResult:
    """Extract a corpus; see the module docstring.

    The corpus is written into `OUT.partial/` under the lock `OUT.lock` and swapped into `OUT`
    only once complete: bad input, an error, Ctrl-C or a kill leave an old corpus in `OUT` as it was.

    Raises:
        WikituneError: bad input (the dump is not a dump, an unknown root, ...), or `OUT` is not
            empty and not a wikitune corpus, or another process is writing it (`OutputLocked`).
    """
    with corpus_output(cfg.out) as output, _ctrl_c_sticks() as interrupted:
        manifest = _extract_into(cfg, output.work, interrupted)
        interrupted()  # an interrupt that Python swallowed still stops us before the swap
        output.commit()
    return ExtractResult(out=cfg.out, manifest=manifest)


@contextmanager
def _ctrl_c_sticks() -> Iterator[Callable[[], None]]:
    """Ctrl-C must stop an extract even when its KeyboardInterrupt lands where Python swallows
    exceptions (a `__del__` or weakref callback run by the garbage collector, seen under load):
    the interrupt is remembered, and the check it yields raises it again. Main thread only
    (elsewhere Python delivers no signals); the previous handler comes back afterwards."""
    if threading.current_thread() is not threading.main_thread():
        yield lambda: None
        return
    seen: list[int] = []

    def on_sigint(signum: int, frame: object) -> None:
        seen.append(signum)
        raise KeyboardInterrupt

    def check() -> None:
        if seen:
            raise KeyboardInterrupt

    previous = signal.signal(signal.SIGINT, on_sigint)
    try:
        yield check
    finally:
        signal.signal(signal.SIGINT, previous)


def _extract_into(cfg: ExtractConfig, out: Path, interrupted: Callable[[], None]) -> dict[str, Any]:
    started = time.perf_counter()
    roots = cfg.root_names()
    writer = CorpusWriter(out)
    index = PageIndex.create(out / INDEX_FILE)
    try:
        sql = load_sql(cfg, index)
        reader = DumpReader(cfg.dump_path())
        indexer = _Indexer(reader)
        closure: Closure | None = None
        if roots:
            # Two passes: the closure needs every category link before any article is picked.
            index_dump(reader, indexer, index)
            _check_not_empty(reader, cfg)
            check_roots(roots, index)
            excludes = compile_excludes(cfg.exclude)
            excluded_roots = [r for r in roots if matching_exclude(r, excludes) is not None]
            if excluded_roots:
                raise WikituneError(f"root {excluded_roots[0]!r} matches an --exclude pattern, so nothing under it would be kept")
            closure = index.closure(roots, cfg.depth, excludes)
            picked = [pid for pid in closure.article_depth if index.is_content_article(pid)]
            indexer.skipped["outside_roots"] = index.count_content_articles() - len(picked)
            log.info("index: %d pages read, %d articles under the roots", reader.pages_read, len(picked))
            wanted: Iterator[Page] = (page for page in DumpReader(cfg.dump_path()) if page.pageid in closure.article_depth
                                      and page.ns == MAIN_NS and index.is_content_article(page.pageid))
        else:
            # One pass: every article is wanted, so index and convert as the pages stream by.
            def index_as_we_go() -> Iterator[Page]:
                for page in reader:
                    row = indexer.row(page)
                    index.add_pages([row])
                    if indexer.is_article(row):
                        yield page

            wanted = index_as_we_go()

        workers = cfg.workers or os.cpu_count() or 1
        # closing(): on Ctrl-C or an error the worker pool is terminated now, not when collected.
        with closing(_converted_pages(wanted, workers)) as converted_pages:
            for page, converted in converted_pages:
                interrupted()
                if not converted.text.strip():
                    indexer.skipped["empty_text"] += 1
                    continue
                stem = index.claim_file(page.pageid, page.title)
                writer.add(article_record(
                    pageid=page.pageid, title=page.title, revid=page.revid, timestamp=page.timestamp,
                    url=reader.siteinfo.article_url(page.title), categories=index.categories_of(page.pageid),
                    depth=closure.article_depth.get(page.pageid, {}) if closure else {}, converted=converted, file=stem,
                ))
        if not roots:
            _check_not_empty(reader, cfg)
            index.finish_loading()
        if reader.truncation:
            log.warning(reader.truncation.message(cfg.dump_path()))
        if reader.bad_pages:
            indexer.skipped["unreadable"] += len(reader.bad_pages)
            for bad in reader.bad_pages[:5]:
                log.warning("%s: skipped malformed page %s", cfg.dump_path(), bad)
            if len(reader.bad_pages) > 5:
                log.warning("%s: %d more malformed pages skipped (all in manifest.json)", cfg.dump_path(), len(reader.bad_pages) - 5)

        categories = index.category_records(closure)
        manifest = {
            "source": "demo" if cfg.dump == DEMO else str(Path(cfg.dump).resolve()),
            "source_kind": "dump",
            "sitename": reader.siteinfo.sitename,
            "roots": roots,
            "depth": cfg.depth,
            "excludes": list(cfg.exclude),
            "sql": sql or None,
            "counts": {
                "pages_read": reader.pages_read,
                "articles": writer.count,
                "characters": writer.characters,
                "categories": len(categories),
                "skipped": dict(sorted(indexer.skipped.items())),
                "truncated": 1 if reader.truncation else 0,
            },
            "truncation": asdict(reader.truncation) if reader.truncation else None,
            "unreadable_pages": [asdict(bad) for bad in reader.bad_pages[:100]],  # the first 100, for a look
            "excluded_categories": dict(sorted(closure.excluded.items())) if closure else {},
            "seconds": round(time.perf_counter() - started, 3),
        }
        return writer.finish(categories, manifest)
    finally:
        index.close()


def _check_not_empty(reader: DumpReader, cfg: ExtractConfig) -> None:
    if reader.pages_read:
        return
    why = f"; {reader.truncation.message(cfg.dump_path())}" if reader.truncation else ""
    unreadable = f"; {len(reader.bad_pages)} malformed, first: {reader.bad_pages[0]}" if reader.bad_pages else ""
    raise WikituneError(f"{cfg.dump_path()}: no complete <page> found; is this a MediaWiki XML export?{why}{unreadable}")
