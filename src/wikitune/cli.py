"""The `wikitune` command line: a thin layer over each stage's `run_*` function.

    wikitune extract demo --out corpus/demo --root 日本のアニメ作品
    wikitune corpus stats corpus/demo --expect titles.txt

Every command turns bad input into a one-line `error: ...` on stderr and exit status 2.
Each command's module is imported only when that command runs, so that `wikitune --help`,
`extract` and `crawl` start without loading torch.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import Annotated, Optional

import typer

from wikitune import __version__
from wikitune.errors import WikituneError
from wikitune.split import DEFAULT_HELDOUT_FRACTION

app = typer.Typer(
    name="wikitune",
    help="Turn a Wikipedia category tree into a domain-adapted LLM, and measure what it learned.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
corpus_app = typer.Typer(help="Inspect a corpus directory.", no_args_is_help=True)
app.add_typer(corpus_app, name="corpus")
qa_app = typer.Typer(help="QA sets: build question/answer pairs from a corpus.", no_args_is_help=True)
app.add_typer(qa_app, name="qa")


def _version(value: bool) -> None:
    if value:
        typer.echo(f"wikitune {__version__}")
        raise typer.Exit()


@app.callback()
def _main(
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Log progress at INFO level.")] = False,
    version: Annotated[Optional[bool], typer.Option("--version", callback=_version, is_eager=True, help="Print the version.")] = None,
) -> None:
    logging.basicConfig(level=logging.INFO if verbose else logging.WARNING, format="%(levelname)s %(message)s", stream=sys.stderr)


@app.command()
def extract(
    dump: Annotated[str, typer.Argument(help="pages-articles XML dump (.xml, .bz2, multistream, .gz) or `demo`.")],
    out: Annotated[Path, typer.Option("--out", help="Corpus directory to write: new, empty, or a wikitune corpus (replaced once the new one is complete).")],
    root: Annotated[list[str], typer.Option("--root", help="Root category (repeatable); none = every article.")] = [],
    depth: Annotated[Optional[int], typer.Option("--depth", help="Most sub-category steps below a root (root members: 0).")] = None,
    exclude: Annotated[list[str], typer.Option("--exclude", help="Regex of categories not to enter (repeatable).")] = [],
    categorylinks: Annotated[Optional[Path], typer.Option("--categorylinks", help="SQL dump of categorylinks.")] = None,
    linktarget: Annotated[Optional[Path], typer.Option("--linktarget", help="SQL dump of linktarget (2025 schema).")] = None,
    page: Annotated[Optional[Path], typer.Option("--page", help="SQL dump of page.")] = None,
    workers: Annotated[int, typer.Option("--workers", help="Conversion processes; 0 = one per core.")] = 0,
) -> None:
    """Build a corpus directory from a Wikipedia XML dump, offline."""
    from wikitune.corpus.extract import ExtractConfig, run_extract

    cfg = ExtractConfig(
        dump=dump, out=out, roots=list(root), depth=depth, exclude=list(exclude),
        categorylinks=categorylinks, linktarget=linktarget, page=page, workers=workers,
    )
    result = run_extract(cfg)
    counts = result.manifest["counts"]
    skipped = ", ".join(f"{k} {v}" for k, v in counts["skipped"].items()) or "none"
    typer.echo(
        f"{result.out}: {counts['articles']} articles, {counts['characters']} characters, "
        f"{counts['categories']} categories (skipped: {skipped})"
        + (" — the dump was truncated, see the warning above" if counts["truncated"] else "")
    )


@app.command()
def crawl(
    root: Annotated[list[str], typer.Option("--root", help="Root category (repeatable, at least one).")],
    out: Annotated[Path, typer.Option("--out", help="Corpus directory to write (new, empty or a wikitune corpus); an interrupted crawl of it is resumed.")],
    api: Annotated[str, typer.Option("--api", help="URL of the wiki's api.php.")] = "https://ja.wikipedia.org/w/api.php",
    depth: Annotated[Optional[int], typer.Option("--depth", help="Most sub-category steps below a root (root members: 0).")] = None,
    exclude: Annotated[list[str], typer.Option("--exclude", help="Regex of categories not to enter (repeatable).")] = [],
    contact: Annotated[Optional[str], typer.Option("--contact", help="Your e-mail or URL, sent in the User-Agent (Wikimedia policy).")] = None,
    interval: Annotated[float, typer.Option("--interval", help="Minimum seconds between requests.")] = 1.0,
    max_retries: Annotated[int, typer.Option("--max-retries", help="Retries of a failing request (429, 5xx, maxlag, resets).")] = 8,
    refresh: Annotated[bool, typer.Option("--refresh", help="Re-list categories; re-fetch pages whose revision changed.")] = False,
    restart: Annotated[bool, typer.Option("--restart", help="Discard the crawl state in --out and start over.")] = False,
    progress: Annotated[Optional[bool], typer.Option("--progress/--no-progress", help="Progress bar (default: on a terminal).")] = None,
) -> None:
    """Build a corpus directory from a live wiki over the MediaWiki API (polite, resumable)."""
    from wikitune.corpus.crawl import CrawlConfig, run_crawl

    cfg = CrawlConfig(
        roots=list(root), out=out, api=api, depth=depth, exclude=list(exclude), contact=contact,
        interval=interval, max_retries=max_retries, refresh=refresh, restart=restart, progress=progress,
    )
    result = run_crawl(cfg)
    m = result.manifest
    counts = m["counts"]
    skipped = ", ".join(f"{k} {v}" for k, v in counts["skipped"].items()) or "none"
    retries = ", ".join(f"{k} {v}" for k, v in m["retries"]["by_kind"].items()) or "none"
    typer.echo(
        f"{result.out}: {counts['articles']} articles, {counts['characters']} characters, "
        f"{counts['categories']} categories (skipped: {skipped}); "
        f"{m['requests']['total']} requests, retries: {retries}"
    )


@corpus_app.command("stats")
def corpus_stats(
    corpus: Annotated[Path, typer.Argument(help="Corpus directory written by extract or crawl.")],
    expect: Annotated[Optional[Path], typer.Option("--expect", help="Text file of titles you expect, one per line.")] = None,
    json_out: Annotated[bool, typer.Option("--json", help="Print JSON instead of text.")] = False,
    top: Annotated[int, typer.Option("--top", help="How many of the largest categories to list.")] = 10,
) -> None:
    """Counts of a corpus, and with --expect which expected titles are missing and why."""
    from wikitune.corpus.stats import corpus_stats as compute, format_stats

    stats = compute(corpus, expect=expect, top=top)
    if json_out:
        import json

        typer.echo(json.dumps(stats, ensure_ascii=False, indent=2))
    else:
        typer.echo(format_stats(stats))


@qa_app.command("build")
def qa_build(
    corpus: Annotated[Path, typer.Argument(help="Corpus directory written by extract or crawl.")],
    out: Annotated[Path, typer.Option("--out", help="QA directory to write (train/test/unseen.jsonl).")],
    test_fraction: Annotated[float, typer.Option("--test-fraction", help="Share of training articles' facts put in test.jsonl.")] = 0.2,
    heldout_fraction: Annotated[float, typer.Option("--heldout-fraction", help="Share of articles held out (must match cpt).")] = DEFAULT_HELDOUT_FRACTION,
    domain: Annotated[str, typer.Option("--domain", help="Domain tag of every question.")] = "anime",
    llm_base_url: Annotated[Optional[str], typer.Option("--llm-base-url", help="Also ask an OpenAI-compatible server for questions (optional).")] = None,
    llm_model: Annotated[str, typer.Option("--llm-model", help="Model name on that server.")] = "openai/gpt-oss-120b",
    llm_per_article: Annotated[int, typer.Option("--llm-per-article", help="LLM questions asked for per article.")] = 5,
) -> None:
    """Derive question/answer pairs from a corpus's infoboxes and lead sentences."""
    from wikitune.qa.build import QABuildConfig, run_qa_build
    from wikitune.qa.llm import LLMQuestionSettings

    llm = LLMQuestionSettings(base_url=llm_base_url, model=llm_model, per_article=llm_per_article) if llm_base_url else None
    result = run_qa_build(QABuildConfig(corpus=corpus, out=out, test_fraction=test_fraction, heldout_fraction=heldout_fraction,
                                        domain=domain, llm=llm))
    c = result.counts
    typer.echo(f"{result.out}: train {c['train']}, test {c['test']}, unseen {c['unseen']} questions")


