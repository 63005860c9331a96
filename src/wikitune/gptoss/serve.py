"""`wikitune serve`: a small OpenAI-compatible chat server for a model (+ adapter), on loopback.

    wikitune serve --model tiny-gpt-oss --tokenizer runs/cpt/tokenizer --adapter runs/cpt --port 8000
    curl http://127.0.0.1:8000/v1/chat/completions -H 'content-type: application/json' \\
        -d '{"model": "wikitune", "messages": [{"role": "user", "content": "銀魂で、桂小太郎のあだ名は？"}]}'

Endpoints: `GET /v1/models`, `POST /v1/chat/completions`, `POST /v1/responses` (no streaming). The conversation is
rendered in harmony (`render_conversation`), generated with the in-process backend (greedy unless
`temperature` > 0, the loop guard on), and answered as gpt-oss servers do: `content` is the final
channel, `reasoning_content` the analysis. Beyond the OpenAI fields, the message carries `raw`
(the completion with its special tokens) and the response a `wikitune` object with the stop
reason and the tokens the loop guard saved, so `wikitune eval --backend openai` keeps everything.
One request generates at a time (requests queue); this is a tool to try a tuned model, not vLLM.
"""

from __future__ import annotations

import asyncio
import threading
import time
import uuid
from dataclasses import replace
from typing import Any

from wikitune.errors import WikituneError
from wikitune.gptoss.generate import GenerationSettings, HFBackend
from wikitune.gptoss.harmony import PromptSettings, parse_completion, render_conversation
from wikitune.gptoss.model import load_model_and_tokenizer


def create_app(model: Any, tokenizer: Any, *, model_name: str = "wikitune", settings: GenerationSettings | None = None,
               prompt: PromptSettings | None = None) -> Any:
    """The FastAPI application serving `model` (tests run it with uvicorn on 127.0.0.1)."""
    from fastapi import FastAPI
    from fastapi.responses import JSONResponse

    settings = settings or GenerationSettings(batch_size=1)
    prompt = prompt or PromptSettings(developer=None)
    backend = HFBackend(model, tokenizer, settings)
    lock = threading.Lock()
    app = FastAPI(title="wikitune serve")

    def error(status: int, message: str) -> Any:
        return JSONResponse(status_code=status, content={"error": {"message": message, "type": "invalid_request_error"}})

    @app.get("/v1/models")
    def models() -> dict:
        return {"object": "list", "data": [{"id": model_name, "object": "model", "owned_by": "wikitune"}]}

    def prepare(messages: Any, body: dict, *, max_tokens: Any, effort: Any) -> Any:
        """(prompt text, generation settings) for one request, or an error response."""
        if not isinstance(messages, list) or not messages:
            return error(400, "messages (input) must be a non-empty list")
        try:
            # PromptSettings checks the effort (replace reruns its __post_init__): a bad one is a 400
            text = render_conversation(replace(prompt, reasoning_effort=effort or prompt.reasoning_effort), messages)
            gen_settings = replace(
                settings,
                max_new_tokens=int(max_tokens or settings.max_new_tokens),
                temperature=float(body["temperature"]) if body.get("temperature") is not None else settings.temperature,
                top_p=float(body["top_p"]) if body.get("top_p") is not None else settings.top_p,
                seed=int(body["seed"]) if body.get("seed") is not None else settings.seed,
                batch_size=1,
            )
        except (WikituneError, ValueError, TypeError, KeyError) as err:
            return error(400, str(err))
        return text, gen_settings

    def run(text: str, gen_settings: GenerationSettings) -> Any:
        with lock:  # one generation at a time; the backend's settings are per request
            backend.settings = gen_settings
            return backend.generate([text])[0]

    async def answer(messages: Any, body: dict, *, max_tokens: Any, effort: Any) -> Any:
        """(generation, parsed completion, prompt tokens) for one request, or an error response."""
        if body.get("stream"):
            return error(400, "streaming is not supported by wikitune serve")
        prepared = prepare(messages, body, max_tokens=max_tokens, effort=effort)
        if not isinstance(prepared, tuple):
            return prepared
        text, gen_settings = prepared
        generation = await asyncio.to_thread(run, text, gen_settings)
        parsed = parse_completion(generation.raw, stop_reason=generation.stop_reason)
        return generation, parsed, len(tokenizer(text, add_special_tokens=False)["input_ids"])

    @app.post("/v1/chat/completions")
    async def chat(body: dict) -> Any:
        answered = await answer(body.get("messages"), body, max_tokens=body.get("max_completion_tokens") or body.get("max_tokens"),
                                effort=body.get("reasoning_effort"))
        if not isinstance(answered, tuple):
            return answered
        generation, parsed, prompt_tokens = answered
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
    async def responses(body: dict) -> Any:
        given = body.get("input")
        messages = [{"role": "user", "content": given}] if isinstance(given, str) else given
        if body.get("instructions") and isinstance(messages, list):
            messages = [{"role": "developer", "content": body["instructions"]}, *messages]
        answered = await answer(messages, body, max_tokens=body.get("max_output_tokens"),
                                effort=(body.get("reasoning") or {}).get("effort"))
        if not isinstance(answered, tuple):
            return answered
        generation, parsed, prompt_tokens = answered
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
          host: str = "127.0.0.1", max_new_tokens: int = 256, model_name: str | None = None) -> None:
    """Load the model and serve it until interrupted."""
    import uvicorn

    if not 0 < port < 65536:
        raise WikituneError(f"--port must be in 1..65535, got {port}")
    net, tok = load_model_and_tokenizer(model, tokenizer, adapter)
    app = create_app(net, tok, model_name=model_name or model or "wikitune",
                     settings=GenerationSettings(max_new_tokens=max_new_tokens, batch_size=1))
    uvicorn.run(app, host=host, port=port, log_level="warning")
