"""CPT data mixtures: the declaration, every source's reading (the held-out split everywhere),
fractions of the training tokens, order, and whole runs on the tiny gpt-oss with a real BPE."""

from __future__ import annotations

import json
import random
import re
from pathlib import Path

import pytest
import yaml
from transformers import TrainerCallback

from tests.train.conftest import FAST, QA
from wikitune import formats
from wikitune.config import load_config, write_config
from wikitune.errors import WikituneError
from wikitune.formats import Document
from wikitune.split import is_heldout
from wikitune.train.cpt import CPTConfig, run_cpt
from wikitune.train.data import (Source, load_source, mix_sources, pack_wrapped, parse_sources,
                                 tokenize_documents, tokenize_source)

GENERAL = ["東京は日本の首都である。人口は約千四百万人。", "富士山は日本で最も高い山で、標高は3776メートル。",
           "味噌汁は日本の伝統的な汁物である。", "将棋は二人で行う盤上遊戯の一つ。"]


def mixture_cfg(tmp_path: Path, data: list, *overrides: str) -> CPTConfig:
    return load_config(CPTConfig, None, [f"data={json.dumps(data, ensure_ascii=False)}", f"output_dir={tmp_path}/run",
                                         *FAST, *overrides])


# --------------------------------------------------------------------------- the declaration


@pytest.mark.parametrize("data, message", [
    ([{"corpus": "c", "fractoin": 0.1}], r"data\[0\]: unknown key\(s\) fractoin of a corpus source; valid: corpus, fraction"),
    ([{"corpus": "c"}, {"wiki": "w"}], r"data\[1\] must name exactly one source key of corpus, augment, qa, replay; got wiki"),
    ([{"corpus": "c", "replay": "r"}], r"data\[0\] must name exactly one source key"),
    ([{"corpus": "c"}, {"replay": "r", "fraction": 0}], r"data\[1\]\.fraction must be a number in \(0, 1\)"),
    ([{"corpus": "c"}, {"replay": "r", "fraction": 1}], r"data\[1\]\.fraction must be a number in \(0, 1\)"),
    ([{"corpus": "c"}, {"replay": "r", "fraction": -0.2}], r"data\[1\]\.fraction must be a number in \(0, 1\)"),
    ([{"corpus": "c"}, {"replay": "r", "fraction": "half"}], r"data\[1\]\.fraction must be a number in \(0, 1\)"),
    ([{"corpus": "c"}, {"replay": "r", "fraction": 0.6}, {"augment": "a", "fraction": 0.4}],
     r"data: the fractions sum to 1; they must sum to less than 1"),
    ([{"replay": "r", "fraction": 0.5}], r"data: every source has a fraction; leave at least one without"),
    ([{"corpus": "c"}, {"qa": "q", "format": "markdown"}], r"data\[1\]\.format must be one of harmony, text"),
    ([{"corpus": "c", "format": "text"}], r"data\[0\]: unknown key\(s\) format of a corpus source"),
    ([{"qa": "q", "reasoning_effort": "max"}], r"data\[0\]\.reasoning_effort must be one of low, medium, high"),
    ([{"corpus": ""}], r"data\[0\]\.corpus must be a path"),
    (["corpus/demo"], r"data\[0\] must be a mapping such as \{corpus: DIR\}"),
    ([], r"data must be a non-empty list of sources"),
])
def test_a_bad_declaration_is_one_line_at_load(data, message):
    with pytest.raises(WikituneError, match=message) as err:
        load_config(CPTConfig, None, [f"data={json.dumps(data)}"])
    assert "\n" not in str(err.value)


def test_corpus_and_data_together_is_an_error_and_order_needs_a_mixture():
    with pytest.raises(WikituneError, match=r"give corpus or data, not both: put the corpus in data as `- \{corpus: DIR\}`"):
        load_config(CPTConfig, None, ["corpus=corpus/anime", "data=[{corpus: corpus/anime}]"])
    with pytest.raises(WikituneError, match="order: qa-first needs a qa source in data"):
        load_config(CPTConfig, None, ["data=[{corpus: c}]", "order=qa-first"])
    with pytest.raises(WikituneError, match="order: qa-first needs a mixture in data"):
        load_config(CPTConfig, None, ["order=qa-first"])
    with pytest.raises(WikituneError, match="order must be one of mixed, qa-first, got 'random'"):
        load_config(CPTConfig, None, ["data=[{corpus: c}]", "order=random"])


