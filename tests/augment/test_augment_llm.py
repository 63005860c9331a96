"""The LLM methods of `wikitune augment` against a scripted loopback server whose replies are known:
every check rejects what it should and counts it, failures are retried, held-out articles are never
sent, excluded facts never kept, and the cache makes a rerun free."""

from __future__ import annotations

import json
import os
import re
import signal
import sqlite3
import subprocess
import sys
import time

import pytest

from tests.augment.llm_server import Answer, ScriptedLLM, chat
from wikitune import formats
from wikitune.augment.generate import Checks
from wikitune.augment.llm import CACHE_FILE, PromptSet
from wikitune.augment.run import AugmentConfig, run_augment
from wikitune.errors import WikituneError
from wikitune.split import split_articles
from wikitune.text.ja import normalize_answer

ANALYSIS = "考え中：この記事の秘密のメモ。"


@pytest.fixture(scope="module")
def records(demo_corpus):
    return list(formats.iter_articles(demo_corpus))


def config(corpus, out, url, method, **kw):
    base = dict(corpus=corpus, out=out, method=method, k=2, base_url=url, model="m", concurrency=4, timeout=0.5,
                retry_backoff=0.01, checks=Checks(min_chars=20))
    return AugmentConfig(**{**base, **kw})


def rephrase_script(req):
    """Rewrite r: every other sentence of the article from the r-th; special articles misbehave."""
    r = int(req.prompt.split("-")[1]) - 1
    text = "".join(req.sentences()[r::2])
    if req.title == "黒崎ジン" and r == 0:
        return Answer(body=chat("Kurosaki Jin is a detective who appears in a light novel series about magic."))
    if req.title == "天城ミコト" and r == 1:
        return Answer(body=chat("".join(req.sentences()[0::2])))  # rewrite 0 again
    if req.title == "東雲ゆかり" and r == 1:
        return Answer(body=chat("短い。"))
    if req.title == "碧海製菓" and r == 0:
        return Answer(body=chat(None, reasoning=ANALYSIS))  # the budget went on reasoning
    if req.title == "汐見市" and r == 0:
        return Answer(body=chat(text, reasoning=ANALYSIS))
    if req.title == "朝霧サクラ" and req.seen == 0:
        return Answer(status=500)
    if req.title == "星乃ルナ" and r == 0 and req.seen == 0:
        return Answer(body=chat(text), delay=1.5)  # past the client's timeout
    return Answer(body=chat(text))


def words(req):
    """Runs of three or more kanji or katakana of the article, first ones first: names it surely holds."""
    return list(dict.fromkeys(re.findall(r"[一-龥ァ-ヶー]{3,}", req.record["text"])))


def test_rephrase_counts_every_rejection_and_retries(demo_corpus, records, tmp_path):
    train, heldout = split_articles(records, 0.1)
    with ScriptedLLM(records, rephrase_script) as server:
        m = run_augment(config(demo_corpus, tmp_path / "aug", server.url, "rephrase")).manifest
    assert m["rejected"] == {"near_duplicate": 1, "no_final": 1, "not_japanese": 1, "too_short": 1,
                             "heldout_fact_sentence": m["rejected"]["heldout_fact_sentence"]}
    assert m["documents"] == 2 * len(train) - 4
    # two 500s (朝霧サクラ's rewrites) and one timeout were retried; every reply is cached
    assert (m["requests"], m["retries"], m["replies"], m["cached_replies"]) == (2 * len(train) + 3, 3, 2 * len(train), 0)
    assert m["generator"]["model"] == "m" and m["generator"]["prompt_sha256"] == PromptSet.load("rephrase").sha256
    assert m["complete"] and m["generated_tokens"] == 10 * 2 * len(train)
    docs = formats.read_documents(tmp_path / "aug")
    assert len({d.id for d in docs}) == len(docs) and {d.pageid for d in docs} <= {r["pageid"] for r in train}
    assert not any(ANALYSIS in d.text or "秘密" in d.text for d in docs)  # reasoning stays in analysis
    # only training articles were sent, each as its own prompt says
    sent = [b["messages"][-1]["content"] for b in server.bodies]
    assert {c.split("記事名：")[1].split("\n")[0] for c in sent} == {r["title"] for r in train}
    for article in heldout:
        assert not any(article["text"][:80] in c for c in sent)
    # the five styles are distinct prompts: rewrite 0 and 1 of an article use different files
    assert len({b["messages"][-1]["content"].split("\n")[0] for b in server.bodies}) == 2


