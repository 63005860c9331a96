"""Convert one article's wikitext into plain text, Markdown and infobox fields.

    from wikitune.corpus.convert import convert_wikitext
    c = convert_wikitext(wikitext, title="うる星やつら")
    c.text, c.markdown, c.infobox

Design, and why:

* Tokens come from mwparserfromhell's C tokenizer, but the tree is built here. The stock
  ``mwparserfromhell.parse`` spends ~85% of its time in the pure-Python ``Builder`` (Wikicode,
  SmartList, Tag setters that re-parse their arguments); a tree of plain tuples built from the same
  tokens is several times faster and carries everything this converter needs.
* Before tokenizing, a cheap regex pre-pass removes what is always dropped and is expensive to
  tokenize: HTML comments, ``<ref>`` elements, and the trailing 脚注/出典/参考文献/外部リンク
  sections (full of citation templates).
* One walk renders text and Markdown at the same time (two output buffers). Line-level structure
  that depends on what follows (list prefixes, definition-term bold, empty sections) is written as
  control-character sentinels and resolved in a final pass.
* Nothing raises: malformed input is whatever the tokenizer makes of it, a final scrub removes any
  markup that survived as literal text, and a regex-only fallback handles tokenizer failures.
* Speed: the tree builder reads one shared token iterator (no copying or popping), with fast
  paths for the usual shapes (``[[title]]``, ``[[title|text]]``, list markers, one-text template
  names, parameters and cells). Nothing makes reference cycles, so the cyclic garbage collector,
  which otherwise re-traverses the token objects (about one per four characters) over and over,
  is paused during a conversion. Full-page regexes start with a literal or a character set, so
  that the engine can skip ahead, and each is guarded by a cheap ``in`` test where one exists.

The template, tag and section tables at the top are meant to be extended.
"""

from __future__ import annotations

import gc
import html
import re
from dataclasses import dataclass, field
from itertools import chain

from mwparserfromhell.parser import tokens as _tk

try:  # the C tokenizer; the pure-Python one emits the same tokens
    from mwparserfromhell.parser._tokenizer import CTokenizer as _Tokenizer
except ImportError:  # pragma: no cover - only without the compiled extension
    from mwparserfromhell.parser.tokenizer import Tokenizer as _Tokenizer

__all__ = ["Converted", "convert_wikitext", "is_disambiguation", "template_name"]

# --------------------------------------------------------------------------------------------
# Tables (extend here)

# Section titles whose heading and body are dropped (compared with all whitespace removed).
# Compound titles made only of these words ("脚注・出典", "注釈と出典") are dropped too.
DROP_SECTIONS = frozenset({
    "脚注", "注釈", "注記", "注", "出典", "参照", "参考文献", "参考資料", "引用文献", "外部リンク",
    "References", "Notes", "Footnotes", "Externallinks", "Sources", "Bibliography", "Citations",
})

# Infobox templates: name starts with one of these, or contains "infobox" (any case), or is listed.
INFOBOX_PREFIXES = ("Infobox", "基礎情報")
# Japanese Wikipedia's person, voice actor and municipality infoboxes do not say "Infobox".
INFOBOX_NAMES = frozenset({"生物分類表", "Taxobox", "Chembox", "Drugbox", "声優", "ActorActress", "日本の市町村",
                           "駅情報", "Musician", "漫画家", "アニメーター"})

# Templates rendered as (kind, argument). Keys go through template_name(), so write them naturally.
# Every template not listed here (and not an infobox or `lang-xx`) is removed with its content.
_K_ARG, _K_RUBY, _K_LAST, _K_CONST, _K_LABEL, _K_INTERLANG, _K_LINES, _K_JOIN, _K_DATE, \
    _K_PREFIX, _K_PAGENAME, _K_QUOTE, _K_FLAG = range(13)

TEMPLATE_RULES: dict[str, tuple[int, object]] = {}


def _rules(kind: int, arg: object, *names: str) -> None:
    for name in names:
        TEMPLATE_RULES[name] = (kind, arg)


# {{Ruby|漢字|かな}} → 漢字（かな）
_rules(_K_RUBY, None, "Ruby", "ルビ", "読み仮名", "読み仮名 ruby不使用", "読み仮名 ruby使用", "Nihongo",
       "Ruby-ja")
# content is positional argument N
_rules(_K_ARG, 1, "Nowrap", "Nobr", "Small", "Smaller", "Larger", "Big", "要出典範囲",
       "Visible anchor", "Vanchor", "By", "Nts", "Sup", "Sub", "Center", "Inline-block", "Unicode",
       "Nobold", "Noitalic", "Quotation", "Ilq", "Abbr", "Plainlist", "Flatlist", "Bold", "Italic",
       "En", "Fr", "De", "Zh", "Ko", "Es", "It", "Ru", "La", "El", "Ar", "Pt", "Nl",
       "Lang-en-short", "Serif", "Sans-serif", "Jis2004", "JIS2004フォント", "Ja-Hani", "Hlist-item")
_rules(_K_ARG, 2, "Lang", "Color", "Colour", "Font color", "Fontcolor", "Fontsize", "Transl")
_rules(_K_ARG, 3, "LangWithName")
# content is the last positional argument
_rules(_K_LAST, None, "Columns-list", "Col-list", "Div col list", "Resize")
_rules(_K_LABEL, 1, "仮リンク", "Ill2", "Ill", "Link-interwiki", "Interlanguage link")
_rules(_K_INTERLANG, None, "Interlang")
_rules(_K_LINES, None, "Unbulleted list", "Ubl", "Plainlist2")
_rules(_K_JOIN, "、", "Hlist-comma", "Hlist", "Enum")
_rules(_K_DATE, 1, "生年月日と年齢", "誕生日と年齢", "生年月日", "Birth date and age", "Birth date")
_rules(_K_DATE, 4, "没年月日と没年齢", "Death date and age")
_rules(_K_PREFIX, "ISBN ", "ISBN2", "ISBN")
_rules(_K_ARG, 1, "IPA", "IPA2", "IPAc-en", "Pron", "Audio-IPA")
# flag + country name templates ({{JPN}}, {{Flag|JPN}}): just the name
COUNTRY_CODES = {
    "JPN": "日本", "USA": "アメリカ合衆国", "CHN": "中華人民共和国", "KOR": "大韓民国", "PRK": "朝鮮民主主義人民共和国",
    "TWN": "台湾", "HKG": "香港", "GBR": "イギリス", "UK": "イギリス", "FRA": "フランス", "DEU": "ドイツ",
    "GER": "ドイツ", "ITA": "イタリア", "ESP": "スペイン", "CAN": "カナダ", "AUS": "オーストラリア",
    "RUS": "ロシア", "BRA": "ブラジル", "IND": "インド", "MEX": "メキシコ", "NLD": "オランダ",
    "SWE": "スウェーデン", "CHE": "スイス", "SUI": "スイス", "AUT": "オーストリア", "BEL": "ベルギー",
    "THA": "タイ", "PHL": "フィリピン", "IDN": "インドネシア", "VNM": "ベトナム", "SGP": "シンガポール",
    "MYS": "マレーシア", "NZL": "ニュージーランド", "POL": "ポーランド", "FIN": "フィンランド",
    "NOR": "ノルウェー", "DNK": "デンマーク", "IRL": "アイルランド", "PRT": "ポルトガル", "GRC": "ギリシャ",
    "TUR": "トルコ", "EGY": "エジプト", "ARG": "アルゼンチン", "ZAF": "南アフリカ共和国",
}
for _code, _country in COUNTRY_CODES.items():
    _rules(_K_CONST, _country, _code)
_rules(_K_FLAG, None, "Flag", "Flagcountry", "Flag country")
_rules(_K_CONST, "|", "!")
_rules(_K_CONST, "=", "=")
_rules(_K_CONST, " ", "Nbsp", "Sp", "Spaces", "Space")
_rules(_K_CONST, "・", "・")
_rules(_K_PAGENAME, None, "PAGENAME", "FULLPAGENAME", "PAGENAMEE", "SUBPAGENAME", "BASEPAGENAME")
_rules(_K_QUOTE, None, "Quote", "Cquote", "Quote box", "Blockquote")

