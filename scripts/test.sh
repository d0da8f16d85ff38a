#!/usr/bin/env bash
# The checks as CI runs them: a venv in .venv (made if missing), the package with its dev extras, then
# ruff (lint and format), mypy and pytest. Tests marked `engine` run only when the real sd-scripts is set
# up (CONTRIBUTING.md); they skip otherwise. Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PY" -m venv .venv
.venv/bin/python -m pip install -q --disable-pip-version-check -e '.[dev]'
.venv/bin/ruff check .
.venv/bin/ruff format --check .
.venv/bin/mypy artlab_kohya
exec .venv/bin/python -m pytest -q "$@"
