"""`wikitune qa build`: question/answer pairs mined from a corpus's infoboxes and lead sentences.

    wikitune qa build corpus/demo --out qa/demo
    # -> qa/demo/train.jsonl   facts for SFT (articles CPT trains on)
    #    qa/demo/test.jsonl    other facts of those same articles (memorisation)
    #    qa/demo/unseen.jsonl  facts of held-out articles CPT never sees (generalisation)
    #    qa/demo/unseen_leaked.jsonl  held-out facts a training article states anyway, with where
    #    qa/demo/manifest.json counts per split and rule, what was skipped or dropped and why

Rule-based and deterministic: each rule turns one infobox field (監督, シリーズ構成, アニメーション制作,
放送開始, 話数, 原作, a character's 声優, a company's 設立 and 本社所在地, ...) or one "Xは…。" lead
sentence into a question. Answers get aliases: bracket-less forms ("雨森千景（アトリエ霧雨）" ->
"雨森千景"), the title and redirects of the corpus article the answer names, and forms without a
job title or counter ("代表取締役 篠原美咲" -> "篠原美咲", "全12話" -> "12話"). A question that two
facts would answer differently is dropped (ambiguous), and so is a multi-valued field. Each rule
has two phrasings: train.jsonl asks in the training one (SFT learns it), test.jsonl and
unseen.jsonl in an evaluation one that shares no wording with it, with `augment --method facts`'s
sentences or with the organism world's texts (a model answering them knows the fact; it has not
matched a question it was trained on).

The article split is `wikitune.split.is_heldout` (shared with CPT); inside training articles a
fact goes to test when a hash of its id falls below `test_fraction`. Two checks then keep the
evaluation sets honest:

- Leaks. A held-out article is not trained on, but another article may state its facts. An unseen
  fact is leaked when one sentence (`text.ja.document_sentences`) of a training article's text,
  which is what CPT reads, names its subject (the title of the fact's source article or the
  entity it asks about, with their redirects and bracket-less forms) and its answer (or an alias),
  compared as `normalize_answer` forms. Leaked facts leave unseen.jsonl for unseen_leaked.jsonl,
  each with `leaked_by`: one {"pageid", "title", "sentence"} per training article that states it
  (its first such sentence). The check is co-occurrence, so it errs towards calling a fact leaked.
  Names shorter than two characters are not searched (they would match almost every sentence).
- Near-duplicates across splits. Two facts are the same when they have the same subject (the
  entity asked about, redirects folded into their article's title) and the same normalised
  answer, whatever the question's wording: 漫画『X』の出版社 and 小説『X』の出版社, or 作者 and 原作
  of one work. A fact keeps one copy, in the first split of unseen, test, train that has it; the
  copies in later splits are dropped and counted in the manifest under `cross_split_duplicates`
  (e.g. `train_same_fact_as_test`). The evaluation sets keep their questions because every claim
  rests on them, and SFT never trains on a fact a test question asks. Leaked facts are checked
  first, so they claim nothing. Repeats inside one split stay (they are different questions).
"""

from __future__ import annotations

import hashlib
import logging
import re
import sqlite3
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Iterator

from wikitune import formats
from wikitune.errors import WikituneError
from wikitune.formats import QAItem
from wikitune.qa.llm import LLMQuestionSettings, propose_questions
from wikitune.split import DEFAULT_HELDOUT_FRACTION, is_heldout
from wikitune.text.ja import bracketless, contains_term, document_sentences, normalize_answer, split_sentences

log = logging.getLogger(__name__)

# What a work infobox's sub-template is called in a question.
_MEDIUM = {
    "tvanime": "テレビアニメ", "movie": "劇場アニメ", "ova": "OVA", "ona": "ONA",
    "manga": "漫画", "novel": "小説", "game": "ゲーム",
}

