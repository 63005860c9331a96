"""End to end: the tiny gpt-oss answers a QA file through the in-process backend and through a real
OpenAI-compatible HTTP server (`wikitune serve`'s app on 127.0.0.1), results and summary per DESIGN.md."""

import json
import os

import jsonschema
import pytest

from tests.conftest import shared_file
from tests.loopback import serve_app
from wikitune import formats
from wikitune.config import load_config
from wikitune.errors import WikituneError
from wikitune.evaluate.judge import JudgeSettings, judge_records
from wikitune.evaluate.perplexity import perplexity
from wikitune.evaluate.run import QAEvalConfig, question_text, run_eval
from wikitune.formats import QAItem
from wikitune.gptoss.generate import Generation, GenerationSettings, HFBackend
from wikitune.gptoss.harmony import PromptSettings, render_prompt
from wikitune.gptoss.model import load_model_and_tokenizer, train_bpe_tokenizer
from wikitune.gptoss.serve import create_app
from wikitune.qa.build import QABuildConfig, run_qa_build
from wikitune.qa.llm import LLMQuestionSettings
from wikitune.split import is_heldout

RESULT_KEYS = {"id", "question", "answer", "domain", "raw", "final", "analysis", "flags", "scores", "new_tokens"}


@pytest.fixture(scope="module")
def tiny(demo_corpus, tmp_path_factory):
    texts = [json.loads(line)["text"] for line in (demo_corpus / "articles.jsonl").read_text(encoding="utf-8").splitlines()]
    tok_dir = tmp_path_factory.mktemp("tok")
    train_bpe_tokenizer(texts, 2000, tok_dir)
    model, tokenizer = load_model_and_tokenizer("tiny-gpt-oss", tokenizer=tok_dir)
    return model, tokenizer, tok_dir


def records(run):
    return [json.loads(line) for line in (run / "results.jsonl").read_text(encoding="utf-8").splitlines()]


def config(tmp_path, qa, tok_dir, *extra):
    return load_config(QAEvalConfig, None, [f"output_dir={tmp_path}", f"tokenizer={tok_dir}", f"qa={json.dumps(qa)}",
                                            "generation.max_new_tokens=24", "generation.batch_size=4", *extra])


def test_hf_backend_end_to_end_and_resume(tiny, demo_qa, tmp_path):
    model, tokenizer, tok_dir = tiny
    qa = [f"{demo_qa / 'test.jsonl'}:6", f"{demo_qa / 'unseen.jsonl'}:3@anime-unseen", "builtin:seed"]
    cfg = config(tmp_path / "run", qa, tok_dir)
    run = run_eval(cfg)
    rows = records(run)
    assert len(rows) == 14 and [r["id"] for r in rows][-5:] == [f"seed:{n}" for n in ("paniponi", "shinzou", "katsura", "kokusai", "nisa")]
    for r in rows:
        assert RESULT_KEYS <= set(r)
        assert 0 < r["new_tokens"] <= 24
        assert not r["raw"].startswith("<|start|>system") and r["question"] not in r["raw"]  # no prompt echo
        assert ("truncated" in r["flags"]) == (r["stop_reason"] == "length")
        assert ("no_final" in r["flags"]) == (r["final"] is None)
        assert (r["scores"] == {}) == (r["answer"] == "")  # the control questions have no gold string
    summary = json.loads((run / "summary.json").read_text())
    assert set(summary["domains"]) == {"anime", "anime-unseen", "control"}
    assert summary["domains"]["anime"]["n"] == 9 and summary["domains"]["control"]["n"] == 2
    assert set(summary["sets"]) == {"test", "unseen", "builtin:seed"}
    em = summary["domains"]["anime"]["scores"]["exact_match"]
    assert em["n"] == 9 and len(em["ci95"]) == 2 and em["ci95"][0] <= em["mean"] <= em["ci95"][1]
    config_text = (run / "config.yaml").read_text()
    assert "max_new_tokens: 24" in config_text and "reasoning_effort: low" in config_text

    # resumable: the same settings answer nothing again; a different prompt setting answers all again
    again = run_eval(cfg)
    assert json.loads((again / "summary.json").read_text())["run"]["answered"] == 0
    assert records(again) == rows
    changed = run_eval(config(tmp_path / "run", qa, tok_dir, "prompt.reasoning_effort=high"))
    assert json.loads((changed / "summary.json").read_text())["run"]["answered"] == 14


