"""The OpenAI backend against a scripted OpenAI-compatible server on 127.0.0.1: every reply shape servers
really send is read into the same channels as an in-process completion, and a broken reply is one line
naming the URL and what was wrong."""

import json
import subprocess
import sys
from http.server import BaseHTTPRequestHandler

import pytest

from tests.loopback import LoopbackHTTPServer, send_body
from wikitune.config import load_config
from wikitune.errors import WikituneError
from wikitune.evaluate.run import QAEvalConfig, run_eval
from wikitune.formats import QAItem, read_results, read_summary, write_qa_file
from wikitune.gptoss.generate import GenerationSettings, OpenAIBackend
from wikitune.gptoss.harmony import parse_completion

ANALYSIS = "The user asks which class Rebecca Miyamoto teaches. It is 1-C."
# The seed report's symptom: the whole harmony completion inside `content`.
LEAKED = f"<|channel|>analysis<|message|>{ANALYSIS}<|end|><|start|>assistant<|channel|>final<|message|>1年C組<|return|>"


class ScriptedServer(LoopbackHTTPServer):
    """An HTTP server on a loopback port that answers each POST with `script(path, body)`:
    (status, body) where a dict/list body is sent as JSON and a str body as it is (HTML, broken JSON)."""

    def __init__(self, script):
        self.script = script
        self.requests = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                outer.requests.append((self.path, body))
                status, reply = outer.script(self.path, body)
                data = (json.dumps(reply, ensure_ascii=False) if isinstance(reply, (dict, list)) else reply).encode("utf-8")
                send_body(self, status, data, "application/json" if isinstance(reply, (dict, list)) else "text/html")

            def log_message(self, *args):
                pass

        super().__init__(Handler)


def chat_reply(message, finish="stop"):
    return {"id": "c1", "object": "chat.completion", "model": "m",
            "choices": [{"index": 0, "finish_reason": finish, "message": {"role": "assistant", **message}}],
            "usage": {"prompt_tokens": 80, "completion_tokens": 21}}


def responses_reply(output, status="completed"):
    return {"id": "r1", "object": "response", "status": status, "output": output, "usage": {"input_tokens": 50, "output_tokens": 21}}


def ask(reply, api="chat", status=200):
    """One question through the real OpenAIBackend to a server that answers `reply`; returns (generation, server)."""
    with ScriptedServer(lambda path, body: (status, reply)) as server:
        backend = OpenAIBackend(server.url, "m", GenerationSettings(max_new_tokens=64), api=api, api_key="")
        [gen] = backend.chat([[{"role": "system", "content": "答えだけ。"}, {"role": "user", "content": "Q？"}]], reasoning_effort="low")
    return gen, server


CHAT_SHAPES = {
    # name: (message, finish_reason, final, analysis, flags)
    "leaked whole completion in content": ({"content": LEAKED}, "stop", "1年C組", ANALYSIS, ["leaked_harmony"]),
    "leaked, final ended by <|end|>": ({"content": LEAKED.replace("<|return|>", "<|end|>")}, "stop", "1年C組", ANALYSIS, ["leaked_harmony"]),
    "leaked, stop token cut off by the server": ({"content": LEAKED.removesuffix("<|return|>")}, "stop", "1年C組", ANALYSIS, ["leaked_harmony"]),
    "leaked, cut by the budget in the final": ({"content": LEAKED.removesuffix("<|return|>")}, "length", "1年C組", ANALYSIS,
                                               ["truncated", "leaked_harmony"]),
    "reasoning_content (vLLM)": ({"content": "1年C組", "reasoning_content": ANALYSIS}, "stop", "1年C組", ANALYSIS, []),
    "reasoning (other servers)": ({"content": "1年C組", "reasoning": ANALYSIS}, "stop", "1年C組", ANALYSIS, []),
    "plain content, no reasoning": ({"content": " 1年C組\n"}, "stop", "1年C組", None, []),
    "content as text parts": ({"content": [{"type": "text", "text": "1年"}, {"type": "text", "text": "C組"}]}, "stop", "1年C組", None, []),
    "content null, reasoning only, budget spent": ({"content": None, "reasoning_content": ANALYSIS}, "length", None, ANALYSIS,
                                                   ["truncated", "no_final"]),
    "content null, reasoning only, stopped": ({"content": None, "reasoning_content": ANALYSIS}, "stop", None, ANALYSIS, ["no_final"]),
    "nothing at all": ({"content": None}, "stop", None, None, ["empty", "no_final"]),
    "final body with its terminator leaked": ({"content": "1年C組<|return|>", "reasoning_content": ANALYSIS}, "stop", "1年C組", ANALYSIS,
                                              ["leaked_harmony"]),
    "final header leaked after separated reasoning": ({"content": "<|start|>assistant<|channel|>final<|message|>1年C組",
                                                       "reasoning_content": ANALYSIS}, "stop", "1年C組", ANALYSIS, ["leaked_harmony"]),
    "special tokens stripped, headers left": ({"content": f"analysis{ANALYSIS}assistantfinal1年C組"}, "stop", "1年C組", ANALYSIS,
                                              ["special_tokens_stripped", "leaked_harmony"]),
}


