"""`wikitune report RUN_DIR`: one HTML page and one Markdown file from a study's artifacts.

    wikitune report runs/demo        # writes runs/demo/report/index.html and report.md

The report only reads what the stages wrote (it never runs a model): the corpus directory
(`manifest.json`, `articles.jsonl`, optional `stats.json`), training runs (directories with
`metrics.jsonl`: `config.yaml`, `summary.json`, `lora_coverage.json`), and evaluation runs
(directories with `summary.json` + `results.jsonl`). Stages are found by their contents, one level
below RUN_DIR, so the report works for a `wikitune run` study and for hand-made run directories
alike. Everything taken from the runs is HTML-escaped (article text and model output are
untrusted) and the page needs no network: images are PNG files beside it.
"""

from __future__ import annotations

import html
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from wikitune import formats
from wikitune.corpus.stats import corpus_stats
from wikitune.errors import WikituneError
from wikitune.evaluate.compare import comparison_rows
from wikitune.train.lora import COVERAGE_FILE

REPORT_DIR = "report"
RESULTS_JSON = "results.json"
"""Machine-readable results beside the report: the comparison schema of `compare.json`."""
# Evaluation runs in this order when their directory names say what they are; others follow by name.
RUN_ORDER = ["eval-base", "eval-raw-cpt", "eval-sft-only", "eval-raw-cpt-sft", "eval-rag"]
HEADLINE_SCORES = ["exact_match", "char_f1", "contains"]
FLAGS = ["no_final", "loop_stopped", "truncated"]
EXAMPLES_PER_DOMAIN = 5
# The seed report's 表1, per training run: what was trained, how, and what it cost.
HYPERPARAMETERS = ["model", "adapter", "adapter_mode", "lora.r", "lora.alpha", "lora.dropout", "lora.target_modules",
                   "lora.target_parameters", "block_size", "max_length", "epochs", "max_steps", "batch_size", "grad_accum",
                   "learning_rate", "lr_scheduler", "warmup", "optim", "seed"]
RESULT_KEYS = ["steps", "train_articles", "heldout_articles", "train_tokens", "conversations", "padding_tokens",
               "trainable_by_kind.attention", "trainable_by_kind.experts", "first_loss", "final_loss", "final_eval_loss",
               "final_eval_ppl", "tokens_per_s", "train_seconds", "device"]


@dataclass
class Artifacts:
    """What a study directory holds, as read from disk."""

    root: Path
    corpus: dict[str, Any] | None = None
    training: dict[str, dict[str, Any]] = field(default_factory=dict)
    evals: dict[str, dict[str, Any]] = field(default_factory=dict)


def _read_json(path: Path) -> Any:
    return formats.read_json(path, "an artifact of a wikitune stage")


def collect(root: Path) -> Artifacts:
    """Find and read the stage outputs under `root` (see the module docstring)."""
    root = Path(root)
    if not root.is_dir():
        raise WikituneError(f"{root}: no such run directory")
    found = Artifacts(root=root)
    candidates = [root] + sorted(p for p in root.iterdir() if p.is_dir() and not p.name.endswith((".partial", ".old")))
    for path in candidates:
        if path.name == REPORT_DIR:
            continue
        if formats.is_corpus(path) and found.corpus is None:
            found.corpus = _corpus_section(path)
        if formats.is_training_run(path):
            found.training[path.name] = {
                "metrics": formats.read_metrics(path),
                "config": formats.read_run_config(path) if (path / formats.RUN_CONFIG).is_file() else {},
                "summary": formats.read_summary(path) if (path / formats.SUMMARY).is_file() else {},
                "coverage": _read_json(path / COVERAGE_FILE) if (path / COVERAGE_FILE).is_file() else None,
            }
        if formats.is_eval_run(path):
            found.evals[path.name] = {"summary": formats.read_summary(path), "results": formats.read_results(path)}
    if found.corpus is None and not found.training and not found.evals:
        raise WikituneError(f"{root}: no corpus, training run or evaluation run found below it")
    order = {name: i for i, name in enumerate(RUN_ORDER)}
    found.evals = dict(sorted(found.evals.items(), key=lambda kv: (order.get(kv[0], len(order)), kv[0])))
    return found