def test_rag_mode_records_retrieval(tiny, demo_corpus, demo_qa, tmp_path):
    model, tokenizer, tok_dir = tiny
    cfg = config(tmp_path / "rag", [f"{demo_qa / 'test.jsonl'}:8"], tok_dir, "mode=rag", f"corpus={demo_corpus}", "generation.max_new_tokens=8")
    run = run_eval(cfg)
    rows = records(run)
    assert all(r["retrieved"] and r["retrieval_hit"] in (0, 1) for r in rows)
    summary = json.loads((run / "summary.json").read_text())
    assert summary["domains"]["anime"]["retrieval_hit_rate"]["n"] == 8
    assert summary["domains"]["anime"]["retrieval_hit_rate"]["mean"] >= 0.5


def test_config_errors(tmp_path):
    with pytest.raises(WikituneError, match="unknown config key"):
        load_config(QAEvalConfig, None, ["nope=1"])
    with pytest.raises(WikituneError, match="needs base_url"):
        load_config(QAEvalConfig, None, ["backend=openai"])
    with pytest.raises(WikituneError, match="reasoning_effort"):
        load_config(QAEvalConfig, None, ["prompt.reasoning_effort=extreme"])
    with pytest.raises(WikituneError, match="max_new_tokens"):
        load_config(QAEvalConfig, None, ["generation.max_new_tokens=0"])
    for fraction in ("0", "1", "1.5"):
        with pytest.raises(WikituneError, match=r"heldout_fraction must be in \(0, 1\)"):
            load_config(QAEvalConfig, None, [f"heldout_fraction={fraction}"])


@pytest.fixture(scope="module")
def server(tiny):
    model, tokenizer, _ = tiny
    with serve_app(create_app(model, tokenizer, model_name="tiny")) as url:
        yield f"{url}/v1"


@pytest.mark.parametrize("api", ["chat", "responses"])
def test_openai_backend_against_a_real_local_server(tiny, server, demo_qa, tmp_path, api):
    """Greedy answers through HTTP equal the in-process ones: same prompt, same model, same tokens."""
    _, _, tok_dir = tiny
    qa = [f"{demo_qa / 'test.jsonl'}:5", "builtin:seed"]
    local = records(run_eval(config(tmp_path / "hf", qa, tok_dir)))
    remote_cfg = load_config(QAEvalConfig, None, [f"output_dir={tmp_path / 'http'}", f"qa={json.dumps(qa)}", "backend=openai",
                                                  f"base_url={server}", "model=tiny", "generation.max_new_tokens=24", "concurrency=3",
                                                  f"api={api}"])
    remote = records(run_eval(remote_cfg))
    assert [r["id"] for r in remote] == [r["id"] for r in local]
    for a, b in zip(local, remote):
        assert b["raw"] == a["raw"] and b["flags"] == a["flags"] and b["new_tokens"] == a["new_tokens"]
        assert b["final"] == a["final"] and b["scores"] == a["scores"]


def test_server_api_shape_and_errors(server):
    import httpx

    models = httpx.get(f"{server}/models").json()
    assert models["data"][0]["id"] == "tiny"
    body = {"model": "tiny", "messages": [{"role": "system", "content": "簡潔に。"}, {"role": "user", "content": "銀魂で、桂小太郎のあだ名は？"}],
            "max_tokens": 6, "reasoning_effort": "low"}
    reply = httpx.post(f"{server}/chat/completions", json=body, timeout=60).json()
    choice = reply["choices"][0]
    assert choice["message"]["role"] == "assistant" and "raw" in choice["message"]
    assert reply["usage"]["completion_tokens"] <= 6 and choice["finish_reason"] in ("stop", "length")
    assert reply["wikitune"]["stop_reason"] in ("stop", "length", "loop")
    bad = httpx.post(f"{server}/chat/completions", json={"messages": [{"role": "tool", "content": "x"}]}, timeout=60)
    assert bad.status_code == 400 and "unsupported message role" in bad.json()["error"]["message"]
    assert httpx.post(f"{server}/chat/completions", json={"messages": []}, timeout=60).status_code == 400
    assert httpx.post(f"{server}/chat/completions", json={**body, "stream": True}, timeout=60).status_code == 400
    bad = httpx.post(f"{server}/chat/completions", json={**body, "reasoning_effort": "extreme"}, timeout=60)
    assert bad.status_code == 400 and "reasoning_effort must be one of low, medium, high" in bad.json()["error"]["message"]
    bad = httpx.post(f"{server}/responses", json={"input": "Q", "reasoning": {"effort": "extreme"}}, timeout=60)
    assert bad.status_code == 400 and "reasoning_effort must be one of" in bad.json()["error"]["message"]


