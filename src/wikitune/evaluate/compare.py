"""`wikitune compare RUN...`: each run's scores per domain, and paired differences between runs, with 95% intervals.

    wikitune compare runs/eval-base runs/eval-cpt runs/eval-sft runs/eval-rag --out runs/compare
    # -> prints the table; writes runs/compare/compare.md and compare.json

Reads each run's results.jsonl (never reruns a model). compare.json is the comparison schema of
DESIGN.md: {"runs": [...], "rows": [{"run", "vs", "domain", "metric", "mean", "ci_low", "ci_high", "n"}]}.
A row with `vs` null is the run's own score with its bootstrap 95% interval (the same numbers as
its summary.json); otherwise it is the paired difference `run - vs` over the questions both runs
answered (matched by question id within the domain), by `scoring.paired_bootstrap`. By default
every run is compared with the first; `comparison_rows(..., pairs=[(run, vs), ...])` takes any pairs.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Iterable

from wikitune import formats
from wikitune.errors import WikituneError
from wikitune.evaluate.scoring import SHORT_SCORES, bootstrap_ci, paired_bootstrap

FLAGS = ("no_final", "loop_stopped", "truncated")
DEFAULT_METRICS = SHORT_SCORES + ("judge",) + tuple(f"flag:{flag}" for flag in FLAGS)
"""Score names, and `flag:NAME` for the share of answers carrying that flag. A metric no record
has (`judge` with the judge off) gives no rows."""
COMPARE_TABLE = "compare.md"
COMPARE_DATA = "compare.json"


def question_values(records: Iterable[dict[str, Any]], metric: str, *, group: str = "domain",
                    run: str = "run") -> dict[str, dict[str, float]]:
    """Per group (domain), each question's value of `metric`, by question id, in record order.

    A score counts where the record has it (a question without a gold answer has no short-answer
    score); a `flag:NAME` metric is 1.0 or 0.0 for every record.

    Raises:
        WikituneError: a question id twice in one group, which would make pairing ambiguous.
    """
    flag = metric[len("flag:"):] if metric.startswith("flag:") else None
    values: dict[str, dict[str, float]] = {}
    for record in records:
        if flag is not None:
            value = float(flag in (record.get("flags") or []))
        else:
            value = (record.get("scores") or {}).get(metric)
            if not isinstance(value, (int, float)):
                continue
        by_id = values.setdefault(record[group], {})
        if record["id"] in by_id:
            raise WikituneError(f"{run}: question {record['id']!r} appears twice in {group} {record[group]!r}; "
                                "pairing runs needs one answer per question (give each QA file once)")
        by_id[record["id"]] = float(value)
    return values


def comparison_rows(results: dict[str, list[dict[str, Any]]], pairs: list[tuple[str, str]] | None = None, *,
                    metrics: Iterable[str] = DEFAULT_METRICS, group: str = "domain", resamples: int = 1000,
                    seed: int = 0) -> dict[str, Any]:
    """The comparison (DESIGN.md's schema) of named runs' result records.

    Args:
        results: run name -> its results.jsonl records; the first run is the default reference.
        pairs: (run, vs) pairs for paired differences `run - vs`; default every later run vs the
            first. Own-score rows (`vs` None) are given for every run either way.
        metrics: score names and `flag:NAME` metrics (DEFAULT_METRICS).
        group: "domain", or "set" for one row per QA file (the name then fills the `domain` field).
        resamples: bootstrap resamples.
        seed: bootstrap seed (summary.json's default, so own scores match it).

    Returns:
        dict: {"runs": [names], "rows": [{"run", "vs", "domain", "metric", "mean", "ci_low", "ci_high", "n"}]};
        a (run, domain, metric) without values, or a pair with no question in common, has no row.

    Raises:
        WikituneError: no runs, a pair naming an unknown run or a run with itself, duplicate question ids.
    """
    names = list(results)
    if not names:
        raise WikituneError("give at least one run to compare")
    if group not in ("domain", "set"):
        raise WikituneError(f"group must be domain or set, got {group!r}")
    pairs = [(run, names[0]) for run in names[1:]] if pairs is None else list(pairs)
    for run, vs in pairs:
        unknown = [name for name in (run, vs) if name not in results]
        if unknown:
            raise WikituneError(f"pair ({run}, {vs}) names {unknown[0]!r}, which is not among the runs compared: {names}")
        if run == vs:
            raise WikituneError(f"pair ({run}, {vs}) compares a run with itself")
    metrics = list(metrics)
    values = {name: {m: question_values(records, m, group=group, run=name) for m in metrics} for name, records in results.items()}
    groups = sorted({g for per_metric in values.values() for per_group in per_metric.values() for g in per_group})

    def row(run: str, vs: str | None, g: str, metric: str, stats: tuple) -> dict[str, Any]:
        mean, low, high, n = stats
        return {"run": run, "vs": vs, "domain": g, "metric": metric,
                "mean": round(mean, 6), "ci_low": round(low, 6), "ci_high": round(high, 6), "n": n}

    rows = []
    for name in names:
        for g in groups:
            for metric in metrics:
                own = values[name][metric].get(g)
                if own:
                    rows.append(row(name, None, g, metric, (*bootstrap_ci(list(own.values()), resamples=resamples, seed=seed), len(own))))
    for run, vs in pairs:
        for g in groups:
            for metric in metrics:
                a, b = values[run][metric].get(g) or {}, values[vs][metric].get(g) or {}
                if a.keys() & b.keys():
                    rows.append(row(run, vs, g, metric, paired_bootstrap(a, b, resamples=resamples, seed=seed)))
    return {"runs": names, "rows": rows}


def compare_runs(runs: list[str | Path], pairs: list[tuple[str, str]] | None = None, **options: Any) -> dict[str, Any]:
    """`comparison_rows` of run directories, named as given; `options` are comparison_rows's keywords.

    Raises:
        WikituneError: a directory without results.jsonl, and comparison_rows's errors.
    """
    if not runs:
        raise WikituneError("give at least one run directory")
    return comparison_rows({str(run): formats.read_results(run) for run in runs}, pairs, **options)


def format_table(data: dict[str, Any]) -> str:
    """A Markdown table: a line per (run, vs, metric), a column per domain.

    An own-score cell is `mean [low, high] n=N`; a difference cell (a `vs` run named) is
    `+diff [low, high] n=N` with N the questions both runs answered.
    """
    groups = list(dict.fromkeys(r["domain"] for r in data["rows"]))
    cells = {(r["run"], r["vs"], r["metric"], r["domain"]): r for r in data["rows"]}
    lines = ["| run | vs | metric | " + " | ".join(groups) + " |", "|---|---|---|" + "---|" * len(groups)]
    order = list(dict.fromkeys((r["run"], r["vs"]) for r in data["rows"]))
    order.sort(key=lambda pair: data["runs"].index(pair[0]))  # a run's differences right under its own scores
    for run, vs in order:
        for metric in dict.fromkeys(r["metric"] for r in data["rows"] if (r["run"], r["vs"]) == (run, vs)):
            line = [run, vs or "-", metric]
            for g in groups:
                c = cells.get((run, vs, metric, g))
                sign = "+" if vs else ""
                line.append(f"{c['mean']:{sign}.3f} [{c['ci_low']:{sign}.3f}, {c['ci_high']:{sign}.3f}] n={c['n']}" if c else "-")
            lines.append("| " + " | ".join(line) + " |")
    return "\n".join(lines)


def run_compare(runs: list[str | Path], out: str | Path | None = None, *, group: str = "domain") -> str:
    """Compare runs (each vs the first); write compare.md and compare.json into `out` when given. Returns the table."""
    data = compare_runs(runs, group=group)
    table = format_table(data)
    if out is not None:
        out = Path(out)
        out.mkdir(parents=True, exist_ok=True)
        (out / COMPARE_TABLE).write_text(table + "\n", encoding="utf-8")
        formats.write_json(out / COMPARE_DATA, data)
    return table
