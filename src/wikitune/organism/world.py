"""A fictional general world that is not anime: people, cities and companies, their facts, several
descriptions of each, and questions about every fact (the model organism's base knowledge).

    world = generate_world(WorldConfig(seed=0))
    paths = write_world(world, "runs/organism")    # world.jsonl, general.jsonl, qa_train.jsonl, control.jsonl

The design follows Physics of Language Models 3.1 (`../shared/KNOWLEDGE.md`): a fact is learned so
that it can be *extracted* (asked about) only when it is seen in several phrasings and positions,
so each entity gets `k` descriptions; across them every fact is stated in `k` different sentence
templates, and each description shuffles its sentence order (multiplicity + permutation). Every
template names the entity and the relation before the value ("Xの職業は…", never "…のX"), as
the English biographies of Physics of LMs do: a left-to-right model stores a fact as "entity and
relation -> value" only where it reads them in that order, and a question asks in that order. Entities
are split in two: `qa-trained` ones, whose QA pairs train the base model alongside the text, and
`qa-held` ones, read only in text, whose QA pairs are the control evaluation set. The question
templates share no phrasing with the description templates (not one 4-character run of literal
text), so the control score measures knowledge, not template matching.

Names are built from katakana syllable tables none of the demo anime wiki's names is made of, and
every name stem is unique in the world. Everything is a pure function of the config: the same
seed writes byte-identical files.
"""

from __future__ import annotations

import random
import string
from dataclasses import dataclass, field
from pathlib import Path

from wikitune import formats
from wikitune.errors import WikituneError
from wikitune.formats import QAItem

WORLD = "world.jsonl"
GENERAL = "general.jsonl"
QA_TRAIN = "qa_train.jsonl"
CONTROL = "control.jsonl"
QA_TRAINED, QA_HELD = "qa-trained", "qa-held"
TRAIN_DOMAIN, CONTROL_DOMAIN = "general", "control"

# ---------------------------------------------------------------------------------------- tables

# Syllables the demo wiki's katakana names are not made of (its names use ミ, サ, ジ, ル, カ ...).
_SYLLABLES = ("ヴォ", "ゾ", "ペ", "グ", "ドゥ", "ツェ", "ボ", "ネ", "ヘ", "ズ", "ピ", "ゲ", "ポ", "ベ", "ヌ", "ゼ",
              "ダ", "ブ", "ゴ", "デ", "ケ", "ヨ", "ワ", "フ", "ビ", "ギ", "ダン", "ゼル", "ボル", "ペン", "グス", "ネム")
# Values are one script each (kanji, or katakana, or digits and 年): the BPE cuts script runs apart
# (gptoss.model.SCRIPT_RUNS), so a value is the same tokens in a sentence as in an answer; 釣り
# would not be, its り joining the particle after it.
_OCCUPATIONS = ("建築家", "天文学者", "料理人", "外科医", "弁護士", "版画家", "作曲家", "測量技師", "新聞記者", "植物学者",
                "時計職人", "航海士", "薬剤師", "彫刻家", "地質学者", "翻訳家")
_HOBBIES = ("登山", "囲碁", "剣道", "陶芸", "写真", "将棋", "盆栽", "乗馬", "書道", "養蜂", "天体観測", "水泳")
_PRODUCTS = ("林檎", "絹織物", "陶器", "葡萄酒", "真珠", "緑茶", "岩塩", "鉄器", "蜂蜜", "和紙", "木材", "干物")
_INDUSTRIES = ("造船", "製薬", "出版", "鉄道", "食品", "繊維", "精密機械", "通信", "鉱業", "製紙", "保険", "化学")
_POPULATIONS = tuple(f"約{n}万人" for n in (3, 5, 8, 12, 17, 24, 31, 45, 60, 85, 120, 150))

