"""`wikitune crawl` end to end against a real MediaWiki serving the demo wiki (see conftest.py).

The crawl must give the corpus `extract` gives from the same XML, whatever the network does
(429, 503, maxlag, resets), and whenever the crawler is killed.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import urllib.parse
from pathlib import Path

import pytest

from tests.mediawiki_server import FaultProxy, LocalWiki, unavailable
from wikitune.corpus.crawl import CrawlConfig, run_crawl
from wikitune.corpus.extract import DEMO_ROOTS, ExtractConfig, demo_dump_path, run_extract
from wikitune.corpus.stats import corpus_stats
from wikitune.errors import WikituneError

pytestmark = pytest.mark.slow

# Fields that legitimately differ between a dump and a live wiki: an import assigns new page and
# revision ids, URLs come from the wiki's own server, and the file of the second of two titles
# differing only in case carries its (new) page id.
SOURCE_SPECIFIC = {"pageid", "revid", "url", "file"}


def records(corpus: Path) -> list[dict]:
    return [json.loads(line) for line in (corpus / "articles.jsonl").read_text(encoding="utf-8").splitlines()]


def by_title(corpus: Path) -> dict[str, dict]:
    return {r["title"]: {k: v for k, v in r.items() if k not in SOURCE_SPECIFIC} for r in records(corpus)}


def crawl(api: str, out: Path, **kw) -> dict:
    kw.setdefault("roots", list(DEMO_ROOTS))
    return run_crawl(CrawlConfig(out=out, api=api, interval=0, backoff=0.05, progress=False, **kw)).manifest


def corpus_files(corpus: Path) -> dict[str, bytes]:
    """Every output file of a corpus but the manifest (which records timings and request counts)."""
    names = ["articles.jsonl", "categories.jsonl"]
    names += sorted(f"{d}/{p.name}" for d in ("text", "markdown") for p in (corpus / d).iterdir())
    return {name: (corpus / name).read_bytes() for name in names}


@pytest.fixture(scope="module")
def clean_crawl(local_wiki, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("crawl") / "corpus"
    crawl(local_wiki.api, out)
    return out


@pytest.fixture(scope="module")
def extracted(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("extract") / "corpus"
    run_extract(ExtractConfig(dump="demo", out=out, roots=list(DEMO_ROOTS), workers=1))
    return out


def test_crawl_gives_the_corpus_extract_gives(clean_crawl, extracted):
    crawled, dumped = by_title(clean_crawl), by_title(extracted)
    assert sorted(crawled) == sorted(dumped)
    for title, record in dumped.items():
        assert crawled[title] == record, title  # text, markdown, infobox, categories (in order), depth, timestamp
    categories = lambda c: (c / "categories.jsonl").read_text(encoding="utf-8")  # noqa: E731
    assert categories(clean_crawl) == categories(extracted)
    # Case-colliding titles get distinct files; a crawl's records follow the contract too.
    crawl_records = records(clean_crawl)
    assert [r["pageid"] for r in crawl_records] == sorted(r["pageid"] for r in crawl_records)
    assert len({r["file"].casefold() for r in crawl_records}) == len(crawl_records)
    for r in crawl_records:
        assert (clean_crawl / "text" / f"{r['file']}.txt").read_text(encoding="utf-8").strip() == r["text"].strip()
        assert r["url"].startswith("http://127.0.0.1:") and r["revid"] > 0


def test_crawl_manifest_counts_requests_against_the_lower_bound(clean_crawl, local_wiki):
    manifest = json.loads((clean_crawl / "manifest.json").read_text(encoding="utf-8"))
    assert manifest["source"] == local_wiki.api and manifest["source_kind"] == "api"
    assert manifest["roots"] == list(DEMO_ROOTS)
    counts = manifest["counts"]
    assert counts["articles"] == 33 and counts["categories"] == 32 and counts["truncated"] == 0
    phases = manifest["requests"]["by_phase"]
    # One listing request per category (all are small), one content batch for 33 articles.
    assert phases["listing"] == counts["categories_listed"] == 32
    assert phases["fetch_articles"] == 1
    bound = phases["listing"] + -(-counts["articles"] // 50)
    assert manifest["requests"]["total"] <= 1.2 * bound
    assert manifest["retries"]["total"] == 0


def test_corpus_stats_reads_a_crawl_and_explains_from_its_index(clean_crawl, tmp_path):
    expect = tmp_path / "expect.txt"
    expect.write_text("星海のアルカディア\nNeon Drive\n存在しない作品\n", encoding="utf-8")
    stats = corpus_stats(clean_crawl, expect=expect)
    assert stats["articles"] == 33 and stats["per_root"]["日本のアニメ作品"] > 0
    missing = {m["title"]: m["reason"] for m in stats["expect"]["missing"]}
    assert list(missing) == ["存在しない作品"] and "not seen by the crawl" in missing["存在しない作品"]


@pytest.mark.parametrize("depth, exclude", [(0, []), (1, ["アニメの登場人物$"]), (None, ["^Category:テレビアニメ作品$", "監督"])])
def test_depth_and_exclude_select_what_extract_selects(local_wiki, tmp_path, depth, exclude):
    manifest = crawl(local_wiki.api, tmp_path / "crawl", depth=depth, exclude=exclude)
    run_extract(ExtractConfig(dump="demo", out=tmp_path / "extract", roots=list(DEMO_ROOTS), depth=depth, exclude=exclude, workers=1))
    assert by_title(tmp_path / "crawl") == by_title(tmp_path / "extract")
    assert (tmp_path / "crawl" / "categories.jsonl").read_text() == (tmp_path / "extract" / "categories.jsonl").read_text()
    extract_manifest = json.loads((tmp_path / "extract" / "manifest.json").read_text(encoding="utf-8"))
    assert manifest["excluded_categories"] == extract_manifest["excluded_categories"]


def test_unknown_root_is_named(local_wiki, tmp_path):
    with pytest.raises(WikituneError, match="unknown category '存在しないカテゴリ'"):
        crawl(local_wiki.api, tmp_path / "c", roots=["日本のアニメ作品", "カテゴリ:存在しないカテゴリ"])
    with pytest.raises(WikituneError, match="did you mean アニメ関連企業"):
        crawl(local_wiki.api, tmp_path / "d", roots=["アニメ関連企"])


def test_a_state_from_other_options_is_not_mixed_in(local_wiki, tmp_path):
    crawl(local_wiki.api, tmp_path / "c", roots=["アニメ関連企業"])
    with pytest.raises(WikituneError, match="other options.*--restart"):
        crawl(local_wiki.api, tmp_path / "c", roots=["アニメ関連人物"])
    assert crawl(local_wiki.api, tmp_path / "c", roots=["アニメ関連人物"], restart=True)["roots"] == ["アニメ関連人物"]


def test_faults_do_not_change_the_corpus_and_retries_are_reported(local_wiki, clean_crawl, tmp_path):
    proxy = FaultProxy(local_wiki.api, every=3).start()
    try:
        manifest = crawl(proxy.api, tmp_path / "c")
    finally:
        proxy.stop()
    assert corpus_files(tmp_path / "c") == corpus_files(clean_crawl)
    injected = proxy.injected
    assert set(injected) == {"429", "503", "maxlag", "reset", "cut"}
    retries = manifest["retries"]["by_kind"]
    assert retries == {"429": injected["429"], "5xx": injected["503"], "maxlag": injected["maxlag"],
                       "connection": injected["reset"] + injected["cut"]}
    assert manifest["requests"]["total"] == proxy.count


def test_exhausted_retries_name_the_request(local_wiki, tmp_path):
    proxy = FaultProxy(local_wiki.api, every=1, faults=("503",)).start()
    try:
        with pytest.raises(WikituneError, match=r"request meta=siteinfo to http://127.0.0.1:\d+/api.php failed after 3 tries, last: HTTP 503"):
            run_crawl(CrawlConfig(roots=["日本のアニメ作品"], out=tmp_path / "c", api=proxy.api, interval=0,
                                  backoff=0.01, max_retries=2, progress=False))
    finally:
        proxy.stop()
    assert proxy.count == 3


def test_killed_crawls_resume_to_the_uninterrupted_corpus(local_wiki, clean_crawl, tmp_path):
    out = tmp_path / "c"
    current: dict = {}
    seen = {"categoryinfo": 0, "categorymembers": 0, "revisions": 0}
    # Kill points, by the request in flight: the roots check (siteinfo done), the 12th category
    # listing, the article content batch, the category pages batch; then once more shortly after
    # the last request, while the corpus is being written (or just after it is done).
    kill_at = {("categoryinfo", 1), ("categorymembers", 12), ("revisions", 1), ("revisions", 3)}
    kills = []

    def on_request(n: int, path: str) -> bool:
        for kind in seen:
            if kind in path:
                seen[kind] += 1
                if (kind, seen[kind]) in kill_at:
                    os.kill(current["proc"].pid, signal.SIGKILL)
                    kills.append((kind, seen[kind]))
                    return False
                if (kind, seen[kind]) == ("revisions", 4):
                    threading.Timer(0.05, lambda p=current["proc"]: p.poll() is None and p.send_signal(signal.SIGKILL)).start()
        return True

    proxy = FaultProxy(local_wiki.api, on_request=on_request).start()
    command = [sys.executable, "-m", "wikitune.cli", "crawl", "--out", str(out), "--api", proxy.api,
               "--interval", "0", "--no-progress", *[a for r in DEMO_ROOTS for a in ("--root", r)]]
    try:
        for run in range(10):
            killed_before = len(kills)
            current["proc"] = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            stdout, stderr = current["proc"].communicate(timeout=120)
            if current["proc"].returncode == 0:
                break
            assert current["proc"].returncode == -signal.SIGKILL, stderr
            if len(kills) > killed_before:  # killed mid-request: the corpus is visibly incomplete
                assert not (out / "manifest.json").exists()
        else:
            pytest.fail("the crawl never finished")
    finally:
        proxy.stop()
    assert len(kills) == 4 and run >= 4
    assert ": 33 articles, 17028 characters, 32 categories" in stdout and "requests, retries: none" in stdout
    assert corpus_files(out) == corpus_files(clean_crawl)  # no page lost, none duplicated
    manifest = json.loads((out / "manifest.json").read_text(encoding="utf-8"))
    assert manifest["runs"] == run + 1 and manifest["counts"]["articles"] == 33


def test_refresh_refetches_only_changed_pages(tmp_path):
    reason = unavailable()
    if reason:
        pytest.skip(f"no local MediaWiki: {reason}; .ci/run installs it")
    wiki = LocalWiki.start(tmp_path / "wiki", demo_dump_path())  # its own wiki: this test edits it
    try:
        out = tmp_path / "c"
        first = crawl(wiki.api, out)
        again = crawl(wiki.api, out)  # a finished crawl run again costs no request
        assert again["requests"] == first["requests"]
        before = {r["title"]: r for r in records(out)}
        wiki.edit("Neon Drive", "'''Neon Drive''' は改稿された架空のアニメ作品。\n\n[[Category:2024年のテレビアニメ]]\n[[Category:Neon Drive]]\n")
        refreshed = crawl(wiki.api, out, refresh=True)
    finally:
        wiki.stop()
    after = {r["title"]: r for r in records(out)}
    delta = {k: n - first["requests"]["by_phase"].get(k, 0) for k, n in refreshed["requests"]["by_phase"].items()}
    assert delta["fetch_articles"] == 1 and delta.get("fetch_categories", 0) == 0
    assert delta["checking"] == 2  # 33 articles + 32 category pages, 50 revision ids a request
    assert after["Neon Drive"]["text"].startswith("Neon Drive は改稿された") and after["Neon Drive"]["revid"] > before["Neon Drive"]["revid"]
    assert after["Neon Drive"]["categories"] == ["2024年のテレビアニメ", "Neon Drive"]
    assert {t: r for t, r in after.items() if t != "Neon Drive"} == {t: r for t, r in before.items() if t != "Neon Drive"}


def test_continuations_are_followed_and_a_kill_inside_one_resumes_there(local_wiki, clean_crawl, tmp_path):
    # The proxy turns cmlimit=max into 2 and cllimit=max into 3: every listing and the content
    # batches become continuation chains, as big categories and pages are on Wikipedia.
    out = tmp_path / "c"
    runs: list[list[str]] = []
    current: dict = {}

    def on_request(n: int, path: str) -> bool:
        runs[-1].append(urllib.parse.unquote(path))
        if len(runs) == 1 and sum("cmcontinue=" in p for p in runs[0]) == 3:
            os.kill(current["proc"].pid, signal.SIGKILL)  # mid-chain: the 3rd continued listing request
            return False
        return True

    proxy = FaultProxy(local_wiki.api, rewrite={"cmlimit": "2", "cllimit": "3"}, on_request=on_request).start()
    command = [sys.executable, "-m", "wikitune.cli", "crawl", "--out", str(out), "--api", proxy.api,
               "--interval", "0", "--no-progress", *[a for r in DEMO_ROOTS for a in ("--root", r)]]
    try:
        for expected_rc in (-signal.SIGKILL, 0):
            runs.append([])
            current["proc"] = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            _, stderr = current["proc"].communicate(timeout=120)
            assert current["proc"].returncode == expected_rc, stderr
    finally:
        proxy.stop()
    killed = runs[0][-1]
    assert "cmcontinue=" in killed and "cmlimit=max" in killed
    # The second run starts with the very request that was killed, continuation included.
    first_listing = next(p for p in runs[1] if "categorymembers" in p)
    assert first_listing == killed
    assert not any("meta=siteinfo" in p for p in runs[1])  # read once, kept in the state
    assert corpus_files(out) == corpus_files(clean_crawl)
    manifest = json.loads((out / "manifest.json").read_text(encoding="utf-8"))
    # Each category took ceil(members / 2) listing requests (at least one): every chain followed to
    # its end, and the killed request (never committed) is not counted twice.
    with sqlite3.connect(clean_crawl / ".crawl.sqlite") as db:
        sizes = dict(db.execute("SELECT c.name, COUNT(m.pageid) FROM categories c LEFT JOIN members m ON m.category = c.name "
                                "WHERE c.status = 'listed' GROUP BY c.name"))
    assert len(sizes) == 32 and max(sizes.values()) > 2
    assert manifest["requests"]["by_phase"]["listing"] == sum(max(1, -(-n // 2)) for n in sizes.values())
    assert any("clcontinue=" in p for p in runs[1])


def test_disambiguation_members_are_counted_as_skipped(local_wiki, tmp_path):
    manifest = crawl(local_wiki.api, tmp_path / "c", roots=["曖昧さ回避"])
    assert manifest["counts"]["articles"] == 0 and manifest["counts"]["skipped"] == {"disambiguation": 1}
    assert (tmp_path / "c" / "articles.jsonl").read_text() == ""
