"""Output directories that never lose a user's data: ownership, exclusive locks, atomic rebuilds.

    with OutputDir(Path("corpus/anime"), kind="corpus", manifest=MANIFEST) as out:
        ...write everything under out.work...                    # corpus/anime.partial/
        write_json(out.work / MANIFEST, stamp({...}, "corpus"))  # the ownership record, last
        out.commit()                                             # swapped into corpus/anime atomically

The rules, for every directory a command writes:

* **Ownership.** A directory is wikitune's only if its manifest (a JSON file named by the
  caller, e.g. `manifest.json`) says `"tool": "wikitune"` and the expected `"kind"` (written by
  `stamp`). A non-empty directory that is not wikitune's of that kind is refused
  (`check_owned`), and nothing in it is touched.
* **Atomic rebuilds.** `OutputDir` writes the new output beside the old one, in `NAME.partial/`,
  and `commit` swaps it into place in one `rename` (Linux: `renameat2(RENAME_EXCHANGE)`), then
  removes the old output. A failed, interrupted or killed rebuild leaves the old output as it was;
  `NAME.partial/` never looks finished (no stamped manifest) and is discarded by the next run,
  or handed back to it with `keep_partial=True` (for resumable work such as a crawl's state).
* **Locks.** `OutputLock` holds `NAME.lock` beside the directory: an exclusive `flock` on a file
  holding the holder's pid, host, start time and command. A second process fails at once with
  `OutputLocked`, whose one-line message names the holder. A lock left by a process that died
  is free again: the kernel drops a dead process's `flock`, and a lock file whose pid is dead on
  this host (its `flock` kept only by orphaned children) is removed and taken over.

Other stages apply the same API: a directory rebuilt from scratch (an augmentation directory, a
study's report) uses `OutputDir` as above; a directory updated in place and resumed (a training
run, a study directory) takes only the lock, for as long as it writes, and stamps its manifest:

    with OutputLock(run_dir):
        check_owned(run_dir, "run", manifest="manifest.json")
        ...train, checkpoint, resume...
"""

from __future__ import annotations

import ctypes
import datetime as dt
import errno
import fcntl
import json
import os
import shutil
import socket
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from wikitune import __version__
from wikitune.errors import WikituneError

TOOL = "wikitune"
PARTIAL_SUFFIX = ".partial"
LOCK_SUFFIX = ".lock"
OLD_SUFFIX = ".old"
# Inside NAME.partial/: says that wikitune made this directory, so a later run may remove it.
PARTIAL_MARKER = ".wikitune-partial.json"


def stamp(manifest: dict[str, Any], kind: str) -> dict[str, Any]:
    """`manifest` with the ownership record first: tool, kind, version and creation time."""
    return {
        "tool": TOOL,
        "kind": kind,
        "version": __version__,
        "created": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        **{k: v for k, v in manifest.items() if k not in ("tool", "kind", "version", "created")},
    }


def owner_of(directory: Path, manifest: str) -> dict[str, Any] | None:
    """The directory's manifest if wikitune wrote it (any kind), else None."""
    try:
        data = json.loads((Path(directory) / manifest).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) and data.get("tool") == TOOL else None


def is_owned(directory: Path, kind: str, *, manifest: str, legacy_key: str | None = None) -> bool:
    """Whether `directory` holds wikitune output of `kind`.

    Args:
        directory (Path): the directory.
        kind (str): e.g. "corpus".
        manifest (str): the manifest's file name inside the directory.
        legacy_key (str | None): a manifest written before kinds were recorded (tool wikitune, no
            `kind`) counts as this kind if it has this key.
    """
    data = owner_of(directory, manifest)
    if data is None:
        return False
    if "kind" in data:
        return data["kind"] == kind
    return legacy_key is not None and legacy_key in data