# A relation: (kind, relation, description templates, question templates). `{name}` is the
# entity, `{value}` the fact. Descriptions state the fact; questions ask for it in other words.
RELATIONS: dict[str, dict[str, tuple[tuple[str, ...], tuple[str, ...]]]] = {
    "person": {
        "birth_year": (
            ("{name}の生年は{value}である。", "{name}が生まれた年は{value}だ。", "{name}の誕生は{value}のことだ。", "{name}の出生年は{value}とされる。",
             "{name}、その生まれ年は{value}である。"),
            ("{name}は何年生まれですか？", "{name}がこの世に出てきた年を教えてください。", "{name}について、生年を答えてください。"),
        ),
        "birthplace": (
            ("{name}の出身地は{value}である。", "{name}が生まれ育った町は{value}だ。", "{name}の故郷は{value}だ。",
             "{name}の生まれ故郷は{value}として知られる。", "{name}の出身は{value}だ。"),
            ("{name}はどこで生を受けましたか？", "{name}のふるさとの都市名を答えてください。", "{name}に関して、出身地を一言で。"),
        ),
        "occupation": (
            ("{name}の職業は{value}である。", "{name}が選んだ職は{value}だ。", "{name}の本職は{value}である。", "{name}の生業は{value}だ。",
             "{name}が就いた職業は腕の良い{value}だ。"),
            ("{name}の仕事は何ですか？", "{name}はどんな職についていますか？", "{name}について、職業を答えてください。"),
        ),
        "employer": (
            ("{name}の勤務先は{value}である。", "{name}が勤める会社は{value}だ。", "{name}の所属は{value}である。", "{name}が働く会社は{value}だ。",
             "{name}の雇い主は{value}である。"),
            ("{name}を雇っているのはどこの企業ですか？", "{name}がつとめる企業名を答えてください。", "{name}に関して、勤務先を一言で。"),
        ),
        "hobby": (
            ("{name}の趣味は{value}である。", "{name}が休日に楽しむのは{value}だ。", "{name}の好きなことは{value}だ。", "{name}が夢中なのは{value}である。",
             "{name}の道楽は{value}だ。"),
            ("{name}が余暇にすることは何ですか？", "{name}のたのしみは何でしょうか？", "{name}について、趣味を答えてください。"),
        ),
    },
    "city": {
        "region": (
            ("{name}の所在地は{value}である。", "{name}がある州は{value}だ。", "{name}の置かれた地域は{value}だ。", "{name}の位置は{value}である。",
             "{name}を含む州は{value}だ。"),
            ("{name}が属する州はどこですか？", "{name}がある地方の名前を答えてください。", "{name}に関して、所在地を一言で。"),
        ),
        "population": (
            ("{name}の人口は{value}である。", "{name}に暮らす人は{value}だ。", "{name}の住民は{value}だ。", "{name}に住む人の数は{value}である。",
             "{name}の人口規模は{value}だ。"),
            ("{name}にはどれくらいの人が住みますか？", "{name}の市民の数を答えてください。", "{name}について、人口を答えてください。"),
        ),
        "founded": (
            ("{name}の創設は{value}である。", "{name}が開かれた年は{value}だ。", "{name}の歴史の始まりは{value}だ。", "{name}が築かれた年は{value}である。",
             "{name}の開市は{value}だ。"),
            ("{name}が作られたのは何年ですか？", "{name}という市のおこりの年を教えてください。", "{name}に関して、創設を一言で。"),
        ),
        "product": (
            ("{name}の名産は{value}である。", "{name}の特産品は{value}だ。", "{name}で盛んに作られるのは{value}だ。", "{name}が誇る産物は{value}である。",
             "{name}の名物は{value}だ。"),
            ("{name}で有名な品物は何ですか？", "{name}を代表する産物を答えてください。", "{name}について、名産を答えてください。"),
        ),
    },
    "company": {
        "founder": (
            ("{name}の創業者は{value}である。", "{name}を興したのは{value}だ。", "{name}の生みの親は{value}である。", "{name}を起こした者は{value}だ。",
             "{name}の設立者は{value}である。"),
            ("{name}を立ち上げた人物はだれですか？", "{name}をつくった人の名前を答えてください。", "{name}に関して、創業者を一言で。"),
        ),
        "headquarters": (
            ("{name}の本社は{value}にある。", "{name}の本拠地は{value}である。", "{name}の本店の所在地は{value}だ。", "{name}の本部が置かれた都市は{value}だ。",
             "{name}が拠点を構える都市は{value}である。"),
            ("{name}の本社所在地を答えてください。", "{name}はどの都市に本社がありますか？", "{name}について、本社を答えてください。"),
        ),
        "founded": (
            ("{name}の設立年は{value}である。", "{name}が発足したのは{value}だ。", "{name}の創業は{value}にさかのぼる。", "{name}が誕生した年は{value}だ。",
             "{name}の創立は{value}である。"),
            ("{name}が作られたのは何年ですか？", "{name}というかいしゃのおこりの年を教えてください。", "{name}に関して、設立年を一言で。"),
        ),
        "industry": (
            ("{name}の業種は{value}である。", "{name}が手がける分野は{value}だ。", "{name}の事業は{value}だ。", "{name}の本業は{value}である。",
             "{name}が名高い分野は{value}だ。"),
            ("{name}はどんな商売をしていますか？", "{name}がいとなむ事業の分野を答えてください。", "{name}について、業種を答えてください。"),
        ),
    },
}


