"""The arguments only some families' scripts take (sdxl_train_network.py, flux_train_network.py,
sd3_train_network.py), and what those scripts refuse, found before launch.

`render` adds `family_sections` to the sections it renders; every key is then checked against the
family script's argument surface like the rest.
"""

from __future__ import annotations

from typing import Any

from ..spec.families import FAMILY_INFO, Family
from ..spec.model import Spec

Problem = tuple[tuple[str | int, ...], str]


def family_sections(spec: Spec, family: Family) -> dict[str, dict[str, Any]]:
    """Extra TOML sections for `family` (empty for SD1/SD2); None values are dropped by render."""
    training = spec.training
    if not FAMILY_INFO[family].text_encoder_cache:
        return {}
    cache = training.cache_text_encoder_outputs
    return {
        "text_encoder_arguments": {
            "cache_text_encoder_outputs": cache != "off",
            "cache_text_encoder_outputs_to_disk": cache == "disk",
        }
    }


def family_problems(spec: Spec, family: Family) -> list[Problem]:
    """What the family's script would refuse, after loading the model: located at the spec field."""
    problems: list[Problem] = []
    training = spec.training
    at = ("training", "cache_text_encoder_outputs")
    if training.cache_text_encoder_outputs != "off":
        if not FAMILY_INFO[family].text_encoder_cache:
            problems.append((at, f"{family} trains with train_network.py, which has no text-encoder cache; set off"))
        elif spec.network.train != "unet":
            problems.append((at, "a cached text encoder cannot be trained: set network.train: unet, or the cache off"))
        for i, sub in enumerate(spec.dataset.subsets):
            for name in ("shuffle_caption", "caption_dropout_rate", "caption_tag_dropout_rate"):
                if getattr(sub, name):
                    problems.append(
                        (("dataset", "subsets", i, name), f"{name} changes captions each epoch, so it cannot be "
                         "used with training.cache_text_encoder_outputs; set one of them off")
                    )  # fmt: skip
    return problems
