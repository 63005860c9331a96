"""Short-answer scoring and the per-domain summary with bootstrap confidence intervals."""

import pytest

from wikitune.evaluate.scoring import bootstrap_ci, char_f1, score_answer, summarize


def test_exact_match_after_normalisation():
    assert score_answer("「進撃の巨人」", "進撃の巨人")["exact_match"] == 1
    assert score_answer("ＳＴＡＲ☆ＬＩＧＨＴ！", "STAR☆LIGHT!")["exact_match"] == 1
    assert score_answer("劇場版 ＳＴＡＲ☆ＬＩＧＨＴ！ 〜永遠のステージ〜", "劇場版 STAR☆LIGHT! ～永遠のステージ～")["exact_match"] == 1
    assert score_answer("ズラ", "ヅラ")["exact_match"] == 0


def test_alias_match_contains_and_f1():
    s = score_answer("1年C組", "桃月学園の1年C組", ["1年C組"])
    assert s["exact_match"] == 0 and s["alias_match"] == 1 and s["contains"] == 1 and s["char_f1"] == 1.0
    s = score_answer("レベッカ宮本が担任しているのは桃月学園の1年C組です。", "桃月学園の1年C組")
    assert s["exact_match"] == 0 and s["contains"] == 1 and 0 < s["char_f1"] < 1
    s = score_answer("3年2組", "桃月学園の1年C組")
    assert s["contains"] == 0 and s["char_f1"] == pytest.approx(2 * (2 / 4) * (2 / 9) / (2 / 4 + 2 / 9), abs=1e-6)


def test_no_final_scores_zero_and_no_gold_scores_nothing():
    assert score_answer(None, "ヅラ") == {"exact_match": 0, "alias_match": 0, "char_f1": 0.0, "contains": 0}
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
