"""Stream pages out of a MediaWiki XML export, in constant memory.

    reader = DumpReader(Path("jawiki-latest-pages-articles.xml.bz2"))
    for page in reader:          # Page objects, in file order
        ...
    reader.siteinfo, reader.truncation   # known once iteration has started / finished

Reads plain XML, `.bz2` (multistream files are concatenated bz2 streams, which `bz2` reads as
one), `.gz`, export-0.10 and 0.11 (namespace URIs are ignored), and a bare `<page>` file with no
`<mediawiki>` wrapper. A dump that ends early (the shared 2022 excerpt stops without
`</mediawiki>`) yields every complete page before the cut and records where it stopped in
`truncation`. A malformed page (an invalid byte, a broken tag) is skipped and recorded in
`bad_pages` with its byte offset and title, and the pages after it are read: the stream is cut
into pages at their `<page>`/`</page>` tags and each page is parsed on its own. A file that is
not a MediaWiki export at all (empty, an SQL dump, not XML, another root element) raises
WikituneError.
"""

from __future__ import annotations

import bz2
import gzip
import html
import io
import re
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


@dataclass
class BadPage:
    """A page whose XML is malformed: skipped, and named where it starts."""

    byte_offset: int
    title: str
    reason: str

    def __str__(self) -> str:
        return f"{self.title!r} at byte {self.byte_offset} of the XML: {self.reason}"


# Tags as bytes: inside a MediaWiki export a raw `<` only ever starts markup (text escapes it as
# `&lt;`), so `<page>` and `</page>` split the stream into pages without parsing it.
_PAGE_START = re.compile(rb"<page[\s>]")
_PAGE_END = re.compile(rb"</page\s*>")
_TITLE = re.compile(rb"<title>(.*?)</title>", re.S)
_SQL_HINTS = (b"-- MySQL dump", b"-- MariaDB dump", b"INSERT INTO", b"CREATE TABLE", b"DROP TABLE", b"/*!40")
HEAD_BYTES = 1 << 16


def check_dump_head(head: bytes, path: Path) -> None:
    """Fail on a file that is plainly not a MediaWiki XML export, from its first bytes.

    Raises:
        WikituneError: an empty file, an SQL dump, a file that is not XML, or XML whose root
            element is neither <mediawiki> nor <page>.
    """
    text = head.lstrip(b"\xef\xbb\xbf \t\r\n")
    if not text:
        raise WikituneError(f"dump {path} is empty; give a pages-articles XML dump (.xml, .xml.bz2, .xml.gz)")
    if any(hint in text[:4096] for hint in _SQL_HINTS):
        raise WikituneError(
            f"dump {path} is an SQL dump, not the XML pages-articles dump; SQL dumps go to "
            f"--categorylinks, --page and --linktarget"
        )
    if not text.startswith(b"<"):
        raise WikituneError(f"dump {path} is not XML (it starts with {text[:20]!r}); give a pages-articles XML dump")
    parser = ET.XMLPullParser(events=("start",))
    try:
        parser.feed(text)
        root = next((_local(elem.tag) for _event, elem in parser.read_events()), None)
    except ET.ParseError as err:
        raise WikituneError(f"dump {path} is not well-formed XML at its start ({err})") from err
    if root is not None and root not in ("mediawiki", "page"):
        raise WikituneError(f"dump {path} is not a MediaWiki XML export: its root element is <{root}>, not <mediawiki>")


def check_dump(path: Path) -> None:
    """`check_dump_head` on the first decompressed bytes of the file at `path`."""
    with open_dump(path) as stream:
        try:
            head = stream.read(HEAD_BYTES)
        except (EOFError, OSError) as err:
            raise WikituneError(f"dump {path} cannot be decompressed: {err}") from err
    check_dump_head(head, path)


