"""What sd-scripts sees in an image folder, read from file headers and ends only (stdlib, no decoding).

Two questions decide how many steps a LoRA run takes before any model is loaded: which files does
sd-scripts pick up in a DreamBooth subset folder, and which size does it bucket each one on? This module
answers both the way the pinned sd-scripts (48d368fa) does, so that a spec can be checked in a second
rather than after a model load. The size is what `BaseDataset.get_image_size` returns: `imagesize.get`
(imagesize 1.4.1, pinned in sd-scripts' requirements.txt), falling back to `PIL.Image.open(...).size` when
imagesize reports no width, and `library.jpeg_xl_util.get_jxl_size` for `.jxl` names. Both libraries look at
the bytes, not at the extension, so neither does this module.
"""

from __future__ import annotations

import os
import re
import stat
import struct
import time
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from types import MappingProxyType

__all__ = [
    "FOLDER_NAME",
    "IMAGE_EXTENSIONS",
    "OPTIONAL_EXTENSIONS",
    "ImageHeaderError",
    "extensions_for",
    "folder_repeats",
    "list_images",
    "read_size",
    "read_sizes",
]

# train_util.IMAGE_EXTENSIONS as the trainer starts: case-sensitive on Linux and macOS, so ".Png" is skipped.
IMAGE_EXTENSIONS: tuple[str, ...] = (
    ".png", ".jpg", ".jpeg", ".webp", ".bmp", ".PNG", ".JPG", ".JPEG", ".WEBP", ".BMP",
)  # fmt: skip

# train_util adds these only when the module named on the left imports in the *trainer's* environment
# (a bare `try: import ...`), so whether `.avif`/`.jxl` files train depends on that venv, not on ours.
# Probe it (e.g. `$ENGINE_PYTHON -c "import pillow_avif"`) and pass the result to `extensions_for`.
OPTIONAL_EXTENSIONS: MappingProxyType[str, tuple[str, ...]] = MappingProxyType(
    {
        "pillow_avif": (".avif", ".AVIF"),
        "jxlpy": (".jxl", ".JXL"),
        "pillow_jxl": (".jxl", ".JXL"),
    }
)