def _corpus_section(path: Path) -> dict[str, Any]:
    if (path / "stats.json").is_file():
        return _read_json(path / "stats.json")
    return corpus_stats(path)


# ---- plots ---------------------------------------------------------------------------------------
def _plot_losses(name: str, metrics: list[dict[str, Any]], out: Path) -> Path | None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    series: dict[str, tuple[list[float], list[float]]] = {}
    for row in metrics:
        step = row.get("step")
        if step is None:
            continue
        for key, value in row.items():
            if "loss" in key and isinstance(value, (int, float)) and math.isfinite(value):
                xs, ys = series.setdefault(key, ([], []))
                xs.append(step)
                ys.append(value)
    if not series:
        return None
    fig, ax = plt.subplots(figsize=(6, 3.2), dpi=100)
    for key, (xs, ys) in sorted(series.items()):
        ax.plot(xs, ys, marker="o" if len(xs) < 30 else None, markersize=3, label=key)
    ax.set_xlabel("step")
    ax.set_ylabel("loss")
    ax.set_title(f"{name}: loss")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    path = out / f"loss-{name}.png"
    fig.savefig(path)
    plt.close(fig)
    return path


def _plot_scores(domain: str, runs: list[str], scores: dict[str, list[dict[str, Any] | None]], out: Path) -> Path | None:
    """Grouped bars: for each run, one bar per score (mean with its 95% CI), value printed on top."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    if not any(s for values in scores.values() for s in values):
        return None
    fig, ax = plt.subplots(figsize=(7, 3.4), dpi=100)
    width = 0.8 / max(1, len(scores))
    for i, (name, values) in enumerate(scores.items()):
        xs = [x + (i - (len(scores) - 1) / 2) * width for x in range(len(runs))]
        means = [v["mean"] if v else 0.0 for v in values]
        low = [max(0.0, v["mean"] - v["ci95"][0]) if v and v.get("ci95") else 0.0 for v in values]
        high = [max(0.0, v["ci95"][1] - v["mean"]) if v and v.get("ci95") else 0.0 for v in values]
        bars = ax.bar(xs, means, width=width, yerr=[low, high], capsize=3, label=name)
        for bar, v in zip(bars, values):
            ax.annotate("n/a" if v is None else f"{v['mean']:.2f}", (bar.get_x() + bar.get_width() / 2, bar.get_height()),
                        ha="center", va="bottom", fontsize=7, xytext=(0, 2), textcoords="offset points")
    ax.set_xticks(list(range(len(runs))), runs, rotation=20, ha="right")
    ax.set_ylim(0, 1.05)
    ax.set_ylabel("score")
    ax.set_title(f"{domain}: mean with 95% CI")
    ax.legend(fontsize=8)
    fig.tight_layout()
    safe = "".join(ch if ch.isascii() and ch.isalnum() else "_" for ch in domain)
    path = out / f"scores-{safe}.png"
    fig.savefig(path)
    plt.close(fig)
    return path


# ---- tables -------------------------------------------------------------------------------------
@dataclass
class Table:
    title: str
    header: list[str]
    rows: list[list[str]]
    id: str = ""


def _fmt(value: Any) -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def _score_cell(score: dict[str, Any] | None) -> str:
    if not score:
        return "–"
    low, high = score.get("ci95") or (None, None)
    ci = f" [{low:.3f}, {high:.3f}]" if low is not None else ""
    return f"{score['mean']:.3f}{ci}"


def _flatten(config: Any, prefix: str = "") -> list[tuple[str, str]]:
    if isinstance(config, dict):
        rows: list[tuple[str, str]] = []
        for key, value in config.items():
            rows.extend(_flatten(value, f"{prefix}{key}."))
        return rows
    return [(prefix.rstrip("."), json.dumps(config, ensure_ascii=False) if isinstance(config, (list, dict)) else _fmt(config))]


def _run_name(directory: str) -> str:
    """A study's run name from its eval stage directory: `eval-raw-cpt` -> `raw-cpt`."""
    return directory[len("eval-"):] if directory.startswith("eval-") else directory


def study_comparison(art: Artifacts) -> dict[str, Any]:
    """The study's comparison (DESIGN.md row schema): every run's own scores, every run vs `base`,
    and every other run vs `raw-cpt` (the recipe the others must beat), paired over the questions
    both answered. Written to `report/results.json`."""
    return _compare_runs({_run_name(name): e["results"] for name, e in art.evals.items()})


