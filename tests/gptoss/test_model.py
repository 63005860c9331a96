"""wikitune.gptoss.model: the tiny gpt-oss, the corpus BPE and the offline gpt-oss tokenizer."""

from __future__ import annotations

import pytest
import torch

from tests.conftest import shared_file
from wikitune.errors import WikituneError
from wikitune.gptoss.harmony import HARMONY_SPECIAL_TOKENS
from wikitune.gptoss.model import (
    TinyGptOssConfig,
    build_tiny_gpt_oss,
    load_gpt_oss_tokenizer,
    load_model_and_tokenizer,
    train_bpe_tokenizer,
)

TEXTS = [
    "銀魂は空知英秋による日本の漫画作品。桂小太郎のあだ名はヅラ。",
    "ぱにぽにだっしゅ！でレベッカ宮本が担任しているクラスは桃月学園の1年C組？",
    "「心臓を捧げよ！」という掛け声で知られるアニメ作品は進撃の巨人。ＡＢＣ１２３",
] * 5


@pytest.fixture(scope="module")
def bpe_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("tok")
    train_bpe_tokenizer(TEXTS, 400, out)
    return out


def test_bpe_round_trips_japanese_and_reloads(bpe_dir):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(bpe_dir)
    for text in TEXTS[:3] + ["全角？と半角?は別の文字"]:
        ids = tok(text)["input_ids"]
        assert tok.decode(ids) == text  # no NFKC: ？ stays ？, ＡＢＣ stays full width
    assert tok.eos_token == "<|return|>" and tok.pad_token == "<|endoftext|>"
    for special in HARMONY_SPECIAL_TOKENS:
        assert len(tok(special, add_special_tokens=False)["input_ids"]) == 1
    rendered = tok.apply_chat_template(
        [{"role": "user", "content": "Q"}, {"role": "assistant", "content": "A"}], tokenize=False
    )
    assert rendered.endswith("<|start|>assistant<|channel|>final<|message|>A<|return|>")


def test_bpe_vocab_too_small_is_an_error(tmp_path):
    with pytest.raises(WikituneError, match="vocab_size must be at least"):
        train_bpe_tokenizer(TEXTS, 100, tmp_path)


def test_tiny_model_is_real_gpt_oss_and_reproducible():
    a = build_tiny_gpt_oss(300)
    b = build_tiny_gpt_oss(300)
    names = dict(a.named_parameters())
    assert "model.layers.0.mlp.experts.gate_up_proj" in names and "model.layers.0.self_attn.sinks" in names
    assert names["model.layers.0.mlp.experts.gate_up_proj"].shape == (4, 64, 128)
    assert a.config.layer_types == ["sliding_attention", "full_attention"]
    assert all(torch.equal(x, y) for x, y in zip(a.parameters(), b.parameters()))
    c = build_tiny_gpt_oss(300, TinyGptOssConfig(seed=1))
    assert not torch.equal(a.lm_head.weight, c.lm_head.weight)
    ids = torch.randint(0, 300, (2, 12))
    assert a(input_ids=ids).logits.shape == (2, 12, 300)


def test_tiny_config_validates():
    with pytest.raises(WikituneError, match="num_experts_per_tok"):
        TinyGptOssConfig(num_local_experts=2, num_experts_per_tok=3)


def test_load_tiny_needs_a_tokenizer():
    with pytest.raises(WikituneError, match="tiny-gpt-oss needs a tokenizer"):
        load_model_and_tokenizer("tiny-gpt-oss")


def test_load_tiny_with_bpe(bpe_dir):
    model, tok = load_model_and_tokenizer("tiny-gpt-oss", tokenizer=bpe_dir, tiny={"num_hidden_layers": 1})
    assert model.config.vocab_size == len(tok) and model.config.num_hidden_layers == 1
    assert model.config.eos_token_id == tok.eos_token_id


def test_missing_local_model_is_an_error(tmp_path):
    with pytest.raises(WikituneError, match="neither tiny-gpt-oss"):
        load_model_and_tokenizer(str(tmp_path / "nothing"))


