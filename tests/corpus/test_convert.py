"""Wikitext → plain text / Markdown / infobox fields (wikitune.corpus.convert).

    .venv/bin/pytest tests/corpus/test_convert.py -q

Golden files live in tests/data/convert/: NAME.wiki with the expected NAME.txt, NAME.md and
NAME.infobox.json. After a deliberate change to the output, regenerate them with
`WIKITUNE_REGEN_GOLDEN=1 .venv/bin/pytest tests/corpus/test_convert.py -k golden` and review the
diff by eye before committing.
"""

from __future__ import annotations

import bz2
import gc
import html
import json
import os
import random
import re
from pathlib import Path

import pytest

from wikitune.corpus import convert
from wikitune.corpus.convert import Converted, convert_wikitext, is_disambiguation, template_name

GOLDEN_DIR = Path(__file__).resolve().parents[1] / "data" / "convert"
DUMP_DIR = Path(__file__).resolve().parents[3] / "shared" / "data" / "jawiki-dump"

# Markup that must never survive in the plain text / the Markdown.
FORBIDDEN_TEXT = ["[[", "]]", "{{", "}}", "'''", "''", "<ref", "</ref", "{|", "|}", "__TOC__", "<!--", "-->"]
FORBIDDEN_MD = ["[[", "{{", "'''", "<ref"]


@pytest.fixture(autouse=True)
def no_fallback(monkeypatch):
    """The regex-only fallback hides bugs: outside the malformed-input tests, using it fails."""

    def fail(wikitext, title):
        raise AssertionError("convert_wikitext fell back to the regex-only path")

    monkeypatch.setattr(convert, "_fallback", fail)


def text(wikitext: str) -> str:
    return convert_wikitext(wikitext, "ページ").text


def md(wikitext: str) -> str:
    return convert_wikitext(wikitext, "ページ").markdown


def assert_clean(c: Converted, where: str = "") -> None:
    left = [m for m in FORBIDDEN_TEXT if m in c.text]
    assert not left, f"{where}: {left} left in text"
    left = [m for m in FORBIDDEN_MD if m in c.markdown]
    assert not left, f"{where}: {left} left in markdown"


# ---------------------------------------------------------------------------------------------
# Headings and sections


def test_headings():
    src = "前文\n== 見出し ==\n本文\n=== 小見出し ===\n小本文\n==== 4 ====\nx"
    assert text(src) == "前文\n\n見出し\n\n本文\n\n小見出し\n\n小本文\n\n4\n\nx"
    assert md(src) == "前文\n\n## 見出し\n\n本文\n\n### 小見出し\n\n小本文\n\n#### 4\n\nx"


def test_reference_sections_dropped_and_related_kept():
    src = ("本文\n== 脚注 ==\n{{Reflist}}\n=== 注釈 ===\nメモ\n== 関連項目 ==\n* [[A]]\n* [[B|ビー]]\n"
           "== 外部リンク ==\n* [http://x.jp 公式]\n[[Category:X]]")
    assert text(src) == "本文\n\n関連項目\n\nA\nビー"
    assert md(src) == "本文\n\n## 関連項目\n\n- A\n- ビー"


@pytest.mark.parametrize("title", ["脚注", "注釈", "出典", "参考文献", "外部リンク", "References", "Notes",
                                   "External links", "脚注・出典", "注釈と出典"])
def test_each_dropped_section(title):
    assert md(f"本文\n== {title} ==\n消える\n=== 下位 ===\nこれも消える\n== 歴史 ==\n残る") == "本文\n\n## 歴史\n\n残る"


def test_dropped_section_ends_at_same_or_higher_level_only():
    assert md("a\n=== 出典 ===\nx\n==== 下位 ====\ny\n=== 次 ===\nz\n== 上 ==\nw") == "a\n\n### 次\n\nz\n\n## 上\n\nw"


def test_heading_with_markup_in_title_and_dropped_title_with_link():
    assert md("== '''太字'''と[[リンク|見出し]] ==\n本文") == "## 太字と見出し\n\n本文"
    assert md("本文\n== [[脚注]] ==\n消える") == "本文"


