"""The training phrasings of `augment --method facts` share no wording with the questions of `qa build`.

The check, precisely: a template's literal text is what remains between its slots ({s} {a} {v} of
a training template; {w} {n} {work} of a question template). No run of 4 or more characters may
occur in a literal piece of a training template and in a literal piece of a question template.
What may be shared is what the slots carry (the work, the attribute name such as 監督, the
answer) and short grammatical glue (の, は, たのは). Every sentence `augment` writes is an instance
of a template of the file (tests/augment/test_augment_facts.py checks each line), so this holds for
the documents themselves.
"""

from __future__ import annotations

import re

import pytest

from wikitune.augment.facts import FactTemplates, phrase
from wikitune.errors import WikituneError
from wikitune.qa import build as qa_build

MAX_SHARED = 3
_SLOT = re.compile(r"\{[^{}]*\}")


def rule_templates() -> list[tuple[str, str, str]]:
    """(field, training question, evaluation question) of every rule of `qa build` (private tables:
    the tests read them, the code does not)."""
    tables = [qa_build._WORK_RULES, *qa_build._ENTITY_RULES.values(), qa_build._LEAD_RULES]
    return [(name, train, evaluation) for table in tables for name, (train, evaluation) in table.items()]


def question_templates() -> list[str]:
    """Every question template of `qa build`'s rules, both phrasings."""
    return [q for _name, train, evaluation in rule_templates() for q in (train, evaluation)]


def literal_pieces(template: str) -> list[str]:
    return [piece for piece in _SLOT.split(template) if piece]


def longest_shared(a: str, b: str) -> str:
    """The longest substring of both `a` and `b`."""
    best = ""
    for i in range(len(a)):
        for j in range(i + len(best) + 1, len(a) + 1):
            if a[i:j] in b:
                best = a[i:j]
            else:
                break
    return best


def shared_wording(training: list[str], questions: list[str]) -> list[tuple[str, str, str]]:
    found = []
    for t in training:
        for q in questions:
            for tp in literal_pieces(t):
                for qp in literal_pieces(q):
                    common = longest_shared(tp, qp)
                    if len(common) > MAX_SHARED:
                        found.append((common, t, q))
    return found


def test_training_phrasings_share_no_wording_with_question_templates():
    templates = FactTemplates.load()
    training = [t for ts in templates.classes.values() for t in ts]
    questions = question_templates()
    assert len(training) >= 30 and len(questions) >= 40
    assert shared_wording(training, questions) == []


def test_the_check_finds_shared_wording():
    # a phrasing that reuses the question's wording ("を担当したのは") is caught; slot values and particles are not
    assert shared_wording(["{s}の{a}を担当したのは{v}。"], ["{w}の音楽を担当したのは誰ですか？"])[0][0] == "を担当したのは"
    assert shared_wording(["{s}の{a}は{v}である。"], ["{w}の監督は誰ですか？"]) == []
    assert longest_shared("abcde", "xbcdy") == "bcd"


def test_every_class_has_enough_distinct_templates_for_the_default_k():
    templates = FactTemplates.load()
    for name, ts in templates.classes.items():
        assert len(set(ts)) == len(ts) >= 6, name
    assert templates.for_attribute("監督") == templates.classes["role"]
    assert templates.for_attribute("市の花") == templates.classes["generic"]


def test_a_phrasing_keeps_the_fact_verbatim():
    fact = qa_build.Fact(id="1:1:監督", question="テレビアニメ『NEON DRIVE』の監督は誰ですか？", answer="久遠寺誠一",
                         aliases=[], pageid=1, title="NEON DRIVE", rule="work:監督", subject="NEON DRIVE")
    sentences = [phrase(fact, t) for t in FactTemplates.load().for_attribute("監督")]
    assert "テレビアニメ『NEON DRIVE』の監督は久遠寺誠一である。" in sentences
    assert "テレビアニメ『NEON DRIVE』で監督を務めたのは久遠寺誠一だ。" in sentences
    assert all("テレビアニメ『NEON DRIVE』" in s and "監督" in s and "久遠寺誠一" in s for s in sentences)


def test_every_template_names_the_subject_and_the_attribute_before_the_value():
    # A left-to-right model learns "subject and attribute -> value" only from text in that order,
    # the order a question asks in (the organism's control facts were unanswerable until its
    # descriptions followed it): a template with the value first teaches nothing a question can reach.
    for name, templates in FactTemplates.load().classes.items():
        for template in templates:
            order = [m.group(0) for m in _SLOT.finditer(template)]
            assert order == ["{s}", "{a}", "{v}"], f"{name}: {template}"


@pytest.mark.parametrize("text, message", [
    (b"default_class: g\nclasses:\n  g:\n    templates: ['{s}{a}']\n", "must use each of"),
    (b"default_class: g\nclasses:\n  g:\n    templates: ['{s}{a}{v}{x}']\n", "must use each of"),
    (b"default_class: g\nclasses:\n  g:\n    templates: []\n", "has no templates"),
    (b"default_class: h\nclasses:\n  g:\n    templates: ['{s}{a}{v}']\n", "is not a class"),
    (b"default_class: g\nclasses:\n  g:\n    fields: [x]\n    templates: ['{s}{a}{v}']\n  h:\n    fields: [x]\n"
     b"    templates: ['{v}{a}{s}']\n", "in two classes"),
])
def test_a_malformed_template_file_is_refused(text, message):
    with pytest.raises(WikituneError, match=message):
        FactTemplates.parse(text)
