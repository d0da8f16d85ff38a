"""Predict a network's parameter count and saved file size before training.

sd-scripts and LyCORIS decide which layers of the base model a network wraps by walking the model's
modules; this file keeps that outcome as a compact description of each base family's layers (names and
shapes, as sd-scripts builds the models) and the rules each network type applies to them. Nothing is
imported from torch: a spec can be sized on a machine that cannot train.

Pinned against sd-scripts 48d368fa (networks/lora.py, networks/dylora.py) and lycoris-lora 3.4.0
(lycoris/kohya.py, preset "full"). tests/test_netsize.py holds counts measured from that code.

Accuracy: ``modules``, ``tensors`` and ``params`` are exact, and so are the tensor names and shapes
(``tensor_shapes``), hence the tensor data and the tensor part of the safetensors header: given the
real metadata length, ``bytes`` matched real training output to the byte. The one estimate is the
``__metadata__`` block sd-scripts writes (the ss_* training record, modelspec.*, sshs_* hashes):
``DEFAULT_METADATA_BYTES``. Files measured here carried 3.9-4.1 KB of it for 6 captioned images in
one subset. It grows with the dataset: every distinct comma-separated caption tag is listed twice,
in ss_tag_frequency and in ss_datasets (about 2 x (len(tag) + 10) bytes), every further subset adds
about 0.5 KB, and bucketing adds a bucket table to ss_datasets. So ``bytes`` stays within +-10 KB of
the real file up to roughly 200 distinct tags; pass ``metadata_bytes`` when the dataset is known to
be larger, or when ``--no_metadata`` leaves only the minimum keys.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Literal, get_args

from ..spec.families import Architecture, Sd3Variant

NetworkType = Literal["lora", "dylora", "locon", "loha", "lokr"]
SaveDtype = Literal["fp32", "fp16", "bf16"]

LYCORIS_ALGOS = ("locon", "loha", "lokr")
DTYPE_BYTES = {"fp32": 4, "fp16": 2, "bf16": 2}
_SAFETENSORS_DTYPE = {"fp32": "F32", "fp16": "F16", "bf16": "BF16"}

# Length of the serialized {"ss_...": "...", ...} object: measured 3.9-4.1 KB on SD1.5 runs with a
# 6-image dataset (sd-scripts 48d368fa); see the module docstring for how it grows.
DEFAULT_METADATA_BYTES = 4096


@dataclass(frozen=True)
class NetSize:
    """What a saved network holds: wrapped layers, tensors, parameters and the file size in bytes."""

    modules: int
    tensors: int
    params: int
    bytes: int


# --- base models: the layers a network may wrap ------------------------------------------------


@dataclass(frozen=True)
class Layer:
    """One Linear or Conv2d of the base model, named the way the network's state_dict names it."""

    name: str  # e.g. "lora_unet_mid_block_attentions_0_proj_in"
    role: Literal["text", "t5", "attn", "block", "edge"]
    conv: bool  # Conv2d (1x1 or 3x3) rather than Linear
    in_ch: int
    out_ch: int
    kernel: int = 1


# Text encoders: (hidden size, MLP size, layers) as sd-scripts builds them. SD2's OpenCLIP-H is
# converted to a 23-layer CLIPTextModel (the last layer is dropped); SDXL's bigG is 32 layers.
_TEXT_ENCODERS: dict[str, list[tuple[str, int, int, int]]] = {
    "sd15": [("lora_te", 768, 3072, 12)],
    "sd2": [("lora_te", 1024, 4096, 23)],
    "sdxl": [("lora_te1", 768, 3072, 12), ("lora_te2", 1280, 5120, 32)],
}


