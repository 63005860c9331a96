"""`wikitune run`: the whole study in one command, with every stage cached.

    wikitune run                                   # the CPU demo into runs/demo (minutes)
    wikitune run --config configs/gpt-oss-20b/study.yaml
    wikitune run --config study.yaml sft.learning_rate=1e-4 --force cpt

Stages, each a directory of the study (see `wikitune.study.cache` for the caching rules):

    corpus       extract (or crawl) the source; `stats.json` with the missing expected titles
    qa           QA pairs from the corpus: train.jsonl, test.jsonl, unseen.jsonl
    tokenizer    tiny-gpt-oss only: a byte-level BPE trained on the training articles
    cpt          continued pre-training (LoRA) on the corpus
    raw-cpt-sft  SFT on top of the raw CPT adapter
    sft-only     SFT from the base model: the control that isolates what CPT added
    eval-base, eval-raw-cpt, eval-sft-only, eval-raw-cpt-sft, eval-rag
                 the QA sets answered by each model (eval-rag: the base model with BM25 passages);
                 eval-base and eval-raw-cpt also measure perplexity on the held-out articles
    report       report/index.html and report/report.md, rebuilt from the artifacts every time

Every stage's settings come from one YAML (`StudyConfig`); a key changed there reruns that stage
and everything downstream of it, and nothing else.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import sys
from pathlib import Path
from typing import Any, Callable

from wikitune import formats
from wikitune.augment.run import AugmentConfig, run_augment
from wikitune.config import build, merge_dicts, write_config
from wikitune.corpus.crawl import CrawlConfig, run_crawl
from wikitune.corpus.extract import ExtractConfig, run_extract
from wikitune.corpus.stats import corpus_stats
from wikitune.errors import WikituneError
from wikitune.evaluate.run import QAEvalConfig, run_eval
from wikitune.formats import read_articles
from wikitune.gptoss.model import ORGANISM, TINY, organism_dir, resolve_model, train_bpe_tokenizer
from wikitune.organism.world import GENERAL, QA_TRAIN
from wikitune.outputs import OutputLock, check_owned, stamp
from wikitune.qa.build import QABuildConfig, run_qa_build
from wikitune.split import split_articles
from wikitune.study.cache import Stage, StageResult, Study
from wikitune.study.config import StudyConfig
from wikitune.study.report import write_report, write_seeds_report
from wikitune.train.cpt import CPTConfig, run_cpt
from wikitune.train.runtime import last_complete_checkpoint
from wikitune.train.sft import SFTConfig, run_sft

# The code behind each kind of stage (`Stage.code`): its stage key covers these modules and every
# wikitune module they import, so an edit to training code reruns training and its evaluations,
# and an edit to the report reruns nothing but the report (which is rebuilt every time).
CODE = {
    "corpus": ["wikitune.corpus.extract", "wikitune.corpus.crawl", "wikitune.corpus.stats"],
    "qa": ["wikitune.qa.build"],
    "tokenizer": ["wikitune.gptoss.model", "wikitune.split", "wikitune.formats"],
    "cpt": ["wikitune.train.cpt"],
    "sft": ["wikitune.train.sft"],
    "eval": ["wikitune.evaluate.run"],
    "augment": ["wikitune.augment.run"],
}

_QA_FILES = (formats.QA_TRAIN, formats.QA_TEST, formats.QA_UNSEEN)
STUDY_KIND = "study"
STUDY_CONFIG = "study.yaml"


def _file_fingerprint(path: Path | None) -> dict[str, Any] | None:
    """Content hash of an input file, so that editing it reruns the stages that read it."""
    if path is None:
        return None
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return {"sha256": digest.hexdigest()}  # the content, not the path: a moved file is the same input


def _portable(value: Any, root: Path) -> Any:
    """Settings with the study's own path written as `$STUDY`: a moved study keeps its cache."""
    if isinstance(value, str) and value.startswith(str(root)):
        return "$STUDY" + value[len(str(root)):]
    if isinstance(value, dict):
        return {k: _portable(v, root) for k, v in value.items()}
    if isinstance(value, list):
        return [_portable(v, root) for v in value]
    return value


def _section(cls: type, name: str, section: dict[str, Any], study_set: dict[str, Any]) -> Any:
    """Build stage config `cls` from a study section plus what the study sets; one-line errors name `name.key`."""
    clash = sorted(set(section) & set(study_set))
    if clash:
        raise WikituneError(f"{name}.{clash[0]} is set by the study for every stage; set it at the top level of the "
                            f"study (or drop it): {name} may not set {', '.join(clash)}")
    return build(cls, {**section, **study_set}, where=name)


