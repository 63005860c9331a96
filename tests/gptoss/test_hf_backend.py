"""The in-process backend on the tiny gpt-oss: continuous batching gives `model.generate`'s tokens while
spending no forward-pass row on a sequence that has ended, and an adapter merged for evaluation
answers as the PeftModel does, leaving the adapter on disk untouched."""

import copy
import hashlib
import json

import pytest
import torch

from wikitune.errors import WikituneError
from wikitune.evaluate.run import QAEvalConfig, run_eval
from wikitune.gptoss.generate import GenerationSettings, HFBackend
from wikitune.gptoss.harmony import PromptSettings, render_prompt
from wikitune.gptoss.loopguard import find_cycle
from wikitune.gptoss.model import load_model_and_tokenizer, train_bpe_tokenizer
from wikitune.qa import load_qa

N_PROMPTS = 7  # with batch 3: prompts join the batch as others end


@pytest.fixture(scope="module")
def tok_dir(demo_corpus, tmp_path_factory):
    texts = [json.loads(line)["text"] for line in (demo_corpus / "articles.jsonl").read_text(encoding="utf-8").splitlines()]
    out = tmp_path_factory.mktemp("tok")
    train_bpe_tokenizer(texts, 2000, out)
    return out


@pytest.fixture(scope="module")
def prompts(demo_qa):
    items = load_qa([str(demo_qa / "test.jsonl")]).items[:N_PROMPTS]
    texts = [render_prompt(PromptSettings(), item.question) for item in items]
    assert len({len(t) for t in texts}) > 1  # prompts of different lengths: left padding matters
    return texts


def reference(model, tok, prompts, batch_size, max_new_tokens, stop_ids):
    """`model.generate` greedy, in fixed batches (every row decodes until its batch ends), cut after a stop token."""
    rows = []
    for start in range(0, len(prompts), batch_size):
        enc = tok(prompts[start : start + batch_size], add_special_tokens=False, padding=True, padding_side="left",
                  return_tensors="pt")
        with torch.inference_mode():
            out = model.generate(**enc, max_new_tokens=max_new_tokens, eos_token_id=stop_ids, pad_token_id=tok.pad_token_id,
                                 do_sample=False, temperature=None, top_p=None, top_k=None)
        for row in out[:, enc["input_ids"].shape[1] :].tolist():
            ends = [i for i, t in enumerate(row) if t in stop_ids]
            rows.append(row[: ends[0] + 1] if ends else row)
    return rows


def text(tok, row):
    return tok.decode(row, skip_special_tokens=False, clean_up_tokenization_spaces=False)


def same(tok, generations, rows):
    """The generations are exactly these token rows (their text and their token counts)."""
    return [(g.raw, g.new_tokens) for g in generations] == [(text(tok, row), len(row)) for row in rows]


def test_rows_ending_at_different_steps_give_generates_tokens_and_leave_the_batch(tok_dir, prompts):
    model, tok = load_model_and_tokenizer("tiny-gpt-oss", tokenizer=tok_dir)
    backend = HFBackend(model, tok, GenerationSettings(max_new_tokens=20, batch_size=3, loop_guard=False))
    plain = reference(model, tok, prompts, 3, 20, backend.stop_ids)
    # Make the model end its turn where it would write a token it often writes: swapping that
    # token's output row with <|return|>'s relabels the argmax, so each prompt now ends at the
    # first place it wrote that token, a different step per prompt.
    firsts = {}
    for row in plain:
        for i, t in enumerate(row):
            firsts.setdefault(t, {}).setdefault(id(row), i)
    token = max((t for t in firsts if len(set(firsts[t].values())) > 1 and len(firsts[t]) < len(plain)),
                key=lambda t: len(firsts[t]))
    ended = copy.deepcopy(model)
    ret = backend.stop_ids[0]
    with torch.no_grad():
        ended.lm_head.weight[[token, ret]] = ended.lm_head.weight[[ret, token]]
    backend.model = ended

    outs = backend.generate(prompts)
    expected = reference(ended, tok, prompts, 3, 20, backend.stop_ids)
    assert same(tok, outs, expected)
    stops = [o.new_tokens for o in outs if o.stop_reason == "stop"]
    assert len(set(stops)) > 1 and any(o.stop_reason == "length" for o in outs)  # rows ended at different steps
    assert all(o.raw.endswith("<|return|>") == (o.stop_reason == "stop") for o in outs)
    # every forward-pass row produced a token that was kept: no row decodes after it ended
    assert sum(backend.forward_batch_sizes) == sum(o.new_tokens for o in outs)
    assert max(backend.forward_batch_sizes) == 3
    uncompacted = sum(3 * max(len(r) for r in expected[s : s + 3]) for s in range(0, N_PROMPTS, 3))
    assert sum(backend.forward_batch_sizes) < uncompacted

    one_by_one = HFBackend(ended, tok, GenerationSettings(max_new_tokens=20, batch_size=1, loop_guard=False))
    assert [o.raw for o in one_by_one.generate(prompts)] == [o.raw for o in outs]


