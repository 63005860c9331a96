"""The study config is checked whole at load: one line naming the key, nothing written, no stage run."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO
from wikitune.errors import WikituneError
from wikitune.study.config import load_study_config
from wikitune.study.stages import build_stages, run_study


def _load_and_plan(tmp_path: Path, *overrides: str):
    cfg = load_study_config(None, [f"output_dir={tmp_path / 'study'}", *overrides])
    return build_stages(cfg)


@pytest.mark.parametrize("override, named", [
    ("sft.learnig_rate=1e-3", "sft.learnig_rate"),             # a typo in a section
    ("cpt.lora.rank=8", "cpt.lora.rank"),                       # a typo in a nested section
    ("eval.generation.max_new_token=8", "eval.generation.max_new_token"),
    ("qa.test_fractoin=0.3", "qa.test_fractoin"),
    ("sedd=1", "sedd"),                                         # a typo at the top level
    ("cpt.epochs=many", "cpt.epochs"),                          # wrong type
    ("sft.batch_size=2.5", "sft.batch_size"),
    ("heldout_fraction=1.5", "heldout_fraction"),               # impossible value
    ("cpt.learning_rate=.nan", "cpt.learning_rate"),            # not a finite number
    ("sft.learning_rate=.inf", "sft.learning_rate"),
    ("source.dump=/no/such/dump.xml.bz2", "source.dump"),       # missing input
    ("source.expect=/no/such/titles.txt", "source.expect"),
    ("tokenizer=/no/such/tokenizer", "tokenizer"),
    ("eval_sets=[qa:tests.jsonl]", "qa:tests.jsonl"),            # a QA file the qa stage does not write
    ("eval_sets=[jsquad:/no/such/file.json]", "/no/such/file.json"),
    ("runs=[base, cpt-ssft]", "cpt-ssft"),                      # a run that does not exist
    ("cpt.corpus=elsewhere", "cpt.corpus"),                     # a section setting what the study decides
    ("eval.heldout_fraction=0.3", "eval.heldout_fraction"),
    ("sft.seed=7", "sft.seed"),
    ("recipes={mix: {data: [{corpus: study}, {augment: fatcs}]}}", "fatcs"),   # a recipe reading an augmentation that does not exist
    ("recipes={mix: {data: [{qa: test}]}}", "qa: train"),                      # evaluation questions are never trained on
    ("recipes={mix: {data: [{corpus: study}], ordr: qa-first}}", "recipes.mix.ordr"),
    ("recipes={raw-cpt: {}}", "recipes.raw-cpt"),
    ("runs=[base, fact-cpt]", "fact-cpt"),                                    # a run naming a recipe that does not exist
])
def test_a_bad_setting_is_one_line_naming_the_key(tmp_path, override, named):
    with pytest.raises(WikituneError) as err:
        _load_and_plan(tmp_path, override)
    message = str(err.value)
    assert named in message and "\n" not in message
    assert not (tmp_path / "study").exists()


def test_run_with_a_typo_fails_before_any_stage(tmp_path):
    out = tmp_path / "X"
    result = subprocess.run([sys.executable, "-m", "wikitune.cli", "run", "sft.learnig_rate=1e-3", "--out", str(out)],
                            cwd=REPO, capture_output=True, text=True)
    assert result.returncode == 2
    assert "sft.learnig_rate" in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert not out.exists()  # no X/corpus, no study.yaml: nothing ran, nothing was written


def test_run_study_checks_every_stage_before_writing(tmp_path):
    cfg = load_study_config(None, [f"output_dir={tmp_path / 'study'}"])
    cfg.sft = {**cfg.sft, "learning_rate": "fast"}  # as if edited after loading: run_study checks again
    with pytest.raises(WikituneError, match="sft.learning_rate"):
        run_study(cfg)
    assert not (tmp_path / "study").exists()


def test_one_heldout_fraction_reaches_every_stage(tmp_path):
    # a random tiny-gpt-oss: the study trains its tokenizer too
    stages = {s.name: s for s in _load_and_plan(tmp_path, "heldout_fraction=0.2", "model=tiny-gpt-oss")}
    fractions = {name: s.config["heldout_fraction"] for name, s in stages.items() if "heldout_fraction" in s.config}
    # qa, the tokenizer, CPT and every evaluation (perplexity on the held-out articles) read the study's value
    assert set(fractions) >= {"qa", "tokenizer", "raw-cpt", "eval-base", "eval-raw-cpt", "eval-rag"}
    assert set(fractions.values()) == {0.2}


def test_demo_settings_come_from_the_yaml_not_from_code(tmp_path):
    stages = {s.name: s for s in _load_and_plan(tmp_path)}
    assert stages["raw-cpt"].config["epochs"] == 30 and stages["raw-cpt"].config["optim"] == "adamw_torch"
    assert stages["raw-cpt"].config["model"].endswith("data/organism/model")  # `model: organism`, the shipped base
    stages = {s.name: s for s in _load_and_plan(tmp_path, "cpt.epochs=2")}
    assert stages["raw-cpt"].config["epochs"] == 2


def test_a_recipe_adds_its_stages_in_order(tmp_path):
    stages = _load_and_plan(tmp_path, "augment={facts: {method: facts, k: 2}}",
                            "recipes={facts-cpt: {data: [{corpus: study}, {augment: facts, fraction: 0.5}], cpt: {epochs: 3}}}",
                            "runs=[base, raw-cpt, facts-cpt, facts-cpt-sft]")
    by_name = {s.name: s for s in stages}
    assert [s.name for s in stages] == ["corpus", "qa", "raw-cpt", "augment-facts", "facts-cpt", "facts-cpt-sft",
                                        "eval-base", "eval-raw-cpt", "eval-facts-cpt", "eval-facts-cpt-sft"]
    assert by_name["facts-cpt"].deps == ["corpus", "augment-facts"]
    assert by_name["facts-cpt"].config["epochs"] == 3 and by_name["raw-cpt"].config["epochs"] == 30
    assert by_name["facts-cpt"].config["data"][1] == {"augment": "$STUDY/augment-facts/documents", "fraction": 0.5}
    assert by_name["eval-facts-cpt-sft"].config["adapter"] == "$STUDY/facts-cpt-sft"


def test_organism_in_a_recipe_is_the_shipped_text_and_qa_of_the_base_model(tmp_path):
    from wikitune.gptoss.model import organism_dir

    stages = {s.name: s for s in _load_and_plan(
        tmp_path, "recipes={keep: {data: [{corpus: study}, {replay: organism, fraction: 0.25}, {qa: organism}]}}",
        "runs=[base, keep]")}
    assert stages["keep"].config["data"][1:] == [
        {"replay": str(organism_dir() / "general.jsonl"), "fraction": 0.25},
        {"qa": str(organism_dir() / "qa_train.jsonl"), "format": "harmony"}]
    assert stages["keep"].deps == ["corpus"]  # the organism's QA is shipped: no dependency on the study's qa stage
    with_train = {s.name: s for s in _load_and_plan(tmp_path, "recipes={pit: {data: [{corpus: study}, {qa: train}]}}",
                                                     "runs=[base, pit]")}
    assert with_train["pit"].config["data"][1] == {"qa": "$STUDY/qa/train.jsonl", "format": "harmony"}
    assert with_train["pit"].deps == ["corpus", "qa"]


def test_sft_replay_mixes_the_organisms_qa_into_every_sft_run(tmp_path):
    from wikitune.gptoss.model import organism_dir

    stages = {s.name: s for s in _load_and_plan(tmp_path, "sft_replay=[organism]", "runs=[sft-only, raw-cpt-sft, pit-cpt-sft]")}
    sft_runs = [name for name in stages if not name.startswith("eval-") and (name.endswith("-sft") or name == "sft-only")]
    assert sorted(sft_runs) == ["pit-cpt-sft", "raw-cpt-sft", "sft-only"]
    for name in sft_runs:
        assert stages[name].config["qa"] == ["$STUDY/qa/train.jsonl", str(organism_dir() / "qa_train.jsonl")], name
    plain = {s.name: s for s in _load_and_plan(tmp_path, "sft_replay=[]", "runs=[sft-only]")}
    assert plain["sft-only"].config["qa"] == "$STUDY/qa/train.jsonl"
    with pytest.raises(WikituneError, match="sft_replay: /no/such.jsonl is not a QA file"):
        _load_and_plan(tmp_path, "sft_replay=[/no/such.jsonl]")
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"question": "no answer"}\n', encoding="utf-8")
    with pytest.raises(WikituneError, match="bad.jsonl"):  # a malformed record: refused at load, before training
        _load_and_plan(tmp_path, f"sft_replay=[{bad}]")
