"""images.py against real files written by Pillow; the engine test checks the same files against sd-scripts.

Expected sizes are what sd-scripts' get_image_size returns (imagesize 1.4.1, then PIL): the engine test
below runs it on every file made here.
"""

from __future__ import annotations

import io
import json
import os
import pickle
import random
import struct
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from artlab_kohya.dataset.images import (
    IMAGE_EXTENSIONS,
    OPTIONAL_EXTENSIONS,
    PIL_PIXEL_LIMIT,
    ImageHeaderError,
    extensions_for,
    list_images,
    read_size,
    read_sizes,
)

Image = pytest.importorskip("PIL.Image")


NOISE = random.Random(0).randbytes(20000)  # stands in for an ICC profile: fixed, so runs are repeatable


def save(path: Path, size: tuple[int, int], mode: str = "RGB", **kw: object) -> Path:
    Image.new(mode, size, "white" if mode in ("RGB", "L", "1") else None).save(path, **kw)
    return path


def jxl_codestream(width: int, height: int, pad: int = 4) -> bytes:
    """A JPEG XL codestream start: signature + SizeHeader (ISO 18181-1), bits packed LSB first."""
    fields: list[tuple[int, int]] = [(0x0AFF, 16), (0, 1)]  # signature, small=0
    for dim in (height, width):
        for dist, nbits in enumerate((9, 13, 18, 30)):
            if dim - 1 < 1 << nbits:
                fields += [(dist, 2), (dim - 1, nbits)]
                break
        if dim == height:
            fields.append((0, 3))  # ratio 0: width follows
    value = shift = 0
    for v, n in fields:
        value |= v << shift
        shift += n
    return value.to_bytes((shift + 7) // 8 + pad, "little")  # the rest of the codestream: zeros


def jxl_container(code: bytes, split: int | None = None) -> bytes:
    box = struct.pack(">I4s", 12, b"JXL ") + b"\r\n\x87\n"
    box += bytes.fromhex("00000014 66747970 6A786C20 00000000 6A786C20")
    box += struct.pack(">I4s", 9, b"jxll") + b"\x05"  # a level box before the codestream
    if split is None:
        return box + struct.pack(">I4s", 8 + len(code), b"jxlc") + code
    first, second = code[:split], code[split:]
    # parts stored out of order: the index, not the position, says how they join
    box += struct.pack(">I4sI", 12 + len(second), b"jxlp", 0x80000001) + second
    return box + struct.pack(">I4sI", 12 + len(first), b"jxlp", 0) + first


def exif_orientation(value: int) -> bytes:
    exif = Image.Exif()
    exif[0x0112] = value
    return exif.tobytes()


def bmp_variant(size: tuple[int, int], *, top_down: bool = False, core: bool = False) -> bytes:
    """Pillow writes bottom-up BITMAPINFOHEADER files only; patch in the other two header layouts."""
    buf = io.BytesIO()
    Image.new("RGB", size, "red").save(buf, "BMP")
    data = bytearray(buf.getvalue())
    if top_down:
        struct.pack_into("<i", data, 22, -size[1])
    if core:  # 12-byte OS/2 header: 16-bit width, height, planes, bits; pixel data follows at 26
        pixels = data[54:]
        head = struct.pack("<2sIHHI", b"BM", 26 + len(pixels), 0, 0, 26)
        data = bytearray(head + struct.pack("<IHHHH", 12, size[0], size[1], 1, 24) + pixels)
    return bytes(data)


def tiff_short_sizes(tiff: bytes) -> bytes:
    """A big-endian TIFF with its width and height retyped as SHORT (left-aligned in the value field)."""
    data = bytearray(tiff)
    (ifd,) = struct.unpack_from(">I", data, 4)
    (count,) = struct.unpack_from(">H", data, ifd)
    for entry in range(ifd + 2, ifd + 2 + 12 * count, 12):
        tag, _kind, n, value = struct.unpack_from(">HHII", data, entry)
        if tag in (256, 257):
            struct.pack_into(">HHIHH", data, entry, tag, 3, n, value, 0)
    return bytes(data)


def make_valid(folder: Path) -> dict[str, tuple[int, int]]:
    """Files sd-scripts sizes; returns name -> the size it buckets on."""
    out: dict[str, tuple[int, int]] = {}

    def add(name: str, expected: tuple[int, int]) -> Path:
        out[name] = expected
        return folder / name

    save(add("rgb.png", (640, 480)), (640, 480))
    save(add("rgba.png", (333, 777)), (333, 777), "RGBA")
    save(add("palette.png", (100, 30)), (100, 30), "P")
    save(add("gray16.png", (20, 2000)), (20, 2000), "I;16")
    save(add("baseline.jpg", (512, 768)), (512, 768), quality=90)
    save(add("progressive.jpeg", (1025, 513)), (1025, 513), progressive=True)
    save(add("cmyk.JPG", (300, 200)), (300, 200), "CMYK")
    # EXIF Orientation 6 (display rotated 90 degrees): sd-scripts keeps the stored 600x400
    save(add("exif_rotated.jpg", (600, 400)), (600, 400), exif=exif_orientation(6))
    # an ICC profile bigger than the first read (with FF C0 bytes inside): the frame header is found by
    # walking segment lengths, with a second read
    save(add("big_icc.jpg", (70, 90)), (70, 90), icc_profile=NOISE[:20000])
    save(add("lossy.webp", (640, 360)), (640, 360), quality=80)
    save(add("lossless.WEBP", (123, 45)), (123, 45), lossless=True)
    # VP8X (alpha): imagesize 1.4.1 drops the +1 of the canvas size, and sd-scripts buckets on that
    save(add("alpha.webp", (639, 479)), (640, 480), "RGBA")
    save(add("exif.webp", (199, 99)), (200, 100), exif=exif_orientation(1))
    save(add("one_wide.webp", (1, 50)), (1, 50), "RGBA")  # width field 0: sd-scripts asks PIL instead
    save(add("rgb.bmp", (31, 17)), (31, 17))
    save(add("pal.BMP", (64, 9)), (64, 9), "P")
    save(add("mono.bmp", (10, 3)), (10, 3), "1")
    add("top_down.bmp", (40, 30)).write_bytes(bmp_variant((40, 30), top_down=True))
    add("os2.bmp", (12, 7)).write_bytes(bmp_variant((12, 7), core=True))
    # content decides: a JPEG, a GIF, a TIFF and a WebP under other names
    save(add("jpeg_named.png", (300, 100)), (300, 100), "RGB", format="JPEG")
    save(add("gif_named.png", (48, 64)), (48, 64), "P", format="GIF")
    save(add("tiff_named.jpg", (90, 45)), (90, 45), "RGB", format="TIFF")
    save(add("tiff_be_named.png", (91, 46)), (91, 46), "I;16B", format="TIFF")  # big-endian
    add("tiff_short_be.png", (91, 46)).write_bytes(tiff_short_sizes((folder / "tiff_be_named.png").read_bytes()))
    save(add("webp_named.png", (77, 55)), (77, 55), format="WEBP", lossless=True)
    return out


def make_optional(folder: Path) -> dict[str, tuple[int, int]]:
    """AVIF and JPEG XL: sd-scripts lists them only with pillow_avif / jxlpy or pillow_jxl installed."""
    out = {"tiny.jxl": (640, 480), "container.jxl": (1000, 3), "parts.JXL": (4, 300000)}
    (folder / "tiny.jxl").write_bytes(jxl_codestream(640, 480))
    (folder / "container.jxl").write_bytes(jxl_container(jxl_codestream(1000, 3)))
    # sd-scripts' reader copes with 'jxlp' parts only when the first part is long (it compares a bit count
    # with a byte count), so the split here comes after 200 bytes
    (folder / "parts.JXL").write_bytes(jxl_container(jxl_codestream(4, 300000, pad=300), split=200))
    if "avif" in Image.registered_extensions().get(".avif", "").lower():
        save(folder / "pic.avif", (320, 200), quality=50)
        out["pic.avif"] = (320, 200)
    return out


def make_broken(folder: Path) -> dict[str, str]:
    """Files read_size rejects; returns name -> a fragment of the reason."""
    out: dict[str, str] = {}
    png = io.BytesIO()
    Image.new("RGB", (64, 64)).save(png, "PNG")
    jpeg = io.BytesIO()
    Image.new("RGB", (64, 64)).save(jpeg, "JPEG", icc_profile=NOISE[:6000])

    def add(name: str, reason: str, data: bytes) -> None:
        out[name] = reason
        (folder / name).write_bytes(data)

    add("empty.png", "empty file", b"")
    add("cut_header.png", "truncated", png.getvalue()[:20])
    add("cut_before_frame.jpg", "truncated", jpeg.getvalue()[:3000])
    add("text.png", "content is text", b"a photo of a cat, best quality\n")
    add("page.jpg", "content is text", b"<!DOCTYPE html><html><body>404 Not Found</body></html>")
    add("drawing.png", "content is SVG", b'<?xml version="1.0"?>\n<svg width="10" height="10"></svg>')
    add("phone.jpg", "HEIF/HEIC", struct.pack(">I4s4sI4s4s", 24, b"ftyp", b"heic", 0, b"mif1", b"heic"))
    add("noise.webp", "unrecognised", bytes(range(200, 256)) * 4)
    add("not_ihdr.png", "not IHDR", png.getvalue()[:12] + b"CgBI" + png.getvalue()[16:])
    bmp = bytearray(bmp_variant((8, 8)))
    struct.pack_into("<I", bmp, 30, 4)  # BI_JPEG
    add("jpeg_in.bmp", "compression 4", bytes(bmp))
    huge = bytearray(png.getvalue())
    struct.pack_into(">II", huge, 16, 20000, 20000)
    add("huge.png", "pixel limit", bytes(huge))
    plain = io.BytesIO()
    Image.new("RGB", (64, 64)).save(plain, "JPEG")  # no ICC profile, so the first FF C0 is the frame header
    dnl = bytearray(plain.getvalue())
    sof = dnl.index(b"\xff\xc0")
    struct.pack_into(">H", dnl, sof + 5, 0)
    add("dnl_height.jpg", "height 0", bytes(dnl))
    add("png_named.jxl", "not JPEG XL", png.getvalue())
    add("cut.jxl", "truncated", b"\xff\x0a\x10")
    # cut inside the pixel data: the header is intact, but the end-of-image marker is gone
    whole = io.BytesIO()
    Image.new("RGB", (256, 256), (10, 20, 30)).save(whole, "JPEG", quality=95)
    add("cut_in_pixels.jpg", "no JPEG end-of-image marker", whole.getvalue()[:-500])
    return out


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, tuple[int, int]], dict[str, str]]:
    folder = tmp_path_factory.mktemp("images")
    valid = make_valid(folder) | make_optional(folder)
    broken = make_broken(folder)
    return folder, valid, broken