# Disambiguation templates (jawiki). Any template whose name ends in "の曖昧さ回避" counts too.
DISAMBIGUATION_TEMPLATES = frozenset({
    "Aimai", "曖昧さ回避", "Disambig", "Dab", "Disambiguation", "人名の曖昧さ回避",
    "地名の曖昧さ回避", "山の曖昧さ回避", "同名の作品", "Hndis", "Geodis",
})

# Tags dropped with their content.
DROP_TAGS = frozenset({
    "ref", "references", "gallery", "timeline", "templatedata", "score", "graph", "mapframe",
    "maplink", "imagemap", "indicator", "categorytree", "inputbox", "includeonly", "hiero",
    "section", "rp", "templatestyles", "style", "script", "charinsert", "dynamicpagelist",
})
# Tags whose content is shown as code: inline (`x`) or, for block tags/multi-line, fenced.
CODE_TAGS = frozenset({"math", "chem", "ce", "code", "tt", "kbd", "samp", "var"})
BLOCK_CODE_TAGS = frozenset({"pre", "syntaxhighlight", "source"})
# Tags whose content the tokenizer leaves unparsed (raw text).
_RAW_TAGS = frozenset({"nowiki", "pre", "math", "chem", "ce", "syntaxhighlight", "source"})

# Namespaces of links that are dropped entirely.
FILE_NAMESPACES = frozenset({"file", "image", "media", "ファイル", "画像", "メディア"})
CATEGORY_NAMESPACES = frozenset({"category", "カテゴリ"})
_INTERLANG = re.compile(r"[a-z]{2,3}(?:-[a-z0-9]{2,8})*$")

# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Converted:
    """One article, converted.

    Attributes:
        text (str): plain text; paragraphs separated by blank lines, no wiki markup.
        markdown (str): the same content as Markdown (headings, emphasis, lists, tables).
        infobox (list[dict]): ``{"template": str, "fields": {str: str}}`` per infobox template,
            in page order; plain-text values, empty ones omitted.
    """

    text: str
    markdown: str
    infobox: list[dict] = field(default_factory=list)


def template_name(raw: str) -> str:
    """Normalize a template name as MediaWiki resolves it.

    Strips, turns ``_`` into spaces, collapses spaces, drops a ``Template:``/``テンプレート:``
    prefix (and ``subst:``), and upper-cases the first letter.

    Args:
        raw (str): the name as written between ``{{`` and the first ``|``.

    Returns:
        str: the normalized name (``""`` for an empty name).
    """
    name = _NAME_CACHE.get(raw)
    if name is not None:
        return name
    name = _WS.sub(" ", raw.replace("_", " ")).strip()
    while True:
        m = _NAME_PREFIX.match(name)
        if not m:
            break
        name = name[m.end():].lstrip()
    if name:
        name = name[0].upper() + name[1:]
    if len(_NAME_CACHE) > 100_000:
        _NAME_CACHE.clear()
    _NAME_CACHE[raw] = name
    return name


_NAME_CACHE: dict[str, str] = {}
_WS = re.compile(r"\s+")
_NAME_PREFIX = re.compile(r"(?:template|テンプレート|safesubst|subst|msgnw)\s*:", re.I)

TEMPLATE_RULES = {template_name(k): v for k, v in TEMPLATE_RULES.items()}
DISAMBIGUATION_TEMPLATES = frozenset(template_name(k) for k in DISAMBIGUATION_TEMPLATES)
INFOBOX_NAMES = frozenset(template_name(k) for k in INFOBOX_NAMES)

_DISAMBIG_TEMPLATE = re.compile(r"\{\{\s*([^{}|\n]+?)\s*(?:\||\}\})")
_DISAMBIG_CATEGORY = re.compile(r"\[\[\s*(?:category|カテゴリ)\s*:[^\]|\n]*曖昧さ回避\s*(?:\||\]\])", re.I)


def is_disambiguation(wikitext: str, title: str = "") -> bool:
    """Whether a jawiki page is a disambiguation page (regex only, no parse).

    Args:
        wikitext (str): the page source.
        title (str): the page title; ``"X (曖昧さ回避)"`` titles count as disambiguation.

    Returns:
        bool: True for a page using a disambiguation template or in a ``…曖昧さ回避`` category.
    """
    if title.rstrip().endswith("(曖昧さ回避)"):
        return True
    for raw in _DISAMBIG_TEMPLATE.findall(wikitext):
        name = template_name(raw)
        if name in DISAMBIGUATION_TEMPLATES or name.endswith("の曖昧さ回避"):
            return True
    return bool(_DISAMBIG_CATEGORY.search(wikitext))


# --------------------------------------------------------------------------------------------
# Pre-pass on the raw wikitext

_COMMENT = re.compile(r"<!--.*?(?:-->|\Z)", re.S)
_REF = re.compile(r"<ref\b[^<>]*?/>|<ref(?:\s[^<>]*)?>.*?</ref\s*>", re.S | re.I)
# a heading line, matched after a "\n" (literal-first patterns scan a long page much faster)
_HEADING_LINE = re.compile(r"\n(={1,6})([^\n]+?)(={1,6})[ \t]*(?=\n|\Z)")
_SECTION_SPLIT = re.compile(r"[・、/／&＆,，]|および|及び|と")
_QUOTE_RUN = re.compile(r"''+")  # (not "'{2,}": a literal prefix makes the regex engine scan ~10x faster)
# "^" in MULTILINE mode would be tried at every position; a leading "\n" is found quickly
_INDENTED_TABLE = re.compile(r"\n:+[ \t]*(?=\{\|)")
_BOLD, _ITALIC = "'" * 3, "'" * 2


def _balance_quotes(s: str) -> str:
    """Close bold/italic left open at the end of a line, as MediaWiki does.

    mwparserfromhell would otherwise pair it with quotes on later lines, which can make it give up
    on a whole table.
    """
    inserts: list[tuple[int, str]] = []
    line_end = -1
    bold = italic = False
    last = ""
    for m in _QUOTE_RUN.finditer(s):
        if m.start() > line_end:  # the first run on a new line: settle the previous line
            if line_end >= 0 and (bold or italic):
                inserts.append((line_end, _closers(bold, italic, last)))
            line_end = s.find("\n", m.end())
            if line_end < 0:
                line_end = len(s)
            bold = italic = False
        n = len(m.group(0))
        if n == 2:
            italic, last = not italic, "i"
        elif n < 5:
            bold, last = not bold, "b"
        else:
            bold, italic = not bold, not italic
    if line_end >= 0 and (bold or italic):
        inserts.append((line_end, _closers(bold, italic, last)))
    if not inserts:
        return s
    out, pos = [], 0
    for at, text in inserts:
        out.append(s[pos:at])
        out.append(text)
        pos = at
    out.append(s[pos:])
    return "".join(out)


def _closers(bold: bool, italic: bool, last: str) -> str:
    if bold and italic:  # close the innermost (last opened) first
        return _BOLD + _ITALIC if last == "b" else _ITALIC + _BOLD
    return _BOLD if bold else _ITALIC


def _is_dropped_section(title: str) -> bool:
    key = "".join(title.split()).strip("=")
    if key in DROP_SECTIONS:
        return True
    parts = [p for p in _SECTION_SPLIT.split(key) if p]
    return len(parts) > 1 and all(p in DROP_SECTIONS for p in parts)


_CONTROL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


def _prepass(s: str) -> str:
    if _CONTROL.search(s):  # invalid in XML anyway; the renderer uses some as sentinels
        s = _CONTROL.sub("", s)
    if "<!--" in s:
        s = _COMMENT.sub("", s)
    if "<ref" in s or "<REF" in s or "<Ref" in s:
        s = _REF.sub("", s)
    if "''" in s:
        s = _balance_quotes(s)
    if ":{|" in s or ": {|" in s:
        s = _INDENTED_TABLE.sub("\n", "\n" + s)[1:]
    if "=" not in s:
        return s
    s = "\n" + s  # so that a heading on the first line is found too
    headings = [(m.start() + 1, min(len(m.group(1)), len(m.group(3))), m.group(2))
                for m in _HEADING_LINE.finditer(s)]
    if not headings:
        return s[1:]
    keep, pos, i = [], 1, 0
    while i < len(headings):
        start, level, title = headings[i]
        if _is_dropped_section(title):
            keep.append(s[pos:start])
            j = i + 1
            while j < len(headings) and headings[j][1] > level:
                j += 1
            pos = headings[j][0] if j < len(headings) else len(s)
            i = j
        else:
            i += 1
    if not keep:
        return s[1:]
    keep.append(s[pos:])
    return "".join(keep)


