"""`wikitune run`: the whole study in one command, with every stage cached.

    wikitune run                                   # the CPU demo into runs/demo (minutes)
    wikitune run --config configs/gpt-oss-20b/study.yaml
    wikitune run --config study.yaml sft.learning_rate=1e-4 --force cpt

Stages, each a directory of the study (see `wikitune.study.cache` for the caching rules):

    corpus       extract (or crawl) the source; `stats.json` with the missing expected titles
    qa           QA pairs from the corpus: train.jsonl, test.jsonl, unseen.jsonl
    tokenizer    tiny-gpt-oss only: a byte-level BPE trained on the training articles
    cpt          continued pre-training (LoRA) on the corpus
    cpt-sft      SFT on top of the CPT adapter
    sft-only     SFT from the base model: the control that isolates what CPT added
    eval-base, eval-cpt, eval-sft-only, eval-cpt-sft, eval-rag
                 the QA sets answered by each model (eval-rag: the base model with BM25 passages);
                 eval-base and eval-cpt also measure perplexity on the held-out articles
    report       report/index.html and report/report.md, rebuilt from the artifacts every time

Every stage's settings come from one YAML (`StudyConfig`); a key changed there reruns that stage
and everything downstream of it, and nothing else.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from wikitune.errors import WikituneError
from wikitune.study.cache import Stage, StageResult, Study
from wikitune.config import merge_dicts

log = logging.getLogger(__name__)

TINY = "tiny-gpt-oss"
ALL_RUNS = ["base", "cpt", "sft-only", "cpt-sft", "rag"]

# Settings of the CPU demo's training stages: a random tiny model needs a large learning rate and
# many passes over the small corpus before CPT+SFT answers better than SFT alone (under 2 minutes on 2 idle cores).
TINY_CPT = {"block_size": 256, "epochs": 60, "batch_size": 8, "learning_rate": 3e-3, "warmup": 0.05,
            "optim": "adamw_torch", "logging_steps": 5, "eval_steps": 25, "save_steps": 25}
TINY_SFT = {"epochs": 30, "batch_size": 8, "learning_rate": 3e-3, "optim": "adamw_torch", "logging_steps": 5,
            "eval_steps": 25, "save_steps": 25, "reasoning_effort": "low", "developer_prompt": None}
TINY_EVAL = {"prompt": {"format": "chat_template", "reasoning_effort": "low"},
             "generation": {"max_new_tokens": 64, "batch_size": 8, "temperature": 0.0, "loop_guard": True}}


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


@dataclass
class StudyConfig:
    """One study: corpus → QA → CPT → SFT → evaluation → report."""

    output_dir: str = "runs/demo"
    """The study directory; each stage writes a subdirectory."""
    seed: int = 42
    """Seed of training and sampling."""
    source: SourceSettings = field(default_factory=SourceSettings)
    """The corpus source."""
    heldout_fraction: float = 0.1
    """Share of articles never trained on (shared by qa, cpt and the perplexity measurement)."""
    model: str = TINY
    """`tiny-gpt-oss`, an HF id or a local path."""
    tokenizer: str | None = None
    """Tokenizer directory; None: tiny-gpt-oss trains a BPE on the corpus, other models use their own."""
    tokenizer_vocab_size: int = 2000
    """Vocabulary of the BPE trained for tiny-gpt-oss."""
    tiny: dict = field(default_factory=lambda: {"num_hidden_layers": 2, "hidden_size": 64, "num_local_experts": 4,
                                                "num_experts_per_tok": 2})
    """Sizes of tiny-gpt-oss (wikitune.gptoss.model.TinyGptOssConfig fields; others keep their defaults)."""
    qa: dict = field(default_factory=dict)
    """`qa build` settings (QABuildConfig fields except corpus/out)."""
    cpt: dict = field(default_factory=dict)
    """CPT settings (CPTConfig fields); the tiny demo's defaults apply first for tiny-gpt-oss."""
    sft: dict = field(default_factory=dict)
    """SFT settings (SFTConfig fields), used by both cpt-sft and sft-only."""
    eval: dict = field(default_factory=dict)
    """Evaluation settings (QAEvalConfig fields), used by every eval run."""
    eval_sets: list[str] = field(default_factory=lambda: ["qa:test.jsonl", "qa:unseen.jsonl@anime-unseen", "builtin:seed"])
    """QA specs; `qa:NAME` is a file of the study's qa stage. Others as `wikitune eval --qa`."""
    runs: list[str] = field(default_factory=lambda: list(ALL_RUNS))
    """Which models to evaluate: base, cpt, sft-only, cpt-sft, rag."""

    def __post_init__(self) -> None:
        unknown = [r for r in self.runs if r not in ALL_RUNS]
        if unknown:
            raise WikituneError(f"runs: unknown {unknown[0]!r}; choose from {', '.join(ALL_RUNS)}")
        if not 0.0 < self.heldout_fraction < 1.0:
            raise WikituneError(f"heldout_fraction must be in (0, 1), got {self.heldout_fraction}")


