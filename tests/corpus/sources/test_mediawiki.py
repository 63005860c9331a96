"""The MediaWiki client: response readers on real recorded responses (formatversion 1 from
Wikipedia, formatversion 2 captured from a local MediaWiki 1.39), and etiquette/retries against a
scripted HTTP server on 127.0.0.1."""

from __future__ import annotations

import gzip
import json
import threading
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from tests.conftest import TEST_DATA, shared_file
from wikitune.corpus.crawl import Crawler, CrawlConfig, CrawlState, Progress
from wikitune.corpus.page import classify
from wikitune.corpus.sources.mediawiki import (
    MediaWikiClient, RetriesExhausted, SiteInfo, as_page, category_members, describe, is_missing, latest_revision,
    merge_pages, page_categories, parse_retry_after, response_pages,
)
from wikitune.errors import WikituneError

FV2 = TEST_DATA / "mediawiki_api_fv2"


def recorded_fv1() -> list[dict]:
    return json.loads(shared_file("mediawiki-api", "pymediawiki_api_samples_subset.json").read_text(encoding="utf-8"))


def fv1(**params) -> dict:
    """The recorded response whose parameters include all of `params`."""
    for sample in recorded_fv1():
        p = dict(sample["params"])
        if all(str(p.get(k)) == str(v) for k, v in params.items()):
            return sample["response"]
    raise LookupError(params)


def fv2(name: str) -> dict:
    return json.loads((FV2 / f"{name}.json").read_text(encoding="utf-8"))["response"]


# ---- readers on formatversion 1 (real Wikipedia responses) -------------------------------------
def test_fv1_category_members_and_continuation_keys():
    first = fv1(cmtitle="Category:Disambiguation categories", cmlimit=5000)
    members = category_members(first)
    assert len(members) > 100 and all({"pageid", "ns", "title"} <= set(m) for m in members)
    assert {m["ns"] for m in members} == {14}
    assert set(first["continue"]) == {"cmcontinue", "continue"}
    chess = category_members(fv1(cmtitle="Category:Chess", cmtype="page|subcat", cmlimit=15))
    assert {m["ns"] for m in chess} >= {0, 14, 100}  # namespaces by number: Portal:Chess is 100


def test_fv1_pages_dict_and_revision_text_under_star():
    response = fv1(titles="castor", prop="revisions")
    pages = response_pages(response)
    assert [p["pageid"] for p in pages] == [56203]
    rev = latest_revision(pages[0])
    assert rev["content"].startswith("<table")  # rvparse: HTML under "*"
    castos = response_pages(fv1(titles="Castos", prop="extracts|revisions"))[0]
    assert latest_revision(castos) == {"revid": 152611, "timestamp": None, "content": None}


def test_fv1_categories_and_siteinfo_general():
    page = response_pages(fv1(titles="Arya Stark", prop="categories"))[0]
    assert "Category:Assassins" in page_categories(page)
    sites = {s["api"]: SiteInfo.from_response(s["response"]) for s in recorded_fv1()
             if dict(s["params"]).get("meta") == "siteinfo" and "general" in s["response"].get("query", {})}
    en = sites["http://en.wikipedia.org/w/api.php"]
    assert en.sitename == "Wikipedia" and en.server == "https://en.wikipedia.org"  # protocol-relative "//en..."
    assert en.article_url("Chess opening") == "https://en.wikipedia.org/wiki/Chess_opening"
    awoiaf = sites["http://awoiaf.westeros.org/api.php"]
    assert awoiaf.article_url("Arya Stark") == "http://awoiaf.westeros.org/index.php/Arya_Stark"
    assert awoiaf.category_prefixes() == ("Category", "カテゴリ")  # no namespaces asked: the defaults


