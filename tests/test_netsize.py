"""Tests for artlab_kohya.models.netsize against numbers measured from the real networks.

MEASURED and REAL_FILES were taken from sd-scripts 48d368fa with lycoris-lora 3.4.0 (torch 2.14.1,
transformers 4.54.1): MEASURED by test_engine_* below (PROBE builds sd-scripts' own U-Nets and text
encoders on the meta device, creates each network the way train_network.py does and counts its
state_dict), REAL_FILES from LoRA files written by real SD1.5 training runs
(the safetensors metadata of real training runs). To re-measure after a pin moves:
source the engine env (scripts/setup_engine.sh, see CONTRIBUTING.md) and run
`pytest -m engine tests/test_netsize.py` (about 5 minutes and 7 GB of RAM on 2 CPU cores); a
stale row makes it print the real numbers.
"""

from __future__ import annotations

import json
import os
import subprocess
from typing import Any

import pytest

from artlab_kohya.models.netsize import (
    DEFAULT_METADATA_BYTES,
    _factorize,
    base_layers,
    predict,
    safetensors_bytes,
    tensor_shapes,
)

# (family, network_type, predict() options, modules, tensors, params), measured.
MEASURED: list[tuple[str, str, dict[str, Any], int, int, int]] = [
    ("sd15", "lora", {"dim": 4}, 264, 792, 2359560),
    ("sd15", "lora", {"dim": 4, "conv_dim": 8}, 350, 1050, 7043166),
    ("sd15", "lora", {"dim": 32}, 264, 792, 18874632),
    ("sd15", "lora", {"dim": 32, "conv_dim": 8}, 350, 1050, 25878878),
    ("sd15", "lora", {"dim": 128}, 264, 792, 75497736),
    ("sd15", "lora", {"dim": 128, "conv_dim": 8}, 350, 1050, 90458462),
    ("sd15", "lora", {"dim": 16, "train_text_encoder": False}, 192, 576, 6783168),
    ("sd15", "lora", {"dim": 16, "train_unet": False}, 72, 216, 2654280),
    ("sd15", "lora", {"dim": 16, "conv_dim": 0}, 300, 900, 10763564),
    ("sd15", "dylora", {"dim": 4}, 264, 792, 2359560),
    ("sd15", "dylora", {"dim": 4, "conv_dim": 4}, 350, 1050, 4867166),
    ("sd15", "dylora", {"dim": 32}, 264, 792, 18874632),
    ("sd15", "dylora", {"dim": 32, "conv_dim": 32}, 350, 1050, 38934878),
    ("sd15", "dylora", {"dim": 128}, 264, 792, 75497736),
    ("sd15", "dylora", {"dim": 128, "conv_dim": 128}, 350, 1050, 155738462),
    ("sd15", "dylora", {"dim": 16, "train_text_encoder": False}, 192, 576, 6783168),
    ("sd15", "dylora", {"dim": 16, "train_unet": False}, 72, 216, 2654280),
    ("sd15", "locon", {"dim": 4}, 354, 1062, 4896770),
    ("sd15", "locon", {"dim": 4, "conv_dim": 8}, 354, 1062, 7085730),
    ("sd15", "locon", {"dim": 32}, 354, 1062, 39171682),
    ("sd15", "locon", {"dim": 32, "conv_dim": 8}, 354, 1062, 26037922),
    ("sd15", "locon", {"dim": 128}, 354, 1062, 156685666),
    ("sd15", "locon", {"dim": 128, "conv_dim": 8}, 354, 1062, 91016866),
    ("sd15", "locon", {"dim": 16, "train_text_encoder": False}, 282, 846, 16931738),
    ("sd15", "locon", {"dim": 16, "train_unet": False}, 72, 216, 2654280),
    ("sd15", "locon", {"dim": 16, "conv_dim": 0}, 302, 906, 10830126),
    ("sd15", "loha", {"dim": 4}, 354, 1770, 9793186),
    ("sd15", "loha", {"dim": 4, "conv_dim": 8}, 354, 1770, 14171106),
    ("sd15", "loha", {"dim": 32}, 354, 1770, 78343010),
    ("sd15", "loha", {"dim": 32, "conv_dim": 8}, 354, 1770, 52075490),
    ("sd15", "loha", {"dim": 128}, 354, 1770, 313370978),
    ("sd15", "loha", {"dim": 128, "conv_dim": 8}, 354, 1770, 182033378),
    ("sd15", "loha", {"dim": 16, "train_text_encoder": False}, 282, 1410, 33863194),
    ("sd15", "loha", {"dim": 16, "train_unet": False}, 72, 360, 5308488),
    ("sd15", "loha", {"dim": 16, "conv_dim": 0}, 302, 1510, 21659950),
    ("sd15", "lokr", {"dim": 4}, 354, 1416, 422978),
    ("sd15", "lokr", {"dim": 4, "conv_dim": 8}, 354, 1416, 497266),
    ("sd15", "lokr", {"dim": 32}, 354, 1079, 1266850),
    ("sd15", "lokr", {"dim": 32, "conv_dim": 8}, 354, 1131, 822578),
    ("sd15", "lokr", {"dim": 128}, 354, 1062, 1256354),
    ("sd15", "lokr", {"dim": 128, "conv_dim": 8}, 354, 1114, 812082),
    ("sd15", "lokr", {"dim": 16, "train_text_encoder": False}, 282, 1000, 795322),
    ("sd15", "lokr", {"dim": 16, "train_unet": False}, 72, 240, 141384),
    ("sd15", "lokr", {"dim": 16, "conv_dim": 0}, 302, 1055, 559782),
    ("sd15", "locon", {"dim": 8, "conv_dim": 4, "use_tucker": True}, 354, 1114, 5829826),
    ("sd15", "loha", {"dim": 8, "conv_dim": 4, "use_tucker": True}, 354, 1874, 11659298),
    ("sd15", "lokr", {"dim": 8, "conv_dim": 4, "use_tucker": True}, 354, 1468, 457506),
    ("sd15", "lokr", {"dim": 8, "lokr_factor": 4}, 354, 1416, 2454442),
    ("sd15", "lokr", {"dim": 8, "lokr_factor": 8}, 354, 1416, 1247138),
    ("sd15", "lokr", {"dim": 8, "lokr_factor": 16}, 354, 1416, 702722),
    ("sd2", "lora", {"dim": 4}, 330, 990, 3424586),
    ("sd2", "lora", {"dim": 4, "conv_dim": 8}, 416, 1248, 8108192),
    ("sd2", "lora", {"dim": 32}, 330, 990, 27394378),
    ("sd2", "lora", {"dim": 32, "conv_dim": 8}, 416, 1248, 34398624),
    ("sd2", "lora", {"dim": 128}, 330, 990, 109576522),
    ("sd2", "lora", {"dim": 128, "conv_dim": 8}, 416, 1248, 124537248),
    ("sd2", "lora", {"dim": 16, "train_text_encoder": False}, 192, 576, 6914240),
    ("sd2", "lora", {"dim": 16, "train_unet": False}, 138, 414, 6783114),
    ("sd2", "lora", {"dim": 16, "conv_dim": 0}, 366, 1098, 15023470),
    ("sd2", "dylora", {"dim": 4}, 330, 990, 3424586),
    ("sd2", "dylora", {"dim": 4, "conv_dim": 4}, 416, 1248, 5932192),
    ("sd2", "dylora", {"dim": 32}, 330, 990, 27394378),
    ("sd2", "dylora", {"dim": 32, "conv_dim": 32}, 416, 1248, 47454624),
    ("sd2", "dylora", {"dim": 128}, 330, 990, 109576522),
    ("sd2", "dylora", {"dim": 128, "conv_dim": 128}, 416, 1248, 189817248),
    ("sd2", "dylora", {"dim": 16, "train_text_encoder": False}, 192, 576, 6914240),
    ("sd2", "dylora", {"dim": 16, "train_unet": False}, 138, 414, 6783114),
    ("sd2", "locon", {"dim": 4}, 420, 1260, 5961796),
    ("sd2", "locon", {"dim": 4, "conv_dim": 8}, 420, 1260, 8150756),
    ("sd2", "locon", {"dim": 32}, 420, 1260, 47691428),
    ("sd2", "locon", {"dim": 32, "conv_dim": 8}, 420, 1260, 34557668),
    ("sd2", "locon", {"dim": 128}, 420, 1260, 190764452),
    ("sd2", "locon", {"dim": 128, "conv_dim": 8}, 420, 1260, 125095652),
    ("sd2", "locon", {"dim": 16, "train_text_encoder": False}, 282, 846, 17062810),
    ("sd2", "locon", {"dim": 16, "train_unet": False}, 138, 414, 6783114),
    ("sd2", "locon", {"dim": 16, "conv_dim": 0}, 368, 1104, 15090032),
    ("sd2", "loha", {"dim": 4}, 420, 2100, 11923172),
    ("sd2", "loha", {"dim": 4, "conv_dim": 8}, 420, 2100, 16301092),
    ("sd2", "loha", {"dim": 32}, 420, 2100, 95382436),
    ("sd2", "loha", {"dim": 32, "conv_dim": 8}, 420, 2100, 69114916),
    ("sd2", "loha", {"dim": 128}, 420, 2100, 381528484),
    ("sd2", "loha", {"dim": 128, "conv_dim": 8}, 420, 2100, 250190884),
    ("sd2", "loha", {"dim": 16, "train_text_encoder": False}, 282, 1410, 34125338),
    ("sd2", "loha", {"dim": 16, "train_unet": False}, 138, 690, 13566090),
    ("sd2", "loha", {"dim": 16, "conv_dim": 0}, 368, 1840, 30179696),
    ("sd2", "lokr", {"dim": 4}, 420, 1680, 581828),
    ("sd2", "lokr", {"dim": 4, "conv_dim": 8}, 420, 1680, 656116),
    ("sd2", "lokr", {"dim": 32}, 420, 1277, 1496100),
    ("sd2", "lokr", {"dim": 32, "conv_dim": 8}, 420, 1329, 1051828),
    ("sd2", "lokr", {"dim": 128}, 420, 1260, 1485604),
    ("sd2", "lokr", {"dim": 128, "conv_dim": 8}, 420, 1312, 1041332),
    ("sd2", "lokr", {"dim": 16, "train_text_encoder": False}, 282, 1000, 801274),
    ("sd2", "lokr", {"dim": 16, "train_unet": False}, 138, 460, 353418),
    ("sd2", "lokr", {"dim": 16, "conv_dim": 0}, 368, 1275, 777768),
    ("sd2", "locon", {"dim": 8, "conv_dim": 4, "use_tucker": True}, 420, 1312, 7959812),
    ("sd2", "loha", {"dim": 8, "conv_dim": 4, "use_tucker": True}, 420, 2204, 15919204),
    ("sd2", "lokr", {"dim": 8, "conv_dim": 4, "use_tucker": True}, 420, 1732, 636068),
    ("sd2", "lokr", {"dim": 8, "lokr_factor": 4}, 420, 1680, 2988044),
    ("sd2", "lokr", {"dim": 8, "lokr_factor": 8}, 420, 1680, 1517668),
    ("sd2", "lokr", {"dim": 8, "lokr_factor": 16}, 420, 1680, 852804),
    ("sdxl", "lora", {"dim": 4}, 986, 2958, 14253018),
    ("sdxl", "lora", {"dim": 4, "conv_dim": 8}, 1052, 3156, 17334044),
    ("sdxl", "lora", {"dim": 32}, 986, 2958, 114017242),
    ("sdxl", "lora", {"dim": 32, "conv_dim": 8}, 1052, 3156, 118737948),
    ("sdxl", "lora", {"dim": 128}, 986, 2958, 456066010),
    ("sdxl", "lora", {"dim": 128, "conv_dim": 8}, 1052, 3156, 466408476),
    ("sdxl", "lora", {"dim": 16, "train_text_encoder": False}, 722, 2166, 42558162),
    ("sdxl", "lora", {"dim": 16, "train_unet": False}, 264, 792, 14450952),
    ("sdxl", "lora", {"dim": 16, "conv_dim": 0}, 1014, 3042, 57946102),
    ("sdxl", "dylora", {"dim": 4}, 914, 2742, 13589394),
    ("sdxl", "dylora", {"dim": 4, "conv_dim": 4}, 980, 2940, 15247060),
    ("sdxl", "dylora", {"dim": 32}, 914, 2742, 108708754),
    ("sdxl", "dylora", {"dim": 32, "conv_dim": 32}, 980, 2940, 121969620),
    ("sdxl", "dylora", {"dim": 128}, 914, 2742, 434832274),
    ("sdxl", "dylora", {"dim": 128, "conv_dim": 128}, 980, 2940, 487875540),
    ("sdxl", "dylora", {"dim": 16, "train_text_encoder": False}, 722, 2166, 42558162),
    ("sdxl", "dylora", {"dim": 16, "train_unet": False}, 192, 576, 11796672),
    ("sdxl", "locon", {"dim": 4}, 1052, 3156, 15910684),
    ("sdxl", "locon", {"dim": 4, "conv_dim": 8}, 1052, 3156, 17334044),
    ("sdxl", "locon", {"dim": 32}, 1052, 3156, 127278108),
    ("sdxl", "locon", {"dim": 32, "conv_dim": 8}, 1052, 3156, 118737948),
    ("sdxl", "locon", {"dim": 128}, 1052, 3156, 509109276),
    ("sdxl", "locon", {"dim": 128, "conv_dim": 8}, 1052, 3156, 466408476),
    ("sdxl", "locon", {"dim": 16, "train_text_encoder": False}, 788, 2364, 49188628),
    ("sdxl", "locon", {"dim": 16, "train_unet": False}, 264, 792, 14450952),
    ("sdxl", "locon", {"dim": 16, "conv_dim": 0}, 1014, 3042, 57946102),
    ("sdxl", "loha", {"dim": 4}, 1052, 5260, 31820316),
    ("sdxl", "loha", {"dim": 4, "conv_dim": 8}, 1052, 5260, 34667036),
    ("sdxl", "loha", {"dim": 32}, 1052, 5260, 254555164),
    ("sdxl", "loha", {"dim": 32, "conv_dim": 8}, 1052, 5260, 237474844),
    ("sdxl", "loha", {"dim": 128}, 1052, 5260, 1018217500),
    ("sdxl", "loha", {"dim": 128, "conv_dim": 8}, 1052, 5260, 932815900),
    ("sdxl", "loha", {"dim": 16, "train_text_encoder": False}, 788, 3940, 98376468),
    ("sdxl", "loha", {"dim": 16, "train_unet": False}, 264, 1320, 28901640),
    ("sdxl", "loha", {"dim": 16, "conv_dim": 0}, 1014, 5070, 115891190),
    ("sdxl", "lokr", {"dim": 4}, 1052, 4208, 1630588),
    ("sdxl", "lokr", {"dim": 4, "conv_dim": 8}, 1052, 4208, 1682204),
    ("sdxl", "lokr", {"dim": 32}, 1052, 3350, 3808652),
    ("sdxl", "lokr", {"dim": 32, "conv_dim": 8}, 1052, 3388, 3518476),
    ("sdxl", "lokr", {"dim": 128}, 1052, 3156, 3703692),
    ("sdxl", "lokr", {"dim": 128, "conv_dim": 8}, 1052, 3194, 3413516),
    ("sdxl", "lokr", {"dim": 16, "train_text_encoder": False}, 788, 3056, 2258852),
    ("sdxl", "lokr", {"dim": 16, "train_unet": False}, 264, 1008, 690440),
    ("sdxl", "lokr", {"dim": 16, "conv_dim": 0}, 1014, 3933, 2673390),
    ("sdxl", "locon", {"dim": 8, "conv_dim": 4, "use_tucker": True}, 1052, 3194, 29245308),
    ("sdxl", "loha", {"dim": 8, "conv_dim": 4, "use_tucker": True}, 1052, 5336, 58489564),
    ("sdxl", "lokr", {"dim": 8, "conv_dim": 4, "use_tucker": True}, 1052, 4246, 1967692),
    ("sdxl", "lokr", {"dim": 8, "lokr_factor": 4}, 1052, 4208, 7972700),
    ("sdxl", "lokr", {"dim": 8, "lokr_factor": 8}, 1052, 4208, 4045788),
    ("sdxl", "lokr", {"dim": 8, "lokr_factor": 16}, 1052, 4208, 2259068),
]

