"""The seed report's five questions, as a built-in QA set (`builtin:seed`).

Three anime questions with the gold answers the report gives, and the two general-knowledge
control questions it asked (long answers: they have no gold string, so only an LLM judge or a
reader scores them; short-answer scores are absent for them, not zero).
"""

from __future__ import annotations

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

BUILTIN_SETS = {"seed": SEED_QUESTIONS}
CONTROL_SET = "control"
"""`builtin:control`: the demo organism's control facts (`wikitune.organism`), read from the package."""