def test_heading_of_empty_section_dropped():
    assert md("本文\n== 空 ==\n{{Main|X}}\n== 次 ==\n中身") == "本文\n\n## 次\n\n中身"
    assert md("== 親 ==\n=== 子 ===\n中身") == "## 親\n\n### 子\n\n中身"


# ---------------------------------------------------------------------------------------------
# Inline formatting and links


def test_bold_italic():
    src = "'''太字'''と''斜体''と'''''両方'''''"
    assert text(src) == "太字と斜体と両方"
    assert md(src) == "**太字**と*斜体*と***両方***"


def test_unclosed_bold_closes_at_end_of_line():
    assert md("'''開いたまま\n次の行") == "**開いたまま**\n次の行"


def test_internal_links():
    assert text("[[リンク]]と[[記事 (曖昧)|表示]]と[[日本#歴史|歴史]]") == "リンクと表示と歴史"
    assert md("[[記事|'''太字'''の表示]]") == "**太字**の表示"
    assert text("[[京都 (曖昧さ回避)|]]") == "京都"  # pipe trick


def test_category_file_and_interlanguage_links_dropped():
    src = ("A[[Category:カテゴリ]][[category:x|ソート]][[カテゴリ:y]][[ファイル:a.jpg|thumb|説明に[[リンク]]]]"
           "[[画像:b.png|左]][[File:c.svg|x]][[Image:d.gif]][[Media:e.ogg]][[en:English]][[zh-yue:粵]]B")
    assert text(src) == "AB"
    assert md(src) == "AB"


def test_leading_colon_category_link_is_text():
    assert text("[[:Category:表示される]]") == "Category:表示される"


def test_external_links():
    assert text("[http://example.com 公式サイト]を参照") == "公式サイトを参照"
    assert text("前[http://example.com]後") == "前後"
    assert text("URLは http://example.com/free です") == "URLは http://example.com/free です"


# ---------------------------------------------------------------------------------------------
# Lists


def test_bullet_and_numbered_lists():
    src = "* a\n** b\n* c\n\n# d\n# e\n#* f\n# g"
    assert text(src) == "a\nb\nc\n\nd\ne\nf\ng"
    assert md(src) == "- a\n  - b\n- c\n\n1. d\n2. e\n   - f\n3. g"


def test_numbering_restarts_after_paragraph():
    assert md("# a\n# b\n\n文\n# c") == "1. a\n2. b\n\n文\n1. c"


def test_definition_lists():
    src = ";用語:定義\n;用語2\n:定義2\n::さらに"
    assert text(src) == "用語\n定義\n用語2\n定義2\nさらに"
    assert md(src) == "**用語**\n  定義\n**用語2**\n  定義2\n    さらに"


def test_list_in_template_argument_starts_a_list():
    assert md("{{Plainlist|* a\n* b}}") == "- a\n- b"


# ---------------------------------------------------------------------------------------------
# Templates


@pytest.mark.parametrize("src, expected", [
    ("{{Ruby|漢字|かんじ}}", "漢字（かんじ）"),
    ("{{ruby|字|じ}}", "字（じ）"),
    ("{{ルビ|日本|にほん}}", "日本（にほん）"),
    ("{{読み仮名|東京|とうきょう}}", "東京（とうきょう）"),
    ("{{読み仮名|東京|}}", "東京"),
    ("{{lang|en|English}}", "English"),
    ("{{Lang|fr|''Paris''}}", "Paris"),
    ("{{lang-fr|Français}}", "Français"),
    ("{{lang-en-short|Tokyo}}", "Tokyo"),
    ("{{仮リンク|表示名|en|Target}}", "表示名"),
    ("{{nowrap|a}}{{small|b}}{{smaller|c}}{{larger|d}}", "abcd"),
    ("{{color|red|赤}}", "赤"),
    ("{{要出典範囲|主張|date=2020年1月}}", "主張"),
    ("{{Visible anchor|錨}}", "錨"),
    ("{{by|1999}}", "1999"),
    ("{{Nihongo|Tokyo|東京|Tōkyō}}", "Tokyo（東京）"),
    ("{{生年月日と年齢|1957|10|10}}", "1957年10月10日"),
    ("{{PAGENAME}}", "ページ"),
    ("{{formatnum:1234567}}", "1,234,567"),
    ("{{JPN}}", "日本"),
    ("{{Flag|usa}}", "アメリカ合衆国"),
    ("{{Template:Lang|en|x}}", "x"),
    ("{{lang\n|en\n| spaced }}", "spaced"),
])
def test_content_templates(src, expected):
    assert text(src) == expected