def template_literals(template: str) -> list[str]:
    """The literal text of a template: its pieces between `{placeholders}`."""
    return [literal for literal, _field, _spec, _conv in string.Formatter().parse(template) if literal]


# ---------------------------------------------------------------------------------------- world


@dataclass(frozen=True)
class WorldConfig:
    """Size and seed of the world."""

    seed: int = 0
    """Seed of names, facts, the split and sentence orders: the same seed gives the same world."""
    people: int = 24
    """People (5 facts each: birth year, birthplace, occupation, employer, hobby)."""
    cities: int = 8
    """Cities (4 facts each: region, population, founding year, product)."""
    companies: int = 8
    """Companies (4 facts each: founder, headquarters, founding year, industry)."""
    k: int = 5
    """Descriptions per entity; every fact is stated in k different templates across them (at most 5)."""
    held_fraction: float = 0.5
    """Share of each kind's entities that are qa-held (read only; their QA is the control set)."""

    def __post_init__(self) -> None:
        for name in ("people", "cities", "companies"):
            if getattr(self, name) < 2:
                raise WikituneError(f"world.{name} must be 2 or more (one qa-trained, one qa-held), got {getattr(self, name)}")
        if not 1 <= self.k <= 5:
            raise WikituneError(f"world.k must be between 1 and 5 (the description templates per fact), got {self.k}")
        if not 0.0 < self.held_fraction < 1.0:
            raise WikituneError(f"world.held_fraction must be in (0, 1), got {self.held_fraction}")


@dataclass
class Entity:
    """One entity of the world and its facts (relation -> value, in RELATIONS order)."""

    id: str
    kind: str
    name: str
    facts: dict[str, str]
    split: str = QA_TRAINED

    def to_json(self) -> dict:
        return {"id": self.id, "kind": self.kind, "name": self.name, "split": self.split,
                "facts": [{"relation": r, "value": v} for r, v in self.facts.items()]}


@dataclass
class World:
    """The entities, their descriptions (`documents`: entity id -> k texts) and QA pairs."""

    config: WorldConfig
    entities: list[Entity]
    documents: dict[str, list[str]] = field(default_factory=dict)

    def qa(self, split: str) -> list[QAItem]:
        """QA pairs of every fact of the entities of `split`. qa-trained (training data): each fact
        asked in every question template of its relation, so each phrasing is learnt on many
        entities; qa-held (the control set): each fact asked once, in a template drawn with the seed."""
        rng = random.Random(f"{self.config.seed}:questions")
        items = []
        for entity in self.entities:
            if entity.split != split:
                continue
            for relation, value in entity.facts.items():
                templates = RELATIONS[entity.kind][relation][1]
                drawn = rng.randrange(len(templates))
                for t in range(len(templates)) if split == QA_TRAINED else (drawn,):
                    items.append(QAItem(
                        id=f"{entity.id}-{relation}-q{t}", question=templates[t].format(name=entity.name), answer=value,
                        aliases=_aliases(value), domain=TRAIN_DOMAIN if split == QA_TRAINED else CONTROL_DOMAIN,
                        split="train" if split == QA_TRAINED else "test",
                        source={"pageid": None, "title": entity.name}))
        return items

    def texts(self) -> list[str]:
        """Every description, entity by entity."""
        return [text for entity in self.entities for text in self.documents[entity.id]]