def _compare_runs(results: dict[str, list[dict[str, Any]]]) -> dict[str, Any]:
    names = list(results)
    pairs = [(run, "base") for run in names if run != "base" and "base" in results]
    pairs += [(run, "raw-cpt") for run in names if run not in ("base", "raw-cpt") and "raw-cpt" in results]
    if not pairs and len(names) > 1:  # not a study's names: everything against the first run, as `compare` does
        pairs = [(run, names[0]) for run in names[1:]]
    return comparison_rows(results, pairs)


def findings(comparison: dict[str, Any], metric: str = "exact_match") -> list[str]:
    """One sentence per paired difference whose 95% interval excludes 0, generated from the rows
    (nothing else is called a finding), then one saying how many were not."""
    rows = [r for r in comparison["rows"] if r["vs"] is not None and r["metric"] == metric]
    said = []
    for r in rows:
        if r["ci_low"] > 0 or r["ci_high"] < 0:
            verb = "beats" if r["mean"] > 0 else "falls behind"
            said.append(f"{r['run']} {verb} {r['vs']} on {r['domain']}: {metric} {r['mean']:+.3f} "
                        f"(95% paired bootstrap CI [{r['ci_low']:+.3f}, {r['ci_high']:+.3f}], n={r['n']}).")
    rest = len(rows) - len(said)
    if not rows:
        return [f"No paired comparison of {metric} (one run, or no scored questions)."]
    said.append(f"{rest} other paired difference{'s' if rest != 1 else ''} of {metric} "
                f"{'has' if rest == 1 else 'have'} a 95% interval that includes 0: no finding is claimed there.")
    return said


def _seed_caveat(root: Path) -> list[str]:
    """A study's own report rests on its one seed: say which, and how to test the findings on several."""
    study = Path(root) / "study.yaml"
    if not study.is_file():
        return []
    import yaml

    seed = (yaml.safe_load(study.read_text(encoding="utf-8")) or {}).get("seed")
    return [f"Every finding above rests on one seed ({seed}); a list of seeds (`wikitune run seeds=[42,43,44]`) reruns "
            "the study on each and states only what holds on every one."] if seed is not None else []


def _paired_cell(row: dict[str, Any] | None) -> str:
    if row is None:
        return "–"
    return f"{row['mean']:+.3f} [{row['ci_low']:+.3f}, {row['ci_high']:+.3f}] n={row['n']}"


