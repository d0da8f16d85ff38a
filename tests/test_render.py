"""Rendering: golden files byte for byte, both TOML readers agree, every key on the argument surface.

Regenerate the golden files after an intended change with:
    ARTLAB_UPDATE_GOLDEN=1 pytest tests/test_render.py
and review the diff like code.
"""

from __future__ import annotations

import os
import shlex
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import toml

from artlab_kohya.build.inputs import render_for
from artlab_kohya.build.render import RenderError, RenderInputs, render
from artlab_kohya.build.tomlio import tomllib
from artlab_kohya.spec import SpecError, load_spec
from artlab_kohya.spec.families import FAMILY_INFO
from artlab_kohya.trainer.install import Install
from artlab_kohya.trainer.surface import DATASET_KEYS, SUBSET_KEYS, bundled_surface, surface_from_dump

HERE = Path(__file__).parent
SPECS = sorted((HERE / "specs").glob("*.yaml"))
INSTALL = Install(dir=Path("/opt/sd-scripts"), python="/opt/venv/bin/python")
OUT = Path("/runs/render")


def check_dataset_keys(doc: dict[str, Any]) -> list[str]:
    """Keys sd-scripts' config_util schema would reject."""
    bad = []
    for dataset in doc.get("datasets", []):
        bad += [k for k in dataset if k != "subsets" and k not in DATASET_KEYS and k not in SUBSET_KEYS]
        for subset in dataset.get("subsets", []):
            bad += [k for k in subset if k not in SUBSET_KEYS]
    return bad


def rendered_files(spec_path: Path) -> dict[str, str]:
    loaded = load_spec(spec_path)
    rendered, argv = render_for(loaded, OUT, INSTALL)
    files = {"dataset.toml": rendered.dataset_toml, "config.toml": rendered.config_toml}
    if rendered.prompts_txt is not None:
        files["prompts.txt"] = rendered.prompts_txt
    files["argv.txt"] = shlex.join(argv) + "\n"
    return files


@pytest.mark.parametrize("spec_path", SPECS, ids=[p.stem for p in SPECS])
def test_golden(spec_path: Path):
    files = rendered_files(spec_path)
    golden = HERE / "golden" / spec_path.stem
    if os.environ.get("ARTLAB_UPDATE_GOLDEN"):
        golden.mkdir(parents=True, exist_ok=True)
        for name, text in files.items():
            (golden / name).write_text(text, encoding="utf-8", newline="\n")
    assert sorted(p.name for p in golden.iterdir()) == sorted(files)
    for name, text in files.items():
        assert (golden / name).read_bytes() == text.encode("utf-8"), f"{spec_path.stem}/{name} changed"


@pytest.mark.parametrize("spec_path", SPECS, ids=[p.stem for p in SPECS])
def test_same_spec_same_bytes(spec_path: Path):
    assert rendered_files(spec_path) == rendered_files(spec_path)


@pytest.mark.parametrize("spec_path", SPECS, ids=[p.stem for p in SPECS])
def test_toml_readers_agree_and_keys_are_known(spec_path: Path):
    files = rendered_files(spec_path)
    for name in ("dataset.toml", "config.toml"):
        assert tomllib.loads(files[name]) == toml.loads(files[name])
    dataset = tomllib.loads(files["dataset.toml"])
    assert check_dataset_keys(dataset) == []
    config = tomllib.loads(files["config.toml"])
    family = load_spec(spec_path).spec.model.family
    script = FAMILY_INFO[family].script if family != "auto" else "train_network.py"
    surface = bundled_surface(script)
    for table in config.values():
        for key, value in table.items():
            assert surface.problem(key, value) is None, key


def test_values_follow_the_spec():
    config = tomllib.loads(rendered_files(HERE / "specs/basic_lora.yaml")["config.toml"])
    flat = {k: v for table in config.values() for k, v in table.items()}
    assert flat["network_module"] == "networks.lora"
    assert flat["network_dim"] == 128 and flat["network_alpha"] == 64.0
    assert flat["network_args"] == ["conv_dim=8", "conv_alpha=1"]
    assert flat["optimizer_args"] == ["weight_decay=0.01", "betas=(0.9,0.99)"]
    assert flat["lr_warmup_steps"] == 0.1  # a float is a fraction of all steps for sd-scripts
    assert flat["clip_skip"] == 2
    assert flat["dataset_config"] == "/runs/render/dataset.toml"
    assert flat["sample_prompts"] == "/runs/render/prompts.txt"
    assert flat["max_train_epochs"] == 10 and "max_train_steps" not in flat
    assert "v2" not in flat  # false switches are left out: TOML cannot un-set them anyway


