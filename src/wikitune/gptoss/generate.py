"""Generation backends for `wikitune eval`: in-process transformers, or any OpenAI-compatible server.

    backend = HFBackend(model, tokenizer, GenerationSettings(max_new_tokens=256, batch_size=8))
    outs = backend.generate([render_prompt(settings, q) for q in questions])
    with OpenAIBackend("http://127.0.0.1:8000/v1", model="gpt-oss-20b", settings=...) as backend:
        outs = backend.chat([chat_messages(settings, q) for q in questions], reasoning_effort="low")

Both return `Generation`s: the raw completion, the number of new tokens and why it stopped
("stop", "length", "loop"); `Generation.parse()` reads any of them into channels with the one
harmony parser. The HF backend decodes up to `batch_size` left-padded sequences at once with one KV
cache, stops a sequence at `<|return|>`/`<|call|>` (the assistant's turn is over; `<|end|>` only
closes the analysis) or when the loop guard finds it cycling (counting the tokens it saved), and
then gives its slot to the next prompt (continuous batching). The OpenAI backend sends concurrent
requests (at most `concurrency` at once, over one pool of keep-alive connections) to
`/v1/chat/completions` or `/v1/responses` and keeps exactly what the server sent; a failed request,
or a reply that is not JSON or not shaped as the API says, is a `ServerError` naming the URL and
what was wrong, with the HTTP status.
"""

from __future__ import annotations

import json
import logging
import os
import re
import threading
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait
from dataclasses import dataclass
from typing import Any, Sequence

from wikitune.errors import WikituneError
from wikitune.gptoss.harmony import STOP_STRINGS, ParsedCompletion, parse_completion, parse_server_reply
from wikitune.gptoss.loopguard import CycleDetector

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
    """Seed of sampling (hf backend: a generator seeded at each `generate` call, so the same prompts sample the same)."""
    loop_guard: bool = True
    """Stop a sequence that repeats an n-gram cycle (flag loop_stopped)."""
    loop_min_span: int = 48
    """Loop guard: the cycle must cover at least this many tokens."""
    loop_min_repeats: int = 3
    """Loop guard: ... and be repeated this many times."""
    loop_max_period: int = 200
    """Loop guard: longest cycle looked for, in tokens."""
    merge_adapter: bool = True
    """hf backend: merge a LoRA adapter into the weights when loading (W + BA computed once, not at
    every step); false keeps the PeftModel, e.g. to compare the two."""

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
    """One completion, kept as the model or server produced it."""

    raw: str
    """Exactly what was generated: the whole harmony completion, special tokens included (hf backend,
    `wikitune serve`), or, when `server_text`, the server's message text as sent (chat `content`,
    Responses `output_text`; "" when it sent none), leaked special tokens and all."""
    new_tokens: int
    stop_reason: str
    """stop | length | loop"""
    tokens_saved: int = 0
    """Tokens the loop guard did not generate (budget minus what was generated) when it stopped the sequence."""
    reasoning: str | None = None
    """The server's separate reasoning text as sent (`reasoning_content` / `reasoning`, Responses reasoning items)."""
    server_text: bool = False
    """`raw` is a server's message text (meant to be the final channel alone), not a whole completion."""

    def parse(self) -> ParsedCompletion:
        """The channels and flags, by the one harmony parser whatever the backend."""
        if self.server_text:
            return parse_server_reply(self.raw, self.reasoning, stop_reason=self.stop_reason)
        return parse_completion(self.raw, stop_reason=self.stop_reason)

    def final_text(self) -> str | None:
        """The final channel's text (None when there is none)."""
        return self.parse().final


