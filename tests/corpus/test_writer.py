"""Safe, unique file names and the corpus directory writer."""

from __future__ import annotations

import json

import jsonschema
import pytest

from wikitune import formats
from wikitune.corpus.extract import DEMO_ROOTS, ExtractConfig, run_extract
from wikitune.corpus.index import PageIndex
from wikitune.corpus.writer import MAX_STEM_BYTES, CorpusWriter, safe_stem

NASTY = ["Fate/Zero", "?", "..", ".", "a\\b", "きみはだれ?", "星海のアルカディア: 蒼の章", "CON", "100%", "x~1", "末尾.", "ＳＴＡＲ☆ＬＩＧＨＴ！"]


@pytest.mark.parametrize("title", NASTY)
def test_stems_are_plain_names_inside_the_directory(tmp_path, title):
    stem = safe_stem(title)
    assert "/" not in stem and "\\" not in stem and stem not in (".", "..") and not stem.startswith(".")
    assert not set(stem) & set(':*?"<>|~') or stem.endswith(tuple("0123456789abcdef"))
    path = tmp_path / f"{stem}.txt"
    path.write_text("x")
    assert path.resolve().parent == tmp_path.resolve()


def test_stems_are_distinct_for_distinct_titles():
    assert len({safe_stem(t) for t in NASTY}) == len(NASTY)
    assert safe_stem("ＳＴＡＲ☆ＬＩＧＨＴ！") == "ＳＴＡＲ☆ＬＩＧＨＴ！"  # full-width characters stay readable
    assert safe_stem("Fate/Zero") == "Fate%2FZero"


def test_long_titles_are_cut_with_a_hash(tmp_path):
    a, b = "長" * 200 + "A", "長" * 200 + "B"
    sa, sb = safe_stem(a), safe_stem(b)
    assert sa != sb
    assert len(sa.encode()) <= MAX_STEM_BYTES and len(sb.encode()) <= MAX_STEM_BYTES
    (tmp_path / f"{sa}.md").write_text("ok")  # 255-byte limit of the file system holds


def test_case_variants_get_distinct_files_first_come_first_served(tmp_path):
    index = PageIndex.create(tmp_path / "i.sqlite")
    assert index.claim_file(20, "Neon Drive") == "Neon Drive"
    assert index.claim_file(10, "NEON DRIVE") == "NEON DRIVE~10"
    assert index.claim_file(30, "Fate/Zero") == "Fate%2FZero"
    assert index.claim_file(20, "Neon Drive") == "Neon Drive"  # the same page again keeps its file
    index.close()


def test_writer_sorts_articles_and_writes_manifest_last(tmp_path):
    out = tmp_path / "corpus"
    writer = CorpusWriter(out)
    for pageid in (30, 10, 20):
        writer.add({"pageid": pageid, "title": f"T{pageid}", "text": f"text {pageid}", "markdown": f"# T{pageid}", "file": f"T{pageid}"})
    assert not (out / "manifest.json").exists()
    manifest = writer.finish([{"title": "C", "parents": [], "depth": {}}], {"counts": {"articles": 3}})
    ids = [json.loads(line)["pageid"] for line in (out / "articles.jsonl").read_text().splitlines()]
    assert ids == [10, 20, 30]
    assert (out / "text" / "T10.txt").read_text() == "text 10\n"
    assert json.loads((out / "manifest.json").read_text())["counts"] == {"articles": 3}
    assert manifest["tool"] == "wikitune"
    assert not (out / ".articles.spool.sqlite").exists()


@pytest.mark.parametrize("char", ["\u0085", "\u202e", "\u200b", "\u2028", "\u2029", "\x1b", "\x9b", "\ufeff"])
def test_invisible_and_reordering_characters_are_escaped(char):
    # NEL, RIGHT-TO-LEFT OVERRIDE, zero-width space, line/paragraph separators, ESC, CSI, BOM.
    stem = safe_stem(f"evil{char}txt.exe")
    assert char not in stem
    assert stem == "evil" + "".join(f"%{b:02X}" for b in char.encode()) + "txt.exe"
    assert safe_stem("ＳＴＡＲ☆ＬＩＧＨＴ！ 銀魂") == "ＳＴＡＲ☆ＬＩＧＨＴ！ 銀魂"  # visible text stays as it is


def test_writer_replaces_what_an_interrupted_write_left(tmp_path):
    out = tmp_path / "c"
    w = CorpusWriter(out)
    w.add({"pageid": 1, "title": "Old", "text": "old", "markdown": "# Old", "file": "Old"})
    w.finish([], {})
    w = CorpusWriter(out)
    w.add({"pageid": 2, "title": "New", "text": "new", "markdown": "# New", "file": "New"})
    w.finish([], {})
    assert sorted(p.name for p in (out / "text").iterdir()) == ["New.txt"]


def _schema_errors(kind: str, records: list[dict]) -> list[str]:
    validator = jsonschema.Draft202012Validator(formats.schema(kind))
    return [f"{r.get('title')}: {e.message}" for r in records for e in validator.iter_errors(r)]


@pytest.mark.parametrize("roots", [list(DEMO_ROOTS), []], ids=["roots", "every-article"])
def test_extract_demo_records_validate_against_the_schemas(tmp_path, roots):
    run_extract(ExtractConfig(dump="demo", out=tmp_path / "c", roots=roots, workers=1))
    articles = list(formats.iter_articles(tmp_path / "c"))
    categories = list(formats.iter_categories(tmp_path / "c"))
    assert articles and categories
    # Every schema part is exercised: infobox fields, and with roots per-root depths and parents.
    assert any(a["infobox"] for a in articles)
    if roots:
        assert all(a["depth"] for a in articles) and all(c["depth"] for c in categories)
        assert any(c["parents"] for c in categories)
    assert _schema_errors("article", articles) == []
    assert _schema_errors("category", categories) == []


def test_the_schemas_reject_what_the_contract_forbids():
    # The validation above means something only if a wrong record fails it.
    good = {"pageid": 1, "title": "T", "revid": None, "timestamp": None, "url": None, "categories": [],
            "depth": {}, "text": "t", "markdown": "# T", "infobox": [], "file": "T"}
    assert _schema_errors("article", [good]) == []
    assert _schema_errors("article", [{k: v for k, v in good.items() if k != "file"}])
    assert _schema_errors("article", [{**good, "depth": {"root": -1}}])
    assert _schema_errors("article", [{**good, "infobox": [{"template": "Infobox", "fields": {"a": 1}}]}])
    assert _schema_errors("category", [{"title": "C", "parents": "P", "depth": {}}])


def test_markdown_title_heading_escapes_html():
    from wikitune.corpus.convert import convert_wikitext
    from wikitune.corpus.writer import article_record

    record = article_record(pageid=1, title="A&B <i>", revid=None, timestamp=None, url=None, categories=[],
                            depth={}, converted=convert_wikitext("本文。"), file="a")
    assert record["markdown"].startswith("# A&amp;B &lt;i&gt;\n") and record["title"] == "A&B <i>"