def test_corpus_alone_works_as_before_and_the_declared_mixture_round_trips(tmp_path):
    assert CPTConfig().corpus == "corpus/demo" and CPTConfig().data is None  # the tiny/20b configs and the study
    assert load_config(CPTConfig, None, ["corpus=corpus/anime"]).corpus == "corpus/anime"
    data = [{"corpus": "corpus/anime"}, {"augment": "aug/anime-facts", "fraction": 0.3},
            {"qa": "qa/anime/train.jsonl", "format": "harmony"}, {"replay": "general.txt", "fraction": 0.1}]
    cfg = mixture_cfg(tmp_path, data, "order=qa-first")
    assert cfg.corpus is None and cfg.data == data
    write_config(cfg, tmp_path / "config.yaml")
    assert yaml.safe_load((tmp_path / "config.yaml").read_text(encoding="utf-8"))["data"] == data
    assert load_config(CPTConfig, tmp_path / "config.yaml") == cfg
    assert [(s.kind, s.fraction) for s in parse_sources(cfg.data, cfg.order)] == [
        ("corpus", None), ("augment", 0.3), ("qa", None), ("replay", 0.1)]


# --------------------------------------------------------------------------- fractions and order (no model)


def fake_docs(rng: random.Random, n: int, mean: int) -> list[list[int]]:
    return [[rng.randrange(1, 50) for _ in range(rng.randrange(1, 2 * mean))] + [0] for _ in range(n)]


def test_realised_shares_match_the_fractions_within_one_block():
    rng = random.Random(0)
    for trial in range(40):
        block = rng.choice([8, 32, 100])
        fractions = [None, round(rng.uniform(0.01, 0.4), 3), None, round(rng.uniform(0.01, 0.4), 3)]
        sources = [Source(k, f"p{i}", f) for i, (k, f) in enumerate(zip(["corpus", "replay", "qa", "augment"], fractions))]
        # small sources are repeated to reach their share, large ones subsampled
        docs = [fake_docs(rng, rng.randrange(20, 60), 100) if f is None else
                fake_docs(rng, rng.randrange(5, 60), rng.choice([5, 40, 200])) for f in fractions]
        mixture = mix_sources(sources, docs, block, seed=trial)
        total = len(mixture.blocks) * block
        assert all(len(b) == block for b in mixture.blocks) and len(mixture.source_ids) == len(mixture.blocks)
        for source, source_docs, stats in zip(sources, docs, mixture.stats):
            assert stats["train_tokens"] == mixture.source_ids.count(sources.index(source)) * block
            assert stats["share"] == pytest.approx(stats["train_tokens"] / total)
            if source.fraction is None:  # keeps all its tokens, less the tail shorter than a block
                assert stats["blocks"] == len(pack_wrapped(source_docs, block))
            else:
                assert abs(stats["train_tokens"] - source.fraction * total) <= block, (trial, source, stats)


def test_a_fraction_repeats_or_subsamples_documents_deterministically_with_the_seed():
    rng = random.Random(1)
    sources = [Source("corpus", "c"), Source("replay", "r", 0.5)]
    small = [fake_docs(rng, 200, 20), fake_docs(rng, 3, 10)]   # replay must be repeated about 20 times
    large = [fake_docs(rng, 3, 10), fake_docs(rng, 200, 20)]   # replay must be subsampled
    repeated = mix_sources(sources, small, 16, seed=7)
    assert repeated.stats[1]["passes"] > 10
    subsampled = mix_sources(sources, large, 16, seed=7)
    assert subsampled.stats[1]["passes"] < 0.5
    assert mix_sources(sources, large, 16, seed=7).blocks == subsampled.blocks
    assert mix_sources(sources, large, 16, seed=8).blocks != subsampled.blocks
    # a source without a fraction is packed exactly as CPT on a corpus always was
    assert [b for b, i in zip(subsampled.blocks, subsampled.source_ids) if i == 0] == pack_wrapped(large[0], 16)


def test_qa_first_puts_every_qa_block_before_any_other_and_mixed_keeps_all():
    rng = random.Random(2)
    sources = [Source("corpus", "c"), Source("qa", "q"), Source("augment", "a", 0.2)]
    docs = [fake_docs(rng, 30, 30) for _ in sources]
    mixed = mix_sources(sources, docs, 16, seed=3, order="mixed")
    first = mix_sources(sources, docs, 16, seed=3, order="qa-first")
    n_qa = first.source_ids.count(1)
    assert n_qa > 0 and first.source_ids[:n_qa] == [1] * n_qa and 1 not in first.source_ids[n_qa:]
    assert sorted(map(tuple, first.blocks)) == sorted(map(tuple, mixed.blocks))  # the same blocks, reordered