class HFBackend:
    """In-process generation with a transformers model (optionally a PeftModel), by continuous batching.

    At most `batch_size` sequences decode together, left-padded, sharing one KV cache. A sequence
    leaves the batch as soon as it ends (`<|return|>`/`<|call|>`, the loop guard, or the budget):
    its row is dropped from the input, the attention mask and the cache, and the next prompt is
    prefilled and joins in its place, so the tokens the loop guard saves are wall time saved, and
    no slot decodes padding. Greedy decoding gives the tokens `model.generate` gives each batch
    (the math of a row does not depend on its neighbours or on the padding in front of it).
    """

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
        self.forward_batch_sizes: list[int] = []
        """Rows of every forward pass of the last `generate` (prefills and decoding steps): what the batch cost."""

    def generate(self, prompts: Sequence[str]) -> list[Generation]:
        """Completions of `prompts`, in order; at most `settings.batch_size` decode at once."""
        import torch

        s = self.settings
        self.forward_batch_sizes = []
        device = next(self.model.parameters()).device
        generator = torch.Generator(device=device).manual_seed(s.seed) if s.temperature > 0 else None
        tokens: list[list[int]] = [[] for _ in prompts]
        reasons: list[str] = ["length"] * len(prompts)
        pending = list(range(len(prompts)))
        running: _Rows | None = None
        with torch.inference_mode():
            while pending or running is not None:
                free = s.batch_size - (len(running.rows) if running is not None else 0)
                if pending and free > 0:  # fill the free slots: prefill the next prompts, then join them
                    group, pending = pending[:free], pending[free:]
                    fresh, logits = self._prefill([prompts[i] for i in group], group, device)
                    fresh = self._advance(fresh, logits, tokens, reasons, generator)
                    if fresh is not None:
                        running = fresh if running is None else running.join(fresh)
                    continue
                assert running is not None
                logits = self._forward(**running.step_inputs())
                running = self._advance(running, logits, tokens, reasons, generator)
        results = []
        for row, reason in zip(tokens, reasons):
            raw = self.tokenizer.decode(row, skip_special_tokens=False, clean_up_tokenization_spaces=False)
            saved = s.max_new_tokens - len(row) if reason == "loop" else 0
            results.append(Generation(raw=raw, new_tokens=len(row), stop_reason=reason, tokens_saved=saved))
        return results

    def _forward(self, **inputs: Any) -> Any:
        """The next-token logits (rows, vocab) of one forward pass; the cache is updated in place."""
        self.forward_batch_sizes.append(int(inputs["input_ids"].shape[0]))
        out = self.model(**inputs, use_cache=True, logits_to_keep=1)
        return out.logits[:, -1, :]

    def _prefill(self, prompts: Sequence[str], rows: list[int], device: Any) -> "tuple[_Rows, Any]":
        """The prompts' KV cache (left-padded among themselves) and their first next-token logits."""
        import torch
        from transformers import DynamicCache

        s = self.settings
        enc = self.tokenizer(list(prompts), add_special_tokens=False, padding=True, padding_side="left", return_tensors="pt")
        input_ids, mask = enc["input_ids"].to(device), enc["attention_mask"].to(device)
        # positions count real tokens only, as generate() does for left padding
        positions = (mask.long().cumsum(-1) - 1).masked_fill(mask == 0, 0)
        cache = DynamicCache(config=self.model.config)  # sliding-window layers keep only their window
        logits = self._forward(input_ids=input_ids, attention_mask=mask, position_ids=positions, cache=cache)
        detector = CycleDetector(len(rows), max_period=s.loop_max_period, min_repeats=s.loop_min_repeats,
                                 min_span=s.loop_min_span) if s.loop_guard else None
        return _Rows(rows, cache, mask, positions[:, -1] + 1, detector, torch.empty(0)), logits

    def _advance(self, batch: "_Rows", logits: Any, tokens: list[list[int]], reasons: list[str],
                 generator: Any) -> "_Rows | None":
        """Pick each row's next token, record it, and drop the rows that have ended; None when none is left."""
        s = self.settings
        picked = _pick(logits, s, generator)
        column = picked.tolist()
        periods = batch.detector.push(column) if batch.detector is not None else [None] * len(column)
        keep = []
        for n, (row, token, period) in enumerate(zip(batch.rows, column, periods)):
            tokens[row].append(token)
            if token in self.stop_ids:
                reasons[row] = "stop"
            elif period is not None:
                reasons[row] = "loop"
            elif len(tokens[row]) < s.max_new_tokens:
                keep.append(n)
        batch.last = picked
        return batch.select(keep)