# --------------------------------------------------------------------------------------------
# Light tree built from tokenizer output
#
# A node list is a Python list of `str` (text, entities already decoded) and tuples:
#   (_TPL, name_nodes, [(key_nodes | None, value_nodes), ...])
#   (_ARGUMENT, default_nodes | None)          {{{x|default}}}
#   (_LINK, title_nodes, text_nodes | None)
#   (_EXT, url_nodes, title_nodes | None, brackets)
#   (_HEAD, level, title_nodes)
#   (_TAG, name, wiki_markup, attrs: dict, contents | None)
#   (_LIST, markers)                            consecutive "*", "#", ";", ":" at a line start

_TPL, _ARGUMENT, _LINK, _EXT, _HEAD, _TAG, _LIST = range(7)
_LIST_MARKUP = frozenset("*#;:")
_LIST_NODES = {markup: (_LIST, markup) for markup in _LIST_MARKUP}

_Text = _tk.Text
_STOP_TPL = frozenset({_tk.TemplateParamSeparator, _tk.TemplateClose})
_STOP_PARAM = frozenset({_tk.TemplateParamSeparator, _tk.TemplateClose, _tk.TemplateParamEquals})
_STOP_ARG = frozenset({_tk.ArgumentSeparator, _tk.ArgumentClose})
_STOP_ARG_END = frozenset({_tk.ArgumentClose})
_STOP_LINK = frozenset({_tk.WikilinkSeparator, _tk.WikilinkClose})
_STOP_LINK_END = frozenset({_tk.WikilinkClose})
_STOP_EXT = frozenset({_tk.ExternalLinkSeparator, _tk.ExternalLinkClose})
_STOP_EXT_END = frozenset({_tk.ExternalLinkClose})
_STOP_HEAD = frozenset({_tk.HeadingEnd})
_STOP_COMMENT = frozenset({_tk.CommentEnd})
_STOP_TAGNAME = frozenset({_tk.TagAttrStart, _tk.TagCloseOpen, _tk.TagCloseSelfclose})
_STOP_ATTRNAME = frozenset({_tk.TagAttrEquals, _tk.TagAttrStart, _tk.TagCloseOpen, _tk.TagCloseSelfclose})
_STOP_TAGBODY = frozenset({_tk.TagOpenClose})
_STOP_TAGCLOSE = frozenset({_tk.TagCloseClose})
_NOSTOP: frozenset = frozenset()


_LIST_START = re.compile(r"[*#:;]+")


def _list_start(nodes: list, named: bool) -> list:
    """A parameter value that starts with list markup starts a list (MediaWiki T14974): the
    tokenizer saw it mid-line, so turn the leading markers into a list node here."""
    if nodes and nodes[0].__class__ is str:
        first = nodes[0].lstrip() if named else nodes[0]
        if first and first[0] in "*#:;":
            m = _LIST_START.match(first)
            rest = first[m.end():]
            return [(_LIST, m.group(0))] + ([rest] if rest else []) + nodes[1:]
    return nodes


def _plain(nodes: list) -> str:
    """The literal text of a node list (non-text nodes ignored)."""
    return "".join(n for n in nodes if n.__class__ is str)


class _Builder:
    """Turns the flat token list into the light tree above (mirrors mwparserfromhell's Builder).

    All methods read from one shared iterator over the tokens: a nested ``collect`` consumes what
    it needs and the caller's ``for`` loop carries on after it. A method that has read a token it
    cannot handle itself passes it on as ``collect(..., first=tok)``.
    """

    def __init__(self, toks: list) -> None:
        self.it = iter(toks)

    def collect(self, stops: frozenset, out: list | None = None, first=None) -> tuple[list, object]:
        if out is None:
            out = []
        it = self.it if first is None else chain((first,), self.it)
        handlers = _BUILD
        for tok in it:
            cls = tok.__class__
            if cls is _Text:
                s = tok["text"]
                if out and out[-1].__class__ is str:
                    out[-1] += s
                else:
                    out.append(s)
                continue
            if cls in stops:
                return out, tok
            if cls is _WikilinkOpen:
                out.append(self.wikilink(tok))
                continue
            if cls is _TagOpenOpen:
                node = self.tag(tok)
            else:
                handler = handlers.get(cls)
                if handler is None:  # a stray closing token: ignore
                    continue
                node = handler(self, tok)
                if node is None:
                    continue
            if node.__class__ is str:
                if out and out[-1].__class__ is str:
                    out[-1] += node
                else:
                    out.append(node)
            elif node[0] == _LIST and out and out[-1].__class__ is tuple and out[-1][0] == _LIST:
                out[-1] = (_LIST, out[-1][1] + node[1])
            else:
                out.append(node)
        return out, None

    def collect_short(self, stops: frozenset) -> tuple[list, object]:
        """collect() for what is usually one text token (a template name or parameter, a cell)."""
        tok = next(self.it, None)
        if tok.__class__ is _Text:
            s = tok["text"]
            tok = next(self.it, None)
            if tok.__class__ in stops:
                return [s], tok
            return self.collect(stops, [s], tok)
        if tok.__class__ in stops:
            return [], tok
        return self.collect(stops, None, tok)

    def template(self, tok):
        collect = self.collect_short
        name, end = collect(_STOP_TPL)
        params = []
        while end is not None and end.__class__ is not _tk.TemplateClose:
            first, end = collect(_STOP_PARAM)
            if end is not None and end.__class__ is _tk.TemplateParamEquals:
                value, end = collect(_STOP_TPL)
                params.append((first, _list_start(value, True)))
            else:
                params.append((None, _list_start(first, False)))
        return (_TPL, name, params)

    def argument(self, tok):
        _, end = self.collect(_STOP_ARG)
        default = None
        if end is not None and end.__class__ is _tk.ArgumentSeparator:
            default, end = self.collect(_STOP_ARG_END)
        return (_ARGUMENT, default)

    def wikilink(self, tok):
        it = self.it
        # fast paths: [[title]] and [[title|text]] with plain text
        tok = next(it, None)
        if tok.__class__ is _Text:
            title_text = tok["text"]
            tok = next(it, None)
            cls = tok.__class__
            if cls is _WikilinkClose:
                return (_LINK, [title_text], None)
            if cls is _WikilinkSeparator:
                title, end = [title_text], tok
            else:
                title, end = self.collect(_STOP_LINK, [title_text], tok)
        else:
            title, end = self.collect(_STOP_LINK, None, tok)
        text = None
        if end is not None and end.__class__ is _WikilinkSeparator:
            tok = next(it, None)
            if tok.__class__ is _Text:
                text_text = tok["text"]
                tok = next(it, None)
                if tok.__class__ is _WikilinkClose:
                    return (_LINK, title, [text_text])
                text, end = self.collect(_STOP_LINK_END, [text_text], tok)
            else:
                text, end = self.collect(_STOP_LINK_END, None, tok)
        return (_LINK, title, text)

    def external_link(self, tok):
        url, end = self.collect(_STOP_EXT)
        title = None
        if end is not None and end.__class__ is _tk.ExternalLinkSeparator:
            title, end = self.collect(_STOP_EXT_END)
        return (_EXT, url, title, bool(tok.get("brackets")))

    def entity(self, tok):
        raw = ["&"]
        for t in self.it:
            cls = t.__class__
            if cls is _tk.HTMLEntityEnd:
                break
            if cls is _tk.HTMLEntityNumeric:
                raw.append("#")
            elif cls is _tk.HTMLEntityHex:
                raw.append(t.get("char") or "x")
            elif cls is _Text:
                raw.append(t["text"])
        raw.append(";")
        return html.unescape("".join(raw))

    def heading(self, tok):
        title, _ = self.collect_short(_STOP_HEAD)
        return (_HEAD, tok.get("level") or 2, title)

    def comment(self, tok):
        self.collect(_STOP_COMMENT)
        return None

    def tag(self, tok):
        wm = tok.get("wiki_markup")
        it = self.it
        # fast path for the common case: a plain name token, then the end of the opening tag
        tok = next(it, None)
        if tok.__class__ is _Text:
            name_text = tok["text"]
            end = next(it, None)
            if end.__class__ in _STOP_TAGNAME:
                if end.__class__ is _TagCloseSelfclose and wm in _LIST_NODES:  # a list marker
                    return _LIST_NODES[wm]
                name = name_text.strip().lower()
            else:
                name_nodes, end = self.collect(_STOP_TAGNAME, [name_text], end)
                name = _plain(name_nodes).strip().lower()
        else:
            name_nodes, end = self.collect(_STOP_TAGNAME, None, tok)
            name = _plain(name_nodes).strip().lower()
        attrs = {}
        while end is not None and end.__class__ is _tk.TagAttrStart:
            key, end = self.collect(_STOP_ATTRNAME)
            value = ""
            if end is not None and end.__class__ is _tk.TagAttrEquals:
                value_nodes, end = self.collect(_STOP_TAGNAME)
                value = _plain(value_nodes)
            attrs[_plain(key).strip().lower()] = value
        if end is None or end.__class__ is _TagCloseSelfclose:
            if wm and wm in _LIST_MARKUP:
                return (_LIST, wm)
            return (_TAG, name, wm, attrs, None)
        contents, end = self.collect_short(_STOP_TAGBODY)
        if end is not None:  # the closing tag: usually just its name, then TagCloseClose
            tok = next(it, None)
            if tok.__class__ is _Text:
                tok = next(it, None)
            if tok.__class__ is not _TagCloseClose:
                self.collect(_STOP_TAGCLOSE, None, tok)
        return (_TAG, name, wm, attrs, contents)