# Files written by real SD1.5 training runs (sd-scripts 48d368fa, fp32, 6 captioned images):
# (network_type, dim, conv_dim, length of the serialized __metadata__, file bytes, tensors).
REAL_FILES = [
    ("lora", 4, None, 3951, 9_552_296, 792),  # runs/lora/tiny_lora.safetensors
    ("lora", 4, None, 3946, 9_552_288, 792),  # runs/lora_plain/from_cli.safetensors
    ("dylora", 4, None, 4010, 9_552_352, 792),  # runs/dylora/tiny_dylora.safetensors (unit=2)
    ("locon", 4, 4, 4026, 19_735_016, 1062),  # runs/locon/tiny_locon.safetensors
    ("loha", 4, 4, 4021, 39_411_184, 1770),  # runs/loha/tiny_loha.safetensors
]


def _row_id(row: tuple[str, str, dict[str, Any], int, int, int]) -> str:
    family, network_type, opts = row[:3]
    return "-".join([family, network_type, *(f"{k}={v}" for k, v in opts.items())])


@pytest.mark.parametrize("row", MEASURED, ids=_row_id)
def test_predict_matches_measured_counts(row: tuple[str, str, dict[str, Any], int, int, int]) -> None:
    family, network_type, opts, modules, tensors, params = row
    got = predict(family, network_type, **opts)  # type: ignore[arg-type]
    assert (got.modules, got.tensors, got.params) == (modules, tensors, params)


