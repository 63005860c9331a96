"""Loaders: wikitune QA JSONL, the built-in seed set, JAQKET/AIO, JSQuAD, JCommonsenseQA, each with a domain;
a bad QA file is one line naming file:line and field, when it is loaded, before any generation."""

import json
import subprocess
import sys

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
    with pytest.raises(WikituneError, match="does not exist"):
        load_qa_spec(str(tmp_path / "missing.jsonl"))
    with pytest.raises(WikituneError, match="no built-in QA set 'nope'; built-in sets: control, seed"):
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


def jsonl(path, *records):
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records), encoding="utf-8")
    return path


GOOD = {"id": "q1", "question": "銀魂で、桂小太郎のあだ名は？", "answer": "ヅラ"}


@pytest.mark.parametrize("field, value, words", [
    ("answer", 42, "field 'answer' must be a string"),
    ("answer", None, "field 'answer' must be a string"),
    ("question", "", "field 'question' must be a non-empty string"),
    ("question", "  ", "field 'question' must be a non-empty string"),
    ("question", ["銀魂"], "field 'question' must be a non-empty string, got a list"),
    ("id", 7, "field 'id' must be a non-empty string, got the number 7"),
    ("aliases", "ヅラ", "field 'aliases' must be a list of strings"),
    ("aliases", ["ヅラ", 3], "field 'aliases' must be a list of strings"),
    ("domain", "", "field 'domain' must be a non-empty string"),
    ("split", "dev", "field 'split' must be \"train\", \"test\" or null"),
    ("source", "銀魂", "field 'source' must be an object"),
    ("choices", [], "field 'choices' must be a non-empty list of strings"),
])
def test_a_wrong_typed_field_names_file_line_and_field(tmp_path, field, value, words):
    path = jsonl(tmp_path / "qa.jsonl", GOOD, {**GOOD, "id": "q2", field: value})
    with pytest.raises(WikituneError) as err:
        load_qa_spec(str(path))
    assert str(err.value).startswith(f"{path}:2: {words}")


def test_a_record_lacking_a_field_names_its_line(tmp_path):
    path = jsonl(tmp_path / "qa.jsonl", GOOD, {**GOOD, "id": "q2"}, {"id": "q3", "question": "q"})
    with pytest.raises(WikituneError, match=r"qa.jsonl:3: a record lacks answer"):
        load_qa_spec(str(path))


def test_a_shift_jis_file_names_the_file_line_and_encoding(tmp_path):
    path = tmp_path / "sjis.jsonl"
    path.write_bytes(json.dumps(GOOD).encode() + b"\n" + json.dumps({**GOOD, "id": "q2"}, ensure_ascii=False).encode("shift_jis") + b"\n")
    with pytest.raises(WikituneError, match=r"sjis.jsonl:2 is not UTF-8 \(byte 0x.. at column \d+\); it reads as Shift-JIS"):
        load_qa_spec(str(path))
    path.write_bytes(json.dumps(GOOD, ensure_ascii=False).encode("shift_jis") + b"\n")  # the first line: the format sniffer too
    with pytest.raises(WikituneError, match=r"sjis.jsonl:1 is not UTF-8"):
        load_qa_spec(str(path))
    latin = tmp_path / "latin.jsonl"
    latin.write_bytes(b'{"id": "1", "question": "caf\xe9", "answer": "x"}\n')
    with pytest.raises(WikituneError, match=r"latin.jsonl:1 is not UTF-8 \(byte 0xe9 at column 29\)$"):
        load_qa_spec(str(latin))


def test_a_utf8_bom_is_not_content(tmp_path):
    path = tmp_path / "bom.jsonl"
    path.write_bytes(b"\xef\xbb\xbf" + json.dumps(GOOD, ensure_ascii=False).encode() + b"\n")
    assert [item.answer for item in load_qa_spec(str(path))] == ["ヅラ"]


