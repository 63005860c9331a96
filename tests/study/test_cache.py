"""Stage caching: skip what is current, rerun what changed and everything after it, never trust partial output."""

from __future__ import annotations

import json

import pytest

from wikitune.errors import WikituneError
from wikitune.study.cache import MARKER, Stage, Study


class Recorder:
    """Real stage functions that write files and record each call."""

    def __init__(self):
        self.calls: list[tuple[str, bool]] = []

    def writer(self, name: str, fail: bool = False):
        def run(out, resume):
            self.calls.append((name, resume))
            (out / "partial.txt").write_text("half")
            if fail:
                raise RuntimeError(f"{name} failed")
            (out / "result.txt").write_text(f"{name} done")
            return name
        return run


def pipeline(rec: Recorder, sft_lr: float = 1e-4, fail_sft: bool = False) -> list[Stage]:
    return [
        Stage("corpus", rec.writer("corpus"), {"dump": "demo"}),
        Stage("cpt", rec.writer("cpt"), {"lr": 2e-4}, deps=["corpus"]),
        Stage("sft", rec.writer("sft", fail=fail_sft), {"lr": sft_lr}, deps=["cpt"]),
        Stage("eval", rec.writer("eval"), {"n": 5}, deps=["sft", "corpus"]),
    ]


def names(rec):
    return [name for name, _ in rec.calls]


def test_second_run_does_no_work(tmp_path):
    rec = Recorder()
    first = Study(tmp_path).run(pipeline(rec))
    assert names(rec) == ["corpus", "cpt", "sft", "eval"] and all(r.status == "ran" for r in first.values())
    rec.calls.clear()
    second = Study(tmp_path).run(pipeline(rec))
    assert rec.calls == [] and all(r.status == "cached" for r in second.values())
    assert (tmp_path / "eval" / "result.txt").read_text() == "eval done"
    assert json.loads((tmp_path / "sft" / MARKER).read_text())["config"] == {"lr": 1e-4}


def test_changed_setting_reruns_that_stage_and_downstream_only(tmp_path):
    rec = Recorder()
    Study(tmp_path).run(pipeline(rec))
    rec.calls.clear()
    Study(tmp_path).run(pipeline(rec, sft_lr=5e-5))
    assert names(rec) == ["sft", "eval"]


def test_force_reruns_one_stage_and_downstream(tmp_path):
    rec = Recorder()
    Study(tmp_path).run(pipeline(rec))
    rec.calls.clear()
    Study(tmp_path).run(pipeline(rec), force={"cpt"})
    assert names(rec) == ["cpt", "sft", "eval"]
    with pytest.raises(WikituneError, match="no such stage"):
        Study(tmp_path).run(pipeline(rec), force={"nope"})


def test_failed_stage_leaves_nothing_that_looks_finished_and_resumes(tmp_path):
    rec = Recorder()
    with pytest.raises(RuntimeError):
        Study(tmp_path).run(pipeline(rec, fail_sft=True))
    assert not (tmp_path / "sft").exists()  # only sft.partial, never mistaken for a finished stage
    assert (tmp_path / "sft.partial" / "partial.txt").exists()
    rec.calls.clear()
    Study(tmp_path).run(pipeline(rec))
    assert rec.calls == [("sft", True), ("eval", False)]  # the same key: handed its partial dir back
    assert (tmp_path / "sft" / "result.txt").read_text() == "sft done"
    assert not (tmp_path / "sft.partial").exists()


def test_partial_from_another_config_is_discarded(tmp_path):
    rec = Recorder()
    with pytest.raises(RuntimeError):
        Study(tmp_path).run(pipeline(rec, fail_sft=True))
    rec.calls.clear()
    Study(tmp_path).run(pipeline(rec, sft_lr=3e-5))
    assert ("sft", False) in rec.calls


def test_failed_rerun_keeps_the_previous_finished_output(tmp_path):
    rec = Recorder()
    Study(tmp_path).run(pipeline(rec))
    with pytest.raises(RuntimeError):
        Study(tmp_path).run(pipeline(rec, sft_lr=9e-9, fail_sft=True))
    assert (tmp_path / "sft" / "result.txt").read_text() == "sft done"
    assert json.loads((tmp_path / "sft" / MARKER).read_text())["config"] == {"lr": 1e-4}


def test_dependency_order_is_checked(tmp_path):
    rec = Recorder()
    with pytest.raises(WikituneError, match="needs 'cpt'"):
        Study(tmp_path).run([Stage("sft", rec.writer("sft"), deps=["cpt"]), Stage("cpt", rec.writer("cpt"))])


# ---- the code behind a stage is part of its key ----------------------------------------------------

from wikitune.study.cache import code_closure, code_fingerprint  # noqa: E402
from wikitune.study.stages import CODE  # noqa: E402


def test_fingerprint_follows_the_modules_a_stage_imports(tmp_path, monkeypatch):
    import importlib
    import sys

    # The fingerprint follows `wikitune.*` imports; write a tiny package *named* wikitune in a
    # separate path and make it the one that importlib finds for the duration of the test.
    root = tmp_path / "site"
    pkg = root / "wikitune"
    (pkg / "train").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "train" / "__init__.py").write_text("")
    (pkg / "formats.py").write_text("NAME = 'articles.jsonl'\n")
    (pkg / "train" / "cpt.py").write_text("from wikitune.formats import NAME\nfrom . import data\n")
    (pkg / "train" / "data.py").write_text("X = 1\n")
    (pkg / "report.py").write_text("Y = 1\n")
    original = {name for name in sys.modules}
    for name in [m for m in sys.modules if m == "wikitune" or m.startswith("wikitune.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.syspath_prepend(str(root))
    importlib.invalidate_caches()

    before = code_fingerprint(["wikitune.train.cpt"])
    (pkg / "report.py").write_text("Y = 2\n")  # not imported by the stage: same key
    assert code_fingerprint(["wikitune.train.cpt"]) == before
    (pkg / "train" / "data.py").write_text("X = 2\n")  # imported relatively: new key
    after_data = code_fingerprint(["wikitune.train.cpt"])
    assert after_data != before
    (pkg / "formats.py").write_text("NAME = 'other.jsonl'\n")  # imported absolutely: new key
    assert code_fingerprint(["wikitune.train.cpt"]) != after_data
    for name in [m for m in sys.modules if m not in original and m.startswith("wikitune")]:
        del sys.modules[name]  # the probe package's modules must not outlive the test


def test_a_stage_reruns_when_its_code_changes(tmp_path, monkeypatch):
    rec = Recorder()
    stages = pipeline(rec)
    stages[1].code = ["wikitune.train.cpt"]
    Study(tmp_path).run(stages)
    rec.calls.clear()
    import wikitune.study.cache as cache

    monkeypatch.setattr(cache, "code_fingerprint", lambda modules: "edited-" + ",".join(modules))
    Study(tmp_path).run(stages)
    assert names(rec) == ["cpt", "sft", "eval"]  # the edited stage and everything after it; corpus kept


def test_training_code_is_not_report_code():
    cpt = code_closure(CODE["cpt"])
    assert {"wikitune.train.cpt", "wikitune.formats", "wikitune.gptoss.model"} <= set(cpt)
    assert not any(m.startswith(("wikitune.study", "wikitune.evaluate")) for m in cpt)
    assert "wikitune.study.report" not in code_closure([m for kind in CODE.values() for m in kind])