def test_a_finished_rerun_makes_no_request_and_writes_the_same(demo_corpus, records, tmp_path):
    with ScriptedLLM(records, rephrase_script) as server:
        cfg = config(demo_corpus, tmp_path / "aug", server.url, "rephrase", k=1)
        done = run_augment(cfg).manifest
        first = (tmp_path / "aug" / formats.AUG_DOCUMENTS).read_bytes()
        sent = len(server.bodies)
        m = run_augment(cfg).manifest
        assert len(server.bodies) == sent and m["requests"] == 0
    assert (m["replies"], m["cached_replies"]) == (0, done["replies"]) and (tmp_path / "aug" / formats.AUG_DOCUMENTS).read_bytes() == first
    assert (tmp_path / "aug" / CACHE_FILE).is_file() and not (tmp_path / "aug.partial").exists()


def test_excluded_facts_are_cut_from_rewrites(demo_corpus, demo_qa, records, tmp_path):
    excluded = formats.read_qa_file(demo_qa / formats.QA_TEST)
    with ScriptedLLM(records, lambda req: Answer(body=chat("".join(req.sentences())))) as server:
        m = run_augment(config(demo_corpus, tmp_path / "aug", server.url, "rephrase", k=1,
                               exclude_qa=[demo_qa / formats.QA_TEST])).manifest
    assert m["rejected"]["excluded_fact_sentence"] > 0
    docs = formats.read_documents(tmp_path / "aug")
    for doc in docs:
        text = normalize_answer(doc.text)
        for item in excluded:
            if item.source and item.source["pageid"] == doc.pageid:
                assert normalize_answer(item.answer) not in text, (doc.title, item.question, item.answer)


def test_qa_keeps_answers_of_the_article_and_never_an_excluded_fact(demo_corpus, demo_qa, records, tmp_path):
    excluded = formats.read_qa_file(demo_qa / formats.QA_TEST)
    victim = next(item for item in excluded if item.source and item.source["title"] == "魔導探偵サクラ")

    def script(req):
        first = words(req)[0]
        good = {"question": "この記事に最初に出てくる三文字以上の語は何ですか？", "answer": first, "subject": req.title}
        lines = [good]
        if req.title == "魔導探偵サクラ":
            lines += [{"question": "魔導探偵サクラの原作者の好物は？", "answer": "存在しない答え", "subject": req.title},
                      {"question": "Who is the author of this novel series?", "answer": first, "subject": req.title},
                      dict(good), "これはJSONではない",
                      {"question": victim.question, "answer": victim.answer, "subject": req.title}]
        return Answer(body=chat("\n".join(x if isinstance(x, str) else json.dumps(x, ensure_ascii=False) for x in lines)))

    train, _ = split_articles(records, 0.1)
    with ScriptedLLM(records, script) as server:
        m = run_augment(config(demo_corpus, tmp_path / "aug", server.url, "qa", k=1,
                               exclude_qa=[demo_qa / formats.QA_TEST])).manifest
    assert m["rejected"] == {"answer_not_in_article": 1, "not_japanese": 1, "near_duplicate": 1, "malformed": 1, "excluded_fact": 1}
    items = formats.read_qa_file(tmp_path / "aug" / formats.AUG_QA)
    assert len(items) == m["qa"] == len(train) and m["documents"] == len(train)
    assert all(i.split == "train" and i.source["pageid"] in {r["pageid"] for r in train} for i in items)
    asked = {(normalize_answer(e.answer), e.source["pageid"]) for e in excluded if e.source}
    assert not any((normalize_answer(i.answer), i.source["pageid"]) in asked for i in items)


