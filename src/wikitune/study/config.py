"""The study config (`wikitune run --config STUDY.yaml`): typed, and checked whole at load.

    cfg = load_study_config("configs/tiny/study.yaml", ["sft.learning_rate=1e-3"])

Loading builds every stage's own config (`QABuildConfig`, `CPTConfig`, `SFTConfig`,
`QAEvalConfig`) from its section, so an unknown key, a value of the wrong type, an impossible
value or a missing input file is reported in one line naming the key, before any stage runs and
before anything is written. Settings that the study decides for every stage (paths, model,
seed, held-out fraction) are top-level keys; a section that sets one is refused.

Without `--config`, the demo study is read: `configs/tiny/study.yaml`, shipped inside the
package as `wikitune/data/demo_study.yaml` (the same file). Code holds only library defaults.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

from wikitune import formats
from wikitune.config import load_config
from wikitune.corpus.extract import dump_path
from wikitune.errors import WikituneError
from wikitune.gptoss.model import ORGANISM, TINY
from wikitune.qa.loaders import load_qa_spec
from wikitune.split import DEFAULT_HELDOUT_FRACTION

RUN_NAMES = ("base", "raw-cpt", "sft-only", "raw-cpt-sft", "rag")
"""The models a study can evaluate: base, raw CPT (LoRA CPT on the articles as they are), SFT alone,
SFT on raw CPT, base + BM25 retrieval. These names are the run names of `report/results.json`."""


def demo_study_path() -> Path:
    """The demo study's YAML inside the package (= configs/tiny/study.yaml of the repository)."""
    return Path(str(resources.files("wikitune") / "data" / "demo_study.yaml"))


def demo_expect_path() -> Path:
    """The titles the demo wiki's roots should reach (the corpus stage's `--expect` for the demo)."""
    return Path(str(resources.files("wikitune") / "data" / "demo_expect.txt"))


@dataclass
class SourceSettings:
    """Where the corpus comes from."""

    kind: str = "extract"
    """`extract` (a dump, or `demo`) or `crawl` (a live wiki's API)."""
    dump: str = "demo"
    """For extract: a pages-articles dump path, or `demo` (the fictional wiki in the package)."""
    api: str | None = None
    """For crawl: the wiki's api.php URL."""
    contact: str | None = None
    """For crawl: your e-mail or URL for the User-Agent."""
    roots: list[str] = field(default_factory=lambda: ["日本のアニメ作品", "アニメ関連人物", "アニメ関連企業"])
    """Root categories."""
    depth: int | None = None
    """Most sub-category steps below a root; None = unlimited."""
    exclude: list[str] = field(default_factory=list)
    """Regexes of categories not to enter."""
    expect: str | None = None
    """A titles file; the report lists those missing and why. None with the demo: the demo's own list."""

    def __post_init__(self) -> None:
        if self.kind not in ("extract", "crawl"):
            raise WikituneError(f"source.kind must be extract or crawl, got {self.kind!r}")
        if self.kind == "crawl" and not self.api:
            raise WikituneError("source.kind=crawl needs source.api (the wiki's api.php URL)")
        if self.kind == "extract" and self.dump != "demo" and not Path(self.dump).is_file():
            raise WikituneError(f"source.dump: {self.dump} does not exist (give a pages-articles dump, or `demo`)")
        if self.expect is not None and not Path(self.expect).is_file():
            raise WikituneError(f"source.expect: {self.expect} does not exist (a file of expected titles, one per line)")
        if not self.roots:
            raise WikituneError("source.roots is empty: give at least one root category")
        if self.depth is not None and self.depth < 0:
            raise WikituneError(f"source.depth must be 0 or more (or null), got {self.depth}")

    def dump_path(self) -> Path | None:
        """The dump file `extract` reads (the package's demo wiki for `demo`); None for crawl."""
        if self.kind != "extract":
            return None
        return dump_path(self.dump)

    def expect_path(self) -> Path | None:
        """The expected-titles file: `expect`, or the demo's own list when the source is the demo."""
        if self.expect is not None:
            return Path(self.expect)
        return demo_expect_path() if self.kind == "extract" and self.dump == "demo" else None