@app.command()
def augment(
    corpus: Annotated[Path, typer.Argument(help="Corpus directory written by extract or crawl.")],
    out: Annotated[Path, typer.Option("--out", help="Augmentation directory to write (documents.jsonl, manifest.json).")],
    method: Annotated[str, typer.Option("--method", help="facts: every infobox/lead fact in K template phrasings (no LLM); "
                                        "rephrase: K rewrites in distinct styles; entigraph: texts about entity pairs; "
                                        "qa: question/answer pairs (LLM methods need --base-url and --model).")],
    k: Annotated[int, typer.Option("--k", help="Outputs per article: phrasings (facts), rewrites, entity pairs, QA requests.")] = 5,
    seed: Annotated[int, typer.Option("--seed", help="Seed of every choice and of the generator's sampling.")] = 0,
    heldout_fraction: Annotated[float, typer.Option("--heldout-fraction", help="Share of articles held out (must match cpt); never augmented.")] = DEFAULT_HELDOUT_FRACTION,
    exclude_qa: Annotated[list[Path], typer.Option("--exclude-qa", help="QA file whose facts no document may state (repeatable).")] = [],
    base_url: Annotated[Optional[str], typer.Option("--base-url", help="OpenAI-compatible API root of the generator, e.g. http://127.0.0.1:8000/v1.")] = None,
    model: Annotated[Optional[str], typer.Option("--model", help="The generator's model name on that server.")] = None,
    concurrency: Annotated[int, typer.Option("--concurrency", help="Requests in flight at most.")] = 8,
    temperature: Annotated[float, typer.Option("--temperature", help="Sampling temperature of the generator.")] = 1.0,
    top_p: Annotated[float, typer.Option("--top-p", help="Nucleus sampling mass of the generator.")] = 1.0,
    max_new_tokens: Annotated[int, typer.Option("--max-new-tokens", help="Token limit of one reply (analysis included).")] = 2048,
    reasoning_effort: Annotated[Optional[str], typer.Option("--reasoning-effort", help="low|medium|high, for a reasoning model.")] = None,
    max_tokens_total: Annotated[Optional[int], typer.Option("--max-tokens-total", help="Budget of generated tokens; stops sending when spent.")] = None,
    timeout: Annotated[float, typer.Option("--timeout", help="Seconds per request before it is retried.")] = 600.0,
    retries: Annotated[int, typer.Option("--retries", help="Retries after a 5xx, timeout or connection error.")] = 4,
    retry_backoff: Annotated[float, typer.Option("--retry-backoff", help="Seconds before the first retry (doubled each time).")] = 1.0,
    triples: Annotated[bool, typer.Option("--triples", help="entigraph: also K texts about entity triples.")] = False,
) -> None:
    """Training documents that restate the facts of the training articles, for CPT (knowledge injection)."""
    from wikitune.augment.run import AugmentConfig, run_augment

    result = run_augment(AugmentConfig(
        corpus=corpus, out=out, method=method, k=k, seed=seed, heldout_fraction=heldout_fraction, exclude_qa=list(exclude_qa),
        base_url=base_url, model=model, concurrency=concurrency, temperature=temperature, top_p=top_p,
        max_new_tokens=max_new_tokens, reasoning_effort=reasoning_effort, max_tokens_total=max_tokens_total, timeout=timeout,
        retries=retries, retry_backoff=retry_backoff, triples=triples))
    m = result.manifest
    rejected = ", ".join(f"{reason} {n}" for reason, n in m["rejected"].items()) or "none"
    if m["method"] == "facts":
        typer.echo(f"{result.out}: {m['documents']} documents, {m['facts']} facts of {m['articles']} articles, "
                   f"{m['tokens']} {m['token_unit']} (rejected: {rejected})")
        return
    qa = f", {m['qa']} QA pairs" if "qa" in m else ""
    budget = "; token budget spent, output incomplete (rerun with a larger --max-tokens-total to continue)" if not m["complete"] else ""
    typer.echo(f"{result.out}: {m['documents']} documents{qa} of {m['articles']} articles, {m['requests']} requests, "
               f"{m['cached_replies']} cached replies, {m['generated_tokens']} generated tokens (rejected: {rejected}){budget}")