@pytest.mark.parametrize("src", [
    "{{出典の明記|date=2020年}}", "{{Main|X}}", "{{Reflist}}", "{{Aimai}}", "{{#if:x|y|z}}",
    "{{DEFAULTSORT:あ}}", "{{Cite web|url=http://x|title=t}}", "{{Navbox|name=x|list1=[[a]]}}",
    "{{要出典|date=2020年}}", "{{Sfn|著者|2000|p=1}}", "{{{1|}}}",
])
def test_other_templates_removed(src):
    assert text(f"A{src}B") == "AB"


def test_ruby_keeps_markdown_inside():
    assert md("{{Ruby|'''漢字'''|かんじ}}") == "**漢字**（かんじ）"


def test_template_name_normalization():
    assert template_name("  infobox_animanga/Header ") == "Infobox animanga/Header"
    assert template_name("Template:lang") == "Lang"
    assert template_name("テンプレート:ruby") == "Ruby"
    assert template_name("基礎情報   会社") == "基礎情報 会社"
    assert template_name("ルビ") == "ルビ"
    assert template_name("") == ""


# ---------------------------------------------------------------------------------------------
# Infoboxes


def test_infobox_captured_and_removed_from_text():
    src = """{{Infobox animanga/Manga
| 作者 = [[高橋留美子]]<ref>出典</ref>
| 出版社 = [[小学館]]
| 巻数 = 全34巻（SSC）<br />全15巻（SSCW）
| 空欄 =
| 画像 = [[ファイル:a.jpg|200px]]
| 2
| 備考 = 複数
  行の   値
}}
本文。"""
    c = convert_wikitext(src)
    assert c.text == "本文。"
    assert c.markdown == "本文。"
    assert c.infobox == [{"template": "Infobox animanga/Manga", "fields": {
        "作者": "高橋留美子", "出版社": "小学館", "巻数": "全34巻（SSC）、全15巻（SSCW）", "備考": "複数、行の 値"}}]


def test_infobox_list_value_and_order():
    src = ("{{基礎情報 会社|社名=株式会社X|事業内容=\n* 企画\n* 制作\n}}"
           "{{Infobox 人物|名前=山田}}{{infobox_other|x=[[a|b]]}}{{Otheruses|無関係}}")
    c = convert_wikitext(src)
    assert c.infobox == [
        {"template": "基礎情報 会社", "fields": {"社名": "株式会社X", "事業内容": "企画、制作"}},
        {"template": "Infobox 人物", "fields": {"名前": "山田"}},
        {"template": "Infobox other", "fields": {"x": "b"}},
    ]
    assert c.text == ""


def test_infobox_value_note_in_brackets_is_not_a_separate_item():
    c = convert_wikitext("{{Infobox X|デザイン=宵宮 カナ<br />（原案）}}")
    assert c.infobox[0]["fields"] == {"デザイン": "宵宮 カナ（原案）"}


def test_table_wrapping_infobox_templates_is_dropped():
    src = ("{{Infobox animanga/Header|タイトル=T}}\n| colspan=\"2\" style=\"padding: 0;\"|\n"
           "{| class=\"infobox\"\n! colspan=\"2\" |'''[[T (アニメ)|アニメ]]'''\n{{Infobox animanga/Other|タイトル=一覧}}\n|}\n"
           "{{Infobox animanga/Footer}}\n本文")
    c = convert_wikitext(src)
    assert c.text == "本文"
    assert [i["template"] for i in c.infobox] == [
        "Infobox animanga/Header", "Infobox animanga/Other", "Infobox animanga/Footer"]


# ---------------------------------------------------------------------------------------------
# Tags, comments, entities, magic words


