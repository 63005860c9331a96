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

A generated sentence (an LLM's rewrite) has no `Fact`: `sentence_reason` reads it as `qa build`'s
leak check reads an article, a fact's answer and a name of its subject in one sentence, where the
subject may also be left implicit when it is what the document is about (「監督は瀬川透。」 in a
rewrite of the work's article).
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
    heldout_subjects_by_answer: dict[str, set[str]] = field(default_factory=dict)
    """normalised answer form -> name forms of the subjects of held-out facts with that answer."""
    _question_names: dict[str, list[str]] = field(default_factory=dict, repr=False)

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
        heldout_facts = [f for record in heldout_records for f in mine_facts(record, names, qa_cfg, ignored)]
        heldout_keys = {fact_key(f, names) for f in heldout_facts}
        subjects_by_answer: dict[str, set[str]] = {}
        for f in heldout_facts:
            for form in answer_forms(f.answer, f.aliases):
                subjects_by_answer.setdefault(form, set()).update(name_forms(f.subject or f.title, names))
        by_answer: dict[str, list[str]] = {}
        for item in excluded:
            question = normalize_answer(item.question)
            for form in sorted(answer_forms(item.answer, item.aliases)):
                by_answer.setdefault(form, []).append(question)
        return cls(names=names, heldout_keys=heldout_keys, questions_by_answer=by_answer,
                   heldout_subjects_by_answer=subjects_by_answer)

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

    def subject_forms(self, *subjects: str) -> set[str]:
        """Name forms of what a document is about (its article's title, its facts' subjects)."""
        return {form for subject in subjects if subject for form in name_forms(subject, self.names)}

    def guarded_facts(self, record: dict, qa_cfg: QABuildConfig) -> list[tuple[str, set[str], set[str]]]:
        """(reason, answer forms, subject forms) of every fact of `record` that may not be stated.

        A question of `qa build` about a character without an article of its own names a subject
        the name index does not know; the article's own mined facts do know it.
        """
        ignored: Counter = Counter()
        guarded = []
        for fact in mine_facts(record, self.names, qa_cfg, ignored):
            why = self.reason(fact)
            if why is not None:
                guarded.append((why, answer_forms(fact.answer, fact.aliases), set(name_forms(fact.subject or fact.title, self.names))))
        return guarded

    def sentence_reason(self, sentence: str, about: set[str], guarded: list[tuple[str, set[str], set[str]]] = ()) -> str | None:
        """Why a generated sentence may not be kept (`heldout_fact`, `excluded_fact`), or None.

        Args:
            sentence (str): one sentence of a generated document.
            about (set[str]): `subject_forms` of what the document is about; such a subject counts
                as named even where the sentence leaves it implicit.
            guarded (list): `guarded_facts` of the document's article.

        A fact is restated when the sentence holds its answer and names its subject: a guarded fact
        of the article, a held-out fact, or the fact of an excluded question that names a subject
        (of the name index) the document is about or the sentence names.
        """
        text = normalize_answer(sentence)
        for why, answers, subjects in guarded:
            if any(contains_term(text, a) for a in answers) and (subjects & about or any(contains_term(text, s) for s in subjects)):
                return why
        for form, subjects in self.heldout_subjects_by_answer.items():
            if contains_term(text, form) and (subjects & about or any(contains_term(text, s) for s in subjects)):
                return HELDOUT_FACT
        for form, questions in self.questions_by_answer.items():
            if not contains_term(text, form):
                continue
            for question in questions:
                if any(s in about or contains_term(text, s) for s in self._names_in(question)):
                    return EXCLUDED_FACT
        return None

    def _names_in(self, question: str) -> list[str]:
        """Name forms of the corpus's index that a normalised question contains (titles, redirects)."""
        found = self._question_names.get(question)
        if found is None:  # memoised: only the questions whose answer some sentence holds are ever looked up
            found = self._question_names[question] = [name for name in self.names if len(name) >= 2 and name in question]
        return found
