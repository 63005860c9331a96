"""The streaming dump reader: formats, compression, truncation, memory."""

from __future__ import annotations

import bz2
import gzip
import random
import tracemalloc
from pathlib import Path

import pytest

from wikitune.corpus.sources.dump import DumpReader, check_dump
from wikitune.errors import WikituneError

from tests.conftest import shared_file

HEAD = """<mediawiki xmlns="http://www.mediawiki.org/xml/export-{v}/" version="{v}" xml:lang="ja">
  <siteinfo>
    <sitename>テスト</sitename><dbname>testwiki</dbname>
    <base>http://127.0.0.1/wiki/%E3%83%A1%E3%82%A4%E3%83%B3</base>
    <case>first-letter</case>
    <namespaces>
      <namespace key="0" case="first-letter" />
      <namespace key="14" case="first-letter">カテゴリ</namespace>
    </namespaces>
  </siteinfo>
"""


def page_xml(pageid: int, title: str, text: str, ns: int = 0, redirect: str | None = None) -> str:
    redirect_tag = f'<redirect title="{redirect}" />' if redirect else ""
    return f"""  <page>
    <title>{title}</title>
    <ns>{ns}</ns>
    <id>{pageid}</id>{redirect_tag}
    <revision>
      <id>{pageid * 10}</id>
      <timestamp>2025-01-0{pageid % 9 + 1}T00:00:00Z</timestamp>
      <model>wikitext</model><format>text/x-wiki</format>
      <text bytes="{len(text.encode())}" xml:space="preserve">{text}</text>
    </revision>
  </page>
"""


def dump_xml(pages: list[str], version: str = "0.11", closed: bool = True) -> str:
    return HEAD.format(v=version) + "".join(pages) + ("</mediawiki>\n" if closed else "")


PAGES = [page_xml(1, "アニメ", "'''アニメ'''は[[Category:アニメ]]"),
         page_xml(2, "Fate/Zero", "本文 &lt;ref&gt;"),
         page_xml(3, "カテゴリ:アニメ", "[[カテゴリ:作品]]", ns=14),
         page_xml(4, "旧名", "#転送 [[アニメ]]", redirect="アニメ")]


def read(path: Path, **kw) -> tuple[DumpReader, list]:
    reader = DumpReader(path, **kw)
    return reader, list(reader)


def test_export_010_and_011_read_the_same(tmp_path):
    results = []
    for version in ("0.10", "0.11"):
        path = tmp_path / f"d{version}.xml"
        path.write_text(dump_xml(PAGES, version), encoding="utf-8")
        reader, pages = read(path)
        assert reader.truncation is None
        results.append([(p.pageid, p.title, p.ns, p.revid, p.redirect, p.wikitext) for p in pages])
    assert results[0] == results[1]
    assert results[0][1] == (2, "Fate/Zero", 0, 20, None, "本文 <ref>")
    assert results[0][3][4] == "アニメ"


def test_siteinfo_namespaces_and_urls(tmp_path):
    path = tmp_path / "d.xml"
    path.write_text(dump_xml(PAGES), encoding="utf-8")
    reader, _ = read(path)
    assert reader.siteinfo.namespaces[14] == "カテゴリ"
    assert "カテゴリ" in reader.siteinfo.category_prefixes() and "Category" in reader.siteinfo.category_prefixes()
    assert reader.siteinfo.article_url("Fate/Zero") == "http://127.0.0.1/wiki/Fate/Zero"
    assert reader.siteinfo.article_url("きみは だれ?") == "http://127.0.0.1/wiki/%E3%81%8D%E3%81%BF%E3%81%AF_%E3%81%A0%E3%82%8C%3F"