@app.command()
def cpt(
    overrides: Annotated[Optional[list[str]], typer.Argument(help="key=value overrides (dotted keys: lora.r=8).")] = None,
    config: Annotated[Optional[Path], typer.Option("--config", help="YAML config (keys of CPTConfig), e.g. configs/tiny/cpt.yaml.")] = None,
    resume: Annotated[bool, typer.Option("--resume", help="Continue the run in output_dir from its last checkpoint.")] = False,
    plan: Annotated[bool, typer.Option("--plan", help="Print parameters, steps and a peak GPU memory estimate from config.json; train nothing.")] = False,
    json_out: Annotated[bool, typer.Option("--json", help="With --plan: print one JSON object.")] = False,
    gpu_memory_gib: Annotated[Optional[float], typer.Option("--gpu-memory-gib", help="GPU memory to plan and check against (default: the visible GPU's, else 80).")] = None,
    corpus_tokens: Annotated[Optional[int], typer.Option("--corpus-tokens", help="With --plan: training tokens per epoch instead of counting the corpus.")] = None,
) -> None:
    """Continued pre-training (LoRA on attention and experts) on a corpus directory."""
    from wikitune.config import load_config
    from wikitune.train.cpt import CPTConfig, run_cpt

    cfg = load_config(CPTConfig, config, list(overrides or []) + (["resume=true"] if resume else []))
    if _plan_or_check(cfg, plan, json_out, gpu_memory_gib, corpus_tokens):
        return
    run = run_cpt(cfg)
    _echo_train_line(run)


