#!/usr/bin/env bash
# The test suite as CI runs it: a venv in .venv (made if missing), the package with its test extras, pytest.
# Tests marked `engine` run only when the real sd-scripts is set up (see README); they skip otherwise.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PY" -m venv .venv
.venv/bin/python -m pip install -q --disable-pip-version-check -e '.[test]'
exec .venv/bin/python -m pytest -q "$@"