def test_lycoris_and_dylora_network_args():
    locon = tomllib.loads(rendered_files(HERE / "specs/locon_multi_gpu.yaml")["config.toml"])["network_arguments"]
    assert locon["network_module"] == "lycoris.kohya"
    assert locon["network_args"] == ["algo=locon", "conv_dim=16", "conv_alpha=1", "preset=attn-mlp"]
    assert locon["network_dropout"] == 0.1
    assert locon["network_train_unet_only"] is True
    dylora = tomllib.loads(rendered_files(HERE / "specs/dylora_sdxl.yaml")["config.toml"])["network_arguments"]
    assert dylora["network_module"] == "networks.dylora"
    assert dylora["network_args"] == ["unit=8"]


def test_argv_passes_every_accelerate_default():
    argv = shlex.split(rendered_files(HERE / "specs/locon_multi_gpu.yaml")["argv.txt"])
    assert argv == [
        "/opt/venv/bin/python", "-m", "accelerate.commands.launch",
        "--num_processes", "2", "--num_machines", "1", "--mixed_precision", "fp16", "--dynamo_backend", "no",
        "--num_cpu_threads_per_process", "4", "--multi_gpu", "--gpu_ids", "0,1",
        "/opt/sd-scripts/train_network.py", "--config_file", "/runs/render/config.toml",
    ]  # fmt: skip
    sdxl = shlex.split(rendered_files(HERE / "specs/dylora_sdxl.yaml")["argv.txt"])
    assert sdxl[-3] == "/opt/sd-scripts/sdxl_train_network.py"


def test_awkward_paths_survive_toml(tmp_path: Path):
    """Windows backslashes, spaces, quotes and non-ASCII names come back exactly, with both readers."""
    loaded = load_spec(HERE / "specs/basic_lora.yaml")
    weird = [
        Path("C:\\Users\\Åsa\\LoRA data\\10_sks"),
        Path('/data/名前 with space/it\'s "quoted"/10_x'),
        Path("D:\\trailing\\"),
    ]
    spec = loaded.spec.model_copy(
        update={
            "dataset": loaded.spec.dataset.model_copy(
                update={
                    "subsets": [
                        s.model_copy(update={"path": p})
                        for s, p in zip(loaded.spec.dataset.subsets * 2, weird, strict=False)
                    ]
                }
            )
        }
    )
    inputs = RenderInputs(
        model_path=Path("C:\\models\\sd 1.5\\模型.safetensors"),
        family="sd15",
        repeats=(10, 1, 3),
        class_tokens=("sks", None, "x"),
        config_dir=Path("E:\\runs\\ünïcode"),
        output_dir=Path("E:\\runs\\ünïcode"),
        logging_dir=None,
    )
    rendered = render(spec, inputs, bundled_surface("train_network.py"))
    for text in (rendered.dataset_toml, rendered.config_toml):
        assert tomllib.loads(text) == toml.loads(text)
    dirs = [s["image_dir"] for s in tomllib.loads(rendered.dataset_toml)["datasets"][0]["subsets"]]
    assert dirs == [str(p) for p in weird]
    config = tomllib.loads(rendered.config_toml)
    assert config["model_arguments"]["pretrained_model_name_or_path"] == "C:\\models\\sd 1.5\\模型.safetensors"
    assert config["dataset_arguments"]["dataset_config"] == str(Path("E:\\runs\\ünïcode") / "dataset.toml")