# ---- readers on formatversion 2 (captured from a local MediaWiki with a Japanese content language)
def test_fv2_siteinfo_names_the_category_namespace_by_number():
    site = SiteInfo.from_response(fv2("siteinfo"))
    assert site.namespaces[14][:2] == ["カテゴリ", "Category"]
    assert site.category_title("日本のアニメ作品") == "カテゴリ:日本のアニメ作品"
    assert set(site.category_prefixes()) >= {"カテゴリ", "Category"}
    assert site.article_url("魔導探偵サクラ/ゼロ").endswith("/index.php/%E9%AD%94%E5%B0%8E%E6%8E%A2%E5%81%B5%E3%82%B5%E3%82%AF%E3%83%A9/%E3%82%BC%E3%83%AD")


def test_fv2_members_pages_and_missing():
    members = category_members(fv2("categorymembers"))
    assert [m["title"] for m in members] == ["魔導探偵サクラ", "魔導探偵サクラのエピソード一覧", "魔導探偵サクラ/ゼロ"]
    info = response_pages(fv2("categoryinfo"))
    assert [is_missing(p) for p in info] == [True, False] and info[1]["categoryinfo"]["subcats"] == 9
    pages = {p.get("pageid"): p for p in response_pages(fv2("revisions"))}
    assert is_missing(pages[999999]) and not is_missing(pages[8])
    rev = latest_revision(pages[8])
    assert rev["revid"] == 8 and rev["timestamp"] == "2025-02-07T18:42:06Z" and "{{Infobox animanga/Header" in rev["content"]
    assert page_categories(pages[8]) == ["カテゴリ:OVA作品", "カテゴリ:魔導探偵サクラ"]


def test_fv2_continued_categories_merge_into_one_page():
    merged: dict = {}
    merge_pages(merged, fv2("revisions_continue"))
    first = {pid: list(p["categories"]) for pid, p in merged.items()}
    # The rest of the categories arrive with the continuation: the complete response has them all.
    complete = {p.get("pageid") or p["title"]: p for p in response_pages(fv2("revisions"))}
    continued = {"query": {"pages": [{"pageid": pid, "ns": complete[pid]["ns"], "title": complete[pid]["title"],
                                      "categories": [c for c in complete[pid].get("categories", []) if c not in first.get(pid, [])]}
                                     for pid in complete if pid != 999999]}}
    merge_pages(merged, continued)
    for pid, page in complete.items():
        if pid == 999999:
            continue
        assert sorted(c["title"] for c in merged[pid]["categories"]) == sorted(c["title"] for c in page.get("categories", []))
        assert latest_revision(merged[pid])["content"] == latest_revision(page)["content"]


def test_fv2_page_rows_classify_redirects_disambiguation_and_categories(tmp_path):
    crawler = Crawler(CrawlConfig(roots=["x"], out=tmp_path, api="http://127.0.0.1/api.php"),
                      MediaWikiClient("http://127.0.0.1/api.php"), CrawlState(tmp_path / "state.sqlite"), Progress(False))
    crawler.state.set("siteinfo", fv2("siteinfo"))
    crawler.load_siteinfo()
    rows = {p.get("pageid"): crawler._page_row(p.get("pageid"), p) for p in response_pages(fv2("revisions"))}
    status = {row[2]: row[5] for row in rows.values()}
    assert status == {"魔導探偵サクラ/ゼロ": "article", "Neon Drive": "article", "サクラ": "disambiguation",
                      "星海アルカディア": "redirect", "カテゴリ:魔導探偵サクラ": "category", "": "missing"}
    assert json.loads(rows[48][7]) == {"redirect": "星海のアルカディア"}
    # Categories are bare names, in the order the wikitext gives them (the API sorts them).
    # Neon Drive's wikitext: [[Category:2024年のテレビアニメ|…]] [[Category:オリジナルアニメ作品|…]] [[Category:Neon_Drive| ]]
    api_order = [c.split(":", 1)[1] for c in page_categories(next(p for p in response_pages(fv2("revisions")) if p.get("pageid") == 18))]
    assert api_order == ["2024年のテレビアニメ", "Neon Drive", "オリジナルアニメ作品"]
    assert json.loads(rows[18][6]) == ["2024年のテレビアニメ", "オリジナルアニメ作品", "Neon Drive"]
    converted = json.loads(rows[8][7])
    assert converted["text"] and "[[" not in converted["text"] and converted["infobox"]



