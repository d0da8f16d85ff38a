"""Finding the sd-scripts install that runs a spec, and the Python that runs it."""

from __future__ import annotations

import os
import sys
from pathlib import Path

from .command import Install
from .spec.model import Spec

ENV_DIR = "ARTLAB_KOHYA_DIR"
VENDORED = Path(__file__).resolve().parent.parent / "vendor" / "sd-scripts"


def find_install(spec: Spec) -> Install:
    """The spec's kohya.dir, else $ARTLAB_KOHYA_DIR, else the vendored submodule."""
    if spec.kohya.dir is not None:
        folder = spec.kohya.dir
    elif os.environ.get(ENV_DIR):
        folder = Path(os.environ[ENV_DIR]).expanduser()
    else:
        folder = VENDORED
    python = str(spec.kohya.python) if spec.kohya.python is not None else sys.executable
    return Install(dir=folder.resolve(), python=python)
