"""The contract between stages (shared DESIGN.md): file names, and one reader and one writer per
file kind. Every stage reads and writes these files through this module only, so a field is
spelled in one place.

    from wikitune import formats
    for article in formats.iter_articles("corpus/demo"): ...
    items = formats.read_qa_file("qa/demo/test.jsonl")
    summary = formats.read_summary("runs/demo/eval-base")

JSON Schemas of the records live beside this module in `schemas/` (package data); the tests check
every file the stages write against them.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, Iterable, Iterator

from wikitune.errors import WikituneError

# ---- a corpus directory ---------------------------------------------------------------------------
MANIFEST = "manifest.json"
ARTICLES = "articles.jsonl"
CATEGORIES = "categories.jsonl"
TEXT_DIR = "text"
MARKDOWN_DIR = "markdown"

# ---- a QA directory (`qa build`) ------------------------------------------------------------------
QA_TRAIN = "train.jsonl"
QA_TEST = "test.jsonl"
QA_UNSEEN = "unseen.jsonl"
QA_UNSEEN_LEAKED = "unseen_leaked.jsonl"
"""Held-out facts that a training article states anyway (qa build keeps them out of unseen.jsonl)."""
QA_MANIFEST = "manifest.json"

# ---- a run directory (`cpt`, `sft`, `eval`) -------------------------------------------------------
RUN_CONFIG = "config.yaml"
METRICS = "metrics.jsonl"
ADAPTER_DIR = "adapter"
RESULTS = "results.jsonl"
SUMMARY = "summary.json"

# ---- an augmentation directory (`augment`) -------------------------------------------------------
AUG_MANIFEST = "manifest.json"
AUG_DOCUMENTS = "documents.jsonl"
AUG_QA = "qa.jsonl"
"""Method `qa` only: the generated questions, in the QA file format."""
AUGMENT_METHODS = ("facts", "rephrase", "entigraph", "qa")
"""The augmentation methods of the contract (DESIGN.md), as a document's `method` names them."""

ARTICLE_TEXT_FIELDS = ("text", "markdown")


def schema(name: str) -> dict[str, Any]:
    """The JSON Schema of a record kind: `article`, `category`, `qa`, `eval_result`, `comparison`."""
    path = resources.files("wikitune") / "schemas" / f"{name}.schema.json"
    if not path.is_file():
        raise WikituneError(f"no schema named {name!r}")
    return json.loads(path.read_text(encoding="utf-8"))


# ---- JSON and JSONL ------------------------------------------------------------------------------


def read_json(path: str | Path, what: str) -> Any:
    """One JSON document; `what` says in the error what the file should have been."""
    path = Path(path)
    if not path.is_file():
        raise WikituneError(f"{path} does not exist: {what}")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise WikituneError(f"{path} is not valid JSON ({err}): {what}") from err