@pytest.mark.parametrize("network_type, dim, conv_dim, metadata_bytes, file_bytes, tensors", REAL_FILES)
def test_bytes_match_real_training_output(
    network_type: str, dim: int, conv_dim: int | None, metadata_bytes: int, file_bytes: int, tensors: int
) -> None:
    got = predict("sd15", network_type, dim=dim, conv_dim=conv_dim, metadata_bytes=metadata_bytes)  # type: ignore[arg-type]
    assert (got.bytes, got.tensors) == (file_bytes, tensors)
    estimated = predict("sd15", network_type, dim=dim, conv_dim=conv_dim)  # type: ignore[arg-type]
    assert abs(estimated.bytes - file_bytes) < 1_000


def test_readme_lora_dim4() -> None:
    """Measured on a real run: LoRA dim 4 = 264 modules, 792 tensors, 9.5 MB fp32."""
    got = predict("sd15", "lora", dim=4)
    assert (got.modules, got.tensors) == (264, 792)
    assert 9_500_000 <= got.bytes < 9_600_000
    assert predict("sd15", "locon", dim=4, conv_dim=4).modules == 354


def test_save_dtype_halves_the_data_not_the_header() -> None:
    fp32 = predict("sdxl", "lora", dim=32, save_dtype="fp32")
    fp16 = predict("sdxl", "lora", dim=32, save_dtype="fp16")
    bf16 = predict("sdxl", "lora", dim=32, save_dtype="bf16")
    assert fp16.params == fp32.params == bf16.params
    # '"BF16"' is one byte longer than '"F16"' in each tensor's header entry; the header pads to 8
    assert 0 <= (bf16.bytes - fp16.bytes) - fp32.tensors < 8
    header = fp32.bytes - 4 * fp32.params
    assert 0 < header - (fp16.bytes - 2 * fp16.params) < 2 * fp32.tensors  # offsets have fewer digits


