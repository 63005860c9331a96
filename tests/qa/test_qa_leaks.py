"""`qa build`'s honesty checks on the demo corpus: unseen facts a training article states, and one fact in two splits.

The checks here are independent re-implementations (plain loops over the articles' text and the
QA records), not calls into `wikitune.qa.build`, so a bug there cannot hide itself.
"""

import json
import re
import sqlite3

import jsonschema

from wikitune import formats
from wikitune.formats import QA_UNSEEN_LEAKED
from wikitune.qa.build import Fact, find_leaks
from wikitune.split import is_heldout
from wikitune.text.ja import bracketless, normalize_answer

# The demo's unseen facts that other (training) articles state: (question, answer), in the
# evaluation phrasing every unseen question takes.
LEAKED = {
    ("OVA『NEON DRIVE』で監督を受け持った人物の名は？", "久遠寺誠一"),           # 瀬川透, 鉄騎兵ガルディオン, ミナモ動画
    ("OVA『NEON DRIVE』でアニメーション制作を受け持った会社の名は？", "ミナモ動画"),
    ("人物真島 ほのかの所属の名は？", "スタジオ灯火"),                          # 星海のアルカディア: 蒼の章
    ("スタジオ灯火の代表者に該当する人物の名は？", "代表取締役 篠原美咲"),       # 瀬川透
}


def rows(path):
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def training_sentences(corpus):
    """(pageid, title, sentence) of every training article, split independently of text.ja."""
    for article in formats.iter_articles(corpus):
        if is_heldout(article["pageid"]):
            continue
        for piece in re.split(r"(?<=[。！？])|\n", article["text"]):
            if piece and piece.strip():
                yield article["pageid"], article["title"], piece.strip()


def subject_forms(corpus, title):
    """The normalised title, its bracket-less form and its redirects, read straight from index.sqlite."""
    db = sqlite3.connect(corpus / "index.sqlite")
    redirects = [r for (r,) in db.execute("SELECT title FROM pages WHERE redirect = ?", (title,))]
    db.close()
    return {normalize_answer(f) for f in [title, bracketless(title), *redirects] if f}


def states(sentence, subjects, answers):
    text = normalize_answer(sentence)
    return any(s in text for s in subjects) and any(a and a in text for a in answers)


def test_leaked_unseen_facts_leave_unseen_for_the_side_file(demo_qa):
    leaked = rows(demo_qa / QA_UNSEEN_LEAKED)
    unseen = rows(demo_qa / formats.QA_UNSEEN)
    assert {(r["question"], r["answer"]) for r in leaked} == LEAKED
    assert not {(r["question"], r["answer"]) for r in unseen} & LEAKED
    manifest = json.loads((demo_qa / formats.QA_MANIFEST).read_text(encoding="utf-8"))
    before, after = manifest["before_checks"], manifest["counts"]
    assert before["unseen"] == 13 and after["unseen"] == 9 and after["unseen_leaked"] == 4
    assert after["unseen"] == len(unseen) and after["unseen_leaked"] == len(leaked)
    # every drop is counted: what left train is what the duplicate check says it dropped
    dropped = manifest["cross_split_duplicates"]
    for name in ("train", "test"):
        assert before[name] - after[name] == sum(n for k, n in dropped.items() if k.startswith(f"{name}_"))
    assert dropped["train_same_fact_as_test"] > 0


def test_every_remaining_unseen_item_is_clean(demo_corpus, demo_qa):
    sentences = list(training_sentences(demo_corpus))
    unseen = rows(demo_qa / formats.QA_UNSEEN)
    assert unseen
    for r in unseen:
        subjects = subject_forms(demo_corpus, r["source"]["title"])
        answers = {normalize_answer(a) for a in [r["answer"], *r["aliases"]]}
        hits = [(pageid, s) for pageid, _title, s in sentences if states(s, subjects, answers)]
        assert not hits, (r["question"], hits)


def test_the_side_file_names_the_leaking_article_and_sentence(demo_corpus, demo_qa):
    texts = {a["pageid"]: a for a in formats.iter_articles(demo_corpus)}
    validator = jsonschema.Draft202012Validator(formats.schema("qa"))
    leaked = rows(demo_qa / QA_UNSEEN_LEAKED)
    for r in leaked:
        assert not list(validator.iter_errors(r)) and is_heldout(r["source"]["pageid"])
        assert r["leaked_by"]
        subjects = subject_forms(demo_corpus, r["source"]["title"])
        answers = {normalize_answer(a) for a in [r["answer"], *r["aliases"]]}
        for leak in r["leaked_by"]:
            article = texts[leak["pageid"]]
            assert not is_heldout(leak["pageid"]) and leak["title"] == article["title"]
            assert leak["sentence"] in article["text"] and states(leak["sentence"], subjects, answers)
    # a record `eval` can still read (the extra `leaked_by` is ignored)
    assert [item.question for item in formats.read_qa_file(demo_qa / QA_UNSEEN_LEAKED)] == [r["question"] for r in leaked]
    director = next(r for r in leaked if r["answer"] == "久遠寺誠一")
    assert {"pageid": 164, "title": "瀬川透",
            "sentence": "1998年、久遠寺誠一監督のOVA『NEON DRIVE』第2話で初めて演出を担当する。"} in director["leaked_by"]


def test_no_fact_in_two_splits(demo_qa):
    # independent key: the source article and the normalised answer (all media of one article are one work)
    seen: dict[tuple, str] = {}
    split_rows = {name: rows(demo_qa / f"{name}.jsonl") for name in ("train", "test", "unseen")}
    for name, records in split_rows.items():
        for r in records:
            key = (r["source"]["pageid"], normalize_answer(r["answer"]))
            assert seen.setdefault(key, name) == name, (name, r["question"], seen[key])
    questions = {name: {r["question"] for r in records} for name, records in split_rows.items()}
    # 漫画『X』の出版社 vs 小説『X』の出版社, and 作者 vs 原作 of one work: the test copy stays, train's goes
    assert "小説『魔導探偵サクラ』の出版社の名は？" in questions["test"]
    assert "漫画『魔導探偵サクラ』の出版社はどこですか？" not in questions["train"]
    assert "テレビアニメ『風見鶏の交響曲』で原作を受け持った人物の名は？" in questions["test"]
    assert "漫画『風見鶏の交響曲』の作者は誰ですか？" not in questions["train"]


def fact(answer, title="星海のアルカディア（テレビアニメ）", aliases=()):
    return Fact(id=f"1:{answer}", question="?", answer=answer, aliases=list(aliases), pageid=1, title=title, rule="work:話数")


def test_find_leaks_matches_names_and_numbers_whole():
    facts = [fact("全3話", aliases=["3話"]), fact("瀬川透"), fact("雨宮詩織")]
    forms = ["星海のアルカディア（テレビアニメ）", "星海アルカディア"]  # the title and its redirect, as title_index keys them
    names = {normalize_answer(f): forms for f in forms}
    articles = [
        {"pageid": 7, "title": "A", "text": "『星海のアルカディア』は全13話。\n監督は瀬川透。"},   # 13 is not 3; 瀬川 is another sentence
        {"pageid": 8, "title": "B", "text": "概要\n『星海アルカディア』（全3話）の監督は瀬川透。"},  # a redirect names the subject
    ]
    leaks = find_leaks(facts, articles, names)
    sentence = "『星海アルカディア』（全3話）の監督は瀬川透。"
    assert leaks == {"1:全3話": [{"pageid": 8, "title": "B", "sentence": sentence}],
                     "1:瀬川透": [{"pageid": 8, "title": "B", "sentence": sentence}]}