# Pillow's decompression-bomb guard (2 * Image.MAX_IMAGE_PIXELS): Image.open raises above it, and sd-scripts
# never raises the limit, so such a file is sized here but can never be loaded for training.
PIL_PIXEL_LIMIT = 2 * (1024 * 1024 * 1024 // 4 // 3)

_HEAD = 4096  # first read; JPEG segments beyond it are reached with further small reads
_TAIL, _SCAN = 4096, 1 << 20  # the end of a file is read in a block of _TAIL (<= _HEAD); searches go on in _SCAN
_PROBE, _SLOW_FILE_S, _THREADS = 256, 25e-6, 8  # read_sizes: files timed serially, "slow", threads then
# O_NONBLOCK: a FIFO named like an image opens (and reads as empty) instead of blocking the check forever
_OPEN_FLAGS = os.O_RDONLY | getattr(os, "O_BINARY", 0) | getattr(os, "O_NONBLOCK", 0)
_EXT_FORMAT = {".png": "PNG", ".jpg": "JPEG", ".jpeg": "JPEG", ".webp": "WebP", ".bmp": "BMP",
               ".avif": "AVIF", ".jxl": "JPEG XL"}  # fmt: skip


# kohya's folder convention `N_name`: N repeats, the rest class tokens (sd-scripts reads it this way
# when no dataset config is given).
FOLDER_NAME = re.compile(r"^(\d+)_(.*)$")


def folder_repeats(folder: Path) -> tuple[int, str] | None:
    """(N, name) of an `N_name` folder, else None."""
    match = FOLDER_NAME.match(folder.name)
    return (int(match.group(1)), match.group(2)) if match else None


class ImageHeaderError(ValueError):
    """A file sd-scripts would pick up but cannot size (or, with ``strict``, is not what its name says)."""

    def __init__(self, path: str | os.PathLike[str], reason: str) -> None:
        self.path = os.fspath(path)
        self.reason = reason
        super().__init__(f"{self.path}: {reason}")

    def __reduce__(self) -> tuple[type[ImageHeaderError], tuple[str, str]]:
        return type(self), (self.path, self.reason)


def extensions_for(importable: Iterable[str]) -> tuple[str, ...]:
    """The extensions train_util accepts when the given OPTIONAL_EXTENSIONS modules import."""
    exts = list(IMAGE_EXTENSIONS)
    for module in importable:
        exts += [e for e in OPTIONAL_EXTENSIONS.get(module, ()) if e not in exts]
    return tuple(exts)


def list_images(folder: str | os.PathLike[str], extensions: Iterable[str] = IMAGE_EXTENSIONS) -> list[Path]:
    """The entries train_util.glob_images(folder, "*") returns, in its order, from one directory scan.

    glob_images runs one `glob("<folder>/*<ext>")` per extension, dedups and sorts the path strings. So:
    not recursive; names starting with "." are skipped (glob's hidden rule); the match is fnmatch's, which is
    case-sensitive except on Windows; and like glob this keeps whatever entry matches, a directory named
    "x.png" or a dangling symlink included, which sd-scripts then fails to read (read_size says why).
    A missing folder raises here; sd-scripts logs "not directory" and skips the subset.
    """
    norm = os.path.normcase
    suffixes = tuple({norm(e) for e in extensions})
    with os.scandir(folder) as entries:
        names = [e.name for e in entries if not e.name.startswith(".") and norm(e.name).endswith(suffixes)]
    names.sort()
    return [Path(folder, name) for name in names]


def read_size(path: str | os.PathLike[str], *, strict: bool = False) -> tuple[int, int]:
    """(width, height) exactly as sd-scripts buckets the file, from its first bytes.

    Stored size, not displayed size: imagesize reads the JPEG frame header and ignores the EXIF Orientation
    tag, and train_util.load_image decodes with PIL without `ImageOps.exif_transpose`. So a phone photo
    stored 4032x3024 with Orientation=6 (shown upright as 3024x4032) is bucketed *and trained* landscape,
    i.e. sideways. This returns the stored 4032x3024, which is the number sd-scripts uses.

    Quirks kept on purpose, because the goal is sd-scripts' number, not the true one:
    - WebP with a VP8X header (alpha, EXIF, ICC, animation) comes out one pixel short on each side:
      imagesize 1.4.1 omits the "+1" of the canvas size fields (64x48 -> 63x47); with bucket_no_upscale this
      can move the image to a smaller bucket. Simple lossy (VP8) and lossless (VP8L) WebP are exact.
    - Content decides, not the name: a JPEG named .png is sized (and trained) as a JPEG. Pass strict=True
      to treat such a mismatch as an error anyway. `.jxl` names are the exception: sd-scripts always runs
      its JPEG XL reader on them.

    Besides the header, the file's end is checked, cheaply: a file cut short (an interrupted download or
    copy) is sized fine from its header, and sd-scripts only fails on it when it decodes it, mid-run. PNG
    must end with its IEND chunk, JPEG must have an end-of-image marker after its frame header (trailing
    padding or appended data, e.g. a motion photo's video, are allowed), WebP must be as long as its RIFF
    header says, uncompressed BMP as long as its rows, AVIF and JPEG XL boxes must fit in the file. Most
    files cost no extra read (the end of a small file is in the first read, a large one costs one more);
    damage inside the pixel data is found only by decoding (`dataset check --deep`).
    Raises ImageHeaderError (empty, truncated or corrupt file, not an image, a format this reader does not
    parse, over Pillow's pixel limit, or unreadable).
    """
    p = os.fspath(path)
    try:
        fd = os.open(p, _OPEN_FLAGS)
    except OSError as e:
        raise ImageHeaderError(p, f"cannot open: {e.strerror or e}") from None
    try:
        win = _Window(fd)
        size, fmt = _sniff_and_size(win, p)
    except _Bad as e:
        raise ImageHeaderError(p, str(e)) from None
    except OSError as e:
        raise ImageHeaderError(p, f"cannot read: {e.strerror or e}") from None
    finally:
        os.close(fd)
    if size[0] * size[1] > PIL_PIXEL_LIMIT:
        raise ImageHeaderError(
            p,
            f"{size[0]}x{size[1]} is over Pillow's {PIL_PIXEL_LIMIT:,}-pixel limit: sd-scripts can't load it",
        )
    if strict:
        named = _EXT_FORMAT.get(os.path.splitext(p)[1].lower())
        if named is not None and named != fmt:
            raise ImageHeaderError(p, f"extension says {named} but content is {fmt} (sd-scripts goes by content)")
    return size


def read_sizes(
    paths: Iterable[str | os.PathLike[str]], workers: int | None = None, *, strict: bool = False
) -> list[tuple[int, int] | ImageHeaderError]:
    """read_size for many files, in order, with errors returned in place rather than raised.

    From a warm page cache a file costs under 10 us, and threads only add GIL hand-offs (2 cores: 0.09 s
    for 10,000 files serially, 0.17 s with 8 threads); from a cold disk each read blocks, and 8 threads
    are 3x faster than one. So workers=None times the first files serially and brings in threads, each
    over a contiguous slice, only when those were slow. workers=N forces N threads (1: none).
    """
    items = list(paths)
    if workers is None:
        start = time.perf_counter()
        head = _read_slice(items[:_PROBE], strict)
        slow = time.perf_counter() - start > _PROBE * _SLOW_FILE_S
        rest = items[_PROBE:]
        return head + (_read_threaded(rest, _THREADS, strict) if slow else _read_slice(rest, strict))
    return _read_threaded(items, workers, strict)


_Result = tuple[int, int] | ImageHeaderError


def _read_threaded(items: list[str | os.PathLike[str]], workers: int, strict: bool) -> list[_Result]:
    if workers <= 1 or len(items) < 2:
        return _read_slice(items, strict)
    step = -(-len(items) // (workers * 4))
    slices = [items[i : i + step] for i in range(0, len(items), step)]
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="read_sizes") as pool:
        parts = list(pool.map(lambda s: _read_slice(s, strict), slices))
    return [r for part in parts for r in part]


def _read_slice(paths: Sequence[str | os.PathLike[str]], strict: bool) -> list[_Result]:
    out: list[_Result] = []
    for p in paths:
        try:
            out.append(read_size(p, strict=strict))
        except ImageHeaderError as e:
            out.append(e)
    return out


# --- reading ---------------------------------------------------------------------------------------------


class _Bad(Exception):
    """A reason the header is unusable; read_size adds the path."""


class _Window:
    """Random access to a file through a small cached block, so most files cost one read() call."""

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self.base = 0
        self.buf = os.read(fd, _HEAD)
        self.head = self.buf
        self._size = len(self.head) if len(self.head) < _HEAD else -1  # a short first read is the whole file
        self._tail: tuple[int, bytes] | None = None

    def get(self, pos: int, n: int, what: str) -> bytes:
        """n bytes at pos; _Bad("truncated ...") when the file ends first."""
        start = pos - self.base
        if start < 0 or start + n > len(self.buf):
            if pos < len(self.head) and pos + n <= len(self.head):
                self.base, self.buf = 0, self.head
            else:
                self.base, self.buf = pos, _pread(self.fd, max(n, _HEAD), pos)
            start = pos - self.base
        data = self.buf[start : start + n]
        if len(data) < n:
            raise _Bad(f"truncated: the file ends inside the {what} (byte {pos + len(data)})")
        return data

    def size(self) -> int:
        if self._size < 0:
            self._size = os.fstat(self.fd).st_size
        return self._size

    def tail(self) -> tuple[int, bytes]:
        """(offset, bytes) of the file's last _TAIL bytes, or of all of it when it is shorter.

        A small file is all in the first read; a larger one costs a seek from its end and one read, which
        also gives its size."""
        if self._tail is None:
            if 0 <= self._size <= len(self.head):
                start = max(0, self._size - _TAIL)
                self._tail = (start, self.head[start:])
            else:  # the first read was full, so the file has at least _HEAD >= _TAIL bytes
                start = os.lseek(self.fd, -_TAIL, os.SEEK_END)
                self._tail = (start, os.read(self.fd, _TAIL))
                self._size = start + len(self._tail[1])
        return self._tail

    def rfind(self, needle: bytes, floor: int) -> int:
        """The last position >= floor where needle starts, or -1: the file's end first, then backwards."""
        start, block = self.tail()
        while True:
            found = block.rfind(needle, max(0, floor - start))
            if found >= 0:
                return start + found
            end = start + len(needle) - 1  # a needle across the block boundary is found in the next block
            if start <= floor or end - floor < len(needle):
                return -1
            start = max(floor, end - _SCAN)
            block = _pread(self.fd, end - start, start)


if hasattr(os, "pread"):

    def _pread(fd: int, n: int, pos: int) -> bytes:
        return os.pread(fd, n, pos)

else:  # Windows

    def _pread(fd: int, n: int, pos: int) -> bytes:
        os.lseek(fd, pos, os.SEEK_SET)
        return os.read(fd, n)


def _sniff_and_size(win: _Window, path: str) -> tuple[tuple[int, int], str]:
    head = win.head
    if not head:
        if not stat.S_ISREG(os.fstat(win.fd).st_mode):  # a FIFO or a device: glob picks up any name
            raise _Bad("not a regular file (a FIFO or a device)")
        raise _Bad("empty file (0 bytes)")
    if path.endswith((".jxl", ".JXL")):  # get_image_size's own branch, whatever the content
        return _jxl(win), "JPEG XL"
    fmt = _sniff(head)
    parser = _PARSERS.get(fmt)
    if parser is None:
        if fmt == "?":
            raise _Bad(f"not an image: unrecognised content (starts with {head[:8]!r})")
        raise _Bad(f"not an image this reader sizes: content is {fmt}")
    return parser(win), fmt


def _sniff(head: bytes) -> str:
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "PNG"
    if head.startswith(b"\xff\xd8"):
        return "JPEG"
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "WebP"
    if head[:2] == b"BM":
        return "BMP"
    if head[:6] in (b"GIF87a", b"GIF89a"):
        return "GIF"
    if head[:4] in (b"II*\x00", b"MM\x00*"):
        return "TIFF"
    if head.startswith(b"\xff\x0a") or head.startswith(b"\x00\x00\x00\x0cJXL \r\n\x87\n"):
        return "JPEG XL"
    if head[4:8] == b"ftyp":
        box_end = min(len(head), int.from_bytes(head[:4], "big"))
        brands = {head[8:12]} | {head[i : i + 4] for i in range(16, box_end - 3, 4)}  # major + compatible
        if brands & {b"avif", b"avis"}:
            return "AVIF"
        if brands & {b"heic", b"heix", b"heim", b"heis", b"hevc", b"hevx", b"mif1", b"msf1"}:
            return "HEIF/HEIC"
        return "an ISO media (MP4/MOV) file"
    for magic, name in _OTHER_MAGIC:
        if head.startswith(magic):
            return name
    if head.lstrip()[:5].lower() in (b"<?xml", b"<svg ") or b"<svg" in head[:256]:
        return "SVG"
    if all(32 <= c < 127 or c in (9, 10, 13) for c in head[:256]):
        return "text"
    return "?"


_OTHER_MAGIC = (
    (b"\x00\x00\x00\x0cjP  \r\n\x87\n", "JPEG 2000"),
    (b"\xff\x4f\xff\x51", "JPEG 2000"),
    (b"8BPS", "a Photoshop document (PSD)"),
    (b"%PDF", "PDF"),
    (b"PK\x03\x04", "a ZIP archive"),
    (b"\x00\x00\x01\x00", "an icon (ICO)"),
    (b"II+\x00", "BigTIFF"),
    (b"qoif", "QOI"),
    (b"\x76\x2f\x31\x01", "OpenEXR"),
)


def _positive(fmt: str, w: int, h: int) -> tuple[int, int]:
    if w <= 0 or h <= 0:
        raise _Bad(f"corrupt {fmt} header: it gives the size as {w}x{h}")
    return w, h


def _png(win: _Window) -> tuple[int, int]:
    # imagesize: IHDR must be the first chunk, width and height are its first two big-endian u32.
    ihdr = win.get(8, 16, "PNG header")
    if ihdr[4:8] != b"IHDR":
        raise _Bad(f"corrupt PNG: the first chunk is {ihdr[4:8]!r}, not IHDR")
    w, h = struct.unpack_from(">II", ihdr, 8)
    size = _positive("PNG", w, h)
    _png_complete(win)
    return size


_IEND = b"\x00\x00\x00\x00IEND\xaeB`\x82"  # the whole end chunk: no data, so always these 12 bytes


def _png_complete(win: _Window) -> None:
    # Pillow reads chunks until IEND; a file cut short ends inside an IDAT. The end chunk is normally
    # the last 12 bytes; only when it is not near the end (data appended after it) is the chunk chain walked.
    if _IEND in win.tail()[1]:
        return
    end = win.size()
    pos = 8
    while pos + 12 <= end:
        length, kind = struct.unpack(">I4s", win.get(pos, 8, "PNG chunk header"))
        if kind == b"IEND":
            return
        pos += 12 + length
    raise _Bad(f"truncated: the file ends ({end} bytes) before the PNG end chunk (IEND); it was cut short")


# Start-of-frame markers: C0-CF except DHT (C4), JPG (C8) and DAC (CC), the set imagesize stops at.
_SOF = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}
_STANDALONE = frozenset([0x01, *range(0xD0, 0xD9)])  # TEM, RST0-7, SOI: no length field


