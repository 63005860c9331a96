"""Fixtures of the training tests: the demo corpus, a tiny repeated corpus, a QA file, fast settings."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

# Small and fast on 2 CPU cores: tiny model (2 layers, hidden 64, 4 experts, top-2), short blocks.
FAST = [
    "block_size=32", "batch_size=4", "tokenizer_vocab_size=400", "optim=adamw_torch",
    "logging_steps=1", "plot=false", "warmup=0",
]


@pytest.fixture(scope="session")
def demo_corpus(tmp_path_factory) -> Path:
    from wikitune.corpus.extract import ExtractConfig, run_extract

    out = tmp_path_factory.mktemp("demo") / "corpus"
    run_extract(ExtractConfig(dump="demo", out=out, workers=1))
    return out


REPEATED = [
    "銀魂は空知英秋の漫画。桂小太郎のあだ名はヅラ。坂田銀時は万事屋の主人。",
    "ぱにぽにだっしゅ！のレベッカ宮本は桃月学園の1年C組の担任。",
    "進撃の巨人の掛け声は「心臓を捧げよ！」。調査兵団が壁の外へ出る。",
]


def write_corpus(directory: Path, texts: list[str], first_pageid: int = 1) -> Path:
    """A minimal corpus directory (articles.jsonl as in DESIGN.md) holding `texts`."""
    directory.mkdir(parents=True, exist_ok=True)
    with (directory / "articles.jsonl").open("w", encoding="utf-8") as handle:
        for i, text in enumerate(texts):
            pageid = first_pageid + i
            handle.write(json.dumps({
                "pageid": pageid, "title": f"記事{pageid}", "revid": None, "timestamp": None, "url": None,
                "categories": [], "depth": {}, "text": text, "markdown": text, "infobox": [], "file": f"記事{pageid}",
            }, ensure_ascii=False) + "\n")
    return directory


@pytest.fixture(scope="session")
def repeated_corpus(tmp_path_factory) -> Path:
    """Three short articles, each repeated: easy to fit, so loss must fall within a few steps."""
    return write_corpus(tmp_path_factory.mktemp("rep") / "corpus", [t * 6 for t in REPEATED] * 4)


QA = [
    {"id": "q1", "question": "銀魂で、桂小太郎のあだ名は？", "answer": "ヅラ", "aliases": [], "domain": "anime",
     "split": "train", "source": None},
    {"id": "q2", "question": "「心臓を捧げよ！」という掛け声で知られるアニメ作品は？", "answer": "進撃の巨人", "aliases": [],
     "domain": "anime", "split": "train", "source": None},
    {"id": "q3", "question": "レベッカ宮本が担任しているクラスは何組？", "answer": "桃月学園の1年C組", "aliases": [],
     "domain": "anime", "split": "train", "source": None},
    {"id": "q4", "question": "テスト用の質問", "answer": "テスト", "aliases": [], "domain": "anime", "split": "test",
     "source": None},
]


@pytest.fixture(scope="session")
def qa_file(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("qa") / "train.jsonl"
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in QA), encoding="utf-8")
    return path