def _text_encoder(prefix: str, hidden: int, mlp: int, layers: int) -> Iterator[Layer]:
    """CLIPAttention (q/k/v/out) and CLIPMLP (fc1/fc2) linears of every encoder layer."""
    for i in range(layers):
        base = f"{prefix}_text_model_encoder_layers_{i}"
        for proj in ("q_proj", "k_proj", "v_proj", "out_proj"):
            yield Layer(f"{base}_self_attn_{proj}", "text", False, hidden, hidden)
        yield Layer(f"{base}_mlp_fc1", "text", False, hidden, mlp)
        yield Layer(f"{base}_mlp_fc2", "text", False, mlp, hidden)


def _transformer(path: str, ch: int, context: int, depth: int, linear_proj: bool) -> Iterator[Layer]:
    """A Transformer2DModel: proj_in/out plus, per block, self-attention, cross-attention and GEGLU."""
    yield Layer(f"{path}_proj_in", "attn", not linear_proj, ch, ch)
    for k in range(depth):
        block = f"{path}_transformer_blocks_{k}"
        for attn, kv_in in (("attn1", ch), ("attn2", context)):
            yield Layer(f"{block}_{attn}_to_q", "attn", False, ch, ch)
            yield Layer(f"{block}_{attn}_to_k", "attn", False, kv_in, ch)
            yield Layer(f"{block}_{attn}_to_v", "attn", False, kv_in, ch)
            yield Layer(f"{block}_{attn}_to_out_0", "attn", False, ch, ch)
        yield Layer(f"{block}_ff_net_0_proj", "attn", False, ch, 8 * ch)
        yield Layer(f"{block}_ff_net_2", "attn", False, 4 * ch, ch)
    yield Layer(f"{path}_proj_out", "attn", not linear_proj, ch, ch)


_TIME_EMBED = 1280


def _resnet(path: str, c_in: int, c_out: int, names: tuple[str, str, str, str]) -> Iterator[Layer]:
    """A ResnetBlock2D: two 3x3 convs, the time-embedding linear, a 1x1 shortcut when channels change."""
    conv1, emb, conv2, shortcut = names
    yield Layer(f"{path}_{conv1}", "block", True, c_in, c_out, 3)
    yield Layer(f"{path}_{emb}", "block", False, _TIME_EMBED, c_out)
    yield Layer(f"{path}_{conv2}", "block", True, c_out, c_out, 3)
    if c_in != c_out:
        yield Layer(f"{path}_{shortcut}", "block", True, c_in, c_out)


def _sd_unet(context: int, linear_proj: bool) -> Iterator[Layer]:
    """sd-scripts' original_unet (SD1.x/SD2.x), which keeps Diffusers' module names."""
    chans = (320, 640, 1280, 1280)
    names = ("conv1", "time_emb_proj", "conv2", "conv_shortcut")
    u = "lora_unet"
    yield Layer(f"{u}_conv_in", "edge", True, 4, chans[0], 3)
    yield Layer(f"{u}_time_embedding_linear_1", "edge", False, chans[0], _TIME_EMBED)
    yield Layer(f"{u}_time_embedding_linear_2", "edge", False, _TIME_EMBED, _TIME_EMBED)
    prev = chans[0]
    for i, ch in enumerate(chans):  # down: 2 resnets (+ attention in the first three), downsample
        for j in range(2):
            yield from _resnet(f"{u}_down_blocks_{i}_resnets_{j}", prev if j == 0 else ch, ch, names)
            if i < 3:
                yield from _transformer(f"{u}_down_blocks_{i}_attentions_{j}", ch, context, 1, linear_proj)
        if i < 3:
            yield Layer(f"{u}_down_blocks_{i}_downsamplers_0_conv", "block", True, ch, ch, 3)
        prev = ch
    yield from _resnet(f"{u}_mid_block_resnets_0", 1280, 1280, names)
    yield from _transformer(f"{u}_mid_block_attentions_0", 1280, context, 1, linear_proj)
    yield from _resnet(f"{u}_mid_block_resnets_1", 1280, 1280, names)
    rev = chans[::-1]
    prev = rev[0]
    for i, ch in enumerate(rev):  # up: 3 resnets over the skip connections (+ attention), upsample
        skip_last = rev[min(i + 1, 3)]
        for j in range(3):
            c_in = (prev if j == 0 else ch) + (skip_last if j == 2 else ch)
            yield from _resnet(f"{u}_up_blocks_{i}_resnets_{j}", c_in, ch, names)
            if i > 0:
                yield from _transformer(f"{u}_up_blocks_{i}_attentions_{j}", ch, context, 1, linear_proj)
        if i < 3:
            yield Layer(f"{u}_up_blocks_{i}_upsamplers_0_conv", "block", True, ch, ch, 3)
        prev = ch
    yield Layer(f"{u}_conv_out", "edge", True, chans[0], 4, 3)