def test_bz2_multistream_and_gzip(tmp_path):
    text = dump_xml(PAGES)
    plain = tmp_path / "d.xml"
    plain.write_text(text, encoding="utf-8")
    # A multistream dump is the header, then pages in independent bz2 streams, then the footer.
    multistream = tmp_path / "d-multistream.xml.bz2"
    head, body, tail = HEAD.format(v="0.11"), PAGES, "</mediawiki>\n"
    multistream.write_bytes(b"".join(bz2.compress(part.encode()) for part in [head, *body, tail]))
    gz = tmp_path / "d.xml.gz"
    gz.write_bytes(gzip.compress(text.encode()))
    expected = [p.title for p in read(plain)[1]]
    for path in (multistream, gz):
        reader, pages = read(path, chunk_bytes=64)
        assert [p.title for p in pages] == expected
        assert reader.truncation is None


def test_bare_single_page_file(tmp_path):
    path = tmp_path / "page.xml"
    path.write_text(page_xml(225, "うる星やつら", "本文"), encoding="utf-8")
    reader, pages = read(path)
    assert [(p.pageid, p.title) for p in pages] == [(225, "うる星やつら")]
    assert reader.truncation is None


def test_cut_between_pages_keeps_all_and_names_the_offset(tmp_path):
    text = dump_xml(PAGES, closed=False)
    path = tmp_path / "cut.xml"
    path.write_text(text, encoding="utf-8")
    reader, pages = read(path, chunk_bytes=100)
    assert len(pages) == 4
    assert reader.truncation is not None
    assert reader.truncation.byte_offset == len(text.encode())
    assert not reader.truncation.open_page
    message = reader.truncation.message(path)
    assert str(len(text.encode())) in message and "旧名" in message


def test_cut_inside_a_page_drops_only_that_page(tmp_path):
    data = dump_xml(PAGES).encode()
    cut = data[: data.index("Fate/Zero".encode()) + 5]
    path = tmp_path / "cut.xml"
    path.write_bytes(cut)
    reader, pages = read(path)
    assert [p.title for p in pages] == ["アニメ"]
    assert reader.truncation.open_page and reader.truncation.byte_offset == len(cut)


def test_malformed_page_midway_is_named_and_skipped_and_later_pages_are_read(tmp_path):
    bad = "  <page><title>壊れた</title><ns>0</ns><id>9</id><revision><text>x</tex></revision></page>\n"
    data = dump_xml(PAGES[:2] + [bad] + PAGES[2:]).encode()
    path = tmp_path / "bad.xml"
    path.write_bytes(data)
    reader, pages = read(path, chunk_bytes=100)  # small chunks: pages straddle chunk boundaries
    assert [p.title for p in pages] == ["アニメ", "Fate/Zero", "カテゴリ:アニメ", "旧名"]
    assert reader.truncation is None
    [skipped] = reader.bad_pages
    assert skipped.title == "壊れた" and skipped.byte_offset == data.index("<page><title>壊れた".encode())
    assert "mismatched tag" in skipped.reason and f"byte {skipped.byte_offset}" in str(skipped)


def test_one_invalid_byte_skips_only_its_page(tmp_path):
    data = dump_xml(PAGES).encode()
    at = data.index("本文 &lt;ref&gt;".encode())
    data = data[:at] + b"\xff" + data[at:]  # not UTF-8: the XML of this page is not well-formed
    path = tmp_path / "byte.xml.bz2"
    path.write_bytes(bz2.compress(data))
    reader, pages = read(path, chunk_bytes=64)
    assert [p.title for p in pages] == ["アニメ", "カテゴリ:アニメ", "旧名"]
    assert reader.truncation is None and reader.pages_read == 3
    [skipped] = reader.bad_pages
    page_start = data.rindex(b"<page>", 0, at)
    assert (skipped.title, skipped.byte_offset) == ("Fate/Zero", page_start)
    assert "not well-formed" in skipped.reason


