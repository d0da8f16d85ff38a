"""Hostile datasets: files cut short, folders and captions that cannot be read, symlink loops, FIFOs,
read-only folders, two caption edits at once, an interrupted restore, sd-scripts' latent cache files.

Every error here is a real one from the filesystem. Permission errors need an unprivileged process:
as root, the commands run in a child without the capabilities that let root read and write anything
(`setpriv`), so `chmod 000` means what it says.
"""

from __future__ import annotations

import io
import os
import re
import shutil
import struct
import subprocess
import sys
from pathlib import Path

import pytest

from artlab_kohya.dataset import check_folder, check_spec_dataset
from artlab_kohya.dataset.images import ImageHeaderError, read_size
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


def test_the_end_marker_is_found_across_read_blocks(tmp_path, monkeypatch):
    from artlab_kohya.dataset import images

    jpg = encoded((200, 150), "JPEG", quality=85)
    monkeypatch.setattr(images, "_TAIL", 16)
    monkeypatch.setattr(images, "_SCAN", 3)  # every position of FF D9 against a block boundary comes up
    for extra in range(40):
        read_size(_write(tmp_path / "a.jpg", jpg + bytes(range(1, extra + 1))))  # no FF D9 in the extra bytes
    with pytest.raises(ImageHeaderError, match="no JPEG end-of-image marker"):
        read_size(_write(tmp_path / "a.jpg", jpg[:-2] + bytes(range(1, 30))))


def test_spec_check_and_plan_see_cut_files(tmp_path, images, write_spec):
    from artlab_kohya.build.plan import PlanError, make_plan

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


# --------------------------------------------------------------------------- 2. hostile folders

posix_only = pytest.mark.skipif(os.name != "posix", reason="symlinks, FIFOs and permission bits are POSIX here")
SETPRIV = shutil.which("setpriv")
# what lets root read and write whatever the permission bits say
ROOT_OVERRIDES = "--bounding-set=-dac_override,-dac_read_search"


def finishes(fn, fifos: list[Path], timeout: float = 30.0):
    """fn(), which must not block on the FIFOs; if it does, they are opened for writing so the test ends."""
    import threading

    result: list[object] = []

    def call() -> None:
        try:
            result.append(fn())
        except BaseException as exc:  # noqa: BLE001 - handed to the test below
            result.append(exc)

    thread = threading.Thread(target=call, daemon=True)
    thread.start()
    thread.join(timeout)
    if thread.is_alive():
        for fifo in fifos:
            os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))
        thread.join(timeout)
        pytest.fail(f"blocked on a FIFO ({', '.join(f.name for f in fifos)})")
    if isinstance(result[0], BaseException):
        raise result[0]
    return result[0]


@posix_only
def test_symlink_loops_fifos_and_folders_named_like_files(tmp_path, images):
    folder = tmp_path / "10_sks"
    paths = images(folder, [(512, 512)] * 15, caption="sks, a photo")
    for i in (0, 1, 2):
        paths[i].with_suffix(".txt").unlink()
    paths[0].with_suffix(".txt").symlink_to(paths[0].with_suffix(".txt").name)  # a loop
    os.mkfifo(paths[1].with_suffix(".txt"))
    paths[2].with_suffix(".txt").mkdir()
    (folder / "loop.png").symlink_to("loop.png")
    (folder / "elsewhere").symlink_to("elsewhere")  # a loop that is no image: listed with the other files
    os.mkfifo(folder / "pipe.png")
    (folder / "face_1_2_3_4.png").write_bytes(paths[3].read_bytes() + b"\0")
    (folder / "face_1_2_3_4.txt").mkdir()  # passed over: the face-crop name's caption is read instead
    (folder / "face.txt").write_text("sks, face")
    fifos = [paths[1].with_suffix(".txt"), folder / "pipe.png"]
    report = finishes(lambda: check_folder(folder), fifos)
    found = report.subsets[0].findings
    assert found["caption_not_file"] == [
        "face_1_2_3_4.txt: a folder",
        "img000.txt: too many levels of symbolic links",
        "img001.txt: a FIFO",
        "img002.txt: a folder",
    ]
    # as sd-scripts: class tokens for these (loop.png and pipe.png have no caption either)
    assert found["caption_missing"] == ["img000.png", "img001.png", "img002.png", "loop.png", "pipe.png"]
    assert found["unreadable"] == [
        "loop.png: cannot open: Too many levels of symbolic links",
        "pipe.png: not a regular file (a FIFO or a device)",
    ]
    assert report.subsets[0].captioned == 13
    loop = tmp_path / "10_loop"
    loop.symlink_to(loop.name)
    (issue,) = check_folder(loop).issues
    assert issue.message == f"{loop} cannot be read: Too many levels of symbolic links" and issue.severity == "error"
    report = check_folder(tmp_path)  # kohya's img/ layout: like sd-scripts, only the N_name folders count
    assert [s.path.name for s in report.subsets] == ["10_sks"]