def _pick(logits: Any, settings: GenerationSettings, generator: Any) -> Any:
    """The next token of each row: argmax, or a sample at `temperature` from the `top_p` nucleus."""
    import torch

    if settings.temperature == 0:
        return logits.argmax(dim=-1)
    scores = logits.float() / settings.temperature
    if settings.top_p < 1:
        from transformers import TopPLogitsWarper

        scores = TopPLogitsWarper(settings.top_p)(None, scores)
    return torch.multinomial(torch.softmax(scores, dim=-1), 1, generator=generator).squeeze(1)


def _pad_front(tensor: Any, size: int, *, dim: int) -> Any:
    """`tensor` grown to `size` along `dim` by zeros in front."""
    import torch

    missing = size - tensor.shape[dim]
    if not missing:
        return tensor
    shape = list(tensor.shape)
    shape[dim] = missing
    return torch.cat([tensor.new_zeros(shape), tensor], dim=dim)


class _Rows:
    """The sequences decoding together: their KV cache, attention mask, next positions and last tokens.

    Columns of the mask and the cache are time steps, right-aligned: every row's tokens are
    contiguous and end at the last column, with padding in front, so a column distance is a token
    distance (what sliding-window attention counts) and rows of different ages can share a cache.

    Args:
        rows: the prompt index of each row.
        cache: a `DynamicCache` holding every row's keys and values.
        mask: (rows, columns) attention mask, 1 for a real token.
        positions: (rows,) position of each row's next token.
        detector: the loop guard's cycle detector, one stream per row (None: guard off).
        last: (rows,) each row's newest token, the next step's input.
    """

    def __init__(self, rows: list[int], cache: Any, mask: Any, positions: Any, detector: CycleDetector | None,
                 last: Any) -> None:
        self.rows, self.cache, self.mask, self.positions, self.detector, self.last = rows, cache, mask, positions, detector, last

    def step_inputs(self) -> dict[str, Any]:
        """The next decoding step's inputs: each row's newest token at its position, the mask with its column."""
        import torch

        self.mask = torch.cat([self.mask, self.mask.new_ones((len(self.rows), 1))], dim=1)
        inputs = {"input_ids": self.last[:, None], "attention_mask": self.mask, "position_ids": self.positions[:, None],
                  "cache": self.cache}
        self.positions = self.positions + 1
        return inputs

    def select(self, keep: list[int]) -> "_Rows | None":
        """Only the rows at positions `keep` (None when that is none); columns nobody needs any more are cut."""
        import torch

        if not keep:
            return None
        if len(keep) < len(self.rows):
            index = torch.tensor(keep, device=self.mask.device)
            self.cache.batch_select_indices(index)
            self.rows = [self.rows[n] for n in keep]
            self.mask, self.positions, self.last = self.mask[index], self.positions[index], self.last[index]
            if self.detector is not None:
                self.detector.select(keep)
            used = self.mask.any(dim=0)
            first = int(used.to(torch.int8).argmax())  # leading columns that are padding in every row
            if first:
                self.mask = self.mask[:, first:]
                self._fit_cache(self.mask.shape[1])
        return self

    def join(self, other: "_Rows") -> "_Rows":
        """Append `other`'s rows: the shorter side is padded in front (mask 0, keys and values 0)."""
        import torch

        width = max(self.mask.shape[1], other.mask.shape[1])
        self.mask = torch.cat([_pad_front(self.mask, width, dim=1), _pad_front(other.mask, width, dim=1)])
        for mine, theirs in zip(self.cache.layers, other.cache.layers):
            stored = max(mine.keys.shape[-2], theirs.keys.shape[-2])  # a sliding layer keeps its window only
            mine.keys = torch.cat([_pad_front(mine.keys, stored, dim=-2), _pad_front(theirs.keys, stored, dim=-2)])
            mine.values = torch.cat([_pad_front(mine.values, stored, dim=-2), _pad_front(theirs.values, stored, dim=-2)])
        self._fit_cache(width)
        self.rows = self.rows + other.rows
        self.positions = torch.cat([self.positions, other.positions])
        self.last = torch.cat([self.last, other.last])
        if self.detector is not None and other.detector is not None:
            self.detector.concat(other.detector)
        return self

    def _fit_cache(self, width: int) -> None:
        """Make every cache layer `width` columns long (a sliding layer: at most its stored window)."""
        for layer in self.cache.layers:
            stored = min(layer.keys.shape[-2], width)
            layer.keys, layer.values = layer.keys[..., -stored:, :], layer.values[..., -stored:, :]
            if hasattr(layer, "cumulative_length"):  # DynamicSlidingWindowLayer: tokens seen, for its mask
                layer.cumulative_length = width


