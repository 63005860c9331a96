"""`wikitune augment --method facts` on the demo corpus: counts, the rules, the documents' truth, atomic output."""

from __future__ import annotations

import hashlib
import json
import re
import subprocess
import sys
import textwrap
from collections import Counter
from importlib import resources
from pathlib import Path

import jsonschema
import pytest

from tests.conftest import REPO
from wikitune import formats
from wikitune.augment import AugmentConfig, run_augment
from wikitune.augment.facts import FactTemplates
from wikitune.errors import WikituneError
from wikitune.split import is_heldout
from wikitune.text.ja import bracketless, contains_term, normalize_answer

K = 5


@pytest.fixture(scope="module")
def demo_aug(demo_corpus, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("aug") / "facts"
    run_augment(AugmentConfig(corpus=demo_corpus, out=out, method="facts", k=K, seed=0))
    return out


def rows(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def articles_by_id(corpus: Path) -> dict[int, dict]:
    return {r["pageid"]: r for r in formats.iter_articles(corpus)}


def by_article(docs: list[dict]) -> dict[int, list[dict]]:
    out: dict[int, list[dict]] = {}
    for d in docs:
        out.setdefault(d["pageid"], []).append(d)
    return out


def template_patterns() -> list[re.Pattern]:
    """Each template of the shipped file as a regex: its literal text, any text in a slot."""
    templates = FactTemplates.load()
    return [re.compile("^" + re.sub(r"\\\{[sav]\\\}", "(.+)", re.escape(t)) + "$")
            for ts in templates.classes.values() for t in ts]


def test_counts_and_manifest(demo_corpus, demo_aug):
    m = formats.read_json(demo_aug / formats.AUG_MANIFEST, "manifest")
    docs = rows(demo_aug / formats.AUG_DOCUMENTS)
    lines = [line for d in docs for line in d["text"].split("\n")]
    assert (m["tool"], m["kind"], m["method"], m["k"], m["seed"], m["requests"]) == ("wikitune", "augment", "facts", K, 0, 0)
    template_bytes = (resources.files("wikitune.augment") / "templates" / "facts.ja.yaml").read_bytes()
    assert m["generator"] == {"model": None, "base_url": None, "prompt_sha256": hashlib.sha256(template_bytes).hexdigest(),
                              "prompt": "wikitune/augment/templates/facts.ja.yaml"}
    assert m["documents"] == len(docs) == K * m["articles"]
    assert m["articles"] == len({d["pageid"] for d in docs})
    assert m["facts"] * K == m["sentences"] == len(lines)
    assert m["tokens"] == sum(len(d["text"]) for d in docs) and m["token_unit"] == "characters"
    articles = articles_by_id(demo_corpus)
    assert m["training_articles"] + m["heldout_articles"] == len(articles) == 45
    assert m["heldout_articles"] == sum(is_heldout(p) for p in articles) == 3
    # The demo's numbers (README): 39 of 42 training articles have facts; 4 multi-valued fields are not stated.
    assert (m["articles"], m["documents"], m["facts"], m["rejected"]) == (39, 195, 199, {"multi_valued": 4})
    assert all(d["k"] == K and d["method"] == "facts" for d in docs)
    assert len({d["id"] for d in docs}) == len(docs)


def test_documents_validate_against_the_schema(demo_aug):
    validator = jsonschema.Draft202012Validator(formats.schema("augment_document"))
    docs = rows(demo_aug / formats.AUG_DOCUMENTS)
    for d in docs:
        assert not [e.message for e in validator.iter_errors(d)], d["id"]
        assert set(d) == {"id", "pageid", "title", "method", "k", "text"}
    # the contract's reader reads back exactly what was written, and the schema does check
    assert [doc.to_json() for doc in formats.read_documents(demo_aug)] == docs
    assert not validator.is_valid({**docs[0], "k": 0})
    assert not validator.is_valid({**docs[0], "method": "magic"})
    bad = demo_aug.parent / "bad"
    bad.mkdir()
    formats.write_jsonl(bad / formats.AUG_DOCUMENTS, [{**docs[0], "pageid": "101"}])
    with pytest.raises(WikituneError, match=r"documents.jsonl:1: field 'pageid' must be an integer"):
        formats.read_documents(bad)


def test_only_training_articles_and_no_heldout_fact(demo_corpus, demo_qa, demo_aug):
    docs = rows(demo_aug / formats.AUG_DOCUMENTS)
    assert not [d["pageid"] for d in docs if is_heldout(d["pageid"])]
    heldout_facts = rows(demo_qa / formats.QA_UNSEEN) + rows(demo_qa / formats.QA_UNSEEN_LEAKED)
    assert len(heldout_facts) >= 10
    lines = [normalize_answer(line) for d in docs for line in d["text"].split("\n")]
    answers_seen = 0
    for item in heldout_facts:
        subject, answer = normalize_answer(item["source"]["title"]), normalize_answer(item["answer"])
        stating = [line for line in lines if contains_term(line, answer)]
        answers_seen += bool(stating)
        assert not [line for line in stating if subject in line], item["question"]
    assert answers_seen >= 3  # the check is not vacuous: held-out answers are values of training facts too


def test_a_heldout_fact_stated_by_a_training_article_is_rejected(tmp_path):
    # The demo has no such fact: a training work article whose character infobox states what the
    # character's own held-out article states. Page 154 is held out at the default fraction, 101 is not.
    assert is_heldout(154) and not is_heldout(101)
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    character = {"template": "Infobox animanga/Character", "fields": {"名前": "天城ミコト", "声優": "水瀬ことは", "誕生日": "3月3日"}}
    work = {"template": "Infobox animanga/TVAnime", "fields": {"監督": "瀬川透"}}
    formats.write_jsonl(corpus / formats.ARTICLES, [
        {"pageid": 101, "title": "星海のアルカディア", "text": "『星海のアルカディア』はテレビアニメ。", "infobox": [work, character]},
        {"pageid": 154, "title": "天城ミコト", "text": "天城ミコトは登場人物。", "infobox": [{**character, "fields": {
            "名前": "天城ミコト", "声優": "水瀬ことは", "誕生日": "4月4日"}}]},
    ])
    m = run_augment(AugmentConfig(corpus=corpus, out=tmp_path / "aug", k=2)).manifest
    assert m["rejected"] == {"heldout_fact": 1}
    text = "\n".join(d.text for d in formats.read_documents(tmp_path / "aug"))
    assert "水瀬ことは" not in text
    assert "3月3日" in text and "瀬川透" in text  # facts the held-out article does not state stay
    assert {d.pageid for d in formats.read_documents(tmp_path / "aug")} == {101}


def test_an_excluded_fact_is_not_stated(demo_corpus, demo_qa, demo_aug, tmp_path):
    test_items = rows(demo_qa / formats.QA_TEST)
    out = tmp_path / "aug"
    m = run_augment(AugmentConfig(corpus=demo_corpus, out=out, k=K, exclude_qa=[demo_qa / formats.QA_TEST])).manifest
    assert m["rejected"]["excluded_fact"] >= len(test_items)
    assert m["excluded_questions"] == len(test_items)
    before = by_article(rows(demo_aug / formats.AUG_DOCUMENTS))
    after = by_article(rows(out / formats.AUG_DOCUMENTS))

    def stating(docs: list[dict], attribute: str, answer: str) -> list[str]:
        return [line for d in docs for line in d["text"].split("\n") if attribute in line and answer in line]

    for item in test_items:
        attribute = item["id"].rsplit(":", 1)[1]  # qa build's ids end with the infobox field or lead attribute
        pageid = item["source"]["pageid"]
        assert len(stating(before[pageid], attribute, item["answer"])) >= K, item["question"]  # stated without exclusion
        assert stating(after.get(pageid, []), attribute, item["answer"]) == [], item["question"]
    # facts no test question asks stay
    assert m["facts"] == 199 - m["rejected"]["excluded_fact"] and m["facts"] > 100


def test_deterministic_for_a_seed(demo_corpus, demo_aug, tmp_path):
    again = tmp_path / "again"
    m = run_augment(AugmentConfig(corpus=demo_corpus, out=again, k=K, seed=0)).manifest
    assert (again / formats.AUG_DOCUMENTS).read_bytes() == (demo_aug / formats.AUG_DOCUMENTS).read_bytes()
    first = formats.read_json(demo_aug / formats.AUG_MANIFEST, "manifest")
    volatile = ("created", "seconds", "corpus")
    assert {k: v for k, v in m.items() if k not in volatile} == {k: v for k, v in first.items() if k not in volatile}
    other = tmp_path / "other"
    run_augment(AugmentConfig(corpus=demo_corpus, out=other, k=K, seed=1))
    a, b = rows(demo_aug / formats.AUG_DOCUMENTS), rows(other / formats.AUG_DOCUMENTS)
    assert [d["id"] for d in a] == [d["id"] for d in b]
    assert [d["text"] for d in a] != [d["text"] for d in b]
    # another seed states the same facts: the same number of lines per document
    assert [d["text"].count("\n") for d in a] == [d["text"].count("\n") for d in b]


def test_k_phrasings_differ_in_wording_and_order(demo_corpus, demo_aug):
    patterns = template_patterns()
    articles = articles_by_id(demo_corpus)
    shuffled = 0
    for pageid, docs in by_article(rows(demo_aug / formats.AUG_DOCUMENTS)).items():
        values = {v for box in articles[pageid]["infobox"] for v in box["fields"].values()}
        assert [d["id"] for d in docs] == [f"{pageid}:facts:{r}" for r in range(K)]
        lines = [d["text"].split("\n") for d in docs]
        assert len({len(ls) for ls in lines}) == 1  # every round states every fact once
        flat = [line for ls in lines for line in ls]
        assert len(set(flat)) == len(flat), pageid  # no sentence repeats: K different phrasings of each fact
        for line in flat:
            assert any(p.match(line) for p in patterns), line  # only the template file's wording
        # which fact each line states, whatever its wording: the infobox values it contains
        orders = {tuple(frozenset(v for v in values if v in line) for line in ls) for ls in lines}
        shuffled += len(orders) > 1
    assert shuffled >= 30  # sentence order changes between rounds


def test_more_rounds_than_templates_repeat_the_shuffled_cycle(demo_corpus, tmp_path):
    out = tmp_path / "k8"
    m = run_augment(AugmentConfig(corpus=demo_corpus, out=out, k=8)).manifest
    docs = by_article(rows(out / formats.AUG_DOCUMENTS))[101]
    assert m["documents"] == 8 * m["articles"] and len(docs) == 8
    lines = Counter(line for d in docs for line in d["text"].split("\n"))
    facts = docs[0]["text"].count("\n") + 1
    # 8 rounds over 6 or 7 templates per class: every fact has at least 6 distinct sentences
    assert len(lines) >= 6 * facts and max(lines.values()) <= 2


def _subject_names(article: dict) -> set[str]:
    names = {article["title"], bracketless(article["title"])}
    for infobox in article["infobox"]:
        names |= {infobox["fields"].get(key, "") for key in ("名前", "タイトル")}
    return {normalize_answer(n) for n in names if n}


def test_every_fact_is_true_to_its_article(demo_corpus, demo_aug):
    articles = articles_by_id(demo_corpus)
    checked = 0
    for d in rows(demo_aug / formats.AUG_DOCUMENTS):
        article = articles[d["pageid"]]
        assert d["title"] == article["title"]
        pairs = [(name, value) for infobox in article["infobox"] for name, value in infobox["fields"].items()]
        lead = article["text"].split("\n\n")[0]
        subjects = _subject_names(article)
        for line in d["text"].split("\n"):
            from_infobox = any(name in line and value in line for name, value in pairs)
            from_lead = any(m.group(1) in line and m.group(2) in line
                            for m in re.finditer(r"([^。、「」\s]{2,6})は「?([^。、「」]{1,30}?)」?。", lead))
            assert from_infobox or from_lead, (d["id"], line)
            assert any(s in normalize_answer(line) for s in subjects), (d["id"], line)
            checked += 1
    assert checked == 199 * K


def test_a_value_in_the_wrong_field_would_be_caught(demo_corpus):
    # The truth check above is not vacuous: a director's name under 音楽 matches no field of the article.
    article = articles_by_id(demo_corpus)[101]
    pairs = [(n, v) for box in article["infobox"] for n, v in box["fields"].items()]
    assert not any(n in "テレビアニメ『星海のアルカディア』の音楽は瀬川透である。" and v in "テレビアニメ『星海のアルカディア』の音楽は瀬川透である。"
                   for n, v in pairs if n != "タイトル")


KILL_SCRIPT = textwrap.dedent("""
    import os, signal, sys
    from wikitune import formats
    from wikitune.augment import run
    from wikitune.augment.run import AugmentConfig, run_augment

    def write_then_die(path, documents):
        documents = list(documents)
        formats.write_jsonl(path, (d.to_json() for d in documents[: len(documents) // 2]))
        os.kill(os.getpid(), signal.SIGKILL)  # killed half-way through the documents

    run.formats.write_documents = write_then_die
    run_augment(AugmentConfig(corpus=sys.argv[1], out=sys.argv[2], k=int(sys.argv[3])))
""")


def test_a_killed_run_leaves_no_output_that_looks_finished(demo_corpus, tmp_path):
    out = tmp_path / "aug"

    def killed(k: int) -> None:
        proc = subprocess.run([sys.executable, "-c", KILL_SCRIPT, str(demo_corpus), str(out), str(k)],
                              cwd=REPO, capture_output=True, text=True)
        assert proc.returncode == -9, proc.stderr[-2000:]

    killed(2)
    assert not out.exists()  # a first run killed: nothing at AUG_DIR
    partial = out.with_name("aug.partial")
    assert not (partial / formats.AUG_MANIFEST).exists()  # the half-written work is not an augmentation
    run_augment(AugmentConfig(corpus=demo_corpus, out=out, k=2))
    finished = {p.name: p.read_bytes() for p in out.iterdir()}
    killed(3)  # a rebuild killed: the previous output stays, whole
    assert {p.name: p.read_bytes() for p in out.iterdir()} == finished
    m = run_augment(AugmentConfig(corpus=demo_corpus, out=out, k=3)).manifest  # and the next run replaces it
    assert m["k"] == 3 and len(formats.read_documents(out)) == m["documents"] == 3 * m["articles"]
    assert not partial.exists()


def test_a_directory_that_is_not_an_augmentation_is_refused(demo_corpus, tmp_path):
    out = tmp_path / "mine"
    out.mkdir()
    (out / "notes.txt").write_text("keep me", encoding="utf-8")
    with pytest.raises(WikituneError, match="is not a wikitune augment"):
        run_augment(AugmentConfig(corpus=demo_corpus, out=out))
    assert [p.name for p in out.iterdir()] == ["notes.txt"]


@pytest.mark.parametrize("kwargs, message", [
    ({"k": 0}, "k .* must be an integer of 1 or more"),
    ({"method": "paraphrase"}, "unknown augmentation method 'paraphrase'"),
    ({"method": "rephrase"}, "needs --base-url"),
    ({"heldout_fraction": 1.5}, r"held-out fraction must be in \[0, 1\)"),
])
def test_bad_settings(tmp_path, kwargs, message):
    with pytest.raises(WikituneError, match=message):
        AugmentConfig(corpus=tmp_path, out=tmp_path / "aug", **kwargs)


def test_bad_inputs_write_nothing(demo_corpus, tmp_path):
    with pytest.raises(WikituneError, match="has no articles.jsonl"):
        run_augment(AugmentConfig(corpus=tmp_path / "missing", out=tmp_path / "aug"))
    (tmp_path / "empty.jsonl").write_text("", encoding="utf-8")
    with pytest.raises(WikituneError, match="holds no QA records"):
        run_augment(AugmentConfig(corpus=demo_corpus, out=tmp_path / "aug", exclude_qa=[tmp_path / "empty.jsonl"]))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["empty.jsonl"]