_WikilinkOpen, _WikilinkClose, _WikilinkSeparator = _tk.WikilinkOpen, _tk.WikilinkClose, _tk.WikilinkSeparator
_TagOpenOpen, _TagCloseSelfclose, _TagCloseClose = _tk.TagOpenOpen, _tk.TagCloseSelfclose, _tk.TagCloseClose
_BUILD = {
    _tk.TemplateOpen: _Builder.template,
    _tk.ArgumentOpen: _Builder.argument,
    _tk.WikilinkOpen: _Builder.wikilink,
    _tk.ExternalLinkOpen: _Builder.external_link,
    _tk.HTMLEntityStart: _Builder.entity,
    _tk.HeadingStart: _Builder.heading,
    _tk.CommentStart: _Builder.comment,
    _tk.TagOpenOpen: _Builder.tag,
    _tk.TagAttrQuote: lambda self, tok: None,
}


def _build(wikitext: str) -> list:
    toks = _Tokenizer().tokenize(wikitext, 0, False)
    nodes, _ = _Builder(toks).collect(_NOSTOP)
    return nodes


# --------------------------------------------------------------------------------------------
# Rendering
#
# Sentinels written into the output and resolved in _finish():
#   \x03  one space of list indentation (Markdown)         \x04  end of a list prefix
#   \x05  end of a definition term (Markdown "**")          \x06L\x07TITLE  a heading line
#   \x0eN\x0f  protected code (index into _Renderer.verbatim), put back last
#   \x10  a line break inside a Markdown table cell (<br>)

_MAGIC = re.compile(r"__(?:NOTOC|TOC|FORCETOC|NOEDITSECTION|NEWSECTIONLINK|NONEWSECTIONLINK|NOGALLERY|"
                    r"HIDDENCAT|EXPECTUNUSEDCATEGORY|NOCONTENTCONVERT|NOCC|NOTITLECONVERT|NOTC|INDEX|"
                    r"NOINDEX|STATICREDIRECT|DISAMBIG|NOGLOBAL|[A-Z]{3,})__")
_NUMBER = re.compile(r"-?\d+(?:\.\d+)?$")


