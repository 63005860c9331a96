#!/usr/bin/env bash
# Run the whole test suite in a fresh-or-reused virtual environment (.venv), installing what it needs.
#   bash scripts/test.sh            # everything, slow end-to-end tests included
#   bash scripts/test.sh -m "not slow" -x
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
.venv/bin/python -m pip install -q --disable-pip-version-check -e '.[test]'
exec .venv/bin/python -m pytest -q "$@"