def test_entigraph_relates_entities_of_the_article(demo_corpus, records, tmp_path):
    def script(req):
        s = req.sentences()
        if req.prompt == "entigraph-1-entities":
            extra = ["存在しない架空団体"] if req.title == "瀬川透" else []
            first, second, third = words(req)[:3]
            return Answer(body=chat("\n".join([f"・{first}", f"- {second}", third, *extra])))
        entities = req.entities()
        if req.title == "瀬川透" and len(entities) == 3:
            return Answer(body=chat("この三つは関係がある。" + s[0]))  # names none of them
        return Answer(body=chat("と".join(f"「{e}」" for e in entities) + "の関係について。" + s[len(entities)]))

    train, _ = split_articles(records, 0.1)
    with ScriptedLLM(records, script) as server:
        m = run_augment(config(demo_corpus, tmp_path / "aug", server.url, "entigraph", k=2, triples=True,
                               checks=Checks(min_chars=10, near_duplicate=1.0))).manifest
    prompts = [b["messages"][-1]["content"].split("\n")[0] for b in server.bodies]
    pairs = sum("「" in p and p.count("「") == 2 for p in prompts)
    triples = sum(p.count("「") == 3 for p in prompts)
    # every article: 1 extraction, 2 of its 3 pairs, its 1 triple
    assert (len(prompts), pairs, triples) == (4 * len(train), 2 * len(train), len(train))
    assert m["rejected"]["entity_not_in_article"] == 1 and m["rejected"]["entity_missing"] == 1
    docs = formats.read_documents(tmp_path / "aug")
    assert all(d.id.split(":")[2] in ("pair", "triple") for d in docs)
    # every output requested is a document or a rejection (a few scripted texts repeat one another)
    assert m["documents"] == len(docs) == 3 * len(train) - 1 - m["rejected"].get("near_duplicate", 0)


def test_the_budget_stops_sending_and_the_manifest_says_so(demo_corpus, records, tmp_path):
    with ScriptedLLM(records, lambda req: Answer(body=chat("".join(req.sentences()), tokens=100))) as server:
        cfg = config(demo_corpus, tmp_path / "aug", server.url, "rephrase", k=1, concurrency=1, max_tokens_total=450)
        m = run_augment(cfg).manifest
        assert len(server.bodies) == 5 and m["budget"] == {"max_tokens_total": 450, "spent": 500, "exhausted": True,
                                                            "unsent_requests": 42 - 5}
        assert not m["complete"]
        again = run_augment(cfg).manifest  # the cached replies already spend the budget: nothing is sent
        assert len(server.bodies) == 5 and again["requests"] == 0 and again["documents"] == m["documents"]


def test_a_server_that_keeps_failing_stops_the_run_and_keeps_the_replies(demo_corpus, records, tmp_path):
    def script(req):
        return Answer(status=503) if req.title == "瀬川透" else Answer(body=chat("".join(req.sentences())))

    with ScriptedLLM(records, script) as server:
        with pytest.raises(WikituneError, match=r"瀬川透|164:rephrase:0.*gave up after 3 tries"):
            run_augment(config(demo_corpus, tmp_path / "aug", server.url, "rephrase", k=1, retries=2, concurrency=1))
    assert not (tmp_path / "aug").exists()
    with sqlite3.connect(tmp_path / "aug.partial" / CACHE_FILE) as db:
        [(cached,)] = db.execute("SELECT COUNT(*) FROM replies").fetchall()
    assert cached == sum(1 for b in server.bodies if "記事名：瀬川透" not in b["messages"][-1]["content"])


def test_a_429_is_retried_a_400_is_a_cached_refusal_and_a_401_stops_at_once(demo_corpus, records, tmp_path):
    """The status of the server's error decides: busy (429) again later, refused (400) for good, unauthorised (401) stop."""
    train, _ = split_articles(records, 0.1)

    def script(req):
        if req.title == "朝霧サクラ" and req.seen == 0:
            return Answer(status=429)
        if req.title == "瀬川透":
            return Answer(status=400)
        return Answer(body=chat("".join(req.sentences())))

    with ScriptedLLM(records, script) as server:
        cfg = config(demo_corpus, tmp_path / "aug", server.url, "rephrase", k=1)
        m = run_augment(cfg).manifest
        assert (m["requests"], m["retries"], m["replies"]) == (len(train) + 1, 1, len(train))
        assert m["rejected"]["request_refused"] == 1
        sent = len(server.bodies)
        assert run_augment(cfg).manifest["requests"] == 0 and len(server.bodies) == sent  # the refusal was cached

    with ScriptedLLM(records, lambda req: Answer(status=401)) as server:
        with pytest.raises(WikituneError, match=r"answered 401: scripted") as err:
            run_augment(config(demo_corpus, tmp_path / "denied", server.url, "rephrase", k=1, concurrency=1))
        assert len(server.bodies) == 1 and "gave up" not in str(err.value)  # no retry, nothing more sent


