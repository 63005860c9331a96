"""Output directories: ownership, atomic rebuilds and exclusive locks, with real processes."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tests.conftest import REPO
from wikitune import outputs
from wikitune.errors import WikituneError
from wikitune.outputs import OutputDir, OutputLock, OutputLocked, check_owned, stamp

MANIFEST = "manifest.json"


def snapshot(directory: Path) -> dict[str, bytes]:
    return {str(p.relative_to(directory)): p.read_bytes() for p in sorted(directory.rglob("*")) if p.is_file()}


def build(path: Path, files: dict[str, str], kind: str = "thing", **kw) -> OutputDir:
    with OutputDir(path, kind, manifest=MANIFEST, **kw) as out:
        for name, text in files.items():
            (out.work / name).write_text(text)
        (out.work / MANIFEST).write_text(json.dumps(stamp({"files": len(files)}, kind)))
        out.commit()
    return out


def test_only_missing_empty_or_own_directories_are_accepted(tmp_path):
    check_owned(tmp_path / "new", "thing", manifest=MANIFEST)
    (tmp_path / "empty").mkdir()
    check_owned(tmp_path / "empty", "thing", manifest=MANIFEST)
    build(tmp_path / "ours", {"a.txt": "a"})
    check_owned(tmp_path / "ours", "thing", manifest=MANIFEST)
    with pytest.raises(WikituneError, match=r"is not a wikitune other \(it holds a wikitune thing\)"):
        check_owned(tmp_path / "ours", "other", manifest=MANIFEST)
    (tmp_path / "file").write_text("x")
    with pytest.raises(WikituneError, match="exists and is not a directory"):
        check_owned(tmp_path / "file", "thing", manifest=MANIFEST)


def test_a_legacy_manifest_counts_only_with_its_key(tmp_path):
    (tmp_path / MANIFEST).write_text(json.dumps({"tool": "wikitune", "version": "0.1", "source_kind": "dump"}))
    check_owned(tmp_path, "corpus", manifest=MANIFEST, legacy_key="source_kind")
    with pytest.raises(WikituneError, match="not empty"):
        check_owned(tmp_path, "corpus", manifest=MANIFEST, legacy_key="method")


def test_a_foreign_directory_is_refused_and_untouched(tmp_path):
    target = tmp_path / "X"
    (target / "text").mkdir(parents=True)
    (target / "text" / "mine.txt").write_text("mine")
    (target / MANIFEST).write_text('{"tool": "other", "kind": "corpus"}')
    before = snapshot(target)
    with pytest.raises(WikituneError, match=r"X is not empty and is not a wikitune thing \(it has no wikitune manifest.json\)"):
        build(target, {"new.txt": "new"})
    assert snapshot(target) == before
    assert not (tmp_path / "X.partial").exists() and not (tmp_path / "X.lock").exists()


def test_rebuild_swaps_in_the_new_output_whole(tmp_path):
    target = tmp_path / "X"
    build(target, {"old.txt": "old"})
    build(target, {"new.txt": "new"})
    assert sorted(p.name for p in target.iterdir()) == [MANIFEST, "new.txt"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["X"]  # no partial, old or lock left


def test_rebuild_without_an_atomic_exchange_swaps_too(tmp_path, monkeypatch):
    # Systems without renameat2 take the two-rename path.
    monkeypatch.setattr(outputs, "_exchange", lambda a, b: False)
    target = tmp_path / "X"
    build(target, {"old.txt": "old"})
    build(target, {"new.txt": "new"})
    assert sorted(p.name for p in target.iterdir()) == [MANIFEST, "new.txt"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["X"]


def test_a_swap_killed_halfway_is_recovered(tmp_path):
    # Killed between the two renames of the fallback: the old output sits at X.old, X is missing.
    build(tmp_path / "X", {"old.txt": "old"})
    (tmp_path / "X").rename(tmp_path / "X.old")
    with OutputDir(tmp_path / "X", "thing", manifest=MANIFEST):
        assert (tmp_path / "X" / "old.txt").read_text() == "old"
    assert not (tmp_path / "X.old").exists()


def test_a_failed_rebuild_leaves_the_old_output_as_it_was(tmp_path):
    target = tmp_path / "X"
    build(target, {"old.txt": "old"})
    before = snapshot(target)
    with pytest.raises(RuntimeError):
        with OutputDir(target, "thing", manifest=MANIFEST) as out:
            (out.work / "half.txt").write_text("half")
            raise RuntimeError("killed midway")
    assert snapshot(target) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["X"]


def test_commit_refuses_an_unstamped_output(tmp_path):
    with pytest.raises(WikituneError, match="no manifest.json stamped"):
        with OutputDir(tmp_path / "X", "thing", manifest=MANIFEST) as out:
            out.commit()
    assert not (tmp_path / "X").exists()


def test_keep_partial_hands_the_work_back(tmp_path):
    with pytest.raises(RuntimeError):
        with OutputDir(tmp_path / "X", "thing", manifest=MANIFEST, keep_partial=True) as out:
            (out.work / "state").write_text("resume from here")
            raise RuntimeError
    with OutputDir(tmp_path / "X", "thing", manifest=MANIFEST, keep_partial=True) as out:
        assert (out.work / "state").read_text() == "resume from here"


def test_a_foreign_partial_directory_is_refused(tmp_path):
    (tmp_path / "X.partial").mkdir()
    (tmp_path / "X.partial" / "mine.txt").write_text("mine")
    with pytest.raises(WikituneError, match="was not made by wikitune"):
        build(tmp_path / "X", {})
    assert (tmp_path / "X.partial" / "mine.txt").read_text() == "mine"


# ---- locks, held by real processes ---------------------------------------------------------------
HOLD = textwrap.dedent("""
    import os, sys, time
    from pathlib import Path
    from wikitune.outputs import OutputLock
    lock = OutputLock(Path(sys.argv[1]))
    lock.acquire()
    if sys.argv[2] == "orphan":
        child = os.fork()  # inherits the flock, as forked worker processes do
        if child == 0:
            time.sleep(120)
            os._exit(0)
        print(child, flush=True)
        os._exit(0)  # dies without releasing: the lock file names a dead pid
    print("held", flush=True)
    sys.stdin.read()  # hold until the test closes stdin
    lock.release()
