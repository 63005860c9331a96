"""Stage caching for `wikitune run`: rerun only what changed, never trust half-written output.

    study = Study(Path("runs/demo"))
    study.run([
        Stage("corpus", build_corpus, config={"dump": "demo", "roots": [...]}),
        Stage("cpt", train_cpt, config=cpt_cfg, deps=["corpus"]),
    ], force={"cpt"})

Each stage writes into `STUDY/<name>/`. Its key is a hash of its config, the keys of the stages
it depends on, the source of the code that produces it (`code_fingerprint`) and the wikitune
version; `STUDY/<name>/.stage.json` records the key of the run that
produced the directory and is written last. A stage whose directory carries the current key is
skipped; any other runs, and so does everything downstream of it (their keys change with it).

A stage runs in `STUDY/<name>.partial/` and is renamed into place only when it returns, so a
crash or a kill leaves the previous finished output (or nothing), never a half-written directory
that looks finished. A `.partial` directory with the same key is handed back to the stage on the
next run (`resume=True`), so stages that checkpoint (training) continue where they stopped.
"""

from __future__ import annotations

import ast
import datetime as dt
import hashlib
import importlib.util
import json
import logging
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable

from wikitune import __version__
from wikitune.errors import WikituneError

log = logging.getLogger(__name__)

MARKER = ".stage.json"


@dataclass
class Stage:
    """One step of a study.

    Attributes:
        name (str): directory name under the study, unique in the study.
        run (Callable[[Path, bool], Any]): does the work, writing only into the directory it is
            given; the flag says a previous attempt with the same key left that directory
            (resume from it if you can). Its return value is kept in the stage's result.
        config (dict): everything that changes the stage's output (JSON-serialisable).
        deps (list[str]): names of the stages whose output this one reads.
        code (list[str]): the wikitune modules that produce the output; their source, and that of
            every wikitune module they import, is part of the stage key (see `code_fingerprint`).
    """

    name: str
    run: Callable[[Path, bool], Any]
    config: dict[str, Any] = field(default_factory=dict)
    deps: list[str] = field(default_factory=list)
    code: list[str] = field(default_factory=list)


@dataclass
class StageResult:
    name: str
    key: str
    status: str  # "ran" | "cached"
    seconds: float
    output: Path
    value: Any = None


def _imported_modules(tree: ast.AST, package: str) -> set[str]:
    """Names of the `wikitune` modules a module's source imports (absolute or relative)."""
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names if alias.name.split(".")[0] == "wikitune")
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(parent + ([base] if base else []))
            if base.split(".")[0] != "wikitune":
                continue
            found.add(base)
            # `from wikitune.corpus import convert`: the name may itself be a module
            found.update(f"{base}.{alias.name}" for alias in node.names)
    return found


def code_closure(modules: Iterable[str]) -> dict[str, str]:
    """`{module: sha256 of its source}` for `modules` and every wikitune module they import,
    transitively. Names that are not modules (`from m import function`) are skipped.

    Raises:
        WikituneError: one of `modules` itself is not a wikitune module.
    """
    modules = list(modules)
    seen: dict[str, str] = {}
    todo = list(modules)
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        try:
            spec = importlib.util.find_spec(name)
        except (ImportError, AttributeError, ValueError):
            spec = None
        if spec is None or not spec.origin or not spec.origin.endswith(".py"):
            if name in modules:
                raise WikituneError(f"stage code {name!r} is not a wikitune module")
            continue
        source = Path(spec.origin).read_bytes()
        seen[name] = hashlib.sha256(source).hexdigest()
        package = name if spec.submodule_search_locations else name.rpartition(".")[0]
        todo.extend(_imported_modules(ast.parse(source), package) - set(seen))
    return seen


def code_fingerprint(modules: Iterable[str]) -> str:
    """Hash of the source of `modules` and of every wikitune module they import (`code_closure`):
    an edit anywhere in that closure changes it; an edit elsewhere (the report, another stage's
    code) does not."""
    payload = json.dumps(sorted(code_closure(modules).items()))
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()[:16]


