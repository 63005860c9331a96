"""Generation backends for `wikitune eval`: in-process transformers, or any OpenAI-compatible server.

    backend = HFBackend(model, tokenizer, GenerationSettings(max_new_tokens=256, batch_size=8))
    outs = backend.generate([render_prompt(settings, q) for q in questions])
    backend = OpenAIBackend("http://127.0.0.1:8000/v1", model="gpt-oss-20b", settings=...)
    outs = backend.chat([chat_messages(settings, q) for q in questions], reasoning_effort="low")

Both return `Generation`s: the raw completion, the number of new tokens and why it stopped
("stop", "length", "loop"). The HF backend batches left-padded prompts with the KV cache, stops a
sequence at `<|return|>`/`<|call|>` (the assistant's turn is over; `<|end|>` only closes the
analysis), and runs the loop guard, counting the tokens it saved. The OpenAI backend sends
concurrent requests (at most `concurrency` at once) to `/v1/chat/completions` or `/v1/responses`.
"""

from __future__ import annotations

import asyncio
import logging
import os
from dataclasses import dataclass
from typing import Any, Sequence

from wikitune.errors import WikituneError
from wikitune.gptoss.harmony import STOP_STRINGS, parse_completion, render_completion
from wikitune.gptoss.loopguard import LoopGuard

log = logging.getLogger(__name__)


@dataclass
class GenerationSettings:
    """How completions are generated."""

    max_new_tokens: int = 256
    """Token budget of one completion (analysis and final together)."""
    batch_size: int = 8
    """Prompts generated together (hf backend); left-padded."""
    temperature: float = 0.0
    """0 = greedy decoding; above 0 = sampling at this temperature."""
    top_p: float = 1.0
    """Nucleus sampling mass (when sampling)."""
    seed: int = 0
    """Seed of sampling (torch.manual_seed before each batch, so a resumed run samples the same)."""
    loop_guard: bool = True
    """Stop a sequence that repeats an n-gram cycle (flag loop_stopped)."""
    loop_min_span: int = 48
    """Loop guard: the cycle must cover at least this many tokens."""
    loop_min_repeats: int = 3
    """Loop guard: ... and be repeated this many times."""
    loop_max_period: int = 200
    """Loop guard: longest cycle looked for, in tokens."""

    def __post_init__(self) -> None:
        if self.max_new_tokens < 1:
            raise WikituneError(f"generation.max_new_tokens must be 1 or more, got {self.max_new_tokens}")
        if self.batch_size < 1:
            raise WikituneError(f"generation.batch_size must be 1 or more, got {self.batch_size}")
        if self.temperature < 0:
            raise WikituneError(f"generation.temperature must be 0 or more, got {self.temperature}")
        if not 0 < self.top_p <= 1:
            raise WikituneError(f"generation.top_p must be in (0, 1], got {self.top_p}")
        if self.loop_min_repeats < 2 or self.loop_max_period < 1 or self.loop_min_span < 2:
            raise WikituneError("generation.loop_min_repeats must be 2 or more, loop_max_period 1 or more, loop_min_span 2 or more")


@dataclass
class Generation:
    raw: str
    """The completion exactly as generated, special tokens included."""
    new_tokens: int
    stop_reason: str
    """stop | length | loop"""
    tokens_saved: int = 0
    """Tokens the loop guard did not generate (budget minus what was generated) when it stopped the sequence."""
    parsed: dict | None = None
    """Channels already separated by the server (openai backend without raw text)."""

    def final_text(self) -> str | None:
        """The final channel's text: the server's when it separated the channels, else parsed from `raw`."""
        if self.parsed is not None:
            return self.parsed.get("final")
        return parse_completion(self.raw, stop_reason=self.stop_reason).final


