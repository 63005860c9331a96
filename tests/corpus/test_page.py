"""`classify`: the one decision, for dumps and the API alike, of what a page is."""

from __future__ import annotations

import pytest

from wikitune.corpus.page import Page, classify, redirect_in_text


def page(wikitext: str, title: str = "星海のアルカディア", ns: int = 0, redirect: str | None = None) -> Page:
    return Page(pageid=1, title=title, ns=ns, wikitext=wikitext, redirect=redirect)


@pytest.mark.parametrize("wikitext, target", [
    ("#REDIRECT [[星海のアルカディア]]", "星海のアルカディア"),
    ("  #redirect: [[ 星海のアルカディア |別名]]", "星海のアルカディア"),
    ("#転送 [[Neon Drive]]", "Neon Drive"),
    ("#リダイレクト[[魔導探偵サクラ]]", "魔導探偵サクラ"),
    ("# REDIRECT", None),
    ("本文 #REDIRECT [[X]]", None),
])
def test_redirect_in_text(wikitext, target):
    assert redirect_in_text(wikitext) == target


def test_an_article():
    kind = classify(page("'''星海のアルカディア'''は、架空のアニメ作品。\n[[Category:日本のアニメ作品]]"))
    assert kind.is_article and kind.name == "article" and kind.skip_reason is None and kind.redirect is None


def test_a_redirect_named_by_the_source_wins_over_its_wikitext():
    kind = classify(page("#REDIRECT [[Text target]]", redirect="Source target"))
    assert (kind.name, kind.redirect, kind.skip_reason) == ("redirect", "Source target", "redirect")
    assert classify(page("#転送 [[Text target]]")).redirect == "Text target"


@pytest.mark.parametrize("title, wikitext", [
    ("サクラ", "'''サクラ'''は次のものを指す。\n{{aimai}}"),
    ("サクラ (曖昧さ回避)", "'''サクラ'''"),
])
def test_disambiguation_pages(title, wikitext):
    kind = classify(page(wikitext, title=title))
    assert (kind.name, kind.skip_reason, kind.is_article) == ("disambiguation", "disambiguation", False)


def test_other_namespaces_are_skipped_whatever_their_text_but_keep_a_redirect_target():
    assert classify(page("'''本文'''", title="Category:日本のアニメ作品", ns=14)).skip_reason == "namespace"
    kind = classify(page("#REDIRECT [[Category:新しい名前]]", title="Category:古い名前", ns=14))
    assert (kind.name, kind.redirect) == ("namespace", "Category:新しい名前")
    # A redirect outside the main namespace is still counted as `namespace`, as the manifest always did.
    assert classify(page("{{aimai}}", title="Template:X", ns=10)).name == "namespace"
