#!/usr/bin/env bash
# The demo: the whole study on CPU, on the fictional anime wiki shipped in the package and the
# model organism's base model (a tiny gpt-oss trained on a general world, shipped too):
# corpus -> QA -> CPT recipes -> SFT -> evaluation of base/recipes/SFT/RAG -> report.
#   bash scripts/demo.sh                     # writes runs/demo; prints where the report is
#   bash scripts/demo.sh 'seeds=[42,43,44]'  # the study on three seeds, a report over all of them
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
.venv/bin/python -m pip install -q --disable-pip-version-check -e .
.venv/bin/wikitune run "$@"
