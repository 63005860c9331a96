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
import resource
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
    # What a dropped template leaves behind: 「（、）」, 「()」.
    "empty brackets": re.compile(r"[（(]\s*[、，,;；]?\s*[）)]"),
    "image options": re.compile(r"\b(?:thumb|thumbnail|upright|\d+px)\|", re.I),
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


def run_measured(cmd: list[str], cwd: Path) -> tuple[float, float, int]:
    """Run a command; return (wall seconds, CPU seconds of its whole process tree, peak tree RSS in bytes).

    CPU seconds (user + system of the command and every process it reaped) are far less
    sensitive than wall time to other load on the machine.
    """
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
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
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed ({proc.returncode}):\n{err.decode(errors='replace')[-2000:]}")
    return elapsed, cpu, peak


def scaled_dump(dump: Path, times: int, tmp: Path) -> Path:
    """The dump's pages repeated `times` times with fresh page ids (a bigger dump of real text)."""
    import bz2

    from wikitune.corpus.sources.dump import open_dump

    with open_dump(dump) as f:
        xml = f.read().decode("utf-8")
    head, _, rest = xml.partition("  <page>")
    body = "  <page>" + rest.replace("</mediawiki>", "")
    out = tmp / f"scaled-{times}x.xml.bz2"
    with bz2.open(out, "wt", encoding="utf-8") as f:
        f.write(head)
        for copy in range(times):
            # Page ids must stay unique; titles too, or the copies would collide as one page.
            shifted = re.sub(r"(<page>\s*<title>)([^<]*)(</title>\s*<ns>[^<]*</ns>\s*<id>)(\d+)",
                             lambda m: f"{m.group(1)}{m.group(2)}{'' if copy == 0 else f' ({copy})'}{m.group(3)}{int(m.group(4)) + copy * 10_000_000}",
                             body)
            f.write(shifted)
        f.write("</mediawiki>\n")
    return out


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
    parser.add_argument("--scale", type=int, default=1, help="repeat the dump's pages N times (memory check on a bigger input)")
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
        if args.scale > 1:
            args.dump = scaled_dump(args.dump, args.scale, Path(tmp))
        size_mib = args.dump.stat().st_size / 2**20
        for name, cmd in tools.items():
            walls, cpus, peaks = [], [], []
            for i in range(args.repeat):
                out = Path(tmp) / f"{name}-{i}"
                wall, cpu, peak = run_measured(cmd(out), cwd=Path(tmp))
                walls.append(wall)
                cpus.append(cpu)
                peaks.append(peak)
                if i < args.repeat - 1:
                    shutil.rmtree(out, ignore_errors=True)
            texts = readers[name](out)
            results[name] = {
                "articles": len(texts),
                "characters": sum(len(t) for t in texts),
                "seconds": statistics.median(walls),
                "articles_per_s": len(texts) / statistics.median(walls),
                "cpu_seconds": statistics.median(cpus),
                "characters_per_cpu_s": sum(len(t) for t in texts) / statistics.median(cpus),
                "peak_rss_mb": max(peaks) / 2**20,
                "residue_per_million_chars": residue(texts),
            }
            shutil.rmtree(out, ignore_errors=True)

    ours, theirs = results["wikitune"], results["wikiextractor"]
    print(f"dump: {args.dump.name} ({size_mib:.1f} MiB compressed), scale: {args.scale}, processes: {args.processes}, repeat: {args.repeat}")
    print(f"{'':28}{'wikitune':>14}{'wikiextractor':>16}{'ratio':>9}")
    rows = [("articles", "articles", "{:.0f}"), ("characters", "characters", "{:.0f}"), ("wall seconds (median)", "seconds", "{:.2f}"),
            ("articles/s", "articles_per_s", "{:.1f}"), ("CPU seconds (tree)", "cpu_seconds", "{:.2f}"),
            ("characters per CPU second", "characters_per_cpu_s", "{:.0f}"), ("peak RSS, MiB (tree)", "peak_rss_mb", "{:.0f}")]
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
