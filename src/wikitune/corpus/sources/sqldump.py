"""Stream rows out of MediaWiki SQL dumps (mysqldump files, ``.sql`` or ``.sql.gz``).

Category membership for ``wikitune extract`` can come from the SQL dumps published next to
the XML dump (``jawiki-YYYYMMDD-categorylinks.sql.gz``, ``-page.sql.gz``, ``-linktarget.sql.gz``).
Each file holds one ``CREATE TABLE`` statement followed by many (possibly tens of MB long)
``INSERT INTO `t` VALUES (...),(...);`` lines. This module reads them line by line in
constant memory, takes the column order from the ``CREATE TABLE`` statement (never from
position) and handles both ``categorylinks`` schemas:

* MediaWiki <= 1.42: ``categorylinks`` carries the category title in ``cl_to``;
* MediaWiki >= 1.43 (2025 dumps): no ``cl_to``; ``cl_target_id`` points into
  ``linktarget(lt_id, lt_namespace, lt_title)``, categories being the rows with
  ``lt_namespace = 14``. Such a dump cannot be read without its ``linktarget`` file.

Usage::

    from pathlib import Path
    from wikitune.corpus.sources.sqldump import iter_category_links, iter_pages, read_table

    # 2025+ dump: pass the matching linktarget file (an older dump needs none)
    for page_id, category in iter_category_links(
        Path("jawiki-20250601-categorylinks.sql.gz"),
        Path("jawiki-20250601-linktarget.sql.gz"),
    ):
        ...  # (12345, "日本のアニメ作品") -- spaces, not underscores

    for page_id, ns, title, is_redirect in iter_pages(Path("jawiki-20250601-page.sql.gz"), {0, 14}):
        ...

    name, columns, rows = read_table(Path("jawiki-20250601-page.sql.gz"))  # any table

Every problem with a file's content raises :class:`SQLDumpError` (a ``ValueError``) whose
message names the file, the line, what is wrong and what to do about it. Header problems
(missing ``CREATE TABLE``, wrong table, missing ``--linktarget``) are raised by the call
itself; problems in the data are raised while iterating.
"""

from __future__ import annotations

import gzip
import logging
import re
import zlib
from collections.abc import Collection, Iterator, Sequence
from functools import lru_cache
from pathlib import Path
from typing import BinaryIO, NoReturn

from wikitune.errors import WikituneError

__all__ = [
    "SQLDumpError",
    "detect_schema",
    "iter_category_links",
    "iter_pages",
    "load_category_targets",
    "read_table",
]

log = logging.getLogger(__name__)

CATEGORY_NAMESPACE = 14

# A mysqldump header is a few dozen short lines; give up looking for CREATE TABLE after this
# many bytes so that a wrong file (an XML dump, say) fails fast instead of being read whole.
_HEADER_LIMIT = 16 * 1024 * 1024


class SQLDumpError(WikituneError, ValueError):
    """A malformed or unsupported SQL dump; the message names the file, what is wrong, and what to do."""


# --------------------------------------------------------------------------------------------
# Tokens

# A MySQL string literal: backslash escapes and doubled quotes (unrolled loop: linear time).
_STR = r"'[^'\\]*(?:(?:\\.|'')[^'\\]*)*'"
# One value: string (optionally _binary-prefixed), NULL, hex literal, number.
_VAL = (
    rf"_binary[ \t]*{_STR}|{_STR}|NULL|0[xX][0-9A-Fa-f]*"
    r"|[-+]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][-+]?[0-9]+)?"
)
_WS = r"[ \t\r\n]*"

_VALUE_RE = re.compile(rf"{_WS}({_VAL})", re.S)
_OPEN_RE = re.compile(rf"{_WS}\(")
_INROW_SEP_RE = re.compile(rf"{_WS}([,)])")
_ROW_SEP_RE = re.compile(rf"{_WS}([,;])")

