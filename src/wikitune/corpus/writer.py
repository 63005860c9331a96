"""Write a corpus directory (see shared DESIGN.md): one implementation for `extract` and `crawl`.

    CORPUS/manifest.json  articles.jsonl  categories.jsonl  text/<file>.txt  markdown/<file>.md

Articles may arrive in any order (worker processes finish out of order); they are spooled into
SQLite and `articles.jsonl` is written sorted by page id at the end, in constant memory.
`manifest.json` is written last, stamped as a wikitune corpus (`outputs.stamp`). The corpus is
written into `CORPUS.partial/` under `CORPUS.lock` and swapped into place complete (`corpus_output`).
"""

from __future__ import annotations

import hashlib
import json
import shutil
import sqlite3
import unicodedata
from pathlib import Path
from typing import Any, Iterable

from wikitune import formats
from wikitune.corpus.convert import Converted, markdown_heading_text
from wikitune.errors import WikituneError
from wikitune.formats import ARTICLES, CATEGORIES, MANIFEST, MARKDOWN_DIR, TEXT_DIR
from wikitune.outputs import OutputDir, stamp

SPOOL = ".articles.spool.sqlite"
# What `outputs.stamp` records in a corpus manifest; corpora written before kinds were recorded
# are recognised by their `source_kind`.
CORPUS_KIND = "corpus"
LEGACY_KEY = "source_kind"
# The crawler's resumable state (`wikitune crawl`) and the journal files SQLite may leave beside it.
CRAWL_STATE = ".crawl.sqlite"
CRAWL_STATE_FILES = {CRAWL_STATE, *(CRAWL_STATE + suffix for suffix in ("-journal", "-wal", "-shm"))}

# Longest file stem in UTF-8 bytes: leaves room for "~<hash>" and ".md" under the usual
# 255-byte file name limit of ext4/APFS/NTFS.
MAX_STEM_BYTES = 200

# Characters that are unsafe in a file name on some system we care about (POSIX, Windows, macOS).
# `~` is escaped too: it marks the suffixes that make names unique (`名前~1234`).
_UNSAFE = set('/\\:*?"<>|%~')
# Characters that are invisible or reorder what a terminal shows: controls (Cc, incl. U+0085),
# format characters (Cf, incl. U+202E RIGHT-TO-LEFT OVERRIDE and zero-width ones), and the line and
# paragraph separators (Zl, Zp). A title carrying one gets a file name that shows it escaped.
_INVISIBLE_CATEGORIES = {"Cc", "Cf", "Zl", "Zp"}
_WINDOWS_RESERVED = {"CON", "PRN", "AUX", "NUL", *(f"COM{i}" for i in range(1, 10)), *(f"LPT{i}" for i in range(1, 10))}


def _escape(title: str) -> str:
    """Percent-encode unsafe characters (and `%` itself, so the mapping is reversible)."""
    return "".join(
        _escape_char_always(ch) if ch in _UNSAFE or unicodedata.category(ch) in _INVISIBLE_CATEGORIES else ch
        for ch in title
    )


def safe_stem(title: str) -> str:
    """A file name stem for `title` that is safe on every common file system (not yet unique).

    `Fate/Zero` -> `Fate%2FZero`; `..` -> `%2E%2E`; over-long titles are cut at a character
    boundary and get a hash of the full title, so two long titles with a common prefix differ.
    """
    stem = _escape(unicodedata.normalize("NFC", title))
    if stem.startswith("."):
        stem = "%2E" + stem[1:]
    if stem.endswith((" ", ".")):
        stem = stem[:-1] + _escape_char_always(stem[-1])
    if stem.split(".")[0].upper() in _WINDOWS_RESERVED or not stem:
        stem = "_" + stem
    encoded = stem.encode("utf-8")
    if len(encoded) > MAX_STEM_BYTES:
        cut = encoded[: MAX_STEM_BYTES - 9].decode("utf-8", errors="ignore")
        stem = f"{cut}~{hashlib.sha1(title.encode('utf-8')).hexdigest()[:8]}"
    return stem


def _escape_char_always(ch: str) -> str:
    return "".join(f"%{b:02X}" for b in ch.encode("utf-8"))