def stage_key(config: dict[str, Any], dep_keys: Iterable[str], code: Iterable[str] = ()) -> str:
    """Hash of a stage's config, its upstream keys, the code that produces it and the tool version."""
    code = list(code)
    payload = json.dumps({"config": config, "deps": list(dep_keys), "version": __version__,
                          "code": code_fingerprint(code) if code else None},
                         sort_keys=True, ensure_ascii=False, default=str)
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()[:16]


class Study:
    """A directory of stage outputs; see the module docstring."""

    def __init__(self, root: Path, progress: Callable[[str], None] | None = None):
        self.root = Path(root)
        self.progress = progress or (lambda message: log.info(message))

    def finished_key(self, name: str) -> str | None:
        marker = self.root / name / MARKER
        if not marker.is_file():
            return None
        try:
            return json.loads(marker.read_text(encoding="utf-8")).get("key")
        except (json.JSONDecodeError, OSError):
            return None

    def run(self, stages: list[Stage], force: Iterable[str] = ()) -> dict[str, StageResult]:
        """Run the stages in order (each after its deps), skipping those whose output is current."""
        force = set(force)
        names = [s.name for s in stages]
        unknown = force - set(names)
        if unknown:
            raise WikituneError(f"--force {sorted(unknown)[0]!r}: no such stage (stages: {', '.join(names)})")
        if len(set(names)) != len(names):
            raise WikituneError(f"stage names must be unique, got {names}")
        self.root.mkdir(parents=True, exist_ok=True)
        results: dict[str, StageResult] = {}
        for number, stage in enumerate(stages, 1):
            missing = [d for d in stage.deps if d not in results]
            if missing:
                raise WikituneError(f"stage {stage.name!r} needs {missing[0]!r}, which does not run before it")
            key = stage_key(stage.config, [results[d].key for d in stage.deps], stage.code)
            rerun_upstream = any(results[d].status == "ran" for d in stage.deps)
            output = self.root / stage.name
            if stage.name not in force and not rerun_upstream and self.finished_key(stage.name) == key:
                self.progress(f"[{number}/{len(stages)}] {stage.name}: up to date, skipped")
                results[stage.name] = StageResult(stage.name, key, "cached", 0.0, output)
                continue
            self.progress(f"[{number}/{len(stages)}] {stage.name}: running")
            started = time.perf_counter()
            value = self._run_one(stage, key, force=stage.name in force)
            seconds = time.perf_counter() - started
            self.progress(f"[{number}/{len(stages)}] {stage.name}: done in {seconds:.1f} s")
            results[stage.name] = StageResult(stage.name, key, "ran", seconds, output, value)
        return results

    def _run_one(self, stage: Stage, key: str, force: bool) -> Any:
        partial = self.root / f"{stage.name}.partial"
        # Beside the directory, not in it: a stage may insist on starting from an empty directory.
        started_marker = self.root / f".{stage.name}.partial.json"
        resume = False
        if partial.exists():
            try:
                resume = not force and json.loads(started_marker.read_text(encoding="utf-8")).get("key") == key
            except (OSError, json.JSONDecodeError):
                resume = False
            if not resume:
                shutil.rmtree(partial)
            started_marker.unlink(missing_ok=True)
        partial.mkdir(parents=True, exist_ok=True)
        started_marker.write_text(json.dumps({"key": key}), encoding="utf-8")
        started = time.perf_counter()
        value = stage.run(partial, resume)
        started_marker.unlink(missing_ok=True)
        (partial / MARKER).write_text(json.dumps({
            "key": key,
            "stage": stage.name,
            "config": stage.config,
            "deps": stage.deps,
            "version": __version__,
            "seconds": round(time.perf_counter() - started, 3),
            "finished": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        }, ensure_ascii=False, indent=2, default=str), encoding="utf-8")
        final = self.root / stage.name
        if final.exists():
            # Move the old output aside first so that at no moment a half-replaced one is in place.
            old = self.root / f"{stage.name}.old"
            if old.exists():
                shutil.rmtree(old)
            final.rename(old)
            partial.rename(final)
            shutil.rmtree(old)
        else:
            partial.rename(final)
        return value