# SDXL U-Net (sdxl_original_unet, LDM names): per level (channels, transformer depth).
_SDXL_LEVELS = ((320, 0), (640, 2), (1280, 10))


def _sdxl_unet() -> Iterator[Layer]:
    """sd-scripts' SdxlUNet2DConditionModel. Its conv_in/conv_out/time_embed carry LDM names, which
    LyCORIS's name targets (conv_in, time_embedding.linear_1, ...) do not match: no "edge" layers."""
    names = ("in_layers_2", "emb_layers_1", "out_layers_3", "skip_connection")
    u, ctx = "lora_unet", 2048
    n, prev = 1, 320
    for level, (ch, depth) in enumerate(_SDXL_LEVELS):
        for _ in range(2):
            yield from _resnet(f"{u}_input_blocks_{n}_0", prev, ch, names)
            if depth:
                yield from _transformer(f"{u}_input_blocks_{n}_1", ch, ctx, depth, True)
            n, prev = n + 1, ch
        if level < 2:
            yield Layer(f"{u}_input_blocks_{n}_0_op", "block", True, ch, ch, 3)
            n += 1
    yield from _resnet(f"{u}_middle_block_0", 1280, 1280, names)
    yield from _transformer(f"{u}_middle_block_1", 1280, ctx, 10, True)
    yield from _resnet(f"{u}_middle_block_2", 1280, 1280, names)
    skips = [320, 320, 320, 320, 640, 640, 640, 1280, 1280]  # outputs of conv_in and input_blocks 1..8
    n, prev = 0, 1280
    for level in (2, 1, 0):
        ch, depth = _SDXL_LEVELS[level]
        for j in range(3):
            yield from _resnet(f"{u}_output_blocks_{n}_0", prev + skips.pop(), ch, names)
            if depth:
                yield from _transformer(f"{u}_output_blocks_{n}_1", ch, ctx, depth, True)
            if j == 2 and level > 0:
                yield Layer(f"{u}_output_blocks_{n}_2_conv", "block", True, ch, ch, 3)
            n, prev = n + 1, ch


# --- FLUX.1 and SD3: networks.lora_flux / networks.lora_sd3 wrap every Linear of the transformer blocks.


def _t5xxl(prefix: str) -> Iterator[Layer]:
    """T5-XXL's encoder (24 layers, d_model 4096, gated FFN 10240), wrapped only with train_t5xxl."""
    for i in range(24):
        base = f"{prefix}_encoder_block_{i}_layer"
        for proj in "qkvo":
            yield Layer(f"{base}_0_SelfAttention_{proj}", "t5", False, 4096, 4096)
        yield Layer(f"{base}_1_DenseReluDense_wi_0", "t5", False, 4096, 10240)
        yield Layer(f"{base}_1_DenseReluDense_wi_1", "t5", False, 4096, 10240)
        yield Layer(f"{base}_1_DenseReluDense_wo", "t5", False, 10240, 4096)


FLUX_BLOCKS = (19, 38)  # FLUX.1 dev and schnell as released: double and single blocks