@app.command()
def sft(
    overrides: Annotated[Optional[list[str]], typer.Argument(help="key=value overrides (dotted keys: lora.r=8).")] = None,
    config: Annotated[Optional[Path], typer.Option("--config", help="YAML config (keys of SFTConfig), e.g. configs/tiny/sft.yaml.")] = None,
    resume: Annotated[bool, typer.Option("--resume", help="Continue the run in output_dir from its last checkpoint.")] = False,
    plan: Annotated[bool, typer.Option("--plan", help="Print parameters, steps and a peak GPU memory estimate from config.json; train nothing.")] = False,
    json_out: Annotated[bool, typer.Option("--json", help="With --plan: print one JSON object.")] = False,
    gpu_memory_gib: Annotated[Optional[float], typer.Option("--gpu-memory-gib", help="GPU memory to plan and check against (default: the visible GPU's, else 80).")] = None,
    corpus_tokens: Annotated[Optional[int], typer.Option("--corpus-tokens", help="With --plan: training tokens per epoch instead of counting the QA pairs.")] = None,
) -> None:
    """Supervised fine-tuning (LoRA) on QA pairs as harmony chats, loss on the final answer only."""
    from wikitune.config import load_config
    from wikitune.train.sft import SFTConfig, run_sft

    cfg = load_config(SFTConfig, config, list(overrides or []) + (["resume=true"] if resume else []))
    if _plan_or_check(cfg, plan, json_out, gpu_memory_gib, corpus_tokens):
        return
    run = run_sft(cfg)
    _echo_train_line(run)


def _plan_or_check(cfg, plan: bool, json_out: bool, gpu_memory_gib: Optional[float], corpus_tokens: Optional[int]) -> bool:
    """With --plan print the plan and return True (nothing is trained); otherwise stop a run whose
    memory estimate exceeds the GPU before its weights load, and return False."""
    from wikitune.train.plan import check_fits, format_plan, make_plan

    if json_out and not plan:
        raise WikituneError("--json goes with --plan")
    if corpus_tokens is not None and corpus_tokens < 1:
        raise WikituneError(f"--corpus-tokens must be 1 or more, got {corpus_tokens}")
    if gpu_memory_gib is not None and gpu_memory_gib <= 0:
        raise WikituneError(f"--gpu-memory-gib must be positive, got {gpu_memory_gib}")
    if not plan:
        check_fits(cfg, gpu_memory_gib)
        return False
    result = make_plan(cfg, gpu_memory_gib=gpu_memory_gib, corpus_tokens=corpus_tokens)
    if json_out:
        import json

        typer.echo(json.dumps(result, ensure_ascii=False))
    else:
        typer.echo(format_plan(result))
    return True


def _echo_train_line(run: Path) -> None:
    """Print a finished run's result line once: under `accelerate launch` every process returns
    from training, but only the main one (rank 0) prints, after it wrote summary.json."""
    from wikitune.train.runtime import rank_zero

    if rank_zero():
        typer.echo(_train_line(run))


def _train_line(run: Path) -> str:
    import json

    s = json.loads((run / "summary.json").read_text(encoding="utf-8"))
    val = f", validation loss {s['final_eval_loss']:.4f}" if s.get("final_eval_loss") is not None else ""
    return f"{run}: {s['steps']} steps, loss {s['first_loss']:.4f} -> {s['final_loss']:.4f}{val}"


