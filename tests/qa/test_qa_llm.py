"""The optional LLM question writer: replies parsed, proposals checked against the article, merged into the splits."""

import json

import pytest

from wikitune.errors import WikituneError
from wikitune.gptoss.generate import Generation
from wikitune.qa.build import QABuildConfig, run_qa_build
from wikitune.qa.llm import LLMQuestionSettings, check_proposal, generation_prompt, parse_proposals

ARTICLE = "『鉄騎兵ガルディオン』は、ミナモ動画制作による日本のテレビアニメ作品。監督は久遠寺誠一。全26話。"


def test_prompt_is_in_the_repo_and_filled():
    prompt = generation_prompt("鉄騎兵ガルディオン", ARTICLE * 100, 3, 200)
    assert "3問作ってください" in prompt and "記事のタイトル: 鉄騎兵ガルディオン" in prompt
    assert prompt.count("鉄騎兵ガルディオン") < 10  # the article was cut to 200 characters


def test_parse_replies_in_the_shapes_models_write():
    lines = '{"question": "『鉄騎兵ガルディオン』の監督は誰？", "answer": "久遠寺誠一"}\n{"question": "全何話？", "answer": "全26話"}'
    assert len(parse_proposals(lines)) == 2
    fenced = "```json\n[\n  {\"question\": \"制作会社は？\", \"answer\": \"ミナモ動画\"}\n]\n```"
    assert parse_proposals(fenced) == [{"question": "制作会社は？", "answer": "ミナモ動画"}]
    assert parse_proposals("申し訳ありませんが作れません。") == [] and parse_proposals(None) == []
    assert parse_proposals('{"question": "q"}') == []  # no answer


@pytest.mark.parametrize(
    "proposal, why",
    [
        ({"question": "『鉄騎兵ガルディオン』の監督は誰？", "answer": "久遠寺誠一"}, None),
        ({"question": "『鉄騎兵ガルディオン』の制作は？", "answer": "ミナモ動画"}, None),
        ({"question": "『鉄騎兵ガルディオン』の監督は誰？", "answer": "宮崎駿"}, "llm_answer_not_in_article"),  # hallucinated
        ({"question": "ミナモ動画の作品は？", "answer": "ミナモ動画"}, "llm_answer_in_question"),
        ({"question": "？", "answer": ""}, "llm_empty"),
        ({"question": "概要は？", "answer": ARTICLE}, "llm_answer_too_long"),
    ],
)
def test_checks(proposal, why):
    assert check_proposal(proposal, ARTICLE, 40) == why


class ScriptedLLM:
    """Replies like a question-writing model would: two good proposals, one hallucinated, per article."""

    def chat(self, conversations, reasoning_effort=None):
        out = []
        for conv in conversations:
            title = conv[0]["content"].split("記事のタイトル: ", 1)[1].split("\n", 1)[0]
            reply = "\n".join(json.dumps(p, ensure_ascii=False) for p in [
                {"question": f"「{title}」という記事の題名は何ですか？", "answer": title},  # answer in question
                {"question": f"{title}について、記事に出てくる架空の人物は？", "answer": "存在しない人物X"},
            ])
            out.append(Generation(raw=f"<|channel|>final<|message|>{reply}<|return|>", new_tokens=30, stop_reason="stop"))
        return out


def test_llm_questions_are_checked_and_rejections_counted(demo_corpus, demo_qa, tmp_path):
    llm = LLMQuestionSettings(base_url="http://127.0.0.1:1/v1", model="m", per_article=2)
    result = run_qa_build(QABuildConfig(corpus=demo_corpus, out=tmp_path / "qa", llm=llm), llm_backend=ScriptedLLM())
    skipped = result.manifest["skipped"]
    n = result.manifest["articles"]
    assert skipped["llm_answer_in_question"] + skipped["llm_answer_not_in_article"] == 2 * n
    assert skipped["llm_answer_not_in_article"] >= n  # every invented person, plus titles the text spells otherwise
    assert "llm" not in result.manifest["rules"]
    # rule-based facts are untouched
    assert (tmp_path / "qa" / "train.jsonl").read_bytes() == (demo_qa / "train.jsonl").read_bytes()


def test_good_llm_questions_join_the_splits(demo_corpus, tmp_path):
    class GoodLLM:
        def chat(self, conversations, reasoning_effort=None):
            out = []
            for conv in conversations:
                title = conv[0]["content"].split("記事のタイトル: ", 1)[1].split("\n", 1)[0]
                text = conv[0]["content"].split("記事:\n", 1)[1]
                answer = text[len(title) + 3 : len(title) + 9].strip() or "x"
                reply = json.dumps({"question": f"記事『{title}』の冒頭近くに出てくる語句は？", "answer": answer}, ensure_ascii=False)
                out.append(Generation(raw=f"<|channel|>final<|message|>{reply}<|return|>", new_tokens=9, stop_reason="stop"))
            return out

    llm = LLMQuestionSettings(base_url="http://127.0.0.1:1/v1", model="m", per_article=1)
    result = run_qa_build(QABuildConfig(corpus=demo_corpus, out=tmp_path / "qa", llm=llm), llm_backend=GoodLLM())
    assert result.manifest["rules"].get("llm", 0) > 20
    rows = [json.loads(line) for name in ("train", "test", "unseen") for line in (tmp_path / "qa" / f"{name}.jsonl").read_text().splitlines()]
    llm_rows = [r for r in rows if ":llm:" in r["id"]]
    assert llm_rows and any(r["id"].startswith("unseen:") for r in llm_rows)


def test_settings_need_a_server():
    with pytest.raises(WikituneError, match="--llm-base-url"):
        LLMQuestionSettings(base_url="", model="m")
