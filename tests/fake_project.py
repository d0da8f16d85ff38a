"""A project for runs against the stand-in install (tests/fake_kohya): images, a base model file,
a tokenizer folder, the cache in the temp folder, and spec.yaml naming the fake install."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from conftest import make_images

FAKE = Path(__file__).parent / "fake_kohya"


def fake_project(root: Path, monkeypatch: pytest.MonkeyPatch, extra: str = "", name: str = "tiny_lora") -> Path:
    """The folder; spec.yaml in it trains 2 epochs on 12 images; `extra` is appended to the spec."""
    make_images(root / "img/10_sks", [(512, 512)] * 12)
    stand_in_base(root, monkeypatch)
    (root / "spec.yaml").write_text(
        "model:\n  source: base.safetensors\n  family: sd15\n"
        "dataset:\n  resolution: 512\n  batch_size: 1\n  buckets:\n    enabled: false\n"
        "  subsets:\n    - path: img/10_sks\n"
        "network:\n  type: lora\n  dim: 4\n  alpha: 1\n"
        "training:\n  epochs: 2\n  mixed_precision: 'no'\n"
        f"output:\n  name: {name}\n"
        f"kohya:\n  dir: {FAKE}\n  python: {sys.executable}\n" + extra
    )
    return root


def stand_in_base(root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """root/base.safetensors (a header alone), a CLIP tokenizer folder in root/tok, and the cache in root:
    what a run against the stand-in install needs besides images and a spec."""
    header = json.dumps({"__metadata__": {"format": "pt"}}).encode()
    (root / "base.safetensors").write_bytes(len(header).to_bytes(8, "little") + header)
    tokenizer = root / "tok" / "openai_clip-vit-large-patch14"
    tokenizer.mkdir(parents=True)
    for file in ("vocab.json", "merges.txt", "tokenizer_config.json", "special_tokens_map.json"):
        (tokenizer / file).write_text("{}")
    monkeypatch.setenv("ARTLAB_KOHYA_CACHE", str(root / "cache"))
    monkeypatch.setenv("ARTLAB_KOHYA_TOKENIZERS", str(root / "tok"))
    monkeypatch.delenv("ARTLAB_KOHYA_RUNS", raising=False)