def build_tables(art: Artifacts) -> dict[str, list[Table]]:
    """Every table of the report, grouped by section."""
    # The answer first: what each model knows (and lost); then how it was trained, and on what.
    sections: dict[str, list[Table]] = {"Results": [], "Training": [], "Corpus": []}
    c = art.corpus
    if c:
        rows = [["articles", _fmt(c.get("articles"))], ["characters", _fmt(c.get("characters"))],
                ["categories", _fmt(c.get("categories"))], ["source", _fmt(c.get("source"))]]
        for name, train in art.training.items():
            # CPT summaries count the corpus's training tokens; SFT summaries count QA tokens.
            if train["summary"].get("train_tokens"):
                rows.append([f"training tokens ({name})", _fmt(train["summary"]["train_tokens"])])
        sections["Corpus"].append(Table("Corpus", ["", "value"], rows, "corpus"))
        if c.get("per_root"):
            sections["Corpus"].append(Table("Articles per root", ["root", "articles"], [[r, _fmt(n)] for r, n in c["per_root"].items()]))
        if c.get("per_depth"):
            sections["Corpus"].append(Table("Articles per depth", ["depth", "articles"], [[d, _fmt(n)] for d, n in c["per_depth"].items()]))
        if c.get("skipped"):
            sections["Corpus"].append(Table("Skipped pages", ["reason", "pages"], [[r, _fmt(n)] for r, n in c["skipped"].items()]))
        missing = (c.get("expect") or {}).get("missing")
        if missing is not None:
            sections["Corpus"].append(Table("Missing expected titles", ["title", "why"], [[m["title"], m["reason"]] for m in missing], "missing"))
    if art.training:
        runs = list(art.training)
        configs = {name: dict(_flatten(t["config"])) for name, t in art.training.items()}
        summaries = {name: dict(_flatten(t["summary"])) for name, t in art.training.items()}
        rows = []
        for key in HYPERPARAMETERS:
            if any(key in configs[r] for r in runs):
                rows.append([key] + [configs[r].get(key, "–") for r in runs])
        for key in RESULT_KEYS:
            if any(key in summaries[r] for r in runs):
                rows.append([key] + [summaries[r].get(key, "–") for r in runs])
        sections["Training"].append(Table("Hyper-parameters and outcome (config.yaml, summary.json)", ["", *runs], rows, "hyperparameters"))
        mixture = [[name, str(src.get("source")), str(src.get("path")), _fmt(src.get("fraction")), _fmt(src.get("documents")),
                    _fmt(src.get("train_tokens", src.get("tokens"))), _fmt(src.get("share"))]
                   for name, t in art.training.items() for src in (t["summary"].get("sources") or []) if isinstance(src, dict)]
        if mixture:
            sections["Training"].append(Table("CPT data mixture: what each run trained on (realised token shares)",
                                              ["run", "source", "path", "declared fraction", "documents", "training tokens",
                                               "realised share"], mixture, "mixture"))
    for name, train in art.training.items():
        coverage = train["coverage"]
        if isinstance(coverage, dict) and isinstance(coverage.get("targets"), list):
            coverage = coverage["targets"]
        if isinstance(coverage, list) and coverage and isinstance(coverage[0], dict):
            header = list(coverage[0].keys())
            sections["Training"].append(Table(f"{name}: LoRA coverage (what was actually adapted)", header,
                                              [[_fmt(row.get(h)) for h in header] for row in coverage]))
        elif coverage:
            sections["Training"].append(Table(f"{name}: LoRA coverage", ["", "value"], [list(r) for r in _flatten(coverage)]))
    if art.evals:
        domains = sorted({d for e in art.evals.values() for d in e["summary"].get("domains", {})})
        score_names = [s for s in HEADLINE_SCORES if any(s in e["summary"].get("domains", {}).get(d, {}).get("scores", {})
                                                          for e in art.evals.values() for d in domains)]
        header = ["run"] + [f"{d} {s}" for d in domains for s in score_names]
        rows = []
        for run, e in art.evals.items():
            ds = e["summary"].get("domains", {})
            rows.append([run] + [_score_cell(ds.get(d, {}).get("scores", {}).get(s)) for d in domains for s in score_names])
        sections["Results"].append(Table("Scores by run and domain (mean [95% bootstrap CI])", header, rows, "results"))
        comparison = study_comparison(art)
        headline = score_names[0] if score_names else None
        pair_rows = []
        pairs = list(dict.fromkeys((r["run"], r["vs"]) for r in comparison["rows"] if r["vs"] is not None))
        for run, vs in pairs:
            cells = {r["domain"]: r for r in comparison["rows"]
                     if r["run"] == run and r["vs"] == vs and r["metric"] == headline}
            pair_rows.append([f"{run} − {vs}"] + [_paired_cell(cells.get(d)) for d in domains])
        if pair_rows:
            sections["Results"].append(Table(
                f"{headline}: paired difference (mean [95% paired bootstrap CI] n, over the questions both answered)",
                ["run − vs", *domains], pair_rows, "paired"))
        flag_rows = []
        for run, e in art.evals.items():
            for d, s in e["summary"].get("domains", {}).items():
                flag_rows.append([run, d, _fmt(s.get("n"))] + [f"{s.get('flags', {}).get(f, 0.0):.3f}" for f in FLAGS]
                                 + [_fmt(s.get("mean_new_tokens")), _score_cell(s.get("retrieval_hit_rate"))])
        sections["Results"].append(Table("Answer flags, lengths and retrieval", ["run", "domain", "n", *FLAGS, "mean new tokens", "retrieval hit-rate"], flag_rows, "flags"))
        ppl_rows = []
        for run, e in art.evals.items():
            for d, value in (e["summary"].get("perplexity") or {}).items():
                ppl_rows.append([run, d, _fmt(value if not isinstance(value, dict) else value.get("perplexity"))])
        for name, train in art.training.items():
            for key in ("eval_perplexity", "val_perplexity", "perplexity"):
                if key in train["summary"]:
                    ppl_rows.append([name, "held-out articles", _fmt(train["summary"][key])])
        if ppl_rows:
            sections["Results"].append(Table("Perplexity", ["run", "domain", "perplexity"], ppl_rows, "perplexity"))
    return sections


