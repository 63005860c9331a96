#!/usr/bin/env bash
# Rebuild the demo's base model, shipped in the package (src/wikitune/data/organism): the general
# world, its BPE and the tiny gpt-oss trained on it in full, with BaseConfig's default settings
# (wikitune/organism/base.py). tests/organism/test_shipped.py checks the shipped files against them.
#   bash scripts/build_organism.sh          # about 15 minutes on 2 CPU cores
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
.venv/bin/python -m pip install -q --disable-pip-version-check -e .
target=src/wikitune/data/organism
rm -rf "$target.new"
.venv/bin/wikitune organism base --out "$target.new"
rm -rf "$target"
mv "$target.new" "$target"
du -sh "$target"