def test_loop_stopped_rows_leave_the_batch_and_keep_the_unguarded_prefix(tok_dir, prompts):
    """Weights seed 2 fall into token cycles, at different steps, on these prompts (with this BPE)."""
    model, tok = load_model_and_tokenizer("tiny-gpt-oss", tokenizer=tok_dir, tiny={"seed": 2})
    loop = dict(loop_min_span=12, loop_max_period=24, loop_min_repeats=3)
    guarded = HFBackend(model, tok, GenerationSettings(max_new_tokens=64, batch_size=3, **loop))
    outs = guarded.generate(prompts)
    unguarded = reference(model, tok, prompts, 3, 64, guarded.stop_ids)
    for out, full in zip(outs, unguarded):
        found = find_cycle(full, min_span=12, max_period=24, min_repeats=3)
        if found is not None and full[found[0] - 1] not in guarded.stop_ids:
            assert out.stop_reason == "loop" and out.new_tokens == found[0] and out.tokens_saved == 64 - found[0]
        else:
            assert out.stop_reason != "loop" and out.new_tokens == len(full)
        assert same(tok, [out], [full[: out.new_tokens]])
    loops = [o.new_tokens for o in outs if o.stop_reason == "loop"]
    assert len(set(loops)) > 1  # stopped at different steps
    assert sum(guarded.forward_batch_sizes) == sum(o.new_tokens for o in outs)


def test_sampling_with_a_tiny_nucleus_is_greedy_and_sampling_is_seeded(tok_dir, prompts):
    model, tok = load_model_and_tokenizer("tiny-gpt-oss", tokenizer=tok_dir)
    greedy = HFBackend(model, tok, GenerationSettings(max_new_tokens=12, batch_size=3)).generate(prompts[:4])
    nucleus = HFBackend(model, tok, GenerationSettings(max_new_tokens=12, batch_size=3, temperature=1.0, top_p=1e-6))
    assert [o.raw for o in nucleus.generate(prompts[:4])] == [o.raw for o in greedy]
    sample = HFBackend(model, tok, GenerationSettings(max_new_tokens=12, batch_size=3, temperature=1.0, seed=5))
    first = [o.raw for o in sample.generate(prompts[:4])]
    assert [o.raw for o in sample.generate(prompts[:4])] == first and first != [o.raw for o in greedy]


def digest(directory):
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(directory.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def expert_adapter(tok_dir, tmp_path_factory):
    """A LoRA adapter on attention and on the fused experts (`target_parameters`), non-zero, saved as cpt saves it."""
    from peft import LoraConfig, get_peft_model

    base, _ = load_model_and_tokenizer("tiny-gpt-oss", tokenizer=tok_dir)
    peft = get_peft_model(base, LoraConfig(r=4, lora_alpha=8, lora_dropout=0.0, init_lora_weights=False,
                                           target_modules=["q_proj", "v_proj"],
                                           target_parameters=["mlp.experts.gate_up_proj", "mlp.experts.down_proj"]))
    out = tmp_path_factory.mktemp("adapter")
    peft.save_pretrained(out)
    return out


def test_a_merged_expert_adapter_answers_as_the_peft_model(tok_dir, expert_adapter, prompts):
    before = digest(expert_adapter)
    merged, tok = load_model_and_tokenizer("tiny-gpt-oss", tokenizer=tok_dir, adapter=expert_adapter, merge_adapter=True)
    wrapped, _ = load_model_and_tokenizer("tiny-gpt-oss", tokenizer=tok_dir, adapter=expert_adapter)
    base, _ = load_model_and_tokenizer("tiny-gpt-oss", tokenizer=tok_dir)
    assert not any("lora" in name for name, _ in merged.named_modules())
    assert type(merged).__name__ == "GptOssForCausalLM"
    assert any("lora" in name for name, _ in wrapped.named_modules())
    enc = tok(prompts[:3], add_special_tokens=False, padding=True, padding_side="left", return_tensors="pt")
    with torch.inference_mode():
        logits = [m(**enc).logits for m in (merged, wrapped, base)]
    assert torch.allclose(logits[0], logits[1], atol=1e-5, rtol=1e-4)
    assert not torch.allclose(logits[1], logits[2], atol=1e-2)  # the adapter changes the model
    settings = GenerationSettings(max_new_tokens=16, batch_size=3, loop_guard=False)
    assert [g.raw for g in HFBackend(merged, tok, settings).generate(prompts)] == \
        [g.raw for g in HFBackend(wrapped, tok, settings).generate(prompts)]
    assert digest(expert_adapter) == before  # the adapter on disk is only read

    with pytest.raises(WikituneError, match="merge_adapter and trainable"):
        load_model_and_tokenizer("tiny-gpt-oss", tokenizer=tok_dir, adapter=expert_adapter, merge_adapter=True, trainable=True)


def test_eval_merges_the_adapter_unless_told_not_to(tok_dir, expert_adapter, demo_qa, tmp_path):
    def run(name, merge):
        cfg = QAEvalConfig(output_dir=str(tmp_path / name), qa=[f"{demo_qa / 'test.jsonl'}:4"], tokenizer=str(tok_dir),
                           adapter=str(expert_adapter),
                           generation=GenerationSettings(max_new_tokens=12, batch_size=3, merge_adapter=merge))
        lines = (run_eval(cfg) / "results.jsonl").read_text(encoding="utf-8").splitlines()
        return [json.loads(line) for line in lines]

    merged, unmerged = run("merged", True), run("peft", False)
    assert [r["raw"] for r in merged] == [r["raw"] for r in unmerged]
    assert merged[0]["cache_key"] != unmerged[0]["cache_key"]