def _examples(art: Artifacts) -> dict[str, list[dict[str, Any]]]:
    """For the first few questions of each domain: the gold answer and every run's answer."""
    by_domain: dict[str, list[dict[str, Any]]] = {}
    runs = list(art.evals)
    if not runs:
        return by_domain
    answers = {run: {r["id"]: r for r in e["results"]} for run, e in art.evals.items()}
    first = art.evals[runs[0]]["results"]
    for record in sorted(first, key=lambda r: str(r["id"])):
        bucket = by_domain.setdefault(record["domain"], [])
        if len(bucket) < EXAMPLES_PER_DOMAIN:
            bucket.append({"id": record["id"], "question": record["question"], "answer": record["answer"],
                           "runs": {run: answers[run].get(record["id"]) for run in runs}})
    return by_domain


# ---- rendering ----------------------------------------------------------------------------------
CSS = """
body{font-family:'Noto Sans CJK JP','Hiragino Sans',sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222}
table{border-collapse:collapse;margin:.5em 0 1.5em}th,td{border:1px solid #ccc;padding:.25em .6em;text-align:left;vertical-align:top}
th{background:#f2f2f2}td.num{text-align:right}img{max-width:100%;border:1px solid #eee;margin:.5em 0}
details pre{white-space:pre-wrap;background:#f8f8f8;padding:.5em;max-height:20em;overflow:auto}
.flag{color:#a33;font-size:.85em}
"""


def _html_table(t: Table) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in t.header)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in row) + "</tr>" for row in t.rows)
    ident = f' id="{html.escape(t.id)}"' if t.id else ""
    return f"<h3>{html.escape(t.title)}</h3>\n<table{ident}><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>\n"


def _md_text(text: str) -> str:
    """Text for a Markdown heading or paragraph: titles and model output are data, not markup, so
    HTML in them is escaped (as in the HTML report) and a newline cannot start a new block."""
    return " ".join(html.escape(str(text), quote=False).split("\n"))


def _md_cell(text: str) -> str:
    return html.escape(str(text), quote=False).replace("|", "\\|").replace("\n", "<br>")


def _md_table(t: Table) -> str:
    lines = [f"### {_md_text(t.title)}", "", "| " + " | ".join(_md_cell(h) for h in t.header) + " |",
             "|" + "---|" * len(t.header)]
    lines += ["| " + " | ".join(_md_cell(c) for c in row) + " |" for row in t.rows]
    return "\n".join(lines) + "\n"


