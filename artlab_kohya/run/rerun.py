"""`artlab-kohya rerun RUN_DIR`: the run's lock, run again in a new folder.

The locked spec already pins everything the first run resolved: the hub commit (as the revision),
the local model path, the family, repeats as numbers, the install. What is checked again here is
what the lock cannot pin by itself: that the model file still has the recorded sha256.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from ..errors import ArtlabError
from ..spec import Issue, LoadedSpec, SpecError
from ..spec.load import load_spec_data, parse_text, read_text
from ..spec.yamlpos import PathKey
from .folder import LOCK_FILE
from .train import RunOptions


class RerunError(ArtlabError):
    pass


# What rerun reads of the lock's model record, each a text.
_MODEL_KEYS = ("source", "path", "sha256")


def load_lock(
    run_dir: Path, *, runs_root: Path | None = None, plain: bool | None = None
) -> tuple[LoadedSpec, RunOptions]:
    """The run's lock as a loaded spec and the options to run it again.

    A lock that cannot be read, is no lock, or whose spec no longer validates raises SpecError located in
    the lock file (exit 2, as for a spec); a model file that is gone or changed raises RerunError.
    """
    lock_path = run_dir / LOCK_FILE
    try:
        lock, lines = parse_text(read_text(lock_path, "lock"), lock_path)
        _check_lock(lock, lines, lock_path)
    except SpecError as exc:
        raise SpecError(exc.issues, run_dir) from None
    header = f"# Rerun of {run_dir.resolve()}: its locked spec, unchanged.\n"
    text = header + yaml.safe_dump(lock["spec"], sort_keys=False, allow_unicode=True)
    spec_lines = {path[1:]: line for path, line in lines.items() if path[:1] == ("spec",)}
    try:
        loaded = load_spec_data(lock["spec"], spec_lines, text, lock_path)
    except SpecError as exc:
        raise SpecError(
            [Issue(i.severity, ("spec", *i.path), i.message, i.where) for i in exc.issues], run_dir
        ) from None
    model = lock["model"]
    if model["source"] == "local":
        from ..models.hashing import sha256_file

        path = Path(model["path"])
        if not path.exists():
            raise RerunError(f"the base model {path} is gone (sha256 {model['sha256']})")
        if sha256_file(path) != model["sha256"]:
            raise RerunError(f"{path} changed since the run: its sha256 is no longer {model['sha256']}")
    tokenizer = lock.get("tokenizer_cache_dir")
    return loaded, RunOptions(
        runs_root=runs_root or run_dir.resolve().parent.parent,
        plain=plain,
        rerun_of=run_dir.resolve(),
        tokenizer_dir=Path(tokenizer) if tokenizer and Path(tokenizer).is_dir() else None,
        expect_sha256=model["sha256"],
    )


def _check_lock(lock: Any, lines: dict[PathKey, int], lock_path: Path) -> None:
    """The keys rerun relies on, each with its type; SpecError located in the lock otherwise."""

    def issue(path: PathKey, message: str) -> Issue:
        line = next((lines[path[:end]] for end in range(len(path), -1, -1) if path[:end] in lines), 1)
        return Issue("error", path, message, f"{lock_path.name}:{line}")

    if not isinstance(lock, dict) or not {"spec", "model"} <= lock.keys():
        raise SpecError([issue((), "not an artlab-kohya run lock (a YAML table with spec: and model:)")])
    problems = []
    if not isinstance(lock["spec"], dict):
        problems.append(issue(("spec",), "must be a table (the locked spec)"))
    model = lock["model"]
    if not isinstance(model, dict):
        problems.append(issue(("model",), "must be a table (the resolved model)"))
    else:
        for key in _MODEL_KEYS:
            if key not in model:
                problems.append(issue(("model", key), "is required"))
            elif not isinstance(model[key], str):
                problems.append(issue(("model", key), f"must be text (got {model[key]!r})"))
    tokenizer = lock.get("tokenizer_cache_dir")
    if tokenizer is not None and not isinstance(tokenizer, str):
        problems.append(issue(("tokenizer_cache_dir",), f"must be a path (got {tokenizer!r})"))
    if problems:
        raise SpecError(problems)
