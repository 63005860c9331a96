"""`compare`: a runs x domains table from summary.json files, differences to the first run."""

import json

import jsonschema
import pytest

from wikitune import formats
from wikitune.errors import WikituneError
from wikitune.evaluate.compare import compare_runs, run_compare
from wikitune.evaluate.scoring import summarize


def fake_run(path, em_anime, em_control):
    """A run directory holding only what `compare` reads: a summary.json built by `summarize`."""
    results = [{"domain": "anime", "scores": {"exact_match": v}, "flags": [] if v else ["no_final"], "new_tokens": 5} for v in em_anime]
    results += [{"domain": "control", "scores": {"exact_match": v}, "flags": [], "new_tokens": 5} for v in em_control]
    path.mkdir()
    (path / "summary.json").write_text(json.dumps(summarize(results, resamples=100)))
    return path


def test_table_with_differences(tmp_path):
    base = fake_run(tmp_path / "base", [0, 0, 1, 0], [1, 1])
    cpt = fake_run(tmp_path / "cpt", [1, 1, 1, 0], [1, 0])
    data = compare_runs([base, cpt], scores=("exact_match",))
    rows = {(r["run"], r["group"], r["score"]): r for r in data["rows"]}
    assert rows[(str(cpt), "anime", "exact_match")]["delta"] == 0.5
    assert rows[(str(cpt), "control", "exact_match")]["delta"] == -0.5
    assert rows[(str(base), "anime", "flag:no_final")]["mean"] == 0.75
    table = run_compare([base, cpt], tmp_path / "cmp")
    assert "| run | score | anime | control |" in table
    assert "(+0.500)" in table and "(-0.500)" in table
    assert (tmp_path / "cmp" / "compare.md").read_text().strip() == table
    written = json.loads((tmp_path / "cmp" / "compare.json").read_text())
    assert written["runs"] == [str(base), str(cpt)]
    jsonschema.validate(written, formats.schema("comparison"))


def test_missing_summary_is_an_error(tmp_path):
    with pytest.raises(WikituneError, match="has no summary.json"):
        compare_runs([tmp_path])
