"""FLUX.1, SD3 and SDXL v-prediction: detection from synthetic safetensors headers, the family's own
arguments in the rendered TOML, and what their scripts would refuse, located at the spec field."""

from __future__ import annotations

import json
import struct
from pathlib import Path

import pytest

from artlab_kohya.build.family_args import family_problems
from artlab_kohya.build.inputs import ModelChoice, render_inputs
from artlab_kohya.build.plan import make_plan, plan_family, print_plan
from artlab_kohya.build.render import render
from artlab_kohya.build.tomlio import tomllib
from artlab_kohya.models.checkpoint import (
    detect_family,
    dit_blocks,
    is_flux_schnell,
    read_safetensors_header,
    sd3_variant,
)
from artlab_kohya.models.netsize import predict
from artlab_kohya.spec import load_spec
from artlab_kohya.spec.families import ALIASES, FAMILY_INFO, resolve_family
from artlab_kohya.trainer.surface import bundled_surface


def header_file(path: Path, keys: list[str], metadata: dict[str, str] | None = None) -> Path:
    """A .safetensors file with these tensor names (empty tensors: only the header matters here)."""
    header: dict = {k: {"dtype": "F16", "shape": [0], "data_offsets": [0, 0]} for k in keys}
    if metadata is not None:
        header["__metadata__"] = metadata
    raw = json.dumps(header).encode()
    path.write_bytes(struct.pack("<Q", len(raw)) + raw)
    return path


def flux_keys(prefix: str = "", schnell: bool = False, diffusers: bool = False) -> list[str]:
    if diffusers:
        keys = ["transformer_blocks.0.attn.add_k_proj.weight", "single_transformer_blocks.0.attn.to_k.weight"]
        return keys + ([] if schnell else ["time_text_embed.guidance_embedder.linear_1.bias"])
    keys = [f"double_blocks.{i}.img_attn.qkv.weight" for i in range(19)]
    keys += [f"single_blocks.{i}.linear1.weight" for i in range(38)] + ["img_in.weight"]
    keys += [] if schnell else ["guidance_in.in_layer.bias"]
    return [prefix + k for k in keys]


def sd3_keys(depth: int, qk_norm: bool, attn2: int) -> list[str]:
    p = "model.diffusion_model."
    keys = [p + "x_embedder.proj.weight", p + "pos_embed", "first_stage_model.decoder.conv_in.weight"]
    for i in range(depth):
        keys += [f"{p}joint_blocks.{i}.x_block.attn.qkv.weight", f"{p}joint_blocks.{i}.context_block.attn.qkv.weight"]
        if qk_norm:
            keys += [f"{p}joint_blocks.{i}.context_block.attn.ln_k.weight"]
        if i < attn2:
            keys += [f"{p}joint_blocks.{i}.x_block.attn2.ln_k.weight"]
    return keys


TINY_FLUX = [k for k in flux_keys(schnell=True) if ".0." in k or "blocks." not in k]  # 1 double, 1 single block


# --- what the header tells ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "keys, schnell",
    [
        (flux_keys(), False),
        (flux_keys("model.diffusion_model."), False),
        (flux_keys(schnell=True), True),
        (flux_keys(diffusers=True), False),
        (flux_keys(diffusers=True, schnell=True), True),
    ],
)
def test_flux_is_told_by_its_blocks(tmp_path: Path, keys: list[str], schnell: bool) -> None:
    path = header_file(tmp_path / "flux.safetensors", keys)
    assert detect_family(path) == "flux1"
    assert is_flux_schnell(read_safetensors_header(path)) is schnell


@pytest.mark.parametrize(
    "depth, qk_norm, attn2, variant",
    [(24, False, 0, "sd3-medium"), (24, True, 13, "sd3.5-medium"), (38, True, 0, "sd3.5-large")],
)
def test_sd3_and_its_variant_are_told_by_the_joint_blocks(tmp_path, depth, qk_norm, attn2, variant) -> None:
    path = header_file(tmp_path / "sd3.safetensors", sd3_keys(depth, qk_norm, attn2))
    assert detect_family(path) == "sd3"
    assert sd3_variant(read_safetensors_header(path)) == variant


def test_a_flux_file_is_not_an_sd3_variant(tmp_path: Path) -> None:
    assert sd3_variant(read_safetensors_header(header_file(tmp_path / "f.safetensors", flux_keys()))) is None


SDXL_KEYS = [
    "model.diffusion_model.input_blocks.4.1.transformer_blocks.0.attn2.to_k.weight",
    "model.diffusion_model.label_emb.0.0.weight",
    "conditioner.embedders.1.model.ln_final.weight",
]


