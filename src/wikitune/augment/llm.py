"""The LLM side of `wikitune augment`: prompt files, the reply cache, and requests with retries and a budget.

    prompts = PromptSet.load("rephrase")                 # augment/prompts/rephrase-*.ja.md + system.ja.md
    with ReplyCache(Path("aug/x.partial/cache.sqlite")) as cache:
        client = LLMClient(LLMSettings(base_url="http://127.0.0.1:8000/v1", model="gpt-oss-20b"), cache)
        replies = client.run([Job(key, "101:rephrase:0", messages, seed=17)])   # key -> Reply

- Prompts are Japanese Markdown files shipped in the package (`augment/prompts/*.ja.md`); `{{name}}`
  marks a slot (double braces, because prompts show JSON examples with single ones). The sha256
  of a method's files (names and bytes) goes into the manifest and into every cache key.
- Every reply is committed to a SQLite cache as it arrives, keyed by `request_key`: the article's
  revision, the method, k, the job (which rewrite, which entity pair), the prompt hash, the model,
  the sampling settings and the messages themselves. A run killed at any moment loses at most the
  requests in flight; a rerun reads the rest from the cache, and a finished rerun sends nothing.
- At most `concurrency` requests are in flight (one thread each, all through one
  `gptoss.generate.OpenAIBackend` and its keep-alive connections, so replies are read as the
  evaluator reads them). A 429, 5xx, timeout or connection error is retried with doubling
  backoff up to `retries` times; a 400 is the server refusing this one request (e.g. too long
  for its context) and is cached as a refusal; anything else (401, 404, a reply that is not the
  API's shape) stops the run with its message, keeping every reply already cached. The HTTP
  status comes from `ServerError.status`.
- `max_tokens_total` caps the generated tokens (the server's `completion_tokens`; characters of
  the reply where it reports none) of every reply used, cached ones included, so a budget-stopped
  output is rebuilt by a rerun with no request. Jobs are dispatched in order while the spent
  tokens are under the budget; replies already in flight when it runs out are still used.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import sqlite3
import threading
import time
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import asdict, dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, Sequence

from wikitune.errors import WikituneError
from wikitune.gptoss.generate import Generation, GenerationSettings, OpenAIBackend, ServerError
from wikitune.gptoss.harmony import ParsedCompletion, check_reasoning_effort

log = logging.getLogger(__name__)

PROMPT_DIR = "prompts"
PROMPT_SUFFIX = ".ja.md"
SYSTEM_PROMPT = "system"
CACHE_FILE = "cache.sqlite"
_SLOT = re.compile(r"\{\{(\w+)\}\}")


# ---- prompts -------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Prompt:
    """One prompt file: `name` (the file name without `.ja.md`) and its text."""

    name: str
    text: str

    def render(self, **values: Any) -> str:
        """The text with every `{{slot}}` filled.

        Raises:
            WikituneError: a slot of the file has no value, or a value names no slot of the file.
        """
        slots = set(_SLOT.findall(self.text))
        if slots != set(values):
            raise WikituneError(f"prompt {self.name}{PROMPT_SUFFIX} has slots {sorted(slots)}, given {sorted(values)}")
        return _SLOT.sub(lambda m: str(values[m.group(1)]), self.text)


@dataclass(frozen=True)
class PromptSet:
    """The prompts of one method: its files (sorted by name) and the shared system prompt.

    Attributes:
        method (str): the method whose files these are (`rephrase` -> `rephrase-*.ja.md`).
        system (str): the system message of every request (`system.ja.md`).
        prompts (tuple[Prompt, ...]): the method's prompt files, by name.
        sha256 (str): SHA-256 over every file's name and bytes (system prompt included).
    """

    method: str
    system: str
    prompts: tuple[Prompt, ...]
    sha256: str

    @classmethod
    def load(cls, method: str) -> "PromptSet":
        """The prompt files of `method` shipped in the package.

        Raises:
            WikituneError: the package has no prompt file for `method`.
        """
        folder = resources.files("wikitune.augment") / PROMPT_DIR
        files = sorted((f for f in folder.iterdir() if f.name.endswith(PROMPT_SUFFIX)), key=lambda f: f.name)
        chosen = [f for f in files if f.name.removesuffix(PROMPT_SUFFIX).split("-", 1)[0] == method]
        if not chosen:
            raise WikituneError(f"the package has no prompt file {method}*{PROMPT_SUFFIX} in wikitune/augment/{PROMPT_DIR}")
        system = next(f for f in files if f.name == SYSTEM_PROMPT + PROMPT_SUFFIX)
        digest = hashlib.sha256()
        for f in [system, *chosen]:
            digest.update(f.name.encode("utf-8") + b"\0" + f.read_bytes() + b"\0")
        return cls(method=method, system=system.read_text(encoding="utf-8").strip(),
                   prompts=tuple(Prompt(f.name.removesuffix(PROMPT_SUFFIX), f.read_text(encoding="utf-8")) for f in chosen),
                   sha256=digest.hexdigest())

    def get(self, name: str) -> Prompt:
        return next(p for p in self.prompts if p.name == name)

    def messages(self, prompt: Prompt, **values: Any) -> list[dict[str, str]]:
        """The chat messages of one request: the system prompt, then `prompt` filled with `values`."""
        return [{"role": "system", "content": self.system}, {"role": "user", "content": prompt.render(**values).strip()}]

    def paths(self) -> list[str]:
        return [f"wikitune/augment/{PROMPT_DIR}/{name}{PROMPT_SUFFIX}" for name in [SYSTEM_PROMPT, *(p.name for p in self.prompts)]]


# ---- settings, jobs, replies ---------------------------------------------------------------------
@dataclass
class LLMSettings:
    """Where requests go and how they are sampled, retried and budgeted (the LLM options of `augment`)."""

    base_url: str
    """The OpenAI-compatible API root, e.g. http://127.0.0.1:8000/v1 (vLLM, `wikitune serve`)."""
    model: str
    """The model name the server knows; part of every cache key."""
    concurrency: int = 8
    """Requests in flight at most."""
    temperature: float = 1.0
    """Sampling temperature (EntiGraph samples at 1.0); 0 = greedy."""
    top_p: float = 1.0
    max_new_tokens: int = 2048
    """Token budget of one reply (a reasoning model's analysis included)."""
    reasoning_effort: str | None = None
    """low | medium | high, sent to reasoning models; None sends none."""
    api: str = "chat"
    """chat (/chat/completions) or responses (/responses)."""
    timeout: float = 600.0
    """Seconds one request may take before it is retried."""
    retries: int = 4
    """Tries after the first for a 5xx, a timeout or a connection error."""
    retry_backoff: float = 1.0
    """Seconds before the first retry; doubled at each further one."""
    max_tokens_total: int | None = None
    """Budget of generated tokens over every reply used (cached ones included); None = no budget."""

    def __post_init__(self) -> None:
        if not self.base_url or not self.model:
            raise WikituneError("an LLM method needs --base-url (an OpenAI-compatible server) and --model (its model name)")
        if self.concurrency < 1:
            raise WikituneError(f"concurrency must be 1 or more, got {self.concurrency}")
        if self.retries < 0 or self.retry_backoff < 0 or self.timeout <= 0:
            raise WikituneError("retries and retry backoff must be 0 or more, timeout above 0")
        if self.max_tokens_total is not None and self.max_tokens_total < 1:
            raise WikituneError(f"max_tokens_total must be 1 or more, got {self.max_tokens_total}")
        if self.reasoning_effort is not None:
            check_reasoning_effort(self.reasoning_effort)
        GenerationSettings(max_new_tokens=self.max_new_tokens, temperature=self.temperature, top_p=self.top_p)  # checks them

    def sampling(self) -> dict[str, Any]:
        """The settings that shape a reply (part of every cache key); the seed is the job's."""
        return {"temperature": self.temperature, "top_p": self.top_p, "max_new_tokens": self.max_new_tokens,
                "reasoning_effort": self.reasoning_effort, "api": self.api}