class ServerError(WikituneError):
    """A request to an OpenAI-compatible server failed; the message names the URL and what was wrong.

    Attributes:
        status (int | None): the HTTP status the server answered (200 for a reply that is not the
            API's shape); None when no answer came (refused or dropped connection, timeout: then
            `__cause__` is the httpx error).
    """

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class OpenAIBackend:
    """Concurrent requests to an OpenAI-compatible server (vLLM `vllm serve`, `wikitune serve`, ...).

    One HTTP client (one pool of keep-alive connections) serves every request of the backend, from
    any thread: `chat` may be called from several threads at once. `close()` (or leaving a `with`
    block) closes its connections; a later `chat` opens a fresh client.

    Args:
        base_url: the server's API root, e.g. `http://127.0.0.1:8000/v1`.
        model: the model name the server knows.
        settings: token budget and sampling.
        api: `chat` (/chat/completions) or `responses` (/responses).
        concurrency: requests in flight at most, per `chat` call.
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
        self._client: Any = None
        self._client_lock = threading.Lock()

    def chat(self, conversations: Sequence[list[dict]], *, reasoning_effort: str | None = None,
             seed: int | None = None) -> list[Generation]:
        """One completion per conversation (a list of {"role", "content"}), in order.

        Args:
            conversations: the requests' messages.
            reasoning_effort: low | medium | high, sent to reasoning models; None sends none.
            seed: the sampling seed of these requests instead of `settings.seed` (augment seeds each job).

        Raises:
            ServerError: a request failed; requests not yet sent then are not sent.
        """
        client = self._http()
        if len(conversations) <= 1 or self.concurrency == 1:
            return [self._request(client, m, reasoning_effort, seed) for m in conversations]
        # httpx's sync client is thread-safe (its pool takes a lock), so a thread per request in flight
        # shares its keep-alive connections.
        with ThreadPoolExecutor(max_workers=min(self.concurrency, len(conversations)), thread_name_prefix="openai") as pool:
            futures = [pool.submit(self._request, client, m, reasoning_effort, seed) for m in conversations]
            wait(futures, return_when=FIRST_EXCEPTION)
            failed = next((f.exception() for f in futures if f.done() and f.exception() is not None), None)
            if failed is not None:
                for future in futures:
                    future.cancel()  # one failure fails the call: send nothing more
                raise failed
            return [f.result() for f in futures]

    def close(self) -> None:
        """Close the HTTP client and its connections (idempotent)."""
        with self._client_lock:
            client, self._client = self._client, None
        if client is not None:
            client.close()

    def __enter__(self) -> "OpenAIBackend":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _http(self) -> Any:
        """The backend's HTTP client, created on first use."""
        import httpx

        with self._client_lock:
            if self._client is None:
                headers = {"Authorization": f"Bearer {self.api_key}"} if self.api_key else {}
                # Keep a connection alive per request in flight, so that none is reopened between requests.
                limits = httpx.Limits(max_connections=None, max_keepalive_connections=max(self.concurrency, 20))
                self._client = httpx.Client(timeout=self.timeout, headers=headers, limits=limits)
            return self._client

    def _request(self, client: Any, messages: list[dict], reasoning_effort: str | None, seed: int | None) -> Generation:
        import httpx

        s = self.settings
        if self.api == "chat":
            url = f"{self.base_url}/chat/completions"
            body: dict[str, Any] = {"model": self.model, "messages": messages, "max_tokens": s.max_new_tokens,
                                    "temperature": s.temperature, "top_p": s.top_p, "seed": s.seed if seed is None else seed}
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
            response = client.post(url, json=body)
        except httpx.HTTPError as err:
            raise ServerError(f"cannot reach {url}: {err!r}; is the server running (e.g. `wikitune serve` or `vllm serve`)?") from err
        try:
            data = json.loads(response.content)
        except ValueError:
            data = _NOT_JSON
        status = response.status_code
        if status != 200:
            raise ServerError(f"{url} answered {status}: {_error_text(data, response.text)}", status)
        if data is _NOT_JSON:
            raise ServerError(f"{url} answered 200 with a body that is not JSON: {_excerpt(response.text)}", status)
        try:
            return _chat_generation(data) if self.api == "chat" else _responses_generation(data)
        except _WrongShape as err:
            raise ServerError(f"{url} answered 200 with {err}", status) from None


