"""Stream pages out of a MediaWiki XML export, in constant memory.

    reader = DumpReader(Path("jawiki-latest-pages-articles.xml.bz2"))
    for page in reader:          # Page objects, in file order
        ...
    reader.siteinfo, reader.truncation   # known once iteration has started / finished

Reads plain XML, `.bz2` (multistream files are concatenated bz2 streams, which `bz2` reads as
one), `.gz`, export-0.10 and 0.11 (namespace URIs are ignored), and a bare `<page>` file with no
`<mediawiki>` wrapper. A dump that ends early (the shared 2022 excerpt stops without
`</mediawiki>`) or turns malformed yields every complete page before the cut and records where
it stopped in `truncation`; it never raises for that.
"""

from __future__ import annotations

import bz2
import gzip
import io
import queue
import threading
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator
from urllib.parse import quote

from wikitune.corpus.names import CATEGORY_NS, DEFAULT_CATEGORY_PREFIXES
from wikitune.corpus.page import Page
from wikitune.errors import WikituneError

CHUNK_BYTES = 1 << 20


@dataclass
class SiteInfo:
    """What `<siteinfo>` says about the wiki; defaults describe Japanese Wikipedia."""

    sitename: str = ""
    dbname: str = ""
    base: str = ""
    case: str = "first-letter"
    namespaces: dict[int, str] = field(default_factory=lambda: {CATEGORY_NS: "Category"})

    def category_prefixes(self) -> tuple[str, ...]:
        """Every prefix that puts a link in the category namespace on this wiki."""
        local = self.namespaces.get(CATEGORY_NS)
        names = list(DEFAULT_CATEGORY_PREFIXES)
        if local and local not in names:
            names.append(local)
        return tuple(names)

    def namespace_prefixes(self) -> dict[str, int]:
        """Namespace name (case-folded) -> number, for every named namespace."""
        return {name.casefold(): key for key, name in self.namespaces.items() if name}

    def article_url(self, title: str) -> str | None:
        """The page's URL, built like the wiki's own links from `<base>` (None without one)."""
        if not self.base or "/" not in self.base:
            return None
        prefix = self.base.rsplit("/", 1)[0]
        return f"{prefix}/{quote(title.replace(' ', '_'), safe='/:()!,;*@$')}"


@dataclass
class Truncation:
    """Where and why a dump stopped early."""

    byte_offset: int
    reason: str
    last_title: str | None
    open_page: bool

    def message(self, path: Path) -> str:
        after = f" after page {self.last_title!r}" if self.last_title else " before the first page"
        partial = "; the page being read there was incomplete and is not kept" if self.open_page else ""
        return (
            f"{path}: dump ends early at byte {self.byte_offset} of the XML ({self.reason}){after}; "
            f"every complete page before the cut is kept{partial}"
        )


def open_dump(path: Path) -> io.BufferedIOBase:
    """Open a dump as a binary stream of XML, whatever its compression (by magic bytes)."""
    try:
        with open(path, "rb") as probe:
            magic = probe.read(3)
    except OSError as err:
        raise WikituneError(f"cannot read dump {path}: {err.strerror}") from err
    if magic.startswith(b"BZh"):
        return bz2.open(path, "rb")
    if magic.startswith(b"\x1f\x8b"):
        return gzip.open(path, "rb")
    return open(path, "rb")


def _local(tag: str) -> str:
    """Tag name without its `{namespace-uri}`, so export-0.10 and 0.11 read the same."""
    return tag.rsplit("}", 1)[-1]


def _child_text(elem: ET.Element, name: str) -> str | None:
    for child in elem:
        if _local(child.tag) == name:
            return child.text or ""
    return None


def _child(elem: ET.Element, name: str) -> ET.Element | None:
    for child in elem:
        if _local(child.tag) == name:
            return child
    return None


def _parse_siteinfo(elem: ET.Element) -> SiteInfo:
    info = SiteInfo(namespaces={})
    info.sitename = _child_text(elem, "sitename") or ""
    info.dbname = _child_text(elem, "dbname") or ""
    info.base = _child_text(elem, "base") or ""
    info.case = _child_text(elem, "case") or "first-letter"
    namespaces = _child(elem, "namespaces")
    if namespaces is not None:
        for ns in namespaces:
            try:
                info.namespaces[int(ns.get("key", ""))] = (ns.text or "").strip()
            except ValueError:
                continue
    if CATEGORY_NS not in info.namespaces:
        info.namespaces[CATEGORY_NS] = "Category"
    return info


def _parse_page(elem: ET.Element) -> Page:
    title = _child_text(elem, "title") or ""
    ns_text = _child_text(elem, "ns")
    pageid_text = _child_text(elem, "id")
    if pageid_text is None:
        raise ValueError(f"page {title!r} has no <id>")
    redirect = _child(elem, "redirect")
    revision = _child(elem, "revision")
    wikitext, revid, timestamp = "", None, None
    if revision is not None:
        wikitext = _child_text(revision, "text") or ""
        rev_text = _child_text(revision, "id")
        revid = int(rev_text) if rev_text else None
        timestamp = _child_text(revision, "timestamp")
    return Page(
        pageid=int(pageid_text),
        title=title,
        ns=int(ns_text) if ns_text else _guess_ns(title),
        wikitext=wikitext,
        revid=revid,
        timestamp=timestamp,
        redirect=redirect.get("title") if redirect is not None else None,
    )