def test_gpt_oss_tokenizer_offline_matches_tiktoken(tmp_path, monkeypatch):
    directory = shared_file("gpt-oss", "o200k_base.tiktoken").parent
    monkeypatch.setenv("WIKITUNE_CACHE", str(tmp_path))
    monkeypatch.setenv("TIKTOKEN_CACHE_DIR", str(tmp_path / "tiktoken"))
    tok = load_gpt_oss_tokenizer(directory)
    import tiktoken

    text = "銀魂で、桂小太郎のあだ名は？ Hello world 123"
    assert tok(text)["input_ids"] == tiktoken.get_encoding("o200k_base").encode(text)
    for special, i in HARMONY_SPECIAL_TOKENS.items():
        assert tok.convert_tokens_to_ids(special) == i
    assert len(tok) == 201088 and tok.eos_token_id == 200002
    again = load_gpt_oss_tokenizer(directory)  # from the cache
    assert again(text)["input_ids"] == tok(text)["input_ids"]


def test_local_model_directory_loads_offline(tmp_path, bpe_dir, monkeypatch):
    from transformers import AutoTokenizer

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    tok = AutoTokenizer.from_pretrained(bpe_dir)
    model = build_tiny_gpt_oss(len(tok))
    model.save_pretrained(tmp_path / "m")
    tok.save_pretrained(tmp_path / "m")
    loaded, tok2 = load_model_and_tokenizer(str(tmp_path / "m"))
    ids = torch.arange(5, 25).reshape(1, -1)
    with torch.no_grad():
        assert torch.equal(loaded(input_ids=ids).logits, model(input_ids=ids).logits)
    assert tok2.chat_template and len(tok2) == len(tok)


def test_quantization_options_are_checked(tmp_path, bpe_dir):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(bpe_dir)
    build_tiny_gpt_oss(len(tok)).save_pretrained(tmp_path / "m")
    tok.save_pretrained(tmp_path / "m")
    with pytest.raises(WikituneError, match="not an MXFP4 checkpoint"):
        load_model_and_tokenizer(str(tmp_path / "m"), quantization="mxfp4-dequantize")
    if not torch.cuda.is_available():
        with pytest.raises(WikituneError, match="needs a CUDA GPU"):
            load_model_and_tokenizer(str(tmp_path / "m"), quantization="bnb-4bit")
    with pytest.raises(WikituneError, match="quantization must be one of"):
        load_model_and_tokenizer(str(tmp_path / "m"), quantization="int3")


def test_harmony_words_are_single_tokens_of_the_trained_bpe(tmp_path):
    from wikitune.gptoss.harmony import HARMONY_WORDS
    from wikitune.gptoss.model import train_bpe_tokenizer

    # A corpus where "final" and "analysis" never occur: BPE alone would split them into pieces.
    tok = train_bpe_tokenizer(["銀魂は空知英秋の漫画。桂小太郎のあだ名はヅラ。"] * 20, 300, tmp_path)
    assert len(tok) == 300
    for word in HARMONY_WORDS:
        ids = tok("<|start|>assistant<|channel|>" + word + "<|message|>", add_special_tokens=False)["input_ids"]
        assert len(ids) == 5 and tok.convert_ids_to_tokens(ids[1]) == "assistant" and tok.convert_ids_to_tokens(ids[3]) == word, word
    text = "finally, the final analysis of 銀魂"
    assert tok.decode(tok(text, add_special_tokens=False)["input_ids"]) == text  # ordinary text round-trips


def test_the_trained_bpe_never_fuses_a_word_with_its_neighbours_of_another_script(tmp_path):
    # Repeated sentences: a byte-level BPE with GPT-2's regex alone would learn each clause as one
    # token ("の本職は薬剤師である"), so "薬剤師" in the text and "薬剤師" as an answer would share no token.
    sentences = ["ネムベ・ゴペンズの本職は薬剤師である。", "ネムベ・ゴペンズの故郷はペグケ市だ。", "1998年、ボフダ社が発足した。"]
    tok = train_bpe_tokenizer(sentences * 50, 1000, tmp_path)
    pieces = [tok.decode([t]) for t in tok(sentences[0], add_special_tokens=False)["input_ids"]]
    assert "".join(pieces) == sentences[0]
    assert {"の", "本職", "は", "薬剤師", "である"} <= set(pieces), pieces  # whole words: the vocabulary is large enough
    answer = [tok.decode([t]) for t in tok("薬剤師", add_special_tokens=False)["input_ids"]]
    assert answer == ["薬剤師"]  # the value alone is the very token the sentence holds
    for sentence in sentences:
        for piece in (tok.decode([t]) for t in tok(sentence, add_special_tokens=False)["input_ids"]):
            scripts = {"kanji" if "\u4e00" <= c <= "\u9fff" else "hiragana" if "\u3040" <= c <= "\u309f"
                       else "katakana" if "\u30a0" <= c <= "\u30ff" else "other" for c in piece}
            assert len(scripts) == 1, (sentence, piece)