def _flux(double: int = FLUX_BLOCKS[0], single: int = FLUX_BLOCKS[1]) -> Iterator[Layer]:
    """FLUX.1 dev/schnell (flux_models.configs): 19 double blocks, 38 single blocks (or as many as the
    file holds: flux_utils builds the model with the file's counts), width 3072."""
    h, mlp = 3072, 12288
    yield from _text_encoder("lora_te1", 768, 3072, 12)
    yield from _t5xxl("lora_te3")
    for i in range(double):
        for stream in ("img", "txt"):
            base = f"lora_unet_double_blocks_{i}_{stream}"
            yield Layer(f"{base}_mod_lin", "attn", False, h, 6 * h)
            yield Layer(f"{base}_attn_qkv", "attn", False, h, 3 * h)
            yield Layer(f"{base}_attn_proj", "attn", False, h, h)
            yield Layer(f"{base}_mlp_0", "attn", False, h, mlp)
            yield Layer(f"{base}_mlp_2", "attn", False, mlp, h)
    for i in range(single):
        base = f"lora_unet_single_blocks_{i}"
        yield Layer(f"{base}_linear1", "attn", False, h, 3 * h + mlp)
        yield Layer(f"{base}_linear2", "attn", False, h + mlp, h)
        yield Layer(f"{base}_modulation_lin", "attn", False, h, 3 * h)


# SD3 variants as sd3_utils.analyze_state_dict_state reads them: (depth, blocks with attn2); the width is
# 64 x depth.
_SD3: dict[str, tuple[int, int]] = {
    "sd3-medium": (24, 0),
    "sd3.5-medium": (24, 13),
    "sd3.5-large": (38, 0),
}


def _sd3(variant: str, blocks: tuple[int, int] | None = None) -> Iterator[Layer]:
    """SD3's MMDiT joint blocks; the last context block is "pre_only" (modulation and qkv alone).
    `blocks` (depth, blocks with attn2) as the file holds them, else the variant's."""
    depth, attn2 = blocks or _SD3[variant]
    h = 64 * depth
    yield from _text_encoder("lora_te1", 768, 3072, 12)
    yield from _text_encoder("lora_te2", 1280, 5120, 32)
    yield from _t5xxl("lora_te3")
    for i in range(depth):
        for part in ("context_block", "x_block"):
            base = f"lora_unet_joint_blocks_{i}_{part}"
            last = part == "context_block" and i == depth - 1
            mod = 2 if last else 9 if part == "x_block" and i < attn2 else 6
            yield Layer(f"{base}_adaLN_modulation_1", "attn", False, h, mod * h)
            yield Layer(f"{base}_attn_qkv", "attn", False, h, 3 * h)
            if last:
                continue
            yield Layer(f"{base}_attn_proj", "attn", False, h, h)
            if part == "x_block" and i < attn2:
                yield Layer(f"{base}_attn2_qkv", "attn", False, h, 3 * h)
                yield Layer(f"{base}_attn2_proj", "attn", False, h, h)
            yield Layer(f"{base}_mlp_fc1", "attn", False, h, 4 * h)
            yield Layer(f"{base}_mlp_fc2", "attn", False, 4 * h, h)


def released_blocks(family: Architecture, variant: Sd3Variant | None = None) -> tuple[int, int] | None:
    """The block counts of the released FLUX.1 (double, single) or SD3 variant (joint, with attn2); None
    for other families or an SD3 of unknown variant."""
    if family == "flux1":
        return FLUX_BLOCKS
    return _SD3[variant] if family == "sd3" and variant is not None else None