# Every rule asks its fact in two phrasings: the first for train.jsonl (SFT's questions), the
# second for test.jsonl and unseen.jsonl. The evaluation phrasings share no literal run of 4
# characters with the training ones, with `augment --method facts`'s templates or with the
# organism world's texts (tests/qa/test_question_templates.py checks it, the field's own name set
# aside): a model that answers them has learnt the fact, not the wording of a question it trained on.
# Work fields: field -> (training, evaluation) template ({w}: 『title』 with its medium).
_WORK_RULES = {
    "監督": ("{w}の監督は誰ですか？", "{w}で監督を受け持った人物の名は？"),
    "シリーズ構成": ("{w}でシリーズ構成を担当したのは誰ですか？", "{w}でシリーズ構成を受け持った人物の名は？"),
    "脚本": ("{w}の脚本を担当したのは誰ですか？", "{w}で脚本を受け持った人物の名は？"),
    "キャラクターデザイン": ("{w}のキャラクターデザインを担当したのは誰ですか？", "{w}でキャラクターデザインを受け持った人物の名は？"),
    "メカニックデザイン": ("{w}のメカニックデザインを担当したのは誰ですか？", "{w}でメカニックデザインを受け持った人物の名は？"),
    "美術監督": ("{w}の美術監督は誰ですか？", "{w}で美術監督を受け持った人物の名は？"),
    "音楽": ("{w}の音楽を担当したのは誰ですか？", "{w}で音楽を受け持った人物の名は？"),
    "アニメーション制作": ("{w}のアニメーション制作を担当した会社はどこですか？", "{w}でアニメーション制作を受け持った会社の名は？"),
    "制作": ("{w}を制作したアニメーション制作会社はどこですか？", "{w}の制作を受け持った会社の名は？"),
    "原作": ("{w}の原作者（原作）は誰ですか？", "{w}で原作を受け持った人物の名は？"),
    "放送局": ("{w}を放送したテレビ局はどこですか？", "{w}の放送局の名は？"),
    "放送開始": ("{w}の放送が始まったのはいつですか？", "{w}の放送開始の日取りは？"),
    "話数": ("{w}は全何話ですか？", "{w}の話数を数字で言うと？"),
    "封切日": ("{w}が公開されたのはいつですか？", "{w}の封切日の日取りは？"),
    "発売日": ("{w}が発売されたのはいつですか？", "{w}の発売日の日取りは？"),
    "上映時間": ("{w}の上映時間は何分ですか？", "{w}の上映時間を数字で言うと？"),
    "配給": ("{w}の配給会社はどこですか？", "{w}で配給を受け持った会社の名は？"),
    "興行収入": ("{w}の興行収入はいくらですか？", "{w}の興行収入を数字で言うと？"),
    "作者": ("{w}の作者は誰ですか？", "{w}の作者に該当する人物の名は？"),
    "著者": ("{w}の著者は誰ですか？", "{w}の著者に該当する人物の名は？"),
    "作画": ("{w}の作画を担当したのは誰ですか？", "{w}で作画を受け持った人物の名は？"),
    "イラスト": ("{w}のイラストを担当したのは誰ですか？", "{w}でイラストを受け持った人物の名は？"),
    "出版社": ("{w}の出版社はどこですか？", "{w}の出版社の名は？"),
    "掲載誌": ("{w}が連載された雑誌は何ですか？", "{w}の掲載誌の名は？"),
    "レーベル": ("{w}のレーベルは何ですか？", "{w}のレーベルの名は？"),
    "巻数": ("{w}の巻数は何巻ですか？", "{w}の巻数を数字で言うと？"),
}
# Fields of people, voice actors, characters, companies, municipalities: {n} is the name.
_ENTITY_RULES = {
    "character": {
        "声優": ("{work}に登場する{n}の声優は誰ですか？", "{work}の登場人物{n}で声優を受け持った人物の名は？"),
        "所属": ("{work}に登場する{n}の所属は何ですか？", "{work}の登場人物{n}の所属の名は？"),
        "誕生日": ("{work}に登場する{n}の誕生日はいつですか？", "{work}の登場人物{n}の誕生日の日取りは？"),
    },
    "person": {
        "生年月日": ("{n}の生年月日はいつですか？", "人物{n}の生年月日の日取りは？"),
        "出身地": ("{n}の出身地はどこですか？", "人物{n}の出身地の地名は？"),
        "所属": ("{n}の所属先はどこですか？", "人物{n}の所属の名は？"),
        "所属事務所": ("声優の{n}の所属事務所はどこですか？", "人物{n}の所属事務所の名は？"),
        "血液型": ("{n}の血液型は何型ですか？", "人物{n}の血液型を記号で言うと？"),
    },
    "company": {
        "設立": ("{n}が設立されたのはいつですか？", "{n}の設立の日取りは？"),
        "本社所在地": ("{n}の本社はどこにありますか？", "{n}の本社所在地の地名は？"),
        "代表者": ("{n}の代表者は誰ですか？", "{n}の代表者に該当する人物の名は？"),
        "資本金": ("{n}の資本金はいくらですか？", "{n}の資本金を数字で言うと？"),
    },
    "municipality": {
        "都道府県": ("{n}はどの都道府県にありますか？", "{n}の属する都道府県の名は？"),
        "市長": ("{n}の市長は誰ですか？", "{n}の市長に該当する人物の名は？"),
        "市の木": ("{n}の市の木は何ですか？", "{n}の市の木の名は？"),
        "市の花": ("{n}の市の花は何ですか？", "{n}の市の花の名は？"),
    },
}
# Lead-sentence facts "(の)<attr>は<value>。": attr -> (training, evaluation) template ({n}: the article title).
_LEAD_RULES = {
    "県庁所在地": ("{n}の県庁所在地はどこですか？", "{n}の県庁所在地の地名は？"),
    "主催": ("{n}の主催者はどこですか？", "{n}の主催に該当する団体の名は？"),
    "略称": ("{n}の略称は何ですか？", "{n}の略称を短く言うと？"),
}
_LEAD_PATTERN = re.compile(r"(?:^|[。、]\s*)(?P<attr>" + "|".join(_LEAD_RULES) + r")は「?(?P<value>[^。、「」]{1,30}?)」?(?:である|です)?。")