def article_record(
    *, pageid: int, title: str, revid: int | None, timestamp: str | None, url: str | None,
    categories: list[str], depth: dict[str, int], converted: Converted, file: str,
) -> dict[str, Any]:
    """One `articles.jsonl` record (DESIGN.md), the same whichever source the page came from."""
    return {
        "pageid": pageid,
        "title": title,
        "revid": revid,
        "timestamp": timestamp,
        "url": url,
        "categories": list(categories),
        "depth": dict(depth),
        "text": converted.text,
        "markdown": f"# {markdown_heading_text(title)}\n\n{converted.markdown}" if converted.markdown
                    else f"# {markdown_heading_text(title)}\n",
        "infobox": converted.infobox,
        "file": file,
    }


def corpus_output(out: Path, *, keep_partial: bool = False) -> OutputDir:
    """The locked, atomically replaced output of `extract` and `crawl` (see `wikitune.outputs`):
    refuses a non-empty `out` that is not a wikitune corpus, and another process writing it."""
    return OutputDir(out, CORPUS_KIND, manifest=MANIFEST, keep_partial=keep_partial, legacy_key=LEGACY_KEY)


class CorpusWriter:
    """Writes one corpus into a directory the caller owns and has locked (`OutputDir.work`);
    `add` every article, then `finish`."""

    def __init__(self, out: Path):
        self.out = Path(out)
        self._prepare()
        (self.out / TEXT_DIR).mkdir()
        (self.out / MARKDOWN_DIR).mkdir()
        self._spool = sqlite3.connect(self.out / SPOOL)
        self._spool.execute("PRAGMA journal_mode=OFF")
        self._spool.execute("PRAGMA synchronous=OFF")
        self._spool.execute("CREATE TABLE articles (pageid INTEGER PRIMARY KEY, record TEXT NOT NULL)")
        self.count = 0
        self.characters = 0

    def _prepare(self) -> None:
        # `out` is the caller's own work directory (`outputs.OutputDir.work`): what an earlier,
        # interrupted write left there is replaced; anything else there (a crawl's state) stays.
        self.out.mkdir(parents=True, exist_ok=True)
        for name in (MANIFEST, ARTICLES, CATEGORIES, SPOOL):
            (self.out / name).unlink(missing_ok=True)
        for name in (TEXT_DIR, MARKDOWN_DIR):
            if (self.out / name).is_dir():
                shutil.rmtree(self.out / name)

    def add(self, record: dict[str, Any]) -> None:
        """Write one article record (DESIGN.md fields; `file` already assigned)."""
        stem = record["file"]
        _write_text(self.out / TEXT_DIR / f"{stem}.txt", record["text"])
        _write_text(self.out / MARKDOWN_DIR / f"{stem}.md", record["markdown"])
        self._spool.execute(
            "INSERT OR REPLACE INTO articles VALUES (?, ?)",
            (record["pageid"], json.dumps(record, ensure_ascii=False)),
        )
        self.count += 1
        self.characters += len(record["text"])

    def finish(self, categories: Iterable[dict[str, Any]], manifest: dict[str, Any]) -> dict[str, Any]:
        """Write articles.jsonl (sorted by page id), categories.jsonl, and the manifest last."""
        self._spool.commit()
        with open(self.out / ARTICLES, "w", encoding="utf-8") as f:
            # The spool holds each record already as one line of JSON: copied, not parsed again.
            for (record,) in self._spool.execute("SELECT record FROM articles ORDER BY pageid"):
                f.write(record + "\n")
        self._spool.close()
        (self.out / SPOOL).unlink()
        formats.write_jsonl(self.out / CATEGORIES, categories)
        manifest = stamp(manifest, CORPUS_KIND)
        formats.write_json(self.out / MANIFEST, manifest)  # atomic: a corpus is complete once it is there
        return manifest


def _write_text(path: Path, text: str) -> None:
    # Defence in depth: a file name must never leave the corpus directory.
    if path.parent.name not in (TEXT_DIR, MARKDOWN_DIR) or "/" in path.name or path.name.startswith(".."):
        raise WikituneError(f"refusing to write outside the corpus: {path}")
    path.write_text(text + ("\n" if text and not text.endswith("\n") else ""), encoding="utf-8")
