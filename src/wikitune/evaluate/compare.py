"""`wikitune compare RUN...`: a table of runs x domains from their summary.json, with differences to the first run.

    wikitune compare runs/eval-base runs/eval-cpt runs/eval-sft runs/eval-rag --out runs/compare
    # -> prints the table; writes runs/compare/compare.md and compare.json

Reads artifacts only (never reruns a model). A cell is `mean [low, high]` of the chosen score;
a later run's cell adds its difference to the first run's (`+0.120`). Runs whose summary lacks a
domain show `-` there.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from wikitune import formats
from wikitune.errors import WikituneError

DEFAULT_SCORES = ("exact_match", "alias_match", "char_f1", "contains")
COMPARE_TABLE = "compare.md"
COMPARE_DATA = "compare.json"


def load_summary(run: str | Path) -> dict[str, Any]:
    """The summary.json of an evaluation run; the error says what compare wants."""
    if not (Path(run) / formats.SUMMARY).is_file():
        raise WikituneError(f"{run} has no {formats.SUMMARY}: give run directories written by `wikitune eval`")
    return formats.read_summary(run)


def compare_runs(runs: list[str | Path], *, scores: tuple[str, ...] = DEFAULT_SCORES, group: str = "domains") -> dict[str, Any]:
    """The comparison as data: {"runs", "groups", "rows": [{run, group, score, mean, ci95, n, delta}]}.

    Args:
        runs: run directories; the first is the reference for differences.
        scores: score names to compare.
        group: "domains" (summary.json's per-domain block) or "sets" (per QA file).
    """
    if not runs:
        raise WikituneError("give at least one run directory")
    if group not in ("domains", "sets"):
        raise WikituneError(f"group must be domains or sets, got {group!r}")
    summaries = [load_summary(r) for r in runs]
    groups = list(dict.fromkeys(g for s in summaries for g in (s.get(group) or {})))
    rows = []
    for run, summary in zip(runs, summaries):
        for g in groups:
            block = (summary.get(group) or {}).get(g)
            for score in scores:
                cell = (block or {}).get("scores", {}).get(score)
                ref = (summaries[0].get(group) or {}).get(g, {}).get("scores", {}).get(score)
                rows.append({
                    "run": str(run), "group": g, "score": score,
                    "mean": cell["mean"] if cell else None, "ci95": cell["ci95"] if cell else None,
                    "n": cell["n"] if cell else 0,
                    "delta": round(cell["mean"] - ref["mean"], 6) if cell and ref else None,
                })
            if block is not None:
                for flag in ("no_final", "loop_stopped", "truncated"):
                    rows.append({"run": str(run), "group": g, "score": f"flag:{flag}", "mean": block.get("flags", {}).get(flag, 0.0),
                                 "ci95": None, "n": block.get("n", 0), "delta": None})
    return {"runs": [str(r) for r in runs], "groups": groups, "scores": list(scores), "rows": rows}


def format_table(data: dict[str, Any]) -> str:
    """A Markdown table: one row per (run, score), one column per group."""
    groups = data["groups"]
    lines = ["| run | score | " + " | ".join(groups) + " |", "|---|---|" + "---|" * len(groups)]
    cells: dict[tuple[str, str, str], dict] = {(r["run"], r["score"], r["group"]): r for r in data["rows"]}
    names = list(dict.fromkeys(r["score"] for r in data["rows"]))
    for position, run in enumerate(data["runs"]):
        for score in names:
            row = [run, score]
            for g in groups:
                c = cells.get((run, score, g))
                if not c or c["mean"] is None:
                    row.append("-")
                    continue
                text = f"{c['mean']:.3f}"
                if c["ci95"]:
                    text += f" [{c['ci95'][0]:.3f}, {c['ci95'][1]:.3f}]"
                if c["delta"] is not None and position > 0:
                    text += f" ({c['delta']:+.3f})"
                row.append(text)
            lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines)


def run_compare(runs: list[str | Path], out: str | Path | None = None, *, group: str = "domains") -> str:
    """Compare runs; write compare.md and compare.json into `out` when given. Returns the table."""
    data = compare_runs(runs, group=group)
    table = format_table(data)
    if out is not None:
        out = Path(out)
        out.mkdir(parents=True, exist_ok=True)
        (out / COMPARE_TABLE).write_text(table + "\n", encoding="utf-8")
        formats.write_json(out / COMPARE_DATA, data)
    return table