def test_refs_and_reference_like_tags_removed():
    src = ('A<ref>注</ref>B<ref name="x" />C<ref name=y group="注">z</ref>D<references />E'
           "<gallery>\nFile:a.jpg|説明\n</gallery>F<timeline>x</timeline><templatedata>{}</templatedata>"
           "<score>c</score><graph>{}</graph><mapframe>{}</mapframe>G")
    assert text(src) == "ABCDEFG"


def test_inline_tags_keep_contents():
    src = ("<nowiki>[x]</nowiki><small>s</small><big>b</big><sup>2</sup><sub>3</sub>"
           '<span style="color:red">sp</span><u>u</u><s>st</s>')
    assert text(src) == "[x]sb23spust"


def test_block_tags_keep_contents():
    assert text("前<div>中</div>後") == "前\n中\n後"
    assert text("<center>中央</center>") == "中央"
    assert text("<blockquote>引用</blockquote>") == "引用"
    assert text("<poem>一行目\n二行目</poem>") == "一行目\n二行目"


def test_br_is_a_newline():
    assert text("A<br>B<br />C<br/>D") == "A\nB\nC\nD"


def test_code_and_math():
    src = "式<math>E=mc^2</math>と<code>print()</code>と<chem>H2O</chem>"
    assert text(src) == "式E=mc^2とprint()とH2O"
    assert md(src) == "式`E=mc^2`と`print()`と`H2O`"


def test_code_blocks_keep_indentation():
    src = '前\n<syntaxhighlight lang="python">\ndef f():\n    return 1\n</syntaxhighlight>\n後'
    assert text(src) == "前\n\ndef f():\n    return 1\n\n後"
    assert md(src) == "前\n\n```python\ndef f():\n    return 1\n```\n\n後"
    assert md("<pre>\n  a &lt; b\n</pre>") == "```\n  a < b\n```"


def test_comments_rule_entities_magic_words():
    src = "A<!-- comment -->B\n----\nC&nbsp;D&amp;E&lt;F&gt;&#x41;&#66;&ndash;__TOC__\n__NOTOC__"
    assert text(src) == "AB\n\nC D&E<F>AB–"


def test_ruby_tag():
    assert text("<ruby>漢字<rp>(</rp><rt>かんじ</rt><rp>)</rp></ruby>") == "漢字（かんじ）"


# ---------------------------------------------------------------------------------------------
# Tables

TABLE = """{| class="wikitable" style="font-size:small"
|+ 表題
! 名前 !! style="width:5em" | 値
|-
| style="color:red" | a{{!}}b || 1
|-
| 複数<br />行 || 2
|}"""


def test_table_markdown():
    assert md(TABLE) == "表題\n\n| 名前 | 値 |\n| --- | --- |\n| a\\|b | 1 |\n| 複数<br>行 | 2 |"


def test_table_text():
    assert text(TABLE) == "表題\n名前\t値\na|b\t1\n複数 行\t2"


def test_table_without_header_row_gets_empty_header():
    assert md("{|\n| a || b\n|-\n| c || d\n|}") == "|  |  |\n| --- | --- |\n| a | b |\n| c | d |"


def test_table_spans_and_empty_columns():
    src = ("{|\n! 年 !! 題 !! 出典\n|-\n| rowspan=\"2\" | 2020 || A || <ref>x</ref>\n|-\n| B ||\n"
           "|-\n| colspan=\"2\" | 合計 ||\n|}")
    assert md(src) == "| 年 | 題 |\n| --- | --- |\n| 2020 | A |\n|  | B |\n| 合計 |  |"


def test_caption_after_row_separator():
    assert md("{|\n|-\n|+ 表題\n! a !! b\n|-\n| 1 || 2\n|}") == "表題\n\n| a | b |\n| --- | --- |\n| 1 | 2 |"


def test_nested_table_is_flattened():
    src = "{|\n! 外\n|-\n|\n{|\n| x || y\n|-\n| z\n|}\n|}"
    assert md(src) == "| 外 |\n| --- |\n| x y<br>z |"
    assert text(src) == "外\nx y z"


def test_indented_table_is_a_table():
    assert md(":{|\n! h\n|-\n| v\n|}") == "| h |\n| --- |\n| v |"