@dataclass(frozen=True)
class Job:
    """One request: its cache key, a name for messages (`101:rephrase:0`), the messages and the sampling seed."""

    key: str
    name: str
    messages: list[dict[str, str]]
    seed: int


def request_key(*, revision: Any, method: str, k: int, job: str, prompt_sha256: str, model: str,
                sampling: dict[str, Any], seed: int, messages: list[dict[str, str]]) -> str:
    """The cache key of one request: SHA-256 of everything that shapes its reply."""
    data = {"revision": revision, "method": method, "k": k, "job": job, "prompt_sha256": prompt_sha256, "model": model,
            "sampling": sampling, "seed": seed, "messages": messages}
    return hashlib.sha256(json.dumps(data, ensure_ascii=False, sort_keys=True).encode("utf-8")).hexdigest()


def job_seed(seed: int, name: str) -> int:
    """The sampling seed of one job: the run's seed and the job's name hashed, so rewrites differ and repeat."""
    return int.from_bytes(hashlib.sha256(f"{seed}:{name}".encode("utf-8")).digest()[:4], "big") >> 1


@dataclass
class Reply:
    """A server's reply as cached: the generation's fields, or the refusal (a 400) that stands for it."""

    raw: str
    reasoning: str | None
    server_text: bool
    stop_reason: str
    new_tokens: int
    refused: str | None = None

    @classmethod
    def of(cls, generation: Generation) -> "Reply":
        return cls(raw=generation.raw, reasoning=generation.reasoning, server_text=generation.server_text,
                   stop_reason=generation.stop_reason, new_tokens=generation.new_tokens)

    def parse(self) -> ParsedCompletion:
        """The channels, by the evaluator's parser (a reasoning model's work stays in `analysis`)."""
        return Generation(raw=self.raw, new_tokens=self.new_tokens, stop_reason=self.stop_reason,
                          reasoning=self.reasoning, server_text=self.server_text).parse()

    def tokens(self) -> int:
        """What the reply costs the budget: the reported generated tokens, else its characters."""
        return self.new_tokens or len(self.raw) + len(self.reasoning or "")