def test_safetensors_layout_by_hand() -> None:
    shapes = {"b.alpha": (), "a.w": (2, 3)}
    header = '{"a.w":{"dtype":"F16","shape":[2,3],"data_offsets":[0,12]},"b.alpha":{"dtype":"F16","shape":[],"data_offsets":[12,14]}}'
    assert safetensors_bytes(shapes, "fp16", 0) == 8 + -(-len(header) // 8) * 8 + 14
    meta = '{"ss_x":"1"}'
    with_meta = header[:1] + f'"__metadata__":{meta},' + header[1:]
    assert safetensors_bytes(shapes, "fp16", len(meta)) == 8 + -(-len(with_meta) // 8) * 8 + 14


def test_default_metadata_is_used_unless_given() -> None:
    a = predict("sd15", "lora", dim=8)
    b = predict("sd15", "lora", dim=8, metadata_bytes=DEFAULT_METADATA_BYTES + 80_000)
    assert b.bytes - a.bytes == 80_000


def test_conv_dim_follows_each_networks_own_default() -> None:
    # networks.lora: no conv_dim, no ResnetBlock2D/Down/Upsample2D; conv_dim=0 keeps their 1x1/linear
    plain = tensor_shapes("sd15", "lora", dim=4)
    assert not any("resnets" in k or "samplers" in k for k in plain)
    zero = tensor_shapes("sd15", "lora", dim=4, conv_dim=0)
    assert "lora_unet_down_blocks_0_resnets_0_time_emb_proj.alpha" in zero
    assert "lora_unet_down_blocks_0_resnets_0_conv1.alpha" not in zero
    # lycoris-lora 3.4.0: conv_dim defaults to dim
    assert tensor_shapes("sd15", "locon", dim=4) == tensor_shapes("sd15", "locon", dim=4, conv_dim=4)
    off = tensor_shapes("sd15", "locon", dim=4, conv_dim=0)
    assert "lora_unet_conv_in.alpha" not in off and "lora_unet_time_embedding_linear_1.alpha" in off


def test_sdxl_names_and_dylora_text_encoder_collision() -> None:
    lora = tensor_shapes("sdxl", "lora", dim=4)
    assert lora["lora_te1_text_model_encoder_layers_0_mlp_fc1.lora_down.weight"] == (4, 768)
    assert lora["lora_te2_text_model_encoder_layers_31_mlp_fc1.lora_down.weight"] == (4, 1280)
    assert lora["lora_unet_input_blocks_4_1_proj_in.lora_down.weight"] == (4, 640)
    # networks.dylora names both encoders lora_te_: bigG's layers 0-11 replace CLIP-L's in the file
    dy = tensor_shapes("sdxl", "dylora", dim=4, train_unet=False)
    assert len(dy) == 32 * 6 * 3
    assert dy["lora_te_text_model_encoder_layers_0_mlp_fc1.lora_down.weight"] == (4, 1280)


def test_unet_layer_counts() -> None:
    def count(family: str, role: str) -> int:
        return sum(layer.role == role for layer in base_layers(family))  # type: ignore[arg-type]

    assert [count(f, "attn") for f in ("sd15", "sd2", "sdxl")] == [192, 192, 722]
    assert [count(f, "text") for f in ("sd15", "sd2", "sdxl")] == [72, 138, 264]


@pytest.mark.parametrize(
    "dimension, factor, expected",
    # lycoris.functional.general.factorization, run on lycoris-lora 3.4.0
    [(128, -1, (8, 16)), (360, -1, (18, 20)), (320, 8, (8, 40)), (127, -1, (1, 127)), (768, 16, (16, 48))],
)
def test_factorize(dimension: int, factor: int, expected: tuple[int, int]) -> None:
    assert _factorize(dimension, factor) == expected


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"family": "kolors"}, "family: must be one of"),
        ({"family": "sd3"}, "variant: must be one of"),
        ({"family": "flux1", "network_type": "dylora"}, "networks.dylora does not wrap the flux1 transformer"),
        ({"family": "flux1", "network_type": "locon", "train_t5xxl": True}, "LyCORIS wraps every block"),
        ({"family": "sd3", "variant": "sd3-medium", "network_type": "lokr", "train_blocks": "single"}, "LyCORIS wraps"),
        ({"network_type": "oft"}, "network_type: must be one of"),
        ({"dim": 0}, "dim: must be at least 1"),
        ({"conv_dim": -1}, "conv_dim: must be at least 0"),
        ({"network_type": "dylora", "conv_dim": 8}, "conv_dim == dim"),
        ({"train_unet": False, "train_text_encoder": False}, "nothing to save"),
        ({"save_dtype": "fp8"}, "save_dtype: must be one of"),
    ],
)
def test_invalid_arguments(kwargs: dict[str, Any], message: str) -> None:
    args: dict[str, Any] = {"family": "sd15", "network_type": "lora", "dim": 4, **kwargs}
    with pytest.raises(ValueError, match=message):
        predict(args.pop("family"), args.pop("network_type"), **args)