def test_eval_with_perplexity(tiny, demo_corpus, tmp_path):
    _, _, tok_dir = tiny
    jsquad = shared_file("qa-jglue", "jsquad-valid-v1.3.json")
    cfg = config(tmp_path / "ppl", ["builtin:seed"], tok_dir, "perplexity=true", f"corpus={demo_corpus}",
                 f"perplexity_control={jsquad}", "perplexity_max_documents=5", "generation.max_new_tokens=4")
    summary = json.loads((run_eval(cfg) / "summary.json").read_text())
    assert set(summary["perplexity"]) == {"anime-heldout", "control"}
    for block in summary["perplexity"].values():
        assert block["tokens"] > 0 and block["perplexity"] > 1
    with pytest.raises(WikituneError, match="backend=hf"):
        load_config(QAEvalConfig, None, ["perplexity=true", "backend=openai", "base_url=http://127.0.0.1:1/v1"])


def test_judge_through_a_real_server(server):
    """The judge's request path against the served tiny model: its random verdict is unreadable -> judge_failed, no score."""
    recs = [{"question": "NISAの概要は？", "answer": "", "final": "非課税の制度です。", "flags": [], "scores": {}}]
    settings = JudgeSettings(enabled=True, base_url=server, model="tiny", max_new_tokens=8, concurrency=2)
    assert judge_records(recs, settings) == 1
    assert recs[0]["judge"]["model"] == "tiny"
    assert ("judge" in recs[0]["scores"]) != ("judge_failed" in recs[0]["flags"])


def test_chat_template_format_end_to_end(tiny, tmp_path):
    _, _, tok_dir = tiny
    harmony = records(run_eval(config(tmp_path / "h", ["builtin:seed"], tok_dir, "prompt.developer=null", "prompt.date='2025-01-01'")))
    template = records(run_eval(config(tmp_path / "t", ["builtin:seed"], tok_dir, "prompt.developer=null", "prompt.date='2025-01-01'",
                                       "prompt.format=chat_template")))
    # without a developer message both renderers give the same prompt, hence the same greedy answers
    assert [r["raw"] for r in template] == [r["raw"] for r in harmony]


def test_llm_question_writer_through_a_real_server(server, demo_corpus, tmp_path):
    """`qa build --llm-base-url` against the served tiny model: its random replies hold no question, so every
    article is counted as unparsable and the rule-based files are what remains."""
    llm = LLMQuestionSettings(base_url=server, model="tiny", per_article=1, max_new_tokens=8, concurrency=4)
    result = run_qa_build(QABuildConfig(corpus=demo_corpus, out=tmp_path / "qa", llm=llm))
    assert result.manifest["skipped"]["llm_no_parsable_reply"] == result.manifest["articles"]
    assert result.counts["train"] > 100


def test_resume_after_a_kill_mid_line(tiny, tmp_path):
    """A results.jsonl cut mid-record (the run was killed) loses only that record."""
    _, _, tok_dir = tiny
    cfg = config(tmp_path / "run", ["builtin:seed"], tok_dir, "generation.max_new_tokens=4")
    run = run_eval(cfg)
    lines = (run / "results.jsonl").read_text(encoding="utf-8").splitlines(keepends=True)
    (run / "results.jsonl").write_text("".join(lines[:3]) + lines[3][:40], encoding="utf-8")
    again = run_eval(cfg)
    assert json.loads((again / "summary.json").read_text())["run"]["answered"] == 2
    assert (again / "results.jsonl").read_text(encoding="utf-8").splitlines(keepends=True) == lines


def test_multiple_choice_questions_show_their_choices():
    item = QAItem(id="c", question="水を出すときに捻るものは？", answer="蛇口", choices=["蛇口", "ハンドル", "流し"], domain="control")
    assert question_text(item) == "水を出すときに捻るものは？\n選択肢: 蛇口、ハンドル、流し"
    assert question_text(QAItem(id="q", question="Q？", answer="A")) == "Q？"