def _qa_spec(root: Path, spec: str) -> str:
    """`qa:NAME[:N][@DOMAIN]` -> the path of the study's QA file NAME; other specs unchanged."""
    if not spec.startswith("qa:"):
        return spec
    rest = spec[3:]
    name = rest.split("@", 1)[0].split(":", 1)[0]
    if name not in _QA_FILES:
        raise WikituneError(f"eval_sets: {spec}: the qa stage writes {', '.join(_QA_FILES)}, not {name!r}")
    return str(root / "qa" / rest)


def build_stages(cfg: StudyConfig) -> list[Stage]:
    """The study's stages, in order, each with its typed settings and everything that determines
    its output. Builds every stage's config now: a bad setting fails here, before anything runs.

    Raises:
        WikituneError: a setting a stage config rejects (unknown key, wrong type, impossible value).
    """
    root = Path(cfg.output_dir).resolve()
    stages = _stages(cfg, root)
    for stage in stages:
        stage.config = _portable(stage.config, root)
    return stages


def _stages(cfg: StudyConfig, root: Path) -> list[Stage]:
    src = cfg.source
    is_tiny = cfg.model == TINY
    stages: list[Stage] = []

    # ---- corpus ---------------------------------------------------------------------------------
    expect = src.expect_path()

    def corpus(out: Path, resume: bool) -> None:
        if src.kind == "extract":
            run_extract(ExtractConfig(dump=src.dump, out=out, roots=list(src.roots), depth=src.depth,
                                      exclude=list(src.exclude)))
        else:
            # A stage handed back its partial directory (resume) continues the crawl; a fresh one starts over.
            run_crawl(CrawlConfig(roots=list(src.roots), out=out, api=src.api, depth=src.depth,
                                  exclude=list(src.exclude), contact=src.contact, restart=not resume))
        formats.write_json(out / "stats.json", corpus_stats(out, expect=expect))

    stages.append(Stage("corpus", corpus, {"source": dataclasses.asdict(src), "dump": _file_fingerprint(src.dump_path()),
                                           "expect": _file_fingerprint(expect)}, code=CODE["corpus"]))

    # ---- QA -------------------------------------------------------------------------------------
    qa_cfg = _section(QABuildConfig, "qa", cfg.qa, {"corpus": str(root / "corpus"), "out": str(root / "qa"),
                                                    "heldout_fraction": cfg.heldout_fraction})

    def qa(out: Path, resume: bool) -> None:
        run_qa_build(dataclasses.replace(qa_cfg, out=out))

    stages.append(Stage("qa", qa, _settings(qa_cfg, drop=("corpus", "out")), deps=["corpus"], code=CODE["qa"]))

    # ---- tokenizer (tiny only) --------------------------------------------------------------------
    tokenizer = cfg.tokenizer
    model_deps: list[str] = []
    if tokenizer is None and is_tiny:
        tokenizer = str(root / "tokenizer")
        model_deps = ["tokenizer"]

        def train_tokenizer(out: Path, resume: bool) -> None:
            train, _heldout = split_articles(read_articles(root / "corpus"), cfg.heldout_fraction)
            train_bpe_tokenizer([a["text"] for a in train], cfg.tokenizer_vocab_size, out)

        stages.append(Stage("tokenizer", train_tokenizer, {"vocab_size": cfg.tokenizer_vocab_size,
                                                           "heldout_fraction": cfg.heldout_fraction},
                            deps=["corpus"], code=CODE["tokenizer"]))
    model_settings: dict[str, Any] = {"model": resolve_model(cfg.model), "tokenizer": tokenizer, "seed": cfg.seed}
    if is_tiny:
        model_settings["tiny"] = cfg.tiny

    # ---- training -------------------------------------------------------------------------------
    def trainer(kind: str, settings: Any) -> Callable[[Path, bool], None]:
        def run(out: Path, resume: bool) -> None:
            checkpoint = resume and last_complete_checkpoint(out) is not None
            run_cfg = dataclasses.replace(settings, output_dir=str(out), resume=checkpoint, overwrite=not checkpoint)
            (run_cpt if kind == "cpt" else run_sft)(run_cfg)
        return run

    want = set(cfg.runs)
    cpt_cfg = _section(CPTConfig, "cpt", cfg.cpt, {**model_settings, "corpus": str(root / "corpus"),
                                                   "heldout_fraction": cfg.heldout_fraction})
    if want & {"raw-cpt", "raw-cpt-sft"}:
        stages.append(Stage("raw-cpt", trainer("cpt", cpt_cfg), _settings(cpt_cfg), deps=["corpus", *model_deps], code=CODE["cpt"]))
    replay_qa = [_organism_or(path, QA_TRAIN) for path in cfg.sft_replay]
    study_qa = str(root / "qa" / formats.QA_TRAIN)
    sft_study = {**model_settings, "qa": [study_qa, *replay_qa] if replay_qa else study_qa,
                 "eval_qa": str(root / "qa" / formats.QA_TEST)}
    for name, adapter, deps in (("raw-cpt-sft", str(root / "raw-cpt"), ["qa", "raw-cpt"]), ("sft-only", None, ["qa"])):
        sft_cfg = _section(SFTConfig, "sft", cfg.sft, {**sft_study, "adapter": adapter})
        if name in want:
            stages.append(Stage(name, trainer("sft", sft_cfg), _settings(sft_cfg), deps=[*deps, *model_deps], code=CODE["sft"]))

    # ---- knowledge-injection recipes: augmentation stages, then CPT on a mixture (+ SFT) ----------
    recipe_runs = {name: recipe for name, recipe in cfg.recipes.items() if {name, f"{name}-sft"} & want}
    needed = {ref for recipe in recipe_runs.values() for ref in recipe.references()["augment"]}
    for aug_name in cfg.augment:
        aug_cfg = _section(AugmentConfig, f"augment.{aug_name}", cfg.augment[aug_name], {
            "corpus": str(root / "corpus"), "out": str(root / f"augment-{aug_name}"),
            "heldout_fraction": cfg.heldout_fraction, "seed": cfg.seed})
        if aug_name not in needed:
            continue

        def augment(out: Path, resume: bool, aug_cfg: AugmentConfig = aug_cfg) -> None:
            # run_augment writes beside its `out` and swaps it in: give it a directory of its own.
            run_augment(dataclasses.replace(aug_cfg, out=out / "documents"))

        stages.append(Stage(f"augment-{aug_name}", augment, _settings(aug_cfg, drop=("corpus", "out")),
                            deps=["corpus"], code=CODE["augment"]))
    for name, recipe in recipe_runs.items():
        data = [_recipe_source(root, source) for source in recipe.data]
        cpt_recipe = _section(CPTConfig, f"recipes.{name}.cpt", merge_dicts(cfg.cpt, recipe.cpt), {
            **model_settings, "corpus": None, "data": data, "order": recipe.order, "heldout_fraction": cfg.heldout_fraction})
        refs = recipe.references()
        deps = ["corpus", *(f"augment-{a}" for a in refs["augment"]), *(["qa"] if refs["qa"] else []), *model_deps]
        stages.append(Stage(name, trainer("cpt", cpt_recipe), _settings(cpt_recipe), deps=deps, code=CODE["cpt"]))
        if recipe.sft and f"{name}-sft" in want:
            sft_cfg = _section(SFTConfig, "sft", cfg.sft, {**sft_study, "adapter": str(root / name)})
            stages.append(Stage(f"{name}-sft", trainer("sft", sft_cfg), _settings(sft_cfg), deps=["qa", name, *model_deps],
                                code=CODE["sft"]))

    # ---- evaluation -----------------------------------------------------------------------------
    sets = [_qa_spec(root, spec) for spec in cfg.eval_sets]
    evaluations: dict[str, Stage] = {}
    for run_name in cfg.run_names():  # every run's eval config is built (checked), those in `runs` are staged
        adapter = None if run_name in ("base", "rag") else run_name  # every other run is a training stage of that name
        eval_cfg = _section(QAEvalConfig, "eval", cfg.eval, {
            **model_settings, "qa": sets, "corpus": str(root / "corpus"), "heldout_fraction": cfg.heldout_fraction,
            "adapter": str(root / adapter) if adapter else None, "mode": "rag" if run_name == "rag" else "closed",
            # held-out perplexity: did CPT make unseen articles of the domain more predictable?
            "perplexity": run_name in ("base", "raw-cpt", *cfg.recipes), "resume": True})
        if run_name not in want:
            continue

        def evaluate(out: Path, resume: bool, eval_cfg: QAEvalConfig = eval_cfg) -> None:
            run_eval(dataclasses.replace(eval_cfg, output_dir=str(out)))

        deps = ["qa", "corpus", *model_deps] + ([adapter] if adapter else [])
        evaluations[run_name] = Stage(f"eval-{run_name}", evaluate, _settings(eval_cfg), deps=deps, code=CODE["eval"])
    stages += [evaluations[run_name] for run_name in cfg.runs]  # in the order the study lists them
    return stages