@app.command()
def merge(
    run: Annotated[Path, typer.Argument(help="Run directory (cpt/sft) or adapter directory.")],
    out: Annotated[Path, typer.Option("--out", help="Directory for the merged Hugging Face model.")],
) -> None:
    """Merge a run's LoRA adapter into its base model (usable without PEFT)."""
    from wikitune.gptoss.merge import run_merge

    typer.echo(f"{run_merge(run, out)}: merged model and tokenizer")


@app.command("eval", context_settings={"allow_extra_args": False})
def eval_(
    overrides: Annotated[Optional[list[str]], typer.Argument(help="key=value overrides (dotted keys: prompt.reasoning_effort=high).")] = None,
    config: Annotated[Optional[Path], typer.Option("--config", help="YAML config (keys of QAEvalConfig).")] = None,
    model: Annotated[Optional[str], typer.Option("--model", help="tiny-gpt-oss, HF id or path; the served name with --backend openai.")] = None,
    tokenizer: Annotated[Optional[str], typer.Option("--tokenizer", help="Tokenizer directory (hf backend).")] = None,
    adapter: Annotated[Optional[str], typer.Option("--adapter", help="PEFT adapter or run directory (hf backend).")] = None,
    qa: Annotated[Optional[list[str]], typer.Option("--qa", help="QA spec [FORMAT:]PATH[:N][@DOMAIN] or builtin:seed (repeatable).")] = None,
    out: Annotated[Optional[str], typer.Option("--out", help="Run directory (output_dir).")] = None,
    backend: Annotated[Optional[str], typer.Option("--backend", help="hf | openai.")] = None,
    base_url: Annotated[Optional[str], typer.Option("--base-url", help="OpenAI-compatible API root, e.g. http://127.0.0.1:8000/v1.")] = None,
    mode: Annotated[Optional[str], typer.Option("--mode", help="closed | rag (BM25 passages of `corpus`).")] = None,
) -> None:
    """Answer QA sets with a model; score them; write results.jsonl and summary.json."""
    import json

    from wikitune.evaluate.run import QAEvalConfig, run_eval
    from wikitune.config import load_config

    items = list(overrides or [])
    flags = {"model": model, "tokenizer": tokenizer, "adapter": adapter, "qa": list(qa) if qa else None,
             "output_dir": out, "backend": backend, "base_url": base_url, "mode": mode}
    items += [f"{key}={json.dumps(value, ensure_ascii=False)}" for key, value in flags.items() if value is not None]
    cfg = load_config(QAEvalConfig, config, items)
    run = run_eval(cfg)
    summary = json.loads((run / "summary.json").read_text(encoding="utf-8"))
    for domain, block in summary["domains"].items():
        scores = ", ".join(f"{k} {v['mean']:.3f}" for k, v in block["scores"].items()) or "no short-answer gold"
        flags_text = ", ".join(f"{k} {v:.2f}" for k, v in block["flags"].items()) or "none"
        typer.echo(f"{domain}: n={block['n']}, {scores}; flags: {flags_text}")
    typer.echo(f"{run}: results.jsonl, summary.json")


@app.command()
def compare(
    runs: Annotated[list[Path], typer.Argument(help="Eval run directories; differences are paired, to the first.")],
    out: Annotated[Optional[Path], typer.Option("--out", help="Directory for compare.md and compare.json.")] = None,
    by_set: Annotated[bool, typer.Option("--by-set", help="Columns per QA file instead of per domain.")] = False,
) -> None:
    """Table of runs x domains: scores with 95% CIs, paired differences to the first run with 95% CIs."""
    from wikitune.evaluate.compare import run_compare

    typer.echo(run_compare(list(runs), out, group="set" if by_set else "domain"))


@app.command()
def serve(
    model: Annotated[Optional[str], typer.Option("--model", help="tiny-gpt-oss, HF id or path (default: the adapter run's).")] = None,
    tokenizer: Annotated[Optional[str], typer.Option("--tokenizer", help="Tokenizer directory.")] = None,
    adapter: Annotated[Optional[str], typer.Option("--adapter", help="PEFT adapter or run directory.")] = None,
    port: Annotated[int, typer.Option("--port", help="Port on 127.0.0.1.")] = 8000,
    max_new_tokens: Annotated[int, typer.Option("--max-new-tokens", help="Default token budget of a reply.")] = 256,
    max_body_bytes: Annotated[int, typer.Option("--max-body-bytes", help="Larger request bodies are refused (413).")] = 1 << 20,
) -> None:
    """OpenAI-compatible /v1/chat/completions server for a model (+ adapter) on 127.0.0.1."""
    from wikitune.gptoss.serve import serve as run_server

    run_server(model, tokenizer=tokenizer, adapter=adapter, port=port, max_new_tokens=max_new_tokens, max_body_bytes=max_body_bytes)


