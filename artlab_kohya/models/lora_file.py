"""A LoRA file, read from its safetensors header (and its alpha scalars, a few bytes each): which
network it is, how it is built, what it was trained on. No torch; works on files from any trainer that
writes safetensors with kohya-style key names (sd-scripts, LyCORIS, the GUIs built on them).

The network is told from the key names each implementation saves: `lora_down/lora_up` (sd-scripts LoRA,
DyLoRA, LyCORIS LoCon), `hada_w1_a` (LoHa), `lokr_w1`/`lokr_w1_a` (LoKr), `on_input` (IA3), `a1.weight`
(GLoRA), `oft_blocks` (OFT: 3 dimensions diag-OFT, 4 BOFT), `diff` (LyCORIS full fine-tuning); the
key names are those of lycoris-lora 3.4.0 (KohakuBlueleaf/LyCORIS, lycoris/modules/*.py `weight_list`)
and sd-scripts 48d368fa (networks/lora.py, dylora.py, oft.py). DyLoRA saves the same keys as LoRA, so it
is told from the metadata (`ss_network_module`, `ss_network_args`) sd-scripts writes.
"""

from __future__ import annotations

import json
import re
import struct
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .checkpoint import ModelError, read_safetensors_header

# Key prefix -> the part of the base model it adapts (sd-scripts' LORA_PREFIX_* names).
PARTS = {
    "lora_unet_": "unet",
    "lora_te1_": "text_encoder_1",
    "lora_te2_": "text_encoder_2",
    "lora_te_": "text_encoder",
}
# One marker key suffix per network kind; the first that a module has decides (most specific first).
_MARKERS = (
    ("hada_w1_a", "loha"),
    ("lokr_w1", "lokr"),
    ("lokr_w1_a", "lokr"),
    ("on_input", "ia3"),
    ("a1.weight", "glora"),
    ("oft_blocks", "oft"),
    ("diff", "full"),
    ("lora_down.weight", "lora"),
)
NAMES = {
    "lora": "LoRA",
    "locon": "LoCon",
    "dylora": "DyLoRA",
    "loha": "LoHa",
    "lokr": "LoKr",
    "ia3": "IA3",
    "glora": "GLoRA",
    "boft": "BOFT",
    "diag-oft": "Diag-OFT",
    "oft": "OFT",
    "full": "full fine-tuning (LyCORIS)",
}
_DTYPE_BYTES = {"F32": 4, "F16": 2, "BF16": 2, "F64": 8}
# What ss_base_model_version and modelspec.architecture say -> the architecture's short name.
_BASE_VERSIONS = {"sd_v1": "sd15", "sd_v1_v": "sd15", "sd_v2": "sd2", "sd_v2_v": "sd2-v", "sdxl_base_v1-0": "sdxl"}
_CONTEXT_WIDTH = {768: "sd15", 1024: "sd2", 2048: "sdxl"}


@dataclass(frozen=True)
class Module:
    name: str  # e.g. lora_unet_down_blocks_0_attentions_0_proj_in
    kind: str  # a key of _MARKERS' kinds: lora, loha, lokr, ia3, glora, oft, full
    part: str  # unet, text_encoder, text_encoder_1, text_encoder_2, other
    rank: int | None  # None where the kind has none (IA3, OFT, full; LoKr without a low-rank factor)
    alpha: float | None
    conv: bool  # a 3x3 convolution (LoCon-style) rather than a linear or 1x1 layer


@dataclass
class LoraInfo:
    path: Path
    size: int
    tensors: int
    params: int
    dtypes: dict[str, int]
    network: str  # LoRA, LoCon, DyLoRA, LoHa, LoKr, IA3, GLoRA, BOFT, Diag-OFT, OFT, ...
    algo: str  # the short name: lora, locon, dylora, loha, lokr, ia3, glora, boft, diag-oft, oft, full
    module: str | None  # ss_network_module: networks.lora, networks.dylora, lycoris.kohya, ...
    dora: bool
    modules: list[Module] = field(default_factory=list)
    base: dict[str, str] = field(default_factory=dict)  # base model: name, hash, sha256, family
    training: dict[str, Any] = field(default_factory=dict)
    dataset_dirs: dict[str, dict[str, Any]] = field(default_factory=dict)
    top_tags: list[tuple[str, int]] = field(default_factory=list)
    metadata: dict[str, str] = field(default_factory=dict)

    @property
    def parts(self) -> dict[str, int]:
        return dict(Counter(m.part for m in self.modules))

    @property
    def ranks(self) -> dict[int | None, int]:
        return dict(Counter(m.rank for m in self.modules))

    @property
    def alphas(self) -> dict[float | None, int]:
        return dict(Counter(m.alpha for m in self.modules))

    @property
    def conv_modules(self) -> int:
        return sum(m.conv for m in self.modules)

    def as_dict(self) -> dict[str, Any]:
        return {
            "path": str(self.path),
            "size": self.size,
            "tensors": self.tensors,
            "params": self.params,
            "dtypes": self.dtypes,
            "network": self.network,
            "algo": self.algo,
            "network_module": self.module,
            "dora": self.dora,
            "modules": len(self.modules),
            "conv_modules": self.conv_modules,
            "parts": self.parts,
            "ranks": summarise(self.ranks),
            "alphas": summarise(self.alphas),
            "base_model": self.base,
            "training": self.training,
            "dataset_dirs": self.dataset_dirs,
            "top_tags": [{"tag": t, "count": n} for t, n in self.top_tags],
            "metadata": self.metadata,
        }