def test_table_lists_in_cells():
    assert md("{|\n! h\n|-\n|\n* a\n* b\n|}") == "| h |\n| --- |\n| - a<br>- b |"


# ---------------------------------------------------------------------------------------------
# Post-processing


def test_empty_brackets_left_by_removed_templates():
    assert text("A（{{要出典}}）東京({{lang|en|}})C（、{{Sfn|a}}）D（{{Sfn|a}}；）E") == "A東京CDE"
    assert text("関数 main() を呼ぶ") == "関数 main() を呼ぶ"
    assert text("東京（とうきょう、{{Sfn|x}}）") == "東京（とうきょう）"
    assert text("パリ（{{IPA-fr|paʁi|}}）") == "パリ（paʁi）"
    assert text("東京（{{Sfn|x}}、とうきょう）") == "東京（とうきょう）"


def test_blank_lines_and_spaces():
    assert text("\n\nA\n\n\n\n\nB   \n  C\n\n") == "A\n\nB\nC"


def test_paragraphs_preserved():
    assert md("一段落目。\n\n二段落目の{{要出典}}文。\n続き。") == "一段落目。\n\n二段落目の文。\n続き。"


# ---------------------------------------------------------------------------------------------
# Malformed input never raises and never leaks markup

MALFORMED = [
    "{{Infobox foo | a = [[b",
    "'''太字のまま\n次",
    "本文<ref>閉じない参照",
    "{| class=\"wikitable\"\n| a || b\n|-\n| c",
    "[[File:x.jpg|thumb|[[入れ子]]",
    "}} ]] |} 閉じるだけ",
    "<div><span>閉じないタグ",
    "前<!-- 閉じないコメント",
    "{{{{{{x}}}}}}",
    "[[" * 2000,
    "{{a|" * 3000,
    "<div>" * 3000,
    "'''''" * 100,
    "{|\n" * 100,
    "== 見出し",
    "==\n==",
    "[[Category:",
    "<ref name=a/><ref>",
    "<nowiki>",
    "\x00\x0b\x0e1\x0f",
]


_FALLBACK = convert._fallback


@pytest.mark.parametrize("src", MALFORMED)
def test_malformed_input(src, monkeypatch):
    monkeypatch.setattr(convert, "_fallback", _FALLBACK)  # allowed here
    c = convert_wikitext(src, "T")
    assert isinstance(c, Converted)
    assert_clean(c, repr(src[:40]))


def test_random_markup_soup(monkeypatch):
    monkeypatch.setattr(convert, "_fallback", _FALLBACK)
    pieces = ["[[", "]]", "{{", "}}", "{{{", "}}}", "|", "=", "==", "\n", "\n\n", "'''", "''", "<ref>", "</ref>",
              "<ref name=a/>", "{|", "|}", "|-", "!", "||", "*", "#", ":", ";", "<!--", "-->", "<div>", "</div>",
              "<br/>", "&amp;", "&nbsp;", "Infobox X", "lang", "File:x.jpg", "Category:y", "en:", "http://x.jp",
              "[", "]", "テキスト", " ", "<nowiki>", "</nowiki>", "<math>", "</math>", "__TOC__", "----", "<pre>",
              "</pre>", "<table>", "<tr>", "<td>", "{{!}}", "脚注", "<gallery>", "''''", "<", ">", "_"]
    rnd = random.Random(20240601)
    for _ in range(1500):
        src = "".join(rnd.choice(pieces) for _ in range(rnd.randint(1, 60)))
        assert_clean(convert_wikitext(src, "T"), repr(src))


def test_empty_input():
    assert convert_wikitext("") == Converted(text="", markdown="", infobox=[])


# ---------------------------------------------------------------------------------------------
# Disambiguation


