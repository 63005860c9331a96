"""`wikitune serve`: a small OpenAI-compatible chat server for a model (+ adapter), on loopback.

    wikitune serve --model tiny-gpt-oss --tokenizer runs/cpt/tokenizer --adapter runs/cpt --port 8000
    curl http://127.0.0.1:8000/v1/chat/completions -H 'content-type: application/json' \\
        -d '{"model": "wikitune", "messages": [{"role": "user", "content": "銀魂で、桂小太郎のあだ名は？"}]}'

Endpoints: `GET /health`, `GET /v1/models`, `POST /v1/chat/completions`, `POST /v1/responses` (no
streaming). The conversation is rendered in harmony (`render_conversation`), generated with the
in-process backend (greedy unless `temperature` > 0, the loop guard on), and answered as gpt-oss
servers do: `content` is the final channel, `reasoning_content` the analysis. Beyond the OpenAI
fields, the message carries `raw` (the completion with its special tokens) and the response a
`wikitune` object with the stop reason and the tokens the loop guard saved, so `wikitune eval
--backend openai` keeps everything.

A request is checked before the model sees it, and a bad one is answered in OpenAI's error shape
`{"error": {"message", "type", "param", "code"}}`: a body over `max_body_bytes` is 413 (read no
further); a body that is not a JSON object, a wrong-typed field or a prompt that does not fit the
model's context is 400. One request generates at a time (a worker thread holds the model's lock;
the others queue), while the event loop keeps answering health checks, model lists and rejections;
this is a tool to try a tuned model, not vLLM.
"""

# No `from __future__ import annotations`: FastAPI reads the endpoints' `Request` annotation at run
# time, and fastapi is imported inside create_app, so a string annotation could not be resolved.
import asyncio
import json
import logging
import threading
import time
import uuid
from dataclasses import dataclass, replace
from typing import Any, Callable

from wikitune.errors import WikituneError
from wikitune.formats import json_kind
from wikitune.gptoss.generate import GenerationSettings, HFBackend
from wikitune.gptoss.harmony import PromptSettings, parse_completion, render_conversation
from wikitune.gptoss.model import load_model_and_tokenizer

log = logging.getLogger(__name__)

DEFAULT_MAX_BODY_BYTES = 1 << 20
"""1 MiB of JSON: about the size of a conversation that fills gpt-oss's 131,072-token context
(`--max-body-bytes` raises it); a bigger body is refused before it is read, let alone tokenised."""
ROLES = ("system", "developer", "user", "assistant")
TEXT_PARTS = ("text", "input_text", "output_text")  # chat API and Responses API names of a text part


class RequestError(Exception):
    """A request the server refuses, answered as an OpenAI error object (never a traceback)."""

    def __init__(self, message: str, *, param: str | None = None, status: int = 400, code: str | None = None) -> None:
        super().__init__(message)
        self.message, self.param, self.status, self.code = message, param, status, code

    def body(self) -> dict:
        kind = "invalid_request_error" if self.status < 500 else "server_error"
        return {"error": {"message": self.message, "type": kind, "param": self.param, "code": self.code}}


# ---- reading a request ---------------------------------------------------------------------------


def _reject_constant(name: str) -> float:
    raise ValueError(f"{name} is not JSON")


def parse_body(raw: bytes) -> dict:
    """The JSON object of a request body.

    Raises:
        RequestError: not JSON (NaN and Infinity included: they are not JSON either), or not an object.
    """
    try:
        body = json.loads(raw, parse_constant=_reject_constant)
    except (ValueError, RecursionError) as err:  # UnicodeDecodeError is a ValueError
        raise RequestError(f"the request body is not JSON: {str(err)[:200]}") from err
    if not isinstance(body, dict):
        raise RequestError(f"the request body must be a JSON object, got {json_kind(body)}")
    return body


def _optional_int(body: dict, name: str, minimum: int) -> int | None:
    value = body.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise RequestError(f"{name} must be an integer >= {minimum}, got {json_kind(value)}", param=name)
    return value


def _optional_number(body: dict, name: str, low: float, high: float) -> float | None:
    value = body.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not low <= value <= high:
        raise RequestError(f"{name} must be a number in [{low}, {high}], got {json_kind(value)}", param=name)
    return float(value)