def _recipe_source(root: Path, source: dict[str, Any]) -> dict[str, Any]:
    """A recipe's source with the study's outputs as paths (`{augment: facts}` -> its documents)."""
    source = dict(source)
    if "corpus" in source:
        source["corpus"] = str(root / "corpus")
    elif "augment" in source:
        source["augment"] = str(root / f"augment-{source['augment']}" / "documents")
    elif "qa" in source:
        source["qa"] = str(root / "qa" / formats.QA_TRAIN) if source["qa"] == "train" else _organism_or(source["qa"], QA_TRAIN)
        source.setdefault("format", "harmony")
    elif "replay" in source:
        source["replay"] = _organism_or(source["replay"], GENERAL)
    return source


def _organism_or(value: str, file: str) -> str:
    """`organism` -> the path of `file` of the shipped organism (GENERAL: the text its base model
    learnt; QA_TRAIN: the QA it was taught); any other value, a path, unchanged."""
    return str(organism_dir() / file) if value == ORGANISM else value


def _settings(stage_cfg: Any, drop: tuple[str, ...] = ()) -> dict[str, Any]:
    """A stage config as the JSON-able settings that key its cache (paths of its own output left out:
    the stage writes wherever the study puts it)."""
    data = json.loads(json.dumps(dataclasses.asdict(stage_cfg), default=str))
    for key in ("output_dir", "resume", "overwrite", *drop):
        data.pop(key, None)
    return data


