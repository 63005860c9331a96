"""Benchmark: batched vs one-by-one generation, and the wall time the loop guard saves, in one run.

    .venv/bin/python bench/eval.py [--questions 32] [--repeat 3] [--threads 1]

Everything runs on the tiny random gpt-oss (2 layers, hidden 64) with a byte-level BPE trained on
the demo corpus, answering demo-wiki questions from `qa build`, greedy, on CPU. Every number is a
ratio against a baseline run in the same process, alternated with it, so machine load hits both.

1. Throughput: the same questions answered with batch 8 (continuous batching, KV cache) and with
   batch 1, 64 new tokens at most; questions/s (median of --repeat), the speed-up (target >= 4x)
   and whether the batched answers equal the one-by-one answers token for token.
2. Loop guard on real generation: a random tiny model (weights seed 3) falls into token cycles on
   most questions, like the seed's "Wait, let's recall…" analysis; 512 new tokens at most, batch 8,
   guard on vs off: tokens generated, loop-stopped sequences, tokens saved, wall time, and the
   wall-time saving (target >= 25%). A stopped sequence leaves the batch and the next question
   takes its slot. The third arm is the previous implementation, `model.generate` in fixed batches
   of 8 with the guard as a stopping criterion (a stopped row decodes padding until its batch
   ends): its time, and whether its answers equal the continuous batching's.
3. Loop guard on the seed report's looping analysis itself (table 2), tokenised with the real
   o200k vocabulary (../shared/data/gpt-oss; skipped without it) and replayed token by token
   against a 2048-token budget: where the guard stops it.
"""

from __future__ import annotations

import argparse
import json
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