_IDENT = r"`(?:[^`]|``)+`|[A-Za-z0-9_$]+"
_INSERT_RE = re.compile(
    rf"\s*(?:INSERT(?:\s+(?:IGNORE|LOW_PRIORITY|DELAYED|HIGH_PRIORITY))*|REPLACE)\s+(?:INTO\s+)?"
    rf"(?:(?:{_IDENT})\.)?(?P<name>{_IDENT})\s*(?:\((?P<cols>[^)]*)\)\s*)?VALUES?\s*",
    re.I,
)
_INSERT_START_RE = re.compile(rb"\s*(?:INSERT|REPLACE)\b", re.I)
_CREATE_START_RE = re.compile(rb"\s*CREATE\s+(?:TEMPORARY\s+)?TABLE\b", re.I)
_CREATE_RE = re.compile(
    rf"\s*CREATE\s+(?:TEMPORARY\s+)?TABLE\s+(?:IF\s+NOT\s+EXISTS\s+)?"
    rf"(?:(?:{_IDENT})\.)?(?P<name>{_IDENT})\s*\(",
    re.I,
)
_NON_COLUMN_WORDS = frozenset(
    {"PRIMARY", "KEY", "INDEX", "UNIQUE", "CONSTRAINT", "FOREIGN", "FULLTEXT", "SPATIAL", "CHECK", "PERIOD"}
)

_ESCAPES = {"0": "\0", "b": "\b", "n": "\n", "r": "\r", "t": "\t", "Z": "\x1a", "%": "\\%", "_": "\\_"}
_UNESCAPE_RE = re.compile(r"\\(.)|''", re.S)


def _unescape_one(m: re.Match[str]) -> str:
    c = m.group(1)
    if c is None:  # a doubled quote ''
        return "'"
    return _ESCAPES.get(c, c)


def _convert(tok: str) -> int | float | str | None:
    """Turn one raw value token (as matched by ``_VAL``) into a Python value."""
    c = tok[0]
    if c == "'":
        s = tok[1:-1]
        if "\\" in s or "''" in s:
            return _UNESCAPE_RE.sub(_unescape_one, s)
        return s
    if c == "N":
        return None
    if c == "_":
        return _convert(tok[7:].lstrip())
    try:
        return int(tok)
    except ValueError:
        pass
    if tok[:2] in ("0x", "0X"):
        digits = tok[2:]
        if len(digits) % 2:
            digits = "0" + digits
        return bytes.fromhex(digits).decode("utf-8", "replace")
    return float(tok)


def _to_int(tok: str) -> int | None:
    """Raw token -> int, accepting quoted digits; None for NULL or anything non-integral."""
    try:
        return int(tok)
    except ValueError:
        pass
    v = _convert(tok)
    if isinstance(v, str):
        try:
            return int(v.strip())
        except ValueError:
            return None
    if isinstance(v, float) and v.is_integer():
        return int(v)
    return v if isinstance(v, int) else None


def _unquote_ident(ident: str) -> str:
    if ident.startswith("`"):
        return ident[1:-1].replace("``", "`")
    return ident


@lru_cache(maxsize=64)
def _row_regex(ncols: int, keep: tuple[int, ...], spaced: bool) -> re.Pattern[str]:
    """Regex for one complete row of ``ncols`` values plus the ``,``/``;`` after it.

    Only the columns in ``keep`` are captured; the last group is the separator. mysqldump
    writes no whitespace inside a statement; ``spaced=False`` is the faster regex for that,
    ``spaced=True`` the fallback that allows whitespace (and newlines) between tokens.
    """
    ws = _WS if spaced else ""
    keep_set = set(keep)
    parts = [f"({_VAL})" if i in keep_set else f"(?:{_VAL})" for i in range(ncols)]
    body = f"{ws},{ws}".join(parts)
    return re.compile(rf"{ws}\({ws}{body}{ws}\){ws}([,;])", re.S)