def run_study(cfg: StudyConfig, force: list[str] | None = None, progress: Callable[[str], None] | None = None) -> tuple[dict[str, StageResult], Path]:
    """Run (or reuse) every stage, then write the report. Returns the stage results and the report path.

    Every stage's settings are checked before anything is written (see `build_stages`).
    """
    if cfg.seeds:
        return _run_seeds(cfg, force, progress)
    stages = build_stages(cfg)
    root = Path(cfg.output_dir)
    # A study directory is ours if its manifest says so (or, made before manifests, it has study.yaml).
    if not (root / STUDY_CONFIG).is_file():
        check_owned(root, STUDY_KIND, manifest=formats.MANIFEST)
    with OutputLock(root):  # a second `wikitune run` into this study stops at once, naming this one
        root.mkdir(parents=True, exist_ok=True)
        formats.write_json(root / formats.MANIFEST, stamp({"output_dir": str(root)}, STUDY_KIND))
        write_config(cfg, root / STUDY_CONFIG)
        say = progress or (lambda message: print(message, file=sys.stderr, flush=True))
        results = Study(root, progress=say).run(stages, force=force or [])
        say("report: writing")
        report = write_report(root)
        say(f"report: {report}")
    return results, report


def seed_studies(cfg: StudyConfig) -> list[StudyConfig]:
    """One study per seed of `cfg.seeds`, each in `STUDY/seed-N/` (checked like any study)."""
    root = Path(cfg.output_dir)
    return [dataclasses.replace(cfg, seed=seed, seeds=[], output_dir=str(root / f"seed-{seed}")) for seed in cfg.seeds]


def _run_seeds(cfg: StudyConfig, force: list[str] | None, progress: Callable[[str], None] | None) -> tuple[dict[str, StageResult], Path]:
    per_seed = seed_studies(cfg)
    for one in per_seed:
        build_stages(one)  # every seed's study is valid before any runs
    root = Path(cfg.output_dir)
    if not (root / STUDY_CONFIG).is_file():
        check_owned(root, STUDY_KIND, manifest=formats.MANIFEST)
    say = progress or (lambda message: print(message, file=sys.stderr, flush=True))
    results: dict[str, StageResult] = {}
    with OutputLock(root):
        root.mkdir(parents=True, exist_ok=True)
        formats.write_json(root / formats.MANIFEST, stamp({"output_dir": str(root), "seeds": cfg.seeds}, STUDY_KIND))
        write_config(cfg, root / STUDY_CONFIG)
        for one in per_seed:
            say(f"seed {one.seed}: {one.output_dir}")
            seed_results, _ = run_study(one, force, progress)
            results.update({f"seed-{one.seed}/{name}": r for name, r in seed_results.items()})
        say("report: writing (all seeds)")
        report = write_seeds_report(root, [Path(one.output_dir) for one in per_seed])
        say(f"report: {report}")
    return results, report
