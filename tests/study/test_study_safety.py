"""Study, training and evaluation directories: owned, locked against a second writer (real processes)."""

from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO
from tests.test_outputs import hold
from wikitune.config import load_config
from wikitune.errors import WikituneError
from wikitune.evaluate.run import QAEvalConfig, run_eval
from wikitune.outputs import OutputLocked
from wikitune.study.config import load_study_config
from wikitune.study.stages import run_study
from wikitune.train.cpt import CPTConfig, run_cpt


def _held_by_another_process(target: Path):
    proc = hold(target)
    assert proc.stdout.readline() == "held\n"
    return proc


def test_a_second_run_into_a_study_stops_naming_the_holder(tmp_path):
    study = tmp_path / "S"
    proc = _held_by_another_process(study)
    try:
        result = subprocess.run([sys.executable, "-m", "wikitune.cli", "run", "--out", str(study)],
                                cwd=REPO, capture_output=True, text=True)
    finally:
        proc.communicate("")
    assert result.returncode == 2
    assert f"pid {proc.pid} on {socket.gethostname()}" in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert not study.exists()  # nothing was written by the refused run


def test_a_study_never_writes_into_a_foreign_directory(tmp_path):
    study = tmp_path / "S"
    study.mkdir()
    (study / "mine.txt").write_text("mine", encoding="utf-8")
    with pytest.raises(WikituneError, match="not a wikitune study"):
        run_study(load_study_config(None, [f"output_dir={study}"]))
    assert sorted(p.name for p in study.iterdir()) == ["mine.txt"]


def test_a_training_run_into_a_locked_directory_stops_at_once(tmp_path):
    run = tmp_path / "run"
    proc = _held_by_another_process(run)
    try:
        with pytest.raises(OutputLocked, match=f"pid {proc.pid}"):
            run_cpt(load_config(CPTConfig, None, [f"output_dir={run}", "corpus=/nonexistent", "max_steps=1"]))
    finally:
        proc.communicate("")
    assert not run.exists()


def test_training_refuses_a_foreign_directory(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    (run / "notes.txt").write_text("mine", encoding="utf-8")
    with pytest.raises(WikituneError, match="holds no wikitune run"):
        run_cpt(load_config(CPTConfig, None, [f"output_dir={run}", "corpus=/nonexistent", "max_steps=1"]))
    assert sorted(p.name for p in run.iterdir()) == ["notes.txt"]


def test_an_eval_into_a_locked_or_foreign_directory_stops(tmp_path):
    out = tmp_path / "eval"
    cfg = QAEvalConfig(output_dir=str(out), qa=["builtin:seed"])
    proc = _held_by_another_process(out)
    try:
        with pytest.raises(OutputLocked, match=f"pid {proc.pid}"):
            run_eval(cfg)
    finally:
        proc.communicate("")
    out.mkdir()
    (out / "metrics.jsonl").write_text("{}\n", encoding="utf-8")
    with pytest.raises(WikituneError, match="holds a training run"):
        run_eval(cfg)
