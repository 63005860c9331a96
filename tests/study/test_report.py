"""The report: built from artifacts only, escaped, offline, and checked in a real headless browser."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import yaml

from wikitune.corpus.extract import DEMO_ROOTS, ExtractConfig, run_extract
from wikitune.evaluate.scoring import summarize
from wikitune.study.report import collect, write_report

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
EVIL = "<script>alert('x')</script><img src=x onerror=alert(1)>"


def _eval_run(path: Path, correct: dict[str, int], n: int = 4) -> dict:
    path.mkdir(parents=True)
    results = []
    for domain in ("anime", "control"):
        for i in range(n):
            ok = i < correct[domain]
            results.append({
                "id": f"{domain}-{i}", "question": f"{domain} の質問 {i}？", "answer": "正解", "domain": domain,
                "raw": f"<|channel|>analysis<|message|>考え中 {EVIL}<|end|><|start|>assistant<|channel|>final<|message|>{'正解' if ok else '不正解'}<|return|>",
                "final": ("正解" if ok else f"不正解 {EVIL}"), "analysis": "考え中", "flags": [] if ok else ["loop_stopped"],
                "scores": {"exact_match": int(ok), "char_f1": 1.0 if ok else 0.0}, "new_tokens": 12,
            })
    with open(path / "results.jsonl", "w", encoding="utf-8") as f:
        for r in results:
            f.write(json.dumps(r, ensure_ascii=False) + "\n")
    summary = summarize(results, resamples=200)
    (path / "summary.json").write_text(json.dumps(summary), encoding="utf-8")
    return summary


@pytest.fixture(scope="module")
def study(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("study")
    run_extract(ExtractConfig(dump="demo", out=root / "corpus", roots=list(DEMO_ROOTS)))
    cpt = root / "cpt"
    cpt.mkdir()
    with open(cpt / "metrics.jsonl", "w") as f:
        for step in range(1, 11):
            f.write(json.dumps({"step": step, "epoch": step / 10, "loss": 5.0 / step, "lr": 1e-4, "tokens": 512 * step}) + "\n")
            if step % 5 == 0:
                f.write(json.dumps({"step": step, "eval_loss": 6.0 / step}) + "\n")
    (cpt / "config.yaml").write_text(yaml.safe_dump({"model": "tiny-gpt-oss", "lora": {"r": 16, "alpha": 32}}))
    (cpt / "summary.json").write_text(json.dumps({"train_tokens": 5120, "final_eval_loss": 2.5, "final_eval_ppl": 12.18, "sources": [
        {"source": "corpus", "path": "corpus", "fraction": None, "documents": 40, "tokens": 4000, "train_tokens": 3584, "share": 0.7},
        {"source": "augment", "path": "aug", "fraction": 0.3, "documents": 90, "tokens": 1600, "train_tokens": 1536, "share": 0.3}]}))
    (cpt / "lora_coverage.json").write_text(json.dumps({"targets": [
        {"target": "q_proj", "kind": "module", "matched": 2, "trainable_parameters": 4096, "dropout": 0.05},
        {"target": "mlp.experts.gate_up_proj", "kind": "parameter", "matched": 2, "trainable_parameters": 8192, "dropout": "not applied: PEFT refuses dropout on expert parameters"},
    ]}))
    summaries = {
        "eval-base": _eval_run(root / "eval-base", {"anime": 1, "control": 3}),
        "eval-cpt": _eval_run(root / "eval-cpt", {"anime": 3, "control": 3}),
    }
    (root / "summaries.json").write_text(json.dumps(summaries))
    write_report(root)
    return root


def test_report_files_and_numbers_come_from_the_runs(study):
    html_text = (study / "report" / "index.html").read_text(encoding="utf-8")
    md = (study / "report" / "report.md").read_text(encoding="utf-8")
    summaries = json.loads((study / "summaries.json").read_text())
    for run, summary in summaries.items():
        for domain, s in summary["domains"].items():
            em = s["scores"]["exact_match"]
            cell = f"{em['mean']:.3f} [{em['ci95'][0]:.3f}, {em['ci95'][1]:.3f}]"
            assert cell in html_text and cell in md
    assert "+0.500" in md  # anime exact match: 3/4 after CPT vs 1/4 before
    corpus = json.loads((study / "corpus" / "manifest.json").read_text(encoding="utf-8"))
    assert f"<td>{corpus['counts']['articles']}</td>" in html_text
    assert "not applied: PEFT refuses dropout" in html_text
    assert sorted(p.name for p in (study / "report").glob("*.png")) == ["loss-cpt.png", "scores-anime.png", "scores-control.png"]


def test_untrusted_text_is_escaped(study):
    html_text = (study / "report" / "index.html").read_text(encoding="utf-8")
    assert "<script>alert" not in html_text and "onerror=alert(1)>" not in html_text
    assert "&lt;script&gt;alert" in html_text
    assert "<|channel|>" not in html_text and "&lt;|channel|&gt;" in html_text  # raw completion kept, escaped


def test_markdown_escapes_titles_and_model_output_too(study):
    md = (study / "report" / "report.md").read_text(encoding="utf-8")
    assert "<script>" not in md and "<img" not in md  # model output is data, not markup
    assert "&lt;script&gt;alert" in md


def test_report_never_writes_into_a_corpus(study, tmp_path):
    from wikitune.errors import WikituneError

    corpus = study / "corpus"
    with pytest.raises(WikituneError, match="is a corpus directory.*--out"):
        write_report(corpus)
    assert not (corpus / "report").exists()
    html_path = write_report(corpus, tmp_path / "corpus-report")
    assert html_path == tmp_path / "corpus-report" / "index.html" and html_path.is_file()
    assert not (corpus / "report").exists()


def test_collect_finds_stages_by_content(study):
    art = collect(study)
    assert list(art.evals) == ["eval-base", "eval-cpt"] and list(art.training) == ["cpt"]
    assert art.corpus["articles"] > 0


def test_empty_directory_is_a_clear_error(tmp_path):
    from wikitune.errors import WikituneError

    with pytest.raises(WikituneError, match="no corpus, training run or evaluation run"):
        write_report(tmp_path)


@pytest.mark.skipif(CHROMIUM is None, reason="Debian chromium is not installed (.ci/run installs it)")
def test_report_in_headless_chromium(study):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=[
            "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
            "--disable-sync", "--no-first-run"])
        try:
            page = browser.new_page()
            problems: list[str] = []
            page.on("console", lambda m: problems.append(m.text) if m.type in ("error", "warning") else None)
            page.on("pageerror", lambda e: problems.append(str(e)))
            page.on("requestfailed", lambda r: problems.append(f"failed: {r.url}"))
            page.goto((study / "report" / "index.html").as_uri())
            page.wait_for_load_state("load")
            images = page.evaluate("[...document.images].map(i => [i.getAttribute('src'), i.complete && i.naturalWidth > 0])")
            runs = page.evaluate("[...document.querySelectorAll('#results tbody tr')].map(tr => tr.cells[0].textContent)")
            dialogs = page.evaluate("typeof window.alert")  # the page ran no injected script that replaced it
        finally:
            browser.close()
    assert problems == []
    assert len(images) == 3 and all(ok for _, ok in images), images
    assert runs == ["eval-base", "eval-cpt"]
    assert dialogs == "function"


def test_results_json_has_paired_rows_in_the_comparison_schema(study):
    import jsonschema

    from wikitune import formats

    data = json.loads((study / "report" / "results.json").read_text(encoding="utf-8"))
    jsonschema.validate(data, formats.schema("comparison"))
    assert data["runs"] == ["base", "cpt"]
    own = {(r["run"], r["domain"]): r for r in data["rows"] if r["vs"] is None and r["metric"] == "exact_match"}
    assert own[("base", "anime")]["mean"] == 0.25 and own[("cpt", "anime")]["mean"] == 0.75
    diff = {r["domain"]: r for r in data["rows"] if r["vs"] == "base" and r["metric"] == "exact_match"}
    assert diff["anime"]["run"] == "cpt" and diff["anime"]["mean"] == 0.5 and diff["anime"]["n"] == 4
    assert diff["control"]["mean"] == 0.0 and diff["control"]["ci_low"] == diff["control"]["ci_high"] == 0.0
    md = (study / "report" / "report.md").read_text(encoding="utf-8")
    assert "cpt − base" in md and "n=4" in md


def test_every_recipe_is_compared_with_base_and_raw_cpt(tmp_path):
    from wikitune.study.report import Artifacts, study_comparison

    def records(correct):
        return [{"id": f"q{i}", "domain": "anime", "scores": {"exact_match": int(i < correct), "char_f1": float(i < correct)},
                 "flags": []} for i in range(6)]

    art = Artifacts(root=tmp_path, evals={name: {"summary": {}, "results": records(k)} for name, k in
                                          [("eval-base", 0), ("eval-raw-cpt", 1), ("eval-facts-cpt", 5), ("eval-rag", 3)]})
    pairs = {(r["run"], r["vs"]) for r in study_comparison(art)["rows"] if r["vs"]}
    assert pairs == {("raw-cpt", "base"), ("facts-cpt", "base"), ("rag", "base"), ("facts-cpt", "raw-cpt"), ("rag", "raw-cpt")}
    best = next(r for r in study_comparison(art)["rows"]
                if (r["run"], r["vs"], r["metric"]) == ("facts-cpt", "raw-cpt", "exact_match"))
    assert round(best["mean"], 6) == round(4 / 6, 6) and best["ci_low"] > 0


def test_the_report_opens_with_findings_generated_from_the_intervals(study):
    md = (study / "report" / "report.md").read_text(encoding="utf-8")
    assert md.index("## Findings") < md.index("## Results") < md.index("## Training") < md.index("## Corpus")
    findings = md[md.index("## Findings"):md.index("## Results")]
    # anime: 3/4 vs 1/4 on the same 4 questions, every pair +1 or 0: the interval excludes 0 only if
    # the bootstrap never draws the two unchanged questions alone; control: no change, no finding.
    data = json.loads((study / "report" / "results.json").read_text(encoding="utf-8"))
    anime = next(r for r in data["rows"] if (r["run"], r["vs"], r["domain"], r["metric"]) == ("cpt", "base", "anime", "exact_match"))
    claimed = "cpt beats base on anime" in findings
    assert claimed == (anime["ci_low"] > 0)
    assert "control" not in findings.split("other paired")[0]
    assert "have a 95% interval that includes 0" in findings or "has a 95% interval that includes 0" in findings


def test_findings_claim_only_intervals_that_exclude_zero():
    from wikitune.study.report import findings

    def row(run, vs, domain, mean, low, high):
        return {"run": run, "vs": vs, "domain": domain, "metric": "exact_match", "mean": mean, "ci_low": low, "ci_high": high, "n": 40}

    said = findings({"runs": [], "rows": [
        row("base", None, "anime", 0.1, 0.0, 0.2),
        row("facts-cpt", "raw-cpt", "anime", 0.3, 0.15, 0.45),
        row("facts-cpt", "base", "control", -0.2, -0.3, -0.1),
        row("raw-cpt", "base", "anime", 0.05, -0.05, 0.15),
    ]})
    assert said[0].startswith("facts-cpt beats raw-cpt on anime: exact_match +0.300 (95% paired bootstrap CI [+0.150, +0.450], n=40)")
    assert said[1].startswith("facts-cpt falls behind base on control: exact_match -0.200")
    assert said[2] == "1 other paired difference of exact_match has a 95% interval that includes 0: no finding is claimed there."
    assert len(said) == 3


def test_a_finding_over_seeds_must_hold_on_every_seed():
    from wikitune.study.report import seed_findings

    def comparison(low):
        return {"runs": [], "rows": [{"run": "facts-cpt", "vs": "raw-cpt", "domain": "anime", "metric": "exact_match",
                                      "mean": 0.3, "ci_low": low, "ci_high": 0.5, "n": 40}]}

    holds = seed_findings({"seed-1": comparison(0.1), "seed-2": comparison(0.05), "seed-3": comparison(0.2)})
    assert holds[0].startswith("facts-cpt beats raw-cpt on anime on every seed") and len(holds) == 2
    one_seed_fails = seed_findings({"seed-1": comparison(0.1), "seed-2": comparison(-0.01), "seed-3": comparison(0.2)})
    assert len(one_seed_fails) == 1 and one_seed_fails[0].startswith("1 other paired difference")


def test_training_table_shows_perplexity_and_the_data_mixture(study):
    md = (study / "report" / "report.md").read_text(encoding="utf-8")
    assert "| final_eval_ppl | 12.18 |" in md  # the key the training summaries really write
    mixture = md[md.index("### CPT data mixture"):]
    assert "| cpt | augment | aug | 0.3 | 90 | 1536 | 0.3 |" in mixture
