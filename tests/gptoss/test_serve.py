"""`wikitune serve` under big, odd and concurrent requests, through a real uvicorn server on 127.0.0.1:
a bad request is a 400/413 in OpenAI's error shape, prompt + reply fit the model's context, and
the server goes on answering everyone else."""

import json
import subprocess
import sys
import threading

import httpx
import pytest

from tests.loopback import serve_app
from wikitune.gptoss.harmony import PromptSettings, render_conversation
from wikitune.gptoss.model import load_model_and_tokenizer, train_bpe_tokenizer
from wikitune.gptoss.serve import create_app

CONTEXT = 4096  # the tiny gpt-oss's max_position_embeddings
LIMIT = 1 << 20  # the default --max-body-bytes


@pytest.fixture(scope="module")
def tiny(demo_corpus, tmp_path_factory):
    texts = [json.loads(line)["text"] for line in (demo_corpus / "articles.jsonl").read_text(encoding="utf-8").splitlines()]
    tok_dir = tmp_path_factory.mktemp("tok")
    train_bpe_tokenizer(texts, 2000, tok_dir)
    model, tokenizer = load_model_and_tokenizer("tiny-gpt-oss", tokenizer=tok_dir)
    return model, tokenizer, "".join(texts)


@pytest.fixture(scope="module")
def app(tiny):
    model, tokenizer, _ = tiny
    return create_app(model, tokenizer, model_name="tiny")


@pytest.fixture(scope="module")
def url(app):
    with serve_app(app) as base:
        yield base


def ask(url, content="銀魂で、桂小太郎のあだ名は？", **fields):
    return httpx.post(f"{url}/v1/chat/completions", timeout=120,
                      json={"model": "tiny", "messages": [{"role": "user", "content": content}], **fields})


def refused(reply, status, param):
    """The reply is OpenAI's error object with this status and param; returns its message."""
    assert reply.status_code == status, reply.text
    error = reply.json()["error"]
    assert set(error) == {"message", "type", "param", "code"} and error["type"] == "invalid_request_error"
    assert error["param"] == param and "Traceback" not in error["message"]
    return error["message"]


def prompt_tokens(tiny, content):
    """Tokens of the prompt the server renders for one user message, as the reply's usage counts them."""
    _, tokenizer, _ = tiny
    text = render_conversation(PromptSettings(developer=None), [{"role": "user", "content": content}])
    return len(tokenizer(text, add_special_tokens=False)["input_ids"])


def test_a_1mb_message_is_refused_by_its_size_before_it_is_tokenised(url):
    message = refused(ask(url, "a" * 1_000_000), 400, "messages")
    # "at least": the bound from the byte count alone, so the megabyte never reached the tokenizer (nor the model)
    assert "the prompt is at least" in message and f"the model's context is {CONTEXT} tokens" in message
    assert ask(url, max_tokens=4).status_code == 200


def test_a_body_over_the_limit_is_413_unread(url):
    message = refused(ask(url, "b" * (LIMIT + 10)), 413, None)
    assert f"over {LIMIT} bytes" in message and "--max-body-bytes" in message

    def chunks():  # no content-length: the server counts what arrives
        body = json.dumps({"messages": [{"role": "user", "content": "c" * (LIMIT + 10)}]}).encode()
        for start in range(0, len(body), 1 << 16):
            yield body[start : start + (1 << 16)]

    reply = httpx.post(f"{url}/v1/chat/completions", content=chunks(), timeout=120)
    assert "content-length" not in reply.request.headers
    refused(reply, 413, None)
    assert ask(url, max_tokens=4).status_code == 200


def test_the_limit_is_configurable(tiny):
    model, tokenizer, _ = tiny
    with serve_app(create_app(model, tokenizer, max_body_bytes=200)) as base:
        refused(ask(base, "x" * 200), 413, None)
        assert ask(base, max_tokens=2).status_code == 200


def test_a_prompt_longer_than_the_context_names_both_numbers(tiny, url):
    _, _, text = tiny
    content = text[:9000]
    n = prompt_tokens(tiny, content)
    assert n > CONTEXT
    message = refused(ask(url, content), 400, "messages")  # counted exactly: small enough to tokenise
    assert f"the prompt is {n} tokens and the model's context is {CONTEXT} tokens" in message
    # the same through /v1/responses names its own field
    reply = httpx.post(f"{url}/v1/responses", json={"input": content}, timeout=120)
    assert refused(reply, 400, "input").startswith(f"the prompt is {n} tokens")


def test_prompt_plus_reply_is_capped_at_the_context(tiny, url):
    _, _, text = tiny
    content = text[:7000]
    while prompt_tokens(tiny, content) > CONTEXT - 5:  # a prompt leaving 1..5 tokens of room
        content = content[:-20]
    n = prompt_tokens(tiny, content)
    room = CONTEXT - n
    assert 1 <= room < 256  # the server's default budget (256) does not fit
    # a budget the client asked for is never cut: a 400 that says what is left
    message = refused(ask(url, content, max_tokens=room + 1), 400, "max_tokens")
    assert f"max_tokens={room + 1} does not fit" in message and f"at most {room} are left" in message
    refused(ask(url, content, max_completion_tokens=10**9), 400, "max_completion_tokens")
    # the server's own default is capped to the room left
    reply = ask(url, content)
    assert reply.status_code == 200, reply.text
    usage = reply.json()["usage"]
    assert usage["prompt_tokens"] == n and 0 < usage["completion_tokens"] <= room and usage["total_tokens"] <= CONTEXT
    ok = ask(url, content, max_tokens=room).json()["usage"]
    assert ok["total_tokens"] <= CONTEXT