def load_study_config(path: str | Path | None, overrides: list[str] | None = None) -> StudyConfig:
    from wikitune.config import load_config

    return load_config(StudyConfig, path, overrides)


def _file_fingerprint(path: str | None) -> dict[str, Any] | None:
    """Content hash of an input file, so that editing it reruns the stages that read it."""
    if not path or path == "demo":
        return None
    p = Path(path)
    if not p.is_file():
        raise WikituneError(f"{path}: no such file")
    digest = hashlib.sha256()
    with open(p, "rb") as f:
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


def build_stages(cfg: StudyConfig) -> list[Stage]:
    """The study's stages, in order, each with the settings that determine its output."""
    root = Path(cfg.output_dir).resolve()
    stages = _stages(cfg, root)
    for stage in stages:
        stage.config = _portable(stage.config, root)
    return stages


def _stages(cfg: StudyConfig, root: Path) -> list[Stage]:
    src = cfg.source
    is_tiny = cfg.model == TINY
    expect = src.expect
    if expect is None and src.kind == "extract" and src.dump == "demo":
        from importlib import resources

        expect = str(resources.files("wikitune") / "data" / "demo_expect.txt")
    stages: list[Stage] = []

    # ---- corpus ---------------------------------------------------------------------------------
    def corpus(out: Path, resume: bool) -> None:
        from wikitune.corpus.stats import corpus_stats

        if src.kind == "extract":
            from wikitune.corpus.extract import ExtractConfig, run_extract

            run_extract(ExtractConfig(dump=src.dump, out=out, roots=list(src.roots), depth=src.depth, exclude=list(src.exclude)))
        else:
            from wikitune.corpus.crawl import CrawlConfig, run_crawl

            run_crawl(CrawlConfig(roots=list(src.roots), out=out, api=src.api, depth=src.depth,
                                  exclude=list(src.exclude), contact=src.contact))
        stats = corpus_stats(out, expect=Path(expect) if expect else None)
        (out / "stats.json").write_text(json.dumps(stats, ensure_ascii=False, indent=2), encoding="utf-8")

    stages.append(Stage("corpus", corpus, {"source": dataclasses.asdict(src), "dump": _file_fingerprint(src.dump if src.kind == "extract" else None),
                                           "expect": _file_fingerprint(expect)}))

    # ---- QA -------------------------------------------------------------------------------------
    qa_settings = {"heldout_fraction": cfg.heldout_fraction, **cfg.qa}

    def qa(out: Path, resume: bool) -> None:
        from wikitune.qa.build import QABuildConfig, run_qa_build
        from wikitune.config import build

        run_qa_build(build(QABuildConfig, {**qa_settings, "corpus": str(root / "corpus"), "out": str(out)}))

    stages.append(Stage("qa", qa, qa_settings, deps=["corpus"]))

    # ---- tokenizer (tiny only) --------------------------------------------------------------------
    tokenizer = cfg.tokenizer
    model_deps: list[str] = []
    if tokenizer is None and is_tiny:
        tokenizer = str(root / "tokenizer")
        model_deps = ["tokenizer"]

        def train_tokenizer(out: Path, resume: bool) -> None:
            from wikitune.gptoss.model import train_bpe_tokenizer
            from wikitune.train.data import read_articles, split_articles

            train, _heldout = split_articles(read_articles(root / "corpus"), cfg.heldout_fraction)
            train_bpe_tokenizer([a["text"] for a in train], cfg.tokenizer_vocab_size, out)

        stages.append(Stage("tokenizer", train_tokenizer, {"vocab_size": cfg.tokenizer_vocab_size,
                                                           "heldout_fraction": cfg.heldout_fraction}, deps=["corpus"]))
    model_settings = {"model": cfg.model, "tokenizer": tokenizer, **({"tiny": cfg.tiny} if is_tiny else {})}

    # ---- training -------------------------------------------------------------------------------
    def trainer(kind: str, settings: dict) -> Callable[[Path, bool], None]:
        def run(out: Path, resume: bool) -> None:
            from wikitune.config import build
            from wikitune.train.runtime import last_complete_checkpoint

            checkpoint = resume and last_complete_checkpoint(out) is not None
            data = {**settings, "output_dir": str(out), "resume": checkpoint, "overwrite": not checkpoint}
            if kind == "cpt":
                from wikitune.train.cpt import CPTConfig, run_cpt

                run_cpt(build(CPTConfig, data))
            else:
                from wikitune.train.sft import SFTConfig, run_sft

                run_sft(build(SFTConfig, data))
        return run

    want = set(cfg.runs)
    cpt_settings = merge_dicts(merge_dicts(TINY_CPT if is_tiny else {}, cfg.cpt),
                          {**model_settings, "corpus": str(root / "corpus"), "heldout_fraction": cfg.heldout_fraction, "seed": cfg.seed})
    if want & {"cpt", "cpt-sft"}:
        stages.append(Stage("cpt", trainer("cpt", cpt_settings), cpt_settings, deps=["corpus", *model_deps]))
    sft_base = merge_dicts(merge_dicts(TINY_SFT if is_tiny else {}, cfg.sft),
                      {**model_settings, "qa": str(root / "qa" / "train.jsonl"), "eval_qa": str(root / "qa" / "test.jsonl"), "seed": cfg.seed})
    if "cpt-sft" in want:
        settings = {**sft_base, "adapter": str(root / "cpt")}
        stages.append(Stage("cpt-sft", trainer("sft", settings), settings, deps=["qa", "cpt", *model_deps]))
    if "sft-only" in want:
        settings = {**sft_base, "adapter": None}
        stages.append(Stage("sft-only", trainer("sft", settings), settings, deps=["qa", *model_deps]))

    # ---- evaluation -----------------------------------------------------------------------------
    sets = [str(root / "qa" / spec[3:]) if spec.startswith("qa:") else spec for spec in cfg.eval_sets]
    eval_base = merge_dicts(merge_dicts(TINY_EVAL if is_tiny else {}, cfg.eval),
                       {**model_settings, "qa": sets, "corpus": str(root / "corpus"), "seed": cfg.seed})
    adapters = {"base": None, "cpt": "cpt", "sft-only": "sft-only", "cpt-sft": "cpt-sft", "rag": None}
    for run_name in ALL_RUNS:
        if run_name not in want:
            continue
        adapter = adapters[run_name]
        settings = {**eval_base, "adapter": str(root / adapter) if adapter else None,
                    "mode": "rag" if run_name == "rag" else "closed",
                    # held-out perplexity: did CPT make unseen articles of the domain more predictable?
                    "perplexity": run_name in ("base", "cpt")}

        def evaluate(out: Path, resume: bool, settings: dict = settings) -> None:
            from wikitune.evaluate.run import QAEvalConfig, run_eval
            from wikitune.config import build

            run_eval(build(QAEvalConfig, {**settings, "output_dir": str(out), "resume": True}))

        deps = ["qa", "corpus", *model_deps] + ([adapter] if adapter else [])
        stages.append(Stage(f"eval-{run_name}", evaluate, settings, deps=deps))
    return stages


def run_study(cfg: StudyConfig, force: list[str] | None = None, progress: Callable[[str], None] | None = None) -> tuple[dict[str, StageResult], Path]:
    """Run (or reuse) every stage, then write the report. Returns the stage results and the report path."""
    from wikitune.study.report import write_report

    root = Path(cfg.output_dir)
    root.mkdir(parents=True, exist_ok=True)
    from wikitune.config import write_config

    write_config(cfg, root / "study.yaml")
    say = progress or (lambda message: print(message, file=sys.stderr, flush=True))
    results = Study(root, progress=say).run(build_stages(cfg), force=force or [])
    say("report: writing")
    report = write_report(root)
    say(f"report: {report}")
    return results, report