class _Renderer:
    def __init__(self, title: str) -> None:
        self.title = title
        self.t: list[str] = []
        self.m: list[str] = []
        self.infobox: list[dict] = []
        self.verbatim: list[str] = []
        self.dt_open = False
        self.counters: list[int] = []  # per list depth: last number of a "#" item
        self.widths: list[int] = []  # per list depth: width of the last item's Markdown marker
        self.in_cell = 0

    # -- buffers ---------------------------------------------------------------------------

    def emit(self, t: str, m: str | None = None) -> None:
        if t:
            self.t.append(t)
        if m is None:
            m = t
        if m:
            self.m.append(m)

    def at_line_start(self) -> bool:
        t = self.t
        return not t or t[-1][-1] == "\n"

    def newline(self) -> None:
        """Make sure what follows starts a line (in both outputs)."""
        if self.dt_open:
            self.m.append("\x05")
            self.dt_open = False
        if self.t and self.t[-1][-1] != "\n":
            self.t.append("\n")
        if self.m and self.m[-1][-1] != "\n":
            self.m.append("\n")

    def sub(self, nodes: list | None) -> tuple[str, str]:
        """Render nodes into fresh buffers and return (text, markdown)."""
        if not nodes:
            return "", ""
        saved = self.t, self.m, self.dt_open
        self.t, self.m, self.dt_open = [], [], False
        try:
            self.walk(nodes)
            if self.dt_open:
                self.m.append("\x05")
            return "".join(self.t), "".join(self.m)
        finally:
            self.t, self.m, self.dt_open = saved

    def sub_text(self, nodes: list | None) -> str:
        return self.sub(nodes)[0]

    # -- walking ---------------------------------------------------------------------------

    def walk(self, nodes: list) -> None:
        handlers = _RENDER
        # self.t/self.m are swapped only inside handlers (sub()), which restore them
        t, m = self.t, self.m
        for n in nodes:
            if n.__class__ is str:
                # text() is only needed for magic words, table residue, or a line break that ends
                # a definition term or a list
                if "|" in n or "__" in n or not n or ("\n" in n and (self.dt_open or self.counters)):
                    self.text(n)
                else:
                    t.append(n)
                    m.append(n)
            else:
                handlers[n[0]](self, n)

    def walk_top(self, nodes: list) -> None:
        """Top level: like walk(), but drops reference/link sections the pre-pass missed."""
        skip = 0
        handlers = _RENDER
        t, m = self.t, self.m  # (see walk())
        for n in nodes:
            if n.__class__ is str:
                if skip:
                    continue
                if "|" in n or "__" in n or not n or ("\n" in n and (self.dt_open or self.counters)):
                    self.text(n)
                else:
                    t.append(n)
                    m.append(n)
                continue
            if n[0] == _HEAD:
                level = n[1]
                if skip and level > skip:
                    continue
                if _is_dropped_section(self.sub_text(n[2])):
                    skip = level
                    continue
                skip = 0
            elif skip:
                continue
            handlers[n[0]](self, n)

    def text(self, s: str) -> None:
        if "__" in s:
            s = _MAGIC.sub("", s)
        if "|" in s:
            s = self.table_residue(s)
        if not s:
            return
        if self.counters and "\n" in s:
            rest = s[s.index("\n") + 1:]
            if rest.strip() or "\n\n" in s:
                self.counters.clear()
                self.widths.clear()
        if self.dt_open and "\n" in s:
            i = s.index("\n")
            self.dt_open = False
            self.t.append(s)
            self.m.append(s[:i] + "\x05" + s[i:])
            return
        self.t.append(s)
        self.m.append(s)

    def table_residue(self, s: str) -> str:
        """Clean table markup that the tokenizer left as text (a table opened by a template)."""
        lines = s.split("\n")
        changed = False
        for i, line in enumerate(lines):
            if i == 0 and not self.at_line_start():
                continue
            stripped = line.lstrip()
            if not stripped.startswith("|"):
                continue
            changed = True
            if stripped.startswith(("|}", "|-")):
                lines[i] = ""
            elif stripped.startswith("|+"):
                lines[i] = stripped[2:].strip()
            else:
                cells = []
                for cell in stripped[1:].split("||"):
                    if "|" in cell:
                        attrs, _, rest = cell.partition("|")
                        if "=" in attrs or not attrs.strip():
                            cell = rest
                    cells.append(cell.strip())
                lines[i] = " ".join(c for c in cells if c)
        return "\n".join(lines) if changed else s

    # -- node handlers ---------------------------------------------------------------------

    def argument(self, n) -> None:
        if n[1]:
            self.walk(n[1])

    def wikilink(self, n) -> None:
        title_nodes, text_nodes = n[1], n[2]
        if len(title_nodes) == 1 and title_nodes[0].__class__ is str:
            title = title_nodes[0].strip()
        else:
            title = self.sub_text(title_nodes).strip()
        if ":" in title:
            if title[0] == ":":
                title = title[1:].lstrip()
            else:
                ns = title.split(":", 1)[0].strip().lower()
                if ns in FILE_NAMESPACES or ns in CATEGORY_NAMESPACES or _INTERLANG.match(ns):
                    return
        if text_nodes is None:
            if title:
                self.t.append(title)
                self.m.append(title)
            return
        if len(text_nodes) == 1 and text_nodes[0].__class__ is str:  # [[title|plain text]]
            s = text_nodes[0]
            if s.strip():
                if "|" in s or "__" in s or ("\n" in s and (self.dt_open or self.counters)):
                    self.text(s)
                else:
                    self.t.append(s)
                    self.m.append(s)
                return
        if not text_nodes or (len(text_nodes) == 1 and text_nodes[0].__class__ is str
                              and not text_nodes[0].strip()):
            # pipe trick: [[A (B)|]] shows "A"
            self.emit(re.sub(r"\s*[(（][^()（）]*[)）]\s*$", "", title.split(":", 1)[-1]))
        else:
            self.walk(text_nodes)

    def external_link(self, n) -> None:
        url_nodes, title_nodes, brackets = n[1], n[2], n[3]
        if not brackets:
            self.walk(url_nodes)
        elif title_nodes:
            self.walk(title_nodes)

    def heading(self, n) -> None:
        title = " ".join(self.sub_text(n[2]).split())
        self.counters.clear()
        self.widths.clear()
        self.newline()
        if title:
            line = f"\n\x06{min(max(n[1], 1), 6)}\x07{title}\n\n"
            self.t.append(line)
            self.m.append(line)

    def list_item(self, n) -> None:
        """A wiki list prefix ("*", "#*", ";", ":" ...). Markdown nests an item under its parent by
        the width of the parent's marker ("- " is 2, "12. " is 4)."""
        markers = n[1]
        self.newline()
        counters, widths = self.counters, self.widths
        if len(markers) == 1:  # the common case of what follows, for depth 0
            depth, kind, indent = 0, markers, ""
            del counters[1:]
            del widths[1:]
            if not counters:
                counters.append(0)
            if not widths:
                widths.append(2)
        else:
            depth = len(markers) - 1
            kind = markers[-1]
            del counters[depth + 1:]
            del widths[depth + 1:]
            while len(counters) <= depth:
                counters.append(0)
            while len(widths) <= depth:
                widths.append(2)
            indent = "\x03" * sum(widths[:depth])
        if kind == "#":
            counters[depth] += 1
            marker = f"{counters[depth]}. "
            widths[depth] = len(marker)
            self.m.append(indent + marker + "\x04")
            return
        counters[depth] = 0
        widths[depth] = 2
        if kind == "*":
            self.m.append(indent + "- \x04")
        elif kind == ";":
            self.m.append(indent + "**\x04")
            self.dt_open = True
        else:
            self.m.append(indent + "\x03\x03\x04")

    def tag(self, n) -> None:
        name, wm, attrs, contents = n[1], n[2], n[3], n[4]
        if name in DROP_TAGS:
            return
        if name == "br":
            self.emit("\n")
            if contents:
                self.walk(contents)
            return
        if name in ("b", "i", "strong", "em"):
            self.emphasis("**" if name in ("b", "strong") else "*", contents)
            return
        if name == "table":
            self.table(contents or [])
            return
        if name in _RAW_TAGS or name in CODE_TAGS:
            self.code(name, attrs, contents)
            return
        if name == "hr":
            self.newline()
            return
        if name in ("li", "dt", "dd"):  # HTML lists (wiki lists are _LIST nodes)
            self.newline()
            t, m = self.sub(contents)
            t, m = t.strip(), m.strip()
            if t:
                self.emit(t + "\n", ("- \x04" if name == "li" else "") + m + "\n")
            return
        if name in ("td", "th"):  # a cell outside any table
            self.emit(" ")
            if contents:
                self.walk(contents)
            self.emit(" ")
            return
        if name == "rt":
            t, m = self.sub(contents)
            if t.strip():
                self.emit("（" + t.strip() + "）", "（" + m.strip() + "）")
            return
        if name in ("p", "div", "blockquote", "ul", "ol", "dl", "tr", "center", "poem"):
            block = name != "div" or not self.in_cell
            if block and contents:
                self.newline()
            if contents:
                self.walk(contents)
            if block and contents and name != "tr":
                self.newline()
            return
        if contents:
            self.walk(contents)

    def emphasis(self, mark: str, contents: list | None) -> None:
        t, m = self.sub(contents)
        if not t.strip():
            if t:
                self.emit(" " if not t.isspace() else t)
            return
        stripped = m.strip()
        lead = m[:len(m) - len(m.lstrip())]
        trail = m[len(m.rstrip()):]
        if "\n" in stripped:  # emphasis can't span lines in Markdown: keep just the words
            self.emit(t, m)
        else:
            self.emit(t, lead + mark + stripped + mark + trail)

    def code(self, name: str, attrs: dict, contents: list | None) -> None:
        """nowiki: its text. Code/math: inline `code`; pre/syntaxhighlight (or multi-line code):
        a fenced block. Code is kept away from later clean-ups (placeholders into verbatim)."""
        if name in _RAW_TAGS:
            t = _plain(contents or [])
            if name != "syntaxhighlight" and name != "source":
                t = html.unescape(t)
        else:
            t = self.sub_text(contents)
        if name == "nowiki":
            self.emit(t)
            return
        if not self.in_cell and (name in BLOCK_CODE_TAGS or ("\n" in t.strip() and name != "math")):
            body = _scrub(_spaces(t.strip("\n")))
            if not body.strip():
                return
            lang = (attrs.get("lang") or "").strip() if name != "pre" else ""
            self.newline()
            fenced = "```" + lang + "\n" + body + "\n```"
            self.emit("\n" + self.protect(body) + "\n\n", "\n" + self.protect(fenced) + "\n\n")
            return
        t = _scrub(_spaces(" ".join(t.split())))
        if not t:
            return
        fence = "``" if "`" in t else "`"
        pad = " " if fence == "``" else ""
        self.emit(self.protect(t), self.protect(f"{fence}{pad}{t}{pad}{fence}"))

    def protect(self, s: str) -> str:
        self.verbatim.append(s)
        return f"\x0e{len(self.verbatim) - 1}\x0f"

    # -- tables ----------------------------------------------------------------------------

    def table(self, contents: list) -> None:
        infoboxes_before = len(self.infobox)
        caption: tuple[str, str] | None = None
        rows: list[list[tuple]] = []
        self.in_cell += 1
        try:
            current: list | None = None
            pending = list(contents)
            i = 0
            while i < len(pending):
                n = pending[i]
                i += 1
                if n.__class__ is str or n[0] != _TAG:
                    if n.__class__ is tuple and n[0] == _TPL:
                        self.template(n, discard=True)  # infoboxes still get captured
                    continue
                name, wm, attrs, cell = n[1], n[2], n[3], n[4] or []
                if name == "tr":
                    current = None
                    row = []
                    for c in cell:
                        if c.__class__ is not tuple:
                            continue
                        if c[0] == _TAG and c[1] in ("td", "th"):
                            if caption is None and not rows and not row and _is_caption(c):
                                caption = self.caption(c[4])
                            else:
                                row.append(self.cell(c))
                        elif c[0] == _TPL:
                            self.template(c, discard=True)
                    if row:
                        rows.append(row)
                elif name in ("td", "th"):
                    if caption is None and not rows and _is_caption(n):
                        caption = self.caption(cell)
                        continue
                    if current is None:
                        current = []
                        rows.append(current)
                    current.append(self.cell(n))
                elif name == "caption":
                    caption = self.sub(cell)
                elif name in ("tbody", "thead", "tfoot"):
                    pending[i:i] = cell
                    current = None
        finally:
            self.in_cell -= 1
        if len(self.infobox) > infoboxes_before:
            return  # a table that lays out infobox templates is part of the infobox
        if caption is not None:
            caption = (" ".join(_finish_inline(caption[0]).split()),
                       " ".join(_finish_inline(caption[1]).split()))
        grid = _grid(rows)
        if not grid and not (caption and caption[0]):
            return
        if self.in_cell:  # nested table: flatten into lines of cells
            lines_t = [" ".join(c[1] for c in r if c[1]) for r in grid]
            lines_m = [" ".join(c[2] for c in r if c[2]) for r in grid]
            if caption and caption[0]:
                lines_t.insert(0, caption[0])
                lines_m.insert(0, caption[1])
            self.emit("\n" + "\n".join(lines_t) + "\n", "\n" + "\n".join(lines_m) + "\n")
            return
        self.newline()
        text_lines, md_lines = [], []
        if caption and caption[0]:
            text_lines.append(caption[0])
            md_lines.append(caption[1])
            md_lines.append("")
        if grid:
            text_lines.extend("\t".join(c[1] for c in r) for r in grid)
            ncols = len(grid[0])
            if all(c[0] for c in grid[0]):
                header, body = grid[0], grid[1:]
            else:
                header, body = [(True, "", "")] * ncols, grid
            md_lines.append("| " + " | ".join(c[2] for c in header) + " |")
            md_lines.append("|" + " --- |" * ncols)
            md_lines.extend("| " + " | ".join(c[2] for c in r) + " |" for r in body)
        self.emit("\n" + "\n".join(text_lines) + "\n\n", "\n" + "\n".join(md_lines) + "\n\n")

    def caption(self, nodes: list) -> tuple[str, str]:
        first = nodes[0][1:] if nodes and nodes[0].__class__ is str else ""
        return self.sub([first, *nodes[1:]] if first else nodes[1:])

    def cell(self, n) -> tuple:
        """(is_header, text, markdown, colspan, rowspan) of a td/th node."""
        attrs, contents = n[3], n[4]
        if contents and len(contents) == 1 and contents[0].__class__ is str:  # plain text
            t = contents[0]
            if "|" in t or "__" in t or ("\n" in t and self.counters):  # (see walk())
                t, m = self.sub(contents)
            else:
                m = t
        else:
            t, m = self.sub(contents)
        # scrub here, before lines are joined (a literal "<br>" would split the row later);
        # brackets and the rest are tidied with the whole page
        if "<" in m or "{" in m or "[" in m or "'" in m:
            t, m = _scrub(t), _scrub(m)
        t = " ".join(t.split())  # (= _WS.sub(" ", t).strip(): both use str.isspace())
        if "\n" in m:
            m = "\x10".join(line.strip() for line in m.split("\n") if line.strip())
        else:
            m = m.strip()
        if "|" in m:
            m = m.replace("|", "\\|")
        return (n[1] == "th", t, m, _span(attrs.get("colspan")), _span(attrs.get("rowspan")))

    # -- templates -------------------------------------------------------------------------

    def template(self, n, discard: bool = False) -> None:
        name_nodes, params = n[1], n[2]
        if len(name_nodes) == 1 and name_nodes[0].__class__ is str:
            raw = name_nodes[0]
        elif all(x.__class__ is str for x in name_nodes):
            raw = "".join(name_nodes)
        else:
            return
        name = template_name(raw)
        rule = TEMPLATE_RULES.get(name)
        if rule is None:
            if _is_infobox(name):
                self.capture_infobox(name, params)
            elif not discard and name.lower().startswith(("lang-", "ipa-")):  # {{lang-en|…}}, {{IPA-fr|…}}
                self.emit_arg(params, 1)
            elif not discard and ":" in name:
                self.magic(name)
            return
        if discard:
            return
        kind, arg = rule
        if kind == _K_ARG:
            self.emit_arg(params, arg)
        elif kind == _K_RUBY:
            pos, _ = _split_params(params)
            base = self.sub(pos.get(1))
            reading = self.sub(pos.get(2))
            if reading[0].strip():
                self.emit(base[0].strip() + "（" + reading[0].strip() + "）",
                          base[1].strip() + "（" + reading[1].strip() + "）")
            else:
                self.emit(base[0].strip(), base[1].strip())
        elif kind == _K_LAST:
            pos, _ = _split_params(params)
            if pos:
                self.newline()
                self.walk(pos[max(pos)])
                self.newline()
        elif kind == _K_LABEL:
            pos, named = _split_params(params)
            label = named.get("label") or named.get("表示") or named.get("lt") or pos.get(arg)
            self.emit_nodes(label)
        elif kind == _K_INTERLANG:
            pos, _ = _split_params(params)
            self.emit_nodes(pos.get(3) or pos.get(2))
        elif kind in (_K_LINES, _K_JOIN):
            pos, _ = _split_params(params)
            parts = [self.sub(pos[k]) for k in sorted(pos)]
            parts = [(a.strip(), b.strip()) for a, b in parts if a.strip()]
            sep = "\n" if kind == _K_LINES else arg
            self.emit(sep.join(a for a, _ in parts), sep.join(b for _, b in parts))
        elif kind == _K_DATE:
            pos, _ = _split_params(params)
            ymd = [self.sub_text(pos.get(arg + k)).strip() for k in range(3)]
            if ymd[0].isdigit():
                date = ymd[0] + "年"
                if ymd[1].isdigit():
                    date += str(int(ymd[1])) + "月"
                    if ymd[2].isdigit():
                        date += str(int(ymd[2])) + "日"
                self.emit(date)
        elif kind == _K_PREFIX:
            pos, _ = _split_params(params)
            value = self.sub_text(pos.get(1)).strip()
            if value:
                self.emit(arg + value)
        elif kind == _K_CONST:
            self.emit(arg)
        elif kind == _K_PAGENAME:
            self.emit(self.title)
        elif kind == _K_FLAG:
            pos, _ = _split_params(params)
            self.emit(COUNTRY_CODES.get(self.sub_text(pos.get(1)).strip().upper(), ""))
        elif kind == _K_QUOTE:
            pos, named = _split_params(params)
            self.emit_nodes(named.get("text") or named.get("quote") or pos.get(1), block=True)

    def emit_arg(self, params: list, index: int) -> None:
        pos, _ = _split_params(params)
        self.emit_nodes(pos.get(index))

    def emit_nodes(self, nodes: list | None, block: bool = False) -> None:
        if not nodes:
            return
        t, m = self.sub(nodes)
        if block and "\n" in t.strip():
            self.newline()
            self.emit(t.strip() + "\n", m.strip() + "\n")
        else:
            self.emit(t.strip(), m.strip())

    def magic(self, name: str) -> None:
        head, _, value = name.partition(":")
        head = head.strip().lower()
        if head == "formatnum":
            value = value.strip().replace(",", "")
            if _NUMBER.match(value):
                whole, _, frac = value.partition(".")
                self.emit(f"{int(whole):,}" + ("." + frac if frac else ""))
        elif head in ("lc", "uc", "lcfirst", "ucfirst"):
            self.emit(value.strip())

    def capture_infobox(self, name: str, params: list) -> None:
        fields: dict[str, str] = {}
        self.infobox.append({"template": name, "fields": fields})
        for key, value in params:
            if key is None:
                continue
            key_text = _plain(key).strip() if all(k.__class__ is str for k in key) else \
                self.sub_text(key).strip()
            if not key_text:
                continue
            text = _value_text(_unprotect(self.sub_text(value), self.verbatim))
            if text:
                fields[key_text] = text
            else:
                fields.pop(key_text, None)