@dataclass
class RecipeSettings:
    """A knowledge-injection recipe: CPT on a declared data mixture, then (optionally) SFT.

    Sources in `data` name the study's own outputs: `{corpus: study}` (the training articles),
    `{augment: NAME}` (the study's `augment.NAME` stage), `{qa: train}` (the study's SFT QA as
    harmony conversations, PIT-style), or a path for `replay` (general text, with a `fraction`).
    `organism` names what the organism base model was trained on: `{replay: organism}` its general
    world's text, `{qa: organism}` the QA it was taught (replay of its answering).
    """

    data: list[dict] = field(default_factory=lambda: [{"corpus": "study"}])
    """The CPT mixture (see `wikitune cpt`'s `data:`), with the study-relative sources above."""
    order: str = "mixed"
    """mixed | qa-first (PIT: the QA blocks first)."""
    sft: bool = True
    """Also train `<name>-sft`: the study's SFT on top of this recipe's CPT adapter."""
    cpt: dict = field(default_factory=dict)
    """CPT settings of this recipe over the study's `cpt` section (e.g. epochs)."""

    def references(self) -> dict[str, list[str]]:
        """The study outputs the mixture reads: {"augment": [names], "qa": [splits]}."""
        refs: dict[str, list[str]] = {"augment": [], "qa": []}
        for source in self.data:
            if not isinstance(source, dict) or len(set(source) & {"corpus", "augment", "qa", "replay"}) != 1:
                raise WikituneError(f"recipe data: each source is one of corpus, augment, qa, replay, got {source!r}")
            if "corpus" in source and source["corpus"] != "study":
                raise WikituneError(f"recipe data: {{corpus: study}} is the study's corpus; for other text use replay, got {source!r}")
            if "augment" in source:
                refs["augment"].append(str(source["augment"]))
            if "qa" in source:
                if source["qa"] not in ("train", ORGANISM):
                    raise WikituneError(f"recipe data: a recipe trains on qa: train (the study's SFT QA) or qa: organism (the "
                                        f"QA the organism base model was taught); test and unseen are evaluation questions, "
                                        f"got {source['qa']!r}")
                if source["qa"] == "train":
                    refs["qa"].append("train")
        return refs


