"""`dataset prepare`: a resized copy of a dataset whose sides are multiples of 64, captions paired.

The guide prepares images with an external batch tool (resize, crop, save) before training; this is
that step with Pillow. EXIF orientation is applied (sd-scripts ignores it and would train a phone photo
sideways), everything becomes RGB (transparent pixels over white), and the source is only read.
`--bucket` crops each image to the bucket sd-scripts would put it in, the way sd-scripts itself resizes
(cover the bucket, then crop the centre), so what is on disk is what trains.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from ..errors import ArtlabError
from .buckets import BucketConfig, assign_bucket
from .images import list_images

if TYPE_CHECKING:
    from PIL.Image import Image as PILImage

__all__ = ["PrepareError", "Prepared", "parse_size", "plan_resize", "prepare"]

Size = tuple[int, int]
Box = tuple[int, int, int, int]
Crop = Literal["center", "none"]
STEP = 64
_FORMATS = {".png": "PNG", ".jpg": "JPEG", ".jpeg": "JPEG", ".webp": "WEBP", ".bmp": "BMP"}


class PrepareError(ArtlabError):
    """The preparation cannot start; one line for the user."""


@dataclass
class Prepared:
    written: int = 0
    captions: int = 0
    upscaled: int = 0
    failed: list[str] = field(default_factory=list)  # "name: reason"
    sizes: dict[Size, int] = field(default_factory=dict)


def parse_size(text: str) -> Size:
    """`512` -> (512, 512), `768x512` -> (768, 512); sides must be multiples of 64."""
    parts = text.lower().replace("*", "x").split("x")
    try:
        values = [int(p) for p in parts]
    except ValueError:
        raise PrepareError(f"--size {text!r}: give one side (512) or WIDTHxHEIGHT (768x512)") from None
    if len(values) not in (1, 2):
        raise PrepareError(f"--size {text!r}: give one side (512) or WIDTHxHEIGHT (768x512)")
    w, h = values[0], values[-1]
    if w < STEP or h < STEP or w % STEP or h % STEP:
        raise PrepareError(f"--size {text!r}: sides must be multiples of {STEP} (e.g. 512, 768, 768x512)")
    from ..spec.model import MAX_SIDE  # the spec's bound on a training side, so what is prepared can train

    if max(w, h) > MAX_SIDE:
        raise PrepareError(f"--size {text!r}: sides must be at most {MAX_SIDE}")
    return w, h


def plan_resize(size: Size, target: Size, *, crop: Crop = "center", bucket: bool = False) -> tuple[Size, Box]:
    """(size to resize to, box to crop from it) for one image; a pure function of sizes.

    bucket: the bucket sd-scripts assigns (min 256, max 1024 or the target's longer side), covered
    and centre-cropped. crop="center": the same with `target` as the only bucket. crop="none": the
    whole picture scaled to fit inside `target`, then trimmed (at most 63 px, centred) to multiples of 64.
    """
    w, h = size
    if bucket or crop == "center":
        box = assign_bucket(_bucket_config(target), size) if bucket else target
        scale = max(box[0] / w, box[1] / h)  # train_util.trim_and_resize_if_required
        resized = (max(box[0], int(w * scale + 0.5)), max(box[1], int(h * scale + 0.5)))
        left, top = (resized[0] - box[0]) // 2, (resized[1] - box[1]) // 2
        return resized, (left, top, left + box[0], top + box[1])
    scale = min(target[0] / w, target[1] / h)
    resized = (max(1, int(w * scale + 0.5)), max(1, int(h * scale + 0.5)))
    out = (resized[0] - resized[0] % STEP, resized[1] - resized[1] % STEP)
    if 0 in out:
        raise ValueError(f"{w}x{h} is too elongated: a side would be below {STEP} px at {target[0]}x{target[1]}")
    left, top = (resized[0] - out[0]) // 2, (resized[1] - out[1]) // 2
    return resized, (left, top, left + out[0], top + out[1])


def _bucket_config(target: Size) -> BucketConfig:
    return BucketConfig(resolution=target, enable=True, min_reso=256, max_reso=max(1024, *target))


def prepare(
    src: str | os.PathLike[str],
    dst: str | os.PathLike[str],
    target: Size,
    *,
    crop: Crop = "center",
    bucket: bool = False,
    caption_extension: str = ".txt",
    workers: int | None = None,
    on_progress: Callable[[int, int], None] | None = None,
) -> Prepared:
    """Write a resized copy of SRC's images (and their captions) to DST; SRC is never written.

    on_progress(done, total) is called after each image. Files that fail are listed, not fatal.
    """
    src_path, dst_path = Path(src), Path(dst)
    if not src_path.is_dir():
        raise PrepareError(f"{src_path} is not a folder")
    try:
        src_real, dst_real = src_path.resolve(), dst_path.resolve()
    except (OSError, RuntimeError) as exc:  # RuntimeError: a symlink loop (Python < 3.13)
        raise PrepareError(f"{dst_path} cannot be resolved: {exc}") from None
    if dst_real == src_real or src_real in dst_real.parents:
        raise PrepareError(f"{dst_path} is inside {src_path}: the source folder is never written to")
    try:
        images = list_images(src_path)
    except OSError as exc:  # no permission, a symlink loop
        raise PrepareError(f"{src_path} cannot be read: {exc.strerror or exc}") from None
    if not images:
        raise PrepareError(f"no images in {src_path} that sd-scripts would use")
    try:
        clashes = [p.name for p in images if (dst_path / p.name).exists()]
    except OSError as exc:
        raise PrepareError(f"{dst_path} cannot be read: {exc.strerror or exc}") from None
    if clashes:
        shown = ", ".join(clashes[:5]) + (f" and {len(clashes) - 5} more" if len(clashes) > 5 else "")
        raise PrepareError(f"{dst_path} already has {shown}; choose an empty destination (nothing is overwritten)")
    _writable(dst_path)
    result = Prepared()
    done = 0

    def one(image: Path) -> tuple[Path, Size | None, bool, str | None]:
        try:
            out_size, upscaled = _convert(image, dst_path / image.name, target, crop, bucket)
        except Exception as exc:  # noqa: BLE001 - a broken file is reported and skipped
            return image, None, False, f"{type(exc).__name__}: {exc}"
        return image, out_size, upscaled, None

    with ThreadPoolExecutor(max_workers=workers or os.cpu_count() or 2, thread_name_prefix="prepare") as pool:
        for image, out_size, upscaled, error in pool.map(one, images):
            done += 1
            if error is not None or out_size is None:
                result.failed.append(f"{image.name}: {error}")
            else:
                result.written += 1
                result.upscaled += upscaled
                result.sizes[out_size] = result.sizes.get(out_size, 0) + 1
                caption = image.with_suffix(caption_extension)
                if caption.is_file():  # as sd-scripts: anything else under the name is no caption
                    try:
                        shutil.copy2(caption, dst_path / caption.name)
                    except OSError as exc:  # sd-scripts stops on a caption it cannot read
                        result.failed.append(f"{caption.name}: cannot copy the caption: {exc.strerror or exc}")
                    else:
                        result.captions += 1
            if on_progress is not None:
                on_progress(done, len(images))
    result.sizes = dict(sorted(result.sizes.items()))
    return result


def _writable(folder: Path) -> None:
    """Make FOLDER and write a file in it, so that a folder that cannot take the copies fails once, up front."""
    import tempfile

    try:
        folder.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix=".artlab-probe.", dir=folder)
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise PrepareError(f"cannot write in {folder}: {exc.strerror or exc}") from None


def _convert(src: Path, dst: Path, target: Size, crop: Crop, bucket: bool) -> tuple[Size, bool]:
    from PIL import Image, ImageOps

    with Image.open(src) as opened:
        im = _rgb(ImageOps.exif_transpose(opened))
    resized, box = plan_resize(im.size, target, crop=crop, bucket=bucket)
    upscaled = resized[0] > im.size[0] or resized[1] > im.size[1]
    if resized != im.size:
        im = im.resize(resized, Image.Resampling.LANCZOS)
    im = im.crop(box)
    tmp = dst.with_name(f".{dst.name}.tmp")
    fmt = _FORMATS[dst.suffix.lower()]  # the name decides, so content and extension agree afterwards
    options = {"quality": 95, "subsampling": 0} if fmt == "JPEG" else {"quality": 95} if fmt == "WEBP" else {}
    im.save(tmp, format=fmt, **options)
    os.replace(tmp, dst)
    return im.size, upscaled


def _rgb(im: PILImage) -> PILImage:
    """RGB, with transparency composited over white (a bare convert would keep whatever colour is under it)."""
    from PIL import Image

    if im.mode in ("RGBA", "LA", "PA") or (im.mode == "P" and "transparency" in im.info):
        rgba = im.convert("RGBA")
        background = Image.new("RGB", rgba.size, (255, 255, 255))
        background.paste(rgba, mask=rgba.getchannel("A"))
        return background
    return im if im.mode == "RGB" else im.convert("RGB")
