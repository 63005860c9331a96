"""Perplexity: exact against a direct computation, lower on text the model was trained on, wired into eval."""

import json
import math

import pytest

from tests.conftest import shared_file
from wikitune import formats
from wikitune.evaluate.perplexity import control_texts, heldout_texts, perplexity
from wikitune.gptoss.model import load_model_and_tokenizer, train_bpe_tokenizer
from wikitune.split import DEFAULT_HELDOUT_FRACTION, is_heldout


@pytest.fixture(scope="module")
def tiny(demo_corpus, tmp_path_factory):
    texts = [json.loads(line)["text"] for line in (demo_corpus / "articles.jsonl").read_text(encoding="utf-8").splitlines()]
    tok_dir = tmp_path_factory.mktemp("tok")
    train_bpe_tokenizer(texts, 2000, tok_dir)
    return load_model_and_tokenizer("tiny-gpt-oss", tokenizer=tok_dir)


def test_matches_the_models_own_loss(tiny):
    torch = pytest.importorskip("torch")
    model, tok = tiny
    text = "星海のアルカディアは、スタジオ灯火制作による日本のオリジナルテレビアニメ作品。"
    ids = torch.tensor([tok(text, add_special_tokens=False)["input_ids"]])
    with torch.inference_mode():
        loss = float(model(input_ids=ids, labels=ids).loss)
    result = perplexity(model, tok, [text], block_size=512)
    assert result["tokens"] == ids.shape[1] - 1 and result["documents"] == 1
    assert result["nll"] == pytest.approx(loss, abs=1e-4) and result["perplexity"] == pytest.approx(math.exp(loss), rel=1e-3)
    # batching with padding changes nothing
    two = perplexity(model, tok, [text, text[:20]], block_size=512, batch_size=2)
    one = [perplexity(model, tok, [t], block_size=512) for t in (text, text[:20])]
    expected = (one[0]["nll"] * one[0]["tokens"] + one[1]["nll"] * one[1]["tokens"]) / (one[0]["tokens"] + one[1]["tokens"])
    assert two["nll"] == pytest.approx(expected, abs=1e-4)


def test_heldout_and_control_texts(demo_corpus):
    texts = heldout_texts(demo_corpus, DEFAULT_HELDOUT_FRACTION)
    records = [json.loads(line) for line in (demo_corpus / "articles.jsonl").read_text(encoding="utf-8").splitlines()]
    assert len(texts) == sum(is_heldout(r["pageid"]) for r in records) > 0
    control = control_texts(shared_file("qa-jglue", "jsquad-valid-v1.3.json"), limit=3)
    assert len(control) == 3 and not control[0].startswith("梅雨 [SEP]")


def test_heldout_texts_are_the_articles_the_fraction_holds_out(demo_corpus):
    articles = list(formats.iter_articles(demo_corpus))
    for fraction in (0.1, 0.2, 0.5):
        assert heldout_texts(demo_corpus, fraction) == [a["text"] for a in articles if is_heldout(a["pageid"], fraction)]
    assert len(heldout_texts(demo_corpus, 0.2)) > len(heldout_texts(demo_corpus, 0.1))
    assert heldout_texts(demo_corpus, 0.2, limit=2) == heldout_texts(demo_corpus, 0.2)[:2]
