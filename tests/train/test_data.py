"""CPT packing (no padding, EOS after every article), the shared article split as CPT reads it,
and the QA items SFT trains on."""

from __future__ import annotations

import json

import pytest

from tests.train.conftest import QA
from wikitune.errors import WikituneError
from wikitune.formats import QAItem, read_articles
from wikitune.split import is_heldout, split_articles
from wikitune.train.data import (
    IGNORE_INDEX, block_collate, pack_wrapped, pad_batches, read_training_qa, tokenize_documents,
)


def test_pack_wrapped_has_full_blocks_and_keeps_order():
    docs = [[1, 2, 3, 0], [4, 5, 0], [6, 7, 8, 9, 0]]
    assert pack_wrapped(docs, 4) == [[1, 2, 3, 0], [4, 5, 0, 6], [7, 8, 9, 0]]
    assert pack_wrapped(docs, 5) == [[1, 2, 3, 0, 4], [5, 0, 6, 7, 8]]  # tail < block dropped
    with pytest.raises(WikituneError):
        pack_wrapped(docs, 1)


def test_packed_batch_has_no_padding_and_trains_every_token():
    blocks = pack_wrapped([[i, i + 1, 0] for i in range(1, 40)], 16)
    batch = block_collate([{"input_ids": b} for b in blocks[:4]])
    assert batch["input_ids"].shape == (4, 16)
    assert "attention_mask" not in batch  # nothing to mask: every position is real text
    assert (batch["labels"] != IGNORE_INDEX).all() and (batch["labels"] == batch["input_ids"]).all()


def test_padded_alternative_wastes_tokens():
    batches = pad_batches([[1] * 10, [2] * 3, [3] * 20], block_size=16, batch_size=3, pad_id=0)
    (batch,) = batches
    assert [len(r) for r in batch["input_ids"]] == [16, 16, 16]
    assert sum(map(sum, batch["attention_mask"])) == 10 + 3 + 16
    assert batch["labels"][1][3:] == [IGNORE_INDEX] * 13


def test_every_article_ends_with_the_separator(demo_corpus):
    from wikitune.gptoss.model import train_bpe_tokenizer

    articles = read_articles(demo_corpus)
    tok = train_bpe_tokenizer([a["text"] for a in articles], 400, demo_corpus.parent / "tok")
    sep = tok.convert_tokens_to_ids("<|endoftext|>")
    docs = tokenize_documents([a["text"] for a in articles[:5]], tok, sep)
    assert all(d[-1] == sep and sep not in d[:-1] for d in docs)
    assert tok.decode(docs[0][:-1]) == articles[0]["text"]


def test_split_uses_the_shared_page_id_hash(demo_corpus):
    articles = read_articles(demo_corpus)
    train, held = split_articles(articles, 0.1)
    assert held and train and len(train) + len(held) == len(articles)
    assert all(is_heldout(a["pageid"], 0.1) for a in held)
    assert not any(is_heldout(a["pageid"], 0.1) for a in train)
    assert split_articles(articles, 0.1) == (train, held)


def test_not_a_corpus(tmp_path):
    with pytest.raises(WikituneError, match="not a corpus directory"):
        read_articles(tmp_path)


def test_training_qa_keeps_the_split_and_reads_a_directory_s_train_file(tmp_path, qa_file):
    items = read_training_qa(qa_file, "train")
    assert all(isinstance(i, QAItem) for i in items)
    assert [i.id for i in items] == ["q1", "q2", "q3"]  # q4 is of the test split
    assert [i.id for i in read_training_qa([qa_file], None)] == ["q1", "q2", "q3", "q4"]
    assert [i.id for i in read_training_qa(qa_file, "test")] == ["q4"]
    (tmp_path / "train.jsonl").write_text(json.dumps({**QA[0], "split": None}, ensure_ascii=False) + "\n",
                                          encoding="utf-8")
    (only,) = read_training_qa(tmp_path, "train")  # a directory: its train.jsonl; split null is kept
    assert (only.question, only.answer, only.split) == (QA[0]["question"], "ヅラ", None)


def test_training_qa_errors(tmp_path, qa_file):
    with pytest.raises(WikituneError, match="no QA records in"):
        read_training_qa(qa_file, "unseen")
    with pytest.raises(WikituneError, match="does not exist"):
        read_training_qa(tmp_path / "missing.jsonl")
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"id": "x", "question": "Q"}\n', encoding="utf-8")
    with pytest.raises(WikituneError, match="bad.jsonl:1: a record lacks answer"):
        read_training_qa(bad)