_NOT_JSON = object()
_JSON_TYPES = {dict: "an object", list: "an array", str: "a string", int: "a number", float: "a number", bool: "a boolean", type(None): "null"}


def _kind(value: Any) -> str:
    """What a JSON value is, in JSON's words."""
    return _JSON_TYPES.get(type(value), type(value).__name__)


class _WrongShape(Exception):
    """A reply that is JSON but not what the API promises (the message says what was wrong)."""


def _excerpt(text: str, limit: int = 160) -> str:
    """A body on one line: an HTML page by its title, anything else by its start."""
    title = re.search(r"<title[^>]*>(.*?)</title>", text, re.I | re.S)
    if title:
        return f"an HTML page titled {' '.join(title.group(1).split())!r}"
    flat = " ".join(text.split())
    if not flat:
        return "an empty body"
    return repr(flat[:limit] + ("…" if len(flat) > limit else ""))


def _error_text(data: Any, text: str) -> str:
    """The error message of a failed request: the OpenAI `{"error": {"message"}}` if given, else the body's start."""
    error = data.get("error") if isinstance(data, dict) else None
    if isinstance(error, dict) and isinstance(error.get("message"), str):
        return " ".join(error["message"].split())
    if isinstance(error, str):
        return " ".join(error.split())
    return _excerpt(text)


def _text(value: Any, where: str) -> str | None:
    """A text field: a string, null, or a list of {"type", "text"} parts (joined)."""
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, list) and all(isinstance(part, dict) for part in value):
        return "".join(str(part.get("text") or "") for part in value)
    raise _WrongShape(f"`{where}` that is {_kind(value)}, not a string")


def _count(usage: Any, key: str) -> int:
    """A token count of `usage` (0 when the server gives none)."""
    if usage is None:
        return 0
    if not isinstance(usage, dict):
        raise _WrongShape(f"`usage` that is {_kind(usage)}, not an object")
    value = usage.get(key)
    if value is None:
        return 0
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise _WrongShape(f"`usage.{key}` {value!r}, not a number")
    return int(value)