_TITLES = re.compile(r"^(代表取締役社長|代表取締役会長|代表取締役|取締役|社長|会長|代表)\s*")
_ETC = re.compile(r"(ほか|など|他)$")
_MULTI = re.compile(r"[、,，/／]| - |・.*・")
_COUNTER = re.compile(r"^全(\d+)(話|巻)$")

# The side file of unseen facts that a training article states (not a plain QA file: each record
# has `leaked_by`; `read_qa_file` still reads it, ignoring that field).
# Which copy of a fact found in several splits is kept: the first split here that has it.
_SPLIT_PRIORITY = ("unseen", "test", "train")


@dataclass
class QABuildConfig:
    """Options of `wikitune qa build`."""

    corpus: Path
    """Corpus directory written by `extract` or `crawl` (reads articles.jsonl, and index.sqlite for redirects)."""
    out: Path
    """QA directory to write: train.jsonl, test.jsonl, unseen.jsonl, unseen_leaked.jsonl, manifest.json."""
    test_fraction: float = 0.2
    """Share of the facts of training articles that go to test.jsonl instead of train.jsonl."""
    heldout_fraction: float = DEFAULT_HELDOUT_FRACTION
    """Share of articles held out from training (must match CPT's; see wikitune.split)."""
    split_seed: str = "wikitune"
    """Seed of the fact split inside training articles (the article split is CPT's, seedless)."""
    domain: str = "anime"
    """Domain tag written into every record."""
    max_answer_chars: int = 40
    """Longer field values are not short answers and are skipped."""
    llm: "LLMQuestionSettings | None" = None
    """Optional LLM question writer (an OpenAI-compatible server); None: rule-based only."""

    def __post_init__(self) -> None:
        self.corpus = Path(self.corpus)
        self.out = Path(self.out)
        for name in ("test_fraction", "heldout_fraction"):
            value = getattr(self, name)
            if not 0.0 <= value < 1.0:
                raise WikituneError(f"{name} must be in [0, 1), got {value}")
        if self.max_answer_chars < 1:
            raise WikituneError(f"max_answer_chars must be 1 or more, got {self.max_answer_chars}")


