"""resize.py (`dataset prepare`): sizes as a pure function, then real files: RGB, EXIF, captions, SRC untouched."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from artlab_kohya.dataset.buckets import BucketConfig, assign_bucket
from artlab_kohya.dataset.prepare import PrepareError, parse_size, plan_resize, prepare

Image = pytest.importorskip("PIL.Image")


def tree(folder: Path) -> dict[str, tuple[str, int]]:
    return {
        str(p.relative_to(folder)): (hashlib.sha256(p.read_bytes()).hexdigest(), p.stat().st_mtime_ns)
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def test_parse_size():
    assert parse_size("512") == (512, 512)
    assert parse_size("768x512") == (768, 512)
    for bad in ("500", "abc", "512x512x512", "32"):
        with pytest.raises(PrepareError):
            parse_size(bad)


@pytest.mark.parametrize(
    ("size", "kwargs", "resized", "box"),
    [
        ((1000, 600), {}, (853, 512), (170, 0, 682, 512)),  # cover 512x512, crop the centre
        ((300, 300), {}, (512, 512), (0, 0, 512, 512)),  # upscaled to cover
        ((1000, 600), {"crop": "none"}, (512, 307), (0, 25, 512, 281)),  # fit, trim to 512x256
        ((700, 1000), {"crop": "none"}, (358, 512), (19, 0, 339, 512)),  # 320x512
        ((1000, 600), {"bucket": True}, (640, 384), (0, 0, 640, 384)),
    ],
)
def test_plan_resize(size, kwargs, resized, box):
    assert plan_resize(size, (512, 512), **kwargs) == (resized, box)
    w, h = box[2] - box[0], box[3] - box[1]
    assert w % 64 == 0 and h % 64 == 0


def test_bucket_mode_uses_sd_scripts_buckets():
    cfg = BucketConfig((512, 512), enable=True)
    for size in [(4000, 3000), (1080, 1920), (512, 512), (300, 1200), (2048, 1024)]:
        resized, box = plan_resize(size, (512, 512), bucket=True)
        assert (box[2] - box[0], box[3] - box[1]) == assign_bucket(cfg, size)


def test_prepare_writes_rgb_multiples_of_64_and_never_touches_src(tmp_path):
    src, dst = tmp_path / "src", tmp_path / "dst"
    src.mkdir()
    Image.new("RGB", (1000, 600), "red").save(src / "wide.jpg", quality=90)
    (src / "wide.txt").write_text("sks, wide")
    rgba = Image.new("RGBA", (600, 600), (0, 0, 255, 0))
    rgba.paste((0, 0, 255, 255), (0, 0, 300, 600))
    rgba.save(src / "alpha.png")
    exif = Image.Exif()
    exif[0x0112] = 6  # stored landscape, shown portrait (a phone photo)
    Image.new("RGB", (800, 600), "green").save(src / "phone.jpg", exif=exif)
    Image.new("L", (512, 512), 128).save(src / "gray.png")
    (src / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 30)
    (src / "orphan.txt").write_text("no image")
    before = tree(src)
    seen = []
    result = prepare(src, dst, (512, 512), crop="none", on_progress=lambda done, total: seen.append((done, total)))
    assert tree(src) == before
    assert seen[-1] == (5, 5)
    assert result.written == 4 and result.captions == 1 and len(result.failed) == 1
    assert result.failed[0].startswith("broken.png: ")
    assert sorted(p.name for p in dst.iterdir()) == ["alpha.png", "gray.png", "phone.jpg", "wide.jpg", "wide.txt"]
    for path in dst.glob("*.*g"):
        with Image.open(path) as im:
            assert im.mode == "RGB" and im.size[0] % 64 == 0 and im.size[1] % 64 == 0
            assert im.getexif().get(0x0112) in (None, 1)
    with Image.open(dst / "phone.jpg") as im:
        assert im.size == (384, 512)  # upright now
    with Image.open(dst / "alpha.png") as im:
        assert im.getpixel((500, 300)) == (255, 255, 255)  # transparent became white, not black
        assert im.getpixel((10, 300)) == (0, 0, 255)
    assert (dst / "wide.txt").read_text() == "sks, wide"


def test_prepare_refusals(tmp_path, images):
    src = tmp_path / "src"
    images(src, [(512, 512)] * 2)
    with pytest.raises(PrepareError, match="never written to"):
        prepare(src, src / "out", (512, 512))
    prepare(src, tmp_path / "dst", (512, 512))
    with pytest.raises(PrepareError, match="nothing is overwritten"):
        prepare(src, tmp_path / "dst", (512, 512))


def test_prepare_bucket_mode(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    for i, size in enumerate([(1000, 600), (600, 1000), (700, 700)]):
        Image.new("RGB", size, "blue").save(src / f"{i}.png")
    result = prepare(src, tmp_path / "dst", (512, 512), bucket=True)
    assert result.sizes == {(384, 640): 1, (512, 512): 1, (640, 384): 1}