def test_an_empty_qa_file_is_an_error(tmp_path):
    for text in ("", "\n\n  \n"):
        (tmp_path / "empty.jsonl").write_text(text)
        with pytest.raises(WikituneError, match="empty.jsonl holds no QA records"):
            load_qa_sets([str(tmp_path / "empty.jsonl")])  # what `wikitune eval` calls: no run over n=0
    with pytest.raises(WikituneError, match="keeps 0 questions"):
        load_qa_spec("builtin:seed:0")


def test_other_formats_name_file_line_and_field(tmp_path):
    row = {"id": "word_qa:0", "question": "眼球の中で色を持つ部分は？", "answer": "虹彩", "anime_keywords": []}
    path = jsonl(tmp_path / "aio.jsonl", row, {**row, "id": "word_qa:1", "answer": 42})
    with pytest.raises(WikituneError, match=r"aio.jsonl:2: field 'answer' must be a string"):
        load_qa_spec(f"jaqket:{path}")
    jsonl(path, row, {"id": "word_qa:1", "question": "q", "anime_keywords": []})
    with pytest.raises(WikituneError, match=r"aio.jsonl:2: a record lacks answer"):
        load_qa_spec(f"jaqket:{path}")
    jsonl(path, row)
    with pytest.raises(WikituneError, match=r"aio.jsonl holds no questions \(read as jaqket-anime\)"):
        load_qa_spec(f"jaqket-anime:{path}")
    csqa = {"q_id": 1, "question": "q", **{f"choice{i}": f"c{i}" for i in range(5)}, "label": 7}
    with pytest.raises(WikituneError, match=r"csqa.jsonl:1: a bad field \(list index out of range\)"):
        load_qa_spec(f"jcommonsenseqa:{jsonl(tmp_path / 'csqa.jsonl', csqa)}")
    squad = tmp_path / "squad.json"
    squad.write_bytes('{"data": [\n{"title": "梅雨"}]}'.encode("shift_jis"))
    with pytest.raises(WikituneError, match=r"squad.json:2 is not UTF-8"):
        load_qa_spec(f"jsquad:{squad}")


@pytest.mark.parametrize("content, words", [
    ("sjis", "sjis.jsonl:1 is not UTF-8"),
    ({**GOOD, "answer": 42}, "qa.jsonl:1: field 'answer' must be a string"),
    ({"id": "q1", "question": "q"}, "qa.jsonl:1: a record lacks answer"),
    ("", "qa.jsonl holds no QA records"),
])
def test_eval_refuses_a_bad_qa_file_in_one_line_before_generating(tmp_path, content, words):
    path = tmp_path / ("sjis.jsonl" if content == "sjis" else "qa.jsonl")
    if content == "sjis":
        path.write_bytes(json.dumps(GOOD, ensure_ascii=False).encode("shift_jis") + b"\n")
    elif content:
        jsonl(path, content)
    else:
        path.write_text("")
    result = subprocess.run([sys.executable, "-m", "wikitune.cli", "eval", "--qa", str(path), "--out", str(tmp_path / "run")],
                            capture_output=True, text=True)
    assert result.returncode == 2 and result.stderr.startswith("error: ") and result.stderr.count("\n") == 1, result.stderr
    assert words in result.stderr
    assert not (tmp_path / "run").exists()  # refused before the run directory (or a model) was touched


def test_builtin_control_without_the_organism_says_how_to_rebuild_it(tmp_path, monkeypatch):
    from wikitune.qa import builtin

    monkeypatch.setattr(builtin, "organism_dir", lambda: tmp_path)
    with pytest.raises(WikituneError, match="no organism control set .*`bash scripts/build_organism.sh"):
        load_qa_spec("builtin:control")
    (tmp_path / "control.jsonl").write_text(
        '{"id": "c1", "question": "q?", "answer": "a", "domain": "control"}\n', encoding="utf-8")
    assert [(i.id, i.domain) for i in load_qa_spec("builtin:control")] == [("c1", "control")]
