"""A polite MediaWiki Action API client, and the pure functions that read its responses.

    client = MediaWikiClient("https://ja.wikipedia.org/w/api.php", contact="you@example.org")
    for response, next_continue in client.query({"list": "categorymembers", ...}):
        ...

Etiquette (https://www.mediawiki.org/wiki/API:Etiquette): a descriptive User-Agent naming a
contact, `maxlag=5` on every request, one request at a time with a minimum interval between
them, gzip, and retries with exponential backoff plus jitter on 429, 5xx, connection errors and
`maxlag` errors, honouring `Retry-After`. After `max_retries` the request fails with a
`WikituneError` that names it.

The response readers accept both shapes: `formatversion=1` (`query.pages` keyed by page id,
content under `"*"`) as in recorded responses, and `formatversion=2` (lists, content under
`slots.main.content`), which the client asks for.
"""

from __future__ import annotations

import email.utils
import gzip
import http.client
import json
import logging
import random
import socket
import time
import urllib.error
import urllib.parse
import urllib.request
import zlib
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator

from wikitune import __version__
from wikitune.corpus.names import CATEGORY_NS, DEFAULT_CATEGORY_PREFIXES
from wikitune.corpus.page import Page, redirect_in_text
from wikitune.errors import WikituneError

log = logging.getLogger(__name__)

CONTACT_PLACEHOLDER = "contact unset: pass --contact EMAIL-OR-URL"
# API error codes that mean "try again later", not "your request is wrong".
RETRYABLE_API_ERRORS = {"maxlag", "ratelimited", "readonly", "internal_api_error_DBConnectionError"}
# Title and page-id batches: the API's limit for clients without the apihighlimits right.
BATCH = 50


def user_agent(contact: str | None) -> str:
    """A User-Agent the Wikimedia policy accepts: tool/version (contact) library."""
    return f"wikitune/{__version__} ({contact or CONTACT_PLACEHOLDER}) Python-urllib"


class RetriesExhausted(WikituneError):
    """A request kept failing with retryable errors; the message names the request."""