@dataclass
class Fact:
    """One mined question before splitting."""

    id: str
    question: str
    """The question in its training phrasing (train.jsonl)."""
    answer: str
    aliases: list[str]
    pageid: int
    title: str
    rule: str
    eval_question: str = ""
    """The question in its evaluation phrasing (test.jsonl, unseen.jsonl); empty: `question` (an LLM's question)."""
    subject: str = ""
    """The entity the question asks about: the source article's title for work, lead and LLM facts (every medium
    of one article is one work), the infobox's name for a person, character, company or municipality."""


@dataclass
class QABuildResult:
    out: Path
    counts: dict[str, int]
    manifest: dict[str, Any] = field(default_factory=dict)


def _kind(template: str) -> tuple[str, str | None]:
    """(kind, medium) of an infobox template name."""
    t = template.replace("_", " ").strip()
    low = t.casefold()
    if low.startswith("infobox animanga/"):
        sub = low.split("/", 1)[1].strip()
        if sub == "character":
            return "character", None
        if sub in _MEDIUM:
            return "work", _MEDIUM[sub]
        return "other", None
    if t in ("声優", "Infobox 人物", "Infobox人物", "人物", "ActorActress", "Infobox 声優") or "人物" in t:
        return "person", None
    if "会社" in t or "企業" in t or "company" in low:
        return "company", None
    if "市町村" in t:
        return "municipality", None
    return "other", None


def title_index(corpus: Path, records: list[dict]) -> dict[str, list[str]]:
    """normalised name -> [article title, its bracket-less form, redirects to it]."""
    redirects: dict[str, list[str]] = {}
    index_db = corpus / "index.sqlite"
    if index_db.is_file():
        db = sqlite3.connect(f"file:{index_db}?mode=ro", uri=True)
        try:
            for title, target in db.execute("SELECT title, redirect FROM pages WHERE redirect IS NOT NULL AND ns=0"):
                redirects.setdefault(target, []).append(title)
        except sqlite3.Error as err:  # an index of another version: redirects are a bonus
            log.warning("cannot read redirects from %s: %s", index_db, err)
        finally:
            db.close()
    names: dict[str, list[str]] = {}
    for rec in records:
        title = rec["title"]
        forms = [title, *sorted(redirects.get(title, []))]
        short = bracketless(title)
        if short:
            forms.append(short)
        for infobox in rec.get("infobox") or []:
            name = (infobox.get("fields") or {}).get("名前") or ""
            if name and normalize_answer(name) == normalize_answer(title.replace(" ", "")):
                forms.append(name)
        for form in forms:
            names.setdefault(normalize_answer(form), [])
            for f in forms:
                if f not in names[normalize_answer(form)]:
                    names[normalize_answer(form)].append(f)
    return names


def answer_aliases(answer: str, names: dict[str, list[str]]) -> list[str]:
    """Other accepted spellings of `answer`: bracket-less forms, titles/redirects, forms without a job title or counter."""
    candidates: list[str] = []
    short = bracketless(answer)
    if short:
        candidates.append(short)
    for pattern in (_TITLES, _ETC):
        shorter = pattern.sub("", answer)
        if shorter != answer:
            candidates.append(shorter)
    counter = _COUNTER.match(answer)
    if counter:
        candidates.append(counter.group(1) + counter.group(2))
    for form in [answer, *candidates]:
        candidates.extend(names.get(normalize_answer(form), []))
    seen = {normalize_answer(answer)}
    out = []
    for c in candidates:
        key = normalize_answer(c)
        if key and key not in seen:
            seen.add(key)
            out.append(c)
    return out