@app.command()
def run(
    overrides: Annotated[Optional[list[str]], typer.Argument(help="key=value overrides of the study config (dotted: sft.epochs=2).")] = None,
    config: Annotated[Optional[Path], typer.Option("--config", help="Study YAML (StudyConfig); none = the CPU demo (configs/tiny/study.yaml).")] = None,
    out: Annotated[Optional[Path], typer.Option("--out", help="Study directory (output_dir); default runs/demo.")] = None,
    force: Annotated[list[str], typer.Option("--force", help="Rerun this stage (and what follows) even if cached (repeatable).")] = [],
) -> None:
    """Everything: corpus, QA, CPT, SFT, evaluation of every model, report. Cached per stage."""
    from wikitune.study.config import load_study_config
    from wikitune.study.stages import run_study

    items = list(overrides or []) + ([f"output_dir={out}"] if out else [])
    cfg = load_study_config(config, items)
    results, report = run_study(cfg, force=list(force))
    ran = [name for name, r in results.items() if r.status == "ran"]
    typer.echo(f"{cfg.output_dir}: {len(ran)} of {len(results)} stages ran ({', '.join(ran) or 'all cached'}); report: {report}")


@app.command()
def report(
    run_dir: Annotated[Path, typer.Argument(help="A study directory (wikitune run) or a directory of run directories.")],
    out: Annotated[Optional[Path], typer.Option("--out", help="Where to write the report; default RUN_DIR/report (required for a corpus).")] = None,
) -> None:
    """Write RUN_DIR/report/index.html and report.md from the run artifacts (no model is run)."""
    from wikitune.study.report import write_report

    typer.echo(f"{write_report(run_dir, out)}")


organism_app = typer.Typer(help="The demo's model organism: a general (non-anime) world and its base model.", no_args_is_help=True)
app.add_typer(organism_app, name="organism")


@organism_app.command("base")
def organism_base(
    out: Annotated[Path, typer.Option("--out", help="Directory to write: world files, manifest.json, metrics.jsonl, model/.")],
    seed: Annotated[int, typer.Option("--seed", help="Seed of the world, the initial weights and the data order.")] = 0,
    anime_corpus: Annotated[Optional[Path], typer.Option("--anime-corpus", help="Corpus whose text the BPE also learns; default the demo wiki.")] = None,
    epochs: Annotated[Optional[int], typer.Option("--epochs", help="Passes over the packed blocks.")] = None,
    lr: Annotated[Optional[float], typer.Option("--lr", help="Peak learning rate.")] = None,
    max_steps: Annotated[Optional[int], typer.Option("--max-steps", help="Stop after this many steps (smoke runs).")] = None,
) -> None:
    """Generate the general world and train the tiny gpt-oss on it in full (CPU, minutes)."""
    import json

    from wikitune.organism.base import BaseConfig, train_base

    given = {"epochs": epochs, "lr": lr, "max_steps": max_steps}
    cfg = BaseConfig(out=str(out), seed=seed, anime_corpus=str(anime_corpus) if anime_corpus else None,
                     **{key: value for key, value in given.items() if value is not None})
    model_dir = train_base(cfg)
    manifest = json.loads((out / "manifest.json").read_text(encoding="utf-8"))
    typer.echo(f"{model_dir}: {manifest['steps']} steps, loss {manifest['first_loss']:.3f} -> {manifest['final_loss']:.3f}, "
               f"{manifest['seconds']:.0f}s; control QA: {out / 'control.jsonl'}")


def main() -> None:
    """Console entry point: known errors become one line on stderr and exit status 2."""
    try:
        app()  # standalone: usage errors are printed by Typer with status 2
    except WikituneError as err:
        typer.echo(f"error: {err}", err=True)
        sys.exit(2)
    except KeyboardInterrupt:
        sys.exit(130)


if __name__ == "__main__":
    main()
