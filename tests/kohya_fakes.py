"""Stand-ins for an sd-scripts install and a trainer environment, built in a temporary folder.

- `fake_sd_scripts`: a folder whose train_network.py / sdxl_train_network.py build, with argparse, the
  parser described by the bundled surface (or by any options given), plus library/ and a .git.
- `fake_git`: the files git keeps for a checkout, in the layouts git writes them.
- `fake_trainer`: an executable "python" that runs this interpreter without site-packages, on a
  site folder holding only the given package metadata and fake torch, accelerate and lycoris modules
  (for those packages): what our probe scripts see in a real trainer environment, without torch.
"""

from __future__ import annotations

import json
import stat
import sys
from pathlib import Path
from typing import Any

PINNED = "48d368fa557731ad0488c07304dfeba8c07910eb"
OTHER_COMMIT = "0123456789abcdef0123456789abcdef01234567"
SURFACE_JSON = Path(__file__).resolve().parent.parent / "artlab_kohya" / "trainer" / "data" / "surface-48d368fa.json"

_SCRIPT = '''\
"""Fake sd-scripts {script}: setup_parser() from a surface dump."""

import argparse
import json
from pathlib import Path


def int_or_float(value):
    return float(value) if "." in value else int(value)


TYPES = {{"int": int, "float": float, "str": str, "Path": Path, "int_or_float": int_or_float}}
OPTIONS = json.loads({options!r})


def setup_parser():
    parser = argparse.ArgumentParser()
    for dest, o in OPTIONS.items():
        if o["type"] == "flag":
            parser.add_argument("--" + dest, action="store_true")
            continue
        kwargs = {{"type": TYPES[o["type"]], "default": o["default"]}}
        if o["nargs"]:
            kwargs["nargs"] = o["nargs"]
        if o["choices"] is not None:
            kwargs["choices"] = o["choices"]
        parser.add_argument("--" + dest, **kwargs)
    return parser
'''

TESTED_PACKAGES = {
    "torch": "2.14.1",
    "accelerate": "1.6.0",
    "transformers": "4.54.1",
    "diffusers": "0.32.1",
    "huggingface-hub": "0.34.3",
    "safetensors": "0.4.5",
    "lycoris-lora": "3.4.0",
}
H100 = {"name": "NVIDIA H100 80GB HBM3", "total_memory": 85_520_809_984, "major": 9, "minor": 0}


def bundled_options(script: str) -> dict[str, Any]:
    return json.loads(SURFACE_JSON.read_text(encoding="utf-8"))["scripts"][script]


def fake_sd_scripts(
    folder: Path,
    *,
    commit: str | None = PINNED,
    options: dict[str, dict[str, Any]] | None = None,
    prelude: str = "",
) -> Path:
    """An sd-scripts folder; `prelude` is code put at the top of train_network.py (imports, side effects)."""
    (folder / "library").mkdir(parents=True, exist_ok=True)
    (folder / "library" / "__init__.py").write_text("")
    (folder / "library" / "train_util.py").write_text("# fake\n")
    for script in ("train_network.py", "sdxl_train_network.py"):
        opts = options if options is not None else bundled_options(script)
        text = _SCRIPT.format(script=script, options=json.dumps(opts))
        if script == "train_network.py" and prelude:
            text = prelude + "\n" + text
        (folder / script).write_text(text, encoding="utf-8")
    if commit is not None:
        fake_git(folder / ".git", commit)
    return folder


def fake_git(git_dir: Path, commit: str, *, ref: str | None = None, packed: bool = False) -> Path:
    """A .git folder: detached HEAD (ref None), or HEAD -> ref as a loose ref or in packed-refs."""
    git_dir.mkdir(parents=True, exist_ok=True)
    if ref is None:
        (git_dir / "HEAD").write_text(commit + "\n")
        return git_dir
    (git_dir / "HEAD").write_text(f"ref: {ref}\n")
    if packed:
        (git_dir / "packed-refs").write_text(
            "# pack-refs with: peeled fully-peeled sorted \n"
            f"{'1' * 40} refs/remotes/origin/dev\n"
            f"{commit} {ref}\n"
            f"^{'2' * 40}\n"
        )
    else:
        (git_dir / ref).parent.mkdir(parents=True, exist_ok=True)
        (git_dir / ref).write_text(commit + "\n")
    return git_dir


_TORCH = """\
from types import SimpleNamespace

__version__ = {version!r}
version = SimpleNamespace(cuda={cuda!r})
_GPUS = {gpus!r}


class cuda:
    is_available = staticmethod(lambda: bool(_GPUS))
    device_count = staticmethod(lambda: len(_GPUS))
    get_device_properties = staticmethod(lambda i: SimpleNamespace(**_GPUS[i]))
    is_bf16_supported = staticmethod(lambda: {bf16!r})


backends = SimpleNamespace()
"""


def fake_trainer(
    folder: Path,
    packages: dict[str, str] | None = None,
    *,
    cuda: str | None = "13.0",
    gpus: list[dict[str, Any]] | None = None,
    bf16: bool = True,
    torch: bool = True,
) -> str:
    """An executable trainer "python" whose environment holds exactly `packages` (name -> version)."""
    packages = dict(TESTED_PACKAGES if packages is None else packages)
    site = folder / "site"
    site.mkdir(parents=True, exist_ok=True)
    for name, version in packages.items():
        info = site / f"{name.replace('-', '_')}-{version}.dist-info"
        info.mkdir(exist_ok=True)
        (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n")
    for package, module in (("accelerate", "accelerate"), ("lycoris-lora", "lycoris")):
        if package in packages:  # importable, as the probe asks (lycoris: its kohya module)
            (site / module).mkdir(exist_ok=True)
            (site / module / "__init__.py").write_text("")
            (site / module / "kohya.py").write_text("")
    if torch and "torch" in packages:
        (site / "torch").mkdir(exist_ok=True)
        gpu_list = [H100] if gpus is None else gpus
        (site / "torch" / "__init__.py").write_text(
            _TORCH.format(version=packages["torch"] + "+cu130", cuda=cuda, gpus=gpu_list, bf16=bf16)
        )
    python = folder / "python"
    python.write_text(f"#!/bin/sh\nPYTHONPATH='{site}' exec '{sys.executable}' -S \"$@\"\n")
    python.chmod(python.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    return str(python)
