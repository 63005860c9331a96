"""Short-answer scoring and the per-domain summary with bootstrap confidence intervals."""

import pytest

from wikitune.evaluate.scoring import bootstrap_ci, char_f1, paired_bootstrap, score_answer, summarize


def test_exact_match_after_normalisation():
    assert score_answer("「進撃の巨人」", "進撃の巨人")["exact_match"] == 1
    assert score_answer("ＳＴＡＲ☆ＬＩＧＨＴ！", "STAR☆LIGHT!")["exact_match"] == 1
    assert score_answer("劇場版 ＳＴＡＲ☆ＬＩＧＨＴ！ 〜永遠のステージ〜", "劇場版 STAR☆LIGHT! ～永遠のステージ～")["exact_match"] == 1
    assert score_answer("ズラ", "ヅラ")["exact_match"] == 0


def test_an_alias_is_an_exact_match():
    """The issue's case: 「ジブリ」 to a question whose aliases include ジブリ is exact; gold_match stays strict."""
    s = score_answer("「ジブリ」", "スタジオジブリ", ["ジブリ"])
    assert s == {"exact_match": 1, "gold_match": 0, "char_f1": 1.0, "contains": 1}
    assert score_answer("スタジオジブリ", "スタジオジブリ", ["ジブリ"])["gold_match"] == 1
    assert score_answer("ジブリ", "スタジオジブリ")["exact_match"] == 0  # no alias, no match
    assert score_answer("ＧＡＩＮＡＸ", "株式会社ガイナックス", ["GAINAX"])["exact_match"] == 1  # aliases are normalised too


def test_contains_and_f1_take_the_best_accepted_answer():
    s = score_answer("1年C組", "桃月学園の1年C組", ["1年C組"])
    assert s["exact_match"] == 1 and s["gold_match"] == 0 and s["contains"] == 1 and s["char_f1"] == 1.0
    s = score_answer("レベッカ宮本が担任しているのは桃月学園の1年C組です。", "桃月学園の1年C組")
    assert s["exact_match"] == 0 and s["contains"] == 1 and 0 < s["char_f1"] < 1
    s = score_answer("3年2組", "桃月学園の1年C組")
    assert s["contains"] == 0 and s["char_f1"] == pytest.approx(2 * (2 / 4) * (2 / 9) / (2 / 4 + 2 / 9), abs=1e-6)
    assert score_answer("3年2組", "桃月学園の1年C組", ["3年C組"])["char_f1"] == 0.75  # 3, 年, 組 of 4


def test_no_final_scores_zero_and_no_gold_scores_nothing():
    assert score_answer(None, "ヅラ") == {"exact_match": 0, "gold_match": 0, "char_f1": 0.0, "contains": 0}
    assert score_answer("長い説明", "") == {}


def test_char_f1_edge_cases():
    assert char_f1("", "") == 1.0 and char_f1("a", "") == 0.0 and char_f1("ab", "cd") == 0.0


def test_bootstrap_ci_shape_and_determinism():
    values = [1.0] * 30 + [0.0] * 70
    mean, low, high = bootstrap_ci(values, seed=1)
    assert mean == pytest.approx(0.3) and low < mean < high
    assert 0.18 < low < 0.26 and 0.34 < high < 0.42  # ±1.96·sqrt(.3·.7/100) ≈ ±0.09
    assert bootstrap_ci(values, seed=1) == (mean, low, high)
    assert bootstrap_ci([1.0]) == (1.0, 1.0, 1.0)
    assert bootstrap_ci([1.0] * 10) == (1.0, 1.0, 1.0)
    with pytest.raises(ValueError):
        bootstrap_ci([])


def test_summary_per_domain():
    results = [
        {"domain": "anime", "scores": {"exact_match": 1, "char_f1": 1.0}, "flags": [], "new_tokens": 10, "retrieval_hit": 1},
        {"domain": "anime", "scores": {"exact_match": 0, "char_f1": 0.5}, "flags": ["no_final", "truncated"], "new_tokens": 30, "retrieval_hit": 0},
        {"domain": "control", "scores": {}, "flags": ["loop_stopped", "no_final"], "new_tokens": 20, "tokens_saved": 44},
    ]
    s = summarize(results, resamples=200)
    anime = s["domains"]["anime"]
    assert anime["n"] == 2 and anime["scores"]["exact_match"]["mean"] == 0.5
    low, high = anime["scores"]["exact_match"]["ci95"]
    assert 0 <= low <= 0.5 <= high <= 1
    assert anime["flags"] == {"no_final": 0.5, "truncated": 0.5}
    assert anime["mean_new_tokens"] == 20 and anime["retrieval_hit_rate"]["mean"] == 0.5
    control = s["domains"]["control"]
    assert control["scores"] == {} and control["flags"]["loop_stopped"] == 1.0 and control["tokens_saved_by_loop_guard"] == 44
    assert s["overall"]["n"] == 3


def test_paired_bootstrap_pairs_by_question_id():
    base = {f"q{i}": float(i % 2) for i in range(40)}  # half right
    better = {key: 1.0 for key in base}  # every question right: +1 on half, 0 on the rest
    better["extra"] = 0.0  # answered by one run only: not paired
    del better["q0"]  # answered by the base only: not paired
    mean, low, high, n = paired_bootstrap(better, base, resamples=500, seed=3)
    assert n == 39
    assert mean == pytest.approx(19 / 39)  # q2, q4, ..., q38 gain 1; the odd ones were already right
    assert 0 < low < mean < high < 1
    assert paired_bootstrap(better, base, resamples=500, seed=3) == (mean, low, high, n)  # seeded
    assert paired_bootstrap(base, better, resamples=500, seed=3)[0] == pytest.approx(-mean)


def test_paired_bootstrap_is_narrower_than_unpaired():
    """The pairing cancels each question's difficulty: one run = the other + 0.1 on every question gives a
    zero-width interval at 0.1, though each run alone has a wide one."""
    a = {f"q{i}": (i % 10) / 10 for i in range(50)}
    b = {key: value + 0.1 for key, value in a.items()}
    mean, low, high, n = paired_bootstrap(b, a)
    assert (n, round(mean, 9), round(low, 9), round(high, 9)) == (50, 0.1, 0.1, 0.1)
    own_low, own_high = bootstrap_ci(list(b.values()))[1:]
    assert own_high - own_low > 0.1


def test_paired_bootstrap_without_common_questions_is_an_error():
    with pytest.raises(ValueError, match="at least one question both runs answered"):
        paired_bootstrap({"a": 1.0}, {"b": 0.0})
