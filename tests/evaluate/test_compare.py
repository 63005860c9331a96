"""`compare`: each run's scores and paired differences between runs (DESIGN.md's comparison schema)."""

import json
import subprocess
import sys

import jsonschema
import pytest

from wikitune import formats
from wikitune.errors import WikituneError
from wikitune.evaluate.compare import compare_runs, comparison_rows, format_table, run_compare
from wikitune.evaluate.scoring import score_answer, summarize

GOLD = {f"a{i}": (f"作品{i}", [f"別名{i}"]) for i in range(8)} | {f"c{i}": (f"首都{i}", []) for i in range(6)}


def records(finals):
    """Scored result records of {question id: final}: ids a* are anime, c* control."""
    out = []
    for qid, final in finals.items():
        answer, aliases = GOLD[qid]
        out.append({"id": qid, "question": f"{qid}?", "answer": answer, "aliases": aliases, "set": f"set-{qid[0]}",
                    "domain": "anime" if qid.startswith("a") else "control", "final": final,
                    "flags": [] if final else ["no_final"], "scores": score_answer(final, answer, aliases), "new_tokens": 5})
    return out


def write_run(path, recs):
    """A run directory as `wikitune eval` leaves it: results.jsonl and the summary.json of those records."""
    path.mkdir()
    formats.write_jsonl(path / formats.RESULTS, recs)
    formats.write_summary(path, summarize(recs))
    return path


BASE = {**{f"a{i}": "違う" for i in range(8)}, **{f"c{i}": f"首都{i}" for i in range(5)}}  # anime all wrong, control right
# CPT = base + known changes: every anime question right (a1 by its alias), c0 and c1 forgotten (c1: no
# final), c4 not asked, c5 asked only here
CPT = {**{f"a{i}": f"作品{i}" for i in range(8)}, "a1": "別名1", "c0": "首都9", "c1": None, "c2": "首都2", "c3": "首都3", "c5": "首都5"}


def rows_by(data):
    return {(r["run"], r["vs"], r["domain"], r["metric"]): r for r in data["rows"]}


def test_paired_differences_over_the_questions_both_answered(tmp_path):
    base, cpt = write_run(tmp_path / "base", records(BASE)), write_run(tmp_path / "cpt", records(CPT))
    data = compare_runs([base, cpt])
    assert data["runs"] == [str(base), str(cpt)]
    rows = rows_by(data)
    anime = rows[(str(cpt), str(base), "anime", "exact_match")]
    # every paired difference is +1: the mean is 1 and the interval excludes 0
    assert (anime["mean"], anime["n"]) == (1.0, 8) and anime["ci_low"] > 0
    assert rows[(str(cpt), str(base), "anime", "gold_match")]["mean"] == 7 / 8 == 0.875  # a1 only by its alias
    control = rows[(str(cpt), str(base), "control", "exact_match")]
    assert control["n"] == 4  # c0..c3: c4 only in base, c5 only in cpt
    assert control["mean"] == -0.5 and control["ci_low"] <= -0.5 <= control["ci_high"] <= 0  # c0, c1 lost; c2, c3 kept
    assert rows[(str(cpt), str(base), "control", "flag:no_final")]["mean"] == 0.25
    # own scores (vs null) are the run's summary.json numbers
    summary = formats.read_summary(cpt)["domains"]["control"]["scores"]["exact_match"]
    own = rows[(str(cpt), None, "control", "exact_match")]
    assert (own["mean"], [own["ci_low"], own["ci_high"]], own["n"]) == (summary["mean"], summary["ci95"], summary["n"])
    assert not any(r["vs"] == str(cpt) for r in data["rows"])  # the default pairs: each later run vs the first
    assert {r["metric"] for r in data["rows"]} >= {"exact_match", "gold_match", "char_f1", "contains", "flag:no_final"}
    assert not any(r["metric"] == "judge" for r in data["rows"])  # no record has a judge score