def write_report(root: Path, out: Path | None = None) -> Path:
    """Write `index.html` and `report.md` into `out` (default `root/report`); return the HTML path.

    Raises:
        WikituneError: nothing to report below `root`, or `root` is a corpus and no `out` is given
            (a corpus holds only what `extract`/`crawl` write: a report inside it would block rebuilding it).
    """
    if out is None and formats.is_corpus(root):
        raise WikituneError(f"{root} is a corpus directory: wikitune writes nothing into a corpus; give --out DIR for the report")
    art = collect(root)
    out = Path(out) if out is not None else Path(root) / REPORT_DIR
    out.mkdir(parents=True, exist_ok=True)
    for old in out.glob("*.png"):
        old.unlink()
    sections = build_tables(art)
    comparison = study_comparison(art) if art.evals else None
    if comparison is not None:
        formats.write_json(out / RESULTS_JSON, comparison)
    images: dict[str, list[Path]] = {"Training": [], "Results": []}
    for name, train in art.training.items():
        plot = _plot_losses(name, train["metrics"], out)
        if plot:
            images["Training"].append(plot)
    if art.evals:
        domains = sorted({d for e in art.evals.values() for d in e["summary"].get("domains", {})})
        runs = list(art.evals)
        for d in domains:
            per_run = [e["summary"].get("domains", {}).get(d, {}).get("scores", {}) for e in art.evals.values()]
            names = [s for s in HEADLINE_SCORES if any(s in scores for scores in per_run)]
            plot = _plot_scores(d, runs, {name: [scores.get(name) for scores in per_run] for name in names}, out) if names else None
            if plot:
                images["Results"].append(plot)
    examples = _examples(art)

    title = f"wikitune report: {art.root.name}"
    h = [f"<!doctype html><html lang='ja'><head><meta charset='utf-8'><title>{html.escape(title)}</title><style>{CSS}</style></head><body>",
         f"<h1>{html.escape(title)}</h1>"]
    md = [f"# {_md_text(title)}", ""]
    if comparison is not None:
        sentences = findings(comparison) + _seed_caveat(art.root)
        h.append("<h2>Findings</h2><ul>" + "".join(f"<li>{html.escape(f)}</li>" for f in sentences) + "</ul>")
        md += ["## Findings", ""] + [f"- {_md_text(f)}" for f in sentences] + [""]
    for section, tables in sections.items():
        if not tables and not images.get(section):
            continue
        h.append(f"<h2>{html.escape(section)}</h2>")
        md += [f"## {_md_text(section)}", ""]
        for t in tables:
            h.append(_html_table(t))
            md.append(_md_table(t))
        for img in images.get(section, []):
            h.append(f"<img src='{html.escape(img.name)}' alt='{html.escape(img.stem)}'>")
            md += [f"![{_md_text(img.stem)}]({img.name})", ""]
    if examples:
        h.append("<h2>Examples</h2>")
        md += ["## Examples", ""]
        for domain, items in examples.items():
            h.append(f"<h3>{html.escape(domain)}</h3>")
            md += [f"### {_md_text(domain)}", ""]
            for item in items:
                h.append(f"<h4>{html.escape(item['question'])}</h4><p>gold: <b>{html.escape(item['answer'])}</b></p><table><thead><tr><th>run</th><th>final answer</th><th>scores</th></tr></thead><tbody>")
                md += [f"**{_md_cell(item['question'])}** (gold: {_md_cell(item['answer'])})", "", "| run | final answer | flags |", "|---|---|---|"]
                for run, r in item["runs"].items():
                    if r is None:
                        h.append(f"<tr><td>{html.escape(run)}</td><td colspan='2'>not asked</td></tr>")
                        continue
                    final = r.get("final")
                    flags = ", ".join(r.get("flags") or [])
                    scores = ", ".join(f"{k} {_fmt(v)}" for k, v in (r.get("scores") or {}).items())
                    h.append(f"<tr><td>{html.escape(run)}</td><td>{html.escape(final) if final is not None else '<i>no final answer</i>'}"
                             f"{f' <span class=flag>{html.escape(flags)}</span>' if flags else ''}"
                             f"<details><summary>raw completion</summary><pre>{html.escape(r.get('raw') or '')}</pre></details></td>"
                             f"<td>{html.escape(scores)}</td></tr>")
                    md.append(f"| {_md_cell(run)} | {_md_cell(final) if final is not None else '*no final answer*'} | {_md_cell(flags)} |")
                h.append("</tbody></table>")
                md.append("")
    h.append("</body></html>")
    (out / "index.html").write_text("\n".join(h), encoding="utf-8")
    (out / "report.md").write_text("\n".join(md) + "\n", encoding="utf-8")
    return out / "index.html"


# ---- several seeds -------------------------------------------------------------------------------
def seeds_comparison(seed_dirs: list[Path]) -> tuple[dict[str, Any], dict[str, dict[str, Any]]]:
    """(pooled comparison, {seed directory name: its comparison}). Pooled rows pair each question
    of each seed with itself (ids `SEED:ID`), so their intervals cover questions and seeds."""
    per_seed: dict[str, dict[str, Any]] = {}
    pooled: dict[str, list[dict[str, Any]]] = {}
    for directory in seed_dirs:
        art = collect(directory)
        per_seed[directory.name] = study_comparison(art)
        for name, e in art.evals.items():
            pooled.setdefault(_run_name(name), []).extend({**r, "id": f"{directory.name}:{r['id']}"} for r in e["results"])
    return _compare_runs(pooled), per_seed