def _usable(value: str, max_chars: int) -> str | None:
    """Why a field value is not a short answer, or None when it is."""
    if not value.strip():
        return "empty"
    if len(value) > max_chars:
        return "too_long"
    if "http" in value or "://" in value:
        return "url"
    if _MULTI.search(bracketless(value) or value):
        return "multi_valued"
    return None


def mine_facts(record: dict, names: dict[str, list[str]], cfg: QABuildConfig, skipped: Counter) -> Iterator[Fact]:
    """Every fact of one article record, with rule names like `work:監督` or `lead:略称`."""
    pageid, title = int(record["pageid"]), record["title"]
    covered: set[str] = set()

    def fact(key: str, rule: str, questions: tuple[str, str], answer: str, subject: str = title) -> Fact | None:
        answer = answer.strip()
        why = _usable(answer, cfg.max_answer_chars)
        if why:
            skipped[why] += 1
            return None
        return Fact(
            id=f"{pageid}:{key}", question=questions[0], eval_question=questions[1], answer=answer,
            aliases=answer_aliases(answer, names), pageid=pageid, title=title, rule=rule, subject=subject,
        )

    for i, infobox in enumerate(record.get("infobox") or []):
        template, fields = infobox.get("template", ""), infobox.get("fields") or {}
        kind, medium = _kind(template)
        if kind == "work":
            work_title = fields.get("タイトル") or title
            w = f"{medium}『{work_title}』"
            for name, templates in _WORK_RULES.items():
                if fields.get(name):
                    made = fact(f"{i}:{name}", f"work:{name}", tuple(t.format(w=w) for t in templates), fields[name])
                    if made:
                        covered.add(name)
                        yield made
        elif kind in _ENTITY_RULES:
            n = fields.get("名前") or fields.get("社名") or fields.get("自治体名") or title
            if kind == "company":
                n = title  # 社名 carries 株式会社; people ask about the common name
            work = f"『{fields['作品']}』" if fields.get("作品") else "作品"
            for name, templates in _ENTITY_RULES[kind].items():
                if fields.get(name):
                    made = fact(f"{i}:{name}", f"{kind}:{name}", tuple(t.format(n=n, work=work) for t in templates),
                                fields[name], n)
                    if made:
                        covered.add(name)
                        yield made
    lead = " ".join(split_sentences((record.get("text") or "").split("\n\n")[0])[:4])
    for match in _LEAD_PATTERN.finditer(lead):
        attr = match.group("attr")
        if attr in covered:
            continue
        covered.add(attr)
        made = fact(f"lead:{attr}", f"lead:{attr}", tuple(t.format(n=title) for t in _LEAD_RULES[attr]), match.group("value"))
        if made:
            yield made


def name_forms(name: str, names: dict[str, list[str]]) -> list[str]:
    """Normalised spellings of a name: itself, its bracket-less form, the title and redirects of the article it names."""
    forms = [name]
    short = bracketless(name)
    if short:
        forms.append(short)
    for form in list(forms):
        forms.extend(names.get(normalize_answer(form), []))
    return sorted({normalize_answer(f) for f in forms if len(normalize_answer(f)) >= 2})


def fact_key(fact: Fact, names: dict[str, list[str]]) -> tuple[str, str]:
    """(subject, normalised answer): what makes two facts the same, whatever their questions say.

    The subject is folded into the title of the article it names, so a redirect or a spelling
    with spaces ("真島 ほのか") is the same subject as its article ("真島ほのか").
    """
    subject = normalize_answer(fact.subject or fact.title)
    if subject in names:
        subject = normalize_answer(names[subject][0])
    return subject, normalize_answer(fact.answer)