@dataclass
class StudyConfig:
    """One study: corpus → QA → CPT → SFT → evaluation → report."""

    output_dir: str = "runs/demo"
    """The study directory; each stage writes a subdirectory."""
    seed: int = 42
    """Seed of training and sampling (model init, data order, augmentation sampling)."""
    seeds: list[int] = field(default_factory=list)
    """Several seeds: the whole study once per seed, in `seed-N/`, and a report over all of them
    that states a finding only when it holds on every seed. Empty: one study with `seed`."""
    source: SourceSettings = field(default_factory=SourceSettings)
    """The corpus source."""
    heldout_fraction: float = DEFAULT_HELDOUT_FRACTION
    """Share of articles never trained on: the one value qa, tokenizer, cpt and the perplexity measurement read."""
    model: str = TINY
    """`tiny-gpt-oss` (random), `organism` (the demo's base model, shipped: `wikitune organism base`),
    an HF id or a local path."""
    tokenizer: str | None = None
    """Tokenizer directory; None: tiny-gpt-oss trains a BPE on the corpus, other models use their own."""
    tokenizer_vocab_size: int = 2000
    """Vocabulary of the BPE trained for tiny-gpt-oss."""
    tiny: dict = field(default_factory=dict)
    """Sizes of tiny-gpt-oss (wikitune.gptoss.model.TinyGptOssConfig fields; others keep their defaults)."""
    qa: dict = field(default_factory=dict)
    """`qa build` settings (QABuildConfig fields, except those the study sets)."""
    cpt: dict = field(default_factory=dict)
    """CPT settings (CPTConfig fields, except those the study sets)."""
    sft: dict = field(default_factory=dict)
    """SFT settings (SFTConfig fields), used by both raw-cpt-sft and sft-only."""
    sft_replay: list[str] = field(default_factory=list)
    """QA files mixed into every SFT run's training QA beside the study's own (records of split
    train or null), so that learning to answer anime questions does not overwrite how the base
    model answered before; `organism`: the QA the organism base model was taught."""
    eval: dict = field(default_factory=dict)
    """Evaluation settings (QAEvalConfig fields), used by every eval run."""
    augment: dict[str, dict] = field(default_factory=dict)
    """Augmentation stages, by name (`augment-NAME`): `wikitune augment` settings (method, k, ...)."""
    recipes: dict[str, RecipeSettings] = field(default_factory=dict)
    """Knowledge-injection recipes, by name: each a CPT run (and `NAME-sft`) to evaluate beside raw CPT."""
    eval_sets: list[str] = field(default_factory=lambda: ["qa:test.jsonl", "qa:unseen.jsonl@anime-unseen", "builtin:seed"])
    """QA specs; `qa:NAME` is a file of the study's qa stage. Others as `wikitune eval --qa`."""
    runs: list[str] = field(default_factory=lambda: list(RUN_NAMES))
    """Which models to evaluate: base, raw-cpt, sft-only, raw-cpt-sft, rag."""

    def __post_init__(self) -> None:
        for name, recipe in self.recipes.items():
            if name in RUN_NAMES or name.endswith("-sft") or not name.replace("-", "").isalnum():
                raise WikituneError(f"recipes.{name}: a recipe name is letters, digits and '-', not a built-in run "
                                    "and not ending in -sft")
            if recipe.order not in ("mixed", "qa-first"):
                raise WikituneError(f"recipes.{name}.order must be mixed or qa-first, got {recipe.order!r}")
            for ref in recipe.references()["augment"]:
                if ref not in self.augment:
                    raise WikituneError(f"recipes.{name}: data reads augment {ref!r}, which the study does not define "
                                        f"(augment: {', '.join(self.augment) or 'none'})")
        if len(set(self.seeds)) != len(self.seeds):
            raise WikituneError(f"seeds lists a seed twice: {self.seeds}")
        if len(set(self.runs)) != len(self.runs):
            raise WikituneError(f"runs lists a run twice: {self.runs}")
        known = self.run_names()
        unknown = [r for r in self.runs if r not in known]
        if unknown:
            raise WikituneError(f"runs: unknown {unknown[0]!r}; choose from {', '.join(known)}")
        if not self.runs:
            raise WikituneError("runs is empty: name at least one model to evaluate")
        if not 0.0 < self.heldout_fraction < 1.0:
            raise WikituneError(f"heldout_fraction must be in (0, 1), got {self.heldout_fraction}")
        if self.tokenizer is not None and not Path(self.tokenizer).exists():
            raise WikituneError(f"tokenizer: {self.tokenizer} does not exist (a tokenizer directory, or null)")
        if self.model.startswith(("/", "./", "../", "~")) and not Path(self.model).expanduser().exists():
            raise WikituneError(f"model: {self.model} does not exist (a local model directory, an HF id or tiny-gpt-oss)")
        if self.tiny and self.model != TINY:
            raise WikituneError(f"tiny: sizes of tiny-gpt-oss were given but model is {self.model!r}")
        for path in self.sft_replay:
            if path == ORGANISM:
                continue
            if not Path(path).is_file():
                raise WikituneError(f"sft_replay: {path} is not a QA file (a JSONL of QA records, or organism)")
            formats.read_qa_file(path)  # SFT's own reader: a bad record is found now, not after training
        for spec in self.eval_sets:
            if not spec.startswith("qa:"):
                load_qa_spec(spec)  # a missing file or a bad record: found now, not after training


    def run_names(self) -> list[str]:
        """Every model the study can evaluate: the built-in runs, then each recipe (and its -sft)."""
        names = list(RUN_NAMES)
        for name, recipe in self.recipes.items():
            names += [name, f"{name}-sft"] if recipe.sft else [name]
        return names


def load_study_config(path: str | Path | None, overrides: list[str] | None = None) -> StudyConfig:
    """The study: `path` (None: the demo study) updated by `key=value` overrides, checked whole.

    Raises:
        WikituneError: one line naming the bad key or value (see the module docstring).
    """
    return load_config(StudyConfig, demo_study_path() if path is None else path, overrides)
