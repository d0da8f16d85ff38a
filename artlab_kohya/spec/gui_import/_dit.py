"""FLUX.1 and SD3: the files besides the transformer (model.ae, clip_l, clip_g, t5xxl), the family's section
(`flux:` / `sd3:`), the text-encoder cache, block swapping, and the network args networks.lora_flux takes, as
lora_gui.py's train_model passes them when flux1_checkbox or sd3_checkbox is on. For the other families these
fields are listed as not passed."""

from __future__ import annotations

from ..gui import BY_NAME, COMPONENT_FIELDS, LORA_FLUX_ARGS, plain_number, show
from ._conversion import Conversion

# The family's section, written whole: the GUI passes every one of these for the family.
_SECTION = {
    "flux1": (
        "guidance_scale", "timestep_sampling", "discrete_flow_shift", "model_prediction_type",
        "t5xxl_max_token_length", "apply_t5_attn_mask", "split_mode", "cpu_offload_checkpointing",
    ),
    "sd3": (
        "weighting_scheme", "logit_mean", "logit_std", "mode_scale", "sd3_clip_l_dropout_rate", "clip_g_dropout_rate",
        "sd3_t5_dropout_rate", "sd3_enable_scaled_pos_embed", "pos_emb_random_crop_rate",
    ),
}  # fmt: skip
# sd-scripts' own value where the GUI drops a 0 (its filter treats 0.0 as False).
_ZERO_DROPPED = {"guidance_scale": 3.5, "discrete_flow_shift": 3.0}
_FLUX_ONLY = (
    *_SECTION["flux1"], "train_blocks", "split_qkv", "train_t5xxl", "flux1_cache_text_encoder_outputs",
    "flux1_cache_text_encoder_outputs_to_disk", "fp8_base_unet", "train_lora_ggpo", "ggpo_sigma", "ggpo_beta",
    *LORA_FLUX_ARGS,
)  # fmt: skip
_SD3_ONLY = (
    *_SECTION["sd3"], "sd3_cache_text_encoder_outputs", "sd3_cache_text_encoder_outputs_to_disk", "save_clip",
    "save_t5xxl", "t5xxl_device", "t5xxl_dtype", "sd3_text_encoder_batch_size", "sd3_disable_mmap_load_safetensors",
    "sd3_fused_backward_pass",
)  # fmt: skip
# Passed on as they are (kohya.extra_args) by _extra.py, for this family only.
FAMILY_ONLY = {name: "flux1" for name in _FLUX_ONLY} | {name: "sd3" for name in _SD3_ONLY}
FAMILY_NAMES = {"flux1": "FLUX.1", "sd3": "SD3"}


def dit(c: Conversion, family: str) -> None:
    for owner, files in COMPONENT_FIELDS.items():
        for gui, name in files.items():
            if owner == family:
                _component(c, gui, name)
            else:
                c.skip(gui, f"not passed by the GUI here ({FAMILY_NAMES[owner]} only)")
    caches = (f"{f}_cache_text_encoder_outputs{d}" for f in ("flux1", "sd3") for d in ("", "_to_disk"))
    for name in (*_SECTION["flux1"], *_SECTION["sd3"], "train_blocks", "split_qkv", "train_t5xxl", "blocks_to_swap",
                 *caches):  # fmt: skip
        only = FAMILY_ONLY.get(name)
        if only is not None and only != family or only is None and family not in COMPONENT_FIELDS:
            c.skip(name, f"not passed by the GUI here ({FAMILY_NAMES.get(only or '', 'FLUX.1 and SD3')} only)")
    if family not in COMPONENT_FIELDS:
        return
    section = "flux" if family == "flux1" else "sd3"
    for gui in _SECTION[family]:
        value = plain_number(c.get(gui))
        to = BY_NAME[gui].to
        if gui in _ZERO_DROPPED and not value:
            c.put(to, _ZERO_DROPPED[gui], gui, note=f"{value}: the GUI drops it, and sd-scripts uses its own")
        else:
            c.put(to, value, gui)
    prefix = "flux1" if family == "flux1" else "sd3"
    cache, disk = c.get(f"{prefix}_cache_text_encoder_outputs"), c.get(f"{prefix}_cache_text_encoder_outputs_to_disk")
    gui_cache = (f"{prefix}_cache_text_encoder_outputs", f"{prefix}_cache_text_encoder_outputs_to_disk")
    c.put("training.cache_text_encoder_outputs", "disk" if cache and disk else "memory" if cache else "off", *gui_cache)
    swap = c.get("blocks_to_swap")
    if swap:
        c.put("training.blocks_to_swap", swap, "blocks_to_swap")
    else:
        _at_default(c, "blocks_to_swap")
    if family == "flux1":
        _lora_flux(c)
    else:  # the GUI always passes its widget's dtype (bf16), which sd-scripts would otherwise not set
        c.put("kohya.extra_args.t5xxl_dtype", c.get("t5xxl_dtype"), "t5xxl_dtype")
    c.note((section,), note=f"the GUI's {FAMILY_NAMES[family]} settings, all passed by it")