def check_messages(messages: Any, param: str) -> list[dict]:
    """The conversation of a request, every message checked before anything is rendered.

    Raises:
        RequestError: not a non-empty list of {"role": ..., "content": text or text parts}.
    """
    if not isinstance(messages, list) or not messages:
        raise RequestError(f"{param} must be a non-empty list of messages, got {json_kind(messages)}", param=param)
    for i, message in enumerate(messages):
        where = f"{param}[{i}]"
        if not isinstance(message, dict):
            raise RequestError(f'{where} must be an object like {{"role": "user", "content": "..."}}, got {json_kind(message)}',
                               param=where)
        role = message.get("role")
        if role not in ROLES:
            raise RequestError(f"{where}: unsupported message role {json.dumps(role)[:50]}: use {', '.join(ROLES)}",
                               param=f"{where}.role")
        content = message.get("content")
        if content is None or isinstance(content, str):
            continue
        if not isinstance(content, list):
            raise RequestError(f"{where}.content must be a string or a list of text parts, got {json_kind(content)}",
                               param=f"{where}.content")
        for j, part in enumerate(content):
            if not (isinstance(part, dict) and part.get("type") in TEXT_PARTS and isinstance(part.get("text"), str)):
                raise RequestError(f'{where}.content[{j}] must be a text part {{"type": "text", "text": "..."}}: '
                                   "wikitune serve takes text only", param=f"{where}.content[{j}]")
    return messages


@dataclass
class Ask:
    """What a request asks for, checked, with the names its fields have in that API (for error params)."""

    messages: list[dict]
    messages_param: str
    budget: int | None
    budget_param: str
    effort: Any
    effort_param: str


def chat_request(body: dict) -> Ask:
    """The checked request of /v1/chat/completions."""
    messages = check_messages(body.get("messages"), "messages")
    budget = "max_completion_tokens" if body.get("max_completion_tokens") is not None else "max_tokens"
    return Ask(messages, "messages", _optional_int(body, budget, 1), budget, body.get("reasoning_effort"), "reasoning_effort")


def responses_request(body: dict) -> Ask:
    """The checked request of /v1/responses (`input` a string or messages, `instructions` the developer's)."""
    given = body.get("input")
    messages = check_messages([{"role": "user", "content": given}] if isinstance(given, str) else given, "input")
    instructions = body.get("instructions")
    if instructions is not None and not isinstance(instructions, str):
        raise RequestError(f"instructions must be a string, got {json_kind(instructions)}", param="instructions")
    if instructions:
        messages = [{"role": "developer", "content": instructions}, *messages]
    reasoning = body.get("reasoning")
    if reasoning is not None and not isinstance(reasoning, dict):
        raise RequestError(f'reasoning must be an object like {{"effort": "low"}}, got {json_kind(reasoning)}', param="reasoning")
    return Ask(messages, "input", _optional_int(body, "max_output_tokens", 1), "max_output_tokens",
               (reasoning or {}).get("effort"), "reasoning.effort")


# ---- fitting the model's context -----------------------------------------------------------------


def _token_counter(tokenizer: Any) -> Callable[[str], int]:
    """Counts a prompt's tokens as the backend will, safely from any thread.

    A fast tokenizer's Rust object refuses concurrent use while another thread changes its padding
    ("Already borrowed"), which the generating thread does; so validation counts with its own copy.
    """
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is None:  # a slow (pure Python) tokenizer has no shared Rust state
        return lambda text: len(tokenizer(text, add_special_tokens=False)["input_ids"])
    from tokenizers import Tokenizer

    own = Tokenizer.from_str(backend.to_str())
    own.no_padding()
    own.no_truncation()
    return lambda text: len(own.encode(text, add_special_tokens=False).ids)


def _longest_token_bytes(tokenizer: Any) -> int:
    """The most UTF-8 bytes of text one token covers (its string form is never shorter than that text;
    byte-level vocabularies spell one byte per character), so a text of B bytes has >= B / this tokens."""
    tokens = tokenizer.convert_ids_to_tokens(list(range(len(tokenizer))))
    return max((len(t.encode("utf-8")) for t in tokens if t), default=1)


def model_context(model: Any, tokenizer: Any) -> int:
    """The most tokens (prompt + reply) the model attends to."""
    sizes = [getattr(getattr(model, "config", None), "max_position_embeddings", None),
             getattr(tokenizer, "model_max_length", None)]
    sizes = [s for s in sizes if isinstance(s, int) and 0 < s < 10**9]  # transformers' "no limit" is 1e30
    if not sizes:
        raise WikituneError("cannot tell the model's context length: give serve a context_length")
    return min(sizes)


