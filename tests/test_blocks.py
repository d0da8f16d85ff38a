"""spec/blocks.py and the block-weight fields: the WebUI's named vectors (hako-mikan/sd-webui-lora-block-weight's
presets), their 26-value forms, sd-scripts' 25 SD blocks, the lengths per family, the rendered network_args."""

from __future__ import annotations

from pathlib import Path

import pytest

from artlab_kohya.build.render import RenderError, RenderInputs, render
from artlab_kohya.spec import SpecError, load_spec
from artlab_kohya.spec.blocks import BLOCK_NAMES, FULL26, LORA17, NAMED17, SD_BLOCKS, named26, unet_vector
from artlab_kohya.trainer.surface import bundled_surface

# The extension's README and DEF_WEIGHT_PRESET, as published (NOT was later renamed NONE).
EXTENSION = """\
NOT:0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0
ALL:1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1
INS:1,1,1,1,0,0,0,0,0,0,0,0,0,0,0,0,0
IND:1,0,0,0,1,1,1,0,0,0,0,0,0,0,0,0,0
INALL:1,1,1,1,1,1,1,0,0,0,0,0,0,0,0,0,0
MIDD:1,0,0,0,1,1,1,1,1,1,1,1,0,0,0,0,0
OUTD:1,0,0,0,0,0,0,0,1,1,1,1,0,0,0,0,0
OUTS:1,0,0,0,0,0,0,0,0,0,0,0,1,1,1,1,1
OUTALL:1,0,0,0,0,0,0,0,1,1,1,1,1,1,1,1,1
"""


def test_named_vectors_are_the_extensions():
    for line in EXTENSION.splitlines():
        name, values = line.split(":")
        assert NAMED17[name] == tuple(float(v) for v in values.split(",")), name  # type: ignore[index]
    assert set(NAMED17) == set(BLOCK_NAMES) and len(LORA17) == 17 and len(FULL26) == 26 and len(SD_BLOCKS) == 25
    noface = dict(zip(LORA17, NAMED17["NOFACE"], strict=True))
    assert [b for b, v in noface.items() if v == 0] == ["OUT03", "OUT04", "OUT05"]


def test_26_value_forms_keep_the_17_and_fill_by_group():
    for name in BLOCK_NAMES:
        full = dict(zip(FULL26, named26(name), strict=True))
        assert tuple(full[b] for b in LORA17) == NAMED17[name]
    outd = dict(zip(FULL26, named26("OUTD"), strict=True))
    assert [b for b, v in outd.items() if v] == ["BASE", "OUT00", "OUT01", "OUT02", "OUT03", "OUT04", "OUT05", "OUT06"]
    ins = dict(zip(SD_BLOCKS, unet_vector("INS"), strict=True))
    assert [b for b, v in ins.items() if v] == ["IN00", "IN01", "IN02", "IN03", "IN04"]


def spec_text(network: str, family: str = "sd15") -> str:
    return (
        f"model: {{source: /m.safetensors, family: {family}}}\ndataset:\n  resolution: 1024\n"
        f"  subsets: [{{path: /img/10_a}}]\nnetwork:\n  type: lora\n  dim: 16\n  alpha: 8\n{network}"
    )


def network_args(write_spec, network: str, family: str = "sd15") -> dict[str, str]:
    spec = load_spec(write_spec(spec_text(network, family))).spec
    inputs = RenderInputs(Path("/m.safetensors"), family, (10,), ("a",), Path("/o"), Path("/o"), None)
    script = "sdxl_train_network.py" if family == "sdxl" else "train_network.py"
    config = render(spec, inputs, bundled_surface(script)).config
    return dict(a.split("=", 1) for a in config["network_args"])


def test_named_vectors_render_as_sd_scripts_reads_them(write_spec):
    args = network_args(
        write_spec,
        "  conv_dim: 4\n  block_dims: MIDD\n  block_alphas: MIDD\n  conv_block_dims: OUTALL\n"
        "  down_lr_weight: INS\n  mid_lr_weight: 0.5\n  up_lr_weight: cosine+0.1\n",
    )
    dims = [int(v) for v in args["block_dims"].split(",")]
    assert len(dims) == 25 and dict(zip(SD_BLOCKS, dims, strict=True))["MID"] == 16
    assert dims[:5] == [0, 0, 0, 0, 0] and dims[5:13] == [16] * 8 and dims[13:20] == [16] * 7 and dims[20:] == [0] * 5
    assert args["block_alphas"].split(",")[12] == "8"
    assert args["conv_block_dims"].split(",")[13:] == ["4"] * 12
    assert args["down_lr_weight"] == "1,1,1,1,1,0,0,0,0,0,0,0"
    assert args["mid_lr_weight"] == "0.5" and args["up_lr_weight"] == "cosine+0.1"


def test_lists_are_checked_against_the_family(write_spec):
    sd = "  block_dims: [" + ",".join(["4"] * 25) + "]\n  down_lr_weight: [" + ",".join(["1"] * 12) + "]\n"
    assert network_args(write_spec, sd)["block_dims"] == ",".join(["4"] * 25)
    with pytest.raises(SpecError) as info:
        load_spec(write_spec(spec_text(sd, "sdxl")))
    assert [str(i).split(": ", 1)[1] for i in info.value.issues] == [
        "network.block_dims: needs 23 values for sdxl (got 25)",
        "network.down_lr_weight: needs 9 values for sdxl (got 12)",
    ]
    xl = "  block_dims: [" + ",".join(["4"] * 23) + "]\n  mid_lr_weight: [1, 0.5, 1]\n"
    args = network_args(write_spec, xl, "sdxl")
    assert args["mid_lr_weight"] == "1,0.5,1" and len(args["block_dims"].split(",")) == 23
    with pytest.raises(SpecError, match="named vectors \\(OUTALL\\) are SD1.x/SD2.x's blocks"):
        load_spec(write_spec(spec_text("  block_dims: OUTALL\n", "sdxl")))
    auto = spec_text("  block_dims: OUTALL\n").replace("family: sd15", "family: auto")
    spec = load_spec(write_spec(auto)).spec  # an SDXL file behind `auto` is caught at render
    inputs = RenderInputs(Path("/m.safetensors"), "sdxl", (10,), ("a",), Path("/o"), Path("/o"), None)
    with pytest.raises(RenderError, match="SD1.x/SD2.x's blocks"):
        render(spec, inputs, bundled_surface("sdxl_train_network.py"))


def test_names_and_their_mistakes(write_spec):
    with pytest.raises(SpecError, match="did you mean 'OUTALL'"):
        load_spec(write_spec(spec_text("  block_dims: OUTAL\n")))
    with pytest.raises(SpecError, match="one of sd-scripts' cosine, sine, linear, reverse_linear, zeros"):
        load_spec(write_spec(spec_text("  down_lr_weight: cosin\n")))
    with pytest.raises(SpecError, match="conv_block_dims: a named vector is a share of network.conv_dim"):
        load_spec(write_spec(spec_text("  block_dims: ALL\n  conv_block_dims: ALL\n")))
    with pytest.raises(SpecError, match="reads it only with block_dims or a learning-rate weight"):
        load_spec(write_spec(spec_text("  conv_dim: 4\n  conv_block_dims: ALL\n")))
