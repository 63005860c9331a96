"""The base model's training: a few steps on a small world lower the loss, and the saved model
reloads with gptoss.model.load_model_and_tokenizer and generates."""

from __future__ import annotations

import json

import pytest

from wikitune import formats
from wikitune.errors import WikituneError
from wikitune.gptoss.harmony import HARMONY_WORDS
from wikitune.gptoss.model import TinyGptOssConfig, load_model_and_tokenizer
from wikitune.organism.base import BaseConfig, train_base
from wikitune.organism.world import WorldConfig


def test_a_short_full_training_lowers_the_loss_and_the_model_reloads(tmp_path, demo_corpus):
    cfg = BaseConfig(out=str(tmp_path / "o"), world=WorldConfig(people=4, cities=2, companies=2, k=2),
                     anime_corpus=str(demo_corpus), vocab_size=600, block_size=64, batch_size=4, epochs=3,
                     lr=1e-2, tiny=TinyGptOssConfig(hidden_size=32, intermediate_size=32, head_dim=8))
    model_dir = train_base(cfg)
    losses = [m["loss"] for m in formats.read_metrics(tmp_path / "o")]
    manifest = json.loads((tmp_path / "o" / "manifest.json").read_text(encoding="utf-8"))
    assert manifest["steps"] >= 6 and losses[-1] < losses[0] - 1.0
    model, tok = load_model_and_tokenizer(str(model_dir))
    assert model.num_parameters() == manifest["parameters"]
    assert all(len(tok(word, add_special_tokens=False)["input_ids"]) == 1 for word in HARMONY_WORDS)
    prompt = tok("<|start|>user<|message|>質問<|end|><|start|>assistant", return_tensors="pt")
    generated = model.generate(**prompt, max_new_tokens=4, do_sample=False)
    assert generated.shape[1] == prompt["input_ids"].shape[1] + 4 or generated[0, -1] == tok.eos_token_id


def test_bad_settings_are_refused_before_anything_is_written(tmp_path):
    with pytest.raises(WikituneError, match="lr must be positive"):
        BaseConfig(out=str(tmp_path / "o"), lr=0)
    assert not (tmp_path / "o").exists()