def test_extensions_are_sd_scripts_defaults() -> None:
    assert IMAGE_EXTENSIONS == (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".PNG", ".JPG", ".JPEG", ".WEBP", ".BMP")
    assert set(OPTIONAL_EXTENSIONS) == {"pillow_avif", "jxlpy", "pillow_jxl"}
    assert extensions_for([]) == IMAGE_EXTENSIONS
    assert extensions_for(["pillow_avif"]) == (*IMAGE_EXTENSIONS, ".avif", ".AVIF")
    assert extensions_for(["jxlpy", "pillow_jxl", "unrelated"]) == (*IMAGE_EXTENSIONS, ".jxl", ".JXL")


def make_listing(folder: Path) -> None:
    names = [
        "b.png", "a.PNG", "c.jpeg", "C.JPEG", "d.JPG", "e.webp", "f.WEBP", "g.bmp", "h.BMP", "[x].png",
        "ü.jpg", "x.png.png", "mixed.Png", "upper.Jpg", "i.gif", "j.avif", "k.jxl", "l.png.txt", "noext",
        ".hidden.png", ".png", "m.tiff", "n.jpe",
    ]  # fmt: skip
    for name in names:
        (folder / name).write_bytes(b"")
    (folder / "dir.png").mkdir()  # glob lists directories too
    (folder / "sub").mkdir()
    (folder / "sub" / "nested.png").write_bytes(b"")  # not recursive
    (folder / "dangling.jpg").symlink_to(folder / "missing")