def check_owned(path: Path, kind: str, *, manifest: str, legacy_key: str | None = None) -> None:
    """Refuse to write into `path` unless it is missing, empty, or wikitune output of `kind`.

    Raises:
        WikituneError: `path` is a file, or a non-empty directory that is not wikitune's `kind`.
    """
    path = Path(path)
    if not path.exists():
        return
    if not path.is_dir():
        raise WikituneError(f"{path} exists and is not a directory; choose a new directory for the {kind}")
    if not any(path.iterdir()) or is_owned(path, kind, manifest=manifest, legacy_key=legacy_key):
        return
    other = owner_of(path, manifest)
    what = f"it holds a wikitune {other.get('kind', 'output')}" if other else f"it has no wikitune {manifest}"
    raise WikituneError(
        f"{path} is not empty and is not a wikitune {kind} ({what}); nothing was changed: "
        f"choose an empty or new directory"
    )


# ---- locks ---------------------------------------------------------------------------------------
@dataclass
class Holder:
    """Who holds a lock, as its lock file says."""

    pid: int | None
    host: str
    started: str
    command: str

    def describe(self) -> str:
        who = f"pid {self.pid} on {self.host}" if self.pid is not None else "a process that has not said who it is yet"
        return f"{who}, since {self.started}: {self.command}" if self.started else who


class OutputLocked(WikituneError):
    """Another process holds the lock of an output directory."""

    def __init__(self, target: Path, holder: Holder):
        self.target = target
        self.holder = holder
        super().__init__(
            f"{target} is being written by another wikitune process ({holder.describe()}); "
            f"wait for it to finish or stop it, then run this again"
        )


def lock_path(target: Path) -> Path:
    """The lock file of an output directory: `NAME.lock` beside it (it survives the swap)."""
    return target.with_name(target.name + LOCK_SUFFIX)


def _read_holder(path: Path) -> Holder:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        return Holder(int(data["pid"]), str(data["host"]), str(data.get("started", "")), str(data.get("command", "")))
    except (OSError, ValueError, KeyError, TypeError):
        return Holder(None, "", "", "")


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's process
    return True


class OutputLock:
    """An exclusive lock on one output directory; see the module docstring.

        with OutputLock(Path("corpus/anime")):
            ...                     # OutputLocked was raised if another process holds it
    """

    def __init__(self, target: Path):
        self.target = Path(target)
        self.path = lock_path(self.target)
        self._fd: int | None = None

    def acquire(self) -> None:
        """Take the lock now or raise OutputLocked naming the holder; never waits for a holder."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        for _attempt in range(50):
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                inode = os.fstat(fd).st_ino
                os.close(fd)
                holder = self._holder_when_written()
                if holder.pid is not None and holder.host == socket.gethostname() and not _pid_alive(holder.pid):
                    # Dead holder, flock kept by its orphaned children (forked workers): take over.
                    self._unlink_if(inode)
                    continue
                raise OutputLocked(self.target, holder) from None
            # The file may have been unlinked (released, or a stale one removed) between open and flock.
            try:
                same = os.stat(self.path).st_ino == os.fstat(fd).st_ino
            except FileNotFoundError:
                same = False
            if not same:
                os.close(fd)
                continue
            record = {"pid": os.getpid(), "host": socket.gethostname(),
                      "started": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
                      "command": " ".join([Path(sys.argv[0]).name, *sys.argv[1:]])[:300]}
            os.ftruncate(fd, 0)
            os.pwrite(fd, json.dumps(record, ensure_ascii=False).encode("utf-8"), 0)
            self._fd = fd
            return
        raise WikituneError(f"could not take the lock {self.path}: it keeps changing hands")  # pragma: no cover

    def _holder_when_written(self) -> Holder:
        # The holder writes its record right after taking the flock: give it a moment to appear.
        for _ in range(20):
            holder = _read_holder(self.path)
            if holder.pid is not None:
                return holder
            time.sleep(0.05)
        return holder

    def _unlink_if(self, inode: int) -> None:
        try:
            if os.stat(self.path).st_ino == inode:
                self.path.unlink()
        except FileNotFoundError:
            pass

    def release(self) -> None:
        """Remove the lock file and drop the lock (unlink first: nobody can lock the old inode then)."""
        if self._fd is None:
            return
        self._unlink_if(os.fstat(self._fd).st_ino)
        os.close(self._fd)
        self._fd = None

    def __enter__(self) -> "OutputLock":
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


# ---- atomic rebuilds -----------------------------------------------------------------------------
def _exchange(a: Path, b: Path) -> bool:
    """Swap two directories in one step (Linux renameat2); False where the system cannot."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        renameat2 = ctypes.CDLL(None, use_errno=True).renameat2
    except (OSError, AttributeError):
        return False
    at_fdcwd, rename_exchange = -100, 2
    if renameat2(at_fdcwd, os.fsencode(str(a)), at_fdcwd, os.fsencode(str(b)), rename_exchange) == 0:
        return True
    err = ctypes.get_errno()
    if err in (errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP):
        return False
    raise OSError(err, os.strerror(err), str(a))


