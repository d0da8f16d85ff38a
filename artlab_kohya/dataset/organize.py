"""From a flat folder of images and captions to kohya's `N_name/` layout, without touching the source.

sd-scripts reads repeats and class tokens from the folder name (`10_sks`), so a dataset is usually
re-arranged by hand before its first run. Images are hard-linked where the filesystem allows it (no
space used, the source stays as it is), else copied; caption files are always copied, because
captioning and `caption edit` later write to them and a hard link would carry those edits back into
the source.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from ..errors import ArtlabError
from ..spec import guide
from .images import list_images

__all__ = ["OrganizeError", "Organized", "auto_repeats", "organize"]

Mode = Literal["link", "copy", "symlink"]
_NAME = re.compile(r"^[^/\\\x00]+$")


class OrganizeError(ArtlabError):
    """The layout cannot be built; the message is one line for the user."""


@dataclass
class Organized:
    folder: Path
    repeats: int
    images: int = 0
    captions: int = 0
    linked: int = 0
    copied: int = 0
    symlinked: int = 0
    skipped: list[str] = field(default_factory=list)  # image-like files sd-scripts would not use


def auto_repeats(
    src: Path,
    *,
    target_steps: int = guide.MIN_STEPS,
    epochs: int = 10,
    batch_size: int = 1,
    resolution: int = 512,
    buckets: bool = True,
) -> tuple[int, str]:
    """The smallest repeats whose total reaches target_steps, derived exactly as `plan` derives
    `repeats: auto` (same bucket math), and the sentence that explains it."""
    from pydantic import ValidationError

    from ..spec.load import describe_errors
    from ..spec.model import Spec
    from .images import ImageHeaderError, read_sizes
    from .steps import solve_auto_repeats

    sizes = [r for r in read_sizes(_list(src)) if not isinstance(r, ImageHeaderError)]
    if not sizes:
        raise OrganizeError(f"no readable images in {src}: nothing to derive repeats from")
    data = {
        "model": {"source": "sd15"},
        "network": {"type": "lora"},
        "dataset": {
            "resolution": resolution,
            "batch_size": batch_size,
            "target_steps": target_steps,
            "buckets": {"enabled": buckets},
            "subsets": [{"path": str(src), "repeats": "auto"}],
        },
        "training": {"epochs": epochs},
    }
    try:
        spec = Spec.model_validate(data, context={"base_dir": src.parent})
        repeats, why = solve_auto_repeats(spec, [sizes], [None])
    except ValidationError as exc:  # an option beyond the spec's bounds (e.g. --epochs 100000)
        path, message = describe_errors(exc, data)[0]
        raise OrganizeError(f"--{str(path[-1]).replace('_', '-')} {message}") from None
    except ValueError as exc:  # buckets that cannot hold the resolution
        raise OrganizeError(f"--resolution {resolution}: {exc}") from None
    return repeats[0], why


def organize(
    src: str | os.PathLike[str],
    out: str | os.PathLike[str],
    name: str,
    repeats: int,
    *,
    mode: Mode = "link",
    caption_extension: str = ".txt",
) -> Organized:
    """Build OUT/<repeats>_<name>/ from the images sd-scripts would pick up in SRC, captions paired.

    Refuses to write into an existing non-empty folder or into SRC itself; never moves or changes a
    file of SRC. A file that cannot be read or placed stops it with an OrganizeError naming the file,
    and what was placed so far is removed again, so a second try starts from the same state.
    """
    src_path, out_path = Path(src), Path(out)
    if not src_path.is_dir():
        raise OrganizeError(f"{src_path} is not a folder")
    if repeats < 1:
        raise OrganizeError(f"repeats must be at least 1 (got {repeats})")
    if not _NAME.match(name) or name in (".", ".."):
        raise OrganizeError(f"--name {name!r} cannot be a folder name")
    target = out_path / f"{repeats}_{name}"
    try:
        inside = _inside(target, src_path)
    except (OSError, RuntimeError) as exc:  # RuntimeError: a symlink loop (Python < 3.13)
        raise OrganizeError(f"{target} cannot be resolved: {exc}") from None
    if inside:
        raise OrganizeError(f"{target} is inside {src_path}: the source folder is never written to")
    try:
        if target.exists() and any(target.iterdir()):
            raise OrganizeError(f"{target} already exists and is not empty; choose another --out or --name")
    except OSError as exc:
        raise OrganizeError(f"{target} cannot be read: {exc.strerror or exc}") from None
    images = _list(src_path)
    if not images:
        raise OrganizeError(f"no images in {src_path} that sd-scripts would use")
    result = Organized(folder=target, repeats=repeats)
    result.skipped = _skipped(src_path, {p.name for p in images}, caption_extension)
    made = not target.exists()
    try:
        target.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OrganizeError(f"cannot create {target}: {exc.strerror or exc}") from None
    placed: list[Path] = []
    source = src_path
    try:
        for image in images:
            source = image
            how = _place(image, target / image.name, mode)
            placed.append(target / image.name)
            setattr(result, how, getattr(result, how) + 1)
            result.images += 1
            caption = image.with_suffix(caption_extension)
            if caption.is_file():  # as sd-scripts: anything else under the name is no caption
                source = caption
                shutil.copy2(caption, target / caption.name)
                placed.append(target / caption.name)
                result.captions += 1
    except (OSError, RuntimeError) as exc:  # RuntimeError: resolving a symlink loop (symlink mode)
        _remove(placed, target if made else None)
        why = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise OrganizeError(
            f"{source}: {why}; nothing was left in {target} (fix or remove the file, then retry)"
        ) from None
    return result


def _list(src: Path) -> list[Path]:
    try:
        return list_images(src)
    except OSError as exc:  # no permission, a symlink loop
        raise OrganizeError(f"{src} cannot be read: {exc.strerror or exc}") from None


def _remove(placed: list[Path], folder: Path | None) -> None:
    """Undo a partial organize: the files placed, and the folder when this run made it."""
    with contextlib.suppress(OSError):
        for path in placed:
            path.unlink(missing_ok=True)
        if folder is not None:
            folder.rmdir()


def _place(src: Path, dst: Path, mode: Mode) -> str:
    """Put src at dst; the counter name of what was done."""
    if mode == "link":
        try:
            os.link(src, dst)
            return "linked"
        except OSError:  # another filesystem, or one without hard links: copy instead
            pass
    if mode == "symlink":
        dst.symlink_to(src.resolve())
        return "symlinked"
    shutil.copy2(src, dst)
    return "copied"


def _inside(path: Path, folder: Path) -> bool:
    path, folder = path.resolve(), folder.resolve()
    return path == folder or folder in path.parents


def _skipped(src: Path, images: set[str], caption_extension: str) -> list[str]:
    image_like = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".gif", ".tif", ".tiff", ".avif", ".heic")
    with os.scandir(src) as entries:
        names = [e.name for e in entries if e.name not in images and not e.name.startswith(".") and _is_file(e)]
    return sorted(n for n in names if n.lower().endswith(image_like) and not n.endswith(caption_extension))


def _is_file(entry: os.DirEntry[str]) -> bool:
    try:
        return entry.is_file()
    except OSError:  # a symlink loop
        return False