# --- against the real code ----------------------------------------------------------------------

# Run with $ENGINE_PYTHON: sd-scripts' models on the meta device, networks created as train_network.py
# creates them (network_args split on "=", values as strings, dropout added), then apply_to.
PROBE = r"""
import contextlib, io, json, logging, os, sys, tempfile

sd_scripts = sys.argv[1]
sys.path[:0] = [sd_scripts, os.path.join(sd_scripts, "networks")]
logging.disable(logging.WARNING)

import torch
from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection

with contextlib.redirect_stdout(io.StringIO()):
    from library import model_util, original_unet, sdxl_original_unet
    import networks.dylora as dylora
    import networks.lora as lora
    import lycoris.kohya as lycoris_kohya
    from lycoris.functional.general import factorization

# text encoder configs as model_util / sdxl_model_util build them
COMMON = dict(vocab_size=49408, max_position_embeddings=77, layer_norm_eps=1e-05)
CLIP_L = dict(hidden_size=768, intermediate_size=3072, num_hidden_layers=12, num_attention_heads=12,
              hidden_act="quick_gelu")
OPENCLIP_H = dict(hidden_size=1024, intermediate_size=4096, num_hidden_layers=23, num_attention_heads=16,
                  hidden_act="gelu")
BIGG = dict(hidden_size=1280, intermediate_size=5120, num_hidden_layers=32, num_attention_heads=20,
            hidden_act="gelu", projection_dim=1280)

# create_network extends these class lists in place (`target_modules += ...`); a training process
# creates one network, so every case starts from the lists as imported.
PRISTINE = {
    (cls, attr): list(getattr(cls, attr))
    for cls in (lora.LoRANetwork, dylora.DyLoRANetwork, lycoris_kohya.LycorisNetworkKohya)
    for attr in ("UNET_TARGET_REPLACE_MODULE", "TEXT_ENCODER_TARGET_REPLACE_MODULE")
}


def build(family, linear_proj):
    with torch.device("meta"):
        if family == "sdxl":
            return ([CLIPTextModel(CLIPTextConfig(**COMMON, **CLIP_L)),
                     CLIPTextModelWithProjection(CLIPTextConfig(**COMMON, **BIGG))],
                    sdxl_original_unet.SdxlUNet2DConditionModel())
        v2 = family == "sd2"
        unet = original_unet.UNet2DConditionModel(**model_util.create_unet_diffusers_config(v2, linear_proj))
        return CLIPTextModel(CLIPTextConfig(**COMMON, **(OPENCLIP_H if v2 else CLIP_L))), unet


def network_args(case):
    t, o, args = case["network_type"], case["opts"], []
    if t in ("locon", "loha", "lokr"):
        args.append("algo=" + t)
    if o.get("conv_dim") is not None:
        args += ["conv_dim=%d" % o["conv_dim"], "conv_alpha=1"]
    if o.get("lokr_factor", -1) != -1:
        args.append("factor=%d" % o["lokr_factor"])
    if o.get("use_tucker"):
        args.append("use_tucker=True")
    return args


def run_case(case):
    o = case["opts"]
    for (cls, attr), value in PRISTINE.items():
        setattr(cls, attr, list(value))
    te, unet = build(case["family"], case.get("linear_proj", True))
    module = {"lora": lora, "dylora": dylora}.get(case["network_type"], lycoris_kohya)
    kwargs = dict(a.split("=", 1) for a in network_args(case))
    kwargs.setdefault("dropout", None)
    # LoHa and LoKr call .item() on shape tensors while building: those go to the CPU
    device = "cpu" if case["network_type"] in ("loha", "lokr") else "meta"
    with contextlib.redirect_stdout(io.StringIO()), torch.device(device):
        net = module.create_network(1.0, o["dim"], 1.0, None, te, unet, neuron_dropout=None, **kwargs)
        net.apply_to(te, unet, o.get("train_text_encoder", True), o.get("train_unet", True))
    sd = net.state_dict()
    out = {"network_args": network_args(case), "shapes": {k: list(v.shape) for k, v in sd.items()},
           "modules": len({k.split(".")[0] for k in sd}), "tensors": len(sd),
           "params": sum(v.numel() for v in sd.values())}
    if case.get("save_dtype"):
        from safetensors import safe_open

        net.to_empty(device="cpu")
        dtype = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}[case["save_dtype"]]
        with tempfile.TemporaryDirectory() as d:
            path = os.path.join(d, "net.safetensors")
            with contextlib.redirect_stdout(io.StringIO()):
                net.save_weights(path, dtype, dict(case.get("metadata", {})))
            with safe_open(path, "pt") as f:
                out["file_metadata"] = f.metadata()
            out["file_bytes"] = os.path.getsize(path)
    return out


request = json.load(sys.stdin)
json.dump({"cases": [run_case(c) for c in request["cases"]],
           "factorization": [[d, f, *factorization(d, f)] for d, f in request["factorization"]]}, sys.stdout)
"""