# node kind -> handler (a class-level table: bound methods stored on the instance would make every
# renderer a reference cycle, freed only by the cyclic garbage collector)
_RENDER = (_Renderer.template, _Renderer.argument, _Renderer.wikilink, _Renderer.external_link,
           _Renderer.heading, _Renderer.tag, _Renderer.list_item)
assert (_TPL, _ARGUMENT, _LINK, _EXT, _HEAD, _TAG, _LIST) == tuple(range(7))


def _split_params(params: list) -> tuple[dict[int, list], dict[str, list]]:
    """Positional (1-based; ``1=`` counts) and named parameters of a template."""
    pos: dict[int, list] = {}
    named: dict[str, list] = {}
    index = 0
    for key, value in params:
        if key is None:
            index += 1
            pos[index] = value
        else:
            k = _plain(key).strip()
            if k.isdigit():
                pos[int(k)] = value
            else:
                named[k] = value
    return pos, named


def _is_infobox(name: str) -> bool:
    return name.startswith(INFOBOX_PREFIXES) or "infobox" in name.lower() or name in INFOBOX_NAMES


def _is_caption(n) -> bool:
    """A `|+caption` line: the tokenizer reads it as a td whose text starts with '+'."""
    contents = n[4]
    return (n[1] == "td" and n[2] == "|" and bool(contents) and contents[0].__class__ is str
            and contents[0].startswith("+"))