# --------------------------------------------------------------------------------------------
# Files


def _open_binary(path: Path) -> BinaryIO:
    """Open ``path`` for reading bytes, transparently gunzipping (detected by magic bytes)."""
    f = open(path, "rb")
    try:
        magic = f.read(3)
        f.seek(0)
    except BaseException:
        f.close()
        raise
    if magic[:2] == b"\x1f\x8b":
        return gzip.GzipFile(fileobj=f, mode="rb")  # type: ignore[return-value]
    if magic == b"BZh" or magic[:2] == b"7z" or magic == b"\xfd7z":
        f.close()
        raise SQLDumpError(
            f"{path}: this file is bzip2/7z/xz-compressed; only plain .sql and gzip (.sql.gz) "
            "dumps are supported. Decompress it first, or download the .sql.gz file."
        )
    return f  # type: ignore[return-value]


def _close(f: BinaryIO) -> None:
    inner = getattr(f, "fileobj", None)  # GzipFile does not close a fileobj it was given
    f.close()
    if inner is not None:
        inner.close()


_CORRUPT = (EOFError, zlib.error, gzip.BadGzipFile)


def _parse_create(text: str, path: Path, line: int) -> tuple[str, list[str]]:
    m = _CREATE_RE.match(text)
    if m is None:
        raise SQLDumpError(f"{path}: line {line}: cannot parse the CREATE TABLE statement; is this a mysqldump file?")
    name = _unquote_ident(m.group("name"))
    # Split the body at top-level commas, skipping quoted text (COMMENT 'a,b', DEFAULT ',').
    defs: list[str] = []
    depth, start, i, n = 0, m.end(), m.end(), len(text)
    quote = ""
    while i < n:
        c = text[i]
        if quote:
            if c == "\\" and quote != "`":
                i += 1
            elif c == quote:
                quote = ""
        elif c in "'\"`":
            quote = c
        elif c == "(":
            depth += 1
        elif c == ")":
            if depth == 0:
                defs.append(text[start:i])
                break
            depth -= 1
        elif c == "," and depth == 0:
            defs.append(text[start:i])
            start = i + 1
        i += 1
    else:
        raise SQLDumpError(
            f"{path}: line {line}: the CREATE TABLE `{name}` statement is not closed; "
            "the file is truncated or not a mysqldump file."
        )
    columns: list[str] = []
    for d in defs:
        d = d.strip()
        if not d:
            continue
        if d.startswith("`"):
            end = 1
            while True:
                end = d.find("`", end)
                if end == -1:
                    raise SQLDumpError(f"{path}: line {line}: unterminated column name in CREATE TABLE `{name}`.")
                if d.startswith("``", end):
                    end += 2
                    continue
                break
            columns.append(d[1:end].replace("``", "`"))
            continue
        word = re.match(r"[A-Za-z0-9_$]+", d)
        if word is None or word.group(0).upper() in _NON_COLUMN_WORDS:
            continue
        columns.append(word.group(0))
    if not columns:
        raise SQLDumpError(f"{path}: line {line}: CREATE TABLE `{name}` declares no columns.")
    return name, columns


