"""Benchmark: `wikitune extract` against WikiExtractor on the same real dump, in one run.

    .venv/bin/pip install -e '.[bench]'
    .venv/bin/python bench/extract.py [DUMP] [--repeat 3] [--processes 2]

DUMP defaults to the real 2022 jawiki excerpt in ../shared/data/jawiki-dump/ (262 pages,
truncated). Both tools convert every main-namespace article with the same number of processes.
For each tool it reports wall time (median of --repeat runs), articles/s, the peak resident memory
of the whole process tree (sampled from /proc), and how much markup each leaves in its plain text
(occurrences per million characters of `[[`, `{{`, `'''`, `<ref`, HTML entities, ...). Ratios are
wikitune / WikiExtractor from the same run.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DEFAULT_DUMP = REPO.parent / "shared" / "data" / "jawiki-dump" / "wp2txt_testdata_ja.xml.bz2"

# What counts as markup left in plain text. Each is a thing a reader (or a language model in
# pre-training) would see as noise.
RESIDUE = {
    "[[ or ]]": re.compile(r"\[\[|\]\]"),
    "{{ or }}": re.compile(r"\{\{|\}\}"),
    "'' or '''": re.compile(r"''"),
    "<ref": re.compile(r"<ref", re.I),
    "html tag": re.compile(r"</?(?:br|span|div|small|sup|sub|center|font|table|tr|td|th|li|ul|ol|gallery|nowiki)\b[^>]*>", re.I),
    "html entity": re.compile(r"&(?:[a-z]+|#\d+);", re.I),
    "{| or |}": re.compile(r"^\s*(?:\{\||\|\})", re.M),
    "table attr": re.compile(r"(?:style|class|align|rowspan|colspan)\s*=\s*\"", re.I),
}


def _tree_rss(pid: int) -> int:
    """Resident bytes of a process and all its descendants (Linux /proc)."""
    total, stack = 0, [pid]
    while stack:
        p = stack.pop()
        try:
            with open(f"/proc/{p}/statm") as f:
                total += int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
            for task in os.listdir(f"/proc/{p}/task"):
                with open(f"/proc/{p}/task/{task}/children") as f:
                    stack.extend(int(c) for c in f.read().split())
        except (FileNotFoundError, ProcessLookupError, ValueError):
            continue
    return total


def run_measured(cmd: list[str], cwd: Path) -> tuple[float, int]:
    """Run a command; return (wall seconds, peak RSS of its process tree in bytes)."""
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    peak = 0
    done = threading.Event()

    def sample() -> None:
        nonlocal peak
        while not done.is_set():
            peak = max(peak, _tree_rss(proc.pid))
            time.sleep(0.01)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    _, err = proc.communicate()
    elapsed = time.perf_counter() - start
    done.set()
    sampler.join()
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed ({proc.returncode}):\n{err.decode(errors='replace')[-2000:]}")
    return elapsed, peak


def wikitune_texts(out: Path) -> list[str]:
    with open(out / "articles.jsonl", encoding="utf-8") as f:
        return [json.loads(line)["text"] for line in f]


def wikiextractor_texts(out: Path) -> list[str]:
    texts = []
    for path in sorted(out.rglob("wiki_*")):
        with open(path, encoding="utf-8") as f:
            texts.extend(json.loads(line)["text"] for line in f if line.strip())
    # WikiExtractor emits redirects' and empty pages' records with no text; count only real ones.
    return [t for t in texts if t.strip()]


def residue(texts: list[str]) -> dict[str, float]:
    chars = sum(len(t) for t in texts) or 1
    joined = "\n".join(texts)
    per_million = {name: len(rx.findall(joined)) * 1e6 / chars for name, rx in RESIDUE.items()}
    per_million["total"] = sum(per_million.values())
    return per_million


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("dump", nargs="?", type=Path, default=DEFAULT_DUMP)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--processes", type=int, default=os.cpu_count() or 1)
    args = parser.parse_args()
    if not args.dump.exists():
        raise SystemExit(f"{args.dump} not found (the default lives in ../shared/data/jawiki-dump/)")
    try:
        import wikiextractor  # noqa: F401
    except ImportError:
        raise SystemExit("WikiExtractor is not installed: .venv/bin/pip install -e '.[bench]'")

    tools = {
        "wikitune": lambda out: [sys.executable, "-m", "wikitune.cli", "extract", str(args.dump), "--out", str(out),
                                  "--workers", str(args.processes)],
        "wikiextractor": lambda out: [sys.executable, "-m", "wikiextractor.WikiExtractor", str(args.dump), "-o", str(out),
                                       "--json", "--processes", str(args.processes), "-q"],
    }
    readers = {"wikitune": wikitune_texts, "wikiextractor": wikiextractor_texts}
    results: dict[str, dict] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name, cmd in tools.items():
            walls, peaks = [], []
            for i in range(args.repeat):
                out = Path(tmp) / f"{name}-{i}"
                wall, peak = run_measured(cmd(out), cwd=Path(tmp))
                walls.append(wall)
                peaks.append(peak)
            texts = readers[name](out)
            results[name] = {
                "articles": len(texts),
                "characters": sum(len(t) for t in texts),
                "seconds": statistics.median(walls),
                "articles_per_s": len(texts) / statistics.median(walls),
                "peak_rss_mb": max(peaks) / 2**20,
                "residue_per_million_chars": residue(texts),
            }
            shutil.rmtree(Path(tmp) / f"{name}-0", ignore_errors=True)

    ours, theirs = results["wikitune"], results["wikiextractor"]
    print(f"dump: {args.dump} ({args.dump.stat().st_size / 2**20:.1f} MiB), processes: {args.processes}, repeat: {args.repeat}")
    print(f"{'':28}{'wikitune':>14}{'wikiextractor':>16}{'ratio':>9}")
    rows = [("articles", "articles", "{:.0f}"), ("characters", "characters", "{:.0f}"), ("wall seconds (median)", "seconds", "{:.2f}"),
            ("articles/s", "articles_per_s", "{:.1f}"), ("peak RSS, MiB (tree)", "peak_rss_mb", "{:.0f}")]
    for label, key, fmt in rows:
        a, b = ours[key], theirs[key]
        print(f"{label:28}{fmt.format(a):>14}{fmt.format(b):>16}{a / b if b else float('nan'):>9.2f}")
    print("markup left in text, per million characters:")
    for key in [*RESIDUE, "total"]:
        a, b = ours["residue_per_million_chars"][key], theirs["residue_per_million_chars"][key]
        print(f"  {key:26}{a:>14.1f}{b:>16.1f}")
    print(json.dumps({"wikitune": ours, "wikiextractor": theirs}, ensure_ascii=False))


if __name__ == "__main__":
    main()
