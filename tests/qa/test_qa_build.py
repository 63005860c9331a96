"""`qa build` on the demo corpus: the rules, the aliases, the splits, the contract of the QA files."""

import json
import re

import jsonschema
import pytest

from tests.augment.test_augment_templates import rule_templates
from wikitune import formats
from wikitune.errors import WikituneError
from wikitune.qa.build import QABuildConfig, run_qa_build
from wikitune.split import is_heldout
from wikitune.text.ja import normalize_answer


def rows(path):
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def _training_phrasing(question: str) -> str | None:
    """The training phrasing of an evaluation question (the rule whose evaluation template it fills)."""
    for _name, train, evaluation in rule_templates():
        pattern = "".join(f"(?P<{part[1:-1]}>.+)" if part.startswith("{") else re.escape(part)
                          for part in re.split(r"(\{\w+\})", evaluation) if part)
        match = re.fullmatch(pattern, question)
        if match:
            return train.format(**match.groupdict())
    return None


def by_question(qa_dir):
    """Every mined question by its training phrasing (test and unseen ask in their evaluation
    phrasing), the unseen ones a training article leaks included (they keep their aliases)."""
    out = {}
    for name in ("train", "test", "unseen", "unseen_leaked"):
        for r in rows(qa_dir / f"{name}.jsonl"):
            question = r["question"] if name == "train" else _training_phrasing(r["question"])
            assert question is not None, f"{name}: {r['question']} is in no evaluation phrasing"
            out[question] = r
    return out


def test_records_follow_the_contract(demo_qa):
    ids = set()
    for name in ("train", "test", "unseen"):
        for r in rows(demo_qa / f"{name}.jsonl"):
            assert set(r) == {"id", "question", "answer", "aliases", "domain", "split", "source"}
            assert r["answer"] and r["question"].endswith("？") and r["domain"] == "anime"
            assert r["split"] == ("train" if name == "train" else "test")
            assert set(r["source"]) == {"pageid", "title"}
            assert r["id"] not in ids
            ids.add(r["id"])
    assert len(ids) > 150


def test_records_validate_against_the_qa_schema(demo_qa):
    validator = jsonschema.Draft202012Validator(formats.schema("qa"))
    checked = 0
    for name in (formats.QA_TRAIN, formats.QA_TEST, formats.QA_UNSEEN):
        for r in rows(demo_qa / name):
            errors = [e.message for e in validator.iter_errors(r)]
            assert not errors, (name, r["id"], errors)
            checked += 1
        # the contract's reader reads back exactly what was written
        assert [item.to_json() for item in formats.read_qa_file(demo_qa / name)] == rows(demo_qa / name)
    assert checked > 150
    assert not validator.is_valid({**r, "source": {"pageid": "12"}})  # the schema does check


def test_infobox_and_lead_rules_give_the_facts(demo_qa):
    qa = by_question(demo_qa)
    assert qa["テレビアニメ『星海のアルカディア』の監督は誰ですか？"]["answer"] == "瀬川透"
    assert qa["テレビアニメ『星海のアルカディア』でシリーズ構成を担当したのは誰ですか？"]["answer"] == "雨宮詩織"
    assert qa["テレビアニメ『魔導探偵サクラ』のアニメーション制作を担当した会社はどこですか？"]["answer"] == "アークライト・アニメーション"
    assert qa["『星海のアルカディア』に登場する天城ミコトの声優は誰ですか？"]["answer"] == "水瀬ことは"
    assert qa["声優の早乙女 ひかりの所属事務所はどこですか？"]["answer"] == "オフィス汐風"
    assert qa["スタジオ灯火が設立されたのはいつですか？"]["answer"] == "2008年4月1日"
    assert qa["碧海県の県庁所在地はどこですか？"]["answer"] == "鷺ノ浦市"       # lead sentence
    assert qa["星海のアルカディアの略称は何ですか？"]["answer"] == "ほしアル"         # lead sentence
    # a multi-valued field (脚本 "雨宮詩織、瀬川透、三枝ひろし") is no short answer
    assert "テレビアニメ『星海のアルカディア』の脚本を担当したのは誰ですか？" not in qa


