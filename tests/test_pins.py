"""pins.py is the one table of what we test against; pyproject's `trainer` extra must say the same."""

from __future__ import annotations

import re
from pathlib import Path

from artlab_kohya.build.tomlio import tomllib
from artlab_kohya.trainer import pins

ROOT = Path(__file__).resolve().parent.parent


def _extra(name: str) -> dict[str, str]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    out = {}
    for req in project["optional-dependencies"][name]:
        m = re.match(r"([A-Za-z0-9_.-]+)\s*([=<>!~]=?\s*[^;]+)?", req)
        assert m, req
        out[m.group(1).lower()] = (m.group(2) or "").strip()
    return out


def test_the_trainer_extra_pins_what_we_test():
    extra = _extra("trainer")
    for package, tested in pins.TESTED_VERSIONS.items():
        if tested.endswith("*"):  # a range (torch: the build for your CUDA)
            assert package in extra
            continue
        assert extra.get(package) == f"=={tested}", f"pyproject pins {package} {extra.get(package)}, pins.py {tested}"


def test_install_hints_name_the_tested_versions():
    for module, package in (
        ("accelerate", "accelerate"),
        ("transformers", "transformers"),
        ("lycoris", "lycoris-lora"),
    ):
        assert f"{package}=={pins.TESTED_VERSIONS[package]}" in pins.INSTALL_HINTS[module]


def test_the_vendored_submodule_is_the_pinned_commit():
    import subprocess

    out = subprocess.run(
        ["git", "-C", str(ROOT), "ls-tree", "HEAD", "vendor/sd-scripts"], capture_output=True, text=True, check=False
    ).stdout
    if not out:  # not a git checkout (an sdist): nothing to compare
        return
    assert out.split()[2] == pins.PINNED_COMMIT
