"""The evaluation questions of `qa build` (test.jsonl, unseen.jsonl) share no wording with anything
trained: SFT's questions (train.jsonl), the sentences of `augment --method facts` and the organism
world's descriptions and questions. A model that answers them has learnt the fact, not a phrasing.

The check is the one of tests/augment/test_augment_templates.py: no run of 4 or more characters in
a literal piece of both templates. The field's own name (監督, 放送開始 ...) is what the question is
about, so it is set aside (it counts as a slot) before comparing.
"""

from __future__ import annotations

from tests.augment.test_augment_templates import MAX_SHARED, literal_pieces, longest_shared, rule_templates
from wikitune.augment.facts import FactTemplates
from wikitune.organism.world import RELATIONS


def _without_field(template: str, field: str) -> str:
    return template.replace(field, "{field}")


def _training_phrasings() -> list[str]:
    fields = [name for name, _train, _eval in rule_templates()]
    # every field name is set aside in every training question: a field of another rule is a slot there too
    training = []
    for _name, train, _evaluation in rule_templates():
        for field in sorted(fields, key=len, reverse=True):
            train = _without_field(train, field)
        training.append(train)
    training += [t for templates in FactTemplates.load().classes.values() for t in templates]
    training += [t for relations in RELATIONS.values() for pair in relations.values() for group in pair for t in group]
    return training


def test_evaluation_questions_share_no_wording_with_training_phrasings():
    training = _training_phrasings()
    shared = []
    for name, _train, evaluation in rule_templates():
        for piece in literal_pieces(_without_field(evaluation, name)):
            for t in training:
                for tp in literal_pieces(t):
                    common = longest_shared(piece, tp)
                    if len(common) > MAX_SHARED:
                        shared.append((common, evaluation, t))
    assert not shared, f"evaluation questions reuse training wording: {shared[:5]}"


def test_every_rule_has_two_different_phrasings():
    for name, train, evaluation in rule_templates():
        assert train != evaluation and name in evaluation, (name, train, evaluation)