# Saved through the network's own save_weights: (family, network_type, options, save dtype).
SAVE_CASES = [
    ("sd15", "lora", {"dim": 4}, "fp32"),
    ("sd15", "loha", {"dim": 4, "conv_dim": 4}, "fp16"),
    ("sd2", "lokr", {"dim": 8, "lokr_factor": 8}, "bf16"),
    ("sd2", "locon", {"dim": 16, "conv_dim": 8, "use_tucker": True}, "fp16"),
    ("sdxl", "dylora", {"dim": 4, "conv_dim": 4}, "fp16"),
    ("sdxl", "lora", {"dim": 8, "conv_dim": 4, "train_text_encoder": False}, "bf16"),
]
# ss_* style metadata, with a JSON value inside a string as sd-scripts writes ss_tag_frequency
SAVE_METADATA = {"ss_network_dim": "4", "ss_tag_frequency": json.dumps({"10_x": {"a cat": 3, "dog": 1}})}
# an SD2 single-file checkpoint gives proj_in/out as 1x1 convs: same counts, other shapes
SD2_SINGLE_FILE = [("lora", {"dim": 4}), ("loha", {"dim": 8}), ("lokr", {"dim": 4}), ("locon", {"dim": 4})]
FACTORIZATION = [(d, f) for d in range(1, 2561) for f in (-1, 1, 2, 3, 4, 8, 16, 32)]


