"""`report_to: tensorboard`: a real run's event files in RUN/tensorboard hold the losses that
metrics.jsonl holds; other names, and tensorboard without its package, are one-line errors."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.train.conftest import FAST
from wikitune.config import load_config
from wikitune.errors import WikituneError
from wikitune.formats import read_metrics
from wikitune.train.cpt import CPTConfig, run_cpt


def test_tensorboard_event_files_hold_the_logged_losses(tmp_path, repeated_corpus):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    cfg = load_config(CPTConfig, None, [f"corpus={repeated_corpus}", f"output_dir={tmp_path}/run", *FAST,
                                        "report_to=tensorboard", "max_steps=5", "logging_steps=2", "eval_steps=4",
                                        "save_steps=100", "heldout_fraction=0.3"])
    run = run_cpt(cfg)

    events = EventAccumulator(str(run / "tensorboard"))
    events.Reload()
    logged = read_metrics(run)
    train = [(r["step"], r["loss"]) for r in logged if "loss" in r]
    evals = [(r["step"], r["eval_loss"]) for r in logged if "eval_loss" in r]
    assert [s for s, _ in train] == [1, 2, 4] and [s for s, _ in evals] == [4, 5]  # first step, every 2nd; eval at 4 and the end
    for tag, expected in (("train/loss", train), ("eval/loss", evals)):
        scalars = [(e.step, e.value) for e in events.Scalars(tag)]
        assert [s for s, _ in scalars] == [s for s, _ in expected], tag
        # TensorBoard keeps float32: equal to the float64 in metrics.jsonl to float32 precision
        assert [v for _, v in scalars] == pytest.approx([v for _, v in expected], rel=1e-6), tag
    assert not (run / "checkpoints" / "runs").exists()  # transformers' own default place stays empty


def test_report_to_none_writes_no_event_files(tmp_path, repeated_corpus):
    cfg = load_config(CPTConfig, None, [f"corpus={repeated_corpus}", f"output_dir={tmp_path}/run", *FAST,
                                        "max_steps=1", "heldout_fraction=0"])
    run = run_cpt(cfg)
    assert cfg.report_targets() == [] and (run / "summary.json").is_file()
    assert not list(run.rglob("events.out.tfevents*"))


@pytest.mark.parametrize("value", ["wandb", "[none, tensorboard]", "[]"])
def test_other_report_targets_are_refused(value):
    with pytest.raises(WikituneError, match="report_to must be none or tensorboard"):
        load_config(CPTConfig, None, [f"report_to={value}"])


def test_tensorboard_without_its_package_names_the_install(monkeypatch):
    assert load_config(CPTConfig, None, ["report_to=[tensorboard]"]).report_targets() == ["tensorboard"]
    monkeypatch.setitem(sys.modules, "tensorboard", None)  # what the import system says when it is not installed
    with pytest.raises(WikituneError, match=r"pip install tensorboard"):
        load_config(CPTConfig, None, ["report_to=tensorboard"])


def test_the_cli_prints_one_line_and_exits_2(tmp_path):
    done = subprocess.run([sys.executable, "-m", "wikitune.cli", "cpt", "report_to=wandb", f"output_dir={tmp_path}/run"],
                          capture_output=True, text=True, cwd=tmp_path, timeout=300)
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == ["error: report_to must be none or tensorboard, got 'wandb'"]
    assert not (tmp_path / "run").exists()
