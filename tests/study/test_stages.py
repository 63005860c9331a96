"""`wikitune run` end to end at a reduced size: artifacts, report = summaries, caching, resume after a kill."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import REPO
from wikitune.study.config import RUN_NAMES as ALL_RUNS, StudyConfig, load_study_config
from wikitune.study.stages import build_stages, run_study
from wikitune.config import write_config
from wikitune.train.runtime import last_complete_checkpoint

pytestmark = pytest.mark.slow

# The demo, shrunk: a few optimizer steps and short answers; every stage and artifact is real.
SMALL = ["cpt.max_steps=4", "cpt.eval_steps=2", "cpt.save_steps=2", "cpt.logging_steps=1",
         "sft.max_steps=4", "sft.eval_steps=2", "sft.save_steps=2", "sft.logging_steps=1",
         "eval.generation.max_new_tokens=12",
         "eval_sets=[qa:test.jsonl:6, qa:unseen.jsonl:4@anime-unseen, builtin:control:6]",
         # the demo's runs and sft-only (every built-in run, every kind of recipe source)
         "runs=[base, raw-cpt, raw-cpt-sft, sft-only, facts-cpt, pit-cpt, pit-replay-cpt, pit-replay-cpt-sft, rag]"]


def small_config(out: Path, *extra: str) -> StudyConfig:
    return load_study_config(None, [f"output_dir={out}", *SMALL, *extra])


def quiet(_message: str) -> None:
    pass


@pytest.fixture(scope="module")
def study(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("study") / "demo"
    results, _ = run_study(small_config(out), progress=quiet)
    assert all(r.status == "ran" for r in results.values())
    return out


def test_every_artifact_exists(study):
    for name in ["corpus/manifest.json", "corpus/stats.json", "qa/train.jsonl", "qa/test.jsonl", "qa/unseen.jsonl",
                 "raw-cpt/adapter", "raw-cpt/metrics.jsonl", "raw-cpt/lora_coverage.json",
                 "raw-cpt-sft/adapter", "sft-only/adapter", "report/index.html", "report/report.md", "study.yaml"]:
        assert (study / name).exists(), name
    for run in ALL_RUNS:
        assert (study / f"eval-{run}" / "summary.json").is_file() and (study / f"eval-{run}" / "results.jsonl").is_file()
    assert not list(study.glob("*.partial"))
    # the demo source is recorded by name, not as the package's file path
    assert json.loads((study / "corpus" / "manifest.json").read_text(encoding="utf-8"))["source"] == "demo"
    stats = json.loads((study / "corpus" / "stats.json").read_text(encoding="utf-8"))
    assert {m["title"] for m in stats["expect"]["missing"]} >= {"早乙女ひかり", "汐見市"}  # the coverage gap, reported


def test_report_numbers_equal_the_summaries(study):
    md = (study / "report" / "report.md").read_text(encoding="utf-8")
    findings = md[md.index("## Findings"):md.index("## Results")]
    assert "rests on one seed (42)" in findings  # a one-seed study says so under its findings
    table = md[md.index("### Scores by run and domain"):].split("\n\n")[1]  # the table, up to its blank line
    header = next(line for line in table.splitlines() if line.startswith("| run |"))
    columns = [c.strip() for c in header.strip("|").split("|")]
    rows = {line.split("|")[1].strip(): [c.strip() for c in line.strip().strip("|").split("|")]
            for line in table.splitlines()[2:] if line.startswith("| eval-")}
    assert set(rows) == {f"eval-{r}" for r in small_config(study).runs}  # the study's runs, recipes included
    checked = 0
    for run, cells in rows.items():
        summary = json.loads((study / run / "summary.json").read_text(encoding="utf-8"))
        for column, cell in zip(columns[1:], cells[1:]):
            domain, score = column.rsplit(" ", 1)
            s = summary["domains"].get(domain, {}).get("scores", {}).get(score)
            if s is None:
                assert cell == "–"
                continue
            match = re.match(r"([\d.]+) \[([\d.]+), ([\d.]+)\]", cell)
            assert match, (run, column, cell)
            mean, low, high = map(float, match.groups())
            assert (mean, low, high) == (round(s["mean"], 3), round(s["ci95"][0], 3), round(s["ci95"][1], 3))
            checked += 1
    assert checked >= 20
    ppl = {run: json.loads((study / f"eval-{run}" / "summary.json").read_text())["perplexity"] for run in ("base", "raw-cpt")}
    assert all(ppl.values())  # held-out perplexity of base vs CPT is measured


def test_second_run_does_no_work(study):
    results, _ = run_study(small_config(study), progress=quiet)
    assert {r.status for r in results.values()} == {"cached"}


def test_changed_sft_setting_reruns_sft_and_its_evaluations_only(study, tmp_path):
    copy = tmp_path / "demo"
    shutil.copytree(study, copy)
    results, _ = run_study(small_config(copy, "sft.learning_rate=0.001"), progress=quiet)
    ran = {name for name, r in results.items() if r.status == "ran"}
    # every SFT (each recipe of the demo has one too) and their evaluations; no CPT, no other evaluation
    sft_runs = {"raw-cpt-sft", "sft-only", "pit-replay-cpt-sft"}
    assert sft_runs == {run for run in small_config(copy).runs if run.endswith("-sft") or run == "sft-only"}
    assert ran == sft_runs | {f"eval-{run}" for run in sft_runs}


def test_stage_list_follows_the_config(tmp_path):
    names = [s.name for s in build_stages(small_config(tmp_path, "runs=[base, rag]"))]
    assert names == ["corpus", "qa", "eval-base", "eval-rag"]
    names = [s.name for s in build_stages(small_config(tmp_path, "runs=[base, rag]", "model=tiny-gpt-oss"))]
    assert names == ["corpus", "qa", "tokenizer", "eval-base", "eval-rag"]  # a random tiny model gets a BPE


def test_killed_run_resumes(tmp_path):
    out = tmp_path / "demo"
    config = tmp_path / "study.yaml"
    write_config(small_config(out, "cpt.max_steps=40", "cpt.save_steps=5", "runs=[base, raw-cpt]"), config)
    cmd = [sys.executable, "-m", "wikitune.cli", "run", "--config", str(config)]
    proc = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        deadline = time.monotonic() + 300
        # Kill it once CPT has written a checkpoint: mid-stage, with earlier stages finished.
        while last_complete_checkpoint(out / "raw-cpt.partial") is None:
            assert proc.poll() is None, "the run ended before it could be killed"
            assert time.monotonic() < deadline
            time.sleep(0.2)
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert not (out / "raw-cpt").exists() and (out / "corpus" / ".stage.json").exists()
    result = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "corpus: up to date" in result.stderr and "raw-cpt: running" in result.stderr
    summary = json.loads((out / "raw-cpt" / "summary.json").read_text())
    assert summary["resumed_from"] and summary["steps"] == 40
    assert (out / "report" / "index.html").is_file()


STUDY_CONFIGS = sorted((REPO / "configs").glob("*/study*.yaml"))


@pytest.mark.parametrize("path", STUDY_CONFIGS, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_study_configs_load_and_name_their_command(path, tmp_path):
    assert path.read_text(encoding="utf-8").startswith(f"# wikitune run --config configs/{path.parent.name}/{path.name}")
    # The real study reads a dump and QA files that a fresh clone does not have: stand-ins with
    # the same names prove every other setting is valid for its stage.
    overrides = [f"output_dir={tmp_path / 'study'}"]
    import yaml

    raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    if raw["source"].get("dump", "demo") != "demo":
        dump = tmp_path / "dump.xml"
        dump.write_text("<mediawiki/>", encoding="utf-8")
        overrides.append(f"source.dump={dump}")
    if any(not spec.startswith(("qa:", "builtin:")) for spec in raw.get("eval_sets", [])):
        overrides.append("eval_sets=[qa:test.jsonl, builtin:seed]")
    cfg = load_study_config(path, overrides)
    stages = {s.name: s for s in build_stages(cfg)}  # builds every stage's config: unknown keys are errors
    assert [s for s in stages if s.startswith("eval-")] == [f"eval-{r}" for r in cfg.runs]


def test_tiny_study_config_is_the_default_demo():
    assert load_study_config(None) == load_study_config(REPO / "configs" / "tiny" / "study.yaml")
    assert (REPO / "src" / "wikitune" / "data" / "demo_study.yaml").resolve() == (REPO / "configs" / "tiny" / "study.yaml").resolve()


def test_a_facts_recipe_is_trained_and_compared_with_raw_cpt(tmp_path):
    out = tmp_path / "study"
    cfg = small_config(out, "augment={facts: {method: facts, k: 2}}",
                       "recipes={facts-cpt: {data: [{corpus: study}, {augment: facts, fraction: 0.5}], sft: false}}",
                       "runs=[base, raw-cpt, facts-cpt]")
    results, _ = run_study(cfg, progress=quiet)
    assert {"augment-facts", "facts-cpt", "eval-facts-cpt"} <= {name for name, r in results.items() if r.status == "ran"}
    summary = json.loads((out / "facts-cpt" / "summary.json").read_text(encoding="utf-8"))
    shares = {s["source"]: s["share"] for s in summary["sources"]}
    assert abs(shares["augment"] - 0.5) < 0.2  # the declared mixture, within a few blocks of this small corpus
    data = json.loads((out / "report" / "results.json").read_text(encoding="utf-8"))
    pairs = {(r["run"], r["vs"]) for r in data["rows"] if r["metric"] == "exact_match" and r["domain"] == "anime"}
    assert {("facts-cpt", None), ("facts-cpt", "base"), ("facts-cpt", "raw-cpt"), ("raw-cpt", "base")} <= pairs


def test_several_seeds_run_apart_and_report_together(tmp_path):
    import jsonschema

    from wikitune import formats

    out = tmp_path / "study"
    results, report = run_study(small_config(out, "seeds=[1, 2]", "runs=[base, raw-cpt]"), progress=quiet)
    assert {name.split("/")[0] for name in results} == {"seed-1", "seed-2"}
    for seed in (1, 2):
        assert (out / f"seed-{seed}" / "report" / "results.json").is_file()
        assert "seed: %d" % seed in (out / f"seed-{seed}" / "study.yaml").read_text(encoding="utf-8")
    a = (out / "seed-1" / "raw-cpt" / "adapter" / "adapter_model.safetensors").read_bytes()
    b = (out / "seed-2" / "raw-cpt" / "adapter" / "adapter_model.safetensors").read_bytes()
    assert a != b  # the seed reaches training
    pooled = json.loads((out / "report" / "results.json").read_text(encoding="utf-8"))
    jsonschema.validate(pooled, formats.schema("comparison"))
    one = json.loads((out / "seed-1" / "report" / "results.json").read_text(encoding="utf-8"))
    n = {(r["run"], r["vs"], r["domain"], r["metric"]): r["n"] for r in one["rows"]}
    for r in pooled["rows"]:  # pooled rows cover both seeds' questions
        assert r["n"] == 2 * n[(r["run"], r["vs"], r["domain"], r["metric"])]
    md = (out / "report" / "report.md").read_text(encoding="utf-8")
    assert "## Findings" in md and "seed-1" in md and "seed-2" in md and report == out / "report" / "index.html"