class _Table:
    """One table of a dump: the header is read eagerly, the rows lazily (file reopened)."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.name, self.columns, self._offset, self._lines = self._read_header()

    # -- header ------------------------------------------------------------------------------
    def _read_header(self) -> tuple[str, list[str], int, int]:
        path = self.path
        f = _open_binary(path)
        offset = lineno = 0
        stmt: list[bytes] | None = None
        stmt_line = 0
        try:
            while True:
                budget = _HEADER_LIMIT - offset
                if budget <= 0:
                    break
                raw = f.readline(budget)
                if not raw:
                    break
                offset += len(raw)
                lineno += 1
                if stmt is None:
                    if _CREATE_START_RE.match(raw):
                        stmt, stmt_line = [], lineno
                    elif _INSERT_START_RE.match(raw):
                        raise SQLDumpError(
                            f"{path}: line {lineno}: INSERT before any CREATE TABLE statement; the column "
                            "order is unknown. Use the dump as published (mysqldump output with its "
                            "CREATE TABLE header, not --no-create-info)."
                        )
                    else:
                        continue
                stmt.append(raw)
                if raw[-64:].rstrip().endswith(b";"):
                    text = b"".join(stmt).decode("utf-8", "replace")
                    name, columns = _parse_create(text, path, stmt_line)
                    return name, columns, offset, lineno
        except _CORRUPT as e:
            raise SQLDumpError(
                f"{path}: compressed data is corrupt or truncated near line {lineno + 1} ({e}); re-download the dump."
            ) from e
        finally:
            _close(f)
        if stmt is not None:
            raise SQLDumpError(
                f"{path}: line {stmt_line}: the CREATE TABLE statement never ends (no ';'); "
                "the file is truncated or not a mysqldump file. Re-download it."
            )
        where = "the file" if offset < _HEADER_LIMIT else f"the first {_HEADER_LIMIT // (1024 * 1024)} MiB"
        raise SQLDumpError(
            f"{path}: no CREATE TABLE statement in {where}; this is not a MediaWiki SQL dump "
            "(expected a mysqldump file such as jawiki-YYYYMMDD-categorylinks.sql.gz)."
        )

    def require(self, *names: str, hint: str = "") -> list[int]:
        missing = [n for n in names if n not in self.columns]
        if missing:
            raise SQLDumpError(
                f"{self.path}: table `{self.name}` has no column {', '.join(missing)} "
                f"(its columns: {', '.join(self.columns)}).{(' ' + hint) if hint else ''}"
            )
        return [self.columns.index(n) for n in names]

    # -- rows --------------------------------------------------------------------------------
    def rows(self, wanted: Sequence[str] | None = None, raw: bool = False) -> Iterator[tuple]:
        """Rows as tuples of the ``wanted`` columns (all, in table order, by default).

        With ``raw=True`` the values are the undecoded SQL tokens (``"12"``, ``"'a\\'b'"``,
        ``"NULL"``), for callers that convert only what they keep.
        """
        n = len(self.columns)
        if wanted is None:
            idx = list(range(n))
        else:
            idx = self.require(*wanted)
        keep = tuple(sorted(set(idx)))
        perm = [keep.index(i) for i in idx]
        reorder = None if perm == list(range(len(keep))) else perm
        return self._rows((_row_regex(n, keep, False), _row_regex(n, keep, True)), reorder, raw)

    def _rows(self, row_re: tuple[re.Pattern[str], re.Pattern[str]], reorder: list[int] | None, raw: bool) -> Iterator[tuple]:
        path = self.path
        f = _open_binary(path)
        lineno = self._lines
        try:
            f.seek(self._offset)
            readline = f.readline
            while True:
                line = readline()
                if not line:
                    return
                lineno += 1
                if not _INSERT_START_RE.match(line):
                    continue
                start = lineno
                parts = [line]
                while not line[-64:].rstrip().endswith(b";"):
                    line = readline()
                    if not line:
                        break
                    lineno += 1
                    parts.append(line)
                data = parts[0] if len(parts) == 1 else b"".join(parts)
                yield from self._parse_insert(data.decode("utf-8", "replace"), start, row_re, reorder, raw)
        except _CORRUPT as e:
            raise SQLDumpError(
                f"{path}: compressed data is corrupt or truncated near line {lineno + 1} ({e}); re-download the dump."
            ) from e
        finally:
            _close(f)

    def _parse_insert(
        self, text: str, line: int, row_re: tuple[re.Pattern[str], re.Pattern[str]], reorder: list[int] | None, raw: bool
    ) -> Iterator[tuple]:
        m = _INSERT_RE.match(text)
        if m is None:
            self._fail(text, 0, line, "unrecognised INSERT statement", truncated=False)
        if _unquote_ident(m.group("name")) != self.name:
            return  # another table's data in the same file
        cols = m.group("cols")
        if cols is not None:
            listed = [_unquote_ident(c.strip()) for c in cols.split(",")]
            if listed != self.columns:
                raise SQLDumpError(
                    f"{self.path}: line {line}: INSERT lists columns ({', '.join(listed)}) that differ from "
                    f"CREATE TABLE `{self.name}` ({', '.join(self.columns)}); partial-column INSERTs are not supported."
                )
        pos = m.end()
        match, match_spaced = row_re[0].match, row_re[1].match
        conv = _convert
        rowno = 0
        while True:
            r = match(text, pos) or match_spaced(text, pos)
            if r is None:
                self._diagnose(text, pos, line, rowno)
            g = r.groups()
            vals = g[:-1] if raw else tuple(map(conv, g[:-1]))
            if reorder is not None:
                vals = tuple(vals[i] for i in reorder)
            yield vals
            rowno += 1
            pos = r.end()
            if g[-1] == ";":
                if text[pos:].strip():
                    self._fail(text, pos, line, "unexpected text after the end of the INSERT statement", truncated=False)
                return

    # -- errors ------------------------------------------------------------------------------
    def _fail(self, text: str, pos: int, line: int, what: str, *, truncated: bool) -> NoReturn:
        at_line = line + text.count("\n", 0, pos)
        col = pos - (text.rfind("\n", 0, pos) + 1) + 1
        if truncated:
            advice = "the file is incomplete (interrupted download or copy?); re-download the dump."
            kind = "truncated INSERT"
        else:
            near = text[pos : pos + 40]
            advice = f"near {near!r}; the file is garbled or not a MediaWiki mysqldump file; re-download it."
            kind = "garbled INSERT"
        raise SQLDumpError(f"{self.path}: line {at_line}, column {col}: {kind}: {what}; {advice}")

    def _diagnose(self, text: str, pos: int, line: int, rowno: int) -> NoReturn:
        """Find out why the row at ``pos`` did not match, and raise accordingly."""
        row = f"row {rowno + 1} of the statement"
        m = _OPEN_RE.match(text, pos)
        if m is None:
            rest = text[pos:]
            if not rest.strip():
                self._fail(text, pos, line, f"the statement ends after {rowno} rows without ';'", truncated=True)
            self._fail(text, pos + len(rest) - len(rest.lstrip()), line, f"expected '(' to start {row}", truncated=False)
        p = m.end()
        count = 0
        while True:
            v = _VALUE_RE.match(text, p)
            if v is None:
                rest = text[p:].lstrip()
                q = len(text) - len(rest)
                if not rest.strip() or rest.startswith("'"):
                    what = "unterminated string" if rest.startswith("'") else "statement ends"
                    self._fail(text, q, line, f"{what} in {row}", truncated=True)
                self._fail(text, q, line, f"expected a value in {row}", truncated=False)
            count += 1
            p = v.end()
            s = _INROW_SEP_RE.match(text, p)
            if s is None:
                if not text[p:].strip():
                    self._fail(text, p, line, f"statement ends inside {row}", truncated=True)
                self._fail(text, p, line, f"expected ',' or ')' after value {count} of {row}", truncated=False)
            p = s.end()
            if s.group(1) == ")":
                break
        if count != len(self.columns):
            at_line = line + text.count("\n", 0, pos)
            raise SQLDumpError(
                f"{self.path}: line {at_line}: {row} has {count} values but CREATE TABLE `{self.name}` declares "
                f"{len(self.columns)} columns ({', '.join(self.columns)}); the data does not match the schema "
                "header. Re-download the dump."
            )
        s = _ROW_SEP_RE.match(text, p)
        if s is None:
            if not text[p:].strip():
                self._fail(text, p, line, f"the statement ends after {rowno + 1} rows without ';'", truncated=True)
            self._fail(text, p, line, f"expected ',' or ';' after {row}", truncated=False)
        self._fail(text, pos, line, f"cannot parse {row}", truncated=False)  # pragma: no cover


# --------------------------------------------------------------------------------------------
# Public API


def read_table(path: Path) -> tuple[str, list[str], Iterator[tuple]]:
    """Stream one table from a mysqldump file (``.sql`` or ``.sql.gz``; gzip detected by magic bytes).

    Returns ``(table_name, columns, rows)``: the columns in ``CREATE TABLE`` order and an
    iterator of row tuples holding ``int``, ``float``, ``str`` (unescaped, UTF-8 decoded with
    invalid bytes replaced by U+FFFD) or ``None``. The header is read now (raising
    :class:`SQLDumpError` if there is no ``CREATE TABLE`` before the first ``INSERT``); the
    rows are read lazily, one line at a time. While iterating, :class:`SQLDumpError` reports a
    row whose arity differs from the column count and a truncated or garbled ``INSERT``, with
    its line number. ``INSERT`` statements into other tables in the same file are skipped.
    """
    table = _Table(Path(path))
    return table.name, list(table.columns), table.rows()


def detect_schema(columns: list[str]) -> str:
    """``"cl_to"`` for a MediaWiki <= 1.42 categorylinks table, ``"linktarget"`` for the 2025 one.

    A transitional table carrying both ``cl_to`` and ``cl_target_id`` is read through ``cl_to``.
    """
    if "cl_to" in columns:
        return "cl_to"
    if "cl_target_id" in columns:
        return "linktarget"
    raise SQLDumpError(
        f"not a categorylinks table: its columns ({', '.join(columns)}) include neither cl_to "
        "(MediaWiki <= 1.42) nor cl_target_id (MediaWiki >= 1.43). Pass the ...-categorylinks.sql.gz dump."
    )


def load_category_targets(linktarget: Path) -> dict[int, str]:
    """``{lt_id: category name with spaces}`` for the ``lt_namespace == 14`` rows of a linktarget dump."""
    table = _Table(Path(linktarget))
    table.require(
        "lt_id", "lt_namespace", "lt_title", hint="Pass the ...-linktarget.sql.gz dump as --linktarget."
    )
    return _load_targets(table)


def _load_targets(table: _Table) -> dict[int, str]:
    targets: dict[int, str] = {}
    ns_tok = str(CATEGORY_NAMESPACE)
    for lt_id, ns, title in table.rows(["lt_id", "lt_namespace", "lt_title"], raw=True):
        if ns != ns_tok and _to_int(ns) != CATEGORY_NAMESPACE:
            continue
        key = _to_int(lt_id)
        value = _convert(title)
        if key is None or not isinstance(value, str):
            continue
        targets[key] = value.replace("_", " ")
    return targets


def iter_category_links(categorylinks: Path, linktarget: Path | None = None) -> Iterator[tuple[int, str]]:
    """``(cl_from page id, category name with spaces)`` for every categorylinks row.

    The schema is detected from the columns (:func:`detect_schema`): with ``cl_to`` the
    category title is in the row; with ``cl_target_id`` (2025 dumps) it is looked up in the
    ``linktarget`` dump, of which only the namespace-14 rows are kept in memory. Headers are
    checked now (:class:`SQLDumpError`, e.g. a 2025 dump without ``linktarget``); rows are
    streamed. Rows whose target is not a category in ``linktarget`` are skipped (a warning
    with their count is logged at the end).
    """
    cl = _Table(Path(categorylinks))
    try:
        schema = detect_schema(cl.columns)
    except SQLDumpError as e:
        raise SQLDumpError(f"{cl.path}: table `{cl.name}`: {e}") from None
    cl.require("cl_from", hint="Pass the ...-categorylinks.sql.gz dump.")
    if schema == "cl_to":
        return _iter_links_cl_to(cl)
    if linktarget is None:
        raise SQLDumpError(
            f"{cl.path} uses the 2025 categorylinks schema (MediaWiki >= 1.43: cl_target_id, no cl_to), "
            "so category names live in the linktarget table. Pass the linktarget dump of the same date "
            "with --linktarget (e.g. --linktarget jawiki-YYYYMMDD-linktarget.sql.gz)."
        )
    lt = _Table(Path(linktarget))
    lt.require("lt_id", "lt_namespace", "lt_title", hint="Pass the ...-linktarget.sql.gz dump as --linktarget.")
    return _iter_links_linktarget(cl, lt)


def _iter_links_cl_to(cl: _Table) -> Iterator[tuple[int, str]]:
    names: dict[str, str] = {}  # raw token -> category name; one str per category
    skipped = 0
    for cl_from, cl_to in cl.rows(["cl_from", "cl_to"], raw=True):
        name = names.get(cl_to)
        if name is None:
            value = _convert(cl_to)
            if not isinstance(value, str):
                skipped += 1
                continue
            name = names[cl_to] = value.replace("_", " ")
        page_id = _to_int(cl_from)
        if page_id is None:
            skipped += 1
            continue
        yield page_id, name
    if skipped:
        log.warning("%s: skipped %d categorylinks rows with a NULL or non-integer cl_from/cl_to", cl.path, skipped)


def _iter_links_linktarget(cl: _Table, lt: _Table) -> Iterator[tuple[int, str]]:
    targets = _load_targets(lt)
    unresolved = skipped = 0
    get = targets.get
    for cl_from, target in cl.rows(["cl_from", "cl_target_id"], raw=True):
        target_id = _to_int(target)
        if target_id is None:
            skipped += 1
            continue
        name = get(target_id)
        if name is None:
            unresolved += 1
            continue
        page_id = _to_int(cl_from)
        if page_id is None:
            skipped += 1
            continue
        yield page_id, name
    if unresolved:
        log.warning(
            "%s: %d categorylinks rows point to cl_target_id values that are not category (namespace 14) "
            "rows of %s; they were skipped. Is the linktarget dump from the same date?",
            cl.path,
            unresolved,
            lt.path,
        )
    if skipped:
        log.warning("%s: skipped %d categorylinks rows with a NULL or non-integer cl_from/cl_target_id", cl.path, skipped)


def iter_pages(page: Path, namespaces: Collection[int] | None = None) -> Iterator[tuple[int, int, str, bool]]:
    """``(page_id, namespace, title with spaces, is_redirect)`` for each row of a page dump.

    With ``namespaces``, only pages in those namespaces are yielded. The header is checked
    now (the table needs ``page_id``, ``page_namespace``, ``page_title``, ``page_is_redirect``).
    """
    table = _Table(Path(page))
    cols = ("page_id", "page_namespace", "page_title", "page_is_redirect")
    table.require(*cols, hint="Pass the ...-page.sql.gz dump.")
    wanted = None if namespaces is None else frozenset(int(n) for n in namespaces)
    return _iter_pages(table, cols, wanted)


def _iter_pages(table: _Table, cols: Sequence[str], wanted: frozenset[int] | None) -> Iterator[tuple[int, int, str, bool]]:
    skipped = 0
    for pid, ns_tok, title, redirect in table.rows(cols, raw=True):
        ns = _to_int(ns_tok)
        if ns is None:
            skipped += 1
            continue
        if wanted is not None and ns not in wanted:
            continue
        page_id = _to_int(pid)
        value = _convert(title)
        if page_id is None or not isinstance(value, str):
            skipped += 1
            continue
        yield page_id, ns, value.replace("_", " "), bool(_to_int(redirect))
    if skipped:
        log.warning("%s: skipped %d page rows with a NULL or malformed id, namespace or title", table.path, skipped)