def base_layers(
    family: Architecture, variant: Sd3Variant | None = None, blocks: tuple[int, int] | None = None
) -> list[Layer]:
    """Every layer of the family's text encoders and U-Net (or transformer) that some network type may wrap.

    SD2 is described with Linear proj_in/proj_out, as loaded from Diffusers folders; a single-file SD2
    checkpoint gives 1x1 convs there, which have the same parameters (only their shapes gain ",1,1").
    SD3 needs its `variant` (medium, 3.5 medium and 3.5 large differ in width and depth). `blocks` is
    the transformer's block counts read from its file (models.checkpoint.dit_blocks), for a FLUX.1 or
    SD3 of another depth than the released ones; None: the released sizes.
    """
    _check_choice("family", family, Architecture)
    if family == "flux1":
        return list(_flux(*blocks) if blocks else _flux())
    if family == "sd3":
        _check_choice("variant", variant, Sd3Variant)
        return list(_sd3(variant or "", blocks))
    layers = [layer for spec in _TEXT_ENCODERS[family] for layer in _text_encoder(*spec)]
    if family == "sdxl":
        layers += _sdxl_unet()
    else:
        layers += _sd_unet(768 if family == "sd15" else 1024, linear_proj=family == "sd2")
    return layers


# --- network types: which layers, at which rank, stored as which tensors ----------------------


def _rank(layer: Layer, network_type: str, dim: int, conv_dim: int | None) -> int | None:
    """The rank a network gives this layer, or None where it leaves the layer alone."""
    if layer.role in ("text", "t5", "attn"):
        return dim
    lycoris = network_type in LYCORIS_ALGOS
    if layer.role == "edge" and not lycoris:
        return None
    if not lycoris and conv_dim is None:
        return None  # networks.lora/dylora add ResnetBlock2D/Down/Upsample2D only with conv_dim
    if layer.kernel == 1:
        return dim
    if network_type == "dylora":
        return dim  # networks.dylora requires conv_dim == dim
    # lycoris-lora 3.4.0: conv_dim defaults to dim (0 turns 3x3 convs off); networks.lora: 0 skips them.
    rank = dim if conv_dim is None else conv_dim
    return rank or None


def _factorize(dimension: int, factor: int = -1) -> tuple[int, int]:
    """LyCORIS's split of a layer width into (small, large) Kronecker factors.

    A factor that divides the width is used as is. Otherwise the walk climbs the divisors until the
    pair crosses over (or the next divisor exceeds ``factor``; -1 sets no bound) and sorts the last
    pair: 320 -> (16, 20), 360 -> (18, 20), 127 -> (1, 127).
    """
    if factor > 0 and dimension % factor == 0:
        m, n = factor, dimension // factor
        return (n, m) if m > n else (m, n)
    bound = dimension if factor < 0 else factor
    m, n = 1, dimension
    while m < n:
        new_m = m + 1
        while dimension % new_m:
            new_m += 1
        if new_m > bound:
            break
        m, n = new_m, dimension // new_m
    return (n, m) if m > n else (m, n)


Shape = tuple[int, ...]


def _module_tensors(
    layer: Layer, network_type: str, rank: int, lokr_factor: int, use_tucker: bool
) -> Iterator[tuple[str, Shape]]:
    """(suffix, shape) of each tensor the network stores for one wrapped layer, alpha included."""
    r, i, o, k = rank, layer.in_ch, layer.out_ch, layer.kernel
    spatial: Shape = (k, k) if layer.conv else ()
    tucker = use_tucker and k > 1
    if network_type in ("lora", "dylora", "locon"):
        if network_type == "locon" and tucker:
            yield "lora_down.weight", (r, i, 1, 1)
            yield "lora_mid.weight", (r, r, k, k)
        else:
            yield "lora_down.weight", (r, i, *spatial)
        yield "lora_up.weight", (o, r, *((1, 1) if layer.conv else ()))
    elif network_type == "loha":
        for n in (1, 2):
            if tucker:
                yield f"hada_t{n}", (r, r, k, k)
                yield f"hada_w{n}_a", (r, o)
                yield f"hada_w{n}_b", (r, i)
            else:
                yield f"hada_w{n}_a", (o, r)
                yield f"hada_w{n}_b", (r, i * k * k)
    else:  # lokr: w1 (out_small x in_small) kron w2 (out_large x in_large), w2 low-rank when r is small
        a, b = _factorize(o, lokr_factor)
        c, d = _factorize(i, lokr_factor)
        yield "lokr_w1", (a, c)
        if r >= max(b, d) / 2:
            yield "lokr_w2", (b, d, *spatial)
        elif tucker:
            yield "lokr_t2", (r, r, k, k)
            yield "lokr_w2_a", (r, b)
            yield "lokr_w2_b", (r, d)
        else:
            yield "lokr_w2_a", (b, r)
            yield "lokr_w2_b", (r, d * k * k)
    yield "alpha", ()