def test_as_page_reads_an_api_page_like_a_dump_page():
    def api(content: str, **extra) -> dict:
        return {"pageid": 5, "ns": 0, "title": "X", **extra,
                "revisions": [{"revid": 7, "timestamp": "2024-01-01T00:00:00Z", "slots": {"main": {"content": content}}}]}

    page = as_page(api("本文"))
    assert (page.pageid, page.ns, page.title, page.revid, page.timestamp, page.wikitext, page.redirect) == (
        5, 0, "X", 7, "2024-01-01T00:00:00Z", "本文", None)
    # The API flags a redirect without its target: the wikitext names it, else it is unknown ("?").
    assert as_page(api("#転送 [[Y]]", redirect=True)).redirect == "Y"
    assert as_page(api("本文", redirect=True)).redirect == "?"
    assert classify(as_page(api("本文", redirect=True))).name == "redirect"


# ---- the client against a scripted server ---------------------------------------------------------
class Script:
    """A local HTTP server answering requests from a list of (status, headers, body) in turn."""

    def __init__(self, replies):
        self.replies = list(replies)
        self.requests: list[tuple[dict, dict]] = []
        script = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_GET(self):
                query = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(self.path).query))
                script.requests.append((query, dict(self.headers)))
                status, headers, body = script.replies.pop(0)
                if status == "reset":
                    import socket
                    import struct
                    self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                    self.connection.close()
                    return
                data = body if isinstance(body, bytes) else json.dumps(body).encode()
                self.send_response(status)
                for k, v in headers.items():
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.api = f"http://127.0.0.1:{self.server.server_address[1]}/api.php"

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def script():
    servers = []

    def make(*replies):
        servers.append(Script(replies))
        return servers[-1]

    yield make
    for s in servers:
        s.close()


def client_for(server: Script, **kw) -> tuple[MediaWikiClient, list[float]]:
    sleeps: list[float] = []
    kw.setdefault("interval", 0)
    return MediaWikiClient(server.api, contact="tester@example.org", sleep=sleeps.append, **kw), sleeps


OK = {"batchcomplete": True, "query": {"pages": []}}


def test_etiquette_user_agent_maxlag_gzip_formatversion(script):
    server = script((200, {"Content-Encoding": "gzip", "Content-Type": "application/json"}, gzip.compress(json.dumps(OK).encode())))
    client, _ = client_for(server)
    assert client.get({"prop": "info", "titles": "X"}) == OK
    query, headers = server.requests[0]
    assert query["maxlag"] == "5" and query["formatversion"] == "2" and query["format"] == "json"
    assert headers["User-Agent"].startswith("wikitune/") and "tester@example.org" in headers["User-Agent"]
    assert "gzip" in headers["Accept-Encoding"]


def test_placeholder_contact_when_unset(script):
    server = script((200, {}, OK))
    MediaWikiClient(server.api, interval=0).get({})
    assert "--contact" in server.requests[0][1]["User-Agent"]


def test_retries_honour_retry_after_and_count_kinds(script):
    maxlag = {"error": {"code": "maxlag", "info": "Waiting for db: 7 seconds lagged", "lag": 7}}
    server = script((429, {"Retry-After": "7"}, b"slow down"), (503, {}, b"down"), (200, {"Retry-After": "5"}, maxlag),
                    ("reset", {}, b""), (200, {}, OK))
    client, sleeps = client_for(server, backoff=0.5)
    assert client.get({"list": "categorymembers", "cmtitle": "Category:X"}) == OK
    assert dict(client.retries) == {"429": 1, "5xx": 1, "maxlag": 1, "connection": 1}
    assert client.requests == 5
    assert sleeps[0] >= 7  # Retry-After wins over the 0.5 s first backoff
    assert 1.0 <= sleeps[1] <= 1.5  # exponential: 0.5 * 2, plus up to 50% jitter
    assert sleeps[2] >= 5
    assert 4.0 <= sleeps[3] <= 6.0