def generate_fixed_batches(model, tok, prompts, settings):
    """The previous HF backend: `model.generate` on fixed batches, the loop guard as a stopping criterion."""
    import torch
    from transformers import StoppingCriteriaList

    from wikitune.gptoss.generate import Generation
    from wikitune.gptoss.harmony import STOP_STRINGS
    from wikitune.gptoss.loopguard import LoopGuard

    stops = [tok.convert_tokens_to_ids(t) for t in STOP_STRINGS]
    budget, out = settings.max_new_tokens, []
    for first in range(0, len(prompts), settings.batch_size):
        enc = tok(prompts[first : first + settings.batch_size], add_special_tokens=False, padding=True,
                  padding_side="left", return_tensors="pt")
        width = enc["input_ids"].shape[1]
        guard = LoopGuard(width, enc["input_ids"].shape[0], stop_token_ids=stops, min_span=settings.loop_min_span,
                          min_repeats=settings.loop_min_repeats, max_period=settings.loop_max_period)
        with torch.inference_mode():
            sequences = model.generate(**enc, max_new_tokens=budget, eos_token_id=stops, pad_token_id=tok.pad_token_id,
                                       do_sample=False, temperature=None, top_p=None, top_k=None,
                                       stopping_criteria=StoppingCriteriaList([guard.criterion()]))
        for b, row in enumerate(sequences[:, width:].tolist()):
            ends = [i + 1 for i, t in enumerate(row) if t in stops][:1]
            reason, n = ("stop", ends[0]) if ends else ("length", min(len(row), budget))
            if not ends and guard.stopped_at[b] is not None:
                reason, n = "loop", guard.stopped_at[b]
            out.append(Generation(raw=tok.decode(row[:n], skip_special_tokens=False, clean_up_tokenization_spaces=False),
                                  new_tokens=n, stop_reason=reason, tokens_saved=budget - n if reason == "loop" else 0))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--questions", type=int, default=32, help="questions per measurement")
    parser.add_argument("--repeat", type=int, default=3, help="timing repeats (median)")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch threads (on a shared 2-core machine two threads wait on each other whenever one is descheduled)")
    args = parser.parse_args()

    import torch

    from wikitune.gptoss.generate import GenerationSettings, HFBackend
    from wikitune.gptoss.loopguard import find_cycle
    from wikitune.gptoss.model import load_model_and_tokenizer

    torch.set_num_threads(args.threads)
    report: dict = {"questions": args.questions, "repeat": args.repeat, "threads": torch.get_num_threads()}
    with tempfile.TemporaryDirectory() as tmp_s:
        tmp = Path(tmp_s)
        prompts = setup(tmp, args.questions)

        # 1. batched vs one-by-one
        model, tok = load_model_and_tokenizer("tiny-gpt-oss", tokenizer=tmp / "tok")
        backends = {batch: HFBackend(model, tok, GenerationSettings(max_new_tokens=64, batch_size=batch)) for batch in (8, 1)}
        backends[8].generate(prompts[:2])  # warm-up
        outs_of, times_of = {}, {8: [], 1: []}
        for _ in range(args.repeat):  # alternate so machine load hits both alike
            for batch, backend in backends.items():
                start = time.perf_counter()
                outs_of[batch] = backend.generate(prompts)
                times_of[batch].append(time.perf_counter() - start)
        results = {batch: (statistics.median(times_of[batch]), outs_of[batch]) for batch in backends}
        for batch, (seconds, outs) in results.items():
            report[f"batch{batch}"] = {"seconds": round(seconds, 3), "questions_per_s": round(len(prompts) / seconds, 2),
                                       "new_tokens": sum(o.new_tokens for o in outs)}
        same = sum(a.raw == b.raw for a, b in zip(results[8][1], results[1][1]))
        report["batched_equals_one_by_one"] = f"{same}/{len(prompts)}"
        report["batched_speedup"] = round(results[1][0] / results[8][0], 2)
        report["batched_speedup_target_4_met"] = report["batched_speedup"] >= 4

        # 2. loop guard on a looping model: off, on, and on through generate() in fixed batches
        model, tok = load_model_and_tokenizer("tiny-gpt-oss", tokenizer=tmp / "tok", tiny={"seed": 3})
        arms = {arm: GenerationSettings(max_new_tokens=512, batch_size=8, loop_guard=arm != "off")
                for arm in ("off", "on", "generate")}
        run = {"off": HFBackend(model, tok, arms["off"]).generate, "on": HFBackend(model, tok, arms["on"]).generate,
               "generate": lambda ps: generate_fixed_batches(model, tok, ps, arms["generate"])}
        loop, times = {}, {arm: [] for arm in arms}
        for _ in range(args.repeat):  # alternate the arms so machine load hits all alike
            for arm in arms:
                start = time.perf_counter()
                loop[arm] = run[arm](prompts)
                times[arm].append(time.perf_counter() - start)
        for arm, outs in loop.items():
            report[f"loop_guard_{arm}"] = {
                "seconds": round(statistics.median(times[arm]), 3), "new_tokens": sum(o.new_tokens for o in outs),
                "loop_stopped": sum(o.stop_reason == "loop" for o in outs), "tokens_saved": sum(o.tokens_saved for o in outs),
                "hit_budget": sum(o.stop_reason == "length" for o in outs),
            }
        # a stopped completion is a prefix of the unguarded one: the guard only cuts. Compared as
        # text, so a cut inside a character (a byte-level token ends mid UTF-8 sequence, decoded as
        # U+FFFD) is set aside: the bytes before it are what must match.
        prefix = sum(b.raw.startswith(a.raw.rstrip("\ufffd")) for a, b in zip(loop["on"], loop["off"]))
        report["guarded_is_prefix_of_unguarded"] = f"{prefix}/{len(prompts)}"
        same = sum(a.raw == b.raw and a.stop_reason == b.stop_reason for a, b in zip(loop["on"], loop["generate"]))
        report["continuous_equals_generate"] = f"{same}/{len(prompts)}"
        on, off, before = report["loop_guard_on"], report["loop_guard_off"], report["loop_guard_generate"]
        report["loop_guard_token_reduction"] = round(1 - on["new_tokens"] / off["new_tokens"], 3)
        report["loop_guard_wall_time_saving"] = round(1 - on["seconds"] / off["seconds"], 3)
        report["loop_guard_wall_time_saving_target_0.25_met"] = report["loop_guard_wall_time_saving"] >= 0.25
        report["generate_fixed_batches_time_ratio_vs_off"] = round(before["seconds"] / off["seconds"], 3)

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
