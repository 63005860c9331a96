"""Several processes: `accelerate launch` of `wikitune cpt` as two CPU processes (gloo) with the
shipped configs/accelerate/ddp.yaml trains as one process does with the same global batch, and
only one of them writes the run's files."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from tests.train.conftest import FAST
from wikitune.config import load_config
from wikitune.train.cpt import CPTConfig, run_cpt
from wikitune.train.runtime import processes_on_cpu

REPO = Path(__file__).resolve().parents[2]
ACCELERATE = Path(sys.executable).parent / "accelerate"
# No dropout: its masks depend on where a row lands, which differs between the two layouts.
SAME = [*FAST, "max_steps=4", "learning_rate=1e-2", "heldout_fraction=0", "lora.dropout=0", "save_steps=100"]
GLOBAL_BATCH = 4


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def train_records(run: Path) -> list[dict]:
    return [r for r in map(json.loads, (run / "metrics.jsonl").read_text().splitlines()) if "loss" in r]


@pytest.mark.slow
def test_two_cpu_processes_train_as_one_with_the_same_global_batch(tmp_path, repeated_corpus):
    one = run_cpt(load_config(CPTConfig, None, [f"corpus={repeated_corpus}", f"output_dir={tmp_path / 'one'}", *SAME,
                                                f"batch_size={GLOBAL_BATCH}"]))
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": "", "OMP_NUM_THREADS": "1"}
    done = subprocess.run(
        [str(ACCELERATE), "launch", "--config_file", str(REPO / "configs" / "accelerate" / "ddp.yaml"),
         "--num_processes", "2", "--mixed_precision", "no", "--main_process_port", str(free_port()),
         "-m", "wikitune.cli", "cpt", f"corpus={repeated_corpus}", f"output_dir={tmp_path / 'two'}", *SAME,
         f"batch_size={GLOBAL_BATCH // 2}"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    two = tmp_path / "two"

    alone, together = train_records(one), train_records(two)
    # one writer: each step once (two independent processes would each append theirs)
    assert [r["step"] for r in together] == [r["step"] for r in alone] == [1, 2, 3, 4]
    assert [r["loss"] for r in together] == pytest.approx([r["loss"] for r in alone], rel=1e-4)
    assert [r["grad_norm"] for r in together] == pytest.approx([r["grad_norm"] for r in alone], rel=1e-3)
    assert [r["tokens"] for r in together] == [r["tokens"] for r in alone] == [s * GLOBAL_BATCH * 32 for s in (1, 2, 3, 4)]

    summary = json.loads((two / "summary.json").read_text())
    assert summary["steps"] == 4 and summary["tokens"] == 4 * GLOBAL_BATCH * 32
    # the adapter saved is the one both processes trained: equal to the single process's
    a, b = (load_file(run / "adapter" / "adapter_model.safetensors") for run in (one, two))
    assert a.keys() == b.keys() and a
    for name in a:
        torch.testing.assert_close(b[name], a[name], rtol=1e-3, atol=1e-5, msg=name)


def test_several_processes_without_a_gpu_are_told_to_use_the_cpu(monkeypatch):
    monkeypatch.delenv("ACCELERATE_USE_CPU", raising=False)
    monkeypatch.setenv("WORLD_SIZE", "1")
    assert not processes_on_cpu()
    monkeypatch.setenv("WORLD_SIZE", "2")
    assert processes_on_cpu() is (not torch.cuda.is_available())
    monkeypatch.setenv("ACCELERATE_USE_CPU", "true")
    assert processes_on_cpu()
