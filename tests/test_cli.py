"""The command line: the commands exist, and bad input is one line on stderr and exit status 2."""

from __future__ import annotations

import subprocess
import sys

import pytest

# Commands of the contract (shared DESIGN.md) that exist so far. A later stage adds its name here.
COMMANDS = ["extract", "crawl", "corpus", "qa", "eval", "compare", "serve", "cpt", "sft", "merge", "run", "report", "organism"]


def wikitune(*args: str, cwd=None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "wikitune.cli", *args], capture_output=True, text=True, cwd=cwd)


def test_help_lists_every_command():
    result = wikitune("--help")
    assert result.returncode == 0
    for command in COMMANDS:
        assert command in result.stdout
    assert "stats" in wikitune("corpus", "--help").stdout


def test_version():
    from wikitune import __version__

    assert wikitune("--version").stdout.strip() == f"wikitune {__version__}"


@pytest.mark.parametrize(
    "args, message",
    [
        (["extract", "no-such-dump.xml", "--out", "{tmp}/c"], "no such file"),
        (["extract", "demo", "--out", "{tmp}/c", "--depth", "-1"], "--depth must be 0 or more"),
        (["extract", "demo", "--out", "{tmp}/c", "--exclude", "("], "not a valid regex"),
        (["extract", "demo", "--out", "{tmp}/c", "--linktarget", "x.sql"], "only make sense with --categorylinks"),
        (["corpus", "stats", "{tmp}"], "has no manifest.json"),
        (["organism", "base", "--out", "{tmp}/o", "--epochs", "0"], "epochs must be 1 or more"),
        (["crawl", "--root", "X", "--out", "{tmp}/c", "--depth", "-1"], "--depth must be 0 or more"),
        (["crawl", "--root", "X", "--out", "{tmp}/c", "--api", "ftp://x"], "not an http(s) URL"),
        (["crawl", "--root", "X", "--out", "{tmp}/c", "--api", "http://127.0.0.1:9/api.php", "--max-retries", "0"], "failed after 1 try"),
    ],
)
def test_bad_input_is_one_line_and_status_2(tmp_path, args, message):
    result = wikitune(*[a.format(tmp=tmp_path) for a in args])
    assert result.returncode == 2
    assert message in result.stderr
    assert result.stderr.startswith("error: ") and result.stderr.count("\n") == 1
    assert "Traceback" not in result.stderr


def test_usage_error_is_not_a_traceback():
    result = wikitune("extract")
    assert result.returncode == 2 and "Traceback" not in result.stderr and "Missing argument" in result.stderr


@pytest.mark.parametrize("rank, printed", [(None, True), ("0", True), ("1", False)])
def test_a_training_result_line_is_printed_by_the_main_process_only(tmp_path, monkeypatch, capsys, rank, printed):
    import json

    from wikitune.cli import _echo_train_line

    # what `accelerate launch` sets per process; a lone process has no RANK
    if rank is None:
        monkeypatch.delenv("RANK", raising=False)
    else:
        monkeypatch.setenv("RANK", rank)
    if printed:  # the others never read summary.json (rank 0 may not have written it yet)
        (tmp_path / "summary.json").write_text(json.dumps({"steps": 4, "first_loss": 7.5, "final_loss": 6.25}))
    _echo_train_line(tmp_path)
    out = capsys.readouterr().out
    assert out == (f"{tmp_path}: 4 steps, loss 7.5000 -> 6.2500\n" if printed else "")
