"""The general world: deterministic, disjoint question phrasing, no name of the demo wiki, facts
consistent between world.jsonl, the descriptions and the QA files."""

from __future__ import annotations

import json

import jsonschema
import pytest

from wikitune import formats
from wikitune.errors import WikituneError
from wikitune.organism.world import (CONTROL, GENERAL, QA_HELD, QA_TRAIN, QA_TRAINED, RELATIONS, WORLD, WorldConfig,
                                     generate_world, template_literals, write_world)


def _write(tmp_path, name, **sizes):
    return write_world(generate_world(WorldConfig(**sizes)), tmp_path / name)


def test_same_seed_writes_identical_files_and_another_seed_does_not(tmp_path):
    first, again, other = _write(tmp_path, "a"), _write(tmp_path, "b"), _write(tmp_path, "c", seed=1)
    for name in (WORLD, GENERAL, QA_TRAIN, CONTROL):
        assert first[name].read_bytes() == again[name].read_bytes()
        assert first[name].read_bytes() != other[name].read_bytes()


def test_question_templates_share_no_four_characters_with_description_templates():
    def grams(kind_index: int) -> set[str]:
        literals = [lit for relations in RELATIONS.values() for pair in relations.values()
                    for template in pair[kind_index] for lit in template_literals(template)]
        return {lit[i:i + 4] for lit in literals for i in range(len(lit) - 3)}

    descriptions, questions = grams(0), grams(1)
    assert descriptions and questions
    assert not descriptions & questions
    assert all(len(pair[0]) == 5 for relations in RELATIONS.values() for pair in relations.values())


def test_no_name_of_the_world_occurs_in_the_demo_wiki(demo_corpus):
    world = generate_world(WorldConfig())
    demo = "\n".join(a["title"] + "\n" + a["text"] for a in formats.read_articles(demo_corpus))
    names = [e.name for e in world.entities] + [e.facts["founder"] for e in world.entities if e.kind == "company"]
    stems = {part.rstrip("市社州") for name in names for part in name.split("・")}
    assert len(names) == len(set(names))
    assert not [stem for stem in stems if stem in demo]


def test_facts_agree_between_world_texts_and_qa(tmp_path):
    world = generate_world(WorldConfig(seed=3))
    paths = write_world(world, tmp_path / "w")
    entities = {record["name"]: record for _, record in formats.iter_jsonl(paths[WORLD], "world")}
    texts: dict[str, list[str]] = {}
    for _, doc in formats.iter_jsonl(paths[GENERAL], "general"):
        texts.setdefault(doc["entity"], []).append(doc["text"])
    assert formats.read_text_documents(paths[GENERAL]) == world.texts()  # a replay source
    k = world.config.k
    for record in entities.values():
        assert len(texts[record["id"]]) == k
        for fact in record["facts"]:
            # multiplicity: every description states every fact
            assert all(fact["value"] in text and record["name"] in text for text in texts[record["id"]])
    for name, split in ((QA_TRAIN, QA_TRAINED), (CONTROL, QA_HELD)):
        items = formats.read_qa_file(paths[name])
        asked = {(item.source["title"], item.answer) for item in items}
        expected = {(r["name"], f["value"]) for r in entities.values() if r["split"] == split for f in r["facts"]}
        assert asked == expected  # every fact of the split asked, none of the other split
        for item in items:
            assert item.source["title"] in item.question and item.answer not in item.question
            assert any(item.answer in text for text in texts[entities[item.source["title"]]["id"]])
    assert {i.domain for i in formats.read_qa_file(paths[CONTROL])} == {"control"}


def test_descriptions_vary_phrasing_and_sentence_order():
    world = generate_world(WorldConfig(k=5))
    person = next(e for e in world.entities if e.kind == "person")
    docs = world.documents[person.id]
    year = person.facts["birth_year"]
    sentences = [{s + "。" for s in doc.split("。") if year in s} for doc in docs]
    assert len(set.union(*sentences)) == 5  # the birth year in five different sentences
    first_facts = [min(person.facts.values(), key=lambda v: doc.index(v)) for doc in docs]
    assert len(set(first_facts)) > 1  # sentence order is shuffled


def test_qa_files_match_the_qa_schema(tmp_path):
    paths = _write(tmp_path, "w")
    validator = jsonschema.Draft202012Validator(formats.schema("qa"))
    for name in (QA_TRAIN, CONTROL):
        for line in paths[name].read_text(encoding="utf-8").splitlines():
            validator.validate(json.loads(line))


def test_split_is_per_kind_and_both_sides_are_populated():
    world = generate_world(WorldConfig(people=4, cities=2, companies=3, held_fraction=0.5))
    for kind in ("person", "city", "company"):
        splits = [e.split for e in world.entities if e.kind == kind]
        assert QA_TRAINED in splits and QA_HELD in splits


@pytest.mark.parametrize("bad, message", [({"k": 6}, "world.k"), ({"people": 1}, "world.people"),
                                          ({"held_fraction": 1.0}, "held_fraction")])
def test_bad_sizes_are_refused(bad, message):
    with pytest.raises(WikituneError, match=message):
        WorldConfig(**bad)


def test_every_description_names_the_entity_and_the_relation_before_the_value():
    for relations in RELATIONS.values():
        for descriptions, _questions in relations.values():
            for template in descriptions:
                assert template.startswith("{name}"), template
                cue = template[len("{name}"):template.index("{value}")]
                assert len(cue) >= 2, template  # a relation word, not a bare particle