@dataclass
class MediaWikiClient:
    """Serial, polite HTTP client for one `api.php`.

    Counters `requests` (HTTP requests sent, retries included) and `retries` (by kind: `429`,
    `5xx`, `connection`, `maxlag`, ...) let callers report what the crawl cost.
    """

    api: str
    """URL of the wiki's api.php."""
    contact: str | None = None
    """Contact (e-mail or URL) put in the User-Agent, as the Wikimedia User-Agent policy asks."""
    interval: float = 1.0
    """Minimum seconds between the starts of two requests."""
    max_retries: int = 8
    """Retries of one request before giving up."""
    backoff: float = 1.0
    """First retry delay in seconds; doubled each retry, plus up to 50% jitter."""
    max_backoff: float = 120.0
    """Longest wait between two tries (also caps a server's Retry-After)."""
    timeout: float = 60.0
    """Socket timeout of one request, in seconds."""
    maxlag: int | None = 5
    """`maxlag` parameter sent with every request (None: not sent)."""
    sleep: Callable[[float], None] = time.sleep
    clock: Callable[[], float] = time.monotonic
    rng: random.Random = field(default_factory=random.Random)
    requests: int = 0
    retries: Counter = field(default_factory=Counter)
    on_request: Callable[[], None] | None = None
    """Called after every HTTP request (progress display)."""
    _last_start: float | None = None

    # ---- one request ------------------------------------------------------------------------
    def get(self, params: dict[str, Any]) -> dict[str, Any]:
        """One API request (JSON, formatversion 2), retried as the module docstring says.

        Raises:
            RetriesExhausted: the request failed `max_retries + 1` times with retryable errors.
            WikituneError: a non-retryable HTTP status or API error, naming the request.
        """
        full = {"action": "query", "format": "json", "formatversion": "2", **params}
        if self.maxlag is not None:
            full["maxlag"] = str(self.maxlag)
        url = self.api + "?" + urllib.parse.urlencode(full)
        last = ""
        for attempt in range(self.max_retries + 1):
            self._wait_interval()
            kind, wait, detail, body = self._try(url)
            if kind is None:
                return body
            last = detail
            if attempt == self.max_retries:
                break
            self.retries[kind] += 1
            delay = min(self.backoff * 2**attempt, self.max_backoff)
            delay += self.rng.uniform(0, delay / 2)
            if wait is not None:  # the server said how long: never retry sooner than that
                delay = max(delay, min(wait, self.max_backoff))
            log.info("retry %d/%d in %.1fs after %s: %s", attempt + 1, self.max_retries, delay, detail, describe(full))
            self.sleep(delay)
        tries = self.max_retries + 1
        raise RetriesExhausted(
            f"{describe(full)} to {self.api} failed after {tries} {'try' if tries == 1 else 'tries'}, last: {last}"
        )

    def _wait_interval(self) -> None:
        now = self.clock()
        if self._last_start is not None and self.interval > 0:
            remaining = self._last_start + self.interval - now
            if remaining > 0:
                self.sleep(remaining)
                now = self.clock()
        self._last_start = now

    def _try(self, url: str) -> tuple[str | None, float | None, str, Any]:
        """One HTTP try: (None, None, "", json) on success, else (retry kind, Retry-After, detail, None)."""
        request = urllib.request.Request(url, headers={
            "User-Agent": user_agent(self.contact), "Accept-Encoding": "gzip", "Accept": "application/json",
        })
        self.requests += 1
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                raw = response.read()
                encoding = response.headers.get("Content-Encoding", "")
                retry_after = parse_retry_after(response.headers.get("Retry-After"))
        except urllib.error.HTTPError as err:
            retry_after = parse_retry_after(err.headers.get("Retry-After") if err.headers else None)
            err.close()
            if err.code == 429:
                return "429", retry_after, "HTTP 429 Too Many Requests", None
            if 500 <= err.code < 600:
                return "5xx", retry_after, f"HTTP {err.code}", None
            raise WikituneError(f"HTTP {err.code} {err.reason} for {url}") from err
        except (urllib.error.URLError, http.client.HTTPException, ConnectionError, socket.timeout, TimeoutError) as err:
            reason = getattr(err, "reason", err)
            return "connection", None, f"connection error: {type(err).__name__} {reason}", None
        finally:
            if self.on_request:
                self.on_request()
        try:
            if "gzip" in encoding:
                raw = gzip.decompress(raw)
            body = json.loads(raw)
        except (OSError, EOFError, zlib.error, ValueError) as err:  # cut-off body: a connection fault
            return "connection", None, f"unreadable response: {err}", None
        error = body.get("error") if isinstance(body, dict) else None
        if error:
            code = error.get("code", "")
            if code in RETRYABLE_API_ERRORS:
                return code, retry_after, f"API error {code}: {error.get('info', '')}", None
            raise WikituneError(f"API error {code}: {error.get('info', '')} for {url}")
        for warning in (body.get("warnings") or {}).values():
            log.debug("API warning: %s", warning)
        return None, None, "", body

    # ---- continuation -----------------------------------------------------------------------
    def query(self, params: dict[str, Any], start: dict[str, str] | None = None) -> Iterator[tuple[dict, dict | None]]:
        """Every response of a query, following each `continue` object to the end.

        Yields (response, continuation): pass `continuation` back as `start` to resume after
        this response; None after the last one.
        """
        cont = dict(start or {})
        while True:
            response = self.get({**params, **cont})
            nxt = response.get("continue")
            yield response, (dict(nxt) if nxt else None)
            if not nxt:
                return
            cont = dict(nxt)


def describe(params: dict[str, Any]) -> str:
    """A short name of a request for messages: its query parts, long lists cut."""
    keys = ("list", "prop", "meta", "cmtitle", "cmcontinue", "titles", "pageids")
    parts = []
    for key in keys:
        if key in params:
            value = str(params[key])
            if key in ("titles", "pageids") and value.count("|") > 2:
                value = "|".join(value.split("|")[:3]) + f"|… ({value.count('|') + 1} in all)"
            parts.append(f"{key}={value}")
    return "request " + "&".join(parts)


def parse_retry_after(value: str | None) -> float | None:
    """Seconds from a `Retry-After` header (delta seconds or an HTTP date), None if absent/bad."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


# ---- response readers (formatversion 1 and 2) -----------------------------------------------
def response_pages(response: dict[str, Any]) -> list[dict[str, Any]]:
    """`query.pages` as a list, whether a dict keyed by page id (fv1) or a list (fv2)."""
    pages = (response.get("query") or {}).get("pages") or []
    return list(pages.values()) if isinstance(pages, dict) else list(pages)


def category_members(response: dict[str, Any]) -> list[dict[str, Any]]:
    """`query.categorymembers`: dicts with `pageid`, `ns`, `title`."""
    return list((response.get("query") or {}).get("categorymembers") or [])


def latest_revision(page: dict[str, Any]) -> dict[str, Any] | None:
    """The page's first listed revision as {revid, timestamp, content}, either format version."""
    revisions = page.get("revisions") or []
    if not revisions:
        return None
    rev = revisions[0]
    content = None
    slot = (rev.get("slots") or {}).get("main")
    if slot is not None:
        content = slot.get("content", slot.get("*"))
    elif "*" in rev:
        content = rev["*"]
    elif "content" in rev:
        content = rev["content"]
    return {"revid": rev.get("revid"), "timestamp": rev.get("timestamp"), "content": content}


