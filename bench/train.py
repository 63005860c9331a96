"""Benchmark: CPT training throughput, packed vs padded batches, LoRA attention-only vs attention + experts.

    .venv/bin/python bench/train.py [--steps 12] [--block 256] [--batch 8]

On the demo corpus (built into a temporary directory), with the tiny random gpt-oss (2 layers,
hidden 64, 4 experts, top-2) and a 2,000-token BPE, fp32 on CPU. Four variants run in one process,
interleaved step by step, the same number of optimizer steps each (after 2 untimed warmup
steps); each figure is the median over that variant's steps:

- packing: `packed` = wikitune's wrapped blocks (every position is a real token);
  `padded` = one article per row, cut at the block size, padded to the longest row of the batch
  (the seed study's setup).
- LoRA: `attention` = q/k/v/o_proj only (what the seed's target list really trained);
  `attention+experts` = plus the fused expert parameters.

Reported per variant: positions/s (all tokens the model processes, padding included), real
tokens/s (non-padding tokens: the useful throughput), the share of real tokens, and the time one
epoch of the training articles would take at that speed. Ratios are against padded/attention
from the same run.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=12, help="Timed optimizer steps per variant.")
    parser.add_argument("--block", type=int, default=256, help="Block size (sequence length).")
    parser.add_argument("--batch", type=int, default=8, help="Rows per batch.")
    parser.add_argument("--json", type=Path, default=None, help="Also write the results here.")
    args = parser.parse_args(argv)

    import torch

    from wikitune.corpus.extract import ExtractConfig, run_extract
    from wikitune.gptoss.model import build_tiny_gpt_oss, train_bpe_tokenizer
    from wikitune.formats import read_articles
    from wikitune.split import split_articles
    from wikitune.train.data import pack_wrapped, pad_batches, tokenize_documents
    from wikitune.train.lora import LoraSettings, apply_lora

    torch.manual_seed(0)
    with tempfile.TemporaryDirectory() as tmp:
        corpus = Path(tmp) / "corpus"
        run_extract(ExtractConfig(dump="demo", out=corpus, workers=1))
        train, _ = split_articles(read_articles(corpus), 0.1)
        tok = train_bpe_tokenizer([a["text"] for a in train], 2000, Path(tmp) / "tok")
    sep = tok.convert_tokens_to_ids("<|endoftext|>")
    docs = tokenize_documents([a["text"] for a in train], tok, sep)
    corpus_tokens = sum(len(d) for d in docs)

    blocks = pack_wrapped(docs, args.block)
    packed = [{"input_ids": torch.tensor(blocks[i:i + args.batch]), "labels": torch.tensor(blocks[i:i + args.batch])}
              for i in range(0, len(blocks) - args.batch + 1, args.batch)]
    padded = [{k: torch.tensor(v) for k, v in b.items()} for b in pad_batches(docs, args.block, args.batch, tok.pad_token_id)]
    real_share = {
        "packed": 1.0,
        "padded": sum(int(b["attention_mask"].sum()) for b in padded) / sum(b["input_ids"].numel() for b in padded),
    }
    # padded rows are cut at the block size: the part of the corpus they never train on
    padded_kept = sum(min(len(d), args.block) for d in docs) / corpus_tokens

    loras = {
        "attention": LoraSettings(target_parameters=[]),
        "attention+experts": LoraSettings(),
    }
    # Build every variant first, then interleave them step by step and take each variant's median
    # step time: the CPU is shared, and load that drifts over the run then hits all variants alike.
    import contextlib
    import io
    import statistics

    variants = []
    for packing, batches in (("packed", packed), ("padded", padded)):
        for lora_name, settings in loras.items():
            model = build_tiny_gpt_oss(len(tok), pad_token_id=tok.pad_token_id, eos_token_id=tok.eos_token_id)
            with contextlib.redirect_stdout(io.StringIO()):
                model, coverage = apply_lora(model, settings)
            model.train()
            opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=2e-4)
            variants.append({"packing": packing, "lora": lora_name, "batches": batches, "model": model, "opt": opt,
                             "trainable": coverage["trainable_params"], "speeds": [], "real_speeds": [],
                             "positions": 0, "real": 0})
    for step in range(args.steps + 2):
        for v in variants:
            batch = v["batches"][step % len(v["batches"])]
            start = time.perf_counter()
            v["model"](**batch).loss.backward()
            v["opt"].step()
            v["opt"].zero_grad(set_to_none=True)
            seconds = time.perf_counter() - start
            if step >= 2:  # the first steps allocate and warm caches
                n = batch["input_ids"].numel()
                real = int(batch["attention_mask"].sum()) if "attention_mask" in batch else n
                v["speeds"].append(n / seconds)
                v["real_speeds"].append(real / seconds)
                v["positions"] += n
                v["real"] += real
    results = []
    for v in variants:
        real_per_s = statistics.median(v["real_speeds"])
        row = {
            "packing": v["packing"], "lora": v["lora"], "trainable_params": v["trainable"],
            "positions_per_s": statistics.median(v["speeds"]), "real_tokens_per_s": real_per_s,
            "real_share": v["real"] / v["positions"], "epoch_seconds": corpus_tokens / real_per_s,
        }
        results.append(row)
        print(json.dumps(row))
    base = next(r for r in results if r["packing"] == "padded" and r["lora"] == "attention")
    print()
    print(f"demo corpus: {len(docs)} training articles, {corpus_tokens:,} tokens; block {args.block}, batch {args.batch}, "
          f"{args.steps} timed steps per variant; real-token share of the whole padded epoch "
          f"{real_share['padded']:.3f}; padded rows keep {padded_kept:.3f} of the corpus (cut at the block size)")
    print("| packing | LoRA | trainable params | positions/s | real tokens/s | real share | epoch s | real tokens/s vs padded+attention |")
    print("|---|---|---:|---:|---:|---:|---:|---:|")
    for r in results:
        print(f"| {r['packing']} | {r['lora']} | {r['trainable_params']:,} | {r['positions_per_s']:,.0f} | "
              f"{r['real_tokens_per_s']:,.0f} | {r['real_share']:.3f} | {r['epoch_seconds']:.2f} | "
              f"{r['real_tokens_per_s'] / base['real_tokens_per_s']:.2f} |")
    out = {"results": results, "real_share_epoch": real_share, "padded_kept": padded_kept,
           "corpus_tokens": corpus_tokens, "args": {k: str(v) for k, v in vars(args).items()}}
    if args.json:
        args.json.write_text(json.dumps(out, indent=2))
    return out


if __name__ == "__main__":
    main()
