"""`extract` and `crawl` never lose a user's data: foreign directories, concurrent writers, bad
dumps and Ctrl-C, each tried with the real command in a real process."""

from __future__ import annotations

import bz2
import gzip
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import REPO
from tests.corpus.conftest import scaled_demo_dump
from wikitune.corpus.crawl import CrawlConfig, run_crawl
from wikitune.corpus.extract import demo_dump_path
from wikitune.errors import WikituneError


def wikitune(*args: str, **kw) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "wikitune.cli", *args], capture_output=True, text=True, cwd=REPO, **kw)


def start(*args: str) -> subprocess.Popen:
    # A session of its own: a signal to its process group reaches the workers too, as Ctrl-C does.
    return subprocess.Popen([sys.executable, "-m", "wikitune.cli", *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, cwd=REPO, start_new_session=True)


def snapshot(directory: Path) -> dict[str, bytes]:
    return {str(p.relative_to(directory)): p.read_bytes() for p in sorted(directory.rglob("*")) if p.is_file()}


def one_line_error(result: subprocess.CompletedProcess, *phrases: str) -> None:
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    for phrase in phrases:
        assert phrase in lines[0], lines[0]


def only_the_corpus_is_left(parent: Path, name: str = "X") -> None:
    """No partial output and no lock file beside the corpus."""
    assert sorted(p.name for p in parent.iterdir() if p.name.startswith(name)) == ([name] if (parent / name).exists() else [])


@pytest.fixture(scope="module")
def old_corpus(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("old") / "X"
    assert wikitune("extract", "demo", "--out", str(out), "--workers", "1").returncode == 0
    return out


def copy_of(corpus: Path, parent: Path) -> Path:
    subprocess.run(["cp", "-a", str(corpus), str(parent / "X")], check=True)
    return parent / "X"


# ---- 1. ownership --------------------------------------------------------------------------------
def test_a_directory_with_corpus_like_names_is_not_taken(tmp_path):
    (tmp_path / "X" / "text").mkdir(parents=True)
    (tmp_path / "X" / "text" / "mine.txt").write_text("mine\n")
    result = wikitune("extract", "demo", "--out", str(tmp_path / "X"))
    one_line_error(result, "is not empty and is not a wikitune corpus")
    assert snapshot(tmp_path / "X") == {"text/mine.txt": b"mine\n"}
    only_the_corpus_is_left(tmp_path)


def test_another_tools_manifest_is_untouched(tmp_path):
    (tmp_path / "X").mkdir()
    (tmp_path / "X" / "manifest.json").write_text('{"tool": "othertool", "kind": "corpus"}\n')
    (tmp_path / "X" / "articles.jsonl").write_text('{"theirs": true}\n')
    before = snapshot(tmp_path / "X")
    one_line_error(wikitune("extract", "demo", "--out", str(tmp_path / "X")), "no wikitune manifest.json")
    assert snapshot(tmp_path / "X") == before


def test_a_crawl_refuses_a_foreign_directory_before_any_request(tmp_path):
    (tmp_path / "X").mkdir()
    (tmp_path / "X" / "notes.txt").write_text("mine")
    with pytest.raises(WikituneError, match="is not empty and is not a wikitune corpus"):
        run_crawl(CrawlConfig(roots=["作品"], out=tmp_path / "X", api="http://127.0.0.1:9/api.php", max_retries=0))
    assert snapshot(tmp_path / "X") == {"notes.txt": b"mine"}
    only_the_corpus_is_left(tmp_path)


def test_a_rebuild_that_fails_midway_leaves_the_old_corpus_byte_identical(old_corpus, tmp_path):
    corpus = copy_of(old_corpus, tmp_path)
    before = snapshot(corpus)
    # The dump is read whole before the unknown root is noticed: the new corpus was under way.
    one_line_error(wikitune("extract", "demo", "--out", str(corpus), "--root", "存在しないカテゴリ"), "unknown category")
    assert snapshot(corpus) == before
    only_the_corpus_is_left(tmp_path)
    manifest = json.loads((corpus / "manifest.json").read_text())
    assert (manifest["tool"], manifest["kind"]) == ("wikitune", "corpus")


def test_a_rebuild_replaces_the_old_corpus(old_corpus, tmp_path):
    corpus = copy_of(old_corpus, tmp_path)
    (corpus / "report.md").write_text("written into the corpus by a later step")
    assert wikitune("extract", "demo", "--out", str(corpus), "--root", "アニメ関連企業", "--workers", "1").returncode == 0
    assert "report.md" not in snapshot(corpus)
    assert json.loads((corpus / "manifest.json").read_text())["roots"] == ["アニメ関連企業"]
    only_the_corpus_is_left(tmp_path)


# ---- 3. bad input --------------------------------------------------------------------------------
def _empty(src: Path) -> Path:
    (src / "empty.xml").write_bytes(b"")
    return src / "empty.xml"


def _notes(src: Path) -> Path:
    (src / "notes.txt").write_text("just some notes\n")
    return src / "notes.txt"


def _sql_gz(src: Path) -> Path:
    path = src / "jawiki-categorylinks.sql.gz"
    path.write_bytes(gzip.compress(b"-- MySQL dump 10.19\n\nDROP TABLE IF EXISTS `categorylinks`;\n"
                                   b"INSERT INTO `categorylinks` VALUES (1,'A','B');\n"))
    return path


def _directory(src: Path) -> Path:
    return src


@pytest.mark.parametrize("make, phrase", [(_empty, "is empty"), (_notes, "is not XML"), (_sql_gz, "is an SQL dump"),
                                          (_directory, "is a directory")], ids=["empty", "not-xml", "sql-gz", "directory"])
def test_a_dump_that_is_not_a_dump_is_an_error_and_replaces_nothing(old_corpus, tmp_path, make, phrase):
    corpus = copy_of(old_corpus, tmp_path)
    before = snapshot(corpus)
    src = tmp_path / "src"
    src.mkdir()
    one_line_error(wikitune("extract", str(make(src)), "--out", str(corpus)), phrase)
    assert snapshot(corpus) == before
    only_the_corpus_is_left(tmp_path)


def test_an_invalid_byte_skips_one_page_named_by_offset_and_title(tmp_path):
    data = demo_dump_path().read_bytes()
    at = data.index("<title>魔導探偵サクラ</title>".encode())
    page_start = data.rindex(b"<page>", 0, at)
    text_at = data.index(b"<text", at)
    data = data[:text_at] + b"<text>\xff" + data[text_at + len(b"<text"):]
    dump = tmp_path / "dump.xml.bz2"
    dump.write_bytes(bz2.compress(data))
    result = wikitune("extract", str(dump), "--out", str(tmp_path / "c"), "--workers", "1")
    assert result.returncode == 0, result.stderr
    assert f"'魔導探偵サクラ' at byte {page_start}" in result.stderr and "Traceback" not in result.stderr
    manifest = json.loads((tmp_path / "c" / "manifest.json").read_text())
    assert manifest["counts"]["skipped"]["unreadable"] == 1 and manifest["counts"]["truncated"] == 0
    assert manifest["unreadable_pages"][0]["byte_offset"] == page_start
    titles = [json.loads(line)["title"] for line in (tmp_path / "c" / "articles.jsonl").read_text().splitlines()]
    reference = wikitune("extract", "demo", "--out", str(tmp_path / "ref"), "--workers", "1")
    assert reference.returncode == 0
    expected = [json.loads(line)["title"] for line in (tmp_path / "ref" / "articles.jsonl").read_text().splitlines()]
    assert titles == [t for t in expected if t != "魔導探偵サクラ"]  # every page after it is still read


# ---- 2. locks and 4. Ctrl-C, on a dump big enough to still be running ---------------------------
@pytest.fixture(scope="module")
def big_dump(tmp_path_factory) -> Path:
    return scaled_demo_dump(tmp_path_factory.mktemp("big") / "big.xml", copies=60)


def wait_for(condition, proc: subprocess.Popen, what: str) -> None:
    deadline = time.monotonic() + 120  # a hang guard, not a performance threshold
    while not condition():
        if proc.poll() is not None:
            pytest.fail(f"the extract ended before {what}: {proc.communicate()}")
        if time.monotonic() > deadline:
            pytest.fail(f"never saw {what}")
        time.sleep(0.02)


def test_a_second_writer_exits_at_once_naming_the_holder_and_the_first_finishes(big_dump, tmp_path):
    out = tmp_path / "X"
    first = start("extract", str(big_dump), "--out", str(out), "--workers", "2")
    lock = tmp_path / "X.lock"

    def first_holds_the_lock() -> bool:
        try:
            return json.loads(lock.read_text())["pid"] == first.pid
        except (OSError, ValueError, KeyError):
            return False  # not there yet, or being written

    wait_for(first_holds_the_lock, first, "the first extract's lock")
    os.killpg(first.pid, signal.SIGSTOP)  # holds the lock for as long as the second one runs
    try:
        second = wikitune("extract", "demo", "--out", str(out), timeout=120)
    finally:
        os.killpg(first.pid, signal.SIGCONT)
    one_line_error(second, f"pid {first.pid} on {socket.gethostname()}", "is being written by another wikitune process")
    stdout, stderr = first.communicate(timeout=600)
    assert first.returncode == 0, stderr
    manifest = json.loads((out / "manifest.json").read_text())
    records = (out / "articles.jsonl").read_text().splitlines()
    assert manifest["counts"]["articles"] == len(records) == 60 * 45
    assert len(list((out / "text").iterdir())) == len(records)
    only_the_corpus_is_left(tmp_path)


def test_ctrl_c_stops_extract_and_the_rerun_works(big_dump, old_corpus, tmp_path):
    corpus = copy_of(old_corpus, tmp_path)
    before = snapshot(corpus)
    proc = start("extract", str(big_dump), "--out", str(corpus))  # default workers: one per core
    text = tmp_path / "X.partial" / "text"
    wait_for(lambda: text.is_dir() and any(text.iterdir()), proc, "articles being written")
    os.killpg(proc.pid, signal.SIGINT)  # what Ctrl-C in a terminal does
    try:
        _stdout, stderr = proc.communicate(timeout=60)  # a hang guard: workers killed by Ctrl-C could leave a lock held
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        pytest.fail("extract did not stop on Ctrl-C")
    assert proc.returncode == 130
    assert "Traceback" not in stderr and "KeyboardInterrupt" not in stderr, stderr  # the workers stop quietly too
    assert snapshot(corpus) == before  # the old corpus, untouched; nothing half-written looks finished
    only_the_corpus_is_left(tmp_path)
    rerun = wikitune("extract", "demo", "--out", str(corpus), "--root", "アニメ関連企業")
    assert rerun.returncode == 0, rerun.stderr
    assert json.loads((corpus / "manifest.json").read_text())["roots"] == ["アニメ関連企業"]
    only_the_corpus_is_left(tmp_path)


def test_a_ctrl_c_that_python_swallows_still_stops_the_extract():
    from wikitune.corpus.extract import _ctrl_c_sticks

    class RaisesInDel:
        def __del__(self):
            signal.raise_signal(signal.SIGINT)  # its KeyboardInterrupt is raised inside __del__: Python ignores it

    before = signal.getsignal(signal.SIGINT)
    with _ctrl_c_sticks() as interrupted:
        interrupted()  # nothing yet
        obj = RaisesInDel()
        del obj  # "Exception ignored in ... __del__": the interrupt would be lost here
        with pytest.raises(KeyboardInterrupt):
            interrupted()
    assert signal.getsignal(signal.SIGINT) is before