class OutputDir:
    """A locked output directory rebuilt beside the old one and swapped in by `commit`.

    Args:
        path (Path): the output directory (symbolic links are followed: the real one is replaced).
        kind (str): what it holds, recorded by `stamp` (e.g. "corpus").
        manifest (str): file name of the manifest that records ownership, written last.
        keep_partial (bool): keep `NAME.partial/` after a failure and hand it back to the next run
            (resumable work); otherwise it is removed on failure and cleared on entry.
        legacy_key (str | None): see `is_owned`.

    Attributes:
        work (Path): where to write the new output (`NAME.partial/`).
    """

    def __init__(self, path: Path, kind: str, *, manifest: str, keep_partial: bool = False, legacy_key: str | None = None):
        self.path = Path(path).resolve()
        self.kind = kind
        self.manifest = manifest
        self.keep_partial = keep_partial
        self.legacy_key = legacy_key
        self.work = self.path.with_name(self.path.name + PARTIAL_SUFFIX)
        self._old = self.path.with_name(self.path.name + OLD_SUFFIX)
        self.lock = OutputLock(self.path)
        self.committed = False

    def _ours(self, path: Path) -> bool:
        return is_owned(path, self.kind, manifest=self.manifest, legacy_key=self.legacy_key)

    def __enter__(self) -> "OutputDir":
        self.lock.acquire()
        try:
            self._recover()
            check_owned(self.path, self.kind, manifest=self.manifest, legacy_key=self.legacy_key)
            self._prepare_work()
        except BaseException:
            self.lock.release()
            raise
        return self

    def _recover(self) -> None:
        # A run killed inside a fallback (two-rename) swap left the old output at NAME.old.
        if self._old.is_dir() and self._ours(self._old):
            if self.path.exists():
                shutil.rmtree(self._old)
            else:
                self._old.rename(self.path)

    def _prepare_work(self) -> None:
        if self.work.exists():
            if not (self.work / PARTIAL_MARKER).is_file():
                raise WikituneError(
                    f"{self.work} exists and was not made by wikitune; move it away (wikitune writes "
                    f"the new {self.kind} there before swapping it into {self.path})"
                )
            if not self.keep_partial:
                shutil.rmtree(self.work)
        self.work.mkdir(parents=True, exist_ok=True)
        (self.work / PARTIAL_MARKER).write_text(
            json.dumps({"tool": TOOL, "kind": self.kind, "for": str(self.path)}) + "\n", encoding="utf-8")

    def commit(self) -> None:
        """Swap the finished `work` into place and remove the old output.

        Raises:
            WikituneError: `work` has no manifest stamped with this kind (a bug in the caller).
        """
        if not self._ours(self.work):
            raise WikituneError(f"{self.work} has no {self.manifest} stamped as a wikitune {self.kind}; not swapping it in")
        (self.work / PARTIAL_MARKER).unlink()
        if not self.path.exists():
            self.work.rename(self.path)
        elif _exchange(self.work, self.path):
            shutil.rmtree(self.work)  # now the old output
        else:
            self.path.rename(self._old)
            self.work.rename(self.path)
            shutil.rmtree(self._old)
        self.committed = True

    def __exit__(self, exc_type: object, *exc: object) -> None:
        try:
            if not self.committed and not self.keep_partial and self.work.is_dir():
                shutil.rmtree(self.work, ignore_errors=True)
        finally:
            self.lock.release()
