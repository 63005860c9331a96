"""`corpus stats`: counts, and explanations for expected titles that are missing."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.conftest import REPO, TEST_DATA
from wikitune.corpus.extract import DEMO_ROOTS, ExtractConfig, run_extract
from wikitune.corpus.stats import corpus_stats, format_stats

EXPECTED = json.loads((TEST_DATA / "demo_expected.json").read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    out = tmp_path_factory.mktemp("stats") / "c"
    run_extract(ExtractConfig(dump="demo", out=out, roots=list(DEMO_ROOTS), depth=2, exclude=["^アニメの登場人物$"]))
    return out


def test_counts_match_the_corpus(corpus):
    stats = corpus_stats(corpus)
    lines = (corpus / "articles.jsonl").read_text(encoding="utf-8").splitlines()
    records = [json.loads(line) for line in lines]
    assert stats["articles"] == len(records)
    assert stats["characters"] == sum(len(r["text"]) for r in records)
    assert sum(stats["per_depth"].values()) == len(records)
    assert set(stats["per_depth"]) <= {"0", "1", "2"}
    assert stats["per_root"]["日本のアニメ作品"] == sum(1 for r in records if "日本のアニメ作品" in r["depth"])
    name, n = stats["largest_categories"][0]
    assert n == max(sum(1 for r in records if c in r["categories"]) for r in records for c in r["categories"])
    assert stats["skipped"]["redirect"] == len(EXPECTED["redirects"])


def test_expect_explains_each_missing_title(corpus, tmp_path):
    expect = tmp_path / "titles.txt"
    voice_actor = EXPECTED["voice_actors"][0]
    expect.write_text("\n".join(["星海のアルカディア", voice_actor, "カナタ_(Neon Drive)", "天城ミコト", "存在しない記事",
                                 EXPECTED["redirects"][0], EXPECTED["disambiguation"][0], "# a comment"]), encoding="utf-8")
    result = corpus_stats(corpus, expect=expect)["expect"]
    reasons = {m["title"]: m["reason"] for m in result["missing"]}
    assert result["expected"] == 7 and result["found"] == 2  # 星海のアルカディア and 天城ミコト (also in its series' category)
    assert "none of its categories" in reasons[voice_actor] and "芸能人" in reasons[voice_actor]
    assert "deeper than --depth 2" in reasons["カナタ (Neon Drive)"] or "excluded" in reasons["カナタ (Neon Drive)"]
    assert reasons["存在しない記事"].startswith("not in the source")
    assert reasons[EXPECTED["redirects"][0]].startswith("a redirect")
    assert reasons[EXPECTED["disambiguation"][0]] == "a disambiguation page"
    text = format_stats(corpus_stats(corpus, expect=expect))
    assert voice_actor in text and "missing" in text


def test_depth_reason_names_the_path(tmp_path):
    out = tmp_path / "c"
    run_extract(ExtractConfig(dump="demo", out=out, roots=["日本のアニメ作品"], depth=2, exclude=["^アニメの登場人物$"]))
    expect = tmp_path / "t.txt"
    expect.write_text("カナタ (Neon Drive)\n", encoding="utf-8")
    [missing] = corpus_stats(out, expect=expect)["expect"]["missing"]
    assert "at depth 3" in missing["reason"] and "deeper than --depth 2" in missing["reason"] and "Neon Drive" in missing["reason"]


def test_cli_json_output(corpus):
    result = subprocess.run([sys.executable, "-m", "wikitune.cli", "corpus", "stats", str(corpus), "--json"],
                            capture_output=True, text=True, cwd=REPO)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["articles"] == corpus_stats(corpus)["articles"]


def test_incomplete_corpus_is_a_clear_error(corpus, tmp_path):
    from wikitune.errors import WikituneError

    with pytest.raises(WikituneError, match="did not finish"):
        corpus_stats(tmp_path)
