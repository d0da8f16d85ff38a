"""Synthetic LoRA files for tests: real key names and shapes (models.netsize, measured against sd-scripts and
lycoris-lora), real metadata (tests/data/lora_metadata.json: what sd-scripts 48d368fa wrote), zero weights.
The file is sparse: the header and the alpha values are written, the rest of the tensor data is a hole."""

from __future__ import annotations

import json
import struct
from pathlib import Path

from artlab_kohya.models.netsize import tensor_shapes

DATA = Path(__file__).parent / "data"
_BYTES = {"F32": 4, "F16": 2, "BF16": 2}


def recorded(name: str) -> dict:
    """The record of a real sd-scripts output file: lora, dylora, locon or loha (metadata, bytes, tensors)."""
    return json.loads((DATA / "lora_metadata.json").read_text(encoding="utf-8"))[name]


def write_safetensors(
    path: Path,
    shapes: dict[str, tuple[int, ...] | list[int]],
    *,
    metadata: dict[str, str] | None = None,
    dtype: str = "F32",
    alphas: dict[str, float] | float = 1.0,
) -> Path:
    """A well-formed .safetensors file with these tensors; `.alpha` keys hold `alphas` (per key or one value)."""
    header: dict = {}
    offset = 0
    for key, shape in shapes.items():
        n = 1
        for s in shape:
            n *= s
        size = n * _BYTES[dtype]
        header[key] = {"dtype": dtype, "shape": list(shape), "data_offsets": [offset, offset + size]}
        offset += size
    if metadata is not None:
        header["__metadata__"] = metadata
    raw = json.dumps(header).encode()
    raw += b" " * (-len(raw) % 8)
    with path.open("wb") as f:
        f.write(struct.pack("<Q", len(raw)) + raw)
        start = f.tell()
        for key, entry in header.items():
            if key.endswith(".alpha"):
                value = alphas if isinstance(alphas, float | int) else alphas.get(key, 1.0)
                f.seek(start + entry["data_offsets"][0])
                f.write(_encode(dtype, float(value)))
        f.truncate(start + offset)
    return path


def _encode(dtype: str, value: float) -> bytes:
    if dtype == "F32":
        return struct.pack("<f", value)
    if dtype == "F16":
        return struct.pack("<e", value)
    return struct.pack("<f", value)[2:]  # BF16: the upper half


def write_lora(
    path: Path,
    network: str = "lora",
    family: str = "sd15",
    *,
    dim: int = 4,
    conv_dim: int | None = None,
    metadata: dict[str, str] | None = None,
    alphas: dict[str, float] | float = 1.0,
    dtype: str = "F32",
    **kwargs: object,
) -> Path:
    shapes = tensor_shapes(family, network, dim=dim, conv_dim=conv_dim, **kwargs)
    return write_safetensors(path, shapes, metadata=metadata, dtype=dtype, alphas=alphas)
