"""Category links in wikitext, and the closure from the roots."""

from __future__ import annotations

import re

import pytest

from wikitune.corpus.index import PageIndex, categories_in_wikitext, category_link_pattern

PREFIXES = ("Category", "カテゴリ", "分類")
PATTERN = category_link_pattern(PREFIXES)


def cats(text: str) -> list[str]:
    return categories_in_wikitext(text, PATTERN, PREFIXES)


def test_every_spelling_of_a_category_link():
    text = """本文
[[Category:日本のアニメ作品|にほんのあにめ]]
[[category:テレビアニメ]]
[[ カテゴリ : 2020年代の_テレビアニメ ]]
[[分類:架空の都市]]
[[CATEGORY:大文字]]
[[Category:日本のアニメ作品]]"""
    assert cats(text) == ["日本のアニメ作品", "テレビアニメ", "2020年代の テレビアニメ", "架空の都市", "大文字"]


def test_links_that_are_not_memberships():
    text = "[[:Category:リンクだけ]] <!-- [[Category:コメント]] --> <nowiki>[[Category:ノーウィキ]]</nowiki> [[カテゴリー論]] [[Categoryless]]"
    assert cats(text) == []


@pytest.fixture
def graph(tmp_path):
    """A small category graph: roots アニメ and 企業; a cycle A<->B under アニメ; 声優 outside."""
    index = PageIndex.create(tmp_path / "index.sqlite")
    c = lambda pid, name, parents: (pid, 14, f"Category:{name}", name, None, False, parents)
    a = lambda pid, title, cats_, **kw: (pid, 0, title, title, kw.get("redirect"), kw.get("dab", False), cats_)
    index.add_pages([
        c(100, "アニメ", []),
        c(101, "テレビアニメ", ["アニメ"]),
        c(102, "A", ["テレビアニメ", "B"]),
        c(103, "B", ["A"]),
        c(104, "アニメの登場人物", ["テレビアニメ"]),
        c(105, "声優", ["俳優"]),
        c(106, "企業", []),
        a(1, "作品1", ["アニメ"]),
        a(2, "作品2", ["テレビアニメ"]),
        a(3, "深い作品", ["B"]),
        a(4, "キャラ", ["アニメの登場人物"]),
        a(5, "キャラ兼作品", ["アニメの登場人物", "テレビアニメ"]),
        a(6, "声優さん", ["声優"]),
        a(7, "旧題", ["アニメ"], redirect="作品1"),
        a(8, "曖昧", ["アニメ"], dab=True),
        a(9, "会社", ["企業", "アニメ"]),
    ])
    index.finish_loading()
    yield index
    index.close()


def test_closure_depths_and_cycle(graph):
    closure = graph.closure(["アニメ"], None, [])
    assert closure.category_depth == {"アニメ": {"アニメ": 0}, "テレビアニメ": {"アニメ": 1}, "A": {"アニメ": 2},
                                      "アニメの登場人物": {"アニメ": 2}, "B": {"アニメ": 3}}
    depth = {pid: d["アニメ"] for pid, d in closure.article_depth.items()}
    assert depth[1] == 0 and depth[2] == 1 and depth[3] == 3 and depth[4] == 2 and depth[9] == 0
    assert 6 not in depth  # the voice actor is outside


def test_depth_limit(graph):
    closure = graph.closure(["アニメ"], 1, [])
    assert set(closure.category_depth) == {"アニメ", "テレビアニメ"}
    assert set(closure.article_depth) == {1, 2, 5, 7, 8, 9}


def test_exclude_drops_only_articles_reached_solely_through_it(graph):
    closure = graph.closure(["アニメ"], None, [re.compile("登場人物$")])
    assert 4 not in closure.article_depth and 5 in closure.article_depth
    assert closure.excluded == {"アニメの登場人物": "登場人物$"}


def test_several_roots_record_each_depth(graph):
    closure = graph.closure(["アニメ", "企業"], None, [])
    assert closure.article_depth[9] == {"アニメ": 0, "企業": 0}
    assert closure.article_depth[1] == {"アニメ": 0}


def test_content_articles_exclude_redirects_and_disambiguation(graph):
    closure = graph.closure(["アニメ"], None, [])
    picked = {pid for pid in closure.article_depth if graph.is_content_article(pid)}
    assert picked == {1, 2, 3, 4, 5, 9}  # not the redirect 7 nor the disambiguation page 8
    assert graph.count_content_articles() == 7  # the voice actor 6 too


def test_category_exists_and_parents(graph):
    assert graph.category_exists("俳優")  # no page, but a member
    assert not graph.category_exists("存在しない")
    assert graph.parents("A") == ["テレビアニメ", "B"]