class HFBackend:
    """In-process generation with a transformers model (optionally a PeftModel)."""

    def __init__(self, model: Any, tokenizer: Any, settings: GenerationSettings) -> None:
        self.model = model
        self.tokenizer = tokenizer
        self.settings = settings
        self.stop_ids = []
        for token in STOP_STRINGS:
            tid = tokenizer.convert_tokens_to_ids(token)
            if tid is None or tid == tokenizer.unk_token_id:
                raise WikituneError(f"the tokenizer has no {token} token: harmony generation needs the harmony special tokens")
            self.stop_ids.append(int(tid))
        if tokenizer.pad_token_id is None:
            raise WikituneError("the tokenizer has no pad token: batched generation needs one")

    def generate(self, prompts: Sequence[str]) -> list[Generation]:
        """Completions of `prompts`, in order, `settings.batch_size` at a time."""
        out: list[Generation] = []
        for start in range(0, len(prompts), self.settings.batch_size):
            out.extend(self._batch(prompts[start : start + self.settings.batch_size]))
        return out

    def _batch(self, prompts: Sequence[str]) -> list[Generation]:
        import torch
        from transformers import StoppingCriteriaList

        s = self.settings
        tok = self.tokenizer
        enc = tok(list(prompts), add_special_tokens=False, padding=True, padding_side="left", return_tensors="pt")
        device = next(self.model.parameters()).device
        enc = {k: v.to(device) for k, v in enc.items()}
        prompt_len = enc["input_ids"].shape[1]
        guard = LoopGuard(prompt_len, len(prompts), stop_token_ids=self.stop_ids, min_span=s.loop_min_span,
                          min_repeats=s.loop_min_repeats, max_period=s.loop_max_period) if s.loop_guard else None
        kwargs: dict[str, Any] = dict(
            max_new_tokens=s.max_new_tokens, eos_token_id=self.stop_ids, pad_token_id=tok.pad_token_id,
            use_cache=True, do_sample=s.temperature > 0,
        )
        if s.temperature > 0:
            kwargs.update(temperature=s.temperature, top_p=s.top_p)
            torch.manual_seed(s.seed)
        else:  # the model's generation_config may carry sampling defaults; greedy means greedy
            kwargs.update(temperature=None, top_p=None, top_k=None)
        if guard is not None:
            kwargs["stopping_criteria"] = StoppingCriteriaList([guard.criterion()])
        with torch.inference_mode():
            sequences = self.model.generate(**enc, **kwargs)
        results = []
        for b, row in enumerate(sequences[:, prompt_len:].tolist()):
            stop_reason, length = "length", len(row)
            for i, token in enumerate(row):
                if token in self.stop_ids:
                    stop_reason, length = "stop", i + 1
                    break
            saved = 0
            if guard is not None and guard.stopped_at[b] is not None and stop_reason != "stop":
                stop_reason, length = "loop", guard.stopped_at[b]
                saved = s.max_new_tokens - length
            elif stop_reason == "length":
                length = min(length, s.max_new_tokens)
            raw = tok.decode(row[:length], skip_special_tokens=False, clean_up_tokenization_spaces=False)
            results.append(Generation(raw=raw, new_tokens=length, stop_reason=stop_reason, tokens_saved=saved))
        return results