@pytest.mark.parametrize("name", list(CHAT_SHAPES))
def test_chat_reply_shapes(name):
    message, finish, final, analysis, flags = CHAT_SHAPES[name]
    gen, server = ask(chat_reply(message, finish))
    parsed = gen.parse()
    assert (parsed.final, parsed.analysis, parsed.flags) == (final, analysis, flags)
    assert gen.final_text() == final
    # raw keeps exactly what the server sent: the content (text parts joined), the reasoning field beside it
    content = message["content"]
    assert gen.raw == ("".join(p["text"] for p in content) if isinstance(content, list) else content or "")
    assert gen.reasoning == (message.get("reasoning_content") or message.get("reasoning"))
    assert gen.stop_reason == ("length" if finish == "length" else "stop") and gen.new_tokens == 21
    [(path, body)] = server.requests
    assert path == "/v1/chat/completions" and body["model"] == "m" and body["max_tokens"] == 64 and body["reasoning_effort"] == "low"
    assert body["messages"][-1] == {"role": "user", "content": "Q？"}


def test_a_leaked_completion_parses_as_the_in_process_one():
    """The same completion text, generated in process or leaked by a server, gives the same channels."""
    gen, _ = ask(chat_reply({"content": LEAKED}))
    mine = parse_completion(LEAKED, stop_reason="stop")
    theirs = gen.parse()
    assert (theirs.final, theirs.analysis, theirs.commentary) == (mine.final, mine.analysis, mine.commentary)
    assert theirs.flags == mine.flags + ["leaked_harmony"]


RESPONSES_SHAPES = {
    "reasoning text and output_text": (
        [{"type": "reasoning", "summary": [], "content": [{"type": "reasoning_text", "text": ANALYSIS}]},
         {"type": "message", "role": "assistant", "content": [{"type": "output_text", "text": "1年C組", "annotations": []}]}],
        "completed", "1年C組", ANALYSIS, []),
    "reasoning summary only": (
        [{"type": "reasoning", "summary": [{"type": "summary_text", "text": "Class 1-C."}]},
         {"type": "message", "content": [{"type": "output_text", "text": "1年C組"}]}],
        "completed", "1年C組", "Class 1-C.", []),
    "leaked harmony in output_text": (
        [{"type": "message", "content": [{"type": "output_text", "text": LEAKED}]}], "completed", "1年C組", ANALYSIS, ["leaked_harmony"]),
    "incomplete, reasoning only": (
        [{"type": "reasoning", "content": [{"type": "reasoning_text", "text": ANALYSIS}]}], "incomplete", None, ANALYSIS,
        ["truncated", "no_final"]),
}


@pytest.mark.parametrize("name", list(RESPONSES_SHAPES))
def test_responses_reply_shapes(name):
    output, status, final, analysis, flags = RESPONSES_SHAPES[name]
    gen, server = ask(responses_reply(output, status), api="responses")
    parsed = gen.parse()
    assert (parsed.final, parsed.analysis, parsed.flags) == (final, analysis, flags)
    assert gen.raw == (final and output[-1]["content"][0]["text"] or "") and gen.new_tokens == 21
    [(path, body)] = server.requests
    assert path == "/v1/responses" and body["instructions"] == "答えだけ。" and body["reasoning"] == {"effort": "low"}
    assert body["input"] == [{"role": "user", "content": "Q？"}] and body["max_output_tokens"] == 64


BROKEN = {
    # name: (status, body, api, what the error must say)
    "invalid JSON": (200, '{"choices": [', "chat", "answered 200 with a body that is not JSON: '{\"choices\": ['"),
    "HTML page on 200": (200, "<html><head><title>Login required</title></head>\n<body>…</body></html>", "chat",
                         "answered 200 with a body that is not JSON: an HTML page titled 'Login required'"),
    "HTML error page": (502, "<html>\n<head><title>502 Bad Gateway</title></head>\n<body>nginx</body></html>", "chat",
                        "answered 502: an HTML page titled '502 Bad Gateway'"),
    "OpenAI error object": (404, {"error": {"message": "The model `m` does not exist.", "type": "NotFoundError"}}, "chat",
                            "answered 404: The model `m` does not exist."),
    "no choices": (200, {"id": "x", "object": "chat.completion"}, "chat", "answered 200 with no `choices`"),
    "empty choices": (200, {"choices": []}, "chat", "answered 200 with no `choices`"),
    "choices not a list": (200, {"choices": {"0": {}}}, "chat", "answered 200 with `choices` that is an object, not an array"),
    "choice without message": (200, {"choices": [{"index": 0, "text": "1年C組"}]}, "chat",
                               "answered 200 with `choices[0]` without a `message` object"),
    "content of the wrong type": (200, chat_reply({"content": 42}), "chat",
                                  "answered 200 with `choices[0].message.content` that is a number, not a string"),
    "usage of the wrong type": (200, {**chat_reply({"content": "x"}), "usage": {"completion_tokens": "many"}}, "chat",
                                "answered 200 with `usage.completion_tokens` 'many', not a number"),
    "a JSON list": (200, [1, 2], "chat", "answered 200 with JSON that is an array, not an object"),
    "JSON null": (200, "null", "chat", "answered 200 with JSON that is null, not an object"),
    "an error on 200": (200, {"error": {"message": "overloaded"}}, "chat", "answered 200 with an error: overloaded"),
    "responses without output": (200, {"status": "completed"}, "responses", "answered 200 with no `output` array"),
    "responses item not an object": (200, {"output": ["1年C組"]}, "responses", "answered 200 with `output[0]` that is a string, not an object"),
}