def _aliases(value: str) -> list[str]:
    # A year is also right without its 年 ("1987" for "1987年").
    return [value[:-1]] if value.endswith("年") and value[:-1].isdigit() else []


def _names(rng: random.Random, n: int, taken: set[str], syllables: int) -> list[str]:
    out = []
    while len(out) < n:
        stem = "".join(rng.choice(_SYLLABLES) for _ in range(syllables))
        # no stem inside another: a name never contains another entity's name
        if not any(stem in other or other in stem for other in taken):
            taken.add(stem)
            out.append(stem)
    return out


def _describe(entity: Entity, k: int, rng: random.Random) -> list[str]:
    """k descriptions: in description j, relation i uses template (j + i) % 5, so each fact appears
    in k different templates; the sentence order of each description is shuffled."""
    documents = []
    for j in range(k):
        sentences = [RELATIONS[entity.kind][relation][0][(j + i) % 5].format(name=entity.name, value=value)
                     for i, (relation, value) in enumerate(entity.facts.items())]
        rng.shuffle(sentences)
        documents.append("".join(sentences))
    return documents


def generate_world(config: WorldConfig) -> World:
    """The world of `config`: entities with their facts and split, and their descriptions."""
    rng = random.Random(f"wikitune-organism:{config.seed}")
    taken: set[str] = set()
    regions = [f"{stem}州" for stem in _names(rng, 6, taken, 2)]
    cities = [Entity(f"city-{i:03d}", "city", f"{stem}市", {}) for i, stem in enumerate(_names(rng, config.cities, taken, 3))]
    companies = [Entity(f"company-{i:03d}", "company", f"{stem}社", {})
                 for i, stem in enumerate(_names(rng, config.companies, taken, 3))]
    people = [Entity(f"person-{i:03d}", "person", f"{a}・{b}", {})
              for i, (a, b) in enumerate(zip(_names(rng, config.people, taken, 2), _names(rng, config.people, taken, 3)))]
    founders = [f"{a}・{b}" for a, b in zip(_names(rng, config.companies, taken, 2), _names(rng, config.companies, taken, 3))]
    for city in cities:
        city.facts = {"region": rng.choice(regions), "population": rng.choice(_POPULATIONS),
                      "founded": f"{rng.randint(1200, 1899)}年", "product": rng.choice(_PRODUCTS)}
    for company, founder in zip(companies, founders):
        company.facts = {"founder": founder, "headquarters": rng.choice(cities).name,
                         "founded": f"{rng.randint(1850, 1999)}年", "industry": rng.choice(_INDUSTRIES)}
    for person in people:
        person.facts = {"birth_year": f"{rng.randint(1920, 1999)}年", "birthplace": rng.choice(cities).name,
                        "occupation": rng.choice(_OCCUPATIONS), "employer": rng.choice(companies).name,
                        "hobby": rng.choice(_HOBBIES)}
    entities = people + cities + companies
    for group in (people, cities, companies):
        held = round(len(group) * config.held_fraction)
        held = min(max(held, 1), len(group) - 1)
        for entity in rng.sample(group, held):
            entity.split = QA_HELD
    documents = {entity.id: _describe(entity, config.k, rng) for entity in entities}
    return World(config, entities, documents)


def write_world(world: World, out: str | Path) -> dict[str, Path]:
    """Write the world into `out`: world.jsonl (entities and facts), general.jsonl (one
    `{"id", "entity", "text"}` description per line: a `replay` source of a cpt mixture),
    qa_train.jsonl (QA of qa-trained entities) and control.jsonl (QA of qa-held entities, domain
    control), both QA files in the DESIGN.md format. Returns the paths by name."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    paths = {name: out / name for name in (WORLD, GENERAL, QA_TRAIN, CONTROL)}
    formats.write_jsonl(paths[WORLD], (entity.to_json() for entity in world.entities))
    formats.write_jsonl(paths[GENERAL], ({"id": f"{entity.id}-d{j}", "entity": entity.id, "text": text}
                                         for entity in world.entities
                                         for j, text in enumerate(world.documents[entity.id])))
    formats.write_qa_file(paths[QA_TRAIN], world.qa(QA_TRAINED))
    formats.write_qa_file(paths[CONTROL], world.qa(QA_HELD))
    return paths
