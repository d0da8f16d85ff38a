"""The base model: the family from the GUI's sdxl/v2/v_parameterization boxes, the source (a hub repository
the GUI lists becomes the spec's alias), clip skip and VAE; configs of families we do not train are refused."""

from __future__ import annotations

from ...errors import InputError
from ..gui import BY_NAME, FAMILY_SWITCHES, HUB_ALIASES, LORA_TYPES, UNSUPPORTED_LORA_TYPES, truthy
from ._conversion import Conversion


def refuse_other_families(c: Conversion) -> None:
    for name, what in FAMILY_SWITCHES.items():
        if truthy(c.raw.get(name)):
            raise InputError(
                f"this config trains a {what} LoRA ({name} is on); import-gui converts SD1.x, SD2.x and SDXL "
                "configs only: write a spec for it (model.family flux1 or sd3; see the README's Model families)"
            )
    lora_type = str(c.raw.get("LoRA_type", "Standard"))
    if lora_type in UNSUPPORTED_LORA_TYPES:
        raise InputError(f"LoRA_type '{lora_type}' ({UNSUPPORTED_LORA_TYPES[lora_type]}) has no network.type in a spec")
    if lora_type not in LORA_TYPES:
        raise InputError(f"LoRA_type '{lora_type}' is unknown to this mapping ({', '.join(LORA_TYPES)})")


def model(c: Conversion) -> str:
    sdxl, v2, vpred = c.get("sdxl"), c.get("v2"), c.get("v_parameterization")
    family = "sdxl" if sdxl else ("sd2-v" if v2 and vpred else "sd2" if v2 else "sd15")
    source = c.model or str(c.get("pretrained_model_name_or_path") or "")
    gui = () if c.model else ("pretrained_model_name_or_path",)
    if not source:
        alias = {"sd2-v": "sd2"}.get(family, family)
        c.put("model.source", alias, note=f"the config names no base model: the {family} alias")
    elif source in HUB_ALIASES:
        c.put("model.source", HUB_ALIASES[source], *gui, note=f"the GUI loads {source} from the hub")
    else:
        c.put("model.source", source, *gui, note="--model" if c.model else "")
        c.path_exists("model.source", source)
        if "/" in source and not c.exists(source) and not source.endswith((".safetensors", ".ckpt")):
            c.warn(
                f"model.source: the GUI would load '{source}' from the hub as a Diffusers model; a spec "
                "takes a file: write {type: hub, repo: ..., file: ...} or pass --model"
            )
    c.put("model.family", family, "sdxl", "v2", "v_parameterization")
    if vpred and not v2 and not sdxl:
        c.put("model.v_parameterization", True, "v_parameterization")
    clip_skip = c.get("clip_skip")
    if clip_skip and clip_skip > 1:
        c.put("model.clip_skip", clip_skip, "clip_skip")
    vae = c.get("vae")
    if vae:
        c.put("model.vae", vae, "vae")
        c.path_exists("model.vae", vae)
    c.skip("model_list", BY_NAME["model_list"].why)
    return family
