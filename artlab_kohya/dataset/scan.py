"""Reading one image folder the way sd-scripts does: images, caption files, headers, duplicates.

Headers (and ends) of images and captions only, unless deep: then every image is decoded in full (Pillow, in threads).
Many small reads run serially while the page cache answers fast and in threads when reads block.
"""

from __future__ import annotations

import hashlib
import os
import re
import stat
import time
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

from ..spec.guide import MIN_IMAGES, MIN_IMAGES_ERROR
from .images import IMAGE_EXTENSIONS, ImageHeaderError, list_images, read_sizes
from .report import Severity, SubsetReport

if TYPE_CHECKING:
    from .cliptok import ClipCounter

_HEAD_HASH = 65536
_CAPTION_FLAGS = os.O_RDONLY | getattr(os, "O_BINARY", 0) | getattr(os, "O_NONBLOCK", 0)
_T = TypeVar("_T")
_R = TypeVar("_R")

# Extensions of files people expect to train but sd-scripts does not pick up (compared lower-cased).
_IMAGE_LIKE = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".gif", ".tif", ".tiff", ".avif", ".jxl", ".heic", ".heif")


def list_subset(report: SubsetReport) -> tuple[list[Path] | None, list[tuple[Severity, str]]]:
    """The images sd-scripts will pick up in one folder (None: the folder cannot be listed), and problems
    with their number."""
    sub = report.input
    try:
        paths = list_images(sub.path)
    except FileNotFoundError:
        return None, [("error", f"{sub.path} does not exist")]
    except NotADirectoryError:
        return None, [("error", f"{sub.path} is a file, not a folder")]
    except OSError as exc:  # no permission, a symlink loop: sd-scripts finds no images there either
        return None, [("error", f"{sub.path} cannot be read: {exc.strerror or exc}")]
    report.images = len(paths)
    problems: list[tuple[Severity, str]] = []
    if not paths:
        problems.append(
            (
                "error",
                f"no images in {sub.path} (sd-scripts takes {' '.join(sorted(set(IMAGE_EXTENSIONS)))}; "
                "images go straight in this folder, not in subfolders) - sd-scripts would stop with 'No data found'",
            )
        )
    elif not sub.regularization and len(paths) < MIN_IMAGES_ERROR:
        problems.append(("error", f"{len(paths)} image(s); the guide wants at least {MIN_IMAGES_ERROR}"))
    elif not sub.regularization and len(paths) < MIN_IMAGES:
        # the same words as plan's warning, so `check` can show it once
        problems.append(("warning", f"{len(paths)} image(s); the guide wants at least 10 and 15 or more is better"))
    return paths, problems


def read_subset(
    report: SubsetReport, paths: list[Path], counter: ClipCounter | None, max_tokens: int, deep: bool
) -> None:
    """Headers, captions and the other files of one listed folder (and with deep, every image decoded)."""
    _other_entries(report, {p.name for p in paths})
    for path, result in zip(paths, read_sizes(paths, strict=True), strict=True):
        if isinstance(result, ImageHeaderError) and result.reason.startswith("extension says"):
            report.add("extension_mismatch", f"{path.name}: {result.reason.split(' (')[0]}")
            result = read_sizes([path])[0]
        if isinstance(result, ImageHeaderError):
            report.add("unreadable", f"{path.name}: {result.reason}")
        else:
            report.sizes.append(result)
            report.names.append(path.name)
    _captions(report, paths, counter, max_tokens)
    if deep:  # the files found unreadable above are not decoded again
        readable = set(report.names)
        todo = [p for p in paths if p.name in readable]
        for name, kind, detail in _map_parallel(_decode, todo, threads=os.cpu_count() or 2):
            if kind:
                report.add(kind, f"{name}: {detail}")


def _other_entries(report: SubsetReport, image_names: set[str]) -> None:
    """Caption files without an image, image-like files sd-scripts skips, subfolders with images."""
    sub = report.input
    ext = sub.caption_extension
    stems = {os.path.splitext(n)[0] for n in image_names}
    stems |= {_face_stem(s) for s in stems}
    subfolders = []
    try:
        entries = list(os.scandir(sub.path))
    except OSError:  # listed a moment ago; gone or locked since: nothing more to say about its other files
        entries = []
    for entry in entries:
        name = entry.name
        if name.startswith(".") or name in image_names:
            continue
        if _is_dir(entry):
            subfolders.append(entry.path)
        elif name.endswith(ext):
            if name[: -len(ext)] not in stems:
                report.add("caption_orphan", name)
        elif name.lower().endswith(_IMAGE_LIKE):
            report.add("skipped_files", name)
    for folder in sorted(subfolders)[:50]:
        try:
            found = list_images(folder)
        except OSError:
            continue
        if found:
            report.add("subfolder_images", f"{os.path.basename(folder)}/ ({len(found)} image(s))")
    for kind in ("caption_orphan", "skipped_files"):
        if kind in report.findings:
            report.findings[kind].sort()