def find_leaks(facts: list[Fact], articles: list[dict], names: dict[str, list[str]]) -> dict[str, list[dict[str, Any]]]:
    """Which of `facts` one sentence of one of `articles` states: subject and answer (or an alias) together.

    Args:
        facts (list[Fact]): the facts to check (the unseen ones).
        articles (list[dict]): article records (the training side), in pageid order.
        names (dict[str, list[str]]): the corpus's name index (`title_index`).

    Returns:
        dict[str, list[dict]]: fact id -> one {"pageid", "title", "sentence"} per article that
        states it, its first such sentence; facts no article states are absent.
    """
    # subject form -> facts about it with their answer forms; an article's text is searched once
    # per subject form (a substring test), and only the articles that name it sentence by sentence.
    by_form: dict[str, list[tuple[Fact, list[str]]]] = {}
    for f in facts:
        answers = sorted({normalize_answer(a) for a in [f.answer, *f.aliases]} - {""})
        for form in sorted(set(name_forms(f.title, names)) | set(name_forms(f.subject or f.title, names))):
            by_form.setdefault(form, []).append((f, answers))
    leaks: dict[str, list[dict[str, Any]]] = {}
    for article in articles:
        sentences = document_sentences(article.get("text") or "")
        normed = [normalize_answer(s) for s in sentences]
        whole = "\n".join(normed)
        first: dict[str, int] = {}  # fact id -> index of the first sentence stating it
        for form, entries in by_form.items():
            if form not in whole:
                continue
            for index, text in enumerate(normed):
                if not contains_term(text, form):
                    continue
                for f, answers in entries:
                    if any(contains_term(text, a) for a in answers) and index < first.get(f.id, len(normed)):
                        first[f.id] = index
        for fact_id, index in sorted(first.items()):
            leaks.setdefault(fact_id, []).append(
                {"pageid": int(article["pageid"]), "title": article["title"], "sentence": sentences[index]})
    return leaks


