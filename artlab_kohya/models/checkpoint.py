"""A checkpoint file, read from its header only: is it safe to hand to the trainer (safetensors, not a
pickle), and which architecture is it (SD1, SD2, SDXL, FLUX.1, SD3). No tensor is loaded."""

from __future__ import annotations

import json
import os
import re
import struct
from pathlib import Path
from typing import Any

from ..errors import ArtlabError
from ..spec.families import Architecture, Sd3Variant


class ModelError(ArtlabError):
    """A base model or tokenizer cannot be used; the message is one line meant for the user."""


_MAX_HEADER_BYTES = 100 * 1024 * 1024  # the safetensors library's own limit
_LFS_POINTER = b"version https://git-lfs"


def read_safetensors_header(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The JSON header of a .safetensors file (8-byte little-endian length, then JSON); reads no tensor."""
    path = Path(path)
    try:
        size = path.stat().st_size
        with path.open("rb") as f:
            if f.read(len(_LFS_POINTER)) == _LFS_POINTER:
                raise ModelError(f"{path} is a Git LFS pointer file, not the model: fetch it with `git lfs pull`")
            f.seek(0)
            head = f.read(8)
            if len(head) < 8:
                raise ModelError(f"{path} is not a safetensors file ({size} bytes)")
            (n,) = struct.unpack("<Q", head)
            if n < 2 or n > _MAX_HEADER_BYTES or n > size - 8:
                raise ModelError(f"{path} is not a safetensors file (header length {n}, file size {size})")
            raw = f.read(n)
    except OSError as e:
        raise ModelError(f"cannot read {path}: {e.strerror or e}") from None
    try:
        header = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise ModelError(f"{path} is not a safetensors file (its header is not JSON)") from None
    if not isinstance(header, dict) or not all(
        isinstance(v, dict) and isinstance(v.get("shape"), list) for k, v in header.items() if k != "__metadata__"
    ):
        raise ModelError(f"{path} is not a safetensors file (unexpected header layout)")
    data_end = max(
        (int(v["data_offsets"][1]) for k, v in header.items() if k != "__metadata__" and "data_offsets" in v),
        default=0,
    )
    if 8 + n + data_end > size:
        raise ModelError(f"{path} is truncated: its header needs {8 + n + data_end} bytes, the file has {size}")
    return header


_ATTN2_TO_K = re.compile(r"^model\.diffusion_model\..*\.attn2\.to_k\.weight$")
_BY_CONTEXT: dict[int, Architecture] = {768: "sd15", 1024: "sd2", 2048: "sdxl"}


# FLUX.1 in Black Forest Labs' layout (double_blocks/single_blocks) or Diffusers' (transformer_blocks with
# add_k_proj, single_transformer_blocks), as flux_utils.analyze_checkpoint_state tells them; SD3's MMDiT
# (joint_blocks with x_block/context_block), as sd3_utils reads it. Either may carry the
# "model.diffusion_model." prefix of a single-file release.
_PREFIX = "model.diffusion_model."
_FLUX_KEYS = ("double_blocks.0.img_attn.qkv.weight", "transformer_blocks.0.attn.add_k_proj.weight")
_FLUX_SINGLE = ("single_blocks.0.linear1.weight", "single_transformer_blocks.0.attn.to_k.weight")
_SD3_KEY = re.compile(r"^(?:model\.diffusion_model\.)?joint_blocks\.\d+\.(?:x_block|context_block)\.")


def _dit_family(keys: set[str]) -> Architecture | None:
    bare = {k.removeprefix(_PREFIX) for k in keys}
    if any(k in bare for k in _FLUX_KEYS) and any(k in bare for k in _FLUX_SINGLE):
        return "flux1"
    if any(_SD3_KEY.match(k) for k in keys):
        return "sd3"
    return None


def sd3_variant(header: dict[str, Any]) -> Sd3Variant | None:
    """SD3 medium, SD3.5 medium or SD3.5 large, the way sd3_utils.analyze_state_dict_state tells them:
    SD3.5 has RMS q/k norms (ln_k), and only SD3.5 medium has the extra self-attention (attn2) in its
    first x_blocks. None for a file that is not SD3."""
    bare = {k.removeprefix(_PREFIX) for k in header if k != "__metadata__"}
    if _dit_family(bare) != "sd3":
        return None
    if "joint_blocks.0.context_block.attn.ln_k.weight" not in bare:
        return "sd3-medium"
    return "sd3.5-medium" if any(".x_block.attn2.ln_k.weight" in k for k in bare) else "sd3.5-large"


_FLUX_BLOCK = re.compile(r"^(double_blocks|single_blocks|transformer_blocks|single_transformer_blocks)\.(\d+)\.")
_SD3_BLOCK = re.compile(r"^joint_blocks\.(\d+)\.(x_block\.attn2\.)?")


def dit_blocks(header: dict[str, Any]) -> tuple[int, int] | None:
    """The transformer's block counts, as sd-scripts builds the model from the file: FLUX.1 (double, single)
    (flux_utils.analyze_checkpoint_state counts them), SD3 (joint blocks, x_blocks with the extra
    self-attention: sd3_utils.analyze_state_dict_state; its width is 64 per joint block). None for others."""
    bare = {k.removeprefix(_PREFIX) for k in header if k != "__metadata__"}
    family = _dit_family(bare)
    if family == "flux1":
        seen: dict[str, set[int]] = {}
        for key in bare:
            if m := _FLUX_BLOCK.match(key):
                seen.setdefault(m[1], set()).add(int(m[2]))
        double = seen.get("double_blocks") or seen.get("transformer_blocks") or set()
        single = seen.get("single_blocks") or seen.get("single_transformer_blocks") or set()
        return max(double, default=-1) + 1, max(single, default=-1) + 1
    if family == "sd3":
        joint, attn2 = set(), set()
        for key in bare:
            if m := _SD3_BLOCK.match(key):
                joint.add(int(m[1]))
                if m[2]:
                    attn2.add(int(m[1]))
        return max(joint, default=-1) + 1, len(attn2)
    return None


def is_flux_schnell(header: dict[str, Any]) -> bool:
    """FLUX.1 schnell has no guidance embedder (flux_utils.analyze_checkpoint_state's test)."""
    bare = {k.removeprefix(_PREFIX) for k in header}
    return not ({"guidance_in.in_layer.bias", "time_text_embed.guidance_embedder.linear_1.bias"} & bare)


def prediction_type(header: dict[str, Any]) -> str | None:
    """What the file's own metadata says it predicts ("epsilon" or "v"), as sd-scripts and other tools write
    it (modelspec.prediction_type); None when it says nothing. The weights themselves cannot tell."""
    meta = header.get("__metadata__")
    value = meta.get("modelspec.prediction_type") if isinstance(meta, dict) else None
    return value if value in ("epsilon", "v") else None


def _family_from_tensors(header: dict[str, Any]) -> Architecture | None:
    dit = _dit_family(set(header) - {"__metadata__"})
    if dit is not None:
        return dit
    contexts = {v["shape"][1] for k, v in header.items() if _ATTN2_TO_K.match(k) and len(v["shape"]) == 2}
    if len(contexts) > 1:
        return None  # U-Net blocks of different widths: not one of the three
    by_context = _BY_CONTEXT.get(contexts.pop()) if contexts else None
    keys = header.keys()
    by_encoder: Architecture | None = None
    if any(k.startswith("conditioner.embedders.1.") for k in keys):
        by_encoder = "sdxl"
    elif any(k.startswith("cond_stage_model.model.") for k in keys):
        by_encoder = "sd2"  # OpenCLIP ViT-H
    elif any(k.startswith("cond_stage_model.transformer.") for k in keys):
        by_encoder = "sd15"  # OpenAI CLIP ViT-L
    if by_context and by_encoder and by_context != by_encoder:
        return None  # a merge or conversion gone wrong; let the user say what it is
    if by_context == "sdxl" and not any(k.startswith("model.diffusion_model.label_emb.") for k in keys):
        return None
    return by_context or by_encoder


def _family_from_diffusers(folder: Path) -> Architecture | None:
    def load(p: Path) -> dict[str, Any]:
        try:
            data = json.loads(p.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return {}
        return data if isinstance(data, dict) else {}

    unet = load(folder / "unet" / "config.json")
    context = unet.get("cross_attention_dim")
    if isinstance(context, int):
        return _BY_CONTEXT.get(context)  # 1280 is the SDXL refiner: not a base for LoRA training
    pipeline = str(load(folder / "model_index.json").get("_class_name", ""))
    if pipeline == "StableDiffusionXLPipeline":
        return "sdxl"
    return None  # StableDiffusionPipeline alone does not tell SD1 from SD2


def _is_diffusers_folder(folder: Path) -> bool:
    return (folder / "model_index.json").is_file() or (folder / "unet" / "config.json").is_file()


def detect_family(path: str | os.PathLike[str]) -> Architecture | None:
    """SD1.x, SD2.x, SDXL, FLUX.1 or SD3, read from a .safetensors header or a Diffusers folder's configs.

    FLUX.1 and SD3 are told by their transformer's key names (double/single blocks; joint blocks).

    The cross-attention width of the U-Net says it (768 SD1, 1024 SD2, 2048 SDXL), checked against the
    text encoder's key names (SD1 `cond_stage_model.transformer.*`, SD2 OpenCLIP `cond_stage_model.model.*`,
    SDXL `conditioner.embedders.1.*` with `label_emb`). None when the file does not say, or contradicts
    itself.

    Whether an SD2 or SDXL model predicts noise or velocity (768-v, v-pred SDXL fine-tunes) is not in the
    weights: both have the same tensors with the same shapes. The file's metadata may say it
    (`prediction_type`); else the user does (family `sd2-v` / `sdxl-v` / `v_parameterization`).
    """
    path = Path(path)
    if path.is_dir():
        return _family_from_diffusers(path)
    return _family_from_tensors(read_safetensors_header(path))


# --------------------------------------------------------------------------- format safety

PICKLE_SUFFIXES = frozenset({".ckpt", ".pt", ".pth", ".bin"})
_PICKLE_REASON = (
    "it is a pickle, and loading a pickle can run any code its author put in it (torch.load unpickles "
    "arbitrary objects). Prefer the .safetensors release of the same model, which holds only tensors, or "
    "convert it once in a sandbox; set model.allow_pickle: true only for a file whose origin you trust."
)
_DIFFUSERS_COMPONENTS = ("unet", "text_encoder", "text_encoder_2", "vae")


def refuse_pickle(name: str, allow_pickle: bool) -> None:
    if Path(name).suffix.lower() in PICKLE_SUFFIXES and not allow_pickle:
        raise ModelError(f"refusing {name}: {_PICKLE_REASON}")


def check_model_file(path: str | os.PathLike[str], allow_pickle: bool = False) -> Path:
    """Refuse what would be unsafe or pointless to hand to sd-scripts; returns the path.

    Accepts a .safetensors file with a sound header, a Diffusers folder, and pickled checkpoints
    (.ckpt/.pt/.pth/.bin) only with `allow_pickle`.
    """
    path = Path(path).expanduser()
    if not path.exists():
        raise ModelError(f"model not found: {path}")
    if path.is_dir():
        if not _is_diffusers_folder(path):
            raise ModelError(
                f"{path} is a folder without a model: expected a .safetensors file or a Diffusers folder "
                "(with model_index.json or unet/config.json)"
            )
        for name in _DIFFUSERS_COMPONENTS:
            sub = path / name
            if not sub.is_dir():
                continue
            files = [p.suffix.lower() for p in sub.iterdir() if p.is_file()]
            if ".safetensors" not in files and any(s in PICKLE_SUFFIXES for s in files) and not allow_pickle:
                raise ModelError(f"refusing {sub} (only pickled weights): {_PICKLE_REASON}")
        return path
    suffix = path.suffix.lower()
    if suffix == ".safetensors":
        read_safetensors_header(path)
        return path
    if suffix in PICKLE_SUFFIXES:
        refuse_pickle(str(path), allow_pickle)
        return path
    raise ModelError(f"{path}: unknown model format {suffix or '(no extension)'}; expected .safetensors")