@pytest.fixture(scope="module")
def unprivileged(tmp_path_factory):
    """A way to run the CLI where permission bits hold: as root, a child without root's overrides."""
    argv: list[str] = []
    if os.geteuid() == 0:
        if SETPRIV is None:
            pytest.skip("running as root and setpriv is not installed: root reads chmod 000 files")
        argv = [SETPRIV, "--inh-caps=-all", ROOT_OVERRIDES]
    probe = tmp_path_factory.mktemp("probe") / "secret"
    probe.write_text("x")
    probe.chmod(0)
    code = f"open({str(probe)!r}).read()"
    result = subprocess.run([*argv, sys.executable, "-c", code], capture_output=True, text=True, check=False)
    probe.chmod(0o600)
    if "PermissionError" not in result.stderr:
        pytest.skip(f"cannot run a process that permission bits stop here ({result.stderr.strip()[-200:]})")

    def run(*args: object, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
        command = [*argv, sys.executable, "-m", "artlab_kohya", *map(str, args)]
        return subprocess.run(command, capture_output=True, text=True, timeout=120, cwd=cwd, check=False)

    return run


@pytest.fixture
def chmod(request):
    """chmod(path, mode), put back after the test so that the temporary folder can be removed."""

    def change(path: Path, mode: int) -> None:
        old = path.stat().st_mode & 0o7777
        request.addfinalizer(lambda: path.chmod(old))
        path.chmod(mode)

    return change


def no_traceback(result: subprocess.CompletedProcess[str]) -> str:
    assert "Traceback" not in result.stderr, result.stderr
    return result.stderr


@posix_only
def test_dataset_check_unreadable_folders_and_captions(tmp_path, images, unprivileged, chmod):
    folder = tmp_path / "img/10_sks"
    paths = images(folder, [(512, 512)] * 15, caption="sks")
    chmod(paths[4].with_suffix(".txt"), 0)
    result = unprivileged("dataset", "check", folder)
    err = no_traceback(result)
    assert result.returncode == 1
    assert f"{folder}: 1 caption file(s) cannot be read: sd-scripts stops when it opens them: img004.txt: " \
        "Permission denied" in err  # fmt: skip
    chmod(folder, 0)
    result = unprivileged("dataset", "check", folder)  # the argument itself: click says so, as a usage error
    assert result.returncode == 2 and f"Path '{folder}' is not readable" in no_traceback(result)
    result = unprivileged("dataset", "check", folder.parent)  # the img/ layout, one N_name folder locked
    err = no_traceback(result)
    assert result.returncode == 1 and f"{folder}: {folder} cannot be read: Permission denied" in err
    chmod(folder, 0o644)  # names can be listed, files not opened
    result = unprivileged("dataset", "check", folder)
    err = no_traceback(result)
    assert result.returncode == 1 and "16 image(s) cannot be read" not in err
    assert "15 image(s) cannot be read: img000.png: cannot open: Permission denied" in err


@posix_only
def test_check_spec_unreadable_folder_and_caption(tmp_path, images, write_spec, unprivileged, chmod):
    folder = tmp_path / "img/10_sks"
    paths = images(folder, [(512, 512)] * 15, caption="sks")
    spec = write_spec(SPEC.format(path="img/10_sks"))
    chmod(paths[0].with_suffix(".txt"), 0)
    result = unprivileged("check", spec)
    err = no_traceback(result)
    assert result.returncode == 2
    assert "spec.yaml:6: dataset.subsets[0].path: 1 caption file(s) cannot be read" in err
    assert "img000.txt: Permission denied" in err
    chmod(folder, 0)
    result = unprivileged("check", spec)
    err = no_traceback(result)
    assert result.returncode == 2 and f"spec.yaml:6: dataset.subsets[0].path: {folder} cannot be read" in err
    result = unprivileged("plan", spec)
    assert result.returncode != 0 and f"{folder} cannot be read: Permission denied" in no_traceback(result)
    chmod(folder, 0o755)
    chmod(folder.parent, 0)  # the folder cannot even be looked at
    for command in ("check", "plan"):
        result = unprivileged(command, spec)
        err = no_traceback(result)
        assert result.returncode != 0 and f"dataset.subsets[0].path: {folder} cannot be read: Permission denied" in err


@posix_only
def test_organize_stops_on_a_file_it_cannot_place_and_leaves_nothing(tmp_path, images):
    from artlab_kohya.dataset.organize import OrganizeError, organize

    images(tmp_path / "raw", [(512, 512)] * 3)
    (tmp_path / "raw/loop.png").symlink_to("loop.png")
    with pytest.raises(OrganizeError, match=r"raw/loop.png: Too many levels of symbolic links; nothing was left"):
        organize(tmp_path / "raw", tmp_path / "img", "sks", 10, mode="copy")
    assert not (tmp_path / "img/10_sks").exists()
    (tmp_path / "raw/loop.png").unlink()
    (tmp_path / "raw/elsewhere.png.bak").symlink_to("elsewhere.png.bak")  # a loop among the other files
    (tmp_path / "file").write_text("x")
    with pytest.raises(OrganizeError, match=r"cannot create .*file/10_sks: Not a directory"):
        organize(tmp_path / "raw", tmp_path / "file", "sks", 10)
    with pytest.raises(OrganizeError, match=r"raw/loop.png: .*[Ll]oop.*; nothing was left"):
        (tmp_path / "raw/loop.png").symlink_to("loop.png")
        organize(tmp_path / "raw", tmp_path / "img", "sks", 10, mode="symlink")
    (tmp_path / "raw/loop.png").unlink()
    (tmp_path / "out").symlink_to("out")
    with pytest.raises(OrganizeError, match=r"out/10_sks cannot be resolved: "):
        organize(tmp_path / "raw", tmp_path / "out", "sks", 10)
    assert organize(tmp_path / "raw", tmp_path / "img", "sks", 10).images == 3


@posix_only
def test_organize_unreadable_caption_and_read_only_out(tmp_path, images, unprivileged, chmod):
    paths = images(tmp_path / "raw", [(512, 512)] * 3)
    chmod(paths[1].with_suffix(".txt"), 0)
    result = unprivileged("dataset", "organize", tmp_path / "raw", "--name", "sks", "--repeats", "5",
                          "--out", tmp_path / "img")  # fmt: skip
    assert result.returncode == 1
    assert f"error: {paths[1].with_suffix('.txt')}: Permission denied; nothing was left" in no_traceback(result)
    assert not (tmp_path / "img/5_sks").exists()
    paths[1].with_suffix(".txt").chmod(0o644)
    (tmp_path / "locked").mkdir()
    chmod(tmp_path / "locked", 0o555)
    result = unprivileged("dataset", "organize", tmp_path / "raw", "--name", "sks", "--repeats", "5",
                          "--out", tmp_path / "locked")  # fmt: skip
    assert result.returncode == 1
    assert f"error: cannot create {tmp_path / 'locked/5_sks'}: Permission denied" in no_traceback(result)


@posix_only
def test_prepare_read_only_destination_and_unreadable_caption(tmp_path, images, unprivileged, chmod):
    paths = images(tmp_path / "raw", [(600, 600)] * 3)
    (tmp_path / "file").write_text("x")
    result = unprivileged("dataset", "prepare", tmp_path / "raw", tmp_path / "file/out", "--size", "512")
    assert result.returncode == 1 and "cannot write in" in no_traceback(result) and "Not a directory" in result.stderr
    (tmp_path / "loop").symlink_to("loop")
    result = unprivileged("dataset", "prepare", tmp_path / "raw", tmp_path / "loop", "--size", "512")
    assert result.returncode == 1 and "loop cannot be resolved: " in no_traceback(result)
    (tmp_path / "locked").mkdir()
    chmod(tmp_path / "locked", 0o555)
    result = unprivileged("dataset", "prepare", tmp_path / "raw", tmp_path / "locked", "--size", "512")
    assert result.returncode == 1
    assert f"error: cannot write in {tmp_path / 'locked'}: Permission denied" in no_traceback(result)
    chmod(paths[2].with_suffix(".txt"), 0)
    result = unprivileged("dataset", "prepare", tmp_path / "raw", tmp_path / "out", "--size", "512")
    assert result.returncode == 1
    assert "error: img002.txt: cannot copy the caption: Permission denied" in no_traceback(result)
    assert "3 images (512x512: 3), 2 captions" in result.stdout


@posix_only
def test_caption_edit_passes_over_loops_fifos_and_folders(tmp_path, images):
    from click.testing import CliRunner

    from artlab_kohya.cli.caption import caption

    folder = tmp_path / "10_sks"
    images(folder, [(512, 512)] * 2, caption="1girl")
    (folder / "loop.txt").symlink_to("loop.txt")
    os.mkfifo(folder / "pipe.txt")
    (folder / "sub.txt").mkdir()
    result = finishes(
        lambda: CliRunner().invoke(caption, ["edit", str(folder), "--prefix", "sks"]), [folder / "pipe.txt"]
    )
    assert result.exit_code == 0 and "2 caption file(s) changed" in result.stdout, result.output
    assert (folder / "img000.txt").read_text() == "sks, 1girl"


@posix_only
def test_caption_edit_unreadable_caption_and_read_only_folder(tmp_path, images, unprivileged, chmod):
    folder = tmp_path / "10_sks"
    paths = images(folder, [(512, 512)] * 3, caption="1girl")
    chmod(paths[1].with_suffix(".txt"), 0)
    result = unprivileged("caption", "edit", folder, "--prefix", "sks")
    assert result.returncode == 1
    assert f"error: cannot read 1 caption file(s) in {folder}: img001.txt (Permission denied); nothing was " \
        "changed" in no_traceback(result)  # fmt: skip
    assert paths[0].with_suffix(".txt").read_text() == "1girl"
    paths[1].with_suffix(".txt").chmod(0o644)
    shutil.rmtree(folder / ".artlab-captions")  # the lock file made it
    chmod(folder, 0o555)
    result = unprivileged("caption", "edit", folder, "--prefix", "sks")
    assert result.returncode == 1
    assert f"error: cannot write in {folder}/.artlab-captions: Permission denied; nothing was changed" in no_traceback(
        result
    )
    folder.chmod(0o755)
    (folder / ".artlab-captions").mkdir()  # the backup area can be written, the folder itself not
    folder.chmod(0o555)
    result = unprivileged("caption", "edit", folder, "--prefix", "sks")
    err = no_traceback(result)
    assert result.returncode == 1
    assert f"error: cannot write {folder}/img000.txt: Permission denied; nothing was changed" in err
    assert [p.read_text() for p in sorted(folder.glob("*.txt"))] == ["1girl"] * 3
    assert [p.name for p in (folder / ".artlab-captions").iterdir()] == ["lock"]  # no backup of nothing


# --------------------------------------------------------------------------- 3. two edits at once, restores cut off

SLOW_WRITES = """
import os, sys, time
replace = os.replace
def slow(a, b):
    time.sleep(0.4)
    replace(a, b)
os.replace = slow
from artlab_kohya.cli.main import main
main(sys.argv[1:])
"""


def captions_of(folder: Path) -> list[str]:
    return [p.read_text() for p in sorted(folder.glob("img*.txt"))]


@posix_only
def test_a_second_caption_edit_is_refused_not_lost(tmp_path, images):
    folder = tmp_path / "10_sks"
    images(folder, [(512, 512)] * 5, caption="1girl")
    slow = subprocess.Popen(
        [sys.executable, "-c", SLOW_WRITES, "caption", "edit", str(folder), "--prefix", "first"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    backups = folder / ".artlab-captions"
    for _ in range(200):  # until the first edit has backed up and is writing (0.4 s a file)
        if list(backups.glob("*/manifest.json")):
            break
        slow.poll()
        assert slow.returncode is None, slow.communicate()
        subprocess.run(["sleep", "0.05"], check=True)
    second = subprocess.run(
        [sys.executable, "-m", "artlab_kohya", "caption", "edit", str(folder), "--prefix", "second"],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    out, err = slow.communicate(timeout=60)
    assert slow.returncode == 0 and "5 caption file(s) changed" in out, err
    assert second.returncode == 1, second.stdout
    assert f"another caption edit, restore or captioning run (process {slow.pid}) is changing the captions in " \
        f"{folder}; nothing was changed" in second.stderr  # fmt: skip
    assert captions_of(folder) == ["first, 1girl"] * 5  # the first edit whole, the second one refused
    assert subprocess.run(
        [sys.executable, "-m", "artlab_kohya", "caption", "edit", str(folder), "--prefix", "second"],
        capture_output=True, text=True, timeout=60, check=False,
    ).returncode == 0  # fmt: skip
    assert captions_of(folder) == ["second, first, 1girl"] * 5


def edited(tmp_path, images) -> Path:
    """Three captions changed and a fourth created by one edit (one backup set)."""
    from artlab_kohya.dataset.caption_edit import write_captions

    folder = tmp_path / "10_sks"
    images(folder, [(512, 512)] * 4, caption="1girl")
    (folder / "img003.txt").unlink()
    texts = {folder / f"img00{i}.txt": "sks, 1girl" for i in range(3)} | {folder / "img003.txt": "sks, new"}
    write_captions(folder, texts, "caption edit --prefix 'sks'")
    assert captions_of(folder) == EDITED
    return folder


EDITED, ORIGINAL = ["sks, 1girl"] * 3 + ["sks, new"], ["1girl"] * 3


def test_a_restore_that_fails_half_way_is_finished_not_repeated(tmp_path, images, monkeypatch):
    from artlab_kohya.dataset.caption_edit import CaptionError, list_backups, restore

    folder = edited(tmp_path, images)
    (edit_set,) = list_backups(folder)
    replace, calls = os.replace, []

    def fails_third(src, dst):
        calls.append(dst)
        if len(calls) == 3:  # the first is the restore's own pending.json, the second img000.txt
            raise OSError(28, "No space left on device")
        return replace(src, dst)

    monkeypatch.setattr(os, "replace", fails_third)
    with pytest.raises(CaptionError, match=f"the restore of {edit_set.id} stopped at img001.txt: No space left"):
        restore(folder)
    monkeypatch.setattr(os, "replace", replace)
    assert captions_of(folder) == ["1girl", "sks, 1girl", "sks, 1girl", "sks, new"]  # cut off half-way
    restored, undo = restore(folder)  # the same command again finishes that restore; it does not start another
    assert restored.id == edit_set.id and undo is not None
    assert captions_of(folder) == ORIGINAL
    assert (undo.changed, undo.created) == (("img000.txt", "img001.txt", "img002.txt", "img003.txt"), ())
    assert [b.command for b in list_backups(folder)] == [edit_set.command, f"restore {edit_set.id}"]
    assert not [p for p in folder.rglob("*") if p.name.endswith(".tmp") or p.name == "pending.json"]
    restore(folder)  # and undoing the restore brings the whole edit back, as it was before the first try
    assert captions_of(folder) == EDITED


KILLED_AT = """
import os, shutil, sys
count, target = [0], int(sys.argv[2])
real = {module}.{name}
def killed(*args, **kw):
    count[0] += 1
    if count[0] == target:
        os._exit(9)  # no cleanup of any kind runs, as when the process is killed
    return real(*args, **kw)
{module}.{name} = killed
from artlab_kohya.dataset.caption_edit import restore
restore(sys.argv[1])
"""


@posix_only
@pytest.mark.parametrize(
    ("module", "name", "nth", "state"),
    [
        ("shutil", "copy2", 2, EDITED),  # while copying what the restore replaces: nothing changed yet
        ("os", "replace", 2, EDITED),  # between the first caption's temporary file and its rename
        ("os", "replace", 3, ["1girl"] + EDITED[1:]),  # after one caption
        ("os", "replace", 5, ORIGINAL),  # after every caption, before the manifest
    ],
)
def test_a_restore_killed_at_any_point_is_finished_by_the_next(tmp_path, images, module, name, nth, state):
    from artlab_kohya.dataset.caption_edit import list_backups, restore

    folder = edited(tmp_path, images)
    (edit_set,) = list_backups(folder)
    code = KILLED_AT.format(module=module, name=name)
    killed = subprocess.run([sys.executable, "-c", code, str(folder), str(nth)], capture_output=True, text=True)
    assert killed.returncode == 9, killed.stderr
    assert captions_of(folder) == state
    assert list_backups(folder) == [edit_set]  # the restore's own set is not complete yet
    restored, undo = restore(folder)
    assert restored == edit_set and undo is not None and undo.command == f"restore {edit_set.id}"
    assert captions_of(folder) == ORIGINAL
    assert list_backups(folder) == [edit_set, undo]
    leftovers = [p.name for p in folder.rglob("*") if p.name.endswith(".tmp") or p.name == "pending.json"]
    assert leftovers == []
    restore(folder)
    assert captions_of(folder) == EDITED


def test_an_edit_waits_for_an_unfinished_restore(tmp_path, images, monkeypatch):
    from artlab_kohya.dataset.caption_edit import CaptionError, Edit, edit_captions, restore

    folder = edited(tmp_path, images)
    replace, calls = os.replace, []

    def fails_after_second(src, dst):
        calls.append(dst)
        if len(calls) > 2:  # pending.json and img000.txt are written, img001.txt is not
            raise OSError(5, "Input/output error")
        return replace(src, dst)

    monkeypatch.setattr(os, "replace", fails_after_second)
    with pytest.raises(CaptionError, match="stopped at img001.txt: Input/output error"):
        restore(folder)
    monkeypatch.setattr(os, "replace", replace)
    with pytest.raises(CaptionError, match="a restore of the captions in .* was cut off; nothing was changed: run"):
        edit_captions(folder, Edit(prefix="x"))
    restore(folder)
    assert edit_captions(folder, Edit(prefix="x")).backup is not None


@posix_only
def test_caption_restore_in_a_read_only_folder_changes_nothing(tmp_path, images, unprivileged, chmod):
    folder = edited(tmp_path, images)
    chmod(folder, 0o555)
    result = unprivileged("caption", "restore", folder)
    assert result.returncode == 1
    assert ": img000.txt: Permission denied; nothing was changed" in no_traceback(result)
    assert captions_of(folder) == EDITED
    folder.chmod(0o755)
    result = unprivileged("caption", "edit", folder, "--prefix", "x")  # no unfinished restore in the way
    assert result.returncode == 0, result.stderr
    result = unprivileged("caption", "restore", folder)
    assert result.returncode == 0 and captions_of(folder) == EDITED, result.stderr


@posix_only
def test_caption_folders_that_can_be_listed_but_not_entered(tmp_path, images, unprivileged, chmod):
    folder = edited(tmp_path, images)
    chmod(folder / ".artlab-captions", 0o311)  # the backup area cannot be listed
    for args in (["restore", folder, "--list"], ["restore", folder], ["edit", folder, "--prefix", "x"]):
        result = unprivileged("caption", *args)
        err = no_traceback(result)
        assert result.returncode == 1 and f"error: {folder}/.artlab-captions cannot be read: Permission" in err, args
    (folder / ".artlab-captions").chmod(0o755)
    chmod(folder, 0o644)  # the names can be listed, the files not looked at
    result = unprivileged("caption", "edit", folder, "--prefix", "x", "--dry-run")
    err = no_traceback(result)
    assert result.returncode == 1 and "error: cannot read 4 caption file(s) in" in err
    assert "img000.txt (Permission denied)" in err


# --------------------------------------------------------------------------- 4. the caption extension


BAD_EXTENSIONS = [("", "an empty caption extension"), ("txt", "'txt' has no leading dot"), (".t*", "'.t*'")]


def test_caption_edit_refuses_an_empty_or_dotless_extension(tmp_path, images):
    from click.testing import CliRunner

    from artlab_kohya.cli.caption import caption
    from artlab_kohya.cli.dataset import dataset

    folder = tmp_path / "10_sks"
    images(folder, [(512, 512)] * 2, caption="1girl")
    (folder / "notes.md").write_text("# notes\n")
    (folder / "meta.json").write_text("{}\n")
    (folder / "imgtxt").write_text("no dot\n")
    before = {p.name: p.read_bytes() for p in folder.iterdir() if p.is_file()}
    for ext, says in BAD_EXTENSIONS:
        result = CliRunner().invoke(caption, ["edit", str(folder), "--prefix", "sks", "--caption-extension", ext])
        assert {p.name: p.read_bytes() for p in folder.iterdir() if p.is_file()} == before, ext
        assert result.exit_code == 2 and says in result.stderr, result.output
        result = CliRunner().invoke(dataset, ["check", str(folder), "--caption-extension", ext])
        assert result.exit_code == 2 and says in result.stderr, result.output
    result = CliRunner().invoke(caption, ["edit", "--help"])
    assert "sd-scripts adds none, so txt and" in " ".join(result.stdout.split())


def test_caption_extension_rule_is_the_specs(tmp_path):
    from artlab_kohya.dataset.caption_edit import CAPTION_EXTENSION, Edit, check_caption_extension, plan_edit
    from artlab_kohya.spec.model import DatasetSpec, SubsetSpec

    for ext, says in BAD_EXTENSIONS:
        with pytest.raises(ValueError, match=re.escape(says)):
            plan_edit(tmp_path, Edit(prefix="sks"), ext)
    assert check_caption_extension(".caption") == ".caption"
    for model in (DatasetSpec, SubsetSpec):
        field = model.model_json_schema()["properties"]["caption_extension"]
        patterns = [field.get("pattern")] + [a.get("pattern") for a in field.get("anyOf", [])]
        assert CAPTION_EXTENSION.pattern in patterns, (model, field)


# --------------------------------------------------------------------------- 5. sd-scripts' latent cache files


def test_latent_cache_files_are_not_dataset_problems(tmp_path, images, write_spec):
    from artlab_kohya.dataset.caption_edit import Edit, plan_edit
    from artlab_kohya.dataset.organize import organize

    folder = tmp_path / "img/10_sks"
    paths = images(folder, [(512, 512)] * 15, caption="sks, a photo")
    for path in paths:  # what cache_latents_to_disk (and the text encoder cache) write beside each image
        path.with_suffix(".npz").write_bytes(b"PK\x03\x04 latents")
        (folder / f"{path.stem}_0512x0512_sd3.npz").write_bytes(b"PK\x03\x04 latents")
        (folder / f"{path.stem}_te_outputs.npz").write_bytes(b"PK\x03\x04 outputs")
    (folder / "removed_image.npz").write_bytes(b"PK\x03\x04 stale")  # its image was deleted since
    report = check_folder(folder)
    assert report.issues == [] and report.subsets[0].findings == {}
    assert report.subsets[0].images == 15 and report.subsets[0].captioned == 15
    assert check_spec_dataset(load_spec(write_spec(SPEC.format(path="img/10_sks")))).issues == []
    changes, _ = plan_edit(folder, Edit(prefix="x"))
    assert len(changes) == 15 and {c.path.suffix for c in changes} == {".txt"}
    assert organize(folder, tmp_path / "out", "sks", 1).skipped == []
