"""spec/gui_export.py and `export-gui`: a spec as a config the GUI loads, and back again unchanged."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from artlab_kohya.cli.main import main
from artlab_kohya.spec.gui import FIELDS
from artlab_kohya.spec.gui_export import export_gui
from artlab_kohya.spec.gui_import import import_gui
from artlab_kohya.spec.load import load_spec_data, load_spec_text

PRESETS = sorted((Path(__file__).parent / "data" / "gui_presets").glob("*.json"))
FOLDERS = {"/data/img": [("10_sks", 10)]}


def imported_spec(config: dict, dataset: str | None = "/data/img"):
    imported = import_gui(config, folders=lambda p: FOLDERS.get(p), exists=lambda p: p in FOLDERS, dataset=dataset)
    data = json.loads(json.dumps(imported.data))
    if data["dataset"]["buckets"].get("step") == 1:
        data["dataset"]["buckets"]["step"] = 64  # the GUI presets' 1 fails sd-scripts' assertion (test_gui_presets)
    return load_spec_data(data, {}, "", Path("/p/spec.yaml")).spec


def comparable(spec) -> dict:
    data = spec.model_dump(mode="json")
    if data["network"]["train"] == "unet":
        data["optimizer"]["text_encoder_lr"] = None  # not trained: the GUI writes its rate as 0
    return data


@pytest.mark.parametrize("preset", PRESETS, ids=lambda p: p.stem)
def test_presets_go_out_and_come_back_the_same(preset):
    """import -> spec -> export-gui -> import: the same spec, for every GUI preset we can train."""
    config = json.loads(preset.read_text(encoding="utf-8"))
    spec = imported_spec(config)
    exported = export_gui(spec).config
    again = imported_spec(json.loads(json.dumps(exported)), dataset=None)
    assert comparable(again) == comparable(spec)


def test_the_config_holds_the_gui_fields_with_the_gui_types(tmp_path):
    spec = load_spec_text(
        "model: {source: base.safetensors, family: sdxl, no_half_vae: true}\n"
        "dataset:\n  resolution: [832, 1216]\n  buckets: {max_resolution: 2048}\n  subsets: [{path: img/10_a}, {path: img/4_b}]\n"
        "network: {type: lokr, dim: 16, factor: 8, dora_wd: true, args: {loraplus_lr_ratio: 4}}\n"
        "optimizer: {type: Prodigy, learning_rate: 1.0, args: {betas: [0.9, 0.99], decouple: true}}\n"
        "scheduler: {type: cosine, warmup_ratio: 0.05}\n"
        "training: {max_steps: 2000, attention: sdpa, cache_latents: disk, multires_noise_iterations: 6}\n"
        "output: {log_prefix: x}\n",
        tmp_path / "spec.yaml",
    ).spec
    config = export_gui(spec).config
    saved = {f.name for f in FIELDS if f.saved}
    assert set(config) <= saved and list(config) == sorted(config)
    kinds = {f.name: f.kind for f in FIELDS}
    for name, value in config.items():
        expected = {"int": int, "float": float, "bool": bool, "str": str, "path": str}.get(kinds[name])
        if expected is not None:
            assert type(value) is expected, (name, value)
    assert config["max_resolution"] == "832,1216" and config["sdxl"] is True and config["v2"] is False
    assert config["LoRA_type"] == "LyCORIS/LoKr" and config["factor"] == 8 and config["dora_wd"] is True
    assert config["loraplus_lr_ratio"] == 4.0 and config["conv_dim"] == 16  # the GUI always passes a conv_dim
    assert config["optimizer_args"] == "betas=0.9,0.99 decouple=True"
    assert config["lr_warmup"] == 5.0 and config["max_train_steps"] == 2000 and config["max_train_epochs"] == 0
    assert config["xformers"] == "sdpa" and config["cache_latents_to_disk"] is True
    assert config["train_data_dir"] == (tmp_path / "img").as_posix()
    assert config["sdxl_no_half_vae"] is True and config["noise_offset_type"] == "Multires"
    assert config["multires_noise_iterations"] == 6 and config["additional_parameters"] == "--log_prefix=x"
    assert config["unet_lr"] == config["text_encoder_lr"] == 1.0  # 0 would mean "not trained" to the GUI


def test_what_the_gui_cannot_hold_is_said(tmp_path):
    spec = load_spec_text(
        "model: {source: sd15}\n"
        "dataset:\n  subsets:\n    - {path: a/10_x, flip_aug: true}\n    - {path: b/5_y, repeats: 3}\n"
        "network: {type: locon, args: {weird: 1}}\n"
        "training: {stop_on_nan: false}\n",
        tmp_path / "spec.yaml",
    ).spec
    notes = "\n".join(export_gui(spec).notes)
    assert "train_data_dir is one folder of N_name folders" in notes
    assert "repeats 3 is not kept" in notes and "flip_aug differs between subsets" in notes
    assert "network.args.weird: the GUI has no field for it" in notes and "stop_on_nan" in notes


def test_export_gui_command(tmp_path):
    spec = tmp_path / "spec.yaml"
    spec.write_text("model: {source: m.safetensors, family: sd15}\ndataset: {subsets: [{path: img/10_a}]}\n"
                    "network: {type: lora}\n")  # fmt: skip
    out = tmp_path / "gui.json"
    result = CliRunner().invoke(main, ["export-gui", str(spec), "-o", str(out), "--set", "network.dim=16"])
    assert result.exit_code == 0, result.stderr
    assert json.loads(out.read_text())["network_dim"] == 16 and out.read_text().startswith('{\n  "LoRA_type"')
    result = CliRunner().invoke(main, ["export-gui", str(spec), "-o", str(out)])
    assert result.exit_code == 1 and "never overwrites" in result.stderr


def test_flux_and_sd3_specs_export_with_their_boxes_and_come_back(tmp_path):
    flux = load_spec_text(
        "model: {source: flux1-dev.safetensors, family: flux1, ae: ae.safetensors, clip_l: clip_l.safetensors,\n"
        "        t5xxl: t5xxl_fp16.safetensors, fp8_base: true}\n"
        "dataset: {subsets: [{path: /data/img/10_sks, repeats: folder}]}\n"
        "network: {type: lora, dim: 16, train: unet, args: {img_attn_dim: 8}}\n"
        "training: {cache_text_encoder_outputs: disk, blocks_to_swap: 10}\n"
        "flux: {guidance_scale: 1.0, timestep_sampling: flux_shift, split_qkv: true, t5xxl_max_token_length: 512}\n",
        tmp_path / "flux.yaml",
    ).spec
    gui = export_gui(flux).config
    assert (
        gui["flux1_checkbox"]
        and not gui["sdxl"]
        and gui["LoRA_type"] == "Flux1"
        and gui["ae"].endswith("/ae.safetensors")
    )
    assert gui["flux1_cache_text_encoder_outputs_to_disk"] and gui["blocks_to_swap"] == 10 and gui["fp8_base"]
    assert (gui["timestep_sampling"], gui["split_qkv"], gui["img_attn_dim"]) == ("flux_shift", True, "8")
    again = imported_spec(json.loads(json.dumps(gui)), dataset=None)
    assert again.flux == flux.flux and again.model.fp8_base and again.training.blocks_to_swap == 10
    twice = imported_spec(json.loads(json.dumps(export_gui(again).config)), dataset=None)
    assert comparable(twice) == comparable(again)
    sd3 = load_spec_text(
        "model: {source: sd3.5_large.safetensors, family: sd3, clip_l: l.safetensors, clip_g: g.safetensors,\n"
        "        t5xxl: t5.safetensors}\n"
        "dataset: {subsets: [{path: /data/img/10_sks, repeats: folder}]}\n"
        "network: {type: lora, train: unet}\n"
        "training: {cache_text_encoder_outputs: memory}\n"
        "sd3: {weighting_scheme: logit_normal, logit_mean: 0.5, t5_dropout_rate: 0.1}\n"
        "kohya: {extra_args: {t5xxl_dtype: bf16}}\n",
        tmp_path / "sd3.yaml",
    ).spec
    gui = export_gui(sd3).config
    assert gui["sd3_checkbox"] and gui["LoRA_type"] == "Standard" and gui["clip_g"].endswith("/g.safetensors")
    assert gui["sd3_clip_l"].endswith("/l.safetensors") and gui["sd3_t5_dropout_rate"] == 0.1
    again = imported_spec(json.loads(json.dumps(gui)), dataset=None)
    assert again.sd3 == sd3.sd3 and again.training.cache_text_encoder_outputs == "memory"
    twice = imported_spec(json.loads(json.dumps(export_gui(again).config)), dataset=None)
    assert comparable(twice) == comparable(again)