def test_extra_args_are_checked_against_the_surface(write_spec):
    base = (HERE / "specs/basic_lora.yaml").read_text()

    def errors(extra: str) -> list[str]:
        path = write_spec(base.replace("    scale_weight_norms: 1.0", extra))
        with pytest.raises(Exception) as info:
            render_for(load_spec(path), OUT, INSTALL)
        return [str(i) for i in info.value.issues]

    assert errors("    netwrk_dim: 8") == [
        "spec.yaml:46: kohya.extra_args.netwrk_dim: train_network.py at commit 48d368fa has no argument "
        "--netwrk_dim; did you mean 'network_dim'?"
    ]
    assert errors("    network_dim: 8") == [
        "spec.yaml:46: kohya.extra_args.network_dim: --network_dim is set from the spec already; "
        "change the spec field instead"
    ]
    assert errors("    loss_type: l3") == [
        "spec.yaml:46: kohya.extra_args.loss_type: --loss_type must be one of l1, l2, huber, smooth_l1 (got 'l3')"
    ]
    assert errors("    huber_c: fast") == [
        "spec.yaml:46: kohya.extra_args.huber_c: --huber_c takes float values (got 'fast')"
    ]
    assert errors("    cache_text_encoder_outputs: true") == [
        "spec.yaml:46: kohya.extra_args.cache_text_encoder_outputs: train_network.py at commit 48d368fa has no "
        "argument --cache_text_encoder_outputs"
    ]


def test_render_refuses_what_the_surface_lacks():
    """If a future surface dropped an argument we write, rendering stops instead of training silently."""
    surface = bundled_surface("train_network.py")
    smaller = surface_from_dump(
        surface.commit,
        surface.script,
        {
            k: {"type": o.type, "nargs": o.nargs, "choices": o.choices}
            for k, o in surface.options.items()
            if k != "sdpa"
        },
    )
    loaded = load_spec(HERE / "specs/basic_lora.yaml")
    inputs = RenderInputs(Path("/m.safetensors"), "sd15", (10, 1), ("sks", None), OUT, OUT, None)
    with pytest.raises(RenderError, match="no argument --sdpa"):
        render(loaded.spec, inputs, smaller)
    render(loaded.spec, replace(inputs), surface)


def test_sdxl_only_flags_pass_for_sdxl():
    files = rendered_files(HERE / "specs/dylora_sdxl.yaml")
    extra = tomllib.loads(files["config.toml"])["extra_arguments"]
    assert extra == {"cache_text_encoder_outputs": True, "no_half_vae": True}


def test_spec_errors_stop_render(write_spec):
    with pytest.raises(SpecError):
        load_spec(write_spec("model: {source: x}\n"))


FIRST_CLASS = """\
model: {source: /m.safetensors, family: sdxl, no_half_vae: true}
dataset:
  resolution: 1024
  subsets:
    - path: /img/10_sks
      caption_dropout_every_n_epochs: 3
      keep_tokens_separator: "|||"
      secondary_separator: ";;;"
network: {type: locon, dim: 16, scale_weight_norms: 1.0}
training:
  seed: 7
  multires_noise_iterations: 6
  multires_noise_discount: 0.3
  noise_offset: 0.05
  adaptive_noise_scale: 0.01
  ip_noise_gamma: 0.1
  min_timestep: 100
  max_timestep: 900
  loss_type: huber
  huber_c: 0.2
  huber_schedule: exponential
  huber_scale: 1.5
  debiased_estimation_loss: true
  zero_terminal_snr: true
  save_every_n_steps: 100
  save_last_n_steps: 300
  save_state: true
  save_state_on_train_end: true
  save_last_n_epochs_state: 2
  save_last_n_steps_state: 200
  prior_loss_weight: 0.5
  resume: /runs/x-000004-state
output: {log_with: wandb, wandb_run_name: my run, log_prefix: xl-}
scheduler: {type: constant, custom: CosineAnnealingLR, args: {T_max: 1000}}
"""


