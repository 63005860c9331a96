"""`wikitune augment` on the command line: the demo end to end, and bad input as one line with status 2."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from wikitune import formats


def wikitune(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "wikitune.cli", *args], capture_output=True, text=True)


def test_help_lists_augment():
    assert "augment" in wikitune("--help").stdout
    help_text = wikitune("augment", "--help").stdout
    for flag in ("--out", "--method", "--k", "--seed", "--heldout-fraction", "--exclude-qa", "--base-url", "--model",
                 "--concurrency", "--max-tokens-total", "--temperature", "--triples"):
        assert flag in help_text


def test_augment_the_demo(demo_corpus, demo_qa, tmp_path):
    out = tmp_path / "aug"
    result = wikitune("augment", str(demo_corpus), "--out", str(out), "--method", "facts", "--k", "3", "--seed", "7",
                      "--exclude-qa", str(demo_qa / formats.QA_TEST), "--exclude-qa", str(demo_qa / formats.QA_UNSEEN))
    assert result.returncode == 0, result.stderr
    m = json.loads((out / formats.AUG_MANIFEST).read_text(encoding="utf-8"))
    assert (m["k"], m["seed"], m["exclude_qa"]) == (3, 7, [str(demo_qa / formats.QA_TEST), str(demo_qa / formats.QA_UNSEEN)])
    assert result.stdout.strip() == (
        f"{out}: {m['documents']} documents, {m['facts']} facts of {m['articles']} articles, {m['tokens']} characters "
        f"(rejected: excluded_fact {m['rejected']['excluded_fact']}, multi_valued 4)")
    assert len(formats.read_documents(out)) == m["documents"] == 3 * m["articles"]


@pytest.mark.parametrize("args, message", [
    (["{tmp}/missing", "--out", "{tmp}/aug", "--method", "facts"], "has no articles.jsonl"),
    (["{corpus}", "--out", "{tmp}/aug", "--method", "facts", "--k", "0"], "must be an integer of 1 or more, got 0"),
    (["{corpus}", "--out", "{tmp}/aug", "--method", "summary"], "unknown augmentation method 'summary'"),
    (["{corpus}", "--out", "{tmp}/aug", "--method", "entigraph"], "needs --base-url"),
    (["{corpus}", "--out", "{tmp}/aug", "--method", "qa", "--base-url", "http://127.0.0.1:9/v1", "--model", "m",
      "--concurrency", "0"], "concurrency must be 1 or more"),
    (["{corpus}", "--out", "{tmp}/aug", "--method", "facts", "--heldout-fraction", "1"], "held-out fraction must be in [0, 1)"),
    (["{corpus}", "--out", "{tmp}/aug", "--method", "facts", "--exclude-qa", "{tmp}/no.jsonl"], "no.jsonl does not exist"),
])
def test_bad_input_is_one_line_and_status_2(demo_corpus, tmp_path, args, message):
    result = wikitune("augment", *[a.format(tmp=tmp_path, corpus=demo_corpus) for a in args])
    assert result.returncode == 2
    assert result.stderr.startswith("error: ") and result.stderr.count("\n") == 1, result.stderr
    assert message in result.stderr
    assert not (tmp_path / "aug").exists()