LISTED = ["C.JPEG", "[x].png", "a.PNG", "b.png", "c.jpeg", "d.JPG", "dangling.jpg", "dir.png", "e.webp",
          "f.WEBP", "g.bmp", "h.BMP", "x.png.png", "ü.jpg"]  # fmt: skip


@pytest.mark.skipif(sys.platform == "win32", reason="glob is case-insensitive on Windows")
def test_list_images_matches_glob_images(tmp_path: Path) -> None:
    make_listing(tmp_path)
    assert list_images(tmp_path) == [tmp_path / n for n in LISTED]
    with_optional = list_images(tmp_path, extensions_for(["pillow_avif", "jxlpy"]))
    assert [p.name for p in with_optional] == sorted([*LISTED, "j.avif", "k.jxl"])
    assert list_images(str(tmp_path))[0] == tmp_path / "C.JPEG"


def test_list_images_missing_folder(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        list_images(tmp_path / "nope")


def test_read_size_valid(files: tuple[Path, dict[str, tuple[int, int]], dict[str, str]]) -> None:
    folder, valid, _ = files
    assert {name: read_size(folder / name) for name in valid} == valid


def test_pil_agrees_except_where_sd_scripts_does_not(
    files: tuple[Path, dict[str, tuple[int, int]], dict[str, str]],
) -> None:
    folder, valid, _ = files
    off_by_one = {"alpha.webp", "exif.webp"}  # imagesize's VP8X bug
    for name, size in valid.items():
        if name.endswith((".jxl", ".JXL")):
            continue
        with Image.open(folder / name) as im:
            w, h = im.size
        assert (w - (name in off_by_one), h - (name in off_by_one)) == size, name


def test_exif_orientation_is_ignored(files: tuple[Path, dict[str, tuple[int, int]], dict[str, str]]) -> None:
    from PIL import ImageOps

    path = files[0] / "exif_rotated.jpg"
    with Image.open(path) as im:
        assert im.getexif()[0x0112] == 6
        assert ImageOps.exif_transpose(im).size == (400, 600)  # how a viewer shows it
    assert read_size(path) == (600, 400)  # what sd-scripts buckets and trains


def test_read_size_errors(files: tuple[Path, dict[str, tuple[int, int]], dict[str, str]]) -> None:
    folder, _, broken = files
    for name, reason in broken.items():
        with pytest.raises(ImageHeaderError) as info:
            read_size(folder / name)
        assert reason in info.value.reason, (name, info.value.reason)
        assert info.value.path == str(folder / name)
        assert str(info.value).startswith(f"{folder / name}: ")


def test_pixel_limit_is_pillows() -> None:
    from PIL import Image as PILImage

    assert PILImage.MAX_IMAGE_PIXELS is not None
    assert PIL_PIXEL_LIMIT == 2 * PILImage.MAX_IMAGE_PIXELS


def test_unreadable_paths(tmp_path: Path) -> None:
    (tmp_path / "dir.png").mkdir()
    with pytest.raises(ImageHeaderError, match="cannot read: Is a directory"):
        read_size(tmp_path / "dir.png")
    with pytest.raises(ImageHeaderError, match="cannot open: No such file"):
        read_size(tmp_path / "missing.png")


def test_strict_flags_misnamed_files(files: tuple[Path, dict[str, tuple[int, int]], dict[str, str]]) -> None:
    folder = files[0]
    assert read_size(folder / "jpeg_named.png") == (300, 100)
    with pytest.raises(ImageHeaderError, match="extension says PNG but content is JPEG"):
        read_size(folder / "jpeg_named.png", strict=True)
    with pytest.raises(ImageHeaderError, match="extension says JPEG but content is TIFF"):
        read_size(folder / "tiff_named.jpg", strict=True)
    assert read_size(folder / "cmyk.JPG", strict=True) == (300, 200)
    assert read_size(folder / "lossless.WEBP", strict=True) == (123, 45)


@pytest.mark.parametrize("workers", [None, 1, 3, 8])
def test_read_sizes_keeps_order_and_errors(
    files: tuple[Path, dict[str, tuple[int, int]], dict[str, str]], workers: int | None
) -> None:
    folder, valid, broken = files
    names = sorted([*valid, *broken]) * 40  # > 512 files, so workers=None may choose threads
    results = read_sizes([folder / n for n in names], workers=workers)
    for name, result in zip(names, results, strict=True):
        if name in valid:
            assert result == valid[name], name
        else:
            assert isinstance(result, ImageHeaderError) and broken[name] in result.reason, name


def test_error_pickles() -> None:
    err = pickle.loads(pickle.dumps(ImageHeaderError("/x/a.png", "empty file (0 bytes)")))
    assert (err.path, err.reason, str(err)) == ("/x/a.png", "empty file (0 bytes)", "/x/a.png: empty file (0 bytes)")


# --- against the real sd-scripts -----------------------------------------------------------------------

ENGINE_PROBE = textwrap.dedent(
    """
    # Runs under the trainer's Python: sd-scripts' own get_image_size and glob_images on our files.
    import json, os, sys
    sys.path.insert(0, os.environ["ARTLAB_KOHYA_DIR"])
    from library import jpeg_xl_util, train_util

    # train_util imports get_jxl_size only beside a JPEG XL plugin; bind it as that import would
    train_util.get_jxl_size = getattr(train_util, "get_jxl_size", jpeg_xl_util.get_jxl_size)
    spec = json.load(open(sys.argv[1]))
    sizes = {}
    for path in spec["files"]:
        try:
            size = train_util.BaseDataset.get_image_size(None, path)
            sizes[path] = list(size)
        except Exception as e:
            sizes[path] = "error: " + type(e).__name__ + ": " + str(e)
    listing = train_util.glob_images(spec["folder"], "*")
    json.dump({"sizes": sizes, "glob": listing, "extensions": train_util.IMAGE_EXTENSIONS},
              open(sys.argv[2], "w"))
    """
)


def engine_env() -> tuple[str, str]:
    kohya, python = os.environ.get("ARTLAB_KOHYA_DIR"), os.environ.get("ENGINE_PYTHON")
    if not kohya or not python:
        pytest.skip("needs the real sd-scripts: set ARTLAB_KOHYA_DIR and ENGINE_PYTHON (source env.sh)")
    return kohya, python


@pytest.mark.engine
def test_sizes_and_listing_match_sd_scripts(
    files: tuple[Path, dict[str, tuple[int, int]], dict[str, str]], tmp_path: Path
) -> None:
    _, python = engine_env()
    folder, valid, broken = files
    listing = tmp_path / "listing"
    listing.mkdir()
    make_listing(listing)
    spec = {"files": [str(folder / n) for n in [*valid, *broken]], "folder": str(listing)}
    (tmp_path / "spec.json").write_text(json.dumps(spec))
    (tmp_path / "probe.py").write_text(ENGINE_PROBE)
    run = subprocess.run(
        [python, str(tmp_path / "probe.py"), str(tmp_path / "spec.json"), str(tmp_path / "out.json")],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    got = json.loads((tmp_path / "out.json").read_text())

    engine_exts = tuple(got["extensions"])
    assert engine_exts[: len(IMAGE_EXTENSIONS)] == IMAGE_EXTENSIONS
    optional = [m for m, exts in OPTIONAL_EXTENSIONS.items() if set(exts) <= set(engine_exts)]
    assert set(extensions_for(optional)) == set(engine_exts)
    assert [str(p) for p in list_images(listing, engine_exts)] == got["glob"]

    wrong = {n: got["sizes"][str(folder / n)] for n, size in valid.items() if got["sizes"][str(folder / n)] != [*size]}
    assert not wrong
    # sd-scripts fails on every broken file: it raises, reports (0, 0) (which breaks bucketing), or, where
    # imagesize misses the damage, returns a size for a file that then can't be loaded
    engine_broken = {name: got["sizes"][str(folder / name)] for name in broken}
    sized = {n for n, e in engine_broken.items() if not isinstance(e, str) and min(e) > 0}
    assert sized == ENGINE_SIZES_GARBAGE, json.dumps(engine_broken)


# Broken files imagesize sizes anyway; sd-scripts fails on them later, when Pillow loads the pixels.
ENGINE_SIZES_GARBAGE = {"cut_header.png", "not_ihdr.png", "huge.png", "drawing.png", "cut.jxl", "cut_in_pixels.jpg"}