def test_exhausted_retries_raise_an_error_naming_the_request(script):
    server = script(*[(502, {}, b"bad gateway")] * 3)
    client, sleeps = client_for(server, max_retries=2)
    with pytest.raises(RetriesExhausted, match=r"request list=categorymembers&cmtitle=Category:X to http://127.0.0.1:\d+/api.php failed after 3 tries, last: HTTP 502"):
        client.get({"list": "categorymembers", "cmtitle": "Category:X"})
    assert len(sleeps) == 2 and len(server.requests) == 3


def test_a_non_retryable_api_error_fails_at_once(script):
    server = script((200, {}, {"error": {"code": "badcontinue", "info": "Invalid continue param."}}))
    client, _ = client_for(server)
    with pytest.raises(WikituneError, match="API error badcontinue"):
        client.get({})
    assert len(server.requests) == 1


def test_minimum_interval_between_requests(script):
    server = script((200, {}, OK), (200, {}, OK))
    now = [100.0]
    sleeps: list[float] = []
    client = MediaWikiClient(server.api, interval=2.0, sleep=lambda s: (sleeps.append(s), now.__setitem__(0, now[0] + s)),
                             clock=lambda: now[0])
    client.get({})
    now[0] += 0.5
    client.get({})
    assert sleeps == [1.5]


def test_query_follows_every_continue_key_of_a_recorded_chain(script):
    chain = [s["response"] for s in recorded_fv1()
             if dict(s["params"]).get("cmtitle") == "Category:Disambiguation categories"]
    first = next(r for r in chain if dict(r).get("continue", {}).get("cmcontinue", "").startswith("subcat|3747"))
    second = next(r for r in chain if r.get("continue", {}).get("cmcontinue", "").startswith("subcat|4b27"))
    third = next(r for r in chain if "continue" not in r)
    server = script((200, {}, first), (200, {}, second), (200, {}, third))
    client, _ = client_for(server)
    got = list(client.query({"list": "categorymembers", "cmtitle": "Category:Disambiguation categories"}))
    assert [nxt for _, nxt in got] == [first["continue"], second["continue"], None]
    assert "cmcontinue" not in server.requests[0][0]
    for (query, _), previous in zip(server.requests[1:], (first, second), strict=True):
        assert {k: query[k] for k in previous["continue"]} == previous["continue"]
    # Resuming from a saved continuation sends it with the first request.
    server2 = script((200, {}, third))
    client2, _ = client_for(server2)
    list(client2.query({"list": "categorymembers"}, start=second["continue"]))
    assert server2.requests[0][0]["cmcontinue"] == second["continue"]["cmcontinue"]


def test_retry_after_forms():
    assert parse_retry_after("120") == 120.0
    assert parse_retry_after(None) is None and parse_retry_after("soon") is None
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT") == 0.0  # a date in the past: no wait


def test_describe_cuts_long_id_lists():
    text = describe({"prop": "revisions", "pageids": "|".join(str(i) for i in range(50))})
    assert text == "request prop=revisions&pageids=0|1|2|… (50 in all)"


# ---- progress -------------------------------------------------------------------------------------
def test_progress_bar_on_a_terminal_and_log_lines_otherwise(capsys, caplog):
    bar = Progress(True)
    bar.phase = "listing"
    bar.update(force=True, categories=3, requests=5, retries=1)
    bar.close()
    err = capsys.readouterr().err
    assert err.startswith("\rcrawl listing") and "categories 3" in err and "requests 5" in err and "retries 1" in err
    assert err.endswith("\n")
    caplog.set_level("INFO", logger="wikitune.corpus.crawl")
    quiet = Progress(False)
    quiet.update(force=True, pages=7)
    quiet.close()
    assert capsys.readouterr().err == ""
    assert [r.getMessage() for r in caplog.records] == ["crawl           categories 0  pages 7  requests 0  retries 0"]
