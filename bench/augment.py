"""Benchmark: an LLM method of `wikitune augment` at concurrency 1 vs N against a server of fixed latency.

    .venv/bin/python bench/augment.py [--latency 0.2] [--k 1] [--concurrency 8]

The demo corpus (42 training articles) is augmented with `--method rephrase` against a scripted loopback
OpenAI-compatible server (`tests/augment/llm_server.py`) that sleeps `--latency` seconds before
each reply, as a generator would while it decodes; each run starts from an empty output directory
(no cached reply). Prints documents/s and requests/s at concurrency 1 and N and their ratio: with
the server's time fixed, the ratio shows how much of the latency the client overlaps (the bound
is N) and what the client itself costs per request.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.augment.llm_server import Answer, ScriptedLLM, chat  # noqa: E402
from wikitune import formats  # noqa: E402
from wikitune.augment.run import AugmentConfig, run_augment  # noqa: E402
from wikitune.corpus.extract import ExtractConfig, run_extract  # noqa: E402


def reply(latency: float):
    def script(req):  # a rewrite: the article's first sentences
        return Answer(body=chat("".join(req.sentences()[:4])), delay=latency)
    return script


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--latency", type=float, default=0.2, help="seconds the server waits before each reply")
    parser.add_argument("--k", type=int, default=1)
    parser.add_argument("--concurrency", type=int, default=8)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        corpus = Path(tmp) / "corpus"
        run_extract(ExtractConfig(dump="demo", out=corpus))
        records = list(formats.iter_articles(corpus))
        rows = {}
        with ScriptedLLM(records, reply(args.latency)) as server:
            for concurrency in (1, args.concurrency):
                out = Path(tmp) / f"aug-{concurrency}"
                started = time.perf_counter()
                m = run_augment(AugmentConfig(corpus=corpus, out=out, method="rephrase", k=args.k, base_url=server.url,
                                              model="bench", concurrency=concurrency)).manifest
                seconds = time.perf_counter() - started
                rows[concurrency] = (m["documents"], m["requests"], seconds)
    print(f"method rephrase, k {args.k}, server latency {args.latency:.3f}s, "
          f"{rows[1][1]} requests, {rows[1][0]} documents per run")
    print("| concurrency | seconds | documents/s | requests/s |")
    print("|---:|---:|---:|---:|")
    for c, (docs, requests, seconds) in rows.items():
        print(f"| {c} | {seconds:.2f} | {docs / seconds:.2f} | {requests / seconds:.2f} |")
    (d1, r1, s1), (dn, rn, sn) = rows[1], rows[args.concurrency]
    print(f"ratio (concurrency {args.concurrency} / 1): documents/s {(dn / sn) / (d1 / s1):.2f}x, "
          f"requests/s {(rn / sn) / (r1 / s1):.2f}x (bound {args.concurrency}x)")


if __name__ == "__main__":
    main()
