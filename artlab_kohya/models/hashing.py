"""SHA-256 of model files, cached by path, size and modification time (hashing 7 GB takes a while)."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .. import settings
from ..files import write_json_atomic
from .checkpoint import ModelError

_CHUNK = 8 * 1024 * 1024
_SHA256_CACHE = "sha256.json"


def _load_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def sha256_file(
    path: str | os.PathLike[str],
    *,
    cache_dir: str | os.PathLike[str] | None = None,
    on_progress: Callable[[int, int], None] | None = None,
) -> str:
    """SHA-256 of a file, read once in 8 MiB chunks and remembered by (absolute path, size, mtime_ns).

    A checkpoint is gigabytes; hashing it again on every run would cost seconds each time. Touching or
    replacing the file changes its size or mtime, so the hash is computed again. The cache is a JSON file
    under `cache_dir` (default `settings.cache_root()`), replaced atomically so a crash never leaves it half-written.
    `on_progress(done, total)` is called after each chunk of a fresh computation.
    """
    real = Path(path).expanduser().resolve()
    try:
        st = real.stat()
    except OSError as e:
        raise ModelError(f"cannot read {path}: {e.strerror or e}") from None
    cache_file = Path(cache_dir).expanduser() / _SHA256_CACHE if cache_dir else settings.cache_root() / _SHA256_CACHE
    key = str(real)
    known = _load_json(cache_file).get("files")
    entry = known.get(key) if isinstance(known, dict) else None
    if isinstance(entry, dict) and entry.get("size") == st.st_size and entry.get("mtime_ns") == st.st_mtime_ns:
        cached = entry.get("sha256")
        if isinstance(cached, str) and re.fullmatch(r"[0-9a-f]{64}", cached):
            return cached

    digest = hashlib.sha256()
    buf = bytearray(_CHUNK)
    view = memoryview(buf)
    done = 0
    try:
        with real.open("rb", buffering=0) as f:
            while n := f.readinto(buf):
                digest.update(view[:n])
                done += n
                if on_progress is not None:
                    on_progress(done, st.st_size)
    except OSError as e:
        raise ModelError(f"cannot read {path}: {e.strerror or e}") from None
    sha = digest.hexdigest()

    after = real.stat()
    if (after.st_size, after.st_mtime_ns) != (st.st_size, st.st_mtime_ns):
        return sha  # changed while we read it: the hash is of a moving target, so don't remember it
    data = _load_json(cache_file)  # re-read: another process may have added entries meanwhile
    files = data.get("files")
    if not isinstance(files, dict):
        files = {}
    files = {k: v for k, v in files.items() if os.path.exists(k)}  # forget deleted files
    files[key] = {"size": st.st_size, "mtime_ns": st.st_mtime_ns, "sha256": sha}
    with contextlib.suppress(OSError):  # a read-only cache only costs speed
        write_json_atomic(cache_file, {"version": 1, "files": files})
    return sha