def _jpeg(win: _Window) -> tuple[int, int]:
    # Walk the marker segments (APPn with EXIF or ICC, DQT, DHT, ...) to the first frame header, as
    # imagesize does; progressive (C2) and EXIF-first files are no different.
    pos = 2
    while True:
        if win.get(pos, 1, "JPEG header (no frame header found)")[0] != 0xFF:
            raise _Bad(f"corrupt JPEG: no marker at byte {pos}")
        while (marker := win.get(pos, 1, "JPEG header (no frame header found)")[0]) == 0xFF:
            pos += 1
        pos += 1
        if marker in _STANDALONE:
            continue
        if marker == 0xD9:
            raise _Bad("corrupt JPEG: end-of-image marker before any frame header")
        (length,) = struct.unpack(">H", win.get(pos, 2, "JPEG header"))
        if length < 2:
            raise _Bad(f"corrupt JPEG: segment length {length} at byte {pos}")
        if marker in _SOF:
            h, w = struct.unpack(">HH", win.get(pos + 3, 4, "JPEG frame header"))
            if h == 0:
                raise _Bad("JPEG height 0 (given later by a DNL marker): sd-scripts cannot bucket it")
            size = _positive("JPEG", w, h)
            _jpeg_complete(win, pos + length)
            return size
        pos += length


