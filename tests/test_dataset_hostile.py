"""Hostile datasets: files cut short, folders and captions that cannot be read, symlink loops, FIFOs,
read-only folders, two caption edits at once, an interrupted restore, sd-scripts' latent cache files.

Every error here is a real one from the filesystem. Permission errors need an unprivileged process:
as root, the commands run in a child without the capabilities that let root read and write anything
(`setpriv`), so `chmod 000` means what it says.
"""

from __future__ import annotations

import io
import struct
from pathlib import Path

import pytest

from artlab_kohya.dataset import check_folder, check_spec_dataset
from artlab_kohya.images import ImageHeaderError, read_size
from artlab_kohya.spec import load_spec

Image = pytest.importorskip("PIL.Image")


@pytest.fixture(autouse=True)
def no_tokenizer(tmp_path, monkeypatch):
    monkeypatch.setenv("ARTLAB_KOHYA_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.delenv("ARTLAB_KOHYA_TOKENIZERS", raising=False)


def encoded(size: tuple[int, int], fmt: str, **kw: object) -> bytes:
    """A real image file's bytes: noise, so that it is larger than the first read of a header."""
    out = io.BytesIO()
    Image.effect_noise(size, 60).convert("RGB").save(out, fmt, **kw)
    return out.getvalue()


def pillow_loads(path: Path) -> bool:
    """What sd-scripts' load_image does first: a full decode with Pillow."""
    try:
        with Image.open(path) as im:
            im.load()
    except Exception:  # noqa: BLE001 - any failure to decode is the answer
        return False
    return True


# --------------------------------------------------------------------------- 1. files cut short


def cut_files(folder: Path) -> dict[str, bytes]:
    """Files whose header is intact but whose end is missing, as an interrupted copy leaves them."""
    png, jpg = encoded((256, 256), "PNG"), encoded((256, 256), "JPEG", quality=90)
    webp, bmp = encoded((128, 128), "WEBP", quality=80), encoded((64, 64), "BMP")
    small = io.BytesIO()
    Image.new("RGB", (512, 512), (1, 2, 3)).save(small, "PNG")  # a few hundred bytes: all in the first read
    thumb = b"\xff\xe1" + struct.pack(">H", 2 + 14) + b"Exif\x00\x00thumb\xff\xd9!"  # an EOI before the frame
    files = {
        "cut.png": png[: len(png) // 2],
        "cut_small.png": small.getvalue()[:-60],
        "no_iend.png": png[:-12],  # every pixel there, only the end chunk missing (taken as cut too)
        "cut.jpg": jpg[: len(jpg) * 2 // 3],
        "cut_thumb.jpg": jpg[:2] + thumb + jpg[2 : len(jpg) // 2],
        "cut.webp": webp[: len(webp) - 100],
        "cut.bmp": bmp[:-64],
    }
    for name, data in files.items():
        (folder / name).write_bytes(data)
    return files


def whole_files(folder: Path) -> list[str]:
    """Complete files with bytes after their end: padding, appended data, a motion photo's video."""
    jpg, png = encoded((200, 150), "JPEG", quality=85), encoded((200, 150), "PNG")
    no_eoi = bytes(range(256)) * (5 << 12)  # 5 MiB with no FF D9 in it: the search reads back to the image
    files = {
        "padded.jpg": jpg + bytes(3000),
        "motion.jpg": jpg + struct.pack(">I4s", 24, b"ftyp") + b"mp42" + no_eoi,
        "appended.png": png + b"\x00" * 10_000,  # the end chunk is not near the end: the chunks are walked
        "trailing.png": png + b"\n",
        "exact.webp": encoded((64, 64), "WEBP", lossless=True),
        "exact.bmp": encoded((33, 7), "BMP"),
    }
    for name, data in files.items():
        (folder / name).write_bytes(data)
    return list(files)


def test_cut_files_are_errors_without_deep(tmp_path, images):
    folder = tmp_path / "10_sks"
    images(folder, [(512, 512)] * 15)
    cut = cut_files(folder)
    for name in cut:
        (folder / name).with_suffix(".txt").write_text("sks")
        if name != "no_iend.png":  # Pillow (so sd-scripts) fails on each when it decodes it
            assert not pillow_loads(folder / name), name
    report = check_folder(folder)
    found = report.subsets[0].findings["unreadable"]
    assert sorted(e.split(":")[0] for e in found) == sorted(cut)
    assert all(e.split(": ")[1] == "truncated" for e in found), found
    (issue,) = [i for i in report.errors if "cannot be read" in i.message]
    assert issue.where == str(folder) and issue.message.startswith(f"{len(cut)} image(s) cannot be read: ")
    assert "cut.bmp: truncated: the file has" in issue.message


def test_complete_files_with_bytes_after_their_end_are_fine(tmp_path):
    names = whole_files(tmp_path)
    for name in names:
        assert pillow_loads(tmp_path / name), name
        read_size(tmp_path / name)
    with pytest.raises(ImageHeaderError, match="no JPEG end-of-image marker"):
        read_size(_write(tmp_path / "motion_cut.jpg", (tmp_path / "motion.jpg").read_bytes()[:5000]))


def test_spec_check_and_plan_see_cut_files(tmp_path, images, write_spec):
    from artlab_kohya.plan import PlanError, make_plan

    folder = tmp_path / "img/10_sks"
    images(folder, [(512, 512)] * 15)
    png = encoded((256, 256), "PNG")
    (folder / "cut.png").write_bytes(png[: len(png) // 2])
    spec = load_spec(write_spec(SPEC.format(path="img/10_sks")))
    (error,) = check_spec_dataset(spec).errors
    assert str(error).startswith("spec.yaml:6: dataset.subsets[0].path: 1 image(s) cannot be read: cut.png: truncated")
    with pytest.raises(PlanError, match="cut.png: truncated"):
        make_plan(spec)


def test_cut_avif_and_jpeg_xl_boxes(tmp_path):
    from test_images import jxl_codestream, jxl_container

    jxl = jxl_container(jxl_codestream(640, 480, pad=300))
    with pytest.raises(ImageHeaderError, match="truncated: the 'jxlc' box runs to byte"):
        read_size(_write(tmp_path / "cut.jxl", jxl[:-50]))
    if "avif" not in Image.registered_extensions().get(".avif", "").lower():
        pytest.skip("this Pillow does not write AVIF")
    avif = encoded((128, 96), "AVIF", quality=60)
    assert read_size(_write(tmp_path / "whole.avif", avif)) == (128, 96)
    with pytest.raises(ImageHeaderError, match="truncated: the 'mdat' box runs to byte"):
        read_size(_write(tmp_path / "cut.avif", avif[:-100]))
    assert not pillow_loads(tmp_path / "cut.avif")


def _write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


SPEC = """\
model:
  source: sd15
dataset:
  batch_size: 1
  subsets:
    - path: {path}
network:
  type: lora
"""