@pytest.mark.parametrize(
    "keys, blocks",
    [
        (flux_keys(), (19, 38)),
        (flux_keys("model.diffusion_model.", schnell=True), (19, 38)),
        (flux_keys(diffusers=True), (1, 1)),
        ([k for k in flux_keys() if ".0." in k or "blocks." not in k], (1, 1)),
        (sd3_keys(24, True, 13), (24, 13)),
        (sd3_keys(2, True, 0), (2, 0)),
        (SDXL_KEYS, None),
    ],
)
def test_the_transformer_block_counts_come_from_the_header(tmp_path, keys, blocks) -> None:
    # what sd-scripts builds the model with; a tiny or pruned FLUX.1/SD3 gets a LoRA of its own size
    assert dit_blocks(read_safetensors_header(header_file(tmp_path / "m.safetensors", keys))) == blocks


def test_sdxl_v_prediction_comes_from_the_metadata_or_the_spec() -> None:
    # the weights of an eps and a v SDXL are alike: never call a file that says "v" an eps model
    assert resolve_family("auto", detected="sdxl", prediction="v") == "sdxl-v"
    assert resolve_family("sdxl", prediction="v") == "sdxl-v"
    assert resolve_family("auto", detected="sdxl") == "sdxl"
    assert resolve_family("auto", detected="sdxl", v_parameterization=True) == "sdxl-v"
    assert resolve_family("auto", detected="sd2", prediction="v") == "sd2-v"
    assert resolve_family("auto", detected="flux1", prediction="v") == "flux1"
    assert FAMILY_INFO["sdxl-v"].script == "sdxl_train_network.py" and FAMILY_INFO["sdxl-v"].v_prediction


# --- specs on disk --------------------------------------------------------------------------------


def project(
    tmp_path: Path, images, model_keys: list[str], body: str, metadata: dict | None = None, training: str = ""
) -> Path:
    images(tmp_path / "img", [(512, 512)] * 12)
    header_file(tmp_path / "base.safetensors", model_keys, metadata)
    for name in ("ae", "clip_l", "clip_g", "t5xxl"):
        header_file(tmp_path / f"{name}.safetensors", ["w"])
    spec = tmp_path / "spec.yaml"
    spec.write_text(
        "model:\n  source: base.safetensors\n"
        + body
        + "dataset:\n  resolution: 512\n  batch_size: 2\n  buckets:\n    enabled: false\n"
        "  subsets:\n    - path: img\n      repeats: 5\n      class_tokens: sks\n"
        "training:\n  epochs: 4\n" + training
    )
    return spec


def rendered(spec_path: Path) -> dict:
    loaded = load_spec(spec_path)
    family = plan_family(loaded.spec)
    assert family is not None
    inputs = render_inputs(loaded, ModelChoice(loaded.spec.model.source.path, family), spec_path.parent / "out",
                           spec_path.parent / "out")  # fmt: skip
    out = render(loaded.spec, inputs, bundled_surface(FAMILY_INFO[family].script))
    return tomllib.loads(out.config_toml)


FLUX_BODY = (
    "  ae: ae.safetensors\n  clip_l: clip_l.safetensors\n  t5xxl: t5xxl.safetensors\n  fp8_base: true\n"
    "network:\n  type: lora\n  dim: 16\n  alpha: 16\n  train: unet\n"
    "flux:\n  train_blocks: single\n  t5xxl_max_token_length: 256\n  apply_t5_attn_mask: true\n"
)


def test_flux_renders_its_own_arguments(tmp_path, images) -> None:
    spec = project(tmp_path, images, flux_keys(), FLUX_BODY, training="  blocks_to_swap: 18\n")
    config = rendered(spec)
    model, net = config["family_model_arguments"], config["network_arguments"]
    assert model == {
        "ae": str(tmp_path / "ae.safetensors"),
        "clip_l": str(tmp_path / "clip_l.safetensors"),
        "t5xxl": str(tmp_path / "t5xxl.safetensors"),
        "fp8_base": True,
        "blocks_to_swap": 18,
    }
    assert net["network_module"] == "networks.lora_flux" and net["network_args"] == ["train_blocks=single"]
    assert net["network_train_unet_only"] is True
    assert config["flux_arguments"] == {
        "guidance_scale": 1.0,
        "timestep_sampling": "shift",
        "discrete_flow_shift": 3.1582,
        "model_prediction_type": "raw",
        "t5xxl_max_token_length": 256,
        "apply_t5_attn_mask": True,
    }
    assert "v2" not in config["model_arguments"] and "v_parameterization" not in config["model_arguments"]


