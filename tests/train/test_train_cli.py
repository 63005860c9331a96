"""`wikitune cpt/sft/merge` on the command line: config + key=value overrides, --resume, errors."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def wikitune(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "wikitune.cli", *args], capture_output=True, text=True, cwd=REPO)


@pytest.mark.parametrize("args, message", [
    (["cpt", "--config", "configs/tiny/cpt.yaml", "nope=1"], "unknown config key(s) nope"),
    (["cpt", "--config", "configs/tiny/cpt.yaml", "lora.r=x"], "lora.r must be an integer"),
    (["sft", "--config", "configs/tiny/sft.yaml", "reasoning_effort=max"], "reasoning_effort must be one of"),
    (["cpt", "--config", "no/such.yaml"], "config no/such.yaml does not exist"),
    (["merge", "{tmp}", "--out", "{tmp}/m"], "holds no PEFT adapter"),
])
def test_bad_input_is_one_line_and_status_2(tmp_path, args, message):
    result = wikitune(*[a.format(tmp=tmp_path) for a in args])
    assert result.returncode == 2, result.stderr[-2000:]
    assert result.stderr.startswith("error: ") and result.stderr.count("\n") == 1, result.stderr[-2000:]
    assert message in result.stderr


@pytest.mark.slow
def test_cpt_resume_and_merge_from_the_command_line(tmp_path, demo_corpus):
    run = tmp_path / "run"
    common = ["--config", "configs/tiny/cpt.yaml", f"corpus={demo_corpus}", f"output_dir={run}",
              "block_size=32", "batch_size=2", "save_steps=2", "eval_steps=2", "plot=false"]
    first = wikitune("cpt", *common, "max_steps=2")
    assert first.returncode == 0, first.stderr[-3000:]
    assert f"{run}: 2 steps" in first.stdout and "mlp.experts.gate_up_proj" in first.stdout
    again = wikitune("cpt", *common, "max_steps=4", "--resume")
    assert again.returncode == 0, again.stderr[-3000:]
    summary = json.loads((run / "summary.json").read_text())
    assert summary["steps"] == 4 and summary["resumed_from"].endswith("checkpoint-2")
    merged = wikitune("merge", str(run), "--out", str(tmp_path / "merged"))
    assert merged.returncode == 0, merged.stderr[-3000:]
    assert (tmp_path / "merged" / "config.json").is_file()