def test_sampling_is_seeded_and_an_adapter_changes_the_answers(tiny, tmp_path):
    from peft import LoraConfig, get_peft_model

    model, tokenizer, tok_dir = tiny
    prompts = [render_prompt(PromptSettings(), q) for q in ("銀魂で、桂小太郎のあだ名は？", "進撃の巨人の掛け声は？")]
    sample = GenerationSettings(max_new_tokens=16, temperature=1.0, seed=7, loop_guard=False)
    first = [g.raw for g in HFBackend(model, tokenizer, sample).generate(prompts)]
    assert [g.raw for g in HFBackend(model, tokenizer, sample).generate(prompts)] == first
    greedy = [g.raw for g in HFBackend(model, tokenizer, GenerationSettings(max_new_tokens=16, loop_guard=False)).generate(prompts)]
    assert first != greedy

    # a LoRA adapter with non-zero weights, saved like cpt/sft save theirs
    base, _ = load_model_and_tokenizer("tiny-gpt-oss", tokenizer=tok_dir)
    peft = get_peft_model(base, LoraConfig(r=4, target_modules=["q_proj", "v_proj"], init_lora_weights=False))
    peft.save_pretrained(tmp_path / "adapter")
    qa = ["builtin:seed"]
    plain = records(run_eval(config(tmp_path / "base", qa, tok_dir)))
    adapted_cfg = config(tmp_path / "lora", qa, tok_dir, f"adapter={tmp_path / 'adapter'}")
    adapted = records(run_eval(adapted_cfg))
    assert [r["raw"] for r in adapted] != [r["raw"] for r in plain]
    assert adapted[0]["cache_key"] != plain[0]["cache_key"]


def test_heldout_perplexity_is_measured_at_the_fraction_given(tiny, demo_corpus, tmp_path):
    """heldout_fraction=0.2 (a study's): perplexity on exactly the articles is_heldout(pageid, 0.2) selects, not 0.1's."""
    model, tokenizer, tok_dir = tiny
    cfg = config(tmp_path / "ppl", ["builtin:seed"], tok_dir, "perplexity=true", f"corpus={demo_corpus}",
                 "heldout_fraction=0.2", "generation.max_new_tokens=4")
    measured = formats.read_summary(run_eval(cfg))["perplexity"]["anime-heldout"]
    articles = list(formats.iter_articles(demo_corpus))
    held = {f: [a["text"] for a in articles if is_heldout(a["pageid"], f)] for f in (0.1, 0.2)}
    assert len(held[0.2]) > len(held[0.1]) > 0
    assert measured == perplexity(model, tokenizer, held[0.2], block_size=cfg.perplexity_block_size)
    assert measured["documents"] == len(held[0.2])
    assert measured != perplexity(model, tokenizer, held[0.1], block_size=cfg.perplexity_block_size)


class VerdictServer:
    """A judge that gives every answer 評価: 4."""

    def chat(self, conversations, reasoning_effort=None):
        return [Generation(raw="<|channel|>final<|message|>評価: 4<|return|>", new_tokens=5, stop_reason="stop") for _ in conversations]


def test_results_validate_against_the_schema(tiny, demo_corpus, demo_qa, tmp_path):
    _, _, tok_dir = tiny
    cfg = config(tmp_path / "run", [f"{demo_qa / 'test.jsonl'}:4", "builtin:seed"], tok_dir, "mode=rag", f"corpus={demo_corpus}",
                 "generation.max_new_tokens=8")
    results = formats.read_results(run_eval(cfg))
    assert len(results) == 9
    assert any(r["scores"] for r in results) and any(not r["scores"] for r in results)  # with and without a gold answer
    validator = jsonschema.Draft202012Validator(formats.schema("eval_result"))
    judge_records(results, JudgeSettings(enabled=True, base_url="http://127.0.0.1:1/v1", questions="all"), backend=VerdictServer())
    assert all(r["scores"]["judge"] == 0.75 or not r["final"] for r in results)
    for r in results:
        errors = [e.message for e in validator.iter_errors(r)]
        assert not errors, (r["id"], errors)
    scored = next(r for r in results if "exact_match" in r["scores"])
    assert not validator.is_valid({**scored, "scores": {"exact_match": 1}})  # short scores come all four together
    assert not validator.is_valid({**scored, "stop_reason": "eos"})


def canned_app(replies, asked):
    """An OpenAI-compatible chat app that answers each question with a fixed reply and records the questions
    it was asked (so a test can tell a cached rerun from a generating one)."""
    from fastapi import FastAPI

    app = FastAPI()

    @app.post("/v1/chat/completions")
    async def chat(body: dict):
        question = body["messages"][-1]["content"]
        asked.append(question)
        return {"choices": [{"message": {"role": "assistant", "content": replies[question]}, "finish_reason": "stop"}],
                "usage": {"completion_tokens": len(replies[question])}}

    return app