def seed_findings(per_seed: dict[str, dict[str, Any]], metric: str = "exact_match") -> list[str]:
    """Findings that hold on EVERY seed: a paired difference whose 95% interval excludes 0, with the
    same sign, in each seed's study. Everything else is said not to be a finding."""
    keyed: dict[tuple, dict[str, dict[str, Any]]] = {}
    for seed, comparison in per_seed.items():
        for r in comparison["rows"]:
            if r["vs"] is not None and r["metric"] == metric:
                keyed.setdefault((r["run"], r["vs"], r["domain"]), {})[seed] = r
    said, rest = [], 0
    for (run, vs, domain), by_seed in keyed.items():
        rows = [by_seed.get(seed) for seed in per_seed]
        if all(r is not None and r["ci_low"] > 0 for r in rows) or all(r is not None and r["ci_high"] < 0 for r in rows):
            verb = "beats" if rows[0]["mean"] > 0 else "falls behind"
            each = "; ".join(f"{seed} {r['mean']:+.3f} [{r['ci_low']:+.3f}, {r['ci_high']:+.3f}]" for seed, r in zip(per_seed, rows))
            said.append(f"{run} {verb} {vs} on {domain} on every seed ({metric}: {each}).")
        else:
            rest += 1
    said.append(f"{rest} other paired difference{'s' if rest != 1 else ''} of {metric} did not exclude 0 on every one of "
                f"{len(per_seed)} seed{'s' if len(per_seed) != 1 else ''}: no finding is claimed there.")
    return said


def write_seeds_report(root: Path, seed_dirs: list[Path]) -> Path:
    """`root/report/`: the findings that hold on every seed, each seed's paired differences and the
    pooled ones (`results.json`, the comparison schema); each seed keeps its own full report."""
    pooled, per_seed = seeds_comparison(seed_dirs)
    out = Path(root) / REPORT_DIR
    out.mkdir(parents=True, exist_ok=True)
    formats.write_json(out / RESULTS_JSON, pooled)
    seeds = list(per_seed)
    metric = "exact_match"
    table_rows = []
    for r in pooled["rows"]:
        if r["metric"] != metric:
            continue
        label = f"{r['run']} − {r['vs']}" if r["vs"] else r["run"]
        cells = []
        for seed in seeds:
            match = next((x for x in per_seed[seed]["rows"] if (x["run"], x["vs"], x["domain"], x["metric"]) ==
                          (r["run"], r["vs"], r["domain"], metric)), None)
            cells.append(_paired_cell(match) if r["vs"] else _own_cell(match))
        table_rows.append([label, r["domain"], *cells, _paired_cell(r) if r["vs"] else _own_cell(r)])
    table = Table(f"{metric} by seed and pooled (mean [95% CI] n; differences paired)", ["run", "domain", *seeds, "pooled"],
                  table_rows, "seeds")
    sentences = seed_findings(per_seed, metric)
    title = f"wikitune report: {Path(root).name} ({len(seeds)} seeds)"
    h = [f"<!doctype html><html lang='ja'><head><meta charset='utf-8'><title>{html.escape(title)}</title><style>{CSS}</style></head><body>",
         f"<h1>{html.escape(title)}</h1>", "<h2>Findings</h2><ul>" + "".join(f"<li>{html.escape(x)}</li>" for x in sentences) + "</ul>",
         "<h2>Results</h2>", _html_table(table),
         "<h2>Each seed</h2><ul>" + "".join(f"<li><a href='../{html.escape(seed)}/report/index.html'>{html.escape(seed)}</a></li>"
                                            for seed in seeds) + "</ul>", "</body></html>"]
    md = [f"# {_md_text(title)}", "", "## Findings", ""] + [f"- {_md_text(x)}" for x in sentences] + \
         ["", "## Results", "", _md_table(table), "## Each seed", ""] + [f"- [{seed}](../{seed}/report/report.md)" for seed in seeds]
    (out / "index.html").write_text("\n".join(h), encoding="utf-8")
    (out / "report.md").write_text("\n".join(md) + "\n", encoding="utf-8")
    return out / "index.html"


def _own_cell(row: dict[str, Any] | None) -> str:
    return "–" if row is None else f"{row['mean']:.3f} [{row['ci_low']:.3f}, {row['ci_high']:.3f}] n={row['n']}"