""")


def hold(target: Path, mode: str = "hold") -> subprocess.Popen:
    proc = subprocess.Popen([sys.executable, "-c", HOLD, str(target), mode], cwd=REPO, text=True,
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    return proc


def test_a_second_process_is_refused_naming_the_holder(tmp_path):
    target = tmp_path / "X"
    proc = hold(target)
    try:
        assert proc.stdout.readline() == "held\n"
        with pytest.raises(OutputLocked) as err:
            OutputLock(target).acquire()
        message = str(err.value)
        assert f"pid {proc.pid} on {socket.gethostname()}" in message and "\n" not in message
        assert err.value.holder.pid == proc.pid
    finally:
        proc.communicate("")
    assert proc.returncode == 0 and not (tmp_path / "X.lock").exists()
    with OutputLock(target):  # free again once released
        pass


def test_the_lock_of_a_killed_process_is_taken_over(tmp_path):
    target = tmp_path / "X"
    proc = hold(target)
    assert proc.stdout.readline() == "held\n"
    proc.kill()
    proc.wait()
    assert json.loads((tmp_path / "X.lock").read_text())["pid"] == proc.pid  # a stale lock file
    with OutputLock(target) as lock:
        assert json.loads(lock.path.read_text())["pid"] == os.getpid()


def test_a_dead_holders_lock_kept_by_its_orphans_is_taken_over(tmp_path):
    target = tmp_path / "X"
    proc = hold(target, "orphan")
    orphan = int(proc.stdout.readline())
    proc.wait()
    try:
        with OutputLock(target) as lock:
            assert json.loads(lock.path.read_text())["pid"] == os.getpid()
    finally:
        os.kill(orphan, signal.SIGKILL)


def test_a_live_holder_on_another_host_is_never_taken_over(tmp_path):
    target = tmp_path / "X"
    proc = hold(target)
    try:
        assert proc.stdout.readline() == "held\n"
        # The holder's record names another host: its pid means nothing here, so it is never judged dead.
        record = json.loads((tmp_path / "X.lock").read_text())
        (tmp_path / "X.lock").write_text(json.dumps({**record, "pid": 2**22 + 7, "host": "elsewhere"}))
        with pytest.raises(OutputLocked, match=r"pid 4194311 on elsewhere"):
            OutputLock(target).acquire()
    finally:
        proc.communicate("")
