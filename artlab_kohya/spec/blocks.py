"""Block weights: the U-Net blocks sd-scripts' networks/lora.py weighs one by one, and the named vectors of
the WebUI's LoRA Block Weight extension, declared once.

sd-scripts (networks/lora.py, get_block_index) numbers SD1.x/SD2.x blocks as IN00-IN11, MID, OUT00-OUT11:
25 values for block_dims/block_alphas/conv_block_dims/conv_block_alphas, 12 for down_lr_weight and for
up_lr_weight, one mid_lr_weight. SDXL has 23 (time embedding, IN00-IN08, three middle blocks, OUT00-OUT08,
out), 9 down, 3 mid, 9 up. IN00 (and SDXL's first and last) hold no LoRA module: their value is not read.

The named vectors are the default presets of hako-mikan/sd-webui-lora-block-weight (its README and
DEF_WEIGHT_PRESET, NONE there being NOT in its earlier README): 17 values in the order BASE, IN01, IN02,
IN04, IN05, IN07, IN08, MID, OUT03-OUT11, the blocks a LoRA has. LyCORIS files have 26 (BASE, IN00-IN11,
MID, OUT00-OUT11); our 26-value forms give each block the value of its group in the 17 (shallow IN:
IN00-IN04, deep IN: IN05-IN11, deep OUT: OUT00-OUT06, shallow OUT: OUT07-OUT11). NOFACE is not among the
extension's presets: it is ALL with OUT03-OUT05 (the blocks its users' FACE presets keep) at 0. BASE is the
text encoder, which sd-scripts does not weigh by block: network.train decides it.
"""

from __future__ import annotations

from typing import Literal, cast, get_args

BlockName = Literal["NOT", "ALL", "INS", "IND", "INALL", "MIDD", "OUTD", "OUTS", "OUTALL", "NOFACE"]
BLOCK_NAMES: tuple[BlockName, ...] = get_args(BlockName)
# sd-scripts' own down/up_lr_weight presets (networks/lora.py get_block_lr_weight), passed on as written;
# each may end in +number (a base added to every value).
LR_CURVES = ("cosine", "sine", "linear", "reverse_linear", "zeros")

LORA17 = ("BASE", "IN01", "IN02", "IN04", "IN05", "IN07", "IN08", "MID",
          "OUT03", "OUT04", "OUT05", "OUT06", "OUT07", "OUT08", "OUT09", "OUT10", "OUT11")  # fmt: skip
FULL26 = ("BASE", *(f"IN{i:02d}" for i in range(12)), "MID", *(f"OUT{i:02d}" for i in range(12)))
SD_BLOCKS = FULL26[1:]  # sd-scripts' 25, in its order

NAMED17: dict[BlockName, tuple[float, ...]] = {
    "NOT": (0,) * 17,
    "ALL": (1,) * 17,
    "INS": (1, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0),
    "IND": (1, 0, 0, 0, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0),
    "INALL": (1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0),
    "MIDD": (1, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0),
    "OUTD": (1, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 0, 0, 0, 0, 0),
    "OUTS": (1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1),
    "OUTALL": (1, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1, 1),
    "NOFACE": (1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 1, 1, 1, 1, 1, 1),
}

# Which of the 17 decides each block the 17 leave out (the group it sits in).
_GROUP = {f"IN{i:02d}": ("IN01" if i < 5 else "IN07") for i in range(12)} | {
    f"OUT{i:02d}": ("OUT03" if i < 7 else "OUT11") for i in range(12)
}


def named26(name: BlockName) -> tuple[float, ...]:
    """The 26-value (LyCORIS) form of a named vector."""
    values = dict(zip(LORA17, NAMED17[name], strict=True))
    return tuple(values.get(block, values[_GROUP.get(block, block)]) for block in FULL26)


def unet_vector(name: str) -> tuple[float, ...]:
    """The named vector on sd-scripts' 25 SD1.x/SD2.x blocks (BASE, the text encoder, left out)."""
    if name not in BLOCK_NAMES:
        raise KeyError(name)
    return named26(cast(BlockName, name))[1:]


# How many values each field takes, per family (sd-scripts networks/lora.py: NUM_OF_BLOCKS 12, NUM_OF_MID_BLOCKS
# 1; SDXL_NUM_OF_BLOCKS 9, SDXL_NUM_OF_MID_BLOCKS 3; block vectors 2 x blocks + mid (+ 2 for SDXL)).
LENGTHS = {
    "sd": {"block": 25, "down": 12, "mid": 1, "up": 12},
    "sdxl": {"block": 23, "down": 9, "mid": 3, "up": 9},
}


def lengths(family: str) -> dict[str, int]:
    return LENGTHS["sdxl" if family == "sdxl" else "sd"]


def is_lr_curve(text: str) -> bool:
    """An sd-scripts lr-weight preset: cosine, sine, linear, reverse_linear or zeros, with an optional +base."""
    name, _, base = text.partition("+")
    if name not in LR_CURVES:
        return False
    try:
        float(base or 0)
    except ValueError:
        return False
    return True


_LR_PARTS = {"down_lr_weight": slice(0, 12), "up_lr_weight": slice(13, 25)}


def named_values(field: str, name: str, scale: float | None) -> list[float | int]:
    """A named vector as the values sd-scripts takes for `field` on SD1.x/SD2.x: block_dims and
    conv_block_dims a share of their rank (rounded), alphas of their alpha, lr weights the IN or OUT part."""
    vector = unet_vector(name)
    if field in _LR_PARTS:
        return list(vector[_LR_PARTS[field]])
    base = scale or 1
    return [round(v * base) if field.endswith("dims") else v * base for v in vector]