def _guess_ns(title: str) -> int:
    # Very old exports have no <ns>; the category namespace is the only one we must recognise.
    head = title.partition(":")[0].casefold()
    return CATEGORY_NS if head in {p.casefold() for p in DEFAULT_CATEGORY_PREFIXES} else 0


class _ReadAhead:
    """Decompress the next chunks in a thread while the caller parses this one.

    bz2 and zlib release the GIL while they decompress, so on two cores the decompression of a
    `.bz2` dump (a third of the reading time) overlaps XML parsing. The queue is bounded: memory
    stays at a few chunks whatever the dump size.
    """

    def __init__(self, stream: io.BufferedIOBase, chunk_bytes: int, depth: int = 4):
        self._stream = stream
        self._chunk_bytes = chunk_bytes
        self._queue: queue.Queue = queue.Queue(maxsize=depth)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="dump-read-ahead", daemon=True)

    def __enter__(self) -> "_ReadAhead":
        self._thread.start()
        return self

    def _run(self) -> None:
        try:
            while not self._stop.is_set():
                chunk = self._stream.read(self._chunk_bytes)
                self._put(chunk)
                if not chunk:
                    return
        except (EOFError, OSError) as err:
            self._put(err)

    def _put(self, item: bytes | BaseException) -> None:
        while not self._stop.is_set():
            try:
                self._queue.put(item, timeout=0.1)
                return
            except queue.Full:
                continue

    def read(self) -> bytes:
        item = self._queue.get()
        if isinstance(item, BaseException):
            raise item
        return item

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self._stream.close()


class DumpReader:
    """Iterate over the pages of one XML dump; see the module docstring."""

    def __init__(self, path: Path, chunk_bytes: int = CHUNK_BYTES):
        self.path = Path(path)
        self.chunk_bytes = chunk_bytes
        self.siteinfo = SiteInfo()
        self.truncation: Truncation | None = None
        self.bytes_read = 0
        self.pages_read = 0
        self.bad_pages: list[str] = []

    def __iter__(self) -> Iterator[Page]:
        parser = ET.XMLPullParser(events=("start", "end"))
        state = _ParseState()
        with _ReadAhead(open_dump(self.path), self.chunk_bytes) as chunks:
            while True:
                try:
                    chunk = chunks.read()
                except (EOFError, OSError) as err:
                    # A cut .bz2/.gz: keep everything that decompressed cleanly.
                    self._stop(f"compressed stream cut: {err}", state)
                    return
                try:
                    if chunk:
                        parser.feed(chunk)
                        chunk_start = self.bytes_read
                        self.bytes_read += len(chunk)
                    else:
                        parser.close()
                    # read_events raises the parse error only after yielding every event before it,
                    # so the pages completed before a fault are still delivered.
                    for event, elem in parser.read_events():
                        page = self._handle(event, elem, state)
                        if page is not None:
                            yield page
                except ET.ParseError as err:
                    if not chunk:
                        reason = "the XML is not closed: no end tag for <%s>" % (state.open_tags[-1] if state.open_tags else "?")
                    else:
                        line, column = err.position
                        reason = (
                            f"malformed XML at line {line}, column {column}, "
                            f"in bytes {chunk_start}-{self.bytes_read}"
                        )
                        self.bytes_read = chunk_start
                    self._stop(reason, state)
                    return
                if not chunk:
                    return

    def _handle(self, event: str, elem: ET.Element, state: "_ParseState") -> Page | None:
        name = _local(elem.tag)
        if event == "start":
            if state.root is None:
                state.root = elem
            state.open_tags.append(name)
            return None
        state.open_tags.pop()
        if name == "siteinfo":
            self.siteinfo = _parse_siteinfo(elem)
            elem.clear()
        elif name == "page":
            page = self._page_or_none(elem)
            # Drop the finished page from the tree, or memory grows with the dump.
            # The parser may already be inside the next page, so the finished one need not be last.
            elem.clear()
            if state.root is not None and elem is not state.root:
                try:
                    state.root.remove(elem)
                except ValueError:
                    pass
            if page is not None:
                state.last_title = page.title
                self.pages_read += 1
            return page
        return None

    def _page_or_none(self, elem: ET.Element) -> Page | None:
        try:
            return _parse_page(elem)
        except ValueError as err:
            title = _child_text(elem, "title") or "?"
            self.bad_pages.append(f"{title}: {err}")
            return None

    def _stop(self, reason: str, state: "_ParseState") -> None:
        # The caller reports it (once, even if it reads the dump twice).
        self.truncation = Truncation(self.bytes_read, reason, state.last_title, "page" in state.open_tags)


@dataclass
class _ParseState:
    root: ET.Element | None = None
    open_tags: list[str] = field(default_factory=list)
    last_title: str | None = None
