"""`wikitune eval`: answer QA sets with a model, parse the harmony channels, score, summarise.

    wikitune eval --model tiny-gpt-oss --tokenizer runs/cpt/tokenizer --adapter runs/cpt \\
        --qa qa/demo/test.jsonl --qa qa/demo/unseen.jsonl --qa builtin:seed --out runs/eval-cpt
    wikitune eval --backend openai --base-url http://127.0.0.1:8000/v1 --model openai/gpt-oss-20b \\
        --qa builtin:seed --out runs/eval-base
    wikitune eval --config configs/tiny/eval.yaml mode=rag generation.max_new_tokens=64

Writes RUN/config.yaml (resolved), RUN/results.jsonl (one record per question, DESIGN.md) and
RUN/summary.json (per domain and per QA set: n, scores with bootstrap 95% CIs, flag rates,
mean new tokens, retrieval hit-rate in rag mode, tokens saved by the loop guard).

Prompts: an SFT adapter run is evaluated on exactly the prompt it was trained on unless
`prompt.format` says otherwise (`resolve_prompt`); config.yaml records the settings used and each
record its prompt text (hf backend).

Resumable: each record carries a `cache_key`, a hash of everything that decides its answer
(model, tokenizer, adapter, prompt settings, generation settings, retrieval settings, the
question; local model, tokenizer and adapter directories and the RAG corpus by their content,
see `content_identity`); a rerun into the same RUN reuses records whose key matches and answers
the rest. A reused answer is scored again against the current QA files (gold answer, aliases,
normaliser), so no score is stale. Records are appended batch by batch, so a killed run loses at
most one batch.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
import os
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from wikitune import formats
from wikitune.config import write_config
from wikitune.errors import WikituneError
from wikitune.evaluate.judge import JudgeSettings, judge_records
from wikitune.evaluate.perplexity import control_texts, heldout_texts, perplexity
from wikitune.evaluate.rag import BM25Index, format_context, retrieval_hit
from wikitune.evaluate.scoring import SHORT_SCORES, score_answer, summarize
from wikitune.formats import QAItem
from wikitune.gptoss.generate import Generation, GenerationSettings, HFBackend, OpenAIBackend
from wikitune.gptoss.harmony import (
    DEFAULT_IDENTITY,
    PromptSettings,
    developer_instructions,
    render_prompt,
    render_with_chat_template,
)
from wikitune.gptoss.model import TINY, is_run_dir, load_model_and_tokenizer, resolve_adapter
from wikitune.outputs import OutputLock
from wikitune.qa.loaders import load_qa_sets
from wikitune.split import DEFAULT_HELDOUT_FRACTION
from wikitune.train.runtime import CHECKPOINTS

log = logging.getLogger(__name__)

WHOLE_HASH_BYTES = 16 * 2**20
"""Files up to this size enter a cache key by content; larger ones (model weights) by size and mtime."""


@dataclass
class QAEvalConfig:
    """Options of `wikitune eval` (YAML keys; nested ones as `prompt.reasoning_effort=high`)."""

    output_dir: str = "runs/eval"
    """Run directory: config.yaml, results.jsonl, summary.json."""
    qa: list[str] = field(default_factory=lambda: ["qa/demo/test.jsonl", "qa/demo/unseen.jsonl", "builtin:seed"])
    """QA specs `[FORMAT:]PATH[:N][@DOMAIN]` (see wikitune.qa.loaders), e.g. builtin:seed, jaqket:FILE."""
    model: str = "tiny-gpt-oss"
    """tiny-gpt-oss, an HF id or local path (hf backend); the served model name (openai backend)."""
    tokenizer: str | None = None
    """Tokenizer directory or HF id (hf backend); tiny-gpt-oss needs one unless `adapter` is a run directory."""
    adapter: str | None = None
    """PEFT adapter or run directory (hf backend)."""
    tiny: dict | None = None
    """Sizes of tiny-gpt-oss (default: the adapter run's, else the defaults)."""
    dtype: str = "auto"
    """auto | bfloat16 | float16 | float32 (hf backend)."""
    backend: str = "hf"
    """hf (in-process transformers) | openai (an OpenAI-compatible server at base_url)."""
    base_url: str | None = None
    """API root of the server for the openai backend, e.g. http://127.0.0.1:8000/v1."""
    api: str = "chat"
    """openai backend: chat (/chat/completions) | responses (/responses)."""
    concurrency: int = 4
    """openai backend: requests in flight at most."""
    mode: str = "closed"
    """closed (the question alone) | rag (BM25 passages of `corpus` in the developer message)."""
    corpus: str = "corpus/demo"
    """Corpus directory for rag mode."""
    rag_k: int = 3
    """Passages retrieved per question in rag mode."""
    prompt: PromptSettings = field(default_factory=PromptSettings)
    """System/developer messages, reasoning effort and renderer of the harmony prompt; with the
    default `format: auto` an SFT adapter run is evaluated on its training prompt (`resolve_prompt`)."""
    generation: GenerationSettings = field(default_factory=GenerationSettings)
    """Token budget, batching, sampling and the loop guard."""
    judge: JudgeSettings = field(default_factory=JudgeSettings)
    """The optional LLM judge of long answers (off by default)."""
    perplexity: bool = False
    """Also measure perplexity (hf backend): held-out articles of `corpus`, and `perplexity_control` text."""
    perplexity_control: str | None = None
    """A JSQuAD file or plain-text file of general text for the control perplexity."""
    perplexity_block_size: int = 256
    """Window of the perplexity measurement, in tokens."""
    perplexity_max_documents: int | None = None
    """Use at most this many documents per perplexity domain."""
    heldout_fraction: float = DEFAULT_HELDOUT_FRACTION
    """Share of `corpus`'s articles CPT held out (wikitune.split); the held-out perplexity is measured on
    exactly those, so it must be the CPT run's (a study passes its own)."""
    resume: bool = True
    """Reuse answers already in output_dir/results.jsonl whose cache key matches."""
    bootstrap_resamples: int = 1000
    """Resamples of the bootstrap confidence intervals."""
    seed: int = 0
    """Seed of the bootstrap (generation.seed seeds sampling)."""

    def __post_init__(self) -> None:
        if isinstance(self.prompt, dict):
            self.prompt = PromptSettings(**self.prompt)
        if isinstance(self.judge, dict):
            self.judge = JudgeSettings(**self.judge)
        if isinstance(self.generation, dict):
            self.generation = GenerationSettings(**self.generation)
        if isinstance(self.qa, str):
            self.qa = [self.qa]
        if not self.qa:
            raise WikituneError("qa is empty: give at least one QA file (--qa FILE or qa=[...])")
        if self.backend not in ("hf", "openai"):
            raise WikituneError(f"backend must be hf or openai, got {self.backend!r}")
        if self.backend == "openai" and not self.base_url:
            raise WikituneError("backend=openai needs base_url (--base-url http://HOST:PORT/v1)")
        if self.backend == "openai" and (self.adapter or self.tokenizer):
            raise WikituneError("adapter and tokenizer are for the hf backend; serve the adapter with `wikitune serve --adapter` instead")
        if self.mode not in ("closed", "rag"):
            raise WikituneError(f"mode must be closed or rag, got {self.mode!r}")
        if self.rag_k < 1:
            raise WikituneError(f"rag_k must be 1 or more, got {self.rag_k}")
        if self.perplexity and self.backend != "hf":
            raise WikituneError("perplexity needs the model in process: backend=hf")
        if self.perplexity_block_size < 2:
            raise WikituneError(f"perplexity_block_size must be 2 or more, got {self.perplexity_block_size}")
        if not 0.0 < self.heldout_fraction < 1.0:
            raise WikituneError(f"heldout_fraction must be in (0, 1), got {self.heldout_fraction}")
        if self.bootstrap_resamples < 10:
            raise WikituneError(f"bootstrap_resamples must be 10 or more, got {self.bootstrap_resamples}")

    def cache_fields(self) -> dict[str, Any]:
        """Everything besides the question that decides an answer; local paths by their content."""
        return {
            "model": self.model if self.model == TINY else content_identity(self.model),
            "tokenizer": content_identity(self.tokenizer),
            "adapter": content_identity(resolve_adapter(self.adapter)) if self.adapter else None, "tiny": self.tiny,
            "dtype": self.dtype, "backend": self.backend, "base_url": self.base_url, "api": self.api,
            "mode": self.mode, "corpus": content_identity(Path(self.corpus) / formats.ARTICLES, whole=True) if self.mode == "rag" else None,
            "rag_k": self.rag_k if self.mode == "rag" else None,
            "prompt": asdict(self.prompt), "generation": asdict(self.generation),
        }


def content_identity(path: str | Path | None, *, whole: bool = False) -> str | None:
    """`path`, plus a digest of its content when it is a local file or directory (else the name as given: an HF id).

    A retrained adapter, a re-merged or replaced model, or an edited corpus must not be a cache hit
    just because its path is the same. Files up to WHOLE_HASH_BYTES (configs, tokenizers, most
    adapters, the demo's weights) are hashed whole; larger ones by size and modification time,
    because hashing a 20B checkpoint's 13 GB on every rerun would cost more than the cache saves,
    while any retrain, merge or copy writes the file anew and so changes its mtime (a same-size
    file written with its old mtime kept, e.g. `cp -p` of other weights, would go unnoticed).
    `whole=True` hashes every file whole (the RAG corpus: reading it costs no more than indexing it).

    Args:
        path: a file, a directory (every file under it, by relative path) or a non-path name.
        whole: hash content regardless of size.

    Returns:
        str | None: `path#digest`, `path` when it is not on disk, None for None.
    """
    if path is None:
        return None
    root = Path(path)
    if not root.exists():
        return str(path)
    files = sorted(f for f in root.rglob("*") if f.is_file()) if root.is_dir() else [root]
    digest = hashlib.sha256()
    for file in files:
        stat = file.stat()
        digest.update(f"{file.relative_to(root) if root.is_dir() else file.name}\0{stat.st_size}\0".encode("utf-8"))
        if whole or stat.st_size <= WHOLE_HASH_BYTES:
            with open(file, "rb") as handle:
                for block in iter(lambda: handle.read(2**20), b""):
                    digest.update(block)
        else:
            digest.update(str(stat.st_mtime_ns).encode("ascii"))
    return f"{path}#{digest.hexdigest()[:16]}"


def question_text(item: QAItem) -> str:
    """The user message of a QA item (multiple-choice options listed after the question)."""
    if item.choices:
        return item.question + "\n選択肢: " + "、".join(item.choices)
    return item.question


def chat_messages(settings: PromptSettings, question: str, context: str | None = None) -> list[dict]:
    """The chat-API form of a prompt: developer instructions (and retrieved context) as the system message."""
    instructions = developer_instructions(settings.developer, context)
    messages = [{"role": "system", "content": instructions}] if instructions else []
    return messages + [{"role": "user", "content": question}]


def adapter_run_config(adapter: str | None) -> dict[str, Any]:
    """The config.yaml of the training run an adapter belongs to: `adapter` itself when it is a run
    directory, else the run holding it (RUN/adapter, RUN/checkpoints/checkpoint-N); {} when none."""
    if not adapter:
        return {}
    path = Path(adapter)
    runs = [path]
    if path.name == formats.ADAPTER_DIR:
        runs.append(path.parent)
    elif path.parent.name == CHECKPOINTS:
        runs.append(path.parent.parent)
    run = next((r for r in runs if is_run_dir(r)), None)
    return formats.read_run_config(run) if run is not None else {}


def training_prompt(adapter: str | None) -> PromptSettings | None:
    """The prompt an SFT adapter run trained on, exactly as `sft` rendered it; None when `adapter`
    is not part of an SFT run (no adapter, a bare PEFT directory, a CPT run).

    SFT renders with the tokenizer's chat template pinned to its `current_date`, its
    `system_prompt` as the model identity, its `developer_prompt` and `reasoning_effort`
    (`wikitune.train.data.encode_qa`); these are the fields of the returned settings.
    """
    run = adapter_run_config(adapter)
    if "reasoning_effort" not in run or "developer_prompt" not in run:  # not an SFT run: no prompt of its own
        return None
    date = run.get("current_date")
    return PromptSettings(format="chat_template", reasoning_effort=str(run["reasoning_effort"]),
                          system_identity=run.get("system_prompt") or DEFAULT_IDENTITY,
                          developer=run.get("developer_prompt") or None, date=str(date) if date else None)


def resolve_prompt(cfg: QAEvalConfig) -> PromptSettings:
    """The prompt settings an evaluation renders with, as its config.yaml records them.

    `format: auto` (the default) means "the adapter's training prompt, else harmony": an SFT
    adapter run (hf backend) is evaluated on exactly the prompt it was trained on
    (`training_prompt`), whatever the other prompt settings say (a warning names the ones it
    overrides); anything else is rendered by openai-harmony's rules with the settings given.
    `format: harmony` or `chat_template` uses the settings given, for any adapter. A chat template
    with no date gets the adapter run's `current_date`, else today's, pinned so that config.yaml
    and the cache key say which date the prompts carried.
    """
    prompt = cfg.prompt
    if prompt.format == "auto":
        trained = training_prompt(cfg.adapter) if cfg.backend == "hf" else None
        if trained is None:
            return replace(prompt, format="harmony")
        default = PromptSettings()
        overridden = [f"{name} ({getattr(prompt, name)!r} -> {getattr(trained, name)!r})"
                      for name in ("reasoning_effort", "system_identity", "developer", "date")
                      if getattr(prompt, name) not in (getattr(default, name), getattr(trained, name))]
        if overridden:
            log.warning("eval: prompt.format=auto evaluates SFT adapter %s on its training prompt: %s; set "
                        "prompt.format=chat_template or harmony to use the prompt settings given", cfg.adapter, ", ".join(overridden))
        prompt = trained
    if prompt.format == "chat_template" and prompt.date is None:
        run_date = adapter_run_config(cfg.adapter).get("current_date")
        prompt = replace(prompt, date=str(run_date) if run_date else dt.date.today().isoformat())
    return prompt


def render_question(settings: PromptSettings, tokenizer: Any, question: str, context: str | None = None) -> str:
    """The prompt text an in-process model is given for one question (`settings` from `resolve_prompt`)."""
    if settings.format == "chat_template":
        return render_with_chat_template(tokenizer, settings, question, context=context)
    return render_prompt(settings, question, context=context)


def result_record(item: QAItem, generation: Generation, *, set_name: str, cache_key: str,
                  retrieved: list[int] | None = None, retrieval_hit: int | None = None,
                  prompt: str | None = None) -> dict[str, Any]:
    """One results.jsonl record (DESIGN.md) from a generation, with parsing and scores.

    `raw` is exactly what was generated (`Generation.raw`): a whole harmony completion, or an
    OpenAI-compatible server's message text as sent; for a server's reply `raw_reasoning` holds
    its separate reasoning text as sent (null when none). Both kinds are parsed by the one parser.
    `prompt` is the prompt text the model was given (hf backend; a server renders its own).
    """
    parsed = generation.parse()
    final = parsed.final
    record = {
        "id": item.id, "question": item.question, "answer": item.answer, "domain": item.domain,
        "raw": generation.raw, "final": final, "analysis": parsed.analysis, "flags": list(parsed.flags),
        "scores": score_answer(final, item.answer, item.aliases), "new_tokens": generation.new_tokens,
        "aliases": item.aliases, "set": set_name, "source": item.source, "stop_reason": generation.stop_reason,
        "tokens_saved": generation.tokens_saved, "cache_key": cache_key,
    }
    if generation.server_text:
        record["raw_reasoning"] = generation.reasoning
    if prompt is not None:
        record["prompt"] = prompt
    if retrieved is not None:
        record["retrieved"] = retrieved
        record["retrieval_hit"] = retrieval_hit
    return record


def _load_cached(path: Path) -> dict[str, dict]:
    """The records of an earlier run by cache key. Read leniently, not with formats.read_results:
    the last line of a run killed mid-write is cut, and only that question is answered again."""
    cached: dict[str, dict] = {}
    if path.is_file():
        with open(path, encoding="utf-8") as f:
            for line in f:
                try:
                    rec = json.loads(line)
                except json.JSONDecodeError:  # a line cut by a kill: answer that question again
                    continue
                if rec.get("cache_key"):
                    cached[rec["cache_key"]] = rec
    return cached


def rescore(record: dict[str, Any], item: QAItem, set_name: str) -> dict[str, Any]:
    """A stored record brought up to date with the question as the QA files now give it.

    The cache key covers what decides the answer, not how it is scored: a corrected gold answer, a
    new alias or a changed normaliser must change the score of a reused answer. Scoring the stored
    final is cheap; the judge's score, not cheap to redo, is kept.
    """
    kept = {name: value for name, value in (record.get("scores") or {}).items() if name not in SHORT_SCORES}
    return {**record, "question": item.question, "answer": item.answer, "aliases": item.aliases, "domain": item.domain,
            "set": set_name, "source": item.source, "scores": {**kept, **score_answer(record.get("final"), item.answer, item.aliases)}}


def run_eval(cfg: QAEvalConfig, *, backend: Any = None) -> Path:
    """Answer, score and summarise; returns the run directory.

    Args:
        cfg (QAEvalConfig): the resolved config.
        backend: an already built HFBackend (reused by benchmarks); default built from cfg.

    Raises:
        WikituneError: bad QA specs, a model that cannot load, a server that cannot be reached.
    """
    out = Path(cfg.output_dir)
    cfg = replace(cfg, prompt=resolve_prompt(cfg))
    items = [(qa_set.name, item) for qa_set in load_qa_sets(cfg.qa) for item in qa_set.items]
    _check_eval_dir(out)
    with OutputLock(out):  # a second eval into the same directory stops at once, naming this one
        return _answer_and_score(cfg, out, items, backend)


def _check_eval_dir(out: Path) -> None:
    """Refuse a directory that is not ours: not empty and without an eval run's config, or a training run."""
    if out.exists() and not out.is_dir():
        raise WikituneError(f"{out} exists and is not a directory; choose a new output_dir")
    if not out.is_dir() or not any(out.iterdir()):
        return
    if (out / formats.METRICS).is_file():
        raise WikituneError(f"{out} holds a training run; write the evaluation into its own output_dir")
    if not (out / formats.RUN_CONFIG).is_file():
        raise WikituneError(f"{out} is not empty and holds no wikitune run (no {formats.RUN_CONFIG}); nothing was "
                            "changed: choose an empty or new output_dir")


def _answer_and_score(cfg: QAEvalConfig, out: Path, items: list, backend: Any) -> Path:
    out.mkdir(parents=True, exist_ok=True)
    write_config(cfg, out / formats.RUN_CONFIG)

    base = json.dumps(cfg.cache_fields(), sort_keys=True, ensure_ascii=False)
    keys = [hashlib.sha256(f"{base}|{item.id}|{question_text(item)}".encode("utf-8")).hexdigest()[:24] for _, item in items]
    cached = _load_cached(out / formats.RESULTS) if cfg.resume else {}
    todo = [i for i, key in enumerate(keys) if key not in cached]
    log.info("eval: %d questions, %d cached, %d to answer", len(items), len(items) - len(todo), len(todo))

    index = None
    if cfg.mode == "rag" and todo:
        index = BM25Index.from_corpus(cfg.corpus)
    started = time.perf_counter()
    if cfg.backend == "hf" and backend is None and (todo or cfg.perplexity):
        model, tokenizer = load_model_and_tokenizer(cfg.model, cfg.tokenizer, cfg.adapter, tiny=cfg.tiny, dtype=cfg.dtype,
                                                    merge_adapter=cfg.generation.merge_adapter)
        backend = HFBackend(model, tokenizer, cfg.generation)
    if todo:
        answer = _answerer(cfg, backend)
        if not cfg.resume:
            formats.write_jsonl(out / formats.RESULTS, [])
        # hf: several batches per call, so a slot freed by an ended answer takes the next question
        step = cfg.generation.batch_size * 4 if cfg.backend == "hf" else max(cfg.concurrency * 4, 1)
        for start in range(0, len(todo), step):
            chunk = todo[start : start + step]
            contexts, retrieved, hits = [], [], []
            for i in chunk:
                name, item = items[i]
                if index is not None:
                    found = index.search(item.question, k=cfg.rag_k)
                    contexts.append(format_context(found))
                    retrieved.append([h.passage.pageid for h in found])
                    hits.append(retrieval_hit(item.source, found))
                else:
                    contexts.append(None)
            generations, prompts = answer([question_text(items[i][1]) for i in chunk], contexts)
            batch = []
            for j, (i, generation) in enumerate(zip(chunk, generations)):
                name, item = items[i]
                rec = result_record(item, generation, set_name=name, cache_key=keys[i],
                                    retrieved=retrieved[j] if index is not None else None,
                                    retrieval_hit=hits[j] if index is not None else None, prompt=prompts[j])
                cached[keys[i]] = rec
                batch.append(rec)
            # appended batch by batch: a killed run loses at most one batch
            formats.append_jsonl(out / formats.RESULTS, batch)
    seconds = time.perf_counter() - started

    # The final file: this run's questions in order, nothing stale.
    records = [rescore(cached[key], item, name) for key, (name, item) in zip(keys, items)]
    if cfg.judge.enabled:
        judge_records(records, cfg.judge)
    tmp = out / (formats.RESULTS + ".tmp")
    formats.write_jsonl(tmp, records)
    os.replace(tmp, out / formats.RESULTS)
    summary = summarize(records, resamples=cfg.bootstrap_resamples, seed=cfg.seed)
    summary["sets"] = {name: summarize([r for r in records if r["set"] == name], resamples=cfg.bootstrap_resamples, seed=cfg.seed)["overall"]
                       for name in dict.fromkeys(n for n, _ in items)}
    summary["run"] = {"model": cfg.model, "adapter": cfg.adapter, "backend": cfg.backend, "mode": cfg.mode,
                      "answered": len(todo), "cached": len(items) - len(todo),
                      "seconds": round(seconds, 3), "questions_per_second": round(len(todo) / seconds, 3) if todo and seconds > 0 else None}
    if cfg.perplexity:
        heldout = heldout_texts(cfg.corpus, cfg.heldout_fraction, limit=cfg.perplexity_max_documents)
        ppl = {"anime-heldout": perplexity(backend.model, backend.tokenizer, heldout, block_size=cfg.perplexity_block_size)}
        if cfg.perplexity_control:
            ppl["control"] = perplexity(backend.model, backend.tokenizer, control_texts(cfg.perplexity_control, limit=cfg.perplexity_max_documents),
                                        block_size=cfg.perplexity_block_size)
        summary["perplexity"] = ppl
    formats.write_summary(out, summary)
    return out


def _answerer(cfg: QAEvalConfig, backend: Any):
    """A function (questions, contexts) -> (generations, prompts) for the configured backend;
    prompts are the texts the model was given (hf), None each where a server renders them."""
    if cfg.backend == "openai":
        client = backend or OpenAIBackend(cfg.base_url, cfg.model, cfg.generation, api=cfg.api, concurrency=cfg.concurrency)
        return lambda questions, contexts: (client.chat(
            [chat_messages(cfg.prompt, q, c) for q, c in zip(questions, contexts)], reasoning_effort=cfg.prompt.reasoning_effort),
            [None] * len(questions))

    def answer(questions: list[str], contexts: list[str | None]) -> tuple[list[Generation], list[str]]:
        prompts = [render_question(cfg.prompt, backend.tokenizer, q, c) for q, c in zip(questions, contexts)]
        return backend.generate(prompts), prompts
    return answer
