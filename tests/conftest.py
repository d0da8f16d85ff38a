"""Shared fixtures: real image files made with Pillow, specs written to temp folders, engine gating."""

from __future__ import annotations

import os
import textwrap
from collections.abc import Callable, Sequence
from pathlib import Path

import pytest

ENGINE_VARS = ("ARTLAB_KOHYA_DIR", "ENGINE_PYTHON", "ENGINE_MODEL", "ENGINE_TOKENIZERS")


def make_images(
    folder: Path, sizes: Sequence[tuple[int, int]], caption: str | None = "sks, a photo", fmt: str = "png"
) -> list[Path]:
    """Real, small image files (Pillow), each with a same-name .txt caption unless caption is None."""
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i, (w, h) in enumerate(sizes):
        path = folder / f"img{i:03d}.{fmt}"
        Image.new("RGB", (w, h), (i * 7 % 255, 90, 160)).save(path)
        if caption is not None:
            path.with_suffix(".txt").write_text(caption, encoding="utf-8")
        paths.append(path)
    return paths


@pytest.fixture
def images() -> Callable[..., list[Path]]:
    return make_images


@pytest.fixture
def write_spec(tmp_path: Path) -> Callable[[str], Path]:
    def write(text: str, name: str = "spec.yaml") -> Path:
        path = tmp_path / name
        path.write_text(textwrap.dedent(text), encoding="utf-8")
        return path

    return write


@pytest.fixture
def engine() -> dict[str, str]:
    """The real sd-scripts and its Python (see README: testing against the real engine)."""
    missing = [v for v in ENGINE_VARS if not os.environ.get(v)]
    if missing:
        pytest.skip(f"real engine not set up ({', '.join(missing)} unset; see README)")
    return {v: os.environ[v] for v in ENGINE_VARS}
