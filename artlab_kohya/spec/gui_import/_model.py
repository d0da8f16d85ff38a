"""The base model: the family from the GUI's sdxl/v2/v_parameterization/flux1/sd3 boxes, the source (a hub
repository the GUI lists becomes the spec's alias), clip skip and VAE; configs of families we do not train, and
networks a spec cannot hold, are refused."""

from __future__ import annotations

from ...errors import InputError
from ..gui import BY_NAME, FAMILY_SWITCHES, HUB_ALIASES, LORA_TYPES, UNSUPPORTED_LORA_TYPES, truthy
from ._conversion import Conversion


def refuse_other_families(c: Conversion) -> None:
    for name, what in FAMILY_SWITCHES.items():
        if truthy(c.raw.get(name)):
            raise InputError(
                f"this config trains a {what} LoRA ({name} is on); import-gui converts SD1.x, SD2.x, SDXL, FLUX.1 "
                "and SD3 configs"
            )
    flux = truthy(c.raw.get("flux1_checkbox"))
    if flux and str(c.raw.get("model_type", "flux")).lower() == "chroma":
        raise InputError("model_type chroma: Chroma is not a model family artlab-kohya trains (FLUX.1 dev/schnell is)")
    lora_type = str(c.raw.get("LoRA_type", "Standard"))
    if lora_type in UNSUPPORTED_LORA_TYPES:
        raise InputError(f"LoRA_type '{lora_type}' ({UNSUPPORTED_LORA_TYPES[lora_type]}) has no network.type in a spec")
    if lora_type not in LORA_TYPES:
        raise InputError(f"LoRA_type '{lora_type}' is unknown to this mapping ({', '.join(LORA_TYPES)})")
    if flux and lora_type != "Flux1" and not lora_type.startswith("LyCORIS"):
        raise InputError(f"LoRA_type '{lora_type}' with flux1_checkbox on: the GUI trains FLUX.1 with Flux1 or LyCORIS")
    if lora_type == "Flux1" and not flux:
        raise InputError("LoRA_type 'Flux1' needs flux1_checkbox on (networks.lora_flux trains FLUX.1 only)")
    if sum(truthy(c.raw.get(n)) for n in ("sdxl", "flux1_checkbox", "sd3_checkbox")) > 1:
        raise InputError("sdxl, flux1_checkbox and sd3_checkbox: more than one is on; the GUI runs the first of them")


def model(c: Conversion) -> str:
    sdxl, v2, vpred = c.get("sdxl"), c.get("v2"), c.get("v_parameterization")
    flux, sd3 = c.get("flux1_checkbox"), c.get("sd3_checkbox")
    family = (
        "sdxl"
        if sdxl
        else "flux1"
        if flux
        else "sd3"
        if sd3
        else ("sd2-v" if v2 and vpred else "sd2" if v2 else "sd15")
    )
    source = c.model or str(c.get("pretrained_model_name_or_path") or "")
    gui = () if c.model else ("pretrained_model_name_or_path",)
    if not source:
        alias = {"sd2-v": "sd2"}.get(family, family)
        c.put("model.source", alias, note=f"the config names no base model: the {family} alias")
    elif source in HUB_ALIASES:
        c.put("model.source", HUB_ALIASES[source], *gui, note=f"the GUI loads {source} from the hub")
    else:
        c.put("model.source", source, *gui, note="--model" if c.model else "")
        c.path_exists("model.source", source, hint="pass --model PATH")
        if "/" in source and not c.exists(source) and not source.endswith((".safetensors", ".ckpt")):
            c.warn(
                f"model.source: the GUI would load '{source}' from the hub as a Diffusers model; a spec "
                "takes a file: write {type: hub, repo: ..., file: ...} or pass --model"
            )
    boxes = ("sdxl", "v2", "v_parameterization", *(n for n in ("flux1_checkbox", "sd3_checkbox") if c.has(n)))
    c.put("model.family", family, *boxes)
    c.skip("model_type", BY_NAME["model_type"].why)
    if vpred and not v2 and not sdxl:
        c.put("model.v_parameterization", True, "v_parameterization")
    clip_skip = c.get("clip_skip")
    if clip_skip and clip_skip > 1 and family in ("flux1", "sd3"):
        c.skip("clip_skip", f"{family} does not use clip_skip (sd-scripts ignores it)")
    elif clip_skip and clip_skip > 1:
        c.put("model.clip_skip", clip_skip, "clip_skip")
    vae = c.get("vae")
    if vae:
        c.put("model.vae", vae, "vae")
        c.path_exists("model.vae", vae)
    c.skip("model_list", BY_NAME["model_list"].why)
    return family