def test_cached_answers_are_rescored_against_the_current_questions(tmp_path):
    """Edit the QA file after a run (an alias added, a gold answer corrected, a domain retagged): the rerun
    generates nothing, yet every score follows the file as it is now."""
    items = [QAItem(id="g", question="『風の谷』の制作会社は？", answer="スタジオジブリ"),
             QAItem(id="m", question="『夜明け』の監督は？", answer="山田太郎"),
             QAItem(id="k", question="『星の海』の原作者は？", answer="佐藤花子")]
    replies = {"『風の谷』の制作会社は？": "ジブリ", "『夜明け』の監督は？": "山田 次郎", "『星の海』の原作者は？": "佐藤花子"}
    asked = []
    with serve_app(canned_app(replies, asked)) as url:
        qa_file = tmp_path / "qa.jsonl"
        formats.write_qa_file(qa_file, items)
        cfg = load_config(QAEvalConfig, None, [f"output_dir={tmp_path / 'run'}", f"qa=[{qa_file}]", "backend=openai",
                                               f"base_url={url}/v1", "model=canned"])
        first = {r["id"]: r for r in formats.read_results(run_eval(cfg))}
        assert len(asked) == 3
        assert [first[i]["scores"]["exact_match"] for i in "gmk"] == [0, 0, 1]

        items[0].aliases = ["ジブリ"]  # the answer given is now an accepted one
        items[1].answer = "山田次郎"  # the gold answer corrected
        items[2].domain = "control"
        formats.write_qa_file(qa_file, items)
        again = {r["id"]: r for r in formats.read_results(run_eval(cfg))}
    assert len(asked) == 3  # nothing generated again
    assert formats.read_summary(cfg.output_dir)["run"]["answered"] == 0
    assert [again[i]["new_tokens"] for i in "gmk"] == [first[i]["new_tokens"] for i in "gmk"]
    assert [again[i]["final"] for i in "gmk"] == ["ジブリ", "山田 次郎", "佐藤花子"]
    assert again["g"]["scores"] == {"exact_match": 1, "gold_match": 0, "char_f1": 1.0, "contains": 1}
    assert again["g"]["aliases"] == ["ジブリ"]
    assert again["m"]["answer"] == "山田次郎" and again["m"]["scores"]["exact_match"] == 1
    assert again["k"]["domain"] == "control"
    summary = formats.read_summary(cfg.output_dir)
    assert summary["domains"]["anime"]["scores"]["exact_match"]["mean"] == 1.0 and "control" in summary["domains"]


def test_a_changed_local_model_directory_is_answered_again(tiny, tmp_path, monkeypatch):
    import torch

    from wikitune.evaluate import run as eval_run

    model, _, tok_dir = tiny
    model_dir = tmp_path / "model"
    model.save_pretrained(model_dir)
    cfg = config(tmp_path / "run", ["builtin:seed"], tok_dir, f"model={model_dir}", "generation.max_new_tokens=4")

    def answered():
        return formats.read_summary(run_eval(cfg))["run"]["answered"]

    assert answered() == 5
    assert answered() == 0
    changed, _ = load_model_and_tokenizer(str(model_dir), tokenizer=tok_dir)
    with torch.no_grad():
        changed.lm_head.weight.mul_(-1.0)  # other weights, same file size
    changed.save_pretrained(model_dir)
    assert answered() == 5

    # Weight files over WHOLE_HASH_BYTES count by size and mtime: rewritten (same bytes, new mtime) -> answered again
    monkeypatch.setattr(eval_run, "WHOLE_HASH_BYTES", 1024)
    assert answered() == 5 and answered() == 0
    weights = next(model_dir.glob("*.safetensors"))
    stat = weights.stat()
    os.utime(weights, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))
    assert answered() == 5


def test_a_changed_rag_corpus_is_answered_again(tiny, demo_corpus, demo_qa, tmp_path):
    import shutil

    _, _, tok_dir = tiny
    corpus = tmp_path / "corpus"
    shutil.copytree(demo_corpus, corpus)
    cfg = config(tmp_path / "rag", [f"{demo_qa / 'test.jsonl'}:3"], tok_dir, "mode=rag", f"corpus={corpus}", "generation.max_new_tokens=4")

    def answered():
        return formats.read_summary(run_eval(cfg))["run"]["answered"]

    assert answered() == 3 and answered() == 0
    articles = list(formats.iter_articles(corpus))
    articles[0]["text"] += "\n追記された一文。"
    formats.write_jsonl(corpus / formats.ARTICLES, articles)
    assert answered() == 3