_SPAN_DIGITS = re.compile(r"\s*[\"']?\s*(\d+)")


def _span(value: str | None) -> int:
    if not value:
        return 1
    digits = _SPAN_DIGITS.match(value)
    return min(max(int(digits.group(1)), 1), 50) if digits else 1


_EMPTY_CELL = (False, "", "")


def _grid(rows: list[list[tuple]]) -> list[list[tuple]]:
    """Lay cells out on a grid (colspan/rowspan leave empty cells), pad rows to one width, and
    drop empty rows and columns whose body is empty (e.g. a 出典 column of removed refs)."""
    grid: list[list[tuple]] = []
    carry: dict[int, int] = {}  # column -> rows still covered by a rowspan from above
    for row in rows:
        out: list[tuple] = []
        for header, t, m, colspan, rowspan in row:
            while carry.get(len(out), 0) > 0:
                carry[len(out)] -= 1
                out.append(_EMPTY_CELL)
            for k in range(colspan):
                if rowspan > 1:
                    carry[len(out)] = rowspan - 1
                out.append((header, t, m) if k == 0 else (header, "", ""))
        while carry.get(len(out), 0) > 0:
            carry[len(out)] -= 1
            out.append(_EMPTY_CELL)
        grid.append(out)
    grid = [r for r in grid if any(c[1] or c[2] for c in r)]
    if not grid:
        return []
    ncols = max(len(r) for r in grid)
    for r in grid:
        r.extend([_EMPTY_CELL] * (ncols - len(r)))
    body = grid[1:] if all(c[0] for c in grid[0]) and len(grid) > 1 else grid
    keep = [j for j in range(ncols) if any(r[j][1] or r[j][2] for r in body)]
    if len(keep) < ncols:
        grid = [[r[j] for j in keep] for r in grid]
        grid = [r for r in grid if any(c[1] or c[2] for c in r)]
    return grid if grid and grid[0] else []


# --------------------------------------------------------------------------------------------
# Final passes

_SPACES = str.maketrans({
    "\xa0": " ", "\u2002": " ", "\u2003": " ", "\u2004": " ", "\u2005": " ", "\u2006": " ",
    "\u2007": " ", "\u2008": " ", "\u2009": " ", "\u200a": " ", "\u202f": " ", "\u205f": " ",
    "\u200b": None, "\u200e": None, "\u200f": None, "\ufeff": None, "\u00ad": None,
})
_SPECIAL_SPACE = re.compile("[\xa0\u00ad\u2002-\u200f\u202f\u205f\ufeff]")


# _SPACES as a replacement for each character _SPECIAL_SPACE matches (the others stay as they are):
# a regex sub touches only the few matches, str.translate walks every character of the page.
_SPACE_REPL = {ch: ch for ch in map(chr, range(0x2002, 0x2010))}
_SPACE_REPL.update({chr(k): (v or "") for k, v in _SPACES.items()})


def _space_repl(m: re.Match) -> str:
    return _SPACE_REPL[m.group()]


def _spaces(s: str) -> str:
    """Non-breaking and typographic spaces → ' '; zero-width marks removed."""
    return _SPECIAL_SPACE.sub(_space_repl, s)


_HTML_TAGS = ("div|span|small|big|sup|sub|center|font|table|tr|td|th|li|ul|ol|dl|dt|dd|gallery|nowiki|"
              "b|i|u|s|p|strong|em|del|ins|strike|blockquote|poem|abbr|cite|code|tt|pre|math|"
              "syntaxhighlight|source|includeonly|noinclude|onlyinclude|ruby|rb|rt|rp|caption|tbody|"
              "references|timeline|imagemap|hiero|score|mapframe|maplink|graph|templatedata|section|"
              "categorytree|inputbox|indicator|bdi|q|dfn|kbd|samp|var|wbr|hr|templatestyles|chem|ce")
_SCRUBS = [
    ("<!--", re.compile(r"<!--.*?(?:-->|\Z)", re.S), ""),
    ("-->", re.compile(r"-->"), ""),
    ("<", re.compile(r"<ref\b[^<>]*?/>|<ref\b[^<>]*>.*?</ref\s*>", re.S | re.I), ""),
    ("<", re.compile(r"</?ref(?:erences)?\b[^<>]*>?", re.I), ""),
    ("<", re.compile(r"<br\s*/?>", re.I), "\n"),
    ("<", re.compile(rf"</?(?:{_HTML_TAGS})(?:\s[^<>]*)?/?>", re.I), ""),
    ("{{", re.compile(r"\{\{[^{}]*\}\}"), ""),
    ("[[", re.compile(r"\[\[(?:[^\[\]|]*\|)?([^\[\]|]*)\]\]"), r"\1"),
    ("{", re.compile(r"\{\{+|\}\}+|\{\|"), ""),
    ("}", re.compile(r"\}\}+|\|\}"), ""),
    ("[", re.compile(r"\[\[+"), ""),
    ("]", re.compile(r"\]\]+"), ""),
    ("''", re.compile(r"''+"), ""),
    ("__", _MAGIC, ""),
    ("&", re.compile(r"&(?:[a-zA-Z][a-zA-Z0-9]{1,31}|#[0-9]{1,7}|#[xX][0-9a-fA-F]{1,6});"),
     lambda m: html.unescape(m.group(0)).translate(_SPACES)),
]
# Brackets emptied by removed templates: "（）" "（、）" → "", "（、x）" → "（x）", "（x、）" → "（x）".
# ASCII "()" right after a name is code ("f()"), not an empty bracket.
_BRACKET_PROBE = re.compile(r"[（(、,，;；][ \t　]*[、,，;；:：・/)）]")
# (the lookbehind comes after the bracket so that the pattern starts with a plain character set,
# which the regex engine scans for quickly)
_EMPTY_BRACKETS = re.compile(r"[（(](?<![A-Za-z0-9_.]\()[ \t　]*(?:[、,，;；:：・/][ \t　]*)*[)）]")
_BRACKET_LEAD = re.compile(r"([（(])[ \t　]*[、,，;；][ \t　]*")
_BRACKET_TRAIL = re.compile(r"[、,，;；][ \t　]*([)）])")
_HEADING_SENTINEL = re.compile(r"\x06(\d)\x07([^\n]*)")


# What must never be left in the output, whatever the input.
_RESIDUE = re.compile(r"\[\[|\]\]|\{\{|\}\}|''|<[rR][eE][fF]|</[rR][eE][fF]|\{\||\|\}|__[A-Z]+__|<!--|-->")
# Anything _SCRUBS might act on (a superset of _RESIDUE).
_SCRUB_PROBE = re.compile(r"\[\[|\]\]|\{\{|\}\}|''|<[a-zA-Z/!]|&(?:[a-zA-Z][a-zA-Z0-9]*|#\d+|#[xX][0-9a-fA-F]+);"
                          r"|__[A-Z]|-->|\{\||\|\}")


