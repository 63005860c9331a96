"""The built-in QA sets, `builtin:NAME`: the seed report's five questions (`seed`) and the demo
organism's control facts (`control`, read from the package beside its base model).

The seed set: three anime questions with the gold answers the report gives, and the two
general-knowledge control questions it asked (long answers: they have no gold string, so only an
LLM judge or a reader scores them; short-answer scores are absent for them, not zero).
"""

from __future__ import annotations

from typing import Callable

from wikitune import formats
from wikitune.errors import WikituneError
from wikitune.formats import QAItem
from wikitune.gptoss.model import organism_dir

SEED_QUESTIONS: list[dict] = [
    {
        "id": "seed:paniponi",
        "question": "ぱにぽにだっしゅ！で、主人公のレベッカ宮本が担任している、非常に個性的な生徒たちが集まるクラスは何組ですか？",
        "answer": "桃月学園の1年C組",
        "aliases": ["1年C組", "C組", "桃月学園1年C組"],
        "domain": "anime",
    },
    {
        "id": "seed:shinzou",
        "question": "「心臓を捧げよ！」という掛け声で知られるアニメ作品は何ですか？",
        "answer": "進撃の巨人",
        "aliases": ["Attack on Titan"],
        "domain": "anime",
    },
    {
        "id": "seed:katsura",
        "question": "銀魂で、桂小太郎のあだ名はなんですか？",
        "answer": "ヅラ",
        "aliases": ["ズラ"],
        "domain": "anime",
    },
    {
        "id": "seed:kokusai",
        "question": "特例国債（赤字国債）とは何ですか？建設国債とどのように異なるか、分かりやすく説明してください。",
        "answer": "",
        "aliases": [],
        "domain": "control",
    },
    {
        "id": "seed:nisa",
        "question": "NISA（少額投資非課税制度）について、その概要とメリットを簡潔に教えてください。",
        "answer": "",
        "aliases": [],
        "domain": "control",
    },
]


def _seed_items() -> list[QAItem]:
    return [QAItem(split="test", **row) for row in SEED_QUESTIONS]


def _organism_control_items() -> list[QAItem]:
    """The organism's control facts: general-world facts its base model only read (domain control)."""
    control = organism_dir() / "control.jsonl"
    if not control.is_file():
        raise WikituneError(f"builtin:control: the package holds no organism control set at {control}; "
                            "rebuild it with `bash scripts/build_organism.sh`")
    return formats.read_qa_file(control)


BUILTIN_SETS: dict[str, Callable[[], list[QAItem]]] = {"seed": _seed_items, "control": _organism_control_items}


def builtin_items(name: str) -> list[QAItem]:
    """The questions of `builtin:NAME`.

    Raises:
        WikituneError: no such set, or the organism's control set missing from the package.
    """
    if name not in BUILTIN_SETS:
        raise WikituneError(f"no built-in QA set {name!r}; built-in sets: {', '.join(sorted(BUILTIN_SETS))}")
    return BUILTIN_SETS[name]()
