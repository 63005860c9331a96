"""The house's rules, checked: layers (import-linter), imports at the top, a CLI that starts without torch."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

from tests.conftest import REPO

PACKAGE = REPO / "src" / "wikitune"


def test_layer_contract_is_kept():
    lint = Path(sys.executable).with_name("lint-imports")
    result = subprocess.run([str(lint), "--config", str(REPO / "pyproject.toml")], cwd=REPO, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    assert "1 kept, 0 broken" in result.stdout


def _imports_inside_functions(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found = []
    for func in ast.walk(tree):
        if not isinstance(func, (ast.FunctionDef, ast.AsyncFunctionDef)):
            continue
        for node in ast.walk(func):
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                if not node.level:
                    names = [node.module or ""]
                elif node.module:
                    names = ["." * node.level + node.module]
                else:  # `from . import sibling`
                    names = ["." * node.level + alias.name for alias in node.names]
            else:
                continue
            for name in names:
                if name.startswith(("wikitune", ".")):
                    found.append(f"{path}:{node.lineno} {name}")
    return found


def test_no_wikitune_import_inside_a_function_outside_the_cli():
    offenders = [hit for path in sorted(PACKAGE.rglob("*.py")) if path.name != "cli.py"
                 for hit in _imports_inside_functions(path)]
    assert offenders == []


def test_the_check_finds_an_import_inside_a_function(tmp_path):
    probe = tmp_path / "probe.py"
    probe.write_text("import json\nfrom wikitune import formats\n\ndef f():\n    from wikitune.formats import read_json\n"
                     "    import torch\n    from . import sibling\n    return read_json\n", encoding="utf-8")
    hits = _imports_inside_functions(probe)
    assert [h.split(" ", 1)[1] for h in hits] == ["wikitune.formats", ".sibling"]


def test_cli_help_extract_and_crawl_do_not_load_torch(tmp_path):
    script = (
        "import sys\n"
        "from wikitune.cli import app\n"
        "for args in (['--help'], ['extract', 'demo', '--out', sys.argv[1], '--workers', '1'], ['crawl', '--help']):\n"
        "    try:\n"
        "        app(args, standalone_mode=False)\n"
        "    except SystemExit:\n"
        "        pass\n"
        "import wikitune.corpus.crawl\n"
        "heavy = sorted(m for m in ('torch', 'transformers', 'peft', 'trl', 'datasets', 'matplotlib') if m in sys.modules)\n"
        "print('HEAVY', heavy)\n"
    )
    out = tmp_path / "corpus"
    result = subprocess.run([sys.executable, "-c", script, str(out)], cwd=REPO, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-2000:]
    assert (out / "manifest.json").is_file()  # the extract really ran
    assert "HEAVY []" in result.stdout