def summarise(counts: dict[Any, int]) -> list[dict[str, Any]]:
    """{value: modules} as a list, most common first: one entry when every module agrees."""
    ordered = sorted(counts.items(), key=lambda item: (-item[1], str(item[0])))
    return [{"value": value, "modules": n} for value, n in ordered]


def read_lora(path: str | Path, *, top_tags: int = 10) -> LoraInfo:
    """Everything `lora info` shows about a LoRA file, read without loading a tensor."""
    path = Path(path)
    if path.suffix.lower() != ".safetensors":
        raise ModelError(f"{path}: only .safetensors LoRA files can be read (a .ckpt/.pt file is a pickle)")
    header = read_safetensors_header(path)
    raw_meta = header.pop("__metadata__", None) or {}
    metadata = {str(k): str(v) for k, v in raw_meta.items()} if isinstance(raw_meta, dict) else {}
    if not header:
        raise ModelError(f"{path} holds no tensors")
    modules = _modules(path, header)
    if not modules:
        raise ModelError(f"{path} is not a LoRA: none of its {len(header)} keys is a LoRA or LyCORIS module")
    algo, module_name = _algo(modules, metadata)
    tags = _tag_counts(metadata.get("ss_tag_frequency"))
    return LoraInfo(
        path=path,
        size=path.stat().st_size,
        tensors=len(header),
        params=sum(_numel(v["shape"]) for v in header.values()),
        dtypes=dict(Counter(str(v["dtype"]) for v in header.values())),
        network=NAMES.get(algo, algo),
        algo=algo,
        module=module_name,
        dora=any(k.endswith(".dora_scale") for k in header),
        modules=modules,
        base=_base(metadata, header),
        training=_training(metadata),
        dataset_dirs=_json_dict(metadata.get("ss_dataset_dirs")),
        top_tags=tags.most_common(top_tags),
        metadata=metadata,
    )


def _modules(path: Path, header: dict[str, Any]) -> list[Module]:
    names: dict[str, set[str]] = {}
    for key in header:
        for suffix, _ in _MARKERS:
            if key.endswith("." + suffix):
                names.setdefault(key[: -len(suffix) - 1], set()).add(suffix)
    alphas = _read_scalars(path, header, [n + ".alpha" for n in names if n + ".alpha" in header])
    found = []
    for name in sorted(names):
        kind = next(k for suffix, k in _MARKERS if suffix in names[name])
        if kind == "oft":
            kind = "boft" if len(header[name + ".oft_blocks"]["shape"]) == 4 else "diag-oft"
        rank, conv = _rank(name, kind, header)
        part = next((p for prefix, p in PARTS.items() if name.startswith(prefix)), "other")
        found.append(Module(name, kind, part, rank, alphas.get(name + ".alpha"), conv))
    return found


def _rank(name: str, kind: str, header: dict[str, Any]) -> tuple[int | None, bool]:
    def shape(suffix: str) -> list[int] | None:
        entry = header.get(f"{name}.{suffix}")
        return list(entry["shape"]) if entry else None

    if kind == "lora":
        down = shape("lora_down.weight") or []
        mid = shape("lora_mid.weight")
        conv = len(down) == 4 and (down[2:] != [1, 1] or (mid is not None and mid[2:] != [1, 1]))
        return (down[0] if down else None), conv
    if kind == "loha":
        w1b = shape("hada_w1_b") or []
        t1 = shape("hada_t1")
        return (w1b[0] if w1b else None), t1 is not None and t1[2:] != [1, 1]
    if kind == "lokr":
        low = shape("lokr_w2_b") or shape("lokr_w1_b")
        w2 = shape("lokr_w2") or []
        return (low[0] if low else None), len(w2) == 4 and w2[2:] != [1, 1]
    if kind == "glora":
        a1 = shape("a1.weight") or []
        return (a1[0] if a1 else None), len(a1) == 4 and a1[2:] != [1, 1]
    return None, False


