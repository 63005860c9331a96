#!/usr/bin/env bash
# The demo: the whole study on CPU, on the fictional anime wiki shipped in the package and a tiny
# random gpt-oss: corpus -> QA -> CPT -> SFT -> evaluation of base/CPT/SFT/RAG -> report.
#   bash scripts/demo.sh            # writes runs/demo; prints where the report is
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
.venv/bin/python -m pip install -q --disable-pip-version-check -e .
.venv/bin/wikitune run "$@"