def test_llm_methods_need_a_server(demo_corpus, tmp_path):
    with pytest.raises(WikituneError, match="needs --base-url"):
        AugmentConfig(corpus=demo_corpus, out=tmp_path / "aug", method="qa")


def wikitune_augment(corpus, out, url, *extra):
    return [sys.executable, "-m", "wikitune.cli", "augment", str(corpus), "--out", str(out), "--method", "rephrase",
            "--k", "2", "--base-url", url, "--model", "m", "--concurrency", "2", *extra]


def test_kill_9_then_rerun_repeats_no_answered_request(demo_corpus, records, tmp_path):
    """A real `wikitune augment` killed with SIGKILL mid-run: the rerun sends only what was never
    answered, and writes exactly what an uninterrupted run writes."""
    train, _ = split_articles(records, 0.1)

    def slow(req):
        return Answer(body=chat("".join(req.sentences()[int(req.prompt.split("-")[1]) - 1::2])), delay=0.05)

    with ScriptedLLM(records, slow) as server:
        subprocess.run(wikitune_augment(demo_corpus, tmp_path / "clean", server.url), check=True, capture_output=True)
        clean = (tmp_path / "clean" / formats.AUG_DOCUMENTS).read_bytes()
        del server.bodies[:]

        out = tmp_path / "aug"
        proc = subprocess.Popen(wikitune_augment(demo_corpus, out, server.url), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 60
        while len(server.bodies) < 20 and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.01)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        assert proc.returncode == -signal.SIGKILL and not out.exists()
        with sqlite3.connect(out.with_name("aug.partial") / CACHE_FILE) as db:
            [(committed,)] = db.execute("SELECT COUNT(*) FROM replies").fetchall()
        assert committed >= 18  # at most the two requests in flight were lost
        first = len(server.bodies)

        result = subprocess.run(wikitune_augment(demo_corpus, out, server.url), capture_output=True, text=True)
        assert result.returncode == 0, result.stderr
        assert len(server.bodies) - first == 2 * len(train) - committed  # nothing answered and cached is asked again
        assert f"{committed} cached replies" in result.stdout
    assert (out / formats.AUG_DOCUMENTS).read_bytes() == clean
    ids = [d.id for d in formats.read_documents(out)]
    assert len(ids) == len(set(ids))


@pytest.mark.slow
def test_rephrase_and_qa_against_wikitune_serve(demo_corpus, records, tmp_path):
    """The tiny gpt-oss behind the real `wikitune serve` app: every request answered, every reply
    accounted for (a document or a rejection), and a rerun asks nothing."""
    from tests.loopback import serve_app
    from wikitune.gptoss.model import load_model_and_tokenizer, train_bpe_tokenizer
    from wikitune.gptoss.serve import create_app

    train, _ = split_articles(records, 0.1)
    tok_dir = tmp_path / "tok"
    train_bpe_tokenizer([r["text"] for r in records], 2000, tok_dir)
    model, tokenizer = load_model_and_tokenizer("tiny-gpt-oss", tokenizer=tok_dir)
    with serve_app(create_app(model, tokenizer, model_name="tiny")) as url:
        for method in ("rephrase", "qa"):
            cfg = config(demo_corpus, tmp_path / method, f"{url}/v1", method, k=1, model="tiny", max_new_tokens=16,
                         concurrency=2, timeout=120)
            m = run_augment(cfg).manifest
            assert m["requests"] == m["replies"] == len(train) and m["retries"] == 0
            per_reply = {"no_final", "truncated", "not_japanese", "too_short", "too_long", "near_duplicate", "request_refused"}
            if method == "rephrase":
                assert m["documents"] + sum(n for r, n in m["rejected"].items() if r in per_reply) == len(train), m["rejected"]
            again = run_augment(cfg).manifest
            assert again["requests"] == 0 and again["cached_replies"] == len(train)
            assert (tmp_path / method / formats.AUG_DOCUMENTS).is_file()