@pytest.mark.parametrize("src, title, expected", [
    ("'''X'''は…\n{{Aimai}}", "X", True),
    ("{{aimai}}", "X", True),
    ("{{曖昧さ回避}}", "X", True),
    ("{{人名の曖昧さ回避}}", "X", True),
    ("{{地名の曖昧さ回避}}", "X", True),
    ("{{山の曖昧さ回避}}", "X", True),
    ("{{ Disambig }}", "X", True),
    ("{{dab|x}}", "X", True),
    ("{{Template:Aimai}}", "X", True),
    ("[[Category:曖昧さ回避]]", "X", True),
    ("[[カテゴリ:人名の曖昧さ回避|よみ]]", "X", True),
    ("本文", "EU (曖昧さ回避)", True),
    ("{{Otheruses|漫画|アニメ|X (アニメ)}}本文", "X", False),
    ("[[曖昧さ回避]]についての記事", "X", False),
    ("{{Infobox 人物|名前=曖昧さ回避}}", "X", False),
])
def test_is_disambiguation(src, title, expected):
    assert is_disambiguation(src, title) is expected


# ---------------------------------------------------------------------------------------------
# Golden files: realistic (fictional) jawiki-style articles

GOLDEN = sorted(p.stem for p in GOLDEN_DIR.glob("*.wiki"))


@pytest.mark.parametrize("name", GOLDEN)
def test_golden(name):
    wiki = (GOLDEN_DIR / f"{name}.wiki").read_text(encoding="utf-8")
    c = convert_wikitext(wiki, name)
    infobox = json.dumps(c.infobox, ensure_ascii=False, indent=2) + "\n"
    expected = {f"{name}.txt": c.text + "\n", f"{name}.md": c.markdown + "\n", f"{name}.infobox.json": infobox}
    if os.environ.get("WIKITUNE_REGEN_GOLDEN"):
        for file, content in expected.items():
            (GOLDEN_DIR / file).write_text(content, encoding="utf-8")
    for file, content in expected.items():
        assert content == (GOLDEN_DIR / file).read_text(encoding="utf-8"), file
    assert_clean(c, name)


def test_golden_files_exist():
    assert len(GOLDEN) >= 2


def test_garbage_collector_state_is_restored():
    """convert_wikitext pauses the cyclic garbage collector while it runs; it must leave it as found."""
    wiki = (GOLDEN_DIR / f"{GOLDEN[0]}.wiki").read_text(encoding="utf-8")
    assert gc.isenabled()
    convert_wikitext(wiki, "T")
    assert gc.isenabled()
    gc.disable()
    try:
        convert_wikitext(wiki, "T")
        assert not gc.isenabled()
    finally:
        gc.enable()


def test_conversion_leaves_no_reference_cycles():
    """With the collector paused, everything must be freed by reference counting."""
    wikis = [(GOLDEN_DIR / f"{name}.wiki").read_text(encoding="utf-8") for name in GOLDEN]
    gc.collect()
    gc.set_debug(gc.DEBUG_SAVEALL)
    try:
        for wiki in wikis:
            convert_wikitext(wiki, "T")
        assert gc.collect() == 0, [type(o).__name__ for o in gc.garbage[:20]]
    finally:
        gc.set_debug(0)
        gc.garbage.clear()


# ---------------------------------------------------------------------------------------------
# Real jawiki articles (../shared/data/jawiki-dump)

_PAGE = re.compile(r"<page>(.*?)</page>", re.S)


def _pages(path: Path) -> list[tuple[str, int, bool, str]]:
    """(title, ns, is_redirect, wikitext) of every complete <page> (works on truncated dumps)."""
    if not path.exists():
        pytest.skip(f"real data {path} is absent (it lives in ../shared/data/jawiki-dump beside the repository)")
    raw = bz2.open(path, "rt", encoding="utf-8").read() if path.suffix == ".bz2" else path.read_text(encoding="utf-8")
    pages = []
    for m in _PAGE.finditer(raw):
        body = m.group(1)
        title = html.unescape(re.search(r"<title>(.*?)</title>", body, re.S).group(1))
        ns = int(re.search(r"<ns>(\d+)</ns>", body).group(1))
        t = re.search(r"<text[^>]*?(?:/>|>(.*?)</text>)", body, re.S)
        pages.append((title, ns, "<redirect" in body, html.unescape(t.group(1) or "") if t else ""))
    return pages


def _articles(name: str) -> dict[str, str]:
    return {title: w for title, ns, redirect, w in _pages(DUMP_DIR / name) if ns == 0 and not redirect}


