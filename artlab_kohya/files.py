"""Writing files so that a reader never sees half of one: a temp file in the same folder, then a rename;
and a file size as people read it."""

from __future__ import annotations

import contextlib
import functools
import json
import os
import re
import shutil
import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any


@functools.cache
def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def write_atomic(path: Path, content: str | bytes) -> None:
    """Replace `path` with `content` in one step (keeping its mode if it existed); text is UTF-8."""
    data = content.encode("utf-8") if isinstance(content, str) else content
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        if path.exists():
            shutil.copymode(path, tmp)
        else:  # mkstemp makes 0600; a new file gets what the user's umask says, as open() would give
            os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


_TEMP = re.compile(r"\.(.+)\.[A-Za-z0-9_]+\.tmp")  # write_atomic's mkstemp names: .NAME.XXXXXXXX.tmp


def stale_temps(folder: Path, names: Iterable[str]) -> list[Path]:
    """Temporary files write_atomic left in `folder` for the given file names: a process killed between
    its write and its rename leaves one, hidden, beside the file it was replacing."""
    wanted = set(names)
    try:
        entries = os.listdir(folder)
    except OSError:
        return []
    return [folder / n for n in entries if (m := _TEMP.fullmatch(n)) is not None and m.group(1) in wanted]


def write_json_atomic(path: Path, data: dict[str, Any]) -> None:
    write_atomic(path, json.dumps(data, indent=1, sort_keys=True) + "\n")


def human_size(n: int) -> str:
    """A byte count in B, KB, MB or GB (powers of 1000): 999 B, 1.2 MB."""
    size = float(n)
    for unit in ("B", "KB", "MB"):
        if size < 1000:
            return f"{n} B" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1000
    return f"{size:.1f} GB"