def _read_scalars(path: Path, header: dict[str, Any], keys: list[str]) -> dict[str, float]:
    """The values of one-element tensors (alphas), read straight from the file: a few bytes each."""
    if not keys:
        return {}
    values: dict[str, float] = {}
    with path.open("rb") as f:
        (n,) = struct.unpack("<Q", f.read(8))
        for key in keys:
            entry = header[key]
            start, end = (int(x) for x in entry["data_offsets"])
            dtype = str(entry["dtype"])
            if _numel(entry["shape"]) != 1 or end - start != _DTYPE_BYTES.get(dtype):
                continue
            f.seek(8 + n + start)
            values[key] = _decode(dtype, f.read(end - start))
    return values


def _decode(dtype: str, raw: bytes) -> float:
    if dtype == "F32":
        value = struct.unpack("<f", raw)[0]
    elif dtype == "F16":
        value = struct.unpack("<e", raw)[0]
    elif dtype == "BF16":  # the upper half of a float32
        value = struct.unpack("<f", b"\0\0" + raw)[0]
    else:
        value = struct.unpack("<d", raw)[0]
    return round(float(value), 6)


def _numel(shape: list[int]) -> int:
    n = 1
    for s in shape:
        n *= int(s)
    return n


def _algo(modules: list[Module], metadata: dict[str, str]) -> tuple[str, str | None]:
    """The network's short name: the most common module kind; lora_down/lora_up keys are told apart by the
    metadata (DyLoRA) or by 3x3 convolutions (LoCon: LyCORIS's, or sd-scripts' LoRA with conv_dim)."""
    kind = Counter(m.kind for m in modules).most_common(1)[0][0]
    module_name = metadata.get("ss_network_module") or None
    declared = str(_json_dict(metadata.get("ss_network_args")).get("algo", "")).strip("\"'").lower()
    if kind == "lora":
        if module_name == "networks.dylora" or declared == "dylora":
            return "dylora", module_name
        if declared == "locon" or any(m.conv for m in modules):
            return "locon", module_name
    if kind == "diag-oft" and module_name == "networks.oft":
        return "oft", module_name  # sd-scripts' own OFT
    return kind, module_name


def _json_dict(text: str | None) -> dict[str, Any]:
    if not text:
        return {}
    try:
        value = json.loads(text)
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def _tag_counts(text: str | None) -> Counter[str]:
    """ss_tag_frequency is {folder: {tag: count}}; the tags of all folders together."""
    counts: Counter[str] = Counter()
    for tags in _json_dict(text).values():
        if isinstance(tags, dict):
            for tag, n in tags.items():
                if isinstance(n, int) and not isinstance(n, bool):
                    counts[str(tag)] += n
    return counts


def _base(metadata: dict[str, str], header: dict[str, Any]) -> dict[str, str]:
    base = {
        "name": metadata.get("ss_sd_model_name", ""),
        "hash": metadata.get("ss_sd_model_hash", ""),  # the legacy 8-hex-digit hash of the whole file
        "sha256": metadata.get("ss_new_sd_model_hash", ""),  # sha256 of the tensors, as the WebUI shows it
        "version": metadata.get("ss_base_model_version", ""),
        "architecture": metadata.get("modelspec.architecture", ""),
    }
    family = _BASE_VERSIONS.get(base["version"]) or _family_from_keys(header)
    if family:
        base["family"] = family
    return {k: v for k, v in base.items() if v and v != "None"}


_TO_K = re.compile(r"^lora_unet_.*attn2_to_k\.(lora_down\.weight|hada_w1_b)$")


def _family_from_keys(header: dict[str, Any]) -> str | None:
    """SDXL names its two text encoders lora_te1_/lora_te2_; else the cross-attention width says it."""
    if any(k.startswith(("lora_te1_", "lora_te2_")) for k in header):
        return "sdxl"
    widths = {header[k]["shape"][1] for k in header if _TO_K.match(k) and len(header[k]["shape"]) >= 2}
    return _CONTEXT_WIDTH.get(widths.pop()) if len(widths) == 1 else None


# ss_* keys shown as the training record, in this order (the rest stay in `metadata`).
TRAINING_KEYS = (
    "ss_output_name",
    "ss_training_comment",
    "ss_network_dim",
    "ss_network_alpha",
    "ss_network_args",
    "ss_num_train_images",
    "ss_num_reg_images",
    "ss_num_batches_per_epoch",
    "ss_epoch",
    "ss_num_epochs",
    "ss_steps",
    "ss_max_train_steps",
    "ss_learning_rate",
    "ss_unet_lr",
    "ss_text_encoder_lr",
    "ss_optimizer",
    "ss_lr_scheduler",
    "ss_lr_warmup_steps",
    "ss_mixed_precision",
    "ss_seed",
    "ss_clip_skip",
    "ss_noise_offset",
    "ss_min_snr_gamma",
    "ss_sd_scripts_commit_hash",
    "ss_training_started_at",
    "ss_training_finished_at",
)


def _training(metadata: dict[str, str]) -> dict[str, Any]:
    return {k[3:]: metadata[k] for k in TRAINING_KEYS if metadata.get(k) not in (None, "", "None")}