def test_first_class_settings_render_to_sd_scripts_keys(write_spec):
    """The settings GUI users use most, each to the key sd-scripts takes, all on the argument surface."""
    loaded = load_spec(write_spec(FIRST_CLASS))
    inputs = RenderInputs(Path("/m.safetensors"), "sdxl", (10,), ("sks",), OUT, OUT, None)
    rendered = render(loaded.spec, inputs, bundled_surface("sdxl_train_network.py"))
    subset = tomllib.loads(rendered.dataset_toml)["datasets"][0]["subsets"][0]
    assert {k: subset[k] for k in ("caption_dropout_every_n_epochs", "keep_tokens_separator", "secondary_separator")} == {
        "caption_dropout_every_n_epochs": 3, "keep_tokens_separator": "|||", "secondary_separator": ";;;"
    }  # fmt: skip
    expected = {
        "no_half_vae": True, "scale_weight_norms": 1.0, "seed": 7, "multires_noise_iterations": 6,
        "multires_noise_discount": 0.3, "adaptive_noise_scale": 0.01, "ip_noise_gamma": 0.1, "min_timestep": 100,
        "max_timestep": 900, "loss_type": "huber", "huber_c": 0.2, "huber_schedule": "exponential",
        "huber_scale": 1.5, "debiased_estimation_loss": True, "zero_terminal_snr": True, "save_last_n_steps": 300,
        "save_state": True, "resume": "/runs/x-000004-state", "wandb_run_name": "my run",
        "save_state_on_train_end": True, "save_last_n_epochs_state": 2, "save_last_n_steps_state": 200,
        "prior_loss_weight": 0.5, "log_prefix": "xl-", "lr_scheduler_type": "CosineAnnealingLR",
    }  # fmt: skip
    assert {k: rendered.config[k] for k in expected} == expected
    assert check_dataset_keys(tomllib.loads(rendered.dataset_toml)) == []


@pytest.mark.parametrize("network", ["ia3", "glora", "boft", "diag-oft"])
def test_lycoris_algorithms_as_network_types(write_spec, network):
    extra = ", constraint: 0.0001, rescaled: true" if network in ("boft", "diag-oft") else ""
    path = write_spec(
        "model: {source: /m.safetensors, family: sd15}\ndataset: {subsets: [{path: /img/10_a}]}\n"
        f"network: {{type: {network}{extra}}}\n"
    )
    inputs = RenderInputs(Path("/m.safetensors"), "sd15", (10,), ("a",), OUT, OUT, None)
    config = render(load_spec(path).spec, inputs, bundled_surface("train_network.py")).config
    assert config["network_module"] == "lycoris.kohya"
    args = dict(a.split("=", 1) for a in config["network_args"])
    assert args["algo"] == network
    if extra:
        assert args["constraint"] == "0.0001" and args["rescaled"] == "True"


@pytest.mark.parametrize("network", ["locon", "loha", "lokr"])
def test_lycoris_switches_render_as_network_args(write_spec, network):
    """Each switch is written only when on: LyCORIS reads a 'False' string as true (decompose_both)."""
    on = "train_norm: true, dora_wd: true, bypass_mode: true, use_scalar: true"
    inputs = RenderInputs(Path("/m.safetensors"), "sd15", (10,), ("a",), OUT, OUT, None)
    base = "model: {source: /m.safetensors, family: sd15}\ndataset: {subsets: [{path: /img/10_a}]}\n"
    for switches, expected in ((on, "True"), ("", None)):
        extra = ", decompose_both: true" if network == "lokr" and switches else ""
        path = write_spec(base + f"network: {{type: {network}, {switches}{extra}}}\n")
        config = render(load_spec(path).spec, inputs, bundled_surface("train_network.py")).config
        args = dict(a.split("=", 1) for a in config["network_args"])
        names = ["train_norm", "dora_wd", "bypass_mode", "use_scalar"] + (
            ["decompose_both"] if network == "lokr" else []
        )
        assert [args.get(n) for n in names] == [expected] * len(names)


def test_dim_from_weights_renders_with_the_weights(write_spec):
    base = "model: {source: /m.safetensors, family: sd15}\ndataset: {subsets: [{path: /img/10_a}]}\n"
    path = write_spec(base + "network: {type: lora, weights: /w.safetensors, dim_from_weights: true}\n")
    inputs = RenderInputs(Path("/m.safetensors"), "sd15", (10,), ("a",), OUT, OUT, None)
    config = render(load_spec(path).spec, inputs, bundled_surface("train_network.py")).config
    assert config["dim_from_weights"] is True and config["network_weights"] == "/w.safetensors"


def test_extra_args_the_dataset_config_sets_point_at_the_spec_field(write_spec):
    base = (HERE / "specs/basic_lora.yaml").read_text()
    for key, field in (
        ("bucket_reso_steps: 32", "dataset.buckets.step"),
        ("caption_extension: .cap", "dataset.caption_extension"),
    ):
        path = write_spec(base.replace("    scale_weight_norms: 1.0", f"    {key}"))
        with pytest.raises(Exception) as info:
            render_for(load_spec(path), OUT, INSTALL)
        (message,) = [str(i) for i in info.value.issues]
        assert f"is set by the dataset config rendered from {field}" in message, message