def write_json(path: str | Path, data: Any) -> Path:
    """Write JSON atomically (a temporary file renamed into place), UTF-8, indented."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(data, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
    os.replace(tmp, path)
    return path


def not_utf8(path: str | Path, data: bytes, err: UnicodeDecodeError, first_line: int = 1) -> WikituneError:
    """The one-line error for bytes of `path` that are not UTF-8, naming the line and column of the bad byte.

    Args:
        path: the file.
        data (bytes): what was decoded (a line, or the whole file).
        err (UnicodeDecodeError): the decoder's error on `data`.
        first_line (int): the line number of `data`'s first line.
    """
    line = first_line + data.count(b"\n", 0, err.start)
    column = err.start - data.rfind(b"\n", 0, err.start)
    hint = ""
    try:  # Japanese files from Windows tools are often Shift-JIS (cp932): say so, with the fix
        data.decode("cp932")
        hint = "; it reads as Shift-JIS: convert it with `iconv -f CP932 -t UTF-8`"
    except UnicodeDecodeError:
        pass
    return WikituneError(f"{path}:{line} is not UTF-8 (byte 0x{data[err.start]:02x} at column {column}){hint}")


def iter_jsonl(path: str | Path, what: str) -> Iterator[tuple[int, dict[str, Any]]]:
    """(line number, object) for every non-blank line; an error names the file and line.

    Raises:
        WikituneError: a missing file, or a line that is not UTF-8, not JSON or not a JSON object.
    """
    path = Path(path)
    if not path.is_file():
        raise WikituneError(f"{path} does not exist: {what}")
    with open(path, "rb") as handle:  # decoded line by line, so a bad byte is reported with its line
        for line_no, raw in enumerate(handle, 1):
            try:
                line = raw.decode("utf-8-sig" if line_no == 1 else "utf-8")  # a BOM (Windows editors) is not content
            except UnicodeDecodeError as err:
                raise not_utf8(path, raw, err, line_no) from err
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as err:
                raise WikituneError(f"{path}:{line_no} is not JSON ({err.msg}): {what}") from err
            if not isinstance(record, dict):
                raise WikituneError(f"{path}:{line_no} is not a JSON object: {what}")
            yield line_no, record


def write_jsonl(path: str | Path, records: Iterable[dict[str, Any]]) -> int:
    """Write one JSON object per line (UTF-8, unescaped); returns the number written."""
    return _put_jsonl(path, records, "w")


def _put_jsonl(path: str | Path, records: Iterable[dict[str, Any]], mode: str) -> int:
    n = 0
    with open(path, mode, encoding="utf-8") as handle:
        for record in records:
            handle.write(json.dumps(record, ensure_ascii=False) + "\n")
            n += 1
    return n


# ---- corpus --------------------------------------------------------------------------------------


def is_corpus(directory: str | Path) -> bool:
    """A finished corpus: its manifest (written last) and its articles are there."""
    directory = Path(directory)
    return (directory / MANIFEST).is_file() and (directory / ARTICLES).is_file()


def _corpus_articles_path(corpus: str | Path) -> Path:
    path = Path(corpus) / ARTICLES
    if not path.is_file():
        raise WikituneError(f"{corpus} is not a corpus directory (no {ARTICLES}); build one with `wikitune extract`")
    return path


def iter_articles(corpus: str | Path) -> Iterator[dict[str, Any]]:
    """Every article record of a corpus directory, in file order (sorted by page id), streamed."""
    path = _corpus_articles_path(corpus)
    for line_no, record in iter_jsonl(path, "a corpus has one article record per line"):
        if not isinstance(record.get("pageid"), int) or not isinstance(record.get("title"), str):
            raise WikituneError(f"{path}:{line_no}: not an article record (needs an integer pageid and a title)")
        yield record


def read_articles(corpus: str | Path, text_field: str = "text") -> list[dict[str, Any]]:
    """Articles of a corpus directory, sorted by page id, reduced to `pageid`, `title`, `text`
    (`text` holds the `text_field` of the record: plain text or Markdown).

    Raises:
        WikituneError: not a corpus directory, a malformed record, no articles, or a bad `text_field`.
    """
    if text_field not in ARTICLE_TEXT_FIELDS:
        raise WikituneError(f"text_field must be text or markdown, got {text_field!r}")
    out = []
    for record in iter_articles(corpus):
        text = record.get(text_field)
        if not isinstance(text, str):
            raise WikituneError(f"{Path(corpus) / ARTICLES}: article {record['pageid']} has no {text_field!r} string")
        out.append({"pageid": record["pageid"], "title": record["title"], "text": text})
    if not out:
        raise WikituneError(f"{Path(corpus) / ARTICLES} holds no articles")
    return sorted(out, key=lambda a: a["pageid"])


def iter_categories(corpus: str | Path) -> Iterator[dict[str, Any]]:
    """Every category record (`title`, `parents`, `depth`) of a corpus directory."""
    for _line_no, record in iter_jsonl(Path(corpus) / CATEGORIES, "a corpus has one category record per line"):
        yield record


def read_manifest(directory: str | Path) -> dict[str, Any]:
    """The manifest of a corpus (or QA) directory."""
    return read_json(Path(directory) / MANIFEST, "the manifest of a directory written by wikitune")


# ---- QA ------------------------------------------------------------------------------------------


@dataclass
class QAItem:
    """One question (the QA JSONL record of DESIGN.md, plus optional choices)."""

    id: str
    question: str
    answer: str
    aliases: list[str] = field(default_factory=list)
    domain: str = "anime"
    split: str | None = None
    source: dict | None = None
    choices: list[str] | None = None
    """Multiple-choice options (JCommonsenseQA, some JAQKET rows); shown to the model when present."""

    def to_json(self) -> dict[str, Any]:
        out = asdict(self)
        if out["choices"] is None:
            del out["choices"]
        return out


def json_kind(value: Any) -> str:
    """How an error message names a JSON value (`the number 42`, `a list`)."""
    if value is None or isinstance(value, bool):
        return json.dumps(value)
    if isinstance(value, (int, float)):
        return f"the number {value}"
    if isinstance(value, str):
        return f"the string {json.dumps(value, ensure_ascii=False)[:60]}"
    return {list: "a list", dict: "an object"}.get(type(value), type(value).__name__)


def _is_strings(value: Any) -> bool:
    return isinstance(value, list) and all(isinstance(v, str) for v in value)


def qa_item_from_record(record: dict[str, Any], where: str) -> QAItem:
    """A QA record as a `QAItem`, every field checked against the QA format (schema `qa`).

    Args:
        record (dict): one record.
        where (str): the record's place (file:line), named in errors.

    Raises:
        WikituneError: a required field is missing, or a field has the wrong type (`answer: 42`, an
            empty question, aliases that are not a list of strings), so a bad file fails when it is
            loaded, before any generation.
    """
    missing = [k for k in ("id", "question", "answer") if k not in record]
    if missing:
        raise WikituneError(f"{where}: a record lacks {', '.join(missing)}; see the QA file format in the README")
    wanted = {
        "id": (lambda v: isinstance(v, str) and v.strip() != "", "a non-empty string"),
        "question": (lambda v: isinstance(v, str) and v.strip() != "", "a non-empty string"),
        "answer": (lambda v: isinstance(v, str), 'a string ("" for a question without a gold answer)'),
        "aliases": (lambda v: v is None or _is_strings(v), "a list of strings"),
        "domain": (lambda v: v is None or isinstance(v, str) and v.strip() != "", 'a non-empty string such as "anime"'),
        "split": (lambda v: v in ("train", "test", None), '"train", "test" or null'),
        "source": (lambda v: v is None or isinstance(v, dict), 'an object {"pageid": ..., "title": ...} or null'),
        "choices": (lambda v: v is None or _is_strings(v) and len(v) > 0, "a non-empty list of strings"),
    }
    for name, (ok, description) in wanted.items():
        if name in record and not ok(record[name]):
            raise WikituneError(f"{where}: field {name!r} must be {description}, got {json_kind(record[name])}")
    return QAItem(
        id=record["id"], question=record["question"], answer=record["answer"], aliases=list(record.get("aliases") or []),
        domain=record.get("domain") or "anime", split=record.get("split"), source=record.get("source"),
        choices=record.get("choices"),
    )


def read_qa_file(path: str | Path) -> list[QAItem]:
    """Every record of a wikitune QA JSONL file, in file order.

    Raises:
        WikituneError: a line that is not a valid QA record (named by file:line), or no record at all
            (an empty file would otherwise be a run over zero questions).
    """
    path = Path(path)
    items = [qa_item_from_record(record, f"{path}:{line_no}")
             for line_no, record in iter_jsonl(path, "a QA file has one JSON object per line; build one with `wikitune qa build`")]
    if not items:
        raise WikituneError(f"{path} holds no QA records: a QA file has one JSON object per line; build one with `wikitune qa build`")
    return items


def write_qa_file(path: str | Path, items: Iterable[QAItem]) -> int:
    """Write QA items as JSONL; returns the number written."""
    return write_jsonl(path, (item.to_json() for item in items))


# ---- run directories -----------------------------------------------------------------------------


def read_summary(run_dir: str | Path) -> dict[str, Any]:
    """`summary.json` of a run directory (cpt, sft or eval)."""
    return read_json(Path(run_dir) / SUMMARY, "give a run directory written by `wikitune cpt`, `sft` or `eval`")


def write_summary(run_dir: str | Path, summary: dict[str, Any]) -> Path:
    return write_json(Path(run_dir) / SUMMARY, summary)


def read_results(run_dir: str | Path) -> list[dict[str, Any]]:
    """`results.jsonl` of an evaluation run: one record per question."""
    return [record for _line_no, record in
            iter_jsonl(Path(run_dir) / RESULTS, "give a run directory written by `wikitune eval`")]


def read_metrics(run_dir: str | Path) -> list[dict[str, Any]]:
    """`metrics.jsonl` of a training run: one record per logged step ([] before the first log)."""
    path = Path(run_dir) / METRICS
    if not path.is_file():
        return []
    return [record for _line_no, record in iter_jsonl(path, "one object per logged step")]


def is_eval_run(directory: str | Path) -> bool:
    directory = Path(directory)
    return (directory / SUMMARY).is_file() and (directory / RESULTS).is_file()


def is_training_run(directory: str | Path) -> bool:
    return (Path(directory) / METRICS).is_file()


def append_jsonl(path: str | Path, records: Iterable[dict[str, Any]]) -> int:
    """Append objects to a JSONL file as `write_jsonl` writes them (a run adds its records batch by
    batch, so a kill loses at most one batch); returns the number appended."""
    return _put_jsonl(path, records, "a")


def read_run_config(run_dir: str | Path) -> dict[str, Any]:
    """`config.yaml` of a run directory: the resolved config the run was made with."""
    import yaml  # PyYAML is light, but only run directories need it here

    path = Path(run_dir) / RUN_CONFIG
    if not path.is_file():
        raise WikituneError(f"{run_dir} is not a run directory: it has no {RUN_CONFIG}")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as err:
        raise WikituneError(f"{path} is not valid YAML: {str(err).splitlines()[0]}") from err
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise WikituneError(f"{path} is not a mapping of config keys")
    return data


# ---- augmentation directories --------------------------------------------------------------------


@dataclass
class Document:
    """One training document of an augmentation directory (`AUG_DIR/documents.jsonl`, schema `augment_document`)."""

    id: str
    pageid: int
    """The training article the document is about (never a held-out one)."""
    title: str
    method: str
    """How it was made: one of AUGMENT_METHODS."""
    k: int
    """The run's number of phrasings per article (`--k`)."""
    text: str

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def document_from_record(record: dict[str, Any], where: str) -> Document:
    """A documents.jsonl record as a `Document`, every field checked.

    Raises:
        WikituneError: a missing field or one of the wrong type, named with `where` (file:line).
    """
    wanted = {
        "id": (lambda v: isinstance(v, str) and v != "", "a non-empty string"),
        "pageid": (lambda v: isinstance(v, int) and not isinstance(v, bool), "an integer"),
        "title": (lambda v: isinstance(v, str), "a string"),
        "method": (lambda v: v in AUGMENT_METHODS, "one of " + ", ".join(AUGMENT_METHODS)),
        "k": (lambda v: isinstance(v, int) and not isinstance(v, bool) and v >= 1, "an integer of 1 or more"),
        "text": (lambda v: isinstance(v, str) and v.strip() != "", "a non-empty string"),
    }
    for name, (ok, description) in wanted.items():
        if name not in record:
            raise WikituneError(f"{where}: a document lacks {name!r}; see the augmentation directory format in the README")
        if not ok(record[name]):
            raise WikituneError(f"{where}: field {name!r} must be {description}, got {json_kind(record[name])}")
    return Document(**{name: record[name] for name in wanted})


