"""`init --family sdxl|flux1|sd3`: specs that load, pass their family's checks and carry their tier."""

from __future__ import annotations

import pytest

from artlab_kohya.build.family_args import family_problems
from artlab_kohya.spec import load_spec
from artlab_kohya.spec.presets import TIERS, init_project


@pytest.mark.parametrize("family", ["sdxl", "flux1", "sd3"])
@pytest.mark.parametrize("vram", [None, 24, 80, 141])
def test_family_specs_load_and_follow_their_tier(tmp_path, family, vram) -> None:
    spec_path, images = init_project(tmp_path / "p", "person", vram, "sks", family=family)
    loaded = load_spec(spec_path)
    spec = loaded.spec
    tier = TIERS[family][1 if vram is not None and vram >= 80 else 0]
    assert spec.model.family == family and spec.model.source.type == "alias"
    assert family_problems(spec, family) == []
    assert spec.dataset.batch_size == tier.batch_size and spec.dataset.resolution == 1024
    assert spec.training.blocks_to_swap == tier.blocks_to_swap
    assert spec.model.fp8_base is tier.fp8_base
    assert spec.training.gradient_checkpointing is tier.gradient_checkpointing
    assert spec.network.train == "unet" and spec.training.cache_text_encoder_outputs != "off"
    text = spec_path.read_text()
    assert tier.source in text and "sd-scripts'" in text  # every template cites where its numbers come from
    assert images.name == "25_sks"