def test_sd3_renders_its_own_arguments_and_sizes_its_variant(tmp_path, images) -> None:
    body = (
        "  clip_l: clip_l.safetensors\n  clip_g: clip_g.safetensors\n  t5xxl: t5xxl.safetensors\n"
        "network:\n  type: lora\n  dim: 4\n  alpha: 1\n"
        "sd3:\n  training_shift: 3.0\n  train_t5xxl: true\n"
    )
    spec = project(tmp_path, images, sd3_keys(38, True, 0), body)
    config = rendered(spec)
    assert config["network_arguments"]["network_module"] == "networks.lora_sd3"
    assert config["network_arguments"]["network_args"] == ["train_t5xxl=True"]
    assert config["family_model_arguments"]["clip_g"] == str(tmp_path / "clip_g.safetensors")
    assert config["sd3_arguments"]["training_shift"] == 3.0
    plan = make_plan(load_spec(spec))
    assert plan.family == "sd3"
    assert plan.lora_params == predict("sd3", "lora", dim=4, variant="sd3.5-large", train_t5xxl=True).params


def test_a_tiny_transformers_lora_is_sized_from_its_header(tmp_path, images) -> None:
    # the tiny FLUX.1 schnell of tests/test_engine_families.py (1 double, 1 single block): its LoRA was
    # 39 tensors, 786,445 parameters (fp16), as the real run saved it
    spec = project(tmp_path, images, TINY_FLUX, FLUX_BODY.replace("train_blocks: single", "train_blocks: all"))
    plan = make_plan(load_spec(spec))
    assert plan.lora_params == predict("flux1", "lora", dim=16, train_text_encoder=False, blocks=(1, 1)).params
    assert predict("flux1", "lora", dim=4, train_text_encoder=False, blocks=(1, 1)).params == 786445


@pytest.mark.parametrize("keys", [TINY_FLUX, sd3_keys(2, True, 0)])
def test_locon_on_a_transformer_is_sized_as_its_lora(tmp_path, images, keys) -> None:
    # the tiny runs' LoRA files: lycoris.kohya's locon saved the tensors networks.lora_flux/lora_sd3 save
    files = "  ae: ae.safetensors\n" if keys is TINY_FLUX else "  clip_g: clip_g.safetensors\n"
    body = files + "  clip_l: clip_l.safetensors\n  t5xxl: t5xxl.safetensors\n" + NET.format(type="{type}")
    lora = make_plan(load_spec(project(tmp_path / "lora", images, keys, body.format(type="lora"))))
    locon = make_plan(load_spec(project(tmp_path / "locon", images, keys, body.format(type="locon"))))
    assert locon.lora_params == lora.lora_params and lora.lora_params is not None


@pytest.mark.parametrize("kind", ["loha", "lokr"])
def test_loha_and_lokr_on_a_transformer_are_sized_with_their_own_tensors(tmp_path, images, kind) -> None:
    # tests/test_engine_families.py trains both on the tiny FLUX.1 and SD3: the files hold these tensors
    spec = project(tmp_path, images, TINY_FLUX, FLUX_BODY.replace("train_blocks: single", "train_blocks: all"))
    spec.write_text(spec.read_text().replace("type: lora", f"type: {kind}"))
    plan = make_plan(load_spec(spec))
    expected = predict("flux1", kind, dim=16, train_text_encoder=False, blocks=(1, 1))
    assert plan.lora_params == expected.params != predict("flux1", "lora", dim=16, train_text_encoder=False,
                                                            blocks=(1, 1)).params  # fmt: skip


def test_plan_says_why_a_lycoris_network_on_a_transformer_is_not_sized(tmp_path, images, capsys) -> None:
    spec = project(tmp_path, images, flux_keys(), FLUX_BODY.replace("type: lora", "type: ia3"))
    print_plan(make_plan(load_spec(spec)))
    out = " ".join(capsys.readouterr().out.split())
    assert "size not predicted for this network on flux1" in out and "until the model family is known" not in out


def test_a_v_prediction_sdxl_file_renders_v_parameterization(tmp_path, images) -> None:
    body = "network:\n  type: lora\n  dim: 4\n  alpha: 1\n"
    training = "  zero_terminal_snr: true\n  scale_v_pred_loss_like_noise_pred: true\n"
    spec = project(tmp_path, images, SDXL_KEYS, body, {"modelspec.prediction_type": "v"}, training)
    assert plan_family(load_spec(spec).spec) == "sdxl-v"
    config = rendered(spec)
    assert config["model_arguments"]["v_parameterization"] is True
    flat = {k: v for table in config.values() for k, v in table.items()}
    assert flat["zero_terminal_snr"] is True and flat["scale_v_pred_loss_like_noise_pred"] is True