def page_categories(page: dict[str, Any]) -> list[str]:
    """Full titles of the categories listed under a page's `categories` (ns 14 only)."""
    return [c["title"] for c in page.get("categories") or [] if c.get("ns", CATEGORY_NS) == CATEGORY_NS]


def is_missing(page: dict[str, Any]) -> bool:
    """A page the wiki does not have (fv2: `missing: true`; fv1: `missing: ""`)."""
    return "missing" in page and page["missing"] is not False or "invalid" in page


def as_page(page: dict[str, Any]) -> Page:
    """A page of a `prop=revisions` response (not missing) as a `Page`, like the dump reader's."""
    rev = latest_revision(page) or {}
    wikitext = rev.get("content") or ""
    redirect = None
    if page.get("redirect"):
        # The API flags a redirect without naming its target; the wikitext names it, or "?" says unknown.
        redirect = redirect_in_text(wikitext) or "?"
    return Page(pageid=page["pageid"], title=page["title"], ns=page["ns"], wikitext=wikitext,
                revid=rev.get("revid"), timestamp=rev.get("timestamp"), redirect=redirect)


def merge_pages(into: dict[int | str, dict[str, Any]], response: dict[str, Any]) -> None:
    """Merge one response's pages into `into` (keyed by page id, or title if missing).

    With continuation, a page's revisions and categories may be spread over several responses:
    lists are extended, the first revision seen is kept.
    """
    for page in response_pages(response):
        key = page.get("pageid") or page.get("title")
        have = into.get(key)
        if have is None:
            into[key] = {**page, "categories": list(page.get("categories") or []), "revisions": list(page.get("revisions") or [])}
            continue
        have["categories"].extend(page.get("categories") or [])
        if not have["revisions"] and page.get("revisions"):
            have["revisions"] = list(page["revisions"])
        for k, v in page.items():
            have.setdefault(k, v)


@dataclass
class SiteInfo:
    """What `meta=siteinfo` says: namespace names and aliases, and the article URL pattern."""

    sitename: str = ""
    server: str = ""
    articlepath: str = ""
    namespaces: dict[int, list[str]] = field(default_factory=dict)  # number -> [local, canonical, aliases…]

    @classmethod
    def from_response(cls, response: dict[str, Any]) -> "SiteInfo":
        query = response.get("query") or {}
        general = query.get("general") or {}
        namespaces: dict[int, list[str]] = {}
        for key, ns in (query.get("namespaces") or {}).items():
            number = int(ns.get("id", key))
            names = [n for n in (ns.get("name", ns.get("*")), ns.get("canonical")) if n]
            namespaces[number] = list(dict.fromkeys(names))
        for alias in query.get("namespacealiases") or []:
            name = alias.get("alias", alias.get("*"))
            if name:
                namespaces.setdefault(int(alias["id"]), []).append(name)
        server = general.get("server", "")
        if server.startswith("//"):  # protocol-relative on Wikimedia wikis
            server = "https:" + server
        return cls(sitename=general.get("sitename", ""), server=server,
                   articlepath=general.get("articlepath", ""), namespaces=namespaces)

    def category_prefixes(self) -> tuple[str, ...]:
        """Every name of namespace 14 on this wiki, plus the defaults (`Category`, `カテゴリ`)."""
        return tuple(dict.fromkeys([*self.namespaces.get(CATEGORY_NS, []), *DEFAULT_CATEGORY_PREFIXES]))

    def category_title(self, name: str) -> str:
        """The full title of a category as this wiki writes it (`カテゴリ:名前` on a ja wiki)."""
        local = (self.namespaces.get(CATEGORY_NS) or ["Category"])[0]
        return f"{local}:{name}"

    def article_url(self, title: str) -> str | None:
        """The page's URL from `server` + `articlepath` (`/wiki/$1`), None if unknown."""
        if not self.articlepath or "$1" not in self.articlepath:
            return None
        quoted = urllib.parse.quote(title.replace(" ", "_"), safe="/:()!,;*@$")
        return self.server + self.articlepath.replace("$1", quoted)