class OpenAIBackend:
    """Concurrent requests to an OpenAI-compatible server (vLLM `vllm serve`, `wikitune serve`, ...).

    Args:
        base_url: the server's API root, e.g. `http://127.0.0.1:8000/v1`.
        model: the model name the server knows.
        settings: token budget and sampling.
        api: `chat` (/chat/completions) or `responses` (/responses).
        concurrency: requests in flight at most.
        api_key: bearer token (default: $OPENAI_API_KEY, else none).
        timeout: seconds per request.
    """

    def __init__(self, base_url: str, model: str, settings: GenerationSettings, *, api: str = "chat",
                 concurrency: int = 4, api_key: str | None = None, timeout: float = 600.0) -> None:
        if api not in ("chat", "responses"):
            raise WikituneError(f"api must be chat or responses, got {api!r}")
        if concurrency < 1:
            raise WikituneError(f"concurrency must be 1 or more, got {concurrency}")
        self.base_url = base_url.rstrip("/")
        self.model = model
        self.settings = settings
        self.api = api
        self.concurrency = concurrency
        self.api_key = api_key if api_key is not None else os.environ.get("OPENAI_API_KEY")
        self.timeout = timeout

    def chat(self, conversations: Sequence[list[dict]], *, reasoning_effort: str | None = None) -> list[Generation]:
        """One completion per conversation (a list of {"role", "content"}), in order."""
        return asyncio.run(self._all(conversations, reasoning_effort))

    async def _all(self, conversations: Sequence[list[dict]], reasoning_effort: str | None) -> list[Generation]:
        import httpx

        semaphore = asyncio.Semaphore(self.concurrency)
        headers = {"Authorization": f"Bearer {self.api_key}"} if self.api_key else {}
        async with httpx.AsyncClient(timeout=self.timeout, headers=headers) as client:

            async def one(messages: list[dict]) -> Generation:
                async with semaphore:
                    return await self._request(client, messages, reasoning_effort)

            return list(await asyncio.gather(*(one(m) for m in conversations)))

    async def _request(self, client: Any, messages: list[dict], reasoning_effort: str | None) -> Generation:
        import httpx

        s = self.settings
        if self.api == "chat":
            url = f"{self.base_url}/chat/completions"
            body: dict[str, Any] = {"model": self.model, "messages": messages, "max_tokens": s.max_new_tokens,
                                    "temperature": s.temperature, "top_p": s.top_p, "seed": s.seed}
            if reasoning_effort:
                body["reasoning_effort"] = reasoning_effort
        else:
            url = f"{self.base_url}/responses"
            instructions = "\n\n".join(m["content"] for m in messages if m["role"] in ("system", "developer"))
            body = {"model": self.model, "input": [m for m in messages if m["role"] not in ("system", "developer")],
                    "max_output_tokens": s.max_new_tokens, "temperature": s.temperature, "top_p": s.top_p}
            if instructions:
                body["instructions"] = instructions
            if reasoning_effort:
                body["reasoning"] = {"effort": reasoning_effort}
        try:
            response = await client.post(url, json=body)
        except httpx.HTTPError as err:
            raise WikituneError(f"cannot reach {url}: {err!r}; is the server running (e.g. `wikitune serve` or `vllm serve`)?") from err
        if response.status_code != 200:
            raise WikituneError(f"{url} answered {response.status_code}: {response.text[:200]}")
        data = response.json()
        return _chat_generation(data) if self.api == "chat" else _responses_generation(data)


def _chat_generation(data: dict) -> Generation:
    choice = data["choices"][0]
    message = choice.get("message") or {}
    finish = choice.get("finish_reason") or "stop"
    usage = data.get("usage") or {}
    new_tokens = int(usage.get("completion_tokens") or 0)
    extra = data.get("wikitune") or {}  # wikitune serve: the exact stop reason and the loop guard's savings
    stop_reason = extra.get("stop_reason") or ("length" if finish == "length" else "stop")
    saved = int(extra.get("tokens_saved") or 0)
    if message.get("raw") is not None:  # wikitune serve returns the raw completion too
        return Generation(raw=message["raw"], new_tokens=new_tokens, stop_reason=stop_reason, tokens_saved=saved)
    reasoning = message.get("reasoning_content") or message.get("reasoning")
    content = message.get("content")
    return Generation(raw=render_completion(reasoning, content, stop_reason), new_tokens=new_tokens, stop_reason=stop_reason,
                      parsed={"final": content, "analysis": reasoning})


def _responses_generation(data: dict) -> Generation:
    extra = data.get("wikitune") or {}
    if extra.get("raw") is not None:  # wikitune serve returns the raw completion too
        usage = data.get("usage") or {}
        return Generation(raw=extra["raw"], new_tokens=int(usage.get("output_tokens") or 0),
                          stop_reason=extra.get("stop_reason") or "stop", tokens_saved=int(extra.get("tokens_saved") or 0))
    reasoning, content = [], []
    for item in data.get("output") or []:
        if item.get("type") == "reasoning":
            reasoning += [c.get("text", "") for c in item.get("content") or [] if c.get("type") in ("reasoning_text", "text")]
            reasoning += [c.get("text", "") for c in item.get("summary") or []]
        elif item.get("type") == "message":
            content += [c.get("text", "") for c in item.get("content") or [] if c.get("type") == "output_text"]
    incomplete = data.get("status") == "incomplete"
    usage = data.get("usage") or {}
    stop_reason = "length" if incomplete else "stop"
    final = "".join(content) if content else None
    analysis = "".join(reasoning) if reasoning else None
    return Generation(raw=render_completion(analysis, final, stop_reason), new_tokens=int(usage.get("output_tokens") or 0),
                      stop_reason=stop_reason, parsed={"final": final, "analysis": analysis})

