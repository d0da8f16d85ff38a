"""The core against the real sd-scripts (marked `engine`; skipped unless it is set up, see README).

1. Rendered TOML goes through sd-scripts' own parser (--config_file merge) and dataset-config
   validator; every value must come out as the spec says.
2. `plan`'s total optimization steps must equal what the real trainer prints, for several specs.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from artlab_kohya.build.command import build_command
from artlab_kohya.build.inputs import ModelChoice, render_checked, render_for, render_inputs
from artlab_kohya.build.plan import make_plan
from artlab_kohya.spec import load_spec
from artlab_kohya.spec.families import script_for
from artlab_kohya.trainer.install import Install
from artlab_kohya.trainer.surface import bundled_surface

pytestmark = pytest.mark.engine
HERE = Path(__file__).parent
PROBE = HERE / "engine" / "probe_config.py"


def probe(engine: dict[str, str], script: str, config: Path) -> dict:
    result = subprocess.run(
        [engine["ENGINE_PYTHON"], str(PROBE), engine["ARTLAB_KOHYA_DIR"], script, str(config)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize(
    "name", ["basic_lora", "locon_multi_gpu", "dylora_sdxl", "loha_lokr_hub", "flux_lora", "sd3_lora", "sdxl_vpred"]
)
def test_real_parser_reads_what_the_spec_says(engine, tmp_path, name):
    loaded = load_spec(HERE / "specs" / f"{name}.yaml")
    install = Install(Path(engine["ARTLAB_KOHYA_DIR"]), engine["ENGINE_PYTHON"])
    rendered, argv = render_for(loaded, tmp_path, install)
    rendered.write(tmp_path)
    script = Path(argv[-3]).name
    seen = probe(engine, script, tmp_path / "config.toml")
    args = seen["args"]
    for key, value in rendered.config.items():
        assert args[key] == value, key
    spec = loaded.spec
    (dataset,) = seen["datasets"]
    params = dataset["params"]
    res = spec.dataset.resolution
    assert params["resolution"] == ([res, res] if isinstance(res, int) else list(res))
    assert params["batch_size"] == spec.dataset.batch_size
    assert params["enable_bucket"] == spec.dataset.buckets.enabled
    if spec.dataset.buckets.enabled:
        assert params["min_bucket_reso"] == spec.dataset.buckets.min_resolution
        assert params["max_bucket_reso"] == spec.dataset.buckets.max_resolution
        assert params["bucket_reso_steps"] == spec.dataset.buckets.step
        assert params["bucket_no_upscale"] == spec.dataset.buckets.no_upscale
    for sub_spec, sub in zip(spec.dataset.subsets, dataset["subsets"], strict=True):
        assert sub["image_dir"] == str(sub_spec.path)
        assert sub["is_reg"] == sub_spec.regularization
        assert sub["caption_extension"] == (sub_spec.caption_extension or spec.dataset.caption_extension)
        for field in ("shuffle_caption", "keep_tokens", "flip_aug", "color_aug", "random_crop"):
            assert sub[field] == getattr(sub_spec, field), field
        assert sub["caption_prefix"] == sub_spec.caption_prefix
        if isinstance(sub_spec.repeats, int):
            assert sub["num_repeats"] == sub_spec.repeats
        else:
            assert sub["num_repeats"] == int(sub_spec.path.name.split("_")[0])


STEP_SPECS = {
    "no_buckets_folder_repeats": dict(buckets=False, batch=1, sizes=[[(128, 128)] * 6], repeats=["folder"]),
    "buckets_batch3": dict(buckets=True, batch=3, sizes=[[(128, 192)] * 4 + [(192, 128)] * 3 + [(128, 128)] * 2]),
    "subsets_and_reg": dict(
        buckets=True,
        batch=2,
        sizes=[[(128, 128)] * 5, [(256, 128)] * 3, [(128, 128)] * 4],
        repeats=[4, 7, 1],
        reg=[False, False, True],
    ),
    "grad_accum_epochs2": dict(buckets=False, batch=2, sizes=[[(128, 128)] * 7], repeats=[5], accum=3, epochs=2),
    "max_steps_no_upscale": dict(
        buckets=True, batch=2, sizes=[[(96, 160)] * 3 + [(200, 120)] * 4], repeats=[6], max_steps=17, no_upscale=True
    ),
    "auto_repeats": dict(buckets=False, batch=4, sizes=[[(128, 128)] * 6], repeats=["auto"], target=50, epochs=3),
}


def write_step_spec(root: Path, images, model: str, case: dict) -> Path:
    subsets = []
    for i, sizes in enumerate(case["sizes"]):
        repeats = case.get("repeats", ["folder"] * len(case["sizes"]))[i]
        folder = root / "img" / (f"{3 + i}_thing{i}" if repeats == "folder" else f"thing{i}")
        images(folder, sizes)
        reg = case.get("reg", [False] * len(case["sizes"]))[i]
        subsets.append(f"    - path: {folder}\n      repeats: {repeats}\n      regularization: {str(reg).lower()}\n")
    length = (
        f"  max_steps: {case['max_steps']}\n  epochs: null\n"
        if "max_steps" in case
        else f"  epochs: {case.get('epochs', 1)}\n"
    )
    text = (
        f"model:\n  source: {model}\n  family: sd15\n"
        f"dataset:\n  resolution: 128\n  batch_size: {case['batch']}\n  target_steps: {case.get('target', 1500)}\n"
        f"  buckets:\n    enabled: {str(case['buckets']).lower()}\n    min_resolution: 64\n    max_resolution: 256\n"
        f"    no_upscale: {str(case.get('no_upscale', False)).lower()}\n"
        "  subsets:\n" + "".join(subsets) + "network:\n  type: lora\n  dim: 4\n  alpha: 1\n"
        f"training:\n{length}  gradient_accumulation: {case.get('accum', 1)}\n"
        "  mixed_precision: 'no'\n  cache_latents: 'off'\n  attention: none\n"
        "output:\n  log_with: none\nlaunch:\n  cpu_threads: 1\n"
    )
    path = root / "spec.yaml"
    path.write_text(text)
    return path


def trainer_total_steps(argv: list[str], env: dict[str, str], cwd: str, timeout: float = 240) -> int:
    """Start the real trainer and read "total optimization steps" off its stdout, then stop it."""
    proc = subprocess.Popen(
        argv, cwd=cwd, env={**os.environ, **env}, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
        text=True, start_new_session=True,
    )  # fmt: skip
    deadline = time.monotonic() + timeout
    try:
        assert proc.stdout is not None
        for line in proc.stdout:
            if "total optimization steps" in line:
                return int(line.rsplit(":", 1)[1])
            if time.monotonic() > deadline:
                break
        raise AssertionError(f"trainer ended (rc {proc.poll()}) without printing its total")
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


@pytest.mark.parametrize("name", list(STEP_SPECS))
def test_plan_total_equals_the_trainers(engine, tmp_path, images, name):
    spec_path = write_step_spec(tmp_path, images, engine["ENGINE_MODEL"], STEP_SPECS[name])
    loaded = load_spec(spec_path)
    plan = make_plan(loaded)
    model = ModelChoice(Path(engine["ENGINE_MODEL"]), "sd15")
    inputs = render_inputs(loaded, model, tmp_path / "cfg", tmp_path / "out", Path(engine["ENGINE_TOKENIZERS"]))
    render_checked(loaded, inputs, bundled_surface(script_for("sd15"))).write(tmp_path / "cfg")
    install = Install(Path(engine["ARTLAB_KOHYA_DIR"]), engine["ENGINE_PYTHON"])
    argv, env = build_command(loaded.spec, install, tmp_path / "cfg" / "config.toml", "sd15", offline=True)
    total = trainer_total_steps(argv, env, engine["ARTLAB_KOHYA_DIR"])
    print(f"{name}: plan {plan.total_steps}, sd-scripts {total}", file=sys.stderr)
    assert plan.total_steps == total


def test_real_parser_reads_the_first_class_settings(engine, tmp_path):
    """The settings GUI users use, each a spec field: sd-scripts' own parser and dataset validator read them."""
    from artlab_kohya.build.render import RenderInputs, render

    spec = tmp_path / "spec.yaml"
    spec.write_text(
        f"model: {{source: {engine['ENGINE_MODEL']}, family: sdxl, no_half_vae: true}}\n"
        "dataset:\n  resolution: 1024\n  subsets:\n    - path: /img/10_sks\n      caption_dropout_every_n_epochs: 3\n"
        "      keep_tokens_separator: '|||'\n      secondary_separator: ';;;'\n"
        "network: {type: lora, dim: 8, scale_weight_norms: 1.0}\n"
        "training:\n  seed: random\n  multires_noise_iterations: 6\n  multires_noise_discount: 0.3\n"
        "  noise_offset: 0.05\n  adaptive_noise_scale: 0.01\n  ip_noise_gamma: 0.1\n  min_timestep: 100\n"
        "  max_timestep: 900\n  loss_type: huber\n  huber_c: 0.2\n  huber_schedule: exponential\n"
        "  debiased_estimation_loss: true\n  save_every_n_steps: 100\n  save_last_n_steps: 300\n  save_state: true\n"
        "output: {log_with: wandb, wandb_run_name: my run}\n"
    )
    loaded = load_spec(spec)
    inputs = RenderInputs(Path(engine["ENGINE_MODEL"]), "sdxl", (10,), ("sks",), tmp_path, tmp_path / "out", None)
    rendered = render(loaded.spec, inputs, bundled_surface("sdxl_train_network.py"))
    rendered.write(tmp_path)
    seen = probe(engine, "sdxl_train_network.py", tmp_path / "config.toml")
    for key, value in rendered.config.items():
        assert seen["args"][key] == value, key
    subset = seen["datasets"][0]["subsets"][0]
    assert subset["caption_dropout_every_n_epochs"] == 3
    assert subset["keep_tokens_separator"] == "|||" and subset["secondary_separator"] == ";;;"