def tensor_shapes(
    family: Architecture,
    network_type: NetworkType,
    *,
    dim: int,
    conv_dim: int | None = None,
    train_unet: bool = True,
    train_text_encoder: bool = True,
    lokr_factor: int = -1,
    use_tucker: bool = False,
    variant: Sd3Variant | None = None,
    train_t5xxl: bool = False,
    train_blocks: Literal["all", "single", "double"] = "all",
    blocks: tuple[int, int] | None = None,
) -> dict[str, Shape]:
    """Every key of the saved state_dict with its shape, as sd-scripts/LyCORIS would save it.

    FLUX.1 and SD3 (networks.lora_flux / lora_sd3; LyCORIS wraps the same Linears of the same blocks and
    CLIP's, never T5-XXL: locon saves the same tensors, loha and lokr their own for each, as tiny runs
    measured): ``variant`` names the SD3,
    ``train_t5xxl`` adds T5-XXL (their network arg of that name), ``train_blocks`` keeps FLUX's single
    or double blocks only; ``blocks`` their block counts as the model file holds them (see base_layers).

    ``conv_dim`` is the ``conv_dim`` network arg, None when it is not passed. For lora and dylora,
    None means no 3x3 convs (and no ResnetBlock2D/Down/Upsample2D layers at all); for LyCORIS,
    None means conv_dim = dim, as lycoris-lora 3.4.0 defaults it, and 0 turns 3x3 convs off.
    """
    _check_choice("network_type", network_type, NetworkType)
    if dim < 1:
        raise ValueError(f"dim: must be at least 1 (got {dim})")
    if conv_dim is not None and conv_dim < 0:
        raise ValueError(f"conv_dim: must be at least 0 (got {conv_dim})")
    if network_type == "dylora" and conv_dim is not None and conv_dim != dim:
        raise ValueError(f"conv_dim: networks.dylora requires conv_dim == dim (got {conv_dim}, dim {dim})")
    if not (train_unet or train_text_encoder):
        raise ValueError("train_unet and train_text_encoder are both off: nothing to save")
    if family in ("flux1", "sd3") and network_type == "dylora":
        raise ValueError(f"network_type: networks.dylora does not wrap the {family} transformer")
    if family in ("flux1", "sd3") and network_type in LYCORIS_ALGOS and (train_t5xxl or train_blocks != "all"):
        raise ValueError("train_t5xxl and train_blocks are networks.lora_flux/lora_sd3's; LyCORIS wraps every block")

    shapes: dict[str, Shape] = {}
    for layer in base_layers(family, variant, blocks):
        is_text = layer.role in ("text", "t5")
        if (is_text and not train_text_encoder) or (not is_text and not train_unet):
            continue
        if layer.role == "t5" and not train_t5xxl:
            continue
        if train_blocks != "all" and f"_{'double' if train_blocks == 'single' else 'single'}_blocks_" in layer.name:
            continue
        rank = _rank(layer, network_type, dim, conv_dim)
        if rank is None:
            continue
        name = layer.name
        if network_type == "dylora" and is_text:
            # networks.dylora names every text encoder "lora_te": on SDXL the second encoder's modules
            # replace the first's in the saved file (lora_te_..._layers_0-11 come from bigG).
            name = "lora_te_" + name.split("_", 2)[2]
            for key in [key for key in shapes if key.startswith(name + ".")]:
                del shapes[key]
        for suffix, shape in _module_tensors(layer, network_type, rank, lokr_factor, use_tucker):
            shapes[f"{name}.{suffix}"] = shape
    return shapes