# --- what the family's script would refuse ------------------------------------------------------


def problems(tmp_path, images, keys: list[str], body: str, training: str) -> list[tuple]:
    loaded = load_spec(project(tmp_path, images, keys, body, training=training))
    family = plan_family(loaded.spec)
    assert family is not None
    return family_problems(loaded.spec, family)


NET = "network:\n  type: {type}\n  dim: 4\n  alpha: 1\n"
SD3_BODY = "  clip_l: clip_l.safetensors\n  clip_g: clip_g.safetensors\n  t5xxl: t5xxl.safetensors\n" + NET.format(
    type="lora"
)


@pytest.mark.parametrize(
    "keys, body, training, where, words",
    [
        (sd3_keys(24, False, 0), "  clip_l: clip_l.safetensors\n  clip_g: clip_g.safetensors\n  t5xxl: "
         "t5xxl.safetensors\n" + NET.format(type="dylora"), "", ("network", "type"), "networks.dylora wraps none"),
        (flux_keys(), FLUX_BODY.replace("type: lora", "type: dylora"), "", ("network", "type"), "networks.dylora"),
        (flux_keys(), "  ae: ae.safetensors\n  clip_l: clip_l.safetensors\n" + NET.format(type="lora"), "",
         ("model", "t5xxl"), "flux1 needs its t5xxl file"),
        (flux_keys(), "  clip_g: clip_g.safetensors\n" + FLUX_BODY, "", ("model", "clip_g"), "sd3 models"),
        (SDXL_KEYS, NET.format(type="lora") + "flux:\n  guidance_scale: 1.0\n", "", ("flux",), "flux1 settings"),
        (SDXL_KEYS, NET.format(type="lora"), "  blocks_to_swap: 4\n", ("training", "blocks_to_swap"),
         "FLUX.1 and SD3"),
        (flux_keys(), FLUX_BODY.replace("train_blocks: single", "train_t5xxl: true"),
         "  cache_text_encoder_outputs: disk\n", ("flux", "train_t5xxl"), "cached outputs"),
        (flux_keys(), FLUX_BODY.replace("type: lora", "type: locon"), "", ("flux", "train_blocks"),
         "is networks.lora_flux's (type: lora); locon wraps every block"),
        (sd3_keys(24, False, 0), SD3_BODY.replace("type: lora", "type: lokr") + "sd3:\n  train_t5xxl: true\n", "",
         ("sd3", "train_t5xxl"), "lokr never wraps T5-XXL"),
        # enable_block_swap's assertion, read against the header's block counts
        (flux_keys(), FLUX_BODY, "  blocks_to_swap: 36\n", ("training", "blocks_to_swap"),
         "is 36, but this transformer has 19 double and 38 single blocks (at most 35"),
        (TINY_FLUX, FLUX_BODY, "  blocks_to_swap: 1\n", ("training", "blocks_to_swap"), "(too few to swap any"),
        (TINY_FLUX, FLUX_BODY.replace("flux:\n", "flux:\n  split_mode: true\n"), "", ("flux", "split_mode"),
         "swaps 18 blocks, but this transformer has 1 double and 1 single blocks"),
        (sd3_keys(24, False, 0), SD3_BODY, "  blocks_to_swap: 23\n", ("training", "blocks_to_swap"),
         "24 joint blocks (at most 22: sd-scripts keeps 2 on the GPU)"),
    ],
)  # fmt: skip
def test_refused_before_launch(tmp_path, images, keys, body, training, where, words) -> None:
    found = problems(tmp_path, images, keys, body, training)
    assert any(at == where and words in message for at, message in found), found


@pytest.mark.parametrize(
    "keys, body, training",
    [
        (flux_keys(), FLUX_BODY, "  blocks_to_swap: 35\n"),
        (flux_keys(), FLUX_BODY.replace("flux:\n", "flux:\n  split_mode: true\n"), ""),
        (sd3_keys(24, False, 0), SD3_BODY, "  blocks_to_swap: 22\n"),
        (sd3_keys(38, True, 0), SD3_BODY, "  blocks_to_swap: 36\n"),
    ],
)
def test_block_swap_within_the_transformer_is_accepted(tmp_path, images, keys, body, training) -> None:
    assert problems(tmp_path, images, keys, body, training) == []


