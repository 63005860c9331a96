"""A scripted OpenAI-compatible chat server on 127.0.0.1 for the LLM methods of `wikitune augment`.

    with ScriptedLLM(corpus_records, script) as server:      # server.url = http://127.0.0.1:PORT/v1
        run_augment(AugmentConfig(..., base_url=server.url, model="m"))
    server.bodies                                            # every request body, in arrival order

`script(request)` returns an `Answer`: the status, the reply body and a delay before it is sent.
`Request` says what was asked, read from the body as a user of the prompts would: the article
(`記事名：` line), the prompt file (matched on its opening words), the entities of an entigraph
request and how many times this very request (same messages and seed) came before.
"""

from __future__ import annotations

import json
import re
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from typing import Any, Callable

from tests.loopback import LoopbackHTTPServer, send_body
from wikitune.augment.llm import PromptSet
from wikitune.text.ja import document_sentences

_TITLE = re.compile(r"^記事名：(.+)$", re.M)
_QUOTED = re.compile(r"「([^「」]+)」")


def prompt_openings() -> dict[str, str]:
    """Opening words of every prompt file (the text before its first slot) -> the file's name."""
    openings = {}
    for method in ("rephrase", "entigraph", "qa"):
        for prompt in PromptSet.load(method).prompts:
            openings[prompt.text.split("{{", 1)[0].split("\n", 1)[0]] = prompt.name
    return openings


@dataclass
class Request:
    body: dict
    title: str
    prompt: str
    record: dict
    seen: int
    """How many identical requests (same messages and seed) came before this one."""

    @property
    def content(self) -> str:
        return self.body["messages"][-1]["content"]

    def entities(self) -> list[str]:
        return _QUOTED.findall(self.content.split("\n", 1)[0])

    def sentences(self) -> list[str]:
        return document_sentences(self.record["text"])


@dataclass
class Answer:
    status: int = 200
    body: Any = None
    delay: float = 0.0


def chat(content: str | None, reasoning: str | None = None, tokens: int = 10) -> dict:
    """A chat-completions reply body."""
    message: dict[str, Any] = {"role": "assistant", "content": content}
    if reasoning is not None:
        message["reasoning_content"] = reasoning
    return {"id": "c", "object": "chat.completion", "model": "m",
            "choices": [{"index": 0, "finish_reason": "stop", "message": message}],
            "usage": {"prompt_tokens": 100, "completion_tokens": tokens}}


@dataclass
class ScriptedLLM(LoopbackHTTPServer):
    records: list[dict]
    script: Callable[[Request], Answer]
    bodies: list[dict] = field(default_factory=list)

    def __post_init__(self) -> None:
        outer = self
        by_title = {r["title"]: r for r in self.records}
        openings = prompt_openings()
        lock = threading.Lock()
        counts: dict[str, int] = {}

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                identity = json.dumps([body["messages"], body.get("seed")], ensure_ascii=False)
                with lock:
                    outer.bodies.append(body)
                    seen = counts.get(identity, 0)
                    counts[identity] = seen + 1
                content = body["messages"][-1]["content"]
                title = _TITLE.search(content).group(1).strip()
                prompt = max((o for o in openings if content.startswith(o)), key=len)
                request = Request(body, title, openings[prompt], by_title[title], seen)
                if request.prompt.startswith("entigraph-") and request.entities():  # pair and triple open alike
                    request.prompt = "entigraph-2-pair" if len(request.entities()) == 2 else "entigraph-3-triple"
                answer = outer.script(request)
                time.sleep(answer.delay)
                data = json.dumps(answer.body if answer.body is not None else {"error": {"message": "scripted"}},
                                  ensure_ascii=False).encode("utf-8")
                try:
                    send_body(self, answer.status, data)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client timed out and left

            def log_message(self, *args):
                pass

        LoopbackHTTPServer.__init__(self, Handler)
