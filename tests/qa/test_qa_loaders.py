"""Loaders: wikitune QA JSONL, the built-in seed set, JAQKET/AIO, JSQuAD, JCommonsenseQA, each with a domain."""


import pytest

from tests.conftest import shared_file
from wikitune.errors import WikituneError
from wikitune.qa import load_qa, load_qa_sets, load_qa_spec


def test_builtin_seed_set_has_the_reports_five_questions():
    qa = load_qa_spec("builtin:seed")
    assert len(qa) == 5 and qa.domains() == {"anime": 3, "control": 2}
    gold = {item.answer for item in qa if item.domain == "anime"}
    assert gold == {"桃月学園の1年C組", "進撃の巨人", "ヅラ"}
    assert all(item.answer == "" for item in qa if item.domain == "control")  # long answers: no gold string


def test_wikitune_file_with_domain_override_and_limit(demo_qa):
    qa = load_qa_spec(f"{demo_qa / 'unseen.jsonl'}@anime-unseen")
    assert len(qa) > 0 and set(qa.domains()) == {"anime-unseen"}
    assert len(load_qa_spec(f"{demo_qa / 'test.jsonl'}:3")) == 3
    both = load_qa([str(demo_qa / "test.jsonl"), "builtin:seed"])
    assert both.domains()["control"] == 2


def test_duplicate_ids_and_bad_files_are_errors(demo_qa, tmp_path):
    with pytest.raises(WikituneError, match="ids must be unique"):
        load_qa([str(demo_qa / "test.jsonl"), str(demo_qa / "test.jsonl")])
    with pytest.raises(WikituneError, match="'seed:paniponi' is in both builtin:seed and builtin:seed"):
        load_qa_sets(["builtin:seed", "builtin:seed"])
    sets = load_qa_sets([f"{demo_qa / 'test.jsonl'}:2", "builtin:seed"])
    assert [(s.name, len(s)) for s in sets] == [("test", 2), ("builtin:seed", 5)]
    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    with pytest.raises(WikituneError, match="no questions in empty"):
        load_qa(str(empty))
    with pytest.raises(WikituneError, match="does not exist"):
        load_qa_spec(str(tmp_path / "missing.jsonl"))
    with pytest.raises(WikituneError, match="no built-in QA set"):
        load_qa_spec("builtin:nope")
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"id": "1", "question": "q"}\n')
    with pytest.raises(WikituneError, match="lacks answer"):
        load_qa_spec(str(bad))
    bad.write_text("not json\n")
    with pytest.raises(WikituneError, match=r"bad.jsonl:1 is not JSON"):
        load_qa_spec(str(bad))


def test_jaqket_tags_anime_by_keywords():
    path = shared_file("qa-jaqket", "jaqket_aio01_train_derived.jsonl")
    qa = load_qa_spec(str(path))  # format recognised from the content
    assert qa.domains() == {"anime": 269, "control": 13000 - 269}
    anime = load_qa_spec(f"jaqket-anime:{path}")
    assert len(anime) == 269 and all(item.answer for item in anime)
    first = qa.items[0]
    assert first.id == "jaqket:word_qa:0" and first.answer == "虹彩"


def test_jsquad_closed_book_with_all_gold_spans():
    qa = load_qa_spec(str(shared_file("qa-jglue", "jsquad-valid-v1.3.json")))
    assert len(qa) == 4442 and qa.domains() == {"control": 4442}
    first = qa.items[0]
    assert first.question == "日本で梅雨がないのは北海道とどこか。"
    assert first.answer == "小笠原諸島" and first.aliases == ["小笠原諸島を除く日本"]
    assert first.source["title"] == "梅雨"


def test_jcommonsenseqa_answer_is_the_labelled_choice():
    qa = load_qa_spec(str(shared_file("qa-jglue", "jcommonsenseqa-valid-v1.3.json")))
    assert len(qa) == 1119
    first = qa.items[0]
    assert first.answer == "マザーボード" and first.choices[2] == "マザーボード" and first.domain == "control"
