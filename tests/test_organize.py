"""organize.py: kohya's N_name layout from a flat folder; the source is never changed."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest

from artlab_kohya.build.plan import make_plan
from artlab_kohya.dataset.organize import OrganizeError, auto_repeats, organize
from artlab_kohya.spec import load_spec

pytest.importorskip("PIL.Image")


def tree(folder: Path) -> dict[str, tuple[str, int]]:
    """Every file's content hash and mtime: what 'unchanged' means."""
    return {
        str(p.relative_to(folder)): (hashlib.sha256(p.read_bytes()).hexdigest(), p.stat().st_mtime_ns)
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def test_links_images_and_copies_captions(tmp_path, images):
    src = tmp_path / "raw"
    paths = images(src, [(512, 512)] * 5, caption="sks, a photo")
    paths[4].with_suffix(".txt").unlink()
    (src / "notes.md").write_text("not a dataset file")
    (src / "clip.gif").write_bytes(b"GIF89a")
    before = tree(src)
    result = organize(src, tmp_path / "img", "sks", 10)
    target = tmp_path / "img/10_sks"
    assert result.folder == target
    assert (result.images, result.captions, result.linked, result.copied) == (5, 4, 5, 0)
    assert result.skipped == ["clip.gif"]
    assert sorted(p.name for p in target.iterdir()) == sorted(
        [f"img00{i}.png" for i in range(5)] + [f"img00{i}.txt" for i in range(4)]
    )
    assert os.path.samefile(target / "img000.png", paths[0])  # a hard link: no space used
    assert not os.path.samefile(target / "img000.txt", paths[0].with_suffix(".txt"))  # edits stay here
    (target / "img000.txt").write_text("edited")
    assert tree(src) == before


@pytest.mark.parametrize("mode", ["copy", "symlink"])
def test_copy_and_symlink_modes(tmp_path, images, mode):
    src = tmp_path / "raw"
    images(src, [(512, 512)] * 2)
    result = organize(src, tmp_path / "out", "cat", 3, mode=mode)
    first = result.folder / "img000.png"
    assert result.folder.name == "3_cat"
    assert first.is_symlink() == (mode == "symlink")
    assert getattr(result, "symlinked" if mode == "symlink" else "copied") == 2


def test_refusals(tmp_path, images):
    src = tmp_path / "raw"
    images(src, [(512, 512)] * 2)
    organize(src, tmp_path / "img", "sks", 10)
    with pytest.raises(OrganizeError, match="already exists"):
        organize(src, tmp_path / "img", "sks", 10)
    with pytest.raises(OrganizeError, match="never written to"):
        organize(src, src, "sks", 10)
    with pytest.raises(OrganizeError, match="cannot be a folder name"):
        organize(src, tmp_path / "img", "a/b", 10)
    (tmp_path / "empty").mkdir()
    with pytest.raises(OrganizeError, match="no images"):
        organize(tmp_path / "empty", tmp_path / "img", "x", 1)


def test_auto_repeats_is_plans_derivation(tmp_path, images, write_spec):
    src = tmp_path / "raw"
    images(src, [(512, 512)] * 12 + [(512, 768)] * 6)
    repeats, why = auto_repeats(src, target_steps=1500, epochs=10, batch_size=2)
    assert why.startswith(f"repeats auto = {repeats}: the smallest repeats whose total reaches 1500 steps")
    spec = write_spec(
        "model:\n  source: sd15\ndataset:\n  batch_size: 2\n  subsets:\n    - path: raw\n      repeats: auto\n"
        "network:\n  type: lora\ntraining:\n  epochs: 10\n"
    )
    plan = make_plan(load_spec(spec))
    assert plan.subsets[0].repeats == repeats and plan.auto_repeats == why
    organized = organize(src, tmp_path / "img", "sks", repeats)
    assert organized.folder.name == f"{repeats}_sks"
