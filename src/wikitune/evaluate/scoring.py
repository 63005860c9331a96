"""Score short answers; summarise scored results per domain, and compare runs question by question, with bootstrap intervals.

    score_answer("ジブリ", "スタジオジブリ", aliases=["ジブリ"])
    # {"exact_match": 1, "gold_match": 0, "char_f1": 1.0, "contains": 1}
    paired_bootstrap({"q1": 1.0, "q2": 1.0}, {"q1": 0.0, "q2": 1.0, "q3": 0.0})
    # (0.5, 0.0, 1.0, 2): mean of run - base over the 2 questions both answered, its 95% interval, n

Accepted answers are the gold answer and its aliases, compared after AIO-style normalisation
(`wikitune.text.ja.normalize_answer`); as the AIO scorer and SQuAD do, a score is the best over
accepted answers:
- exact_match: the normalised final equals an accepted answer.
- gold_match: ... equals the gold answer itself (strict; aliases not accepted).
- char_f1: character-level F1 of the normalised strings, best over accepted answers.
- contains: an accepted answer is a substring of the normalised final.
A question without a gold answer (the seed's long control questions) gets no short-answer
scores at all; a missing final (`no_final`) scores 0 everywhere.
"""

from __future__ import annotations

import random
from collections import Counter
from typing import Any, Iterable

from wikitune.text.ja import normalize_answer

SHORT_SCORES = ("exact_match", "gold_match", "char_f1", "contains")


def char_f1(prediction: str, gold: str) -> float:
    """Character-level F1 of two already normalised strings (bag of characters, as in SQuAD-ja scorers)."""
    if not prediction or not gold:
        return float(prediction == gold)
    common = Counter(prediction) & Counter(gold)
    overlap = sum(common.values())
    if overlap == 0:
        return 0.0
    precision, recall = overlap / len(prediction), overlap / len(gold)
    return 2 * precision * recall / (precision + recall)


def score_answer(final: str | None, answer: str, aliases: Iterable[str] = ()) -> dict[str, float]:
    """Short-answer scores of one final answer; {} when the question has no gold answer.

    Args:
        final (str | None): the final-channel answer, None when the model gave none.
        answer (str): the gold answer.
        aliases (Iterable[str]): other accepted answers.

    Returns:
        dict[str, float]: exact_match (any accepted answer), gold_match (the gold answer only) and
        contains as 0/1, char_f1 in [0, 1]; the keys of SHORT_SCORES.
    """
    gold = normalize_answer(answer or "")
    if not gold:
        return {}
    accepted = [gold] + [a for a in (normalize_answer(x) for x in aliases) if a]
    pred = normalize_answer(final) if final else ""
    if not pred:
        return {"exact_match": 0, "gold_match": 0, "char_f1": 0.0, "contains": 0}
    return {
        "exact_match": int(pred in accepted),
        "gold_match": int(pred == gold),
        "char_f1": round(max(char_f1(pred, g) for g in accepted), 6),
        "contains": int(any(g in pred for g in accepted)),
    }


def bootstrap_ci(values: list[float], *, resamples: int = 1000, confidence: float = 0.95, seed: int = 0) -> tuple[float, float, float]:
    """(mean, low, high): the mean and its percentile bootstrap confidence interval.

    Deterministic for a given `seed`. One value gives (v, v, v); no values raises ValueError.
    """
    if not values:
        raise ValueError("bootstrap_ci needs at least one value")
    n = len(values)
    mean = sum(values) / n
    if n == 1:
        return mean, mean, mean
    rng = random.Random(seed)
    means = sorted(sum(rng.choices(values, k=n)) / n for _ in range(resamples))
    alpha = (1 - confidence) / 2
    low = means[int(alpha * (resamples - 1))]
    high = means[int(round((1 - alpha) * (resamples - 1)))]
    return mean, min(low, mean), max(high, mean)


def paired_bootstrap(a: dict[str, float], b: dict[str, float], *, resamples: int = 1000, confidence: float = 0.95,
                     seed: int = 0) -> tuple[float, float, float, int]:
    """The paired difference a - b over the questions both have, with its percentile bootstrap interval.

    Resampling questions (not the two runs independently) keeps each question's difficulty in
    both arms, so the interval is as narrow as the pairing allows.

    Args:
        a (dict[str, float]): per-question score of one run, by question id.
        b (dict[str, float]): the same of the run it is compared with.
        resamples (int): bootstrap resamples.
        confidence (float): coverage of the interval.
        seed (int): seed of the resampling; equal inputs give equal outputs.

    Returns:
        tuple: (mean, low, high, n) with n the number of questions both runs have, in the order
        of `a`.

    Raises:
        ValueError: the runs share no question.
    """
    differences = [value - b[key] for key, value in a.items() if key in b]
    if not differences:
        raise ValueError("paired_bootstrap needs at least one question both runs answered")
    mean, low, high = bootstrap_ci(differences, resamples=resamples, confidence=confidence, seed=seed)
    return mean, low, high, len(differences)


def summarize(results: Iterable[dict[str, Any]], *, resamples: int = 1000, seed: int = 0) -> dict[str, Any]:
    """`summary.json` content: per domain, n, each score with a 95% CI, the rate of each flag, mean new tokens.

    Args:
        results: eval result records (DESIGN.md): "domain", "scores", "flags", "new_tokens", and
            optionally "retrieved" (article ids) with "source" for the retrieval hit-rate.

    Returns:
        dict: {"domains": {domain: {...}}, "overall": {...}} with scores as
        {"mean", "ci95": [low, high], "n"}.
    """
    results = list(results)
    groups: dict[str, list[dict]] = {}
    for r in results:
        groups.setdefault(r["domain"], []).append(r)
    out = {"domains": {d: _summarize_group(rs, resamples, seed) for d, rs in sorted(groups.items())}}
    out["overall"] = _summarize_group(results, resamples, seed)
    return out


def _summarize_group(rows: list[dict], resamples: int, seed: int) -> dict[str, Any]:
    scores: dict[str, list[float]] = {}
    for r in rows:
        for name, value in (r.get("scores") or {}).items():
            if isinstance(value, (int, float)) and value is not None:
                scores.setdefault(name, []).append(float(value))
    flags = Counter(flag for r in rows for flag in set(r.get("flags") or []))
    new_tokens = [r["new_tokens"] for r in rows if isinstance(r.get("new_tokens"), int)]
    summary: dict[str, Any] = {"n": len(rows), "scores": {}, "flags": {}}
    for name, values in sorted(scores.items()):
        mean, low, high = bootstrap_ci(values, resamples=resamples, seed=seed)
        summary["scores"][name] = {"mean": round(mean, 6), "ci95": [round(low, 6), round(high, 6)], "n": len(values)}
    for flag, count in sorted(flags.items()):
        summary["flags"][flag] = round(count / len(rows), 6)
    summary["mean_new_tokens"] = round(sum(new_tokens) / len(new_tokens), 3) if new_tokens else None
    hits = [r["retrieval_hit"] for r in rows if r.get("retrieval_hit") is not None]
    if hits:
        mean, low, high = bootstrap_ci([float(h) for h in hits], resamples=resamples, seed=seed)
        summary["retrieval_hit_rate"] = {"mean": round(mean, 6), "ci95": [round(low, 6), round(high, 6)], "n": len(hits)}
    saved = [r["tokens_saved"] for r in rows if isinstance(r.get("tokens_saved"), int)]
    if saved:
        summary["tokens_saved_by_loop_guard"] = sum(saved)
    return summary