@pytest.fixture(scope="module")  # one probe run for the module (not conftest's per-test `engine`)
def real_networks(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    python, sd_scripts = os.environ.get("ENGINE_PYTHON"), os.environ.get("ARTLAB_KOHYA_DIR")
    if not python or not sd_scripts:
        pytest.skip("needs the real engine: set ENGINE_PYTHON and ARTLAB_KOHYA_DIR (source its env.sh)")
    cases: list[dict[str, Any]] = [{"family": f, "network_type": t, "opts": o} for f, t, o, *_ in MEASURED]
    cases += [
        {"family": f, "network_type": t, "opts": o, "save_dtype": d, "metadata": SAVE_METADATA}
        for f, t, o, d in SAVE_CASES
    ]
    cases += [{"family": "sd2", "network_type": t, "opts": o, "linear_proj": False} for t, o in SD2_SINGLE_FILE]
    probe = tmp_path_factory.mktemp("netsize") / "probe.py"
    probe.write_text(PROBE)
    request = json.dumps({"cases": cases, "factorization": FACTORIZATION})
    proc = subprocess.run([python, str(probe), sd_scripts], input=request, capture_output=True, text=True, timeout=1800)
    assert proc.returncode == 0, proc.stderr[-4000:]
    out = json.loads(proc.stdout)
    n, s = len(MEASURED), len(SAVE_CASES)
    return {
        "measured": out["cases"][:n],
        "saved": out["cases"][n : n + s],
        "sd2_single_file": out["cases"][n + s :],
        "factorization": out["factorization"],
    }


@pytest.mark.engine
def test_engine_tensor_names_and_shapes(real_networks: dict[str, Any]) -> None:
    """Every key and shape of the real state_dict, and the recorded counts, for every MEASURED row."""
    stale = []
    for row, real in zip(MEASURED, real_networks["measured"], strict=True):
        family, network_type, opts, *recorded = row
        shapes = {k: tuple(v) for k, v in real["shapes"].items()}
        assert tensor_shapes(family, network_type, **opts) == shapes, (_row_id(row), real["network_args"])  # type: ignore[arg-type]
        if [real["modules"], real["tensors"], real["params"]] != recorded:
            stale.append((family, network_type, opts, real["modules"], real["tensors"], real["params"]))
    assert not stale, "MEASURED is out of date; the real numbers:\n" + "\n".join(map(repr, stale))


@pytest.mark.engine
def test_engine_saved_file_bytes(real_networks: dict[str, Any]) -> None:
    for (family, network_type, opts, dtype), real in zip(SAVE_CASES, real_networks["saved"], strict=True):
        metadata_bytes = len(json.dumps(real["file_metadata"], separators=(",", ":")))
        got = predict(family, network_type, save_dtype=dtype, metadata_bytes=metadata_bytes, **opts)  # type: ignore[arg-type]
        assert got.bytes == real["file_bytes"], (family, network_type, opts, dtype)


@pytest.mark.engine
def test_engine_sd2_single_file_counts(real_networks: dict[str, Any]) -> None:
    for (network_type, opts), real in zip(SD2_SINGLE_FILE, real_networks["sd2_single_file"], strict=True):
        got = predict("sd2", network_type, **opts)  # type: ignore[arg-type]
        assert (got.modules, got.tensors, got.params) == (real["modules"], real["tensors"], real["params"])


@pytest.mark.engine
def test_engine_factorization(real_networks: dict[str, Any]) -> None:
    wrong = [(d, f, m, n) for d, f, m, n in real_networks["factorization"] if _factorize(d, f) != (m, n)]
    assert not wrong, wrong[:10]


# --- FLUX.1 and SD3 (networks.lora_flux, networks.lora_sd3) ---------------------------------------

# (family, predict() options, modules, tensors, params), measured by test_engine_dit_networks below.
DIT_MEASURED: list[tuple[str, dict[str, Any], int, int, int]] = [
    ("flux1", {"dim": 4}, 376, 1128, 19808632),
    ("flux1", {"dim": 4, "train_t5xxl": True, "train_blocks": "single"}, 354, 1062, 16343394),
    ("sd3", {"dim": 4, "variant": "sd3-medium"}, 501, 1503, 10297845),
    ("sd3", {"dim": 4, "variant": "sd3.5-medium"}, 527, 1581, 11016719),
    ("sd3", {"dim": 4, "variant": "sd3.5-large"}, 641, 1923, 20462209),
    # block counts read from a file's header (the tiny models of tests/test_engine_families.py)
    ("flux1", {"dim": 4, "blocks": (1, 1)}, 85, 255, 1450069),
    ("sd3", {"dim": 4, "variant": "sd3.5-large", "blocks": (2, 0)}, 281, 843, 3651865),
]


@pytest.mark.parametrize("row", DIT_MEASURED, ids=lambda r: f"{r[0]}-{'-'.join(f'{k}={v}' for k, v in r[1].items())}")
def test_dit_predict_matches_measured_counts(row: tuple[str, dict[str, Any], int, int, int]) -> None:
    family, opts, modules, tensors, params = row
    got = predict(family, "lora", **opts)  # type: ignore[arg-type]
    assert (got.modules, got.tensors, got.params) == (modules, tensors, params)


# Run with $ENGINE_PYTHON: FLUX.1 (flux_models.configs["dev"]) and SD3 (sd3_models.create_sd3_mmdit, with
# the parameters sd3_utils.analyze_state_dict_state reads for each variant, or the block counts given)
# on the meta device, CLIP-L, CLIP-G and T5-XXL with the configurations sd-scripts loads, the network created and applied as
# flux_train_network.py / sd3_train_network.py do.
DIT_PROBE = r"""
import contextlib, io, json, logging, os, sys
sd_scripts = sys.argv[1]
sys.path[:0] = [sd_scripts, os.path.join(sd_scripts, "networks")]
logging.disable(logging.WARNING)
import dataclasses
import torch
from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection, T5Config, T5EncoderModel
with contextlib.redirect_stdout(io.StringIO()):
    from library import flux_models, sd3_models
    import networks.lora_flux as lora_flux
    import networks.lora_sd3 as lora_sd3

CLIP = dict(vocab_size=49408, max_position_embeddings=77)
SD3 = {
    "sd3-medium": (24, 36864, 192, None, [], 1536, "medium"),
    "sd3.5-medium": (24, 147456, 384, "rms", list(range(13)), 1536, "5-medium"),
    "sd3.5-large": (38, 36864, 192, "rms", [], 2432, "5-large"),
}


def t5():
    return T5EncoderModel(T5Config(d_ff=10240, d_kv=64, d_model=4096, num_heads=64, num_layers=24, vocab_size=32128,
                                   feed_forward_proj="gated-gelu", is_gated_act=True, dense_act_fn="gelu_new"))


def run(case):
    family, o = case["family"], case["opts"]
    kwargs = {"train_t5xxl": "True"} if o.get("train_t5xxl") else {}
    if o.get("train_blocks"):
        kwargs["train_blocks"] = o["train_blocks"]
    with torch.device("meta"), contextlib.redirect_stdout(io.StringIO()):
        clip_l = CLIPTextModel(CLIPTextConfig(**CLIP, hidden_size=768, intermediate_size=3072, num_hidden_layers=12,
                                              num_attention_heads=12, hidden_act="quick_gelu"))
        blocks = o.get("blocks")
        if family == "flux1":
            params = flux_models.configs["dev"].params
            if blocks:
                params = dataclasses.replace(params, depth=blocks[0], depth_single_blocks=blocks[1])
            te, model, module = [clip_l, t5()], flux_models.Flux(params), lora_flux
        else:
            depth, patches, size, qk, attn2, width, kind = SD3[o["variant"]]
            if blocks:  # sd3_utils reads the depth from the width (64 per block)
                depth, attn2, width = blocks[0], list(range(blocks[1])), 64 * blocks[0]
            model = sd3_models.create_sd3_mmdit(sd3_models.SD3Params(2, depth, patches, size, 2048, qk, attn2, 4096,
                                                                     width, kind))
            clip_g = CLIPTextModelWithProjection(CLIPTextConfig(**CLIP, hidden_size=1280, intermediate_size=5120,
                                                                num_hidden_layers=32, num_attention_heads=20,
                                                                hidden_act="gelu", projection_dim=1280))
            te, module = [clip_l, clip_g, t5()], lora_sd3
        net = module.create_network(1.0, o["dim"], 1.0, None, te, model, neuron_dropout=None, **kwargs)
        net.apply_to(te, model, True, True)
        sd = net.state_dict()
    return [len({k.split(".")[0] for k in sd}), len(sd), sum(v.numel() for v in sd.values())]


cases = json.load(sys.stdin)
json.dump([run(c) for c in cases], sys.stdout)
"""


@pytest.mark.engine
def test_engine_dit_networks(tmp_path: Any) -> None:
    python, sd_scripts = os.environ.get("ENGINE_PYTHON"), os.environ.get("ARTLAB_KOHYA_DIR")
    if not python or not sd_scripts:
        pytest.skip("needs the real engine: set ENGINE_PYTHON and ARTLAB_KOHYA_DIR (source its env.sh)")
    probe = tmp_path / "dit_probe.py"
    probe.write_text(DIT_PROBE)
    cases = [{"family": f, "opts": o} for f, o, *_ in DIT_MEASURED]
    result = subprocess.run(
        [python, str(probe), sd_scripts], input=json.dumps(cases), capture_output=True, text=True, timeout=1200
    )
    assert result.returncode == 0, result.stderr[-3000:]
    real = json.loads(result.stdout)
    stale = [(row, got) for row, got in zip(DIT_MEASURED, real, strict=True) if list(row[2:]) != got]
    assert not stale, f"re-measured (modules, tensors, params): {stale}"
    for (family, opts, *_), (modules, tensors, params) in zip(DIT_MEASURED, real, strict=True):
        got = predict(family, "lora", **opts)  # type: ignore[arg-type]
        assert (got.modules, got.tensors, got.params) == (modules, tensors, params)
