"""Benchmark: batched vs one-by-one generation, and the tokens the loop guard saves, in one run.

    .venv/bin/python bench/eval.py [--questions 32] [--repeat 3]

Everything runs on the tiny random gpt-oss (2 layers, hidden 64) with a byte-level BPE trained on
the demo corpus, answering demo-wiki questions from `qa build`, greedy, on CPU.

1. Throughput: the same questions answered with batch 8 (left-padded, KV cache) and with batch 1,
   64 new tokens at most; questions/s (median of --repeat) and whether the batched answers equal
   the one-by-one answers token for token.
2. Loop guard on real generation: a random tiny model (weights seed 3) falls into token cycles on
   most questions, like the seed's "Wait, let's recall…" analysis; 512 new tokens at most, batch 8,
   guard on vs off: tokens generated, loop-stopped sequences, tokens saved, wall time. In a batch,
   a stopped sequence's slot keeps running (as padding) until the batch's last sequence ends, so
   wall time falls only when whole batches stop early; tokens saved is compute saved at batch 1.
3. Loop guard on the seed report's looping analysis itself (table 2), tokenised with the real
   o200k vocabulary (../shared/data/gpt-oss; skipped without it) and replayed token by token
   against a 2048-token budget: where the guard stops it.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
VOCAB = REPO.parent / "shared" / "data" / "gpt-oss"
SEED_LOOP = (
    "The user asks: \"ぱにぽにだっしゅ！で、主人公のレベッカ宮本が担任している、非常に個性的な生徒たちが集まるクラスは何組ですか？\" "
    "This is a question about the anime \"ぱにぽにだっしゅ！\" (Panic Pon!). The answer: She is a teacher at a school, but the class "
    "is 3rd year of junior high? "
    + "Actually, Rebecca Miyamoto is a teacher at a school, but the class is 3rd year of junior high? Wait, let's recall: In the anime, "
    "Rebecca Miyamoto is a teacher at a school, but the class is 3rd year of junior high? " * 40
)


def setup(tmp: Path, n: int):
    from wikitune.corpus.extract import ExtractConfig, run_extract
    from wikitune.gptoss.harmony import PromptSettings, render_prompt
    from wikitune.gptoss.model import train_bpe_tokenizer
    from wikitune.qa import load_qa
    from wikitune.qa.build import QABuildConfig, run_qa_build

    corpus = tmp / "corpus"
    run_extract(ExtractConfig(dump="demo", out=corpus))
    run_qa_build(QABuildConfig(corpus=corpus, out=tmp / "qa"))
    texts = [json.loads(line)["text"] for line in (corpus / "articles.jsonl").read_text(encoding="utf-8").splitlines()]
    train_bpe_tokenizer(texts, 2000, tmp / "tok")
    items = load_qa([str(tmp / "qa" / "train.jsonl"), str(tmp / "qa" / "test.jsonl")]).items[:n]
    return [render_prompt(PromptSettings(), item.question) for item in items]


def timed(fn, repeat):
    times, out = [], None
    for _ in range(repeat):
        start = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times), out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--questions", type=int, default=32, help="questions per measurement")
    parser.add_argument("--repeat", type=int, default=3, help="timing repeats (median)")
    args = parser.parse_args()

    import torch

    from wikitune.gptoss.generate import GenerationSettings, HFBackend
    from wikitune.gptoss.loopguard import find_cycle
    from wikitune.gptoss.model import load_model_and_tokenizer

    torch.set_num_threads(os.cpu_count() or 1)
    report: dict = {"questions": args.questions, "repeat": args.repeat, "threads": torch.get_num_threads()}
    with tempfile.TemporaryDirectory() as tmp_s:
        tmp = Path(tmp_s)
        prompts = setup(tmp, args.questions)

        # 1. batched vs one-by-one
        model, tok = load_model_and_tokenizer("tiny-gpt-oss", tokenizer=tmp / "tok")
        results = {}
        for batch in (8, 1):
            backend = HFBackend(model, tok, GenerationSettings(max_new_tokens=64, batch_size=batch))
            backend.generate(prompts[:2])  # warm-up
            seconds, outs = timed(lambda: backend.generate(prompts), args.repeat)
            results[batch] = (seconds, outs)
            report[f"batch{batch}"] = {"seconds": round(seconds, 3), "questions_per_s": round(len(prompts) / seconds, 2),
                                       "new_tokens": sum(o.new_tokens for o in outs)}
        same = sum(a.raw == b.raw for a, b in zip(results[8][1], results[1][1]))
        report["batched_equals_one_by_one"] = f"{same}/{len(prompts)}"
        report["batched_speedup"] = round(results[1][0] / results[8][0], 2)

        # 2. loop guard on a looping model
        model, tok = load_model_and_tokenizer("tiny-gpt-oss", tokenizer=tmp / "tok", tiny={"seed": 3})
        loop, times = {}, {True: [], False: []}
        backends = {guard: HFBackend(model, tok, GenerationSettings(max_new_tokens=512, batch_size=8, loop_guard=guard))
                    for guard in (True, False)}
        for _ in range(args.repeat):  # alternate on/off so machine load hits both alike
            for guard in (False, True):
                start = time.perf_counter()
                loop[guard] = backends[guard].generate(prompts)
                times[guard].append(time.perf_counter() - start)
        for guard, outs in loop.items():
            report[f"loop_guard_{'on' if guard else 'off'}"] = {
                "seconds": round(statistics.median(times[guard]), 3), "new_tokens": sum(o.new_tokens for o in outs),
                "loop_stopped": sum(o.stop_reason == "loop" for o in outs), "tokens_saved": sum(o.tokens_saved for o in outs),
                "hit_budget": sum(o.stop_reason == "length" for o in outs),
            }
        # a stopped completion is a prefix of the unguarded one: the guard only cuts
        prefix = sum(b.raw.startswith(a.raw) for a, b in zip(loop[True], loop[False]))
        report["guarded_is_prefix_of_unguarded"] = f"{prefix}/{len(prompts)}"
        on, off = report["loop_guard_on"], report["loop_guard_off"]
        report["loop_guard_token_reduction"] = round(1 - on["new_tokens"] / off["new_tokens"], 3)
        report["loop_guard_time_ratio"] = round(on["seconds"] / off["seconds"], 3)

        # 3. the seed's looping analysis, real o200k tokens
        if (VOCAB / "o200k_base.tiktoken").is_file():
            import tiktoken

            from wikitune.gptoss.model import set_offline_tiktoken

            set_offline_tiktoken(VOCAB)  # tiktoken reads its cache dir, never the network

            tokens = tiktoken.get_encoding("o200k_base").encode(SEED_LOOP)[:2048]
            found = find_cycle(tokens, min_span=48, max_period=200, min_repeats=3)
            report["seed_loop"] = {"budget": 2048, "tokens_available": len(tokens),
                                   "stopped_at": found[0] if found else None, "period": found[1] if found else None,
                                   "tokens_saved": 2048 - found[0] if found else 0}
        else:
            report["seed_loop"] = f"skipped: {VOCAB / 'o200k_base.tiktoken'} is absent"
    json.dump(report, sys.stdout, ensure_ascii=False, indent=2)
    print()


if __name__ == "__main__":
    main()
