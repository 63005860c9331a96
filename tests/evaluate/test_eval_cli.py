"""The eval/compare/serve commands: bad input is one line on stderr and exit status 2."""

import subprocess
import sys

import pytest

from wikitune.corpus.extract import ExtractConfig, run_extract
from wikitune.gptoss.model import train_bpe_tokenizer


def wikitune(*args):
    return subprocess.run([sys.executable, "-m", "wikitune.cli", *args], capture_output=True, text=True)


@pytest.mark.parametrize(
    "args, message",
    [
        (["eval", "--qa", "builtin:seed", "--out", "{tmp}/r", "nope=1"], "unknown config key(s) nope"),
        (["eval", "--qa", "{tmp}/missing.jsonl", "--out", "{tmp}/r"], "does not exist"),
        (["eval", "--backend", "openai", "--qa", "builtin:seed"], "needs base_url"),
        (["eval", "--config", "{tmp}/none.yaml"], "does not exist"),
        (["compare", "{tmp}"], "results.jsonl does not exist"),
        (["serve", "--model", "tiny-gpt-oss", "--port", "0"], "--port must be"),
        (["qa", "build", "{tmp}", "--out", "{tmp}/qa"], "has no articles.jsonl"),
    ],
)
def test_bad_input_is_one_line(tmp_path, args, message):
    result = wikitune(*[a.format(tmp=tmp_path) for a in args])
    assert result.returncode == 2, result.stderr
    assert message in result.stderr and result.stderr.startswith("error: ") and result.stderr.count("\n") == 1


@pytest.mark.slow
def test_serve_command_answers_over_http(tmp_path):
    """`wikitune serve` as a user starts it: a subprocess on a loopback port, answering /v1/chat/completions."""
    import json
    import socket
    import time

    import httpx

    corpus = run_extract(ExtractConfig(dump="demo", out=tmp_path / "corpus")).out
    texts = [json.loads(line)["text"] for line in (corpus / "articles.jsonl").read_text(encoding="utf-8").splitlines()]
    train_bpe_tokenizer(texts, 2000, tmp_path / "tok")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen([sys.executable, "-m", "wikitune.cli", "serve", "--model", "tiny-gpt-oss", "--tokenizer", str(tmp_path / "tok"),
                             "--port", str(port), "--max-new-tokens", "8"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                httpx.get(f"http://127.0.0.1:{port}/v1/models", timeout=2)
                break
            except httpx.HTTPError:
                assert proc.poll() is None, proc.stderr.read()
                assert time.monotonic() < deadline, "wikitune serve did not come up"
                time.sleep(0.3)
        reply = httpx.post(f"http://127.0.0.1:{port}/v1/chat/completions", timeout=60,
                           json={"model": "tiny-gpt-oss", "messages": [{"role": "user", "content": "銀魂で、桂小太郎のあだ名は？"}]}).json()
        assert reply["object"] == "chat.completion" and 0 < reply["usage"]["completion_tokens"] <= 8
    finally:
        proc.terminate()
        proc.wait(timeout=30)