# ---- the cache -----------------------------------------------------------------------------------
class ReplyCache:
    """Replies by request key in SQLite, committed one by one (a kill loses no committed reply).

    Args:
        path (Path): the database file (created if missing).
    """

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        try:
            self.db = sqlite3.connect(self.path, check_same_thread=False)
            self.db.execute("CREATE TABLE IF NOT EXISTS replies (key TEXT PRIMARY KEY, job TEXT NOT NULL, "
                            "reply TEXT NOT NULL, created REAL NOT NULL)")
            self.db.commit()
        except sqlite3.DatabaseError as err:
            raise WikituneError(f"{self.path} is not a readable reply cache ({err}); move it away to start afresh") from err

    def get(self, key: str) -> Reply | None:
        row = self.db.execute("SELECT reply FROM replies WHERE key = ?", (key,)).fetchone()
        return Reply(**json.loads(row[0])) if row else None

    def put(self, key: str, job: str, reply: Reply) -> None:
        self.db.execute("INSERT OR REPLACE INTO replies VALUES (?, ?, ?, ?)",
                        (key, job, json.dumps(asdict(reply), ensure_ascii=False), time.time()))
        self.db.commit()

    def close(self) -> None:
        self.db.close()

    def __enter__(self) -> "ReplyCache":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# ---- requests ------------------------------------------------------------------------------------
@dataclass
class RequestStats:
    """What the requests of one run cost, for the manifest."""

    requests: int = 0
    """HTTP requests sent, retries included."""
    retries: int = 0
    cached: int = 0
    """Replies read from the cache instead of requested."""
    replies: int = 0
    """Replies received and cached by this run."""
    tokens: int = 0
    """Generated tokens of every reply used (cached ones included): what the budget counts."""
    unsent: int = 0
    """Jobs not sent because the budget was spent."""
    budget_exhausted: bool = False
    """Some job was not sent because the budget was spent."""
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def count_request(self, retry: bool) -> None:
        with self._lock:
            self.requests += 1
            self.retries += int(retry)

    def to_json(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if not k.startswith("_")}