def _top(data: Any, key: str) -> Any:
    """`data[key]`, after checking that the reply is an object that is not an error."""
    if not isinstance(data, dict):
        raise _WrongShape(f"JSON that is {_kind(data)}, not an object")
    if data.get(key) is None and data.get("error"):
        raise _WrongShape(f"an error: {_error_text(data, '')}")
    return data.get(key)


def _chat_generation(data: Any) -> Generation:
    """A chat-completions reply as sent: `content` in `raw`, `reasoning_content` (or `reasoning`) kept beside it.

    Raises:
        _WrongShape: no `choices`, a first choice without a `message`, fields of the wrong type.
    """
    choices = _top(data, "choices")
    if not isinstance(choices, list) or not choices:
        raise _WrongShape("no `choices`" if not choices else f"`choices` that is {_kind(choices)}, not an array")
    choice = choices[0]
    if not isinstance(choice, dict) or not isinstance(choice.get("message"), dict):
        raise _WrongShape("`choices[0]` without a `message` object")
    message = choice["message"]
    finish = choice.get("finish_reason") or "stop"
    new_tokens = _count(data.get("usage"), "completion_tokens")
    extra = data.get("wikitune") if isinstance(data.get("wikitune"), dict) else {}  # wikitune serve: exact stop reason, savings
    stop_reason = extra.get("stop_reason") or ("length" if finish == "length" else "stop")
    saved = int(extra.get("tokens_saved") or 0)
    if isinstance(message.get("raw"), str):  # wikitune serve returns the whole completion too
        return Generation(raw=message["raw"], new_tokens=new_tokens, stop_reason=stop_reason, tokens_saved=saved)
    key = "reasoning_content" if message.get("reasoning_content") is not None else "reasoning"
    reasoning = _text(message.get(key), f"choices[0].message.{key}")
    content = _text(message.get("content"), "choices[0].message.content")
    return Generation(raw=content or "", new_tokens=new_tokens, stop_reason=stop_reason, tokens_saved=saved,
                      reasoning=reasoning, server_text=True)


def _responses_generation(data: Any) -> Generation:
    """A Responses-API reply as sent: the message items' `output_text` in `raw`, the reasoning items' text beside it.

    Raises:
        _WrongShape: no `output` list, output items that are not objects, fields of the wrong type.
    """
    output = _top(data, "output")
    extra = data.get("wikitune") if isinstance(data.get("wikitune"), dict) else {}
    new_tokens = _count(data.get("usage"), "output_tokens")
    if isinstance(extra.get("raw"), str):  # wikitune serve returns the whole completion too
        return Generation(raw=extra["raw"], new_tokens=new_tokens, stop_reason=extra.get("stop_reason") or "stop",
                          tokens_saved=int(extra.get("tokens_saved") or 0))
    if not isinstance(output, list):
        raise _WrongShape("no `output` array" if output is None else f"`output` that is {_kind(output)}, not an array")
    reasoning, content = [], []
    for n, item in enumerate(output):
        if not isinstance(item, dict):
            raise _WrongShape(f"`output[{n}]` that is {_kind(item)}, not an object")
        parts = {key: item.get(key) or [] for key in ("content", "summary")}
        if any(not isinstance(value, list) or not all(isinstance(p, dict) for p in value) for value in parts.values()):
            raise _WrongShape(f"`output[{n}]` whose content or summary is not an array of objects")
        texts = {key: [_text(p.get("text"), f"output[{n}].{key}[].text") or "" for p in value
                       if p.get("type") in ("output_text", "reasoning_text", "summary_text", "text")] for key, value in parts.items()}
        if item.get("type") == "reasoning":  # the full reasoning text when the server gives it, else its summary
            reasoning += texts["content"] or texts["summary"]
        elif item.get("type") == "message":
            content += texts["content"]
    stop_reason = "length" if data.get("status") == "incomplete" else "stop"
    return Generation(raw="".join(content), new_tokens=new_tokens, stop_reason=stop_reason,
                      reasoning="".join(reasoning) if reasoning else None, server_text=True)
