"""Which facts an augmentation may not state: facts of held-out articles and facts an evaluation asks.

    guard = FactGuard.build(heldout_records, excluded_items, names, qa_cfg)
    guard.reason(fact)   # None, "heldout_fact" or "excluded_fact"

Two facts are the same when they have the same subject and the same normalised answer, as
`qa build` decides it (`wikitune.qa.build.fact_key`, redirects folded into their article's
title), whatever their wording:

- `heldout_fact`: a fact of a training article that is also a fact of a held-out article (a
  character's voice actor stated in both a work's infobox and the character's own held-out
  article). Verbalising it would teach the `unseen` set's answer.
- `excluded_fact`: a fact a question of an `--exclude-qa` file asks. A QA record carries no
  subject, so a question asks a fact when its text names the fact's subject (the subject or a
  redirect or bracket-less form of it, `normalize_answer` forms, as `qa build`'s leak check
  searches them) and its gold answer or one of its aliases equals the fact's answer or one of
  the fact's aliases. Like the leak check this errs towards excluding: a question about
  『X: 蒼の章』 names 『X』 too.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Iterable

from wikitune.formats import QAItem

# Private helpers of qa.build, imported because the fact identity must be exactly qa build's: the
# corpus's name index (redirects, bracket-less titles) and the spellings of a name. See the report
# of issue 12: they could become public there.
from wikitune.qa.build import Fact, QABuildConfig, name_forms, fact_key, mine_facts
from wikitune.text.ja import contains_term, normalize_answer

HELDOUT_FACT = "heldout_fact"
EXCLUDED_FACT = "excluded_fact"


def answer_forms(answer: str, aliases: Iterable[str]) -> set[str]:
    """Normalised forms of an answer and its aliases, the empty form left out."""
    return {normalize_answer(a) for a in [answer, *aliases]} - {""}


@dataclass
class FactGuard:
    """The facts an augmentation must not state.

    Attributes:
        names (dict[str, list[str]]): the corpus's name index (`qa.build.title_index`).
        heldout_keys (set[tuple[str, str]]): `fact_key` of every fact of a held-out article.
        questions_by_answer (dict[str, list[str]]): normalised answer form -> normalised questions
            of the excluded QA records with that answer (or alias).
    """

    names: dict[str, list[str]]
    heldout_keys: set[tuple[str, str]] = field(default_factory=set)
    questions_by_answer: dict[str, list[str]] = field(default_factory=dict)

    @classmethod
    def build(cls, heldout_records: list[dict], excluded: list[QAItem], names: dict[str, list[str]],
              qa_cfg: QABuildConfig) -> "FactGuard":
        """The guard of one run.

        Args:
            heldout_records (list[dict]): article records of the held-out split.
            excluded (list[QAItem]): the questions of every `--exclude-qa` file.
            names (dict[str, list[str]]): the corpus's name index.
            qa_cfg (QABuildConfig): the mining settings (`max_answer_chars`), those of `qa build`.
        """
        ignored: Counter = Counter()  # why a held-out field is no fact: not this run's business
        heldout_keys = {fact_key(f, names) for record in heldout_records
                        for f in mine_facts(record, names, qa_cfg, ignored)}
        by_answer: dict[str, list[str]] = {}
        for item in excluded:
            question = normalize_answer(item.question)
            for form in sorted(answer_forms(item.answer, item.aliases)):
                by_answer.setdefault(form, []).append(question)
        return cls(names=names, heldout_keys=heldout_keys, questions_by_answer=by_answer)

    def reason(self, fact: Fact) -> str | None:
        """Why `fact` may not be stated (`heldout_fact`, `excluded_fact`), or None when it may."""
        if fact_key(fact, self.names) in self.heldout_keys:
            return HELDOUT_FACT
        questions = [q for form in sorted(answer_forms(fact.answer, fact.aliases))
                     for q in self.questions_by_answer.get(form, [])]
        if questions:
            subject_forms = name_forms(fact.subject or fact.title, self.names)
            if any(contains_term(q, form) for q in questions for form in subject_forms):
                return EXCLUDED_FACT
        return None