def test_aliases(demo_qa):
    qa = by_question(demo_qa)
    assert "12話" in qa["テレビアニメ『星海のアルカディア』は全何話ですか？"]["aliases"]
    assert "碧海テレビ" in qa["テレビアニメ『星海のアルカディア』を放送したテレビ局はどこですか？"]["aliases"]
    assert "篠原美咲" in qa["スタジオ灯火の代表者は誰ですか？"]["aliases"]
    art = qa["テレビアニメ『星海のアルカディア』の美術監督は誰ですか？"]
    assert art["answer"] == "雨森千景（アトリエ霧雨）" and "雨森千景" in art["aliases"]
    # a redirect to the answer's article is an alias (the demo wiki redirects スタジオトモシビ)
    assert "スタジオトモシビ" in qa["テレビアニメ『星海のアルカディア』のアニメーション制作を担当した会社はどこですか？"]["aliases"]
    for r in qa.values():  # no alias repeats the answer
        assert normalize_answer(r["answer"]) not in {normalize_answer(a) for a in r["aliases"]}


def test_splits_by_fact_and_by_article(demo_qa):
    train, test, unseen = (rows(demo_qa / f"{n}.jsonl") for n in ("train", "test", "unseen"))
    assert train and test and unseen
    assert all(is_heldout(r["source"]["pageid"]) for r in unseen)
    assert not any(is_heldout(r["source"]["pageid"]) for r in train + test)
    # test facts come from articles whose other facts are in train (memorisation, not new articles)
    train_pages = {r["source"]["pageid"] for r in train}
    assert sum(r["source"]["pageid"] in train_pages for r in test) >= 0.8 * len(test)
    assert not {r["question"] for r in train} & {r["question"] for r in test}


def test_deterministic(demo_corpus, demo_qa, tmp_path):
    run_qa_build(QABuildConfig(corpus=demo_corpus, out=tmp_path / "again"))
    for name in ("train.jsonl", "test.jsonl", "unseen.jsonl", "unseen_leaked.jsonl"):
        assert (tmp_path / "again" / name).read_bytes() == (demo_qa / name).read_bytes()
    manifest = json.loads((demo_qa / "manifest.json").read_text())
    again = json.loads((tmp_path / "again" / "manifest.json").read_text())
    for m in (manifest, again):  # the only difference allowed: where each build wrote
        del m["config"]["out"]
    assert again == manifest
    assert manifest["counts"]["train"] == len(rows(demo_qa / "train.jsonl"))
    assert manifest["skipped"]["multi_valued"] > 0


def test_bad_input(tmp_path):
    # the corpus is checked when the build runs (a study makes its configs before its corpus exists)
    with pytest.raises(WikituneError, match="has no articles.jsonl"):
        run_qa_build(QABuildConfig(corpus=tmp_path, out=tmp_path / "qa"))
    assert not (tmp_path / "qa").exists()
    (tmp_path / "articles.jsonl").write_text("")
    with pytest.raises(WikituneError, match="test_fraction"):
        QABuildConfig(corpus=tmp_path, out=tmp_path / "qa", test_fraction=1.5)
    with pytest.raises(WikituneError, match="yields no question"):
        run_qa_build(QABuildConfig(corpus=tmp_path, out=tmp_path / "qa"))


def test_cli_qa_build(demo_corpus, tmp_path):
    import subprocess
    import sys

    result = subprocess.run([sys.executable, "-m", "wikitune.cli", "qa", "build", str(demo_corpus), "--out", str(tmp_path / "qa")],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert "train" in result.stdout and (tmp_path / "qa" / "unseen.jsonl").is_file()