class LLMClient:
    """Runs jobs against the server, through the cache, within the budget; see the module docstring."""

    def __init__(self, settings: LLMSettings, cache: ReplyCache, stats: RequestStats | None = None) -> None:
        self.settings = settings
        self.cache = cache
        self.stats = stats or RequestStats()

    def run(self, jobs: Sequence[Job]) -> dict[str, Reply]:
        """The reply of every job the budget allows, by key (cached replies first, then requests in order).

        Raises:
            WikituneError: a request failed for good (retries spent, or a non-retryable answer); the
                replies received before it are cached.
        """
        s, stats = self.settings, self.stats
        replies: dict[str, Reply] = {}
        todo: list[Job] = []
        for job in jobs:
            if job.key in replies:
                continue
            cached = self.cache.get(job.key)
            if cached is None:
                todo.append(job)
            else:
                replies[job.key] = cached
                stats.cached += 1
                stats.tokens += cached.tokens()
        todo = list({job.key: job for job in todo}.values())  # one request per key, in order

        def spent() -> bool:
            return s.max_tokens_total is not None and stats.tokens >= s.max_tokens_total

        failure: BaseException | None = None
        backend = OpenAIBackend(s.base_url, s.model, GenerationSettings(
            max_new_tokens=s.max_new_tokens, temperature=s.temperature, top_p=s.top_p),
            api=s.api, concurrency=s.concurrency, timeout=s.timeout)
        with backend, ThreadPoolExecutor(max_workers=s.concurrency, thread_name_prefix="augment") as pool:
            running: dict[Future, Job] = {}
            queue = list(reversed(todo))
            while queue or running:
                while queue and len(running) < s.concurrency and failure is None and not spent():
                    job = queue.pop()
                    running[pool.submit(self._request, backend, job)] = job
                if not running:
                    break
                done, _ = wait(running, return_when=FIRST_COMPLETED)
                for future in done:
                    job = running.pop(future)
                    try:
                        reply = future.result()
                    except BaseException as err:  # noqa: BLE001 - drain the others first, then raise the first failure
                        failure = failure or err
                        continue
                    self.cache.put(job.key, job.name, reply)
                    replies[job.key] = reply
                    stats.replies += 1
                    stats.tokens += reply.tokens()
            if failure is None and queue:
                stats.unsent += len(queue)
                stats.budget_exhausted = True
        if failure is not None:
            raise failure
        return replies

    def _request(self, backend: OpenAIBackend, job: Job) -> Reply:
        """One job's reply, retried on 429, 5xx, timeouts and connection errors with doubling backoff."""
        s = self.settings
        for attempt in range(s.retries + 1):
            self.stats.count_request(retry=attempt > 0)
            try:
                [generation] = backend.chat([job.messages], reasoning_effort=s.reasoning_effort, seed=job.seed)
                return Reply.of(generation)
            except ServerError as err:
                if err.status == 400:
                    return Reply(raw="", reasoning=None, server_text=True, stop_reason="stop", new_tokens=0, refused=str(err))
                if not _retryable(err):
                    raise
                if attempt == s.retries:
                    raise WikituneError(f"{job.name}: {err} (gave up after {s.retries + 1} tries; rerun to continue: "
                                        f"the replies received are cached)") from err
                log.warning("%s: %s; retrying in %.2fs", job.name, err, s.retry_backoff * 2**attempt)
                time.sleep(s.retry_backoff * 2**attempt)
        raise AssertionError("unreachable")  # pragma: no cover


def _retryable(err: ServerError) -> bool:
    """A 429 or 5xx (the server busy or broken for now), or no answer at all (timeout, connection)."""
    import httpx

    if err.status is not None:
        return err.status >= 500 or err.status == 429
    return isinstance(err.__cause__, httpx.TransportError)  # timeouts, refused or dropped connections