def _is_dir(entry: os.DirEntry[str]) -> bool:
    try:
        return entry.is_dir()
    except OSError:  # a symlink loop, or no permission to look: not a folder sd-scripts could read
        return False


def _face_stem(stem: str) -> str:
    """sd-scripts' second caption name: a face-crop file `name_a_b_c_d` also reads `name`'s caption."""
    tokens = stem.split("_")
    return "_".join(tokens[:-4]) if len(tokens) >= 5 else stem


# (finding kind, why) when a caption name cannot be read as a caption; None when it is read or absent
_Trouble = tuple[str, str] | None


def _read_caption(path: str) -> tuple[str, bytes | None, _Trouble]:
    """(path, content or None, trouble) as read_caption meets NAME<ext>.

    sd-scripts opens the name only when `os.path.isfile` says it is a regular file: a folder, a FIFO, a
    symlink loop or a broken link is passed over as if absent, while a regular file it cannot open or read
    (no permission, an I/O error) stops it. The same split here: "caption_not_file" or "caption_unreadable".
    O_NONBLOCK keeps a FIFO from blocking the check; the file type is looked up only when a read is odd.
    """
    try:
        fd = os.open(path, _CAPTION_FLAGS)
    except FileNotFoundError:
        return path, None, None
    except OSError as exc:
        return path, None, _caption_trouble(path, exc)
    try:
        chunks = [os.read(fd, 65536)]
        if (not chunks[0] or len(chunks[0]) == 65536) and not stat.S_ISREG(os.fstat(fd).st_mode):
            return path, None, ("caption_not_file", _file_type(path))  # a FIFO or a device reads so
        while len(chunks[-1]) == 65536:
            chunks.append(os.read(fd, 65536))
    except OSError as exc:  # a folder opens, then fails to read
        return path, None, _caption_trouble(path, exc)
    finally:
        os.close(fd)
    return path, b"".join(chunks), None


def _caption_trouble(path: str, exc: OSError) -> tuple[str, str]:
    if os.path.isfile(path):
        return "caption_unreadable", exc.strerror or str(exc)
    return "caption_not_file", _file_type(path)


def _file_type(path: str) -> str:
    try:
        mode = os.stat(path).st_mode
    except OSError as exc:  # a symlink loop, a broken link
        return (exc.strerror or str(exc)).lower()
    for test, what in ((stat.S_ISDIR, "a folder"), (stat.S_ISFIFO, "a FIFO"), (stat.S_ISSOCK, "a socket")):
        if test(mode):
            return what
    return "a device" if stat.S_ISCHR(mode) or stat.S_ISBLK(mode) else "not a regular file"


def _captions(report: SubsetReport, paths: list[Path], counter: ClipCounter | None, max_tokens: int) -> None:
    """What read_caption gives each image: the first line of NAME<ext> (or the face-crop name's)."""
    sub = report.input
    ext = sub.caption_extension
    wanted = []
    for p in paths:
        base = os.path.splitext(str(p))[0]
        wanted.append((base + ext, _face_stem(base) + ext))
    first = _map_adaptive(_read_caption, [a for a, _ in wanted])
    texts: list[tuple[str, bytes | None, _Trouble]] = []
    for (path, data, trouble), (_, face) in zip(first, wanted, strict=True):
        if trouble is not None:
            report.add(trouble[0], f"{os.path.basename(path)}: {trouble[1]}")
        if data is None and face != path and (trouble is None or trouble[0] == "caption_not_file"):
            path, data, trouble = _read_caption(face)
            if trouble is not None:
                report.add(trouble[0], f"{os.path.basename(path)}: {trouble[1]}")
        texts.append((path, data, trouble))
    missing = []
    tokens_re = _token_pattern(sub.class_tokens) if sub.class_tokens and not sub.regularization else None
    count = counter.count if counter is not None else _estimate
    for image, (path, data, trouble) in zip(paths, texts, strict=True):
        if data is None:
            if trouble is None or trouble[0] == "caption_not_file":
                missing.append(image.name)
            continue
        report.captioned += 1
        cap_name = os.path.basename(path)
        if not data:
            report.add("caption_empty_file", cap_name)
            continue
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError as exc:
            report.add("caption_not_utf8", f"{cap_name}: byte {exc.start}")
            continue
        lines = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
        caption = lines[0].strip()
        if not caption:
            report.add("caption_blank", cap_name)
        elif sum(1 for line in lines if line.strip()) > 1:
            report.add("caption_multiline", cap_name)
        full = " ".join(x for x in (sub.caption_prefix, caption, sub.caption_suffix) if x)
        n = count(full)
        if n > max_tokens:
            report.add("caption_too_long", f"{cap_name}: {n} tokens")
        if tokens_re is not None and caption and not tokens_re.search(caption.replace("_", " ")):
            report.add("trigger_missing", cap_name)
    if missing:
        if sub.class_tokens is None:
            report.findings["caption_missing_no_tokens"] = missing
        elif len(missing) < len(paths):  # none captioned at all is the class-token style, on purpose
            report.findings["caption_missing"] = missing


