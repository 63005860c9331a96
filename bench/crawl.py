"""Benchmark: `wikitune crawl` of the demo wiki on a local MediaWiki, requests against the bound.

    .venv/bin/python bench/crawl.py [--repeat 3] [--faults 5] [--scale 1]

Starts a real MediaWiki (Debian's `mediawiki` package + php-cli, as the tests do) serving the
demo wiki, crawls the demo roots with the politeness interval at zero, and reports:
- HTTP requests per article, against the lower bound for any crawler that lists categories and
  fetches content in batches: (category listing requests) + ceil(articles / 50);
- articles per second (median of --repeat crawls, each from an empty corpus directory);
- with --scale K, the wiki holds K copies of each demo article (titles suffixed ` 2`, ` 3`, …)
  in the same categories, so listings and content batches are K times larger;
- with --faults N, the same crawl through a proxy that fails every N-th request (429 with
  Retry-After: 1, 503, maxlag, reset, cut body): retries by kind, and whether the corpus is
  byte-identical to the clean crawl's.
"""

from __future__ import annotations

import argparse
import json
import math
import re
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.mediawiki_server import FaultProxy, LocalWiki, unavailable  # noqa: E402
from wikitune.corpus.crawl import CrawlConfig, run_crawl  # noqa: E402
from wikitune.corpus.extract import DEMO_ROOTS, demo_dump_path  # noqa: E402


def corpus_bytes(corpus: Path) -> dict[str, bytes]:
    files = [corpus / "articles.jsonl", corpus / "categories.jsonl", *sorted((corpus / "text").iterdir())]
    return {p.name: p.read_bytes() for p in files}


def scaled_dump(copies: int, out: Path) -> Path:
    """The demo dump with `copies` copies of every main-namespace page, in the same categories."""
    xml = demo_dump_path().read_text(encoding="utf-8")
    head, _, rest = xml.partition("  <page>")
    pages = re.findall(r"  <page>.*?</page>\n", "  <page>" + rest, re.S)
    tail = rest[rest.rindex("</page>") + len("</page>\n"):]
    copied = []
    for page in pages:
        copied.append(page)
        if "<ns>0</ns>" not in page:
            continue
        for k in range(2, copies + 1):
            copy = re.sub(r"<title>(.*?)</title>", lambda m: f"<title>{m.group(1)} {k}</title>", page, count=1)
            copy = re.sub(r"(</ns>\s*<id>)(\d+)", lambda m: f"{m.group(1)}{int(m.group(2)) + k * 100000}", copy, count=1)
            copy = re.sub(r"(<revision>\s*<id>)(\d+)", lambda m: f"{m.group(1)}{int(m.group(2)) + k * 1000000}", copy, count=1)
            copied.append(copy)
    out.write_text(head + "".join(copied) + tail, encoding="utf-8")
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3, help="clean crawls to time (median reported)")
    parser.add_argument("--faults", type=int, default=5, help="fault every N-th request in the extra crawl (0: none)")
    parser.add_argument("--scale", type=int, default=1, help="copies of each demo article in the wiki")
    args = parser.parse_args()
    reason = unavailable()
    if reason:
        sys.exit(f"cannot run: {reason}")
    work = Path(tempfile.mkdtemp(prefix="wikitune-bench-crawl-"))
    started = time.perf_counter()
    dump = demo_dump_path() if args.scale <= 1 else scaled_dump(args.scale, work / "scaled.xml")
    wiki = LocalWiki.start(work / "wiki", dump)
    setup = time.perf_counter() - started
    try:
        seconds, manifest = [], {}
        for i in range(args.repeat):
            t = time.perf_counter()
            manifest = run_crawl(CrawlConfig(roots=list(DEMO_ROOTS), out=work / f"clean{i}", api=wiki.api,
                                             interval=0, progress=False)).manifest
            seconds.append(time.perf_counter() - t)
        counts, requests = manifest["counts"], manifest["requests"]
        bound = requests["by_phase"]["listing"] + math.ceil(counts["articles"] / 50)
        wall = statistics.median(seconds)
        result = {
            "scale": args.scale,
            "mediawiki_setup_seconds": round(setup, 2),
            "articles": counts["articles"],
            "categories_listed": counts["categories_listed"],
            "requests": requests["total"],
            "requests_by_phase": requests["by_phase"],
            "lower_bound": bound,
            "requests_over_bound": round(requests["total"] / bound, 3),
            "requests_per_article": round(requests["total"] / counts["articles"], 3),
            "bound_per_article": round(bound / counts["articles"], 3),
            "wall_seconds_median": round(wall, 3),
            "articles_per_second": round(counts["articles"] / wall, 1),
            "requests_per_second": round(requests["total"] / wall, 1),
        }
        if args.faults:
            proxy = FaultProxy(wiki.api, every=args.faults).start()
            try:
                t = time.perf_counter()
                faulty = run_crawl(CrawlConfig(roots=list(DEMO_ROOTS), out=work / "faults", api=proxy.api,
                                               interval=0, backoff=0.2, progress=False)).manifest
                result["faults"] = {
                    "every": args.faults, "injected": proxy.injected, "retries": faulty["retries"]["by_kind"],
                    "requests": faulty["requests"]["total"], "wall_seconds": round(time.perf_counter() - t, 2),
                    "identical_corpus": corpus_bytes(work / "faults") == corpus_bytes(work / "clean0"),
                }
            finally:
                proxy.stop()
    finally:
        wiki.stop()
    print(json.dumps(result, ensure_ascii=False, indent=2))


if __name__ == "__main__":
    main()