class DumpReader:
    """Iterate over the pages of one XML dump; see the module docstring."""

    def __init__(self, path: Path, chunk_bytes: int = CHUNK_BYTES):
        self.path = Path(path)
        self.chunk_bytes = chunk_bytes
        self.siteinfo = SiteInfo()
        self.truncation: Truncation | None = None
        self.bytes_read = 0
        self.pages_read = 0
        self.bad_pages: list[BadPage] = []

    def __iter__(self) -> Iterator[Page]:
        buf = bytearray()
        base = 0  # offset of buf[0] in the decompressed XML
        header: bool | None = None  # None until the header (what precedes the first <page>) is read
        root: str | None = None
        last_title: str | None = None
        with _ReadAhead(open_dump(self.path), self.chunk_bytes) as chunks:
            while True:
                cut = None
                try:
                    chunk = chunks.read()
                except (EOFError, OSError) as err:
                    cut, chunk = f"compressed stream cut: {err}", b""
                buf += chunk
                self.bytes_read += len(chunk)
                eof = not chunk
                pos = 0
                if header is None:
                    first = _PAGE_START.search(buf)
                    if first is None and not eof:
                        if len(buf) - len(chunk) < HEAD_BYTES <= len(buf):
                            check_dump_head(bytes(buf[:HEAD_BYTES]), self.path)  # not XML: fail before reading it all
                        continue  # the header is small: <siteinfo> only
                    end = first.start() if first else len(buf)
                    root = self._read_header(bytes(buf[:end]), page_follows=first is not None)
                    header, pos = True, end
                while (start := _PAGE_START.search(buf, pos)) is not None:
                    close = _PAGE_END.search(buf, start.end())
                    stop = close.start() if close else len(buf)
                    after = _PAGE_START.search(buf, start.end(), stop)
                    if after is not None:  # a page that never closes before the next one starts
                        self._bad(bytes(buf[start.start():after.start()]), base + start.start(), "no </page> before the next <page>")
                        pos = after.start()
                        continue
                    if close is None:
                        break  # the rest of the page is in the next chunk
                    page = self._parse(bytes(buf[start.start():close.end()]), base + start.start())
                    pos = close.end()
                    if page is not None:
                        last_title = page.title
                        self.pages_read += 1
                        yield page
                if eof:
                    self._finish(bytes(buf[pos:]), root, cut, last_title)
                    return
                del buf[:pos]
                base += pos

    def _read_header(self, head: bytes, page_follows: bool) -> str | None:
        """Check the XML before the first page and read its <siteinfo>; returns the root tag."""
        if head.strip() or not page_follows:  # a bare <page> file has no header at all
            check_dump_head(head, self.path)
        parser = ET.XMLPullParser(events=("start", "end"))
        root = None
        try:
            parser.feed(head)
            for event, elem in parser.read_events():
                if event == "start" and root is None:
                    root = _local(elem.tag)
                elif event == "end" and _local(elem.tag) == "siteinfo":
                    self.siteinfo = _parse_siteinfo(elem)
        except ET.ParseError as err:
            raise WikituneError(f"dump {self.path}: malformed XML before the first <page> ({err})") from err
        return root

    def _parse(self, data: bytes, offset: int) -> Page | None:
        try:
            return _parse_page(ET.fromstring(data))
        except ET.ParseError as err:
            self._bad(data, offset, f"malformed XML ({err})")
        except ValueError as err:
            self._bad(data, offset, str(err))
        return None

    def _bad(self, data: bytes, offset: int, reason: str) -> None:
        match = _TITLE.search(data)
        title = html.unescape(match.group(1).decode("utf-8", errors="replace")) if match else "?"
        self.bad_pages.append(BadPage(offset, title, reason))

    def _finish(self, tail: bytes, root: str | None, cut: str | None, last_title: str | None) -> None:
        """At the end of the stream: record a truncation if the XML does not end where it should."""
        open_page = _PAGE_START.search(tail) is not None
        closed = root != "mediawiki" or re.search(rb"</mediawiki\s*>", tail) is not None
        if cut is None and closed and not open_page:
            return
        if cut is not None:
            reason = cut
        elif open_page:
            reason = "the XML ends inside a <page>"
        else:
            reason = "the XML is not closed: no end tag for <mediawiki>"
        # The caller reports it (once, even if it reads the dump twice).
        self.truncation = Truncation(self.bytes_read, reason, last_title, open_page)
