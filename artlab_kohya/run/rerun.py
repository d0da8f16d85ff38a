"""`artlab-kohya rerun RUN_DIR`: the run's lock, run again in a new folder.

The locked spec already pins everything the first run resolved: the hub commit (as the revision),
the local model path, the family, repeats as numbers, the install. What is checked again here is
what the lock cannot pin by itself: that the model file still has the recorded sha256.
"""

from __future__ import annotations

from pathlib import Path

import yaml

from ..errors import ArtlabError
from ..spec import LoadedSpec, SpecError
from ..spec.load import load_spec_text
from .folder import LOCK_FILE
from .train import RunOptions


class RerunError(ArtlabError):
    pass


def load_lock(
    run_dir: Path, *, runs_root: Path | None = None, plain: bool | None = None
) -> tuple[LoadedSpec, RunOptions]:
    lock_path = run_dir / LOCK_FILE
    try:
        lock = yaml.safe_load(lock_path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise RerunError(f"{lock_path}: cannot read the lock ({exc.strerror or exc})") from None
    if not isinstance(lock, dict) or "spec" not in lock or "model" not in lock:
        raise RerunError(f"{lock_path} is not an artlab-kohya run lock")
    header = f"# Rerun of {run_dir.resolve()}: its locked spec, unchanged.\n"
    text = header + yaml.safe_dump(lock["spec"], sort_keys=False, allow_unicode=True)
    try:
        loaded = load_spec_text(text, lock_path)
    except SpecError as exc:
        raise RerunError("the locked spec no longer validates:\n" + "\n".join(str(i) for i in exc.issues)) from None
    model = lock["model"]
    if model.get("source") == "local":
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
        expect_sha256=model.get("sha256"),
    )
