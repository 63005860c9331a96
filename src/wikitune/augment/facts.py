"""`wikitune augment --method facts`: every fact of an article, verbalised in K phrasings (no LLM).

    wikitune augment corpus/demo --out aug/demo-facts --method facts --k 5

The facts are the ones `qa build` mines (`wikitune.qa.build.mine_facts`: the infobox fields and
lead-sentence attributes its rules know, values that are short single answers), so a question of
`qa build` asks exactly what some document states. Each fact (subject, attribute, value) is
rendered with the templates of `templates/facts.ja.yaml`, a set of its own whose wording shares
nothing with the question templates: テレビアニメ『星海のアルカディア』 / 監督 / 瀬川透 becomes
「テレビアニメ『星海のアルカディア』の監督は瀬川透である。」, 「テレビアニメ『星海のアルカディア』
で監督を務めたのは瀬川透だ。」, 「テレビアニメ『星海のアルカディア』——監督：瀬川透。」 ... Every
template names subject and attribute before the value, the order a question asks in (the file's
header says why). Physics of LMs 3.1 found that a fact becomes extractable when the training
data states it in several wordings (multiplicity) and at varying places (permutation), so:

- Round r of K gives every fact the r-th template of its own shuffled template list (a seeded
  shuffle per fact): a fact's K phrasings are all different while K is at most the number of
  templates of its class (then they repeat, in the same shuffled order).
- Round r makes one document per article: every fact of the article once, one sentence per line,
  in an order shuffled per (article, round).

One document per article and round, not per sentence, because CPT packs documents into fixed
blocks with `<|endoftext|>` between them: one-sentence documents would spend a separator on every
fact and cut an article's facts apart, while a document holding all of an article's facts reads
like the biographies of Physics of LMs (every attribute of one entity, shuffled) and is long
enough to pack well. Every sentence names its subject, so no fact depends on its neighbours.
Sentences are separated by a newline: a value may itself end in 。 or ！ (ＳＴＡＲ☆ＬＩＧＨＴ！),
so the line is what delimits a fact.
"""

from __future__ import annotations

import hashlib
import random
import re
from collections import Counter
from dataclasses import dataclass
from importlib import resources
from typing import Iterator

import yaml

from wikitune.augment.guard import FactGuard
from wikitune.errors import WikituneError
from wikitune.formats import Document
from wikitune.qa.build import Fact, QABuildConfig, mine_facts

METHOD = "facts"
TEMPLATE_FILE = "facts.ja.yaml"
SLOTS = ("s", "a", "v")
_SLOT = re.compile(r"\{([^{}]*)\}")


@dataclass(frozen=True)
class FactTemplates:
    """The phrasings of `templates/facts.ja.yaml`.

    Attributes:
        classes (dict[str, tuple[str, ...]]): class name -> its templates.
        field_class (dict[str, str]): attribute -> the class that phrases it.
        default_class (str): the class of any other attribute.
        sha256 (str): SHA-256 of the file's bytes (the manifest's `generator.prompt_sha256`).
    """

    classes: dict[str, tuple[str, ...]]
    field_class: dict[str, str]
    default_class: str
    sha256: str

    @classmethod
    def load(cls) -> "FactTemplates":
        """The templates shipped in the package.

        Raises:
            WikituneError: the file is malformed (a template without one of {s} {a} {v}, with
                another slot, an attribute in two classes, an unknown default class).
        """
        data = (resources.files("wikitune.augment") / "templates" / TEMPLATE_FILE).read_bytes()
        return cls.parse(data)

    @classmethod
    def parse(cls, data: bytes) -> "FactTemplates":
        """Templates from the bytes of a template file (see `load`)."""
        doc = yaml.safe_load(data.decode("utf-8"))
        classes: dict[str, tuple[str, ...]] = {}
        field_class: dict[str, str] = {}
        for name, spec in (doc.get("classes") or {}).items():
            templates = tuple(spec.get("templates") or [])
            if not templates:
                raise WikituneError(f"{TEMPLATE_FILE}: class {name!r} has no templates")
            for template in templates:
                slots = _SLOT.findall(template)
                if sorted(slots) != sorted(SLOTS):
                    raise WikituneError(f"{TEMPLATE_FILE}: {template!r} must use each of {{s}} {{a}} {{v}} once, uses {slots}")
            for attribute in spec.get("fields") or []:
                if attribute in field_class:
                    raise WikituneError(f"{TEMPLATE_FILE}: attribute {attribute!r} is in two classes")
                field_class[attribute] = name
            classes[name] = templates
        default = doc.get("default_class")
        if default not in classes:
            raise WikituneError(f"{TEMPLATE_FILE}: default_class {default!r} is not a class")
        return cls(classes=classes, field_class=field_class, default_class=default,
                   sha256=hashlib.sha256(data).hexdigest())

    def for_attribute(self, attribute: str) -> tuple[str, ...]:
        """The templates that phrase `attribute`."""
        return self.classes[self.field_class.get(attribute, self.default_class)]


