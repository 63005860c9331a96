"""Japanese answer normalisation: the spelling variants that must compare equal, and those that must not."""

import pytest

from wikitune.text.ja import bracketless, char_ngrams, normalize_answer, split_sentences


@pytest.mark.parametrize(
    "a, b",
    [
        ("ＳＴＡＲ☆ＬＩＧＨＴ！", "STAR☆LIGHT!"),          # full-width vs half-width
        ("ｽﾀｰﾗｲﾄ", "スターライト"),                           # half-width katakana
        ("スタ－ライト", "スターライト"),                      # full-width hyphen for the long vowel
        ("スタ—ライト", "スターライト"),                       # em dash for the long vowel
        ("〜永遠のステージ〜", "～永遠のステージ～"),          # wave dash vs full-width tilde
        ("「進撃の巨人」", "進撃の巨人"),                      # 「」 stripped
        ("『蒼の章』", "蒼の章"),
        ("瀬川 透", "瀬川透"),                                # spaces
        ("Neon Drive", "NEON DRIVE"),                         # case
        ("ヅラ。", "ヅラ"),                                   # trailing punctuation
    ],
)
def test_variants_normalise_equal(a, b):
    assert normalize_answer(a) == normalize_answer(b)


@pytest.mark.parametrize("a, b", [("ヅラ", "ズラ"), ("1年C組", "1年D組"), ("12話", "13話"), ("〜", "")])
def test_different_answers_stay_different(a, b):
    assert normalize_answer(a) != normalize_answer(b)


def test_bracketless_forms():
    assert bracketless("星海のアルカディア（テレビアニメ）") == "星海のアルカディア"
    assert bracketless("カナタ (Neon Drive)") == "カナタ"
    assert bracketless("雨森千景（アトリエ霧雨）") == "雨森千景"
    assert bracketless("『蒼の章』") == "蒼の章"
    assert bracketless("進撃の巨人") == ""  # nothing to strip


def test_sentences_and_char_ngrams():
    assert split_sentences("県庁所在地は鷺ノ浦市。漁業が盛ん！ 本当？") == ["県庁所在地は鷺ノ浦市。", "漁業が盛ん！", "本当？"]
    assert char_ngrams("銀魂 Ｇｉｎ") == ["銀魂", "gi", "in"]
    assert char_ngrams("桂") == ["桂"]


def test_document_sentences_split_lines_then_sentences():
    from wikitune.text.ja import document_sentences

    text = "概要\n\n監督の久遠寺誠一が手がけた。次の文！\n1998年\tNEON DRIVE"
    # a heading and a table row are sentences of their own, not glued to the next line
    assert document_sentences(text) == ["概要", "監督の久遠寺誠一が手がけた。", "次の文！", "1998年\tNEON DRIVE"]


@pytest.mark.parametrize("text, term, found", [
    ("全3話が発売された", "3話", True),
    ("全13話が放送された", "3話", False),          # part of a longer number
    ("全13話と全3話", "3話", True),                # the second occurrence stands alone
    ("2008年4月1日設立", "2008年4月1日", True),
    ("12008年4月1日", "2008年4月1日", False),
    ("瀬川透監督", "瀬川透", True),
    ("瀬川透監督", "", False),
])
def test_contains_term(text, term, found):
    from wikitune.text.ja import contains_term

    assert contains_term(normalize_answer(text), normalize_answer(term)) is found