@pytest.mark.parametrize("name, count", [("jawiki_anime_fixture.xml", 10), ("wp2txt_testdata_ja.xml.bz2", 204),
                                         ("jawiki-20221101-page-225-urusei_yatsura.xml", 1)])
def test_real_dumps_convert_cleanly(name, count):
    articles = _articles(name)
    assert len(articles) == count
    for title, wikitext in articles.items():
        c = convert_wikitext(wikitext, title)
        assert_clean(c, title)
        residue = re.search(r'(?:style|class|colspan|rowspan)\s*=\s*"|&(?:[a-z]+|#\d+);|</?(?:span|div|td|tr)\b', c.text)
        assert residue is None, f"{title}: {residue.group(0)!r} left in text"
        if not is_disambiguation(wikitext, title):
            assert len(c.text) > 0.1 * len(wikitext) or len(c.text) > 200, title


def test_urusei_yatsura():
    wikitext = _articles("jawiki-20221101-page-225-urusei_yatsura.xml")["うる星やつら"]
    c = convert_wikitext(wikitext, "うる星やつら")
    assert c.text.startswith("『うる星やつら』（うるせいやつら、ラテン文字表記: Urusei Yatsura）は、高橋留美子による日本の漫画作品。")
    for fact in ["高橋留美子", "週刊少年サンデー", "諸星あたる", "ラム", "友引町", "小学館漫画賞"]:
        assert fact in c.text
    fields = {i["template"]: i["fields"] for i in c.infobox}
    assert fields["Infobox animanga/Header"]["タイトル"] == "うる星やつら"
    manga = fields["Infobox animanga/Manga"]
    assert manga["作者"] == "高橋留美子"
    assert manga["出版社"] == "小学館"
    assert manga["掲載誌"] == "週刊少年サンデー"
    assert manga["巻数"] == "全34巻（SSC）、全15巻（SSCW）、全18巻（SB）"
    assert "1981年版" in fields["Infobox animanga/Other"]["コンテンツ"]
    assert "colspan" not in c.text and "Infobox" not in c.text
    assert "## 関連項目" in c.markdown
    assert "外部リンク" not in c.text and "脚注" not in c.markdown


def test_dragon_ball():
    c = convert_wikitext(_articles("jawiki_anime_fixture.xml")["ドラゴンボール"], "ドラゴンボール")
    assert c.markdown.startswith("『**ドラゴンボール**』（DRAGON BALL）は、鳥山明による日本の漫画作品。")
    assert "\n## 概要\n" in c.markdown and "\n### 孫悟空少年編\n" in c.markdown
    assert "\n| 国名 | 出版社 | 部数 | 備考 |\n| --- | --- | --- | --- |\n| **日本** | 集英社 |" in c.markdown
    assert "各国の出版社の部数一覧" in c.text


def test_real_article_tables_become_markdown_tables():
    c = convert_wikitext(_articles("wp2txt_testdata_ja.xml.bz2")["栃木県"], "栃木県")
    tables = re.findall(r"^\| .* \|\n\|(?: --- \|)+$", c.markdown, re.M)
    assert len(tables) >= 5
    assert "栃木県及び県内主要市町 平成22年国勢調査人口密度・可住地人口密度" in c.text


def test_real_disambiguation_page():
    pages = _articles("jawiki_anime_fixture.xml")
    assert is_disambiguation(pages["EU (曖昧さ回避)"], "EU (曖昧さ回避)")
    assert not is_disambiguation(pages["うる星やつら"], "うる星やつら")
    assert not is_disambiguation(pages["鳥山明"], "鳥山明")


def test_markdown_headings_show_html_as_text():
    from wikitune.corpus.convert import convert_wikitext

    converted = convert_wikitext("導入。\n\n== &lt;script&gt;alert(1)&lt;/script&gt; の節 ==\n本文。\n", title="見出し")
    assert "<script>" not in converted.markdown
    assert "## &lt;script&gt;alert(1)&lt;/script&gt; の節" in converted.markdown
    assert "<script>alert(1)</script> の節" in converted.text  # plain text keeps the characters as written