# --- the file -------------------------------------------------------------------------------------


def _numel(shape: Shape) -> int:
    n = 1
    for s in shape:
        n *= s
    return n


def safetensors_bytes(shapes: dict[str, Shape], save_dtype: SaveDtype, metadata_bytes: int) -> int:
    """Size of a safetensors file holding these tensors in one dtype.

    The format: an 8-byte length, a compact JSON header padded with spaces to a multiple of 8, then
    the data. The header lists "__metadata__" (``metadata_bytes`` long, 0 for none) and then each
    tensor, sorted by name, as "name":{"dtype":..,"shape":[..],"data_offsets":[begin,end]}.
    """
    _check_choice("save_dtype", save_dtype, SaveDtype)
    itemsize, dtype = DTYPE_BYTES[save_dtype], _SAFETENSORS_DTYPE[save_dtype]
    entries, offset = [], 0
    for name in sorted(shapes):
        shape = shapes[name]
        end = offset + _numel(shape) * itemsize
        dims = ",".join(str(s) for s in shape)
        entries.append(f'"{name}":{{"dtype":"{dtype}","shape":[{dims}],"data_offsets":[{offset},{end}]}}')
        offset = end
    header = 2 + sum(len(e) for e in entries) + max(len(entries) - 1, 0)
    if metadata_bytes:
        header += len('"__metadata__":,') + metadata_bytes
    return 8 + -(-header // 8) * 8 + offset


def predict(
    family: Architecture,
    network_type: NetworkType,
    *,
    dim: int,
    conv_dim: int | None = None,
    train_unet: bool = True,
    train_text_encoder: bool = True,
    save_dtype: SaveDtype = "fp32",
    lokr_factor: int = -1,
    use_tucker: bool = False,
    metadata_bytes: int | None = None,
    variant: Sd3Variant | None = None,
    train_t5xxl: bool = False,
    train_blocks: Literal["all", "single", "double"] = "all",
    blocks: tuple[int, int] | None = None,
) -> NetSize:
    """Size a network before training it.

    family: "sd15", "sd2", "sdxl", "flux1" or "sd3" (with ``variant``); network_type: "lora" (networks.lora,
    LoRA-C3Lier with conv_dim; lora_flux/lora_sd3 for the transformers),
    "dylora" (networks.dylora) or a lycoris.kohya algo ("locon", "loha", "lokr"). ``conv_dim``: see
    ``tensor_shapes``. ``lokr_factor`` is LyCORIS's ``factor`` arg; ``use_tucker`` its ``use_tucker``.
    ``bytes`` is exact but for the metadata, estimated as ``DEFAULT_METADATA_BYTES`` unless
    ``metadata_bytes`` (the length of the serialized metadata object) is given: see the module docstring.
    Network args not listed here are taken at their defaults (no block_dims, preset "full", no
    decompose_both, full_matrix, dora_wd or train_norm).
    """
    shapes = tensor_shapes(
        family,
        network_type,
        dim=dim,
        conv_dim=conv_dim,
        train_unet=train_unet,
        train_text_encoder=train_text_encoder,
        lokr_factor=lokr_factor,
        use_tucker=use_tucker,
        variant=variant,
        train_t5xxl=train_t5xxl,
        train_blocks=train_blocks,
        blocks=blocks,
    )
    meta = DEFAULT_METADATA_BYTES if metadata_bytes is None else metadata_bytes
    return NetSize(
        modules=len({key.split(".", 1)[0] for key in shapes}),
        tensors=len(shapes),
        params=sum(_numel(s) for s in shapes.values()),
        bytes=safetensors_bytes(shapes, save_dtype, meta),
    )


def _check_choice(field: str, value: object, choices: object) -> None:
    allowed = get_args(choices)
    if value not in allowed:
        raise ValueError(f"{field}: must be one of {', '.join(map(str, allowed))} (got {value!r})")