def _estimate(text: str) -> int:
    from .cliptok import estimate_tokens

    return estimate_tokens(text)


def _token_pattern(tokens: str) -> re.Pattern[str]:
    phrase = re.escape(tokens.replace("_", " ").strip()).replace(r"\ ", r"\s+")
    return re.compile(rf"(?<!\w){phrase}(?!\w)", re.IGNORECASE)


def _decode(path: Path) -> tuple[str, str, str]:
    """(name, finding kind or "", detail): a full decode, and the EXIF rotation sd-scripts ignores."""
    from PIL import Image

    try:
        with Image.open(path) as im:
            orientation = im.getexif().get(0x0112, 1)
            im.load()
    except Exception as exc:  # noqa: BLE001 - any decoder failure is the finding
        return path.name, "decode_failed", f"{type(exc).__name__}: {exc}"
    if orientation not in (1, None):
        return path.name, "exif_rotated", f"orientation {orientation}"
    return path.name, "", ""


def find_duplicates(paths_by_subset: list[list[Path]]) -> list[tuple[int, str]]:
    """(subset index, "copy = original") for files with the same bytes, across all subsets.

    Only files of equal size are read: first 64 KiB each, then in full where that is not the whole file.
    """
    by_size: dict[int, list[tuple[int, Path]]] = {}
    for index, paths in enumerate(paths_by_subset):
        for path in paths:
            try:
                by_size.setdefault(os.stat(path).st_size, []).append((index, path))
            except OSError:
                continue
    groups = [(size, group) for size, group in by_size.items() if len(group) > 1 and size > 0]
    for limit in (_HEAD_HASH, None):
        todo = [(size, group) for size, group in groups if limit is not None or size > _HEAD_HASH]
        done = [(size, group) for size, group in groups if limit is None and size <= _HEAD_HASH]
        flat = [item for _, group in todo for item in group]
        digests = iter(_map_adaptive(partial(_digest_item, limit=limit), flat))
        split: dict[tuple[int, str], list[tuple[int, Path]]] = {}
        for group_id, (_, group) in enumerate(todo):
            for item in group:
                split.setdefault((group_id, next(digests)), []).append(item)
        sizes = [size for size, _ in todo]
        groups = done + [(sizes[key[0]], g) for key, g in split.items() if len(g) > 1]
    out = []
    for _, group in groups:
        first_subset, first = group[0]
        for subset, path in group[1:]:
            out.append((subset, f"{path.name} = {first.name if first_subset == subset else first}"))
    return out


def _digest_item(item: tuple[int, Path], limit: int | None) -> str:
    return _digest(item[1], limit)


def _digest(path: Path, limit: int | None) -> str:
    h = hashlib.blake2b(digest_size=16)
    try:
        with open(path, "rb") as f:
            if limit is not None:
                h.update(f.read(limit))
            else:
                for block in iter(lambda: f.read(1 << 20), b""):
                    h.update(block)
    except OSError as exc:
        return f"unreadable:{exc}"
    return h.hexdigest()


# --------------------------------------------------------------------------- running many small reads

_PROBE, _SLOW_S, _THREADS = 256, 40e-6, 8


def _map_adaptive(fn: Callable[[_T], _R], items: Sequence[_T]) -> list[_R]:
    """fn over items in order: serially while the page cache answers fast, in threads when reads block."""
    start = time.perf_counter()
    head = [fn(x) for x in items[:_PROBE]]
    rest = items[_PROBE:]
    if not rest or time.perf_counter() - start <= len(head) * _SLOW_S:
        return head + [fn(x) for x in rest]
    return head + _map_parallel(fn, rest, threads=_THREADS)


def _map_parallel(fn: Callable[[_T], _R], items: Iterable[_T], *, threads: int) -> list[_R]:
    with ThreadPoolExecutor(max_workers=threads, thread_name_prefix="dataset") as pool:
        return list(pool.map(fn, items, chunksize=1))
