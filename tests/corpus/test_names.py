from wikitune.corpus.names import normalize_category, normalize_title, strip_namespace


def test_category_spellings_are_one_name():
    forms = ["Category:日本のアニメ作品", "カテゴリ:日本のアニメ作品", "category : 日本の_アニメ作品".replace("の_", "の"),
             "日本のアニメ作品", ":Category:日本のアニメ作品", "  Category:日本のアニメ作品 "]
    assert {normalize_category(f) for f in forms} == {"日本のアニメ作品"}


def test_underscores_and_spaces_are_the_same():
    assert normalize_category("Category:2020年代の_テレビアニメ") == "2020年代の テレビアニメ"
    assert normalize_title("Neon_Drive") == "Neon Drive"


def test_first_letter_is_upper_cased_rest_kept():
    assert normalize_title("neon DRIVE") == "Neon DRIVE"
    assert normalize_category("category:anime") == "Anime"


def test_entities_decoded_and_unknown_prefix_kept():
    assert normalize_title("A&amp;B") == "A&B"
    assert strip_namespace("星海のアルカディア: 蒼の章", ("Category",)) is None
    assert normalize_category("星海のアルカディア: 蒼の章") == "星海のアルカディア: 蒼の章"