def test_a_page_left_open_is_skipped_up_to_the_next_page(tmp_path):
    unclosed = PAGES[1].replace("</page>", "")
    data = dump_xml([PAGES[0], unclosed, PAGES[2]]).encode()
    path = tmp_path / "open.xml"
    path.write_bytes(data)
    reader, pages = read(path)
    assert [p.title for p in pages] == ["アニメ", "カテゴリ:アニメ"] and reader.truncation is None
    assert [(b.title, b.byte_offset) for b in reader.bad_pages] == [("Fate/Zero", data.index("<page>\n    <title>Fate/Zero".encode()))]


@pytest.mark.parametrize("content, message", [
    (b"", "is empty"),
    (b"  \n", "is empty"),
    (b"hello, world\n", "is not XML"),
    (b"-- MySQL dump 10.19\n\nCREATE TABLE `categorylinks` (\n", "is an SQL dump"),
    (b"<html><body>not a dump</body></html>", "root element is <html>"),
])
def test_files_that_are_not_dumps_are_errors(tmp_path, content, message):
    path = tmp_path / "dump.xml.gz"
    path.write_bytes(gzip.compress(content))
    with pytest.raises(WikituneError, match=message):
        check_dump(path)
    with pytest.raises(WikituneError, match=message):
        list(DumpReader(path))


def test_truncated_bz2_stream(tmp_path):
    # bz2 works in 900 kB blocks: a dump of several blocks cut halfway still yields its first blocks.
    rng = random.Random(0)
    pages = [page_xml(i, f"P{i}", "".join(rng.choice("アイウエオカキクケコ本文") for _ in range(600))) for i in range(1, 2001)]
    data = bz2.compress(dump_xml(pages).encode())
    path = tmp_path / "cut.xml.bz2"
    path.write_bytes(data[: len(data) // 2])
    reader, got = read(path)
    assert reader.truncation is not None and "compressed stream cut" in reader.truncation.reason
    assert 0 < len(got) < 2000
    assert [p.pageid for p in got] == list(range(1, len(got) + 1))


def test_page_without_id_is_reported_not_fatal(tmp_path):
    broken = PAGES[1].replace("<id>2</id>", "")
    path = tmp_path / "d.xml"
    path.write_text(dump_xml([PAGES[0], broken, PAGES[2]]), encoding="utf-8")
    reader, pages = read(path)
    assert [p.pageid for p in pages] == [1, 3]
    assert [b.title for b in reader.bad_pages] == ["Fate/Zero"] and "has no <id>" in reader.bad_pages[0].reason


def _peak_bytes(path: Path) -> int:
    tracemalloc.start()
    for _ in DumpReader(path, chunk_bytes=1 << 16):
        pass
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return peak


def test_memory_does_not_grow_with_dump_size(tmp_path):
    body = "長い本文。" * 200
    small, large = tmp_path / "small.xml", tmp_path / "large.xml"
    small.write_text(dump_xml([page_xml(i, f"P{i}", body) for i in range(1, 501)]), encoding="utf-8")
    large.write_text(dump_xml([page_xml(i, f"P{i}", body) for i in range(1, 10001)]), encoding="utf-8")
    assert large.stat().st_size > 15 * small.stat().st_size
    # 20x the pages must not need anywhere near 20x the memory. The read-ahead queue (4 chunks of
    # 64 KiB, plus the chunk being parsed and its carry-over) is a constant that a small dump may
    # never fill while a large one does, depending on thread timing: it is allowed on top.
    read_ahead = (4 + 2) * (1 << 16)
    assert _peak_bytes(large) < 2 * _peak_bytes(small) + read_ahead


def test_real_truncated_2022_dump():
    path = shared_file("jawiki-dump", "wp2txt_testdata_ja.xml.bz2")
    reader, pages = read(path)
    assert len(pages) == 262
    assert sum(1 for p in pages if p.ns == 0) == 223
    assert sum(1 for p in pages if p.redirect) == 31
    assert reader.truncation is not None and reader.truncation.byte_offset == 10492281
    assert pages[-1].title == "唐沢なをき"