@pytest.mark.parametrize("path, body, param, words", [
    ("chat/completions", {"messages": [1, 2]}, "messages[0]", "must be an object"),
    ("chat/completions", {"messages": "hello"}, "messages", "non-empty list"),
    ("chat/completions", {"messages": [{"role": "user", "content": 5}]}, "messages[0].content", "a string or a list"),
    ("chat/completions", {"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "x"}}]}]},
     "messages[0].content[0]", "text only"),
    ("chat/completions", {"messages": [{"role": ["user"], "content": "q"}]}, "messages[0].role", "unsupported message role"),
    ("chat/completions", {"messages": [{"role": "assistant", "content": "a"}]}, "messages", "no user message"),
    ("chat/completions", {"max_tokens": "10"}, "max_tokens", "integer >= 1"),
    ("chat/completions", {"max_tokens": 0}, "max_tokens", "integer >= 1"),
    ("chat/completions", {"max_tokens": True}, "max_tokens", "integer >= 1"),
    ("chat/completions", {"max_tokens": 1.5}, "max_tokens", "integer >= 1"),
    ("chat/completions", {"temperature": "hot"}, "temperature", "a number in"),
    ("chat/completions", {"temperature": 9}, "temperature", "a number in"),
    ("chat/completions", {"top_p": 0}, "top_p", "top_p"),
    ("chat/completions", {"seed": -1}, "seed", "integer >= 0"),
    ("chat/completions", {"n": 3}, "n", "n must be 1"),
    ("chat/completions", {"stream": True}, "stream", "streaming"),
    ("chat/completions", {"reasoning_effort": "extreme"}, "reasoning_effort", "reasoning_effort must be one of"),
    ("responses", {"input": "Q", "reasoning": "high"}, "reasoning", 'like {"effort": "low"}'),
    ("responses", {"input": "Q", "reasoning": {"effort": "extreme"}}, "reasoning.effort", "reasoning_effort must be one of"),
    ("responses", {"input": 42}, "input", "non-empty list"),
    ("responses", {"input": [{"type": "message", "role": "user", "content": [{"type": "input_text", "text": 7}]}]},
     "input[0].content[0]", "text part"),
    ("responses", {"input": "Q", "instructions": ["be brief"]}, "instructions", "must be a string"),
    ("responses", {"input": "Q", "max_output_tokens": -5}, "max_output_tokens", "integer >= 1"),
])
def test_malformed_fields_are_400_naming_the_field(url, path, body, param, words):
    if path == "chat/completions" and "messages" not in body:
        body = {"messages": [{"role": "user", "content": "Q"}], **body}
    message = refused(httpx.post(f"{url}/v1/{path}", json=body, timeout=60), 400, param)
    assert words in message


@pytest.mark.parametrize("raw, words", [
    (b"not json", "not JSON"),
    (b'[{"role": "user", "content": "q"}]', "must be a JSON object, got a list"),
    (b'{"messages": [{"role": "user", "content": "q"}], "temperature": NaN}', "NaN is not JSON"),
    (b'{"messages": "\xff\xfe"}', "not JSON"),
    (b"[" * 100_000 + b"]" * 100_000, "not JSON"),
])
def test_a_body_that_is_not_a_json_object_is_400(url, raw, words):
    reply = httpx.post(f"{url}/v1/chat/completions", content=raw, headers={"content-type": "application/json"}, timeout=60)
    assert words in refused(reply, 400, None)


def test_the_server_answers_others_while_a_generation_runs(tiny, app, url):
    """Hold the model's lock as a long generation would: the queued request waits, everything else is answered."""
    results = {}

    def good():
        results["reply"] = ask(url, max_tokens=4)

    with app.state.model_lock:
        waiting = threading.Thread(target=good)
        waiting.start()
        assert httpx.get(f"{url}/health", timeout=30).json() == {"status": "ok"}
        assert httpx.get(f"{url}/v1/models", timeout=30).json()["data"][0]["id"] == "tiny"
        refused(httpx.post(f"{url}/v1/chat/completions", json={"messages": [1, 2]}, timeout=30), 400, "messages[0]")
        refused(ask(url, tiny[2][:9000]), 400, "messages")  # counting tokens needs no model lock either
        assert waiting.is_alive() and "reply" not in results  # still queued behind the lock
    waiting.join(timeout=120)
    assert results["reply"].status_code == 200 and results["reply"].json()["usage"]["completion_tokens"] <= 4


def test_bad_and_good_requests_at_once(url):
    bodies = [{"messages": [1, 2]}, {"messages": [{"role": "user", "content": "Q"}], "max_tokens": 3}, {"input": "Q", "reasoning": "high"},
              {"messages": [{"role": "user", "content": "桂は？"}], "max_tokens": 3}]
    paths = ["chat/completions", "chat/completions", "responses", "chat/completions"]
    replies = [None] * len(bodies)

    def send(i):
        replies[i] = httpx.post(f"{url}/v1/{paths[i]}", json=bodies[i], timeout=120)

    threads = [threading.Thread(target=send, args=(i,)) for i in range(len(bodies))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=180)
    assert [r.status_code for r in replies] == [400, 200, 400, 200]
    assert all(r.json()["choices"][0]["message"]["role"] == "assistant" for r in replies[1::2])


def test_a_bad_body_limit_is_refused_before_the_model_loads():
    result = subprocess.run([sys.executable, "-m", "wikitune.cli", "serve", "--model", "tiny-gpt-oss", "--max-body-bytes", "0"],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 2 and result.stderr == "error: --max-body-bytes must be 1 or more, got 0\n"
