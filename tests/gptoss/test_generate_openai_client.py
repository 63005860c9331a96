"""OpenAIBackend's HTTP client against a real keep-alive HTTP/1.1 server on 127.0.0.1: one client per
backend, so requests reuse one TCP connection (counted where the server accepts them), from one
thread or several; `close()` ends the connection; a failed request is a `ServerError` with its status."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler

import httpx
import pytest

from tests.loopback import LoopbackHTTPServer, send_body
from wikitune.errors import WikituneError
from wikitune.gptoss.generate import GenerationSettings, OpenAIBackend, ServerError


class KeepAliveServer(LoopbackHTTPServer):
    """Answers each chat request with `A:<question>` (or `status` with an OpenAI error body) over
    HTTP/1.1 connections it keeps open; counts the connections it accepts and those that ended."""

    def __init__(self, status: int = 200, body: str | None = None):
        self.accepted = 0
        self.ended = threading.Semaphore(0)
        self.seeds: list[int | None] = []
        lock = threading.Lock()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # keep-alive: the connection stays open between requests

            def setup(self):  # once per accepted connection
                super().setup()
                with lock:
                    outer.accepted += 1

            def finish(self):  # the client closed the connection
                super().finish()
                outer.ended.release()

            def do_POST(self):
                request = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                with lock:
                    outer.seeds.append(request.get("seed"))
                if status == 200 and body is None:
                    reply = {"choices": [{"finish_reason": "stop", "message": {
                        "role": "assistant", "content": "A:" + request["messages"][-1]["content"]}}],
                        "usage": {"completion_tokens": 3}}
                    data = json.dumps(reply, ensure_ascii=False).encode("utf-8")
                else:
                    data = (body if body is not None else json.dumps({"error": {"message": f"scripted {status}"}})).encode("utf-8")
                send_body(self, status, data)

            def log_message(self, *args):
                pass

        super().__init__(Handler)


def ask(text: str) -> list[dict]:
    return [{"role": "user", "content": text}]


def answers(generations) -> list[str]:
    return [g.raw for g in generations]


def test_requests_of_one_backend_share_one_connection():
    with KeepAliveServer() as server:
        with OpenAIBackend(server.url, "m", GenerationSettings(seed=5), concurrency=1, api_key="") as backend:
            got = [answers(backend.chat([ask(f"q{i}")])) for i in range(3)]
            got.append(answers(backend.chat([ask("q3"), ask("q4"), ask("q5")])))
        assert got == [["A:q0"], ["A:q1"], ["A:q2"], ["A:q3", "A:q4", "A:q5"]]
        assert server.accepted == 1  # six requests, one TCP connection
        assert server.ended.acquire(timeout=30)  # leaving the block closed it


def test_concurrent_requests_keep_their_order_and_reuse_connections():
    with KeepAliveServer() as server:
        with OpenAIBackend(server.url, "m", GenerationSettings(), concurrency=3, api_key="") as backend:
            questions = [f"q{i}" for i in range(12)]
            first = answers(backend.chat([ask(q) for q in questions]))
            second = answers(backend.chat([ask(q) for q in questions]))
        assert first == second == [f"A:{q}" for q in questions]
        assert 1 <= server.accepted <= 3  # at most one connection per request in flight, kept for the second call


def test_one_backend_serves_several_threads():
    """As `augment` uses it: each thread sends its own requests through the one shared backend."""
    results: dict[int, list[str]] = {}
    errors: list[BaseException] = []

    def worker(backend, n):
        try:
            results[n] = [answers(backend.chat([ask(f"t{n}-{i}")], seed=n))[0] for i in range(5)]
        except BaseException as err:  # noqa: BLE001 - reported by the assertion below
            errors.append(err)

    with KeepAliveServer() as server:
        with OpenAIBackend(server.url, "m", GenerationSettings(seed=99), concurrency=1, api_key="") as backend:
            threads = [threading.Thread(target=worker, args=(backend, n)) for n in range(4)]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
        assert not errors
        assert results == {n: [f"A:t{n}-{i}" for i in range(5)] for n in range(4)}
        assert 1 <= server.accepted <= 4  # 20 requests over at most one connection per thread
        assert sorted(server.seeds) == sorted(n for n in range(4) for _ in range(5))  # `seed=` overrides settings.seed


def test_a_closed_backend_opens_a_fresh_client_when_used_again():
    with KeepAliveServer() as server:
        backend = OpenAIBackend(server.url, "m", GenerationSettings(), concurrency=1, api_key="")
        assert answers(backend.chat([ask("a")])) == ["A:a"]
        backend.close()
        assert server.ended.acquire(timeout=30)
        backend.close()  # idempotent
        assert answers(backend.chat([ask("b")])) == ["A:b"]
        backend.close()
        assert server.accepted == 2


@pytest.mark.parametrize("status", [400, 429, 500, 503])
def test_an_error_reply_carries_its_status(status):
    with KeepAliveServer(status=status) as server, OpenAIBackend(server.url, "m", GenerationSettings(), api_key="") as backend:
        with pytest.raises(ServerError) as err:
            backend.chat([ask("q")])
    assert err.value.status == status and isinstance(err.value, WikituneError)
    assert str(err.value) == f"{server.url}/chat/completions answered {status}: scripted {status}"


def test_a_reply_of_the_wrong_shape_is_status_200():
    with KeepAliveServer(body='{"choices": []}') as server, OpenAIBackend(server.url, "m", GenerationSettings(), api_key="") as backend:
        with pytest.raises(ServerError, match="answered 200 with") as err:
            backend.chat([ask("q")])
    assert err.value.status == 200


def test_no_answer_has_no_status_and_keeps_the_transport_error():
    with KeepAliveServer() as server:
        url = server.url
    with OpenAIBackend(url, "m", GenerationSettings(), api_key="") as backend, pytest.raises(ServerError, match="cannot reach") as err:
        backend.chat([ask("q")])
    assert err.value.status is None and isinstance(err.value.__cause__, httpx.TransportError)
