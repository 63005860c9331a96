"""Load QA sets into one shape, each question tagged with a domain ("anime", "control", ...).

A QA spec is `[FORMAT:]PATH[@DOMAIN]`:

    qa/demo/test.jsonl                    # wikitune QA JSONL (DESIGN.md); domain from the records
    qa/demo/unseen.jsonl@anime-unseen     # ... with the domain overridden
    builtin:seed                          # the seed report's 5 questions (3 anime, 2 control)
    builtin:control                       # the demo organism's control facts (general world, domain control)
    jaqket:PATH                           # JAQKET/AIO: rows with anime_keywords -> "anime", others -> "control"
    jaqket-anime:PATH / jaqket-control:PATH   # only one side of it
    jsquad:PATH                           # JSQuAD (SQuAD v1.1 JSON): closed-book, domain "control"
    jcommonsenseqa:PATH                   # JCommonsenseQA: answer = the labelled choice, domain "control"

Formats are also recognised from the content when no prefix is given. `:N` after a path keeps the
first N questions of that file (`jsquad:valid.json:200`), deterministic.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, Iterator

from wikitune import formats
from wikitune.errors import WikituneError
from wikitune.formats import QAItem
from wikitune.qa.builtin import builtin_items

FORMATS = ("wikitune", "builtin", "jaqket", "jaqket-anime", "jaqket-control", "jsquad", "jcommonsenseqa")


@dataclass
class QASet:
    """A named list of questions (nanochat's Task, reduced to what eval needs)."""

    name: str
    items: list[QAItem]

    def __len__(self) -> int:
        return len(self.items)

    def __iter__(self) -> Iterator[QAItem]:
        return iter(self.items)

    def domains(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for item in self.items:
            counts[item.domain] = counts.get(item.domain, 0) + 1
        return counts


def _load_rows(path: Path, what: str, to_record: Callable[[dict], dict | None]) -> list[QAItem]:
    """The questions of a JSONL file whose rows `to_record` turns into QA records (None = skip the row);
    a row it cannot read, or a record of the wrong shape, is an error naming file:line."""
    items = []
    for line_no, row in formats.iter_jsonl(path, what):
        where = f"{path}:{line_no}"
        try:
            record = to_record(row)
        except KeyError as err:
            raise WikituneError(f"{where}: a record lacks {err.args[0]}: {what}") from err
        except (TypeError, ValueError, IndexError) as err:
            raise WikituneError(f"{where}: a bad field ({err}): {what}") from err
        if record is not None:
            items.append(formats.qa_item_from_record(record, where))
    return items


def _load_jaqket(path: Path, keep: str | None) -> list[QAItem]:
    def record(row: dict) -> dict | None:
        domain = "anime" if row.get("anime_keywords") else "control"
        if keep and domain != keep:
            return None
        return {"id": f"jaqket:{row['id']}", "question": row["question"], "answer": row["answer"], "domain": domain,
                "split": "test", "choices": row.get("choices") or None}

    return _load_rows(path, "a JAQKET file has one JSON object per line", record)


def _load_jsquad(path: Path) -> list[QAItem]:
    raw = path.read_bytes()
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        raise formats.not_utf8(path, raw, err) from err
    data = json.loads(text)
    items = []
    for article in data["data"]:
        for paragraph in article["paragraphs"]:
            for qa in paragraph["qas"]:
                if qa.get("is_impossible"):
                    continue
                texts = list(dict.fromkeys(a["text"] for a in qa["answers"]))
                items.append(QAItem(
                    id=f"jsquad:{qa['id']}", question=qa["question"], answer=texts[0], aliases=texts[1:],
                    domain="control", split="test", source={"pageid": None, "title": article["title"]},
                ))
    return items


def _load_jcommonsenseqa(path: Path) -> list[QAItem]:
    def record(row: dict) -> dict:
        choices = [row[f"choice{i}"] for i in range(5)]
        return {"id": f"jcommonsenseqa:{row['q_id']}", "question": row["question"], "answer": choices[int(row["label"])],
                "domain": "control", "split": "test", "choices": choices}

    return _load_rows(path, "a JCommonsenseQA file has one JSON object per line", record)


def _sniff(path: Path) -> str:
    """The format of a QA file, from its first record (bytes that are not UTF-8 are left to the loader,
    whose error names their line)."""
    with open(path, "rb") as f:
        head = f.read(4096).decode("utf-8-sig", errors="replace").lstrip()
    if head.startswith('{"data"') or head.startswith('{\n') and '"data"' in head[:100]:
        return "jsquad"
    first = head.split("\n", 1)[0]
    try:
        row = json.loads(first)
    except json.JSONDecodeError:
        return "wikitune"  # let the wikitune loader give the line-numbered error
    if not isinstance(row, dict):
        return "wikitune"
    if "q_id" in row and "choice0" in row:
        return "jcommonsenseqa"
    if "anime_keywords" in row:
        return "jaqket"
    return "wikitune"


_SPEC = re.compile(r"^(?:(?P<fmt>[a-z-]+):)?(?P<path>.+?)(?::(?P<limit>\d+))?(?:@(?P<domain>[\w.-]+))?$")


def load_qa_spec(spec: str) -> QASet:
    """One QA set from a spec `[FORMAT:]PATH[:N][@DOMAIN]` (see the module docstring).

    Raises:
        WikituneError: unknown format, missing file, or a file that is not in the format.
    """
    match = _SPEC.match(spec)
    if not match:
        raise WikituneError(f"cannot read the QA spec {spec!r}: write [FORMAT:]PATH[:N][@DOMAIN]")
    fmt, path_s, limit, domain = match["fmt"], match["path"], match["limit"], match["domain"]
    if limit is not None and int(limit) == 0:
        raise WikituneError(f"the QA spec {spec!r} keeps 0 questions: N in PATH:N must be 1 or more")
    if fmt and fmt not in FORMATS:  # e.g. a Windows drive letter or a path with a colon
        path_s, fmt = f"{fmt}:{path_s}", None
    if fmt == "builtin":
        items = builtin_items(path_s)
        name = f"builtin:{path_s}"
    else:
        path = Path(path_s)
        if not path.is_file():
            raise WikituneError(f"QA file {path} does not exist (a spec is [FORMAT:]PATH[:N][@DOMAIN])")
        fmt = fmt or _sniff(path)
        try:
            if fmt == "wikitune":
                items = formats.read_qa_file(path)
            elif fmt.startswith("jaqket"):
                items = _load_jaqket(path, {"jaqket-anime": "anime", "jaqket-control": "control"}.get(fmt))
            elif fmt == "jsquad":
                items = _load_jsquad(path)
            else:
                items = _load_jcommonsenseqa(path)
        except (KeyError, TypeError, ValueError) as err:
            if isinstance(err, WikituneError):
                raise
            raise WikituneError(f"{path} is not a {fmt} QA file (missing or bad field {err})") from err
        name = path.stem if fmt == "wikitune" else f"{fmt}:{path.name}"
        if not items:  # e.g. jaqket-anime: of a file without anime rows; a run over zero questions proves nothing
            raise WikituneError(f"{path} holds no questions (read as {fmt})")
    if limit:
        items = items[: int(limit)]
    if domain:
        for item in items:
            item.domain = domain
    return QASet(name=name, items=items)


def load_qa_sets(specs: Iterable[str] | str) -> list[QASet]:
    """The QA sets of several specs, in order; question ids must be unique across them.

    Raises:
        WikituneError: a bad spec, or two questions with one id (the result cache is keyed by id).
    """
    if isinstance(specs, (str, Path)):
        specs = [str(specs)]
    sets = []
    seen: dict[str, str] = {}
    for spec in specs:
        qa_set = load_qa_spec(str(spec))
        for item in qa_set.items:
            if item.id in seen:
                raise WikituneError(f"question id {item.id!r} is in both {seen[item.id]} and {qa_set.name}: ids must be unique")
            seen[item.id] = qa_set.name
        sets.append(qa_set)
    return sets


def load_qa(specs: Iterable[str] | str) -> QASet:
    """All questions of several specs as one set, in order; ids must be unique across them.

    Raises:
        WikituneError: a bad spec, two questions with one id, or no question at all.
    """
    sets = load_qa_sets(specs)
    items = [item for qa_set in sets for item in qa_set.items]
    if not items:
        raise WikituneError(f"no questions in {', '.join(qa_set.name for qa_set in sets)}")
    return QASet(name="+".join(qa_set.name for qa_set in sets), items=items)