class ContextBudget:
    """Fits a prompt and its reply into the model's context, tokenising nothing that surely cannot fit."""

    def __init__(self, tokenizer: Any, context: int, default_new_tokens: int) -> None:
        self.context = context
        self.default_new_tokens = default_new_tokens
        self.count = _token_counter(tokenizer)
        self.longest = _longest_token_bytes(tokenizer)

    def fit(self, text: str, asked: int | None, param: str, messages_param: str = "messages") -> tuple[int, int]:
        """(prompt tokens, reply budget) of a rendered prompt.

        Without a budget from the client, the server's default is capped to what the context leaves
        (the reply may end "length", as any reply may). A budget the client asked for is never cut:
        an explicit max_tokens that cannot fit is a 400, as OpenAI and vLLM answer, because a
        silently shorter reply would look like the model's own choice to the client.

        Raises:
            RequestError: the prompt fills the context, or the asked budget does not fit beside it.
        """
        size = len(text.encode("utf-8"))
        at_least = -(-size // self.longest)
        if at_least >= self.context:  # refused from its size alone: a 1 MB prompt is never tokenised
            raise RequestError(f"the prompt is at least {at_least} tokens ({size} bytes) and the model's context is "
                               f"{self.context} tokens: shorten the messages", param=messages_param, code="context_length_exceeded")
        prompt_tokens = self.count(text)
        room = self.context - prompt_tokens
        if room < 1:
            raise RequestError(f"the prompt is {prompt_tokens} tokens and the model's context is {self.context} tokens, "
                               "leaving no room for a reply: shorten the messages", param=messages_param, code="context_length_exceeded")
        if asked is None:
            return prompt_tokens, min(self.default_new_tokens, room)
        if asked > room:
            raise RequestError(f"{param}={asked} does not fit: the prompt is {prompt_tokens} tokens and the model's context "
                               f"is {self.context} tokens, so at most {room} are left for the reply", param=param,
                               code="context_length_exceeded")
        return prompt_tokens, asked


# ---- the application -----------------------------------------------------------------------------


def create_app(model: Any, tokenizer: Any, *, model_name: str = "wikitune", settings: GenerationSettings | None = None,
               prompt: PromptSettings | None = None, max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
               context_length: int | None = None) -> Any:
    """The FastAPI application serving `model` (tests run it with uvicorn on 127.0.0.1).

    Args:
        model: a transformers causal LM (or PeftModel).
        tokenizer: its tokenizer, with the harmony special tokens.
        model_name (str): the id `/v1/models` lists.
        settings (GenerationSettings): defaults of a reply (max_new_tokens is the budget when a
            request names none).
        prompt (PromptSettings): defaults of the harmony prompt.
        max_body_bytes (int): larger request bodies are answered 413 unread.
        context_length (int): tokens of prompt + reply; default the model's `max_position_embeddings`.

    `app.state.model_lock` is the lock a generation holds.
    """
    from fastapi import FastAPI, Request
    from fastapi.responses import JSONResponse

    if max_body_bytes < 1:
        raise WikituneError(f"--max-body-bytes must be 1 or more, got {max_body_bytes}")
    settings = settings or GenerationSettings(batch_size=1)
    prompt = prompt or PromptSettings(developer=None)
    backend = HFBackend(model, tokenizer, settings)
    budget = ContextBudget(tokenizer, context_length or model_context(model, tokenizer), settings.max_new_tokens)
    lock = threading.Lock()
    app = FastAPI(title="wikitune serve")
    app.state.model_lock = lock

    @app.exception_handler(RequestError)
    async def refused(_request: Any, err: RequestError) -> Any:
        return JSONResponse(status_code=err.status, content=err.body())

    @app.exception_handler(Exception)
    async def failed(_request: Any, err: Exception) -> Any:
        # the traceback goes to the server's log; the client gets one line, and the server goes on
        log.exception("wikitune serve: a request failed")
        return JSONResponse(status_code=500, content=RequestError(f"internal error: {type(err).__name__}: {err}"[:500],
                                                                  status=500).body())

    @app.get("/health")
    async def health() -> dict:
        return {"status": "ok"}

    @app.get("/v1/models")
    async def models() -> dict:
        return {"object": "list", "data": [{"id": model_name, "object": "model", "owned_by": "wikitune"}]}

    async def read_body(request: Request) -> dict:
        """The request's JSON object, read only as far as `max_body_bytes` (the header may lie or be absent)."""
        declared = request.headers.get("content-length", "")
        too_big = RequestError(f"the request body is over {max_body_bytes} bytes (wikitune serve --max-body-bytes)",
                               status=413, code="request_too_large")
        if declared.isdigit() and int(declared) > max_body_bytes:
            raise too_big
        chunks, size = [], 0
        async for chunk in request.stream():
            size += len(chunk)
            if size > max_body_bytes:
                raise too_big
            chunks.append(chunk)
        return parse_body(b"".join(chunks))

    def generation_settings(body: dict) -> GenerationSettings:
        temperature = _optional_number(body, "temperature", 0.0, 2.0)
        top_p = _optional_number(body, "top_p", 0.0, 1.0)
        seed = _optional_int(body, "seed", 0)
        if body.get("n") not in (None, 1):
            raise RequestError("n must be 1: wikitune serve answers one choice per request", param="n")
        try:
            return replace(settings, batch_size=1,
                           temperature=settings.temperature if temperature is None else temperature,
                           top_p=settings.top_p if top_p is None else top_p, seed=settings.seed if seed is None else seed)
        except WikituneError as err:  # e.g. top_p 0, which GenerationSettings refuses
            raise RequestError(str(err), param="top_p") from err

    def run(text: str, gen_settings: GenerationSettings) -> Any:
        with lock:  # one generation at a time; the backend's settings are per request
            backend.settings = gen_settings
            return backend.generate([text])[0]

    async def answer(body: dict, ask: Ask) -> tuple[Any, Any, int]:
        """(generation, parsed completion, prompt tokens) of a checked request."""
        if body.get("stream"):
            raise RequestError("streaming is not supported by wikitune serve", param="stream")
        try:  # PromptSettings checks the effort (replace reruns its __post_init__)
            prompt_settings = replace(prompt, reasoning_effort=ask.effort or prompt.reasoning_effort)
        except WikituneError as err:
            raise RequestError(str(err), param=ask.effort_param) from err
        try:
            text = render_conversation(prompt_settings, ask.messages)
        except WikituneError as err:  # e.g. no user message
            raise RequestError(str(err), param=ask.messages_param) from err
        gen_settings = generation_settings(body)
        # counting tokens and generating run in worker threads: the event loop keeps serving meanwhile
        prompt_tokens, max_new_tokens = await asyncio.to_thread(budget.fit, text, ask.budget, ask.budget_param, ask.messages_param)
        generation = await asyncio.to_thread(run, text, replace(gen_settings, max_new_tokens=max_new_tokens))
        return generation, parse_completion(generation.raw, stop_reason=generation.stop_reason), prompt_tokens

    @app.post("/v1/chat/completions")
    async def chat(request: Request) -> Any:
        body = await read_body(request)
        generation, parsed, prompt_tokens = await answer(body, chat_request(body))
        return {
            "id": f"chatcmpl-{uuid.uuid4().hex}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": body.get("model") or model_name,
            "choices": [{
                "index": 0,
                "message": {"role": "assistant", "content": parsed.final, "reasoning_content": parsed.analysis,
                            "raw": generation.raw},
                "finish_reason": "stop" if generation.stop_reason == "stop" else "length",
            }],
            "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": generation.new_tokens,
                      "total_tokens": prompt_tokens + generation.new_tokens},
            "wikitune": {"stop_reason": generation.stop_reason, "tokens_saved": generation.tokens_saved, "flags": parsed.flags},
        }

    @app.post("/v1/responses")
    async def responses(request: Request) -> Any:
        body = await read_body(request)
        generation, parsed, prompt_tokens = await answer(body, responses_request(body))
        output = []
        if parsed.analysis is not None:
            output.append({"type": "reasoning", "id": f"rs_{uuid.uuid4().hex}", "summary": [],
                           "content": [{"type": "reasoning_text", "text": parsed.analysis}]})
        if parsed.final is not None:
            output.append({"type": "message", "id": f"msg_{uuid.uuid4().hex}", "role": "assistant", "status": "completed",
                           "content": [{"type": "output_text", "text": parsed.final, "annotations": []}]})
        complete_ = generation.stop_reason == "stop"
        return {
            "id": f"resp_{uuid.uuid4().hex}", "object": "response", "created_at": int(time.time()),
            "model": body.get("model") or model_name, "status": "completed" if complete_ else "incomplete",
            "incomplete_details": None if complete_ else {"reason": "max_output_tokens"},
            "output": output,
            "usage": {"input_tokens": prompt_tokens, "output_tokens": generation.new_tokens,
                      "total_tokens": prompt_tokens + generation.new_tokens},
            "wikitune": {"raw": generation.raw, "stop_reason": generation.stop_reason,
                         "tokens_saved": generation.tokens_saved, "flags": parsed.flags},
        }

    return app


def serve(model: str | None, *, tokenizer: str | None = None, adapter: str | None = None, port: int = 8000,
          host: str = "127.0.0.1", max_new_tokens: int = 256, model_name: str | None = None,
          max_body_bytes: int = DEFAULT_MAX_BODY_BYTES) -> None:
    """Load the model and serve it until interrupted.

    Raises:
        WikituneError: a bad port or body limit (checked before the model loads), a model that cannot load.
    """
    import uvicorn

    if not 0 < port < 65536:
        raise WikituneError(f"--port must be in 1..65535, got {port}")
    if max_body_bytes < 1:
        raise WikituneError(f"--max-body-bytes must be 1 or more, got {max_body_bytes}")
    net, tok = load_model_and_tokenizer(model, tokenizer, adapter)
    app = create_app(net, tok, model_name=model_name or model or "wikitune", max_body_bytes=max_body_bytes,
                     settings=GenerationSettings(max_new_tokens=max_new_tokens, batch_size=1))
    uvicorn.run(app, host=host, port=port, log_level="warning")