def test_a_flux_alias_brings_its_files_and_the_gated_ones_say_so() -> None:
    dev = ALIASES["flux1-dev"]
    assert dev.gated and set(dev.components) == {"ae", "clip_l", "t5xxl"}
    assert not ALIASES["flux1-schnell"].gated
    assert {ALIASES[n].variant for n in ("sd3-medium", "sd3.5-medium", "sd3.5-large")} == {
        "sd3-medium",
        "sd3.5-medium",
        "sd3.5-large",
    }
    for alias in ALIASES.values():
        assert set(alias.components) == set(FAMILY_INFO[alias.family].components)


# Run with $ENGINE_PYTHON: which transformer layers LyCORIS and networks.dylora wrap on FLUX.1 and SD3
# (one block of each, on the meta device), as train_network.py creates and applies a network.
NETWORK_PROBE = r"""
import contextlib, io, json, logging, os, sys
from dataclasses import replace
sd = sys.argv[1]
sys.path[:0] = [sd, os.path.join(sd, "networks")]
logging.disable(logging.WARNING)
import torch
from transformers import CLIPTextConfig, CLIPTextModel
with contextlib.redirect_stdout(io.StringIO()):
    from library import flux_models, sd3_models
    import lycoris.kohya as lycoris_kohya
    import networks.dylora as dylora
out = {}
for family in ("flux1", "sd3"):
    for kind in ("locon", "loha", "lokr", "dylora"):
        with torch.device("meta" if kind in ("locon", "dylora") else "cpu"):
            if family == "flux1":
                model = flux_models.Flux(replace(flux_models.configs["dev"].params, depth=1, depth_single_blocks=1))
            else:
                model = sd3_models.create_sd3_mmdit(sd3_models.SD3Params(2, 2, 36864, 192, 2048, None, [], 4096, 128,
                                                                         "medium"))
            clip = CLIPTextModel(CLIPTextConfig(vocab_size=49408, hidden_size=768, intermediate_size=3072,
                                                num_hidden_layers=1, num_attention_heads=12, max_position_embeddings=77))
            with contextlib.redirect_stdout(io.StringIO()):
                if kind == "dylora":
                    net = dylora.create_network(1.0, 4, 1.0, None, [clip], model, unit=2, dropout=None)
                else:
                    net = lycoris_kohya.create_network(1.0, 4, 1.0, None, [clip], model, algo=kind, dropout=None)
                net.apply_to([clip], model, True, True)
        out[f"{family}-{kind}"] = sorted({k.split(".")[0] for k in net.state_dict() if k.startswith("lora_unet")})
json.dump(out, sys.stdout)
"""


@pytest.mark.engine
def test_engine_lycoris_wraps_the_transformers_and_dylora_does_not(tmp_path) -> None:
    import os
    import subprocess

    python, sd_scripts = os.environ.get("ENGINE_PYTHON"), os.environ.get("ARTLAB_KOHYA_DIR")
    if not python or not sd_scripts:
        pytest.skip("needs the real engine: set ENGINE_PYTHON and ARTLAB_KOHYA_DIR (source its env.sh)")
    probe = tmp_path / "probe.py"
    probe.write_text(NETWORK_PROBE)
    result = subprocess.run([python, str(probe), sd_scripts], capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stderr[-3000:]
    wrapped = json.loads(result.stdout)
    # the layers networks.lora_flux / lora_sd3 wrap, for one double and one single FLUX.1 block / two SD3 blocks
    flux = {n.split(".")[0] for n in tensor_names("flux1") if "_blocks_0_" in n}
    for kind in ("locon", "loha", "lokr"):
        assert set(wrapped[f"flux1-{kind}"]) == flux, kind
        assert len(wrapped[f"sd3-{kind}"]) == 5 + 5 + 5 + 2, kind  # x and context blocks; the last context is short
    assert wrapped["flux1-dylora"] == wrapped["sd3-dylora"] == []  # hence refused for both


def tensor_names(family: str) -> list[str]:
    from artlab_kohya.models.netsize import tensor_shapes

    return list(tensor_shapes(family, "lora", dim=4, train_text_encoder=False))  # type: ignore[arg-type]


def test_the_scaled_v_loss_is_refused_without_v_prediction_and_taken_with_sdxl_v(tmp_path, images) -> None:
    from artlab_kohya.spec import SpecError

    body = "  family: {family}\n" + NET.format(type="lora")
    training = "  scale_v_pred_loss_like_noise_pred: true\n"
    spec = project(tmp_path, images, SDXL_KEYS, body.format(family="sdxl-v"), training=training)
    assert load_spec(spec).spec.model.family == "sdxl-v"
    spec.write_text(spec.read_text().replace("family: sdxl-v", "family: sdxl"))
    with pytest.raises(SpecError, match="scale_v_pred_loss_like_noise_pred"):
        load_spec(spec)
