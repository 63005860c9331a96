"""`wikitune extract` end to end: the demo wiki, the real truncated dump, SQL dumps."""

from __future__ import annotations

import json
from xml.sax.saxutils import escape
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO, TEST_DATA, shared_file
from wikitune.corpus.extract import DEMO_ROOTS, ExtractConfig, run_extract
from wikitune.corpus.sources.dump import DumpReader
from wikitune.errors import WikituneError

EXPECTED = json.loads((TEST_DATA / "demo_expected.json").read_text(encoding="utf-8"))
MARKUP = re.compile(r"\[\[|\]\]|\{\{|\}\}|'''|''|<ref|</ref|\{\||<!--|__TOC__")


def articles(corpus: Path) -> list[dict]:
    return [json.loads(line) for line in (corpus / "articles.jsonl").read_text(encoding="utf-8").splitlines()]


@pytest.fixture(scope="module")
def demo_corpus(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("demo") / "corpus"
    run_extract(ExtractConfig(dump="demo", out=out, roots=list(DEMO_ROOTS)))
    return out


def test_demo_roots_give_exactly_the_expected_articles(demo_corpus):
    assert EXPECTED["roots"] == list(DEMO_ROOTS)
    titles = sorted(a["title"] for a in articles(demo_corpus))
    assert titles == sorted(EXPECTED["articles_under_roots"])
    assert not set(titles) & set(EXPECTED["outside_roots"])  # voice actors, the city, the company
    assert not set(titles) & set(EXPECTED["redirects"] + EXPECTED["disambiguation"])


def test_demo_manifest_counts_every_skip(demo_corpus):
    manifest = json.loads((demo_corpus / "manifest.json").read_text(encoding="utf-8"))
    counts = manifest["counts"]
    assert counts["articles"] == len(EXPECTED["articles_under_roots"])
    assert counts["skipped"]["redirect"] == len(EXPECTED["redirects"])
    assert counts["skipped"]["disambiguation"] == len(EXPECTED["disambiguation"])
    assert counts["skipped"]["outside_roots"] == len(EXPECTED["outside_roots"])
    assert counts["truncated"] == 0
    assert manifest["roots"] == list(DEMO_ROOTS) and manifest["source"] == "demo"


def test_demo_records_follow_the_contract(demo_corpus):
    records = articles(demo_corpus)
    assert [r["pageid"] for r in records] == sorted(r["pageid"] for r in records)
    keys = {"pageid", "title", "revid", "timestamp", "url", "categories", "depth", "text", "markdown", "infobox", "file"}
    for r in records:
        assert set(r) == keys
        assert (demo_corpus / "text" / f"{r['file']}.txt").read_text(encoding="utf-8").strip() == r["text"].strip()
        assert (demo_corpus / "markdown" / f"{r['file']}.md").read_text(encoding="utf-8").strip() == r["markdown"].strip()
        assert r["depth"] and set(r["depth"]) <= set(DEMO_ROOTS)
        assert r["categories"] and all(not c.startswith(("Category:", "カテゴリ:")) and "_" not in c for c in r["categories"])
        assert r["url"].startswith("http://")
    assert len({r["file"].casefold() for r in records}) == len(records)
    by_title = {r["title"]: r for r in records}
    assert by_title["NEON DRIVE"]["file"] != by_title["Neon Drive"]["file"]
    assert "/" not in by_title["魔導探偵サクラ/ゼロ"]["file"]
    assert by_title["カナタ (Neon Drive)"]["depth"] == {"日本のアニメ作品": 1}  # via アニメの登場人物


def test_demo_text_has_no_markup_and_infoboxes_have_facts(demo_corpus):
    records = articles(demo_corpus)
    for r in records:
        assert not MARKUP.search(r["text"]), (r["title"], MARKUP.search(r["text"]).group())
        assert r["markdown"].startswith(f"# {r['title']}\n")
    fields = sum(len(box["fields"]) for r in records for box in r["infobox"])
    assert fields >= 150


def test_categories_file_has_depths_and_the_cycle_is_harmless(demo_corpus):
    categories = {c["title"]: c for c in map(json.loads, (demo_corpus / "categories.jsonl").read_text(encoding="utf-8").splitlines())}
    a, b = EXPECTED["category_cycle"]
    assert b in categories[a]["parents"] and a in categories[b]["parents"]
    assert categories["日本のアニメ作品"]["depth"] == {"日本のアニメ作品": 0}
    assert all(set(c["depth"]) <= set(DEMO_ROOTS) and c["depth"] for c in categories.values())
    assert "声優" not in categories  # the voice actors' branch is not reached


def test_exclude_and_depth(tmp_path):
    out = tmp_path / "c"
    run_extract(ExtractConfig(dump="demo", out=out, roots=list(DEMO_ROOTS), exclude=["^アニメの登場人物$"]))
    assert sorted(a["title"] for a in articles(out)) == sorted(EXPECTED["articles_under_roots_excluding_characters"])
    manifest = json.loads((out / "manifest.json").read_text(encoding="utf-8"))
    assert "アニメの登場人物" in manifest["excluded_categories"]
    # Without the characters' category, カナタ is reached only through `[[Category:Neon_Drive]]`.
    assert next(a for a in articles(out) if a["title"] == "カナタ (Neon Drive)")["depth"] == {"日本のアニメ作品": 3}
    run_extract(ExtractConfig(dump="demo", out=out, roots=list(DEMO_ROOTS), depth=2, exclude=["^アニメの登場人物$"]))
    assert all(min(a["depth"].values()) <= 2 for a in articles(out))
    assert "カナタ (Neon Drive)" not in {a["title"] for a in articles(out)}
    assert "星海のアルカディア" in {a["title"] for a in articles(out)}


def test_no_root_keeps_every_article(tmp_path):
    result = run_extract(ExtractConfig(dump="demo", out=tmp_path / "all", workers=1))
    titles = {a["title"] for a in articles(tmp_path / "all")}
    assert titles == set(EXPECTED["articles_under_roots"]) | set(EXPECTED["outside_roots"])
    assert "outside_roots" not in result.manifest["counts"]["skipped"]


def test_root_spellings_and_unknown_root(tmp_path):
    run_extract(ExtractConfig(dump="demo", out=tmp_path / "a", roots=["Category:アニメ関連企業"]))
    run_extract(ExtractConfig(dump="demo", out=tmp_path / "b", roots=["カテゴリ:アニメ関連企業"]))
    assert articles(tmp_path / "a") == articles(tmp_path / "b") and articles(tmp_path / "a")
    with pytest.raises(WikituneError, match="unknown category 'アニメ関連企'.*did you mean アニメ関連企業"):
        run_extract(ExtractConfig(dump="demo", out=tmp_path / "c", roots=["アニメ関連企"]))


def test_real_truncated_dump_via_cli(tmp_path):
    dump = shared_file("jawiki-dump", "wp2txt_testdata_ja.xml.bz2")
    out = tmp_path / "real"
    result = subprocess.run([sys.executable, "-m", "wikitune.cli", "extract", str(dump), "--out", str(out), "--workers", "2"],
                            capture_output=True, text=True, cwd=REPO)
    assert result.returncode == 0, result.stderr
    assert "byte 10492281" in result.stderr and "Traceback" not in result.stderr
    manifest = json.loads((out / "manifest.json").read_text(encoding="utf-8"))
    assert manifest["counts"]["truncated"] == 1 and manifest["truncation"]["byte_offset"] == 10492281
    records = articles(out)
    skipped = manifest["counts"]["skipped"]
    # 223 main-namespace pages: every one is an article or counted under a reason.
    assert len(records) + skipped["redirect"] + skipped.get("disambiguation", 0) + skipped.get("empty_text", 0) == 223
    main_redirects = sum(1 for p in DumpReader(dump) if p.ns == 0 and p.redirect)
    assert skipped["redirect"] == main_redirects and len(records) > 180
    for r in records:
        assert not MARKUP.search(r["text"]), (r["title"], MARKUP.search(r["text"]).group())


def test_workers_do_not_change_the_output(tmp_path):
    dump = shared_file("jawiki-dump", "wp2txt_testdata_ja.xml.bz2")
    run_extract(ExtractConfig(dump=str(dump), out=tmp_path / "one", workers=1))
    run_extract(ExtractConfig(dump=str(dump), out=tmp_path / "two", workers=2))
    assert (tmp_path / "one" / "articles.jsonl").read_bytes() == (tmp_path / "two" / "articles.jsonl").read_bytes()


def test_real_anime_fixture_with_roots(tmp_path):
    dump = shared_file("jawiki-dump", "jawiki_anime_fixture.xml")
    result = run_extract(ExtractConfig(dump=str(dump), out=tmp_path / "c", roots=["高橋留美子の漫画作品", "鳥山明の漫画作品"]))
    titles = {a["title"] for a in articles(tmp_path / "c")}
    assert {"うる星やつら", "ドラゴンボール"} <= titles and "パリ" not in titles
    assert result.manifest["counts"]["skipped"]["disambiguation"] == 1  # EU (曖昧さ回避)


SQL_DUMP_PAGES = [(1, "魔法少女 ルミナ"), (2, "O'Brien の冒険"), (3, "A\\B 計画"), (9, "\"引用\" の謎")]


def _xml_without_category_links(path: Path) -> Path:
    # Pages whose categories come only from templates: invisible in wikitext, present in SQL dumps.
    pages = "".join(
        f"<page><title>{escape(t)}</title><ns>0</ns><id>{i}</id><revision><id>{i}0</id>"
        f"<text>{{{{作品情報}}}}'''{t}'''は作品である。</text></revision></page>"
        for i, t in SQL_DUMP_PAGES
    )
    path.write_text(f'<mediawiki xmlns="http://www.mediawiki.org/xml/export-0.11/">{pages}'
                    f'<page><title>ルミナ</title><ns>0</ns><id>4</id><redirect title="魔法少女 ルミナ"/>'
                    f'<revision><id>40</id><text>#転送 [[魔法少女 ルミナ]]</text></revision></page></mediawiki>', encoding="utf-8")
    return path


@pytest.mark.parametrize("schema", ["old", "new"])
def test_sql_dump_categories_in_both_schemas(tmp_path, schema):
    dump = _xml_without_category_links(tmp_path / "dump.xml")
    sql = TEST_DATA / "sql" / schema
    cfg = ExtractConfig(dump=str(dump), out=tmp_path / "c", roots=["アニメ"], categorylinks=sql / "categorylinks.sql",
                        page=sql / "page.sql", linktarget=(sql / "linktarget.sql") if schema == "new" else None)
    result = run_extract(cfg)
    depth = {a["title"]: a["depth"]["アニメ"] for a in articles(tmp_path / "c")}
    # アニメ > 日本のアニメ作品 (page 6) > テレビ アニメ (page 7): both category pages exist only in page.sql.
    assert depth == {"魔法少女 ルミナ": 1, "O'Brien の冒険": 1, "\"引用\" の謎": 2}
    assert result.manifest["sql"]["schema"] == ("cl_to" if schema == "old" else "linktarget")
    lumina = next(a for a in articles(tmp_path / "c") if a["pageid"] == 1)
    assert set(lumina["categories"]) == {"テレビ アニメ", "日本のアニメ作品"}


def test_sql_new_schema_without_linktarget_is_a_clear_error(tmp_path):
    dump = _xml_without_category_links(tmp_path / "dump.xml")
    with pytest.raises(WikituneError, match="--linktarget"):
        run_extract(ExtractConfig(dump=str(dump), out=tmp_path / "c", roots=["アニメ"],
                                  categorylinks=TEST_DATA / "sql" / "new" / "categorylinks.sql"))


def test_not_a_dump_is_a_clear_error(tmp_path):
    path = tmp_path / "notes.xml"
    path.write_text("<html><body>not a dump</body></html>")
    with pytest.raises(WikituneError, match="not a MediaWiki XML export: its root element is <html>"):
        run_extract(ExtractConfig(dump=str(path), out=tmp_path / "c"))
    # A MediaWiki export cut before its first page is no corpus either (not "truncated" with 0 articles).
    path.write_text('<mediawiki xmlns="http://www.mediawiki.org/xml/export-0.11/"><siteinfo></siteinfo><page><title>A</title>')
    with pytest.raises(WikituneError, match=r"no complete <page> found.*ends early at byte \d+ .*before the first page"):
        run_extract(ExtractConfig(dump=str(path), out=tmp_path / "c"))
    assert not (tmp_path / "c").exists()


def test_siteinfo_namespace_name_adds_category_links(tmp_path):
    # A wiki whose category namespace is called 分類: its links count as memberships too.
    dump = tmp_path / "d.xml"
    dump.write_text(
        '<mediawiki xmlns="http://www.mediawiki.org/xml/export-0.10/"><siteinfo><namespaces>'
        '<namespace key="0" /><namespace key="14">分類</namespace></namespaces></siteinfo>'
        "<page><title>作品A</title><ns>0</ns><id>1</id><revision><id>10</id><text>本文A [[分類:作品]]</text></revision></page>"
        "<page><title>作品B</title><ns>0</ns><id>2</id><revision><id>20</id><text>本文B [[Category:作品]]</text></revision></page>"
        "<page><title>作品C</title><ns>0</ns><id>3</id><revision><id>30</id><text>本文C [[分類外:作品]]</text></revision></page>"
        "</mediawiki>", encoding="utf-8")
    run_extract(ExtractConfig(dump=str(dump), out=tmp_path / "c", roots=["作品"]))
    assert [a["title"] for a in articles(tmp_path / "c")] == ["作品A", "作品B"]


def test_excluding_a_root_is_an_error(tmp_path):
    with pytest.raises(WikituneError, match="matches an --exclude"):
        run_extract(ExtractConfig(dump="demo", out=tmp_path / "c", roots=["日本のアニメ作品"], exclude=["アニメ作品$"]))
