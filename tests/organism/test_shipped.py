"""The organism shipped in the package (src/wikitune/data/organism, the demo's base model) is what
`bash scripts/build_organism.sh` builds: its recorded settings are BaseConfig's defaults, its world
files are the ones those settings generate, its model has the recorded sizes, it fits the 5 MB
budget, and it answers as the manifest says it was trained to: in the final channel, the control
facts it only read."""

from __future__ import annotations

import dataclasses
import json

from wikitune.formats import read_qa_file
from wikitune.gptoss.harmony import HARMONY_WORDS
from wikitune.gptoss.model import ORGANISM, load_model_and_tokenizer, organism_dir, resolve_model
from wikitune.organism.base import MANIFEST, BaseConfig, answer_scores
from wikitune.organism.world import CONTROL, GENERAL, QA_TRAIN, WORLD, generate_world, write_world
from wikitune.qa.loaders import load_qa_spec

SHIPPED = organism_dir()
BUDGET_BYTES = 5 * 1024 * 1024


def _manifest() -> dict:
    return json.loads((SHIPPED / MANIFEST).read_text(encoding="utf-8"))


def test_the_shipped_settings_are_the_build_scripts():
    recorded = _manifest()["config"]
    expected = json.loads(json.dumps(dataclasses.asdict(BaseConfig(out=recorded["out"]))))
    assert recorded == expected, "data/organism is stale: rebuild it with `bash scripts/build_organism.sh`"


def test_the_shipped_world_is_the_one_the_settings_generate(tmp_path):
    cfg = BaseConfig(out=str(tmp_path))
    written = write_world(generate_world(cfg.world), tmp_path / "world")
    for name in (WORLD, GENERAL, QA_TRAIN, CONTROL):
        assert (SHIPPED / name).read_bytes() == written[name].read_bytes(), name


def test_the_shipped_model_has_the_recorded_sizes_and_fits_the_budget():
    manifest = _manifest()
    model, tokenizer = load_model_and_tokenizer(resolve_model(ORGANISM))
    tiny = manifest["config"]["tiny"]
    assert model.num_parameters() == manifest["parameters"]
    assert (model.config.hidden_size, model.config.num_hidden_layers, model.config.num_local_experts) == (
        tiny["hidden_size"], tiny["num_hidden_layers"], tiny["num_local_experts"])
    # the BPE stops short of its budget when no merge is left worth making
    assert model.config.vocab_size == len(tokenizer) <= manifest["config"]["vocab_size"]
    assert all(len(tokenizer(w, add_special_tokens=False)["input_ids"]) == 1 for w in HARMONY_WORDS)
    # a value read in a description is the same tokens as the value answered (the BPE splits scripts)
    for entity in (json.loads(line) for line in (SHIPPED / WORLD).read_text(encoding="utf-8").splitlines()):
        for fact in entity["facts"]:
            alone = tokenizer(fact["value"], add_special_tokens=False)["input_ids"]
            text = tokenizer(f"{entity['name']}の{fact['value']}である。", add_special_tokens=False)["input_ids"]
            assert any(text[i:i + len(alone)] == alone for i in range(len(text))), fact
    size = sum(f.stat().st_size for f in SHIPPED.rglob("*") if f.is_file())
    assert size <= BUDGET_BYTES, f"data/organism is {size / 2**20:.1f} MB, over the 5 MB budget"


def test_the_shipped_base_model_answers_in_the_final_channel_as_the_build_measured():
    """Every answer in the final channel; the QA it trained on answered (the model knows the world
    it was taught), and the control set (facts of entities it only read about) scored exactly as
    the build measured and recorded in manifest.json: the figure the README reports."""
    manifest = _manifest()
    items = load_qa_spec("builtin:control")
    assert {i.domain for i in items} == {"control"} and len(items) == manifest["control"]
    model, tokenizer = load_model_and_tokenizer(resolve_model(ORGANISM))
    cfg = BaseConfig(out=manifest["config"]["out"])
    control = answer_scores(model, tokenizer, items, cfg)
    assert control == manifest["control_scores"] and control["final_channel"] == 1.0
    assert control["exact_match"] >= 0.8  # the organism's goal: it answers about facts it only read
    trained = answer_scores(model, tokenizer, read_qa_file(SHIPPED / QA_TRAIN), cfg)
    assert trained == manifest["qa_train_scores"] and trained["exact_match"] >= 0.95
