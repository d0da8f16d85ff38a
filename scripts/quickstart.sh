#!/usr/bin/env bash
# From a fresh clone to a trained LoRA file, downloading packages but no model:
#  1. .venv with artlab-kohya (no torch),
#  2. the vendored sd-scripts (git submodule, pinned) and its own environment vendor/venv with the trainer's
#     packages (the [trainer] extra: the versions we test against), unless ARTLAB_KOHYA_DIR points at an
#     install (its venv/ is found, e.g. kohya_ss's, or ARTLAB_KOHYA_PYTHON names its Python),
#  3. `artlab-kohya doctor --smoke`: checks the install and trains an 8-step LoRA at 64 px on a
#     random-initialised SD1.5 checkpoint it builds once (about a minute, 9 GB of memory),
#  4. a demo project with placeholder images, checked and planned. `artlab-kohya run demo/spec.yaml`
#     then trains it for real on SD 1.5 from the hub.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PY" -m venv .venv
.venv/bin/python -m pip install -q --disable-pip-version-check -e ".[test]"
if [ -z "${ARTLAB_KOHYA_DIR:-}" ]; then
  [ -f vendor/sd-scripts/train_network.py ] || git submodule update --init vendor/sd-scripts
  if [ -z "${ARTLAB_KOHYA_PYTHON:-}" ]; then
    [ -x vendor/venv/bin/python ] || "$PY" -m venv vendor/venv
    vendor/venv/bin/python -m pip install -q --disable-pip-version-check ".[trainer]"
  fi
fi
K=.venv/bin/artlab-kohya
$K doctor --smoke --plain
[ -f demo/spec.yaml ] || $K init --preset anime --name demo demo
[ -n "$(ls demo/img/10_demo/*.png 2>/dev/null)" ] || .venv/bin/python scripts/demo_dataset.py demo/img/10_demo --count 30
$K check demo/spec.yaml
$K plan demo/spec.yaml
echo "next: .venv/bin/artlab-kohya run demo/spec.yaml   (downloads SD 1.5 from the hub, then trains)"