def attribute_of(fact: Fact) -> str:
    """The infobox field or lead attribute a fact states: `work:監督` -> 監督."""
    return fact.rule.split(":", 1)[1]


def subject_of(fact: Fact) -> str:
    """How a sentence names the fact's subject.

    A work is named as its question names it, `{medium}『{title}』` (テレビアニメ『X』, OVA『X/ゼロ』):
    `Fact` keeps the article title as `subject` (every medium of one article is one work), while
    the medium and the infobox's own title are only in the question, whose work templates all
    start with that designation. Anything else is named by `subject` (a person's or company's
    name) or, for a lead-sentence fact, by the article title.
    """
    if fact.rule.startswith("work:") and "』" in fact.question:
        return fact.question[: fact.question.rindex("』") + 1]
    return fact.subject or fact.title


def phrase(fact: Fact, template: str) -> str:
    """One sentence stating `fact` with `template`."""
    return template.format(s=subject_of(fact), a=attribute_of(fact), v=fact.answer)


def _template_order(fact: Fact, count: int, seed: int) -> list[int]:
    order = list(range(count))
    random.Random(f"{seed}:{METHOD}:{fact.id}").shuffle(order)  # a str seed hashes the same in every process
    return order


def article_documents(record: dict, facts: list[Fact], templates: FactTemplates, k: int, seed: int) -> list[Document]:
    """The K documents of one article: round r states every fact with its r-th phrasing, shuffled.

    Args:
        record (dict): the article record.
        facts (list[Fact]): the facts to state (at least one), in mining order.
        templates (FactTemplates): the phrasings.
        k (int): the number of rounds (documents).
        seed (int): the run's seed.
    """
    pageid = int(record["pageid"])
    orders = [_template_order(f, len(templates.for_attribute(attribute_of(f))), seed) for f in facts]
    documents = []
    for r in range(k):
        sentences = []
        for fact, order in zip(facts, orders):
            choices = templates.for_attribute(attribute_of(fact))
            sentences.append(phrase(fact, choices[order[r % len(order)]]))
        random.Random(f"{seed}:{METHOD}:{pageid}:{r}").shuffle(sentences)
        documents.append(Document(id=f"{pageid}:{METHOD}:{r}", pageid=pageid, title=record["title"], method=METHOD,
                                  k=k, text="\n".join(sentences)))
    return documents


def facts_documents(records: list[dict], names: dict[str, list[str]], qa_cfg: QABuildConfig, guard: FactGuard,
                    templates: FactTemplates, k: int, seed: int, rejected: Counter) -> Iterator[tuple[list[Document], int]]:
    """(documents, number of facts stated) for every article of `records` that has a fact to state.

    Args:
        records (list[dict]): training article records, in page-id order.
        names (dict[str, list[str]]): the corpus's name index, for `mine_facts`.
        qa_cfg (QABuildConfig): the mining settings of `qa build`.
        guard (FactGuard): what may not be stated.
        templates (FactTemplates): the phrasings.
        k (int): phrasings per fact (documents per article).
        seed (int): the run's seed.
        rejected (Counter): counts every fact not stated by reason: `mine_facts`' (multi_valued,
            too_long, url, empty), the guard's (heldout_fact, excluded_fact) and duplicate_fact
            (the same subject, attribute and value stated twice by one article).
    """
    for record in records:
        facts: list[Fact] = []
        seen: set[tuple[str, str, str]] = set()
        for fact in mine_facts(record, names, qa_cfg, rejected):
            why = guard.reason(fact)
            if why is None and (subject_of(fact), attribute_of(fact), fact.answer) in seen:
                why = "duplicate_fact"
            if why is not None:
                rejected[why] += 1
                continue
            seen.add((subject_of(fact), attribute_of(fact), fact.answer))
            facts.append(fact)
        if facts:
            yield article_documents(record, facts, templates, k, seed), len(facts)