def test_a_source_smaller_than_a_block_without_a_fraction_is_refused():
    with pytest.raises(WikituneError, match="replay r: fewer training tokens than one block of 64; lower block_size"):
        mix_sources([Source("corpus", "c"), Source("replay", "r")], [[[1] * 100], [[1] * 10]], 64, seed=0)


# --------------------------------------------------------------------------- reading sources


def test_held_out_pages_are_dropped_from_every_source(tmp_path, demo_corpus):
    articles = formats.read_articles(demo_corpus)
    held = [a for a in articles if is_heldout(a["pageid"], 0.1)]
    kept = [a for a in articles if not is_heldout(a["pageid"], 0.1)]
    assert held and kept
    corpus = load_source(Source("corpus", str(demo_corpus)), 0.1)
    assert corpus.texts == [a["text"] for a in kept] and corpus.heldout_texts == [a["text"] for a in held]
    # augmentation documents of held-out pages should not exist; if they do, they are never trained on
    aug = tmp_path / "aug"
    aug.mkdir()
    formats.write_documents(aug / formats.AUG_DOCUMENTS, [
        Document(id=f"{a['pageid']}:facts:0", pageid=a["pageid"], title=a["title"], method="facts", k=1,
                 text=f"{a['title']}の事実。") for a in (kept[0], held[0], kept[1])])
    documents = load_source(Source("augment", str(aug)), 0.1)
    assert documents.texts == [f"{kept[0]['title']}の事実。", f"{kept[1]['title']}の事実。"] and documents.heldout == 1
    qa = tmp_path / "qa.jsonl"
    records = [dict(QA[0], source={"pageid": held[0]["pageid"], "title": held[0]["title"]}), QA[1], QA[3]]
    qa.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records), encoding="utf-8")
    items = load_source(Source("qa", str(qa)), 0.1)
    assert [i.id for i in items.items] == ["q2"] and items.heldout == 1  # q1's page is held out, q4 is a test item
    # a replay corpus keeps the split too
    assert load_source(Source("replay", str(demo_corpus)), 0.1).texts == corpus.texts


def test_replay_text_files(tmp_path):
    txt = tmp_path / "general.txt"
    txt.write_text("\n\n".join(GENERAL[:2]) + "\n\n\n" + GENERAL[2] + "\n二行目。\n", encoding="utf-8")
    assert load_source(Source("replay", str(txt)), 0.1).texts == [GENERAL[0], GENERAL[1], GENERAL[2] + "\n二行目。"]
    jsonl = tmp_path / "general.jsonl"
    jsonl.write_text("".join(json.dumps({"text": t}, ensure_ascii=False) + "\n" for t in GENERAL), encoding="utf-8")
    assert load_source(Source("replay", str(jsonl)), 0.1).texts == GENERAL
    jsonl.write_text('{"text": "a"}\n{"body": "b"}\n', encoding="utf-8")
    with pytest.raises(WikituneError, match=r"general.jsonl:2: a record needs a \"text\" string"):
        load_source(Source("replay", str(jsonl)), 0.1)
    other = tmp_path / "general.csv"
    other.write_text("a,b\n", encoding="utf-8")
    with pytest.raises(WikituneError, match=r"general.csv: a text file must end in .txt .* or .jsonl"):
        load_source(Source("replay", str(other)), 0.1)


@pytest.mark.parametrize("kind, hint", [
    ("corpus", "build one with `wikitune extract`"), ("augment", "build one with `wikitune augment"),
    ("qa", "build one with `wikitune qa build`"), ("replay", "give a corpus directory, a .txt or a .jsonl file"),
])
def test_a_missing_path_is_one_line_naming_the_source(tmp_path, kind, hint):
    with pytest.raises(WikituneError, match=re.escape(f"{kind} {tmp_path}/nope does not exist: {hint}")):
        load_source(Source(kind, str(tmp_path / "nope")), 0.1)


def test_a_source_with_no_tokens_is_one_line(tmp_path):
    from tests.train.conftest import write_corpus

    empty = tmp_path / "empty.txt"
    empty.write_text("\n\n", encoding="utf-8")
    data = load_source(Source("replay", str(empty)), 0.1)
    with pytest.raises(WikituneError, match=f"replay {empty}: no tokens to train on: it holds no text"):
        tokenize_source(data, None, 0)
    # a corpus whose every article is held out
    corpus = write_corpus(tmp_path / "held", ["本文。"] * 3, first_pageid=1)
    data = load_source(Source("corpus", str(corpus)), 0.99)
    assert not data.texts and data.heldout == 3
    with pytest.raises(WikituneError, match="no tokens to train on: every page of it is held out; lower heldout_fraction"):
        tokenize_source(data, None, 0)