def _scrub(s: str) -> str:
    """Remove markup that survived as literal text (malformed input).

    Removing one piece can join two others into new markup ("|<br>}" → "|}"), so repeat; as a
    last resort, delete the residue character sequences themselves.
    """
    if not _SCRUB_PROBE.search(s):  # the common case: one fast pass
        return s
    for _ in range(3):
        for probe, rx, repl in _SCRUBS:
            if probe in s:
                s = rx.sub(repl, s)
        if not _RESIDUE.search(s):
            return s
    for _ in range(20):
        s, n = _RESIDUE.subn("", s)
        if not n:
            break
    return s


def _clean_brackets(s: str) -> str:
    if _BRACKET_PROBE.search(s):
        s = _EMPTY_BRACKETS.sub("", s)
        s = _BRACKET_LEAD.sub(r"\1", s)
        s = _BRACKET_TRAIL.sub(r"\1", s)
    return s


def _finish_inline(s: str) -> str:
    """Scrub and tidy a fragment (a table cell, an infobox value)."""
    return _clean_brackets(_scrub(_spaces(s)))


_VALUE_SENTINELS = re.compile(r"[\x03\x04\x05]|\x06\d\x07")


def _value_text(s: str) -> str:
    """An infobox value as one line: items (lines, <br>) joined with '、', whitespace collapsed."""
    s = _finish_inline(s)
    s = _VALUE_SENTINELS.sub("", s).replace("\x10", "\n")
    out = ""
    for part in s.split("\n"):
        part = _WS.sub(" ", part).strip(" ・、,")
        if part:
            # a bracketed note on its own line belongs to the item before it: "A（B）", not "A、（B）"
            out += part if not out or part[0] in "（(" else "、" + part
    return out


_PROTECTED = re.compile(r"\x0e(\d+)\x0f")


def _unprotect(s: str, verbatim: list[str]) -> str:
    return _PROTECTED.sub(lambda m: verbatim[int(m.group(1))] if int(m.group(1)) < len(verbatim) else "", s)


_BLANK_LINES = re.compile(r"\n\n\n+")


def _collapse_blank_lines(s: str) -> str:
    return _BLANK_LINES.sub("\n\n", s) if "\n\n\n" in s else s


def _finish(text: str, md: str, verbatim: list[str]) -> tuple[str, str]:
    # (each full-page regex pass costs; the sentinel ones start with a literal, which is fast)
    text = _clean_brackets(_scrub(_spaces(text)))
    md = _clean_brackets(_scrub(_spaces(md)))
    # strip lines (text keeps leading tabs: an empty first table cell)
    text = "\n".join([line.rstrip(" \t").lstrip(" ") for line in text.split("\n")])
    md = "\n".join([line.strip(" \t") for line in md.split("\n")])
    if "\x05" in md:
        md = re.sub(r"\*\*\x04[ \t\u3000]*\x05", "", md)
        # = re.sub(r"[ \t\u3000]*\x05", "**", md), without trying the pattern at every position
        parts = md.split("\x05")
        md = "**".join([part.rstrip(" \t\u3000") for part in parts[:-1]] + parts[-1:])
    if "\x04" in md:
        md = re.sub(r"\x04[ \t\u3000]*", "", md)
    if "\x03" in md:
        md = md.replace("\x03", " ")
    if "\x10" in md:
        md = md.replace("\x10", "<br>")

    # Headings: drop those whose section ended up empty, then write them out.
    if "\x06" in text:
        keep: list[bool] = []
        seen = [False] * 8  # per level: content seen since the next heading of that level or above
        for line in reversed(text.split("\n")):
            if line.startswith("\x06"):
                level = int(line[1])
                keep.append(seen[level])
                for lv in range(level, 8):
                    seen[lv] = False
            elif line and not line.isspace():
                seen = [True] * 8
        keep.reverse()
        text_index, md_index = iter(keep), iter(keep)
        text = _HEADING_SENTINEL.sub(lambda m: m.group(2) if next(text_index, True) else "", text)
        md = _HEADING_SENTINEL.sub(
            lambda m: "#" * int(m.group(1)) + " " + markdown_heading_text(m.group(2)) if next(md_index, True) else "", md)

    text = _collapse_blank_lines(text).strip()
    md = _collapse_blank_lines(md).strip()
    if verbatim:
        text = _unprotect(text, verbatim)
        md = _unprotect(md, verbatim)
        if _RESIDUE.search(text):  # code next to text can form markup ("--" + ">")
            text = _scrub(text)
        if _RESIDUE.search(md):
            md = _scrub(md)
    return text, md


def markdown_heading_text(text: str) -> str:
    """A heading's text as Markdown: HTML in it (`&lt;b&gt;` unescaped from the wikitext, say) is
    shown as text, not rendered, as the HTML report does with everything it shows."""
    return html.escape(text, quote=False)


def _pathological(s: str) -> bool:
    """Thousands of unclosed openers make the tokenizer's backtracking quadratic (seconds per
    page); no real article looks like that, so such input takes the regex-only path."""
    for a, b in (("{{", "}}"), ("[[", "]]"), ("<div", "</div"), ("<span", "</span")):
        n = s.count(a)
        if n > 1000 and n - s.count(b) > 1000:
            return True
    return False


def _fallback(wikitext: str, title: str) -> Converted:
    """Regex-only conversion for input the tokenizer could not handle."""
    s = _COMMENT.sub("", wikitext)
    s = _REF.sub("", s)
    for _ in range(10):
        s, n = re.subn(r"\{\{[^{}]*\}\}", "", s)
        if not n:
            break
    s = re.sub(r"\{\|.*?\|\}", "", s, flags=re.S)
    s = re.sub(r"\[\[(?:[^\[\]|:]*:)[^\[\]]*\]\]", "", s)
    s = re.sub(r"\[\[(?:[^\[\]|]*\|)?([^\[\]]*)\]\]", r"\1", s)
    s = re.sub(r"\[(?:https?:)?//\S+\s*([^\]]*)\]", r"\1", s)
    s = re.sub(r"^(=+)\s*(.*?)\s*\1\s*$", r"\2", s, flags=re.M)
    s = re.sub(r"^[*#:;]+\s*", "", s, flags=re.M)
    s = _scrub(s)
    s = _clean_brackets(_spaces(s))
    s = "\n".join([line.strip() for line in s.split("\n")])
    s = _collapse_blank_lines(s).strip()
    return Converted(text=s, markdown=s, infobox=[])


def convert_wikitext(wikitext: str, title: str = "") -> Converted:
    """Convert one article's wikitext into plain text, Markdown and infobox fields.

    Never raises on malformed wikitext: what cannot be parsed degrades to cleaned text.

    Args:
        wikitext (str): the page source.
        title (str): the page title (used for ``{{PAGENAME}}``).

    Returns:
        Converted: ``text``, ``markdown`` and ``infobox``.
    """
    if not wikitext:
        return Converted(text="", markdown="", infobox=[])
    if _pathological(wikitext):
        return _fallback(wikitext, title)
    # The tokenizer and the tree allocate a container object every few characters, all freed by
    # reference counting (nothing here makes reference cycles), yet they trigger the cyclic
    # garbage collector over and over, which re-traverses the growing token list each time: ~15%
    # of the time. So it is paused for the call, and left as it was found.
    gc_enabled = gc.isenabled()
    if gc_enabled:
        gc.disable()
    try:
        nodes = _build(_prepass(wikitext))
        r = _Renderer(title)
        r.walk_top(nodes)
        if r.dt_open:
            r.m.append("\x05")
        text, md = _finish("".join(r.t), "".join(r.m), r.verbatim)
        return Converted(text=text, markdown=md, infobox=r.infobox)
    except Exception:  # never let one page stop a worker
        try:
            return _fallback(wikitext, title)
        except Exception:
            return Converted(text="", markdown="", infobox=[])
    finally:
        if gc_enabled:
            gc.enable()
