#!/usr/bin/env bash
# The demo: build a corpus from the fictional anime wiki shipped in the package, then describe it.
#   bash scripts/demo.sh            # writes corpus/demo
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
.venv/bin/python -m pip install -q --disable-pip-version-check -e .
.venv/bin/wikitune extract demo --out corpus/demo \
    --root 日本のアニメ作品 --root アニメ関連人物 --root アニメ関連企業
.venv/bin/wikitune corpus stats corpus/demo --expect src/wikitune/data/demo_expect.txt