def test_a_missing_source_stops_the_run_before_the_run_directory_is_made(tmp_path, demo_corpus):
    cfg = mixture_cfg(tmp_path, [{"corpus": str(demo_corpus)}, {"augment": str(tmp_path / "aug")}], "max_steps=1")
    with pytest.raises(WikituneError, match="augment .*/aug does not exist"):
        run_cpt(cfg)
    assert not (tmp_path / "run").exists()


def test_harmony_qa_is_the_conversation_sft_trains_on(tmp_path, demo_corpus, qa_file):
    from wikitune.gptoss.model import train_bpe_tokenizer
    from wikitune.train.sft import SFTConfig, encode_records

    tok = train_bpe_tokenizer([a["text"] for a in formats.read_articles(demo_corpus)], 400, tmp_path / "tok")
    sep = tok.convert_tokens_to_ids("<|endoftext|>")
    data = load_source(Source("qa", str(qa_file), developer_prompt="日本語で答えて。"), 0.1)
    docs = tokenize_source(data, tok, sep, "2025-08-05")
    sft_rows, _ = encode_records(data.items, tok, SFTConfig(current_date="2025-08-05", developer_prompt="日本語で答えて。"))
    assert [d[:-1] for d in docs] == [r["input_ids"] for r in sft_rows] and all(d[-1] == sep for d in docs)
    text = tok.decode(docs[0])
    assert "Current date: 2025-08-05" in text and "日本語で答えて。" in text
    assert text.endswith("<|start|>assistant<|channel|>final<|message|>ヅラ<|return|><|endoftext|>")
    plain = tokenize_source(load_source(Source("qa", str(qa_file), format="text"), 0.1), tok, sep)
    assert tok.decode(plain[0]) == "銀魂で、桂小太郎のあだ名は？\nヅラ<|endoftext|>"


# --------------------------------------------------------------------------- whole runs (tiny gpt-oss, real BPE)


@pytest.fixture(scope="module")
def sources(tmp_path_factory, demo_corpus) -> dict[str, Path]:
    """The demo corpus, its `augment --method facts` documents and `qa build` QA, and a replay text."""
    from wikitune.augment.run import AugmentConfig, run_augment
    from wikitune.qa.build import QABuildConfig, run_qa_build

    tmp = tmp_path_factory.mktemp("mix")
    run_augment(AugmentConfig(corpus=demo_corpus, out=tmp / "aug"))
    run_qa_build(QABuildConfig(corpus=demo_corpus, out=tmp / "qa"))
    (tmp / "general.txt").write_text("\n\n".join(GENERAL * 3), encoding="utf-8")
    return {"corpus": demo_corpus, "augment": tmp / "aug", "qa": tmp / "qa" / formats.QA_TRAIN, "replay": tmp / "general.txt"}


def test_a_mixture_run_trains_on_the_declared_shares(tmp_path, sources):
    data = [{"corpus": str(sources["corpus"])}, {"augment": str(sources["augment"]), "fraction": 0.3},
            {"qa": str(sources["qa"]), "format": "harmony"}, {"replay": str(sources["replay"]), "fraction": 0.1}]
    run = run_cpt(mixture_cfg(tmp_path, data, "max_steps=1", "current_date=2025-08-05"))
    summary = json.loads((run / "summary.json").read_text(encoding="utf-8"))
    block = summary["block_size"]
    total = summary["train_blocks"] * block
    stats = summary["sources"]
    assert [(s["source"], s["path"], s["fraction"]) for s in stats] == [
        (kind, str(sources[kind]), entry.get("fraction")) for entry, kind in zip(data, ("corpus", "augment", "qa", "replay"))]
    assert sum(s["train_tokens"] for s in stats) == total and sum(s["share"] for s in stats) == pytest.approx(1.0)
    for entry, s in zip(data, stats):
        assert s["documents"] > 0 and s["tokens"] > 0 and s["share"] == pytest.approx(s["train_tokens"] / total)
        if "fraction" in entry:
            assert abs(s["train_tokens"] - entry["fraction"] * total) <= block, s
        else:
            assert 0 <= s["tokens"] - s["train_tokens"] < block, s  # every token but the last partial block
    assert stats[3]["passes"] > 1  # the short replay text is repeated to reach its 10%
    assert summary["heldout_articles"] == stats[0]["heldout"] > 0 and summary["eval_blocks"] > 0
    assert yaml.safe_load((run / "config.yaml").read_text(encoding="utf-8"))["data"] == data
    assert summary["steps"] == 1 and summary["padding_tokens"] == 0


