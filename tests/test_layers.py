"""The import direction: each package imports only the packages below it (see CONTRIBUTING.md).

    cli -> experiments -> run -> build -> dataset -> trainer -> models -> spec -> (settings, files, errors, machine)

A module may import its own package and any lower one; an arrow the other way fails here.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "artlab_kohya"
LAYERS = ["", "spec", "models", "trainer", "dataset", "build", "run", "experiments", "cli"]
BASE = {
    "__init__",
    "settings",
    "files",
    "errors",
    "machine",
}  # the bottom layer: imports nothing of ours but each other


def _layer(module: tuple[str, ...]) -> int:
    """The rank of a dotted module inside artlab_kohya (() is the package itself)."""
    if module and module[0] == "__main__":
        return LAYERS.index("cli")
    if not module or module[0] not in LAYERS:  # the base modules, or a name of the package (__version__)
        return 0
    return LAYERS.index(module[0])


def _imports(path: Path) -> list[tuple[int, tuple[str, ...]]]:
    """(line, imported module inside artlab_kohya) for every import of ours in the file."""
    rel = path.relative_to(PACKAGE).with_suffix("").parts
    package = rel[:-1] if rel[-1] != "__init__" else rel[:-1]
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - (node.level - 1)] if node.level > 1 else package
                target = base + tuple(node.module.split(".") if node.module else ())
                if not node.module:  # from . import x: x may be a module
                    found += [(node.lineno, base + (a.name,)) for a in node.names]
                    continue
                found.append((node.lineno, target))
            elif node.module and node.module.split(".")[0] == "artlab_kohya":
                found.append((node.lineno, tuple(node.module.split(".")[1:])))
        elif isinstance(node, ast.Import):
            found += [
                (node.lineno, tuple(a.name.split(".")[1:]))
                for a in node.names
                if a.name.split(".")[0] == "artlab_kohya"
            ]
    return found


MODULES = sorted(p for p in PACKAGE.rglob("*.py") if "inside" not in p.relative_to(PACKAGE).parts)


def test_every_module_is_in_a_layer():
    for path in MODULES:
        rel = path.relative_to(PACKAGE).with_suffix("").parts
        assert rel[0] in BASE | {"__main__"} or rel[0] in LAYERS, f"{path}: add its package to LAYERS"


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(PACKAGE)))
def test_imports_point_down(path: Path):
    rel = path.relative_to(PACKAGE).with_suffix("").parts
    own = _layer(rel if rel[0] != "__init__" else ())
    wrong = [
        f"{path.name}:{line} imports artlab_kohya.{'.'.join(target)}"
        for line, target in _imports(path)
        if _layer(target) > own
    ]
    assert not wrong, "imports against the pipeline's direction:\n" + "\n".join(wrong)


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(PACKAGE)))
def test_imports_name_modules_that_exist(path: Path):
    """Lazy imports inside functions run only when called: a wrong relative import would wait for a user."""
    for line, target in _imports(path):
        where = PACKAGE.joinpath(*target)
        if target and not (where.with_suffix(".py").is_file() or (where / "__init__.py").is_file()):
            parent = PACKAGE.joinpath(*target[:-1])  # `from .pkg import name`: name is in pkg
            assert (
                (parent.with_suffix(".py").is_file() or (parent / "__init__.py").is_file())
                and len(target) > 1
                or target[0] in {"__version__"}
            ), f"{path.name}:{line}: no module artlab_kohya.{'.'.join(target)}"


def test_scripts_run_inside_the_trainer_import_nothing_of_ours():
    """trainer/inside/ runs in the trainer's Python, where artlab-kohya need not be installed."""
    for path in (PACKAGE / "trainer" / "inside").glob("*.py"):
        assert not _imports(path), path


def test_the_checker_sees_an_upward_import(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """A spec module importing run/ is caught (the test above cannot pass by seeing nothing)."""
    fake = PACKAGE / "spec" / "_layers_probe.py"
    fake.write_text("from ..run.train import run_spec\nfrom .model import Spec\n", encoding="utf-8")
    try:
        imports = _imports(fake)
        assert imports == [(1, ("run", "train")), (2, ("spec", "model"))]
        assert [_layer(t) > _layer(("spec",)) for _, t in imports] == [True, False]
    finally:
        fake.unlink()