def test_compare_json_validates_and_table_shows_intervals(tmp_path):
    base, cpt = write_run(tmp_path / "base", records(BASE)), write_run(tmp_path / "cpt", records(CPT))
    table = run_compare([base, cpt], tmp_path / "cmp")
    written = json.loads((tmp_path / "cmp" / "compare.json").read_text())
    jsonschema.validate(written, formats.schema("comparison"))
    assert set(written) == {"runs", "rows"}
    assert all(set(r) == {"run", "vs", "domain", "metric", "mean", "ci_low", "ci_high", "n"} for r in written["rows"])
    assert not jsonschema.Draft202012Validator(formats.schema("comparison")).is_valid(
        {"runs": [], "rows": [{**written["rows"][0], "delta": 0.1}]})  # the old shape is refused
    assert (tmp_path / "cmp" / "compare.md").read_text().strip() == table
    lines = table.splitlines()
    assert lines[0] == "| run | vs | metric | anime | control |"
    assert f"| {cpt} | {base} | exact_match | +1.000 [+1.000, +1.000] n=8 | -0.500 [" in table
    own = next(line for line in lines if line.startswith(f"| {base} | - | exact_match |"))
    assert "0.000 [0.000, 0.000] n=8" in own and "1.000 [1.000, 1.000] n=5" in own
    # each run's own scores, then its differences
    starts = [next(i for i, line in enumerate(lines) if line.startswith(prefix)) for prefix in (f"| {base} | - |", f"| {cpt} | - |", f"| {cpt} | {base} |")]
    assert starts == sorted(starts)


def test_explicit_pairs_each_run_vs_base_and_recipe_vs_raw_cpt():
    recipe = {**CPT, "c0": "首都0", "c1": "首都1"}  # the recipe keeps what raw CPT forgot
    data = comparison_rows({"base": records(BASE), "raw-cpt": records(CPT), "recipe": records(recipe)},
                           [("raw-cpt", "base"), ("recipe", "base"), ("recipe", "raw-cpt")], metrics=["exact_match"], resamples=200)
    rows = rows_by(data)
    assert {(r["run"], r["vs"]) for r in data["rows"] if r["vs"]} == {("raw-cpt", "base"), ("recipe", "base"), ("recipe", "raw-cpt")}
    assert rows[("recipe", "raw-cpt", "control", "exact_match")]["mean"] == 0.4  # +1 on c0, c1 of c0, c1, c2, c3, c5
    assert rows[("recipe", "raw-cpt", "control", "exact_match")]["n"] == 5
    assert rows[("recipe", "base", "control", "exact_match")]["mean"] == 0.0
    assert rows[("recipe", "raw-cpt", "anime", "exact_match")] == {
        "run": "recipe", "vs": "raw-cpt", "domain": "anime", "metric": "exact_match", "mean": 0.0, "ci_low": 0.0, "ci_high": 0.0, "n": 8}
    by_set = comparison_rows({"base": records(BASE), "cpt": records(CPT)}, metrics=["exact_match"], group="set", resamples=50)
    assert {r["domain"] for r in by_set["rows"]} == {"set-a", "set-c"}
    assert "| cpt | base | exact_match |" in format_table(by_set)


def test_bad_input(tmp_path):
    with pytest.raises(WikituneError, match="results.jsonl does not exist"):
        compare_runs([tmp_path])
    with pytest.raises(WikituneError, match="'nope', which is not among the runs"):
        comparison_rows({"base": records(BASE)}, [("nope", "base")])
    with pytest.raises(WikituneError, match="with itself"):
        comparison_rows({"base": records(BASE)}, [("base", "base")])
    twice = records(BASE) + records({"a0": "x"})
    with pytest.raises(WikituneError, match="question 'a0' appears twice in domain 'anime'"):
        comparison_rows({"base": twice})


def test_compare_command(tmp_path):
    base, cpt = write_run(tmp_path / "base", records(BASE)), write_run(tmp_path / "cpt", records(CPT))
    result = subprocess.run([sys.executable, "-m", "wikitune.cli", "compare", str(base), str(cpt), "--out", str(tmp_path / "out")],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert f"| {cpt} | {base} | exact_match | +1.000 [+1.000, +1.000] n=8 |" in result.stdout
    jsonschema.validate(json.loads((tmp_path / "out" / "compare.json").read_text()), formats.schema("comparison"))