@pytest.mark.parametrize("name", list(BROKEN))
def test_a_broken_reply_is_one_line_naming_the_url(name):
    status, body, api, what = BROKEN[name]
    with pytest.raises(WikituneError) as err:
        ask(body, api=api, status=status)
    message = str(err.value)
    endpoint = "/v1/chat/completions" if api == "chat" else "/v1/responses"
    assert message.startswith("http://127.0.0.1:") and f"{endpoint} {what}" in message
    assert "\n" not in message


def test_an_unreachable_server_names_the_url():
    with ScriptedServer(lambda path, body: (200, {})) as server:
        url = server.url
    with pytest.raises(WikituneError, match=rf"cannot reach {url}/chat/completions"):
        OpenAIBackend(url, "m", GenerationSettings()).chat([[{"role": "user", "content": "Q？"}]])


def answers_by_question(path, body):
    """A server whose completion leaks harmony for one question and answers the other plainly."""
    question = body["messages"][-1]["content"]
    return 200, chat_reply({"content": LEAKED} if "レベッカ" in question else {"content": "ヅラ", "reasoning_content": "Zura."})


@pytest.fixture
def qa_file(tmp_path):
    path = tmp_path / "qa.jsonl"
    write_qa_file(path, [QAItem(id="paniponi", question="ぱにぽにだっしゅ！で、レベッカ宮本が担任しているクラスは？", answer="1年C組"),
                         QAItem(id="katsura", question="銀魂で、桂小太郎のあだ名は？", answer="ヅラ")])
    return path


def test_eval_scores_a_leaked_harmony_answer(qa_file, tmp_path):
    """The seed report's symptom end to end: `run_eval` against a server that leaks harmony scores 1年C組 as 1年C組."""
    with ScriptedServer(answers_by_question) as server:
        cfg = load_config(QAEvalConfig, None, [f"output_dir={tmp_path / 'run'}", f"qa={json.dumps([str(qa_file)])}", "backend=openai",
                                               f"base_url={server.url}", "model=m", "concurrency=2"])
        run = run_eval(cfg)
    rows = {r["id"]: r for r in read_results(run)}
    leaked = rows["paniponi"]
    assert leaked["final"] == "1年C組" and leaked["analysis"] == ANALYSIS and leaked["scores"]["exact_match"] == 1
    assert leaked["flags"] == ["leaked_harmony"] and leaked["raw"] == LEAKED and leaked["raw_reasoning"] is None
    plain = rows["katsura"]
    assert plain["final"] == "ヅラ" and plain["scores"]["exact_match"] == 1 and plain["flags"] == []
    assert plain["raw"] == "ヅラ" and plain["raw_reasoning"] == "Zura."
    summary = read_summary(run)
    assert summary["domains"]["anime"]["scores"]["exact_match"]["mean"] == 1.0
    assert summary["domains"]["anime"]["flags"]["leaked_harmony"] == 0.5


def wikitune(*args):
    return subprocess.run([sys.executable, "-m", "wikitune.cli", *args], capture_output=True, text=True)


def test_eval_cli_against_the_scripted_server(qa_file, tmp_path):
    """`wikitune eval --backend openai` as a user runs it: the leaked answer scores; a broken server is one line, exit 2."""
    with ScriptedServer(answers_by_question) as server:
        done = wikitune("eval", "--backend", "openai", "--base-url", server.url, "--model", "m", "--qa", str(qa_file),
                        "--out", str(tmp_path / "run"))
    assert done.returncode == 0, done.stderr
    assert "exact_match 1.000" in done.stdout and "leaked_harmony 0.50" in done.stdout
    with ScriptedServer(lambda path, body: (200, {"choices": [{"index": 0}]})) as server:
        broken = wikitune("eval", "--backend", "openai", "--base-url", server.url, "--model", "m", "--qa", str(qa_file),
                          "--out", str(tmp_path / "broken"))
    assert broken.returncode == 2
    assert broken.stderr == f"error: {server.url}/chat/completions answered 200 with `choices[0]` without a `message` object\n"