def _fact_in_test(fact_id: str, fraction: float, seed: str) -> bool:
    digest = hashlib.sha256(f"{seed}:fact:{fact_id}".encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") / 2**64 < fraction


def run_qa_build(cfg: QABuildConfig, *, llm_backend: Any = None) -> QABuildResult:
    """Mine, deduplicate, split and write the QA files of a corpus.

    `llm_backend` replaces the OpenAI client of `cfg.llm` (anything with `.chat(conversations)`).

    Returns:
        QABuildResult: the output directory and the number of questions per file.

    Raises:
        WikituneError: the corpus is missing or yields no question at all.
    """
    # Checked here, not in QABuildConfig: a study builds its configs before its corpus exists.
    if not (cfg.corpus / formats.ARTICLES).is_file():
        raise WikituneError(f"{cfg.corpus} has no {formats.ARTICLES}: give a corpus directory written by `wikitune extract`")
    records = list(formats.iter_articles(cfg.corpus))
    names = title_index(cfg.corpus, records)
    skipped: Counter = Counter()
    facts: list[Fact] = []
    for record in records:
        facts.extend(mine_facts(record, names, cfg, skipped))
    if cfg.llm is not None:
        known = {normalize_answer(f.question) for f in facts}
        per_page: Counter = Counter()
        for record, proposal in propose_questions(records, cfg.llm, max_answer_chars=cfg.max_answer_chars,
                                                  skipped=skipped, backend=llm_backend):
            key = normalize_answer(proposal["question"])
            if key in known:
                skipped["llm_duplicate"] += 1
                continue
            known.add(key)
            pageid = int(record["pageid"])
            per_page[pageid] += 1
            facts.append(Fact(id=f"{pageid}:llm:{per_page[pageid]}", question=proposal["question"], answer=proposal["answer"],
                              aliases=answer_aliases(proposal["answer"], names), pageid=pageid, title=record["title"], rule="llm"))

    # A question two facts answer differently is ambiguous; the same answer twice is one question.
    by_question: dict[str, list[Fact]] = {}
    for f in facts:
        by_question.setdefault(f.question, []).append(f)
    kept: list[Fact] = []
    for question, group in by_question.items():
        answers = {normalize_answer(f.answer) for f in group}
        if len(answers) > 1:
            skipped["ambiguous"] += len(group)
            continue
        if len(group) > 1:
            skipped["duplicate"] += len(group) - 1
        kept.append(group[0])
    if not kept:
        raise WikituneError(f"{cfg.corpus} yields no question: its articles have no infobox field or lead sentence the rules know")

    placed: dict[str, list[Fact]] = {"train": [], "test": [], "unseen": []}
    rules: Counter = Counter()
    for f in sorted(kept, key=lambda f: (f.pageid, f.id)):
        if is_heldout(f.pageid, cfg.heldout_fraction):
            name = "unseen"
        elif _fact_in_test(f.id, cfg.test_fraction, cfg.split_seed):
            name = "test"
        else:
            name = "train"
        rules[f.rule] += 1
        placed[name].append(f)
    before = {name: len(rows) for name, rows in placed.items()}

    # Leaks first: a leaked fact leaves every split, so it must not claim a (subject, answer) below.
    training = [r for r in records if not is_heldout(r["pageid"], cfg.heldout_fraction)]
    leaks = find_leaks(placed["unseen"], training, names)
    leaked = [f for f in placed["unseen"] if f.id in leaks]
    placed["unseen"] = [f for f in placed["unseen"] if f.id not in leaks]

    owner: dict[tuple[str, str], str] = {}
    duplicates: Counter = Counter()
    for name in _SPLIT_PRIORITY:
        keep = []
        for f in placed[name]:
            first = owner.setdefault(fact_key(f, names), name)
            if first == name:
                keep.append(f)
            else:
                duplicates[f"{name}_same_fact_as_{first}"] += 1
        placed[name] = keep

    def item(name: str, f: Fact) -> QAItem:
        return QAItem(
            id=f"{name}:{f.id}", question=f.question if name == "train" else (f.eval_question or f.question),
            answer=f.answer, aliases=f.aliases,
            domain=cfg.domain, split="train" if name == "train" else "test",
            source={"pageid": f.pageid, "title": f.title},
        )

    splits = {name: [item(name, f) for f in placed[name]] for name in ("train", "test", "unseen")}
    cfg.out.mkdir(parents=True, exist_ok=True)
    files = {"train": formats.QA_TRAIN, "test": formats.QA_TEST, "unseen": formats.QA_UNSEEN}
    for name, items in splits.items():
        formats.write_qa_file(cfg.out / files[name], items)
    formats.write_jsonl(cfg.out / formats.QA_UNSEEN_LEAKED,
                        ({**item("unseen", f).to_json(), "leaked_by": leaks[f.id]} for f in leaked))
    counts = {**{name: len(rows) for name, rows in splits.items()}, "unseen_leaked": len(leaked)}
    manifest = {
        "corpus": str(cfg.corpus), "config": {k: str(v) if isinstance(v, Path) else v for k, v in asdict(cfg).items()},
        "llm_prompt": "wikitune/data/qa_generation_prompt.ja.md" if cfg.llm is not None else None,
        "counts": counts, "articles": len(records),
        "heldout_articles": sum(is_heldout(r["pageid"], cfg.heldout_fraction) for r in records),
        "rules": dict(sorted(rules.items())), "skipped": dict(sorted(skipped.items())),
        "before_checks": before, "leaked_file": formats.QA_UNSEEN_LEAKED,
        "cross_split_duplicates": dict(sorted(duplicates.items())),
    }
    formats.write_json(cfg.out / formats.QA_MANIFEST, manifest)
    return QABuildResult(out=cfg.out, counts=counts, manifest=manifest)
