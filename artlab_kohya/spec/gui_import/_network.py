"""The network: LoRA_type to network.type, rank and alpha, the LyCORIS switches the GUI passes for each algorithm,
block weights, and the fields a LoRA type does not take (listed with that reason)."""

from __future__ import annotations

from typing import Any

from ..gui import BY_NAME, LORA_TYPES, numbers, plain_number
from ._conversion import Conversion

_LYCORIS = ("locon", "loha", "lokr", "glora", "boft", "diag-oft")  # with conv_dim, use_tucker, dropouts
# The LyCORIS switches the GUI passes for each algorithm (lora_gui.py train_model).
_LYCORIS_FLAGS = {
    "locon": ("bypass_mode", "dora_wd", "use_scalar", "train_norm"),
    "loha": ("bypass_mode", "dora_wd", "use_scalar", "train_norm"),
    "lokr": ("bypass_mode", "dora_wd", "use_scalar", "train_norm", "decompose_both"),
    "glora": ("train_norm",),
    "boft": ("train_norm",),
    "diag-oft": ("train_norm",),
}
_LYCORIS_FIELDS = (
    "LyCORIS_preset",
    "use_tucker",
    "use_cp",
    "factor",
    "bypass_mode",
    "dora_wd",
    "use_scalar",
    "train_norm",
    "decompose_both",
    "constrain",
    "rescaled",
)
_BLOCK_FIELDS = (
    "down_lr_weight",
    "mid_lr_weight",
    "up_lr_weight",
    "block_lr_zero_threshold",
    "block_dims",
    "block_alphas",
    "conv_block_dims",
    "conv_block_alphas",
)


def network(c: Conversion) -> None:
    lora_type = str(c.get("LoRA_type"))
    kind = LORA_TYPES[lora_type]
    c.put("network.type", kind, "LoRA_type", note=lora_type)
    c.put("network.dim", c.get("network_dim"), "network_dim")
    c.put("network.alpha", plain_number(c.get("network_alpha")), "network_alpha")
    args: dict[str, Any] = {}
    conv_dim, conv_alpha = c.get("conv_dim"), c.get("conv_alpha")
    if kind == "ia3":
        for name in ("conv_dim", "conv_alpha"):
            c.skip(name, "(IA)^3 has no convolution rank; LyCORIS does not read it")
    elif kind in _LYCORIS or lora_type == "Kohya LoCon" or (kind == "dylora" and conv_dim):
        c.put("network.conv_dim", conv_dim, "conv_dim", note="the GUI passes it for this LoRA_type")
        c.put("network.conv_alpha", plain_number(conv_alpha), "conv_alpha")
    else:
        c.unused(("conv_dim", "conv_alpha"), lora_type)
    weights = c.get("network_weights")
    if weights:
        c.put("network.weights", weights, "network_weights")
        c.path_exists("network.weights", weights)
    dropout = plain_number(c.get("network_dropout") or 0)
    if dropout:
        c.put("network.dropout", dropout, "network_dropout")
    for name in ("rank_dropout", "module_dropout"):
        value = plain_number(c.get(name) or 0)
        if value and kind not in ("dylora", "ia3"):
            c.put(f"network.{name}", value, name)
        elif value:
            c.skip(name, f"not read by {lora_type}")
    flags = _LYCORIS_FLAGS.get(kind, ())
    if kind in _LYCORIS or kind == "ia3":
        c.put("network.preset", c.get("LyCORIS_preset"), "LyCORIS_preset")
    if kind in _LYCORIS:
        # For LoKr the GUI passes use_cp too, which LyCORIS reads (deprecated) as use_tucker, over use_tucker
        tucker = c.get("use_cp") if kind == "lokr" else c.get("use_tucker")
        if tucker:
            c.put("network.use_tucker", True, "use_cp" if kind == "lokr" else "use_tucker")
        if kind == "lokr" and c.get("use_tucker") and not tucker:
            c.skip("use_tucker", "LyCORIS reads use_cp (false here) in its place for LoKr")
        if kind == "lokr" and c.get("factor") not in (None, -1):
            c.put("network.factor", c.get("factor"), "factor")
        if kind == "diag-oft":
            if c.get("constrain"):
                c.put("network.constraint", plain_number(c.get("constrain")), "constrain")
            if c.get("rescaled"):
                c.put("network.rescaled", True, "rescaled")
        for name in flags:
            if c.get(name):
                c.put(BY_NAME[name].to, True, name)
    used = {"LyCORIS_preset", "use_tucker", *flags} if kind in _LYCORIS else set()
    used |= {"LyCORIS_preset"} if kind == "ia3" else set()
    used |= {"use_cp", "factor", "decompose_both"} if kind == "lokr" else set()
    used |= {"constrain", "rescaled"} if kind == "diag-oft" else set()
    c.unused(tuple(n for n in _LYCORIS_FIELDS if n not in used and n not in c.mentioned), lora_type)
    if lora_type in ("Standard", "Kohya LoCon"):
        _blocks(c, args)
    else:
        c.unused(_BLOCK_FIELDS, lora_type)
    if kind == "dylora":
        c.put("network.unit", c.get("unit"), "unit")
    else:
        c.unused(("unit",), lora_type)
    for name in ("loraplus_lr_ratio", "loraplus_unet_lr_ratio", "loraplus_text_encoder_lr_ratio"):
        value = plain_number(c.get(name) or 0)
        if value:
            args[name] = value
            c.mentioned.add(name)
    if args:
        c.put("network.args", args, note="the GUI's " + ", ".join(sorted(args)))
    te, unet = float(c.get("text_encoder_lr") or 0), float(c.get("unet_lr") or 0)
    if te == 0 and unet != 0:
        c.put("network.train", "unet", "text_encoder_lr", note="0: the GUI trains the U-Net alone")
    elif te != 0 and unet == 0:
        c.put("network.train", "text_encoder", "unet_lr", note="0: the GUI trains the text encoder alone")


def _blocks(c: Conversion, args: dict[str, Any]) -> None:
    """Block vectors: number lists, or a name (the WebUI's, or sd-scripts' lr curves) as it is."""
    for name in ("down_lr_weight", "up_lr_weight", "block_dims", "block_alphas", "conv_block_dims",
                 "conv_block_alphas", "mid_lr_weight"):  # fmt: skip
        text = str(c.get(name) or "").strip()
        if not text:
            continue
        values = numbers(text, int if name.endswith("dims") else float)
        if values is None:
            c.put(f"network.{name}", text, name, note="a name, as written")
        elif name == "mid_lr_weight" and len(values) == 1:
            c.put("network.mid_lr_weight", values[0], name)
        else:
            c.put(f"network.{name}", values, name)
    threshold = str(c.get("block_lr_zero_threshold") or "")
    if threshold:
        args["block_lr_zero_threshold"] = threshold
        c.mentioned.add("block_lr_zero_threshold")
