#!/usr/bin/env bash
# From a fresh clone to the main job: installs artlab-kohya in .venv, writes a demo project with placeholder
# images, then checks it and shows its plan (steps, saves, LoRA size) and the kohya files it renders.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PY" -m venv .venv
.venv/bin/python -m pip install -q --disable-pip-version-check -e '.[test]'
K=.venv/bin/artlab-kohya
[ -f demo/spec.yaml ] || $K init --preset anime --name demo demo
[ -n "$(ls demo/img/10_demo/*.png 2>/dev/null)" ] || .venv/bin/python scripts/demo_dataset.py demo/img/10_demo --count 30
$K check demo/spec.yaml
$K plan demo/spec.yaml