def _component(c: Conversion, gui: str, name: str) -> None:
    """One of the model's other files: --component wins, then the config's path (placeholders flagged)."""
    given = c.components.get(name)
    if given:
        was = f" (over the config's {gui}: {show(c.raw[gui])})" if c.has(gui) else ""
        c.put(f"model.{name}", given, note="--component" + was)
        c.done.add(gui)
        c.mentioned.add(gui)
        c.path_exists(f"model.{name}", given)
        return
    path = str(c.get(gui) or "")
    if not path:
        c.warn(f"model.{name}: the config names no {name} file: pass --component {name}=PATH")
        c.skip(gui, "empty: the spec needs the file (--component NAME=PATH)")
        return
    c.put(f"model.{name}", path, gui)
    c.path_exists(f"model.{name}", path, hint=f"pass --component {name}=PATH")


def _lora_flux(c: Conversion) -> None:
    """networks.lora_flux's switches; the GUI passes them for LoRA_type Flux1 only."""
    flux1 = str(c.get("LoRA_type")) == "Flux1"
    split = bool(c.get("split_mode"))
    blocks = str(c.get("train_blocks") or "all")
    if flux1 and split:
        c.put("flux.train_blocks", "single", "train_blocks", "split_mode", note="split_mode: the GUI passes single")
    elif flux1 and blocks != "all":
        c.put(
            "flux.train_blocks",
            blocks,
            "train_blocks",
            note="the GUI shows it but passes it only with split_mode; the spec trains what the box says",
        )
    elif blocks != "all":
        c.skip("train_blocks", "not passed by the GUI here (LoRA_type Flux1 only)")
    else:
        _at_default(c, "train_blocks")
    for name in ("split_qkv", "train_t5xxl"):
        if c.get(name) and flux1:
            c.put(f"flux.{name}", True, name)
        elif c.get(name):
            c.skip(name, "not passed by the GUI here (LoRA_type Flux1 only)")
        else:
            _at_default(c, name)
    names = [n for n in LORA_FLUX_ARGS if c.get(n)]
    if c.get("train_lora_ggpo"):
        names += [n for n in ("ggpo_sigma", "ggpo_beta") if c.get(n)]
        c.mentioned.add("train_lora_ggpo")
    for name in names:
        if flux1:
            ggpo = ("train_lora_ggpo",) if name.startswith("ggpo") else ()
            c.put(f"network.args.{name}", str(c.get(name)), name, *ggpo)
        else:
            c.skip(name, "not passed by the GUI here (LoRA_type Flux1 only)")
    t5 = plain_number(c.get("t5xxl_lr") or 0)
    if t5 and c.get("train_t5xxl") and t5 != plain_number(c.get("text_encoder_lr") or 0):
        c.skip("t5xxl_lr", BY_NAME["t5xxl_lr"].why)
        c.warn(f"t5xxl_lr: {t5} is not kept; T5-XXL trains at optimizer.text_encoder_lr")
    elif c.has("t5xxl_lr"):
        c.skip("t5xxl_lr", "T5-XXL is not trained (train_t5xxl off), or at the text encoders' rate anyway")


def _at_default(c: Conversion, name: str) -> None:
    c.done.add(name)
    if c.has(name) and name not in c.mentioned:
        c.mentioned.add(name)
        c.out.at_default.append(c.label(name))