def _jpeg_complete(win: _Window, frame_end: int) -> None:
    # The end-of-image marker FF D9 cannot occur inside entropy-coded data (an FF there is followed by 00
    # or a restart marker), so one after the frame header means the image data ended; usually it is in
    # the last bytes, followed by nothing, zero padding or an appended file (a motion photo's video, a
    # maker trailer). The EOI of an EXIF thumbnail comes before the frame header and does not count.
    if win.rfind(b"\xff\xd9", frame_end) < 0:
        raise _Bad(
            f"truncated: the file ends ({win.size()} bytes) with no JPEG end-of-image marker (FFD9) after "
            "the image data; it was cut short"
        )


def _webp(win: _Window) -> tuple[int, int]:
    # imagesize's three cases, read from the first 30 bytes, bugs included (see read_size).
    head = win.get(0, 30, "WebP header")
    chunk = head[12:16]
    if chunk == b"VP8 ":
        if head[23:26] != b"\x9d\x01\x2a":
            raise _Bad("corrupt WebP: VP8 frame start code missing")
        w, h = struct.unpack_from("<HH", head, 26)  # raw 16 bits: the 2 scaling bits are not masked
    elif chunk == b"VP8L":
        if head[20] != 0x2F:
            raise _Bad("corrupt WebP: VP8L signature byte missing")
        b = head[21:25]
        w = (((b[1] & 0x3F) << 8) | b[0]) + 1
        h = (((b[3] & 0x0F) << 10) | (b[2] << 2) | ((b[1] & 0xC0) >> 6)) + 1
    elif chunk == b"VP8X":
        w = int.from_bytes(head[24:27], "little")  # canvas width - 1, taken as the width by imagesize 1.4.1
        h = int.from_bytes(head[27:30], "little")
        if w == 0:  # imagesize says width 0, so get_image_size asks PIL, which adds the 1s
            w, h = 1, h + 1
        elif h == 0:
            raise _Bad("WebP 1 pixel high: sd-scripts (imagesize 1.4.1) reads its height as 0")
    else:
        raise _Bad(f"corrupt WebP: unknown first chunk {chunk!r}")
    size = _positive("WebP", w, h)
    declared = 8 + int.from_bytes(head[4:8], "little")  # the RIFF size counts what follows its 8-byte header
    if win.size() < declared:
        raise _Bad(f"truncated: the file has {win.size()} of the {declared} bytes its RIFF header declares")
    return size