class Batches(TrainerCallback):
    """The input_ids of every training forward pass, in order."""

    def __init__(self):
        self.rows: list[list[int]] = []

    def on_train_begin(self, args, state, control, model=None, **kwargs):
        def hook(module, args, kwargs):
            if module.training:
                self.rows += kwargs["input_ids"].tolist()
        model.register_forward_pre_hook(hook, with_kwargs=True)


def test_qa_first_trains_every_qa_block_before_any_document_block(tmp_path, sources):
    from transformers import AutoTokenizer

    data = [{"corpus": str(sources["corpus"])}, {"qa": str(sources["qa"])},
            {"augment": str(sources["augment"]), "fraction": 0.2}]
    cfg = mixture_cfg(tmp_path, data, "order=qa-first", "max_steps=3", "batch_size=2", "save_steps=100",
                      "eval_steps=100", "block_size=16")
    batches = Batches()
    run = run_cpt(cfg, callbacks=[batches])
    assert (run / "config.yaml").read_text(encoding="utf-8").count("current_date: '") == 1  # pinned for a resume
    # The same mixture, rebuilt with the run's tokenizer: every training row is in it, in its order.
    tok = AutoTokenizer.from_pretrained(run / "tokenizer")
    declared = parse_sources(cfg.data, cfg.order)
    loaded = [load_source(s, cfg.heldout_fraction) for s in declared]
    sep = tok.convert_tokens_to_ids("<|endoftext|>")
    mixture = mix_sources(declared, [tokenize_source(d, tok, sep, cfg.current_date) for d in loaded], 16, cfg.seed,
                          "qa-first")
    n_qa = mixture.source_ids.count(1)
    assert n_qa > 6 and set(mixture.source_ids[:n_qa]) == {1} and 1 not in mixture.source_ids[n_qa:]
    assert batches.rows == mixture.blocks[:6]  # 3 steps x 2 rows, sequential: all QA
    assert "<|" in tok.decode([t for block in mixture.blocks[:n_qa] for t in block])  # harmony conversations
    summary = json.loads((run / "summary.json").read_text(encoding="utf-8"))
    assert summary["order"] == "qa-first" and summary["sources"][1]["blocks"] == n_qa


def test_the_shipped_mixture_config_runs(tmp_path, sources):
    """configs/tiny/cpt-mixture.yaml with its paths pointed at the fixtures' (its header's commands)."""
    path = Path(__file__).resolve().parents[2] / "configs" / "tiny" / "cpt-mixture.yaml"
    shipped = yaml.safe_load(path.read_text(encoding="utf-8"))
    kinds = [next(k for k in entry if k in sources) for entry in shipped["data"]]
    data = [{**entry, kind: str(sources[kind])} for entry, kind in zip(shipped["data"], kinds)]
    cfg = load_config(CPTConfig, path, [f"data={json.dumps(data, ensure_ascii=False)}", f"output_dir={tmp_path}/run",
                                        *FAST, "max_steps=1"])
    summary = json.loads((run_cpt(cfg) / "summary.json").read_text(encoding="utf-8"))
    assert [s["source"] for s in summary["sources"]] == kinds and summary["steps"] == 1


def test_tokenize_documents_and_a_lone_corpus_source_pack_the_same(tmp_path, demo_corpus):
    """`corpus:` without `data` is the one-source mixture: the same blocks as before mixtures."""
    from wikitune.gptoss.model import train_bpe_tokenizer

    articles = [a for a in formats.read_articles(demo_corpus) if not is_heldout(a["pageid"], 0.1)]
    tok = train_bpe_tokenizer([a["text"] for a in articles], 400, tmp_path / "tok")
    sep = tok.convert_tokens_to_ids("<|endoftext|>")
    source = Source("corpus", str(demo_corpus))
    docs = tokenize_source(load_source(source, 0.1), tok, sep)
    before = pack_wrapped(tokenize_documents([a["text"] for a in articles], tok, sep), 32)
    assert mix_sources([source], [docs], 32, seed=0).blocks == before