def iter_documents(aug_dir: str | Path) -> Iterator[Document]:
    """Every document of an augmentation directory, in file order, streamed."""
    path = Path(aug_dir) / AUG_DOCUMENTS
    for line_no, record in iter_jsonl(path, "give an augmentation directory written by `wikitune augment`"):
        yield document_from_record(record, f"{path}:{line_no}")


def read_documents(aug_dir: str | Path) -> list[Document]:
    """Every document of an augmentation directory (see `iter_documents`)."""
    return list(iter_documents(aug_dir))


def write_documents(path: str | Path, documents: Iterable[Document]) -> int:
    """Write documents as JSONL (`AUG_DIR/documents.jsonl`); returns the number written."""
    return write_jsonl(path, (document.to_json() for document in documents))


# ---- plain text documents (CPT replay) -----------------------------------------------------------

TEXT_DOCUMENT_SUFFIXES = (".txt", ".jsonl")


def read_text_documents(path: str | Path) -> list[str]:
    """The documents of a plain text file: `.txt` = documents separated by an empty line,
    `.jsonl` = the `text` string of each object (one document per line). Blank documents are
    skipped.

    Raises:
        WikituneError: a missing file, another suffix, a line that is not UTF-8, or a JSONL
            record without a `text` string (named by file:line).
    """
    path = Path(path)
    if path.suffix not in TEXT_DOCUMENT_SUFFIXES:
        raise WikituneError(f"{path}: a text file must end in .txt (documents separated by an empty line) "
                            "or .jsonl (one {\"text\": ...} object per line)")
    if path.suffix == ".jsonl":
        out = []
        for line_no, record in iter_jsonl(path, 'one {"text": ...} object per line'):
            if not isinstance(record.get("text"), str):
                raise WikituneError(f"{path}:{line_no}: a record needs a \"text\" string, got {json_kind(record.get('text'))}")
            out.append(record["text"])
        return [t for t in out if t.strip()]
    if not path.is_file():
        raise WikituneError(f"{path} does not exist: a text file of documents separated by an empty line")
    data = path.read_bytes()
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        raise not_utf8(path, data, err) from err
    documents, current = [], []
    for line in text.splitlines():
        if line.strip():
            current.append(line)
        elif current:
            documents.append("\n".join(current))
            current = []
    if current:
        documents.append("\n".join(current))
    return documents