_BMP_BITS = frozenset([1, 4, 8, 16, 24, 32])


def _bmp(win: _Window) -> tuple[int, int]:
    # imagesize does not know BMP; this is PIL's BmpImagePlugin header reading, whose size sd-scripts uses.
    (hsize,) = struct.unpack("<I", win.get(14, 4, "BMP header"))
    if hsize == 12:  # OS/2 core header: 16-bit sizes
        w, h, _planes, bits = struct.unpack("<HHHH", win.get(18, 8, "BMP header"))
        compression = 0
    elif hsize in (40, 52, 56, 64, 108, 124):
        info = win.get(18, hsize - 4, "BMP header")
        w, h, _planes, bits, compression = struct.unpack_from("<IIHHI", info)
        if info[7] == 0xFF:  # negative height: rows stored top-down
            h = 2**32 - h
    else:
        raise _Bad(f"unsupported BMP header size {hsize} (Pillow cannot open it)")
    if bits not in _BMP_BITS:
        raise _Bad(f"unsupported BMP bit depth {bits} (Pillow cannot open it)")
    if compression not in (0, 1, 2, 3):
        raise _Bad(f"unsupported BMP compression {compression} (Pillow cannot open it)")
    size = _positive("BMP", w, h)
    (offset,) = struct.unpack("<I", win.get(10, 4, "BMP header"))
    # uncompressed rows (BI_RGB, BI_BITFIELDS) are padded to 4 bytes; RLE data has no size to check against
    needed = offset + ((w * bits + 31) // 32) * 4 * h if compression in (0, 3) else offset + 1
    if win.size() < needed:
        raise _Bad(f"truncated: the file has {win.size()} of the {needed} bytes its BMP header implies")
    return size


def _gif(win: _Window) -> tuple[int, int]:
    # imagesize reads signed 16-bit sizes; a "negative" width sends get_image_size to PIL (unsigned).
    raw = win.get(6, 4, "GIF header")
    w, h = struct.unpack("<hh", raw)
    if w <= 0:
        w, h = struct.unpack("<HH", raw)
    return _positive("GIF", w, h)


def _tiff(win: _Window) -> tuple[int, int]:
    # imagesize: the first IFD's ImageWidth (256) and ImageLength (257).
    big = win.head[:2] == b"MM"
    e = ">" if big else "<"
    (ifd,) = struct.unpack(e + "I", win.get(4, 4, "TIFF header"))
    (count,) = struct.unpack(e + "H", win.get(ifd, 2, "TIFF directory"))
    found: dict[int, int] = {}
    for i in range(count):
        tag, kind, _n, value = struct.unpack(e + "HHII", win.get(ifd + 2 + 12 * i, 12, "TIFF directory"))
        if tag in (256, 257):
            if big and kind == 3:  # a SHORT sits in the high half of a big-endian value field
                value >>= 16
            elif big and kind != 4:
                raise _Bad("corrupt TIFF: image size is neither SHORT nor LONG")
            found[tag] = value
            if len(found) == 2:
                return _positive("TIFF", found[256], found[257])
    raise _Bad("corrupt TIFF: no image width/height in the first directory")


def _boxes(win: _Window, start: int, end: int) -> Iterable[tuple[bytes, int, int]]:
    """ISO-BMFF boxes in [start, end): (type, payload start, box end)."""
    pos = start
    while pos + 8 <= end:
        size, kind = struct.unpack(">I4s", win.get(pos, 8, "box header"))
        header = 8
        if size == 1:
            (size,) = struct.unpack(">Q", win.get(pos + 8, 8, "box header"))
            header = 16
        elif size == 0:
            size = end - pos
        if size < header:
            raise _Bad(f"corrupt box {kind!r} at byte {pos}: size {size}")
        yield kind, pos + header, pos + size
        pos += size


def _avif(win: _Window) -> tuple[int, int]:
    # The primary item's 'ispe' (image spatial extents): the size libavif, hence Pillow, reports, before
    # any 'irot'/'imir' rotation (Pillow turns those into an EXIF orientation, which sd-scripts ignores).
    end = win.size()
    top = list(_boxes(win, 0, end))
    _boxes_fit(top, end)
    meta = next(((a, b) for kind, a, b in top if kind == b"meta"), None)
    if meta is None:
        raise _Bad("corrupt AVIF: no 'meta' box")
    primary: int | None = None
    props: list[tuple[int, int] | None] = []
    assoc: dict[int, list[int]] = {}
    for kind, a, b in _boxes(win, meta[0] + 4, meta[1]):
        if kind == b"pitm":
            version = win.get(a, 1, "AVIF pitm")[0]
            primary = int.from_bytes(win.get(a + 4, 2 if version == 0 else 4, "AVIF pitm"), "big")
        elif kind == b"iprp":
            for kind2, a2, b2 in _boxes(win, a, b):
                if kind2 == b"ipco":  # properties, numbered from 1 in 'ipma'
                    props = [_ispe(win, pk, pa, pb) for pk, pa, pb in _boxes(win, a2, b2)]
                elif kind2 == b"ipma":
                    assoc.update(_ipma(win, a2))
    for index in assoc.get(primary if primary is not None else -1, []):
        size = props[index - 1] if 0 < index <= len(props) else None
        if size is not None:
            return _positive("AVIF", *size)
    raise _Bad("corrupt AVIF: no image size ('ispe') for the primary item")


def _boxes_fit(boxes: Iterable[tuple[bytes, int, int]], end: int) -> None:
    for kind, _start, box_end in boxes:
        if box_end > end:
            raise _Bad(
                f"truncated: the {kind.decode('latin-1')!r} box runs to byte {box_end}, past the end of the "
                f"file ({end} bytes)"
            )


def _ispe(win: _Window, kind: bytes, start: int, end: int) -> tuple[int, int] | None:
    if kind != b"ispe":
        return None
    w, h = struct.unpack(">II", win.get(start + 4, 8, "AVIF image size"))  # after version and flags
    return w, h


def _ipma(win: _Window, pos: int) -> dict[int, list[int]]:
    version = win.get(pos, 1, "AVIF ipma")[0]
    wide = win.get(pos + 3, 1, "AVIF ipma")[0] & 1
    (entries,) = struct.unpack(">I", win.get(pos + 4, 4, "AVIF ipma"))
    pos += 8
    out: dict[int, list[int]] = {}
    id_len = 2 if version < 1 else 4
    for _ in range(entries):
        item = int.from_bytes(win.get(pos, id_len, "AVIF ipma"), "big")
        n = win.get(pos + id_len, 1, "AVIF ipma")[0]
        pos += id_len + 1
        raw = win.get(pos, n * (2 if wide else 1), "AVIF ipma")
        pos += len(raw)
        if wide:
            out[item] = [int.from_bytes(raw[i : i + 2], "big") & 0x7FFF for i in range(0, len(raw), 2)]
        else:
            out[item] = [c & 0x7F for c in raw]
    return out


_JXL_FTYP = bytes.fromhex("00000014 66747970 6A786C20 00000000 6A786C20")
_JXL_DIST = (9, 13, 18, 30)
_JXL_RATIO = ((1, 1), (12, 10), (4, 3), (3, 2), (16, 9), (5, 4), (2, 1))


def _jxl(win: _Window) -> tuple[int, int]:
    # jpeg_xl_util.get_jxl_size: a bare codestream (FF 0A), or the container with its fixed signature and
    # file-type boxes, then the codestream in one 'jxlc' box or in indexed 'jxlp' parts.
    head = win.head
    if head[:2] == b"\xff\x0a":
        code = head[:16]
    elif head[:12] == b"\x00\x00\x00\x0cJXL \r\n\x87\n":
        if win.get(12, 20, "JPEG XL header") != _JXL_FTYP:
            raise _Bad("corrupt JPEG XL: the file-type box is not the one sd-scripts expects")
        parts: list[tuple[int, int, int]] = []
        code = b""
        boxes = list(_boxes(win, 32, win.size()))
        _boxes_fit(boxes, win.size())
        for kind, a, b in boxes:
            if kind == b"jxlc":
                code = win.get(a, min(16, b - a), "JPEG XL codestream")
                break
            if kind == b"jxlp":
                (index,) = struct.unpack(">I", win.get(a, 4, "JPEG XL part"))
                parts.append((index, a + 4, b))
        if not code and parts:
            for _i, a, b in sorted(parts):
                code += win.get(a, min(16 - len(code), b - a), "JPEG XL codestream")
                if len(code) >= 16:
                    break
        if not code:
            raise _Bad("corrupt JPEG XL: no codestream box")
    else:
        raise _Bad(f"not JPEG XL: content is {_sniff(head)} (sd-scripts reads .jxl names as JPEG XL)")
    bits = _Bits(code)
    bits.take(16)  # signature
    small = bits.take(1)
    h = 8 * (1 + bits.take(5)) if small else 1 + bits.take(_JXL_DIST[bits.take(2)])
    ratio = bits.take(3)
    if ratio:
        num, den = _JXL_RATIO[ratio - 1]
        w = h * num // den
    else:
        w = 8 * (1 + bits.take(5)) if small else 1 + bits.take(_JXL_DIST[bits.take(2)])
    return w, h


class _Bits:
    """Least-significant-bit-first reader (the JPEG XL bit order)."""

    def __init__(self, data: bytes) -> None:
        self.value = int.from_bytes(data, "little")
        self.left = 8 * len(data)

    def take(self, n: int) -> int:
        if n > self.left:
            raise _Bad("truncated: the file ends inside the JPEG XL size header")
        out = self.value & ((1 << n) - 1)
        self.value >>= n
        self.left -= n
        return out


_PARSERS = {
    "PNG": _png,
    "JPEG": _jpeg,
    "WebP": _webp,
    "BMP": _bmp,
    "GIF": _gif,
    "TIFF": _tiff,
    "AVIF": _avif,
    "JPEG XL": _jxl,
}
