"""spec/gui_import/ and `import-gui`: the shapes GUI versions saved, each field accounted for, the spec
that comes out validated. The GUI presets themselves are imported, checked and rendered in test_gui_presets.py."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from click.testing import CliRunner

from artlab_kohya.cli.main import main
from artlab_kohya.errors import InputError
from artlab_kohya.spec import load_spec
from artlab_kohya.spec.gui import BY_NAME, FIELDS
from artlab_kohya.spec.gui_import import import_gui, spec_text
from artlab_kohya.spec.load import load_spec_text

FOLDERS = {"/data/img": [("10_sks", 10), ("3_style", 3)], "/data/reg": [("1_person", 1)]}


def convert(config: dict, **kwargs):
    return import_gui(config, folders=lambda p: FOLDERS.get(p), exists=lambda p: p in FOLDERS, **kwargs)


def spec_of(config: dict, tmp_path: Path, **kwargs):
    imported = convert(config, **kwargs)
    text = spec_text(imported, "config.json")
    return imported, load_spec_text(text, tmp_path / "spec.yaml").spec, text


def accounted(config: dict, imported) -> set[str]:
    """Every field of the config, found in a comment, the unmapped list, the secrets or the defaults."""
    said = " ".join(
        [n for notes in imported.notes.values() for n in notes]
        + [name for name, _, _ in imported.unmapped]
        + imported.secrets
        + imported.at_default
    )
    return {k for k in config if re.search(rf"\b{k}\b", said)}


def test_numbers_as_strings_old_names_and_folders(tmp_path):
    config = {
        "LoRA_type": "Standard",
        "learning_rate": "0.0001",
        "unet_lr": "0.0001",
        "text_encoder_lr": "",  # update_my_data: "" -> 0.0, so the GUI trains the U-Net alone
        "network_dim": 32,
        "network_alpha": "16",
        "epoch": "4",
        "max_train_steps": "",
        "train_batch_size": 2,
        "max_resolution": "768,768",
        "seed": "1234",
        "keep_tokens": "1",
        "caption_extention": ".caption",  # an old spelling
        "lora_network_weights": "",
        "cache_latent": True,
        "train_data_dir": "/data/img",
        "reg_data_dir": "/data/reg",
        "xformers": True,  # an old GUI: a checkbox
        "use_8bit_adam": True,
        "shuffle_caption": True,
        "save_every_n_epochs": "1",
        "output_name": "my lora",
    }
    imported, spec, text = spec_of(config, tmp_path)
    assert spec.network.dim == 32 and spec.network.alpha == 16 and spec.network.train == "unet"
    assert spec.optimizer.type == "AdamW8bit" and spec.optimizer.unet_lr == 0.0001
    assert spec.optimizer.text_encoder_lr is None
    assert spec.training.epochs == 4 and spec.training.max_steps is None and spec.training.seed == 1234
    assert spec.dataset.resolution == 768 and spec.dataset.caption_extension == ".caption"
    assert spec.training.cache_latents == "memory" and spec.training.attention == "xformers"
    paths = [(str(s.path), s.repeats, s.regularization, s.keep_tokens, s.shuffle_caption) for s in spec.dataset.subsets]
    assert paths == [
        ("/data/img/10_sks", "folder", False, 1, True),
        ("/data/img/3_style", "folder", False, 1, True),
        ("/data/reg/1_person", "folder", True, 1, True),
    ]
    assert spec.output.name == "my_lora" and any("my lora" in w for w in imported.warnings)
    assert "max_train_steps = ceil(images x repeats" in text  # what the GUI does with epoch, said
    assert accounted(config, imported) == set(config)


@pytest.mark.parametrize(
    ("lora_type", "network", "extra"),
    [
        ("Standard", "lora", {}),
        ("Kohya LoCon", "lora", {"conv_dim": 8}),
        ("LoCon", "locon", {"conv_dim": 8}),
        ("LyCORIS/LoCon", "locon", {"conv_dim": 8}),
        ("LyCORIS/LoHa", "loha", {"conv_dim": 8}),
        ("LyCORIS/LoKr", "lokr", {"conv_dim": 8}),
        ("Kohya DyLoRA", "dylora", {"conv_dim": 8}),  # the GUI passes conv_dim for it when not 0
    ],
)
def test_lora_types(tmp_path, lora_type, network, extra):
    config = {"LoRA_type": lora_type, "network_dim": 8, "network_alpha": 4, "conv_dim": 8, "conv_alpha": 1,
              "unit": 4, "max_train_steps": "100", "train_data_dir": "/data/img", "enable_bucket": False}  # fmt: skip
    _, spec, _ = spec_of(config, tmp_path)
    assert spec.network.type == network
    assert spec.network.conv_dim == extra.get("conv_dim")


def test_ia3_and_lycoris_switches(tmp_path):
    config = {"LoRA_type": "LyCORIS/iA3", "network_dim": 8, "train_data_dir": "/data/img", "max_train_steps": 10}
    _, spec, _ = spec_of(config, tmp_path)
    assert spec.network.type == "ia3" and spec.network.args == {}
    lokr = {"LoRA_type": "LyCORIS/LoKr", "network_dim": 8, "factor": "4", "use_cp": True, "dora_wd": True,
            "decompose_both": False, "train_data_dir": "/data/img", "max_train_steps": 10}  # fmt: skip
    _, spec, _ = spec_of(lokr, tmp_path)
    assert spec.network.factor == 4 and spec.network.use_tucker and spec.network.args == {}
    assert spec.network.dora_wd and not spec.network.decompose_both and not spec.network.train_norm
    glora = {"LoRA_type": "LyCORIS/GLoRA", "train_norm": "true", "dora_wd": True, "train_data_dir": "/data/img"}
    _, spec, text = spec_of(glora, tmp_path)
    assert spec.network.train_norm and "dora_wd" not in type(spec.network).model_fields
    assert "not passed by the GUI for LoRA_type LyCORIS/GLoRA:\n#     dora_wd = true" in text


def test_refused_families_and_networks():
    with pytest.raises(InputError, match="Lumina"):
        convert({"lumina_checkbox": True, "LoRA_type": "Lumina"})
    with pytest.raises(InputError, match="networks.oft_flux"):
        convert({"flux1_checkbox": True, "LoRA_type": "Flux1 OFT"})
    with pytest.raises(InputError, match="Chroma"):
        convert({"flux1_checkbox": True, "LoRA_type": "Flux1", "model_type": "chroma"})
    with pytest.raises(InputError, match="Flux1 or LyCORIS"):
        convert({"flux1_checkbox": True, "LoRA_type": "Standard"})
    with pytest.raises(InputError, match="needs flux1_checkbox"):
        convert({"LoRA_type": "Flux1"})
    with pytest.raises(InputError, match="LoRA-FA"):
        convert({"LoRA_type": "LoRA-FA"})
    with pytest.raises(InputError, match="unknown to this mapping"):
        convert({"LoRA_type": "Something new"})


def test_epochs_and_steps_the_way_the_gui_passes_them(tmp_path):
    base = {"train_data_dir": "/data/img", "enable_bucket": False}
    cases = [
        ({"epoch": 10, "max_train_steps": "0"}, (10, None)),  # the GUI computes the steps of 10 epochs
        ({"epoch": 10, "max_train_steps": "300"}, (None, 300)),  # max_train_steps wins; epoch is not passed
        ({"epoch": 10, "max_train_epochs": "5", "max_train_steps": "300"}, (5, None)),  # sd-scripts: epochs win
        ({"epoch": 10}, (None, 1600)),  # max_train_steps absent: the GUI's widget keeps its 1600
        ({"epoch": "", "max_train_steps": ""}, (None, 1600)),  # neither: sd-scripts' default 1600 steps
        ({"epoch": 3, "max_train_steps": 0, "dataset_config": "/d.toml"}, (None, 1600)),  # dataset config: no math
    ]
    for fields, (epochs, steps) in cases:
        imported, spec, text = spec_of(base | fields, tmp_path)
        got = (spec.training.epochs if steps is None else None, spec.training.max_steps)
        assert got == (epochs, steps), fields
    _, _, text = spec_of(base | {"epoch": "", "max_train_steps": ""}, tmp_path)
    assert "neither is set: sd-scripts trains its default of 1600 steps, as the GUI would" in text
    _, _, text = spec_of(base | {"epoch": 10}, tmp_path)
    assert "max_train_steps (absent: the GUI's 1600)" in text


def test_additional_parameters_go_to_spec_fields_or_extra_args(tmp_path):
    config = {
        "train_data_dir": "/data/img",
        "max_train_steps": 100,
        "additional_parameters": '--lr_scheduler_type "CosineAnnealingLR" --lr_scheduler_args "T_max=1000" '
        '"eta_min=0e-0" --network_train_unet_only --max_grad_norm=0 --log_prefix=xl-loha --vae_batch_size=4',
    }
    _, spec, _ = spec_of(config, tmp_path)
    assert spec.scheduler.args == {"T_max": 1000, "eta_min": 0.0}
    assert spec.network.train == "unet" and spec.optimizer.max_grad_norm == 0
    assert spec.scheduler.custom == "CosineAnnealingLR" and spec.output.log_prefix == "xl-loha"
    assert spec.kohya.extra_args == {"vae_batch_size": 4}


def test_secrets_are_never_copied_and_paths_are_flagged(tmp_path):
    config = {
        "train_data_dir": "D:\\training\\img",
        "pretrained_model_name_or_path": "C:/models/sd15.safetensors",
        "wandb_api_key": "0123456789abcdef",
        "huggingface_token": "hf_secret",
        "my_service_api_key": "xyz",  # unknown to the mapping, but a credential by its name
        "log_with": "wandb",
        "max_train_steps": 10,
    }
    imported, spec, text = spec_of(config, tmp_path)
    assert "0123456789abcdef" not in text and "hf_secret" not in text and "xyz" not in text
    assert set(imported.secrets) == {"wandb_api_key", "huggingface_token", "my_service_api_key"}
    assert "Not copied: wandb_api_key, huggingface_token, my_service_api_key" in text
    assert 'source: "C:/models/sd15.safetensors"' in text
    assert any("'D:\\training\\img' does not exist here (a Windows path)" in w for w in imported.warnings)
    assert any("C:/models/sd15.safetensors' does not exist here (a Windows path)" in w for w in imported.warnings)
    assert spec.output.wandb_run_name == "last"  # the GUI passes output_name when empty


def test_unknown_fields_are_listed_not_dropped(tmp_path):
    config = {"train_data_dir": "/data/img", "max_train_steps": 10, "brand_new_option": 3}
    imported, _, text = spec_of(config, tmp_path)
    assert ("brand_new_option", "3", "unknown to this mapping (a newer GUI version?)") in imported.unmapped
    assert "brand_new_option = 3" in text


def test_the_table_covers_the_current_gui(tmp_path):
    """Every field the current GUI saves (save_configuration's parameters) has a row, with a reason if unmapped."""
    names = {f.name for f in FIELDS}
    for field in FIELDS:
        assert field.to or field.why, field.name
    for old in ("lora_network_weights", "conv_dims", "conv_alphas", "use_8bit_adam", "caption_extention"):
        assert old in BY_NAME
    assert len(names) == len(FIELDS)


def test_import_gui_command(tmp_path, images):
    images(tmp_path / "img/10_sks", [(512, 512)] * 12)
    config = tmp_path / "gui.json"
    config.write_text(json.dumps({"LoRA_type": "Standard", "max_train_steps": "100", "wandb_api_key": "k1",
                                  "train_data_dir": "C:/old/place", "enable_bucket": False}))  # fmt: skip
    out = tmp_path / "spec.yaml"
    runner = CliRunner()
    result = runner.invoke(main, ["import-gui", str(config), "-o", str(out), "--dataset", str(tmp_path / "img")])
    assert result.exit_code == 0, result.stderr
    assert "not copied: wandb_api_key" in result.stderr and f"wrote {out}" in result.stdout
    spec = load_spec(out).spec
    assert [p.name for p in (s.path for s in spec.dataset.subsets)] == ["10_sks"]
    assert "path: img/10_sks" in out.read_text()  # relative to the spec's folder
    result = runner.invoke(main, ["import-gui", str(config), "-o", str(out)])
    assert result.exit_code == 1 and "never overwrites" in result.stderr
    config.write_text("[1, 2]")
    result = runner.invoke(main, ["import-gui", str(config), "-o", str(tmp_path / "b.yaml")])
    assert result.exit_code == 2 and "JSON object" in result.stderr


def test_first_class_settings_come_in_as_spec_fields(tmp_path):
    config = {
        "sdxl": True, "sdxl_no_half_vae": True, "LoRA_type": "LyCORIS/Diag-OFT", "network_dim": 8, "constrain": 0.0001,
        "rescaled": True, "scale_weight_norms": 1, "loss_type": "huber", "huber_c": 0.2, "huber_schedule": "snr",
        "min_timestep": 100, "max_timestep": 1000, "debiased_estimation_loss": True, "ip_noise_gamma": 0.1,
        "noise_offset_type": "Multires", "multires_noise_iterations": 6, "multires_noise_discount": 0.3,
        "save_state": True, "save_last_n_steps": 500, "save_every_n_steps": 100, "seed": 0,
        "caption_dropout_every_n_epochs": "2", "train_data_dir": "/data/img", "max_train_steps": 100,
        "max_resolution": "1024,1024", "prior_loss_weight": "0.5", "reg_data_dir": "/data/reg",
        "save_last_n_steps_state": 2, "save_state_on_train_end": True, "dim_from_weights": True,
        "network_weights": "/w.safetensors", "sdxl_cache_text_encoder_outputs": True, "text_encoder_lr": 0,
        "lr_scheduler_type": "CosineAnnealingLR", "num_machines": 1, "main_process_port": 12345,
    }  # fmt: skip
    imported, spec, text = spec_of(config, tmp_path)
    t = spec.training
    assert spec.model.no_half_vae and spec.network.type == "diag-oft" and spec.network.constraint == 0.0001
    assert spec.network.rescaled and spec.network.scale_weight_norms == 1
    assert (t.loss_type, t.huber_c, t.min_timestep, t.max_timestep) == ("huber", 0.2, 100, None)  # 1000: default
    assert t.debiased_estimation_loss and t.ip_noise_gamma == 0.1 and t.multires_noise_iterations == 6
    assert t.save_state and t.save_last_n_steps == 500 and spec.kohya.extra_args == {}
    assert spec.dataset.subsets[0].caption_dropout_every_n_epochs == 2
    assert t.prior_loss_weight == 0.5 and t.save_last_n_steps_state == 2 and t.save_state_on_train_end
    assert spec.network.dim_from_weights and t.cache_text_encoder_outputs == "memory"
    assert spec.scheduler.custom == "CosineAnnealingLR" and spec.launch.num_machines == 1
    assert "one machine: artlab-kohya lets accelerate choose its port" in text
    assert "seed: random  # seed: 0: the GUI lets sd-scripts draw one each run" in text


SD3 = {
    "sd3_checkbox": True, "LoRA_type": "Standard", "pretrained_model_name_or_path": "/m/sd3.5_large.safetensors",
    "sd3_clip_l": "/m/clip_l.safetensors", "clip_g": "/m/clip_g.safetensors", "sd3_t5xxl": "/m/t5xxl_fp16.safetensors",
    "sd3_cache_text_encoder_outputs": True, "weighting_scheme": "logit_normal", "logit_mean": "0.5", "logit_std": 1.2,
    "sd3_t5_dropout_rate": 0.1, "blocks_to_swap": 8, "text_encoder_lr": 0, "unet_lr": 0.0002, "fp8_base": True,
    "train_data_dir": "/data/img", "save_clip": True, "guidance_scale": 3.5, "ae": "",
}  # fmt: skip


def test_an_sd3_config_imports_to_its_fields(tmp_path):
    imported, spec, text = spec_of(SD3, tmp_path)
    assert accounted(SD3, imported) == set(SD3)
    assert spec.model.family == "sd3" and spec.model.fp8_base and spec.training.blocks_to_swap == 8
    assert str(spec.model.clip_g.path) == "/m/clip_g.safetensors" and str(spec.model.t5xxl.path).endswith(
        "t5xxl_fp16.safetensors"
    )
    assert (spec.sd3.weighting_scheme, spec.sd3.logit_mean, spec.sd3.logit_std, spec.sd3.t5_dropout_rate) == (
        "logit_normal",
        0.5,
        1.2,
        0.1,
    )
    assert spec.training.cache_text_encoder_outputs == "memory" and spec.network.train == "unet"
    assert spec.kohya.extra_args == {"save_clip": True, "t5xxl_dtype": "bf16"}  # the GUI passes its widget's bf16
    assert "not passed by the GUI here (FLUX.1 only)" in text and "guidance_scale = 3.5" in text


def test_flux_components_from_the_command_line_and_placeholders_flagged(tmp_path):
    config = {"flux1_checkbox": True, "LoRA_type": "Flux1", "ae": "put the full path to ae.sft here",
              "clip_l": "C:\\m\\clip_l.safetensors", "t5xxl": "", "output_dir": "put the full path to output folder here",
              "train_data_dir": "put your image folder here", "split_mode": True, "img_attn_dim": "8",
              "train_lora_ggpo": True, "ggpo_sigma": "0.03"}  # fmt: skip
    imported = convert(config)
    warnings = "\n".join(imported.warnings)
    assert "model.ae: 'put the full path to ae.sft here' is the preset's placeholder" in warnings
    assert "pass --component ae=PATH" in warnings and "(a Windows path)" in warnings
    assert "the config names no t5xxl file: pass --component t5xxl=PATH" in warnings
    assert "train_data_dir: 'put your image folder here' is the preset's placeholder" in warnings
    assert "output" not in imported.data or "dir" not in imported.data["output"]
    assert imported.data["flux"]["train_blocks"] == "single"  # split_mode: the GUI passes single
    assert imported.data["network"]["args"] == {"img_attn_dim": "8", "ggpo_sigma": "0.03"}
    given = convert(config, components={"ae": "/models/ae.safetensors", "t5xxl": "t5.safetensors"})
    assert given.data["model"]["ae"] == "/models/ae.safetensors" and given.data["model"]["t5xxl"] == "t5.safetensors"
    assert not any("model.ae" in w and "placeholder" in w for w in given.warnings)
    assert accounted(config, given) == set(config)


def test_import_gui_component_option(tmp_path):
    config = tmp_path / "flux.json"
    config.write_text(json.dumps({"flux1_checkbox": True, "LoRA_type": "Flux1", "ae": "put the path here"}))
    (tmp_path / "ae.safetensors").write_bytes(b"")
    out = tmp_path / "spec.yaml"
    args = ["import-gui", str(config), "-o", str(out), "--component", f"ae={tmp_path / 'ae.safetensors'}"]
    result = CliRunner().invoke(main, args)
    assert "model:" in out.read_text() and "ae: ae.safetensors  # --component" in out.read_text(), result.stderr
    result = CliRunner().invoke(
        main, ["import-gui", str(config), "-o", str(tmp_path / "b.yaml"), "--component", "vae=x"]
    )
    assert result.exit_code != 0 and "NAME one of ae, clip_l, clip_g, t5xxl" in result.stderr
