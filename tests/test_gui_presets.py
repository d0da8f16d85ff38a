"""Every Kohya GUI LoRA preset for a family we train (tests/data/gui_presets, from bmaltais/kohya_ss presets/lora):
import -> check (the spec's validation and rules) -> render, nothing dropped without a word, and the rendered
files compared key by key with what the GUI would pass (tests/gui_oracle.py, written from lora_gui.py; the
expected keys per preset are in data/gui_presets/expected/).

Where the two differ, the difference is one of the equivalences in `same()` (sd-scripts reads both alike), or
one of the places where the GUI is wrong, each checked on its own below:
- it writes `epoch` and `noise_offset_type` into the config: sd-scripts has no such arguments (ignored);
- several presets save bucket_reso_steps 1 with bucketing on, which sd-scripts asserts against (a multiple of
  64 for SD1.x/SD2.x, of 32 for SDXL): those presets fail at the trainer's start;
- for LyCORIS LoKr it passes `decompose_both=False` as the string 'False', which lycoris-lora 3.4.0 hands on
  without converting it, so it is true: the box does the opposite of what it says when off;
- it passes `rank_dropout_scale` and `train_on_input`, which lycoris-lora 3.4.0's create_network never reads;
- a text-encoder rate of 0 (or '' in older presets, which its loader turns into 0) silently trains the U-Net
  alone; the importer says so (network.train: unet);
- for FLUX.1 it passes train_blocks only as split_mode's `single` (the box alone does nothing), and drops a
  guidance_scale or discrete_flow_shift of 0 (sd-scripts then uses 3.5 / 3.0); the spec trains what the box says,
  and says so.
"""

from __future__ import annotations

import ast
import json
import math
import os
from pathlib import Path
from typing import Any

import pytest
from gui_oracle import gui_config

from artlab_kohya.build.render import RenderInputs, render
from artlab_kohya.build.tomlio import tomllib
from artlab_kohya.errors import InputError
from artlab_kohya.spec import SpecError
from artlab_kohya.spec.families import FAMILY_INFO, components
from artlab_kohya.spec.gui_import import import_gui, spec_text
from artlab_kohya.spec.load import load_spec_text
from artlab_kohya.trainer.surface import bundled_surface

DATA = Path(__file__).parent / "data" / "gui_presets"
PRESETS = sorted(DATA.glob("*.json"))
IMAGES, REPEATS = 12, 10  # the dataset both sides see: img/10_sks, 12 images of one size
FOLDERS = {"/data/img": [("10_sks", REPEATS)]}

# GUI keys that go to the dataset config in a render, under these names.
DATASET_NAMES = {
    "resolution": "resolution", "train_batch_size": "batch_size", "enable_bucket": "enable_bucket",
    "min_bucket_reso": "min_bucket_reso", "max_bucket_reso": "max_bucket_reso",
    "bucket_reso_steps": "bucket_reso_steps", "bucket_no_upscale": "bucket_no_upscale",
    "caption_extension": "caption_extension", "shuffle_caption": "shuffle_caption", "keep_tokens": "keep_tokens",
    "flip_aug": "flip_aug", "color_aug": "color_aug", "random_crop": "random_crop",
    "caption_dropout_rate": "caption_dropout_rate",
}  # fmt: skip
# Keys sd-scripts has no argument for: the GUI writes them anyway (one of its mistakes, harmless).
UNKNOWN_TO_SD_SCRIPTS = {"epoch", "noise_offset_type"}
# lycoris-lora 3.4.0 create_network defaults, and the kwargs it never reads.
LYCORIS_DEFAULTS = {"use_tucker": False, "rank_dropout": 0, "bypass_mode": False, "dora_wd": False,
                    "module_dropout": 0, "use_scalar": False, "use_cp": False, "train_norm": False, "factor": -1}  # fmt: skip
LYCORIS_UNREAD = {"rank_dropout_scale", "train_on_input"}
PATHS = {"network_weights", "vae", "resume", "ae", "clip_l", "clip_g", "t5xxl"}
BUCKET_KEYS = {"min_bucket_reso", "max_bucket_reso", "bucket_reso_steps", "bucket_no_upscale"}
# sd-scripts' own value when a key is absent, where the GUI writes it anyway.
ABSENT_MEANS = {"clip_skip": 1, "max_token_length": 75, "max_timestep": 1000}


def preset_id(path: Path) -> str:
    return path.stem


def imported(preset: Path):
    config = json.loads(preset.read_text(encoding="utf-8"))
    result = import_gui(config, folders=lambda p: FOLDERS.get(p), exists=lambda p: p in FOLDERS, dataset="/data/img")
    return config, result


def checked(result, tmp_path: Path):
    """The spec's validation; presets with bucket_reso_steps 1 are fixed to 64 after their error is seen."""
    text = spec_text(result, "preset.json")
    try:
        return load_spec_text(text, tmp_path / "spec.yaml").spec, None
    except SpecError as exc:
        error = str(exc)
        fixed = load_spec_text(text, tmp_path / "spec.yaml", ["dataset.buckets.step=64"]).spec
        return fixed, error


def rendered(spec, tmp_path: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    family = spec.model.family
    files = {name: Path(getattr(spec.model, name).path) for name in components(family)}  # FLUX.1/SD3: local paths
    inputs = RenderInputs(Path("/models/base.safetensors"), family, (REPEATS,), ("sks",), tmp_path, tmp_path / "out",
                          tmp_path / "logs", components=files)  # fmt: skip
    out = render(spec, inputs, bundled_surface(FAMILY_INFO[family].script))
    dataset = tomllib.loads(out.dataset_toml)["datasets"][0]
    flat = {k: v for k, v in dataset.items() if k != "subsets"} | dataset["subsets"][0]
    return out.config, flat


def expected(preset: Path, config: dict[str, Any]) -> dict[str, Any]:
    path = DATA / "expected" / f"{preset.stem}.json"
    data = gui_config(config, IMAGES, REPEATS)
    if os.environ.get("ARTLAB_UPDATE_GOLDEN"):
        path.parent.mkdir(exist_ok=True)
        path.write_text(json.dumps(data, indent=1) + "\n", encoding="utf-8")
    recorded = json.loads(path.read_text(encoding="utf-8"))
    assert recorded == data, f"{path.name}: the oracle and the recorded expectation disagree"
    return recorded


def _args(items: list[str] | None, literal: bool) -> dict[str, Any]:
    out = {}
    for item in items or []:
        key, _, value = item.partition("=")
        out[key] = _value(value, literal)
    return out


def _value(text: str, literal: bool) -> Any:
    if literal:
        try:
            return ast.literal_eval(text)
        except (ValueError, SyntaxError):
            return text
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return {"True": True, "False": False}.get(text, text)


def _close(a: Any, b: Any) -> bool:
    if isinstance(a, bool) or isinstance(b, bool):
        return bool(a) == bool(b)
    if isinstance(a, int | float) and isinstance(b, int | float):
        return math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-12)
    if isinstance(a, list | tuple) and isinstance(b, list | tuple):
        return len(a) == len(b) and all(_close(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_close(a[k], b[k]) for k in a)
    return a == b


def same(
    key: str, gui: Any, ours: Any, gui_all: dict[str, Any], ours_all: dict[str, Any], script: str = "train_network.py"
) -> bool:
    """Whether sd-scripts (`script`) reads the GUI's `key = gui` as it reads ours (None: not written)."""
    if key in PATHS:  # the user's paths: ours are resolved from the spec's folder
        name = lambda p: str(p).replace("\\", "/").split("/")[-1]  # noqa: E731  a Windows path read here too
        return (gui is None) == (ours is None) and name(gui) == name(ours)
    if key in BUCKET_KEYS and not gui_all.get("enable_bucket"):
        return True  # sd-scripts reads them only with bucketing on
    if key == "resolution":
        sides = [int(s) for s in str(gui).split(",")]
        ours_sides = [ours, ours] if isinstance(ours, int) else ours
        return sides * (2 // len(sides)) == list(ours_sides)
    if key == "text_encoder_lr":
        return ours is not None and _close(gui[0], ours) or ours_all.get("network_train_unet_only") is True
    if key == "learning_rate" and gui == 0:  # the base rate: unused when both parts have their own
        return "unet_lr" in ours_all and ("text_encoder_lr" in ours_all or "network_train_unet_only" in ours_all)
    if key in ("optimizer_args", "lr_scheduler_args"):
        return _close(_args(gui, True), _args(ours, True))
    if key == "network_args":
        theirs = _args(gui, False)
        if "use_cp" in theirs:  # LyCORIS takes the deprecated use_cp as use_tucker, over use_tucker itself
            theirs["use_tucker"] = theirs.pop("use_cp")
        theirs = {k: v for k, v in theirs.items() if k not in LYCORIS_UNREAD}
        if theirs.get("algo") == "ia3":  # (IA)^3 has no rank: LyCORIS reads the conv numbers and leaves them be
            theirs = {k: v for k, v in theirs.items() if k not in ("conv_dim", "conv_alpha")}
        theirs = {k: v for k, v in theirs.items() if LYCORIS_DEFAULTS.get(k, object()) != v}
        mine = _args(ours, False)
        # The GUI's 'decompose_both=False' reaches LyCORIS as a true string (see the test below); ours follows the box.
        if theirs.pop("decompose_both", False) != mine.pop("decompose_both", False):
            return False
        return _close(theirs, mine)
    if key == "max_train_steps" and ours is None and "max_train_epochs" in gui_all:
        return True  # sd-scripts counts max_train_epochs when both are given
    if key == "max_train_steps" and ours is None:  # the GUI's steps for `epoch`, ours the epochs themselves
        epochs = ours_all.get("max_train_epochs")
        per_epoch = math.ceil(IMAGES * REPEATS / gui_all["train_batch_size"] / gui_all["gradient_accumulation_steps"])
        return epochs is not None and epochs * per_epoch == gui
    if key == "xformers" and gui_all.get("mem_eff_attn"):
        return ours is None  # sd-scripts uses mem_eff_attn when both are on
    if key == "wandb_run_name":
        return gui_all.get("log_with") not in ("wandb", "all") or ours == gui
    if key == "multires_noise_discount" and "multires_noise_iterations" not in gui_all:
        return True  # read only with iterations
    if key in ("persistent_data_loader_workers",):
        return bool(gui) == bool(ours)
    if ours is None:
        if key in ABSENT_MEANS:
            return gui == ABSENT_MEANS[key]
        default = bundled_surface(script).options.get(key)
        return default is not None and _close(default.default, gui)
    return _close(gui, ours)


@pytest.mark.parametrize("preset", PRESETS, ids=preset_id)
def test_preset_imports_checks_renders_as_the_gui_would_run_it(preset, tmp_path):
    config, result = imported_or_refused(preset)
    if result is None:
        return
    said = " ".join(n for notes in result.notes.values() for n in notes) + " ".join(
        [name for name, _, _ in result.unmapped] + result.secrets + result.at_default
    )
    assert [k for k in config if k not in said] == [], "fields dropped without a word"
    spec, error = checked(result, tmp_path)
    gui = expected(preset, config)
    if error is not None:  # the GUI's own preset fails sd-scripts' assertion: bucket_reso_steps 1
        assert gui["bucket_reso_steps"] == 1 and "dataset.buckets.step" in error
    assert differences(gui, spec, error, tmp_path) == ([], [])


def differences(gui: dict[str, Any], spec, error: str | None, tmp_path: Path) -> tuple[list[str], list[str]]:
    """The keys where the rendered config differs from the GUI's, and the keys only we write."""
    ours_config, ours_dataset = rendered(spec, tmp_path)
    script = FAMILY_INFO[spec.model.family].script
    differ = []
    for key, value in gui.items():
        if key in UNKNOWN_TO_SD_SCRIPTS:
            continue
        ours = ours_dataset.get(DATASET_NAMES[key]) if key in DATASET_NAMES else ours_config.get(key)
        if key == "bucket_reso_steps" and error is not None:
            continue  # fixed above
        if not same(key, value, ours, gui, ours_config, script):
            differ.append(f"{key}: GUI {value!r}, ours {ours!r}")
    known = set(gui) | {DATASET_NAMES.get(k, k) for k in gui} | OURS_ONLY
    surface = bundled_surface(script).options
    extra = [
        k
        for k in ours_config
        if k not in known
        and not same(k, None, ours_config[k], gui, ours_config, script)
        and not (k in surface and _close(surface[k].default, ours_config[k]))  # sd-scripts' own default, written
    ]
    return differ, extra


def test_an_sd3_config_renders_as_the_gui_would_run_it(tmp_path):
    """The GUI ships no SD3 preset: an SD3 config in the shape the current GUI saves."""
    config = {
        "sd3_checkbox": True, "LoRA_type": "Standard", "pretrained_model_name_or_path": "/m/sd3.5_large.safetensors",
        "sd3_clip_l": "/m/clip_l.safetensors", "clip_g": "/m/clip_g.safetensors", "sd3_t5xxl": "/m/t5xxl.safetensors",
        "sd3_cache_text_encoder_outputs": True, "sd3_cache_text_encoder_outputs_to_disk": True,
        "weighting_scheme": "logit_normal", "logit_mean": 0.5, "logit_std": 1.2, "mode_scale": 1.29,
        "sd3_clip_l_dropout_rate": 0.1, "clip_g_dropout_rate": 0.1, "sd3_t5_dropout_rate": 0.2, "blocks_to_swap": 8,
        "text_encoder_lr": 0, "unet_lr": 0.0002, "learning_rate": 0.0002, "fp8_base": True, "mixed_precision": "bf16",
        "max_resolution": "1024,1024", "bucket_reso_steps": 64, "sd3_text_encoder_batch_size": 4, "epoch": 4,
        "max_train_steps": 0, "train_batch_size": 1, "pos_emb_random_crop_rate": 0.1, "sd3_enable_scaled_pos_embed": True,
    }  # fmt: skip
    result = import_gui(config, folders=lambda p: FOLDERS.get(p), exists=lambda p: p in FOLDERS, dataset="/data/img")
    spec, error = checked(result, tmp_path)
    assert error is None and spec.model.family == "sd3"
    gui = gui_config(config, IMAGES, REPEATS)
    assert gui["network_module"] == "networks.lora_sd3" and gui["clip_g"] == "/m/clip_g.safetensors"
    assert differences(gui, spec, None, tmp_path) == ([], [])


# What a render writes that the GUI's config does not, each read by sd-scripts as the GUI's run would have it.
OURS_ONLY = {
    "pretrained_model_name_or_path", "output_dir", "logging_dir", "dataset_config", "max_train_epochs",
    "lr_scheduler_num_cycles", "lr_scheduler_power", "max_grad_norm", "sdpa", "mem_eff_attn",
    "network_train_text_encoder_only", "network_train_unet_only", "seed", "max_data_loader_n_workers",
    "unet_lr", "learning_rate", "save_every_n_epochs", "mixed_precision", "log_with", "text_encoder_lr",
    "sample_prompts",  # the GUI writes its own prompt file too (a path: the oracle leaves paths out)
}  # fmt: skip


def imported_or_refused(preset: Path):
    try:
        return imported(preset)
    except InputError as exc:
        raise AssertionError(f"{preset.name}: every preset is of a family we train") from exc


def test_the_gui_writes_keys_sd_scripts_does_not_know():
    surface = bundled_surface("train_network.py")
    for key in UNKNOWN_TO_SD_SCRIPTS:
        assert key not in surface.options


def test_bucket_reso_steps_1_fails_sd_scripts_for_these_presets():
    """train_network.py asserts bucket_reso_steps % 64 == 0 (sdxl_train_network.py: % 32) when bucketing."""
    failing = []
    for preset in PRESETS:
        config = json.loads(preset.read_text(encoding="utf-8"))
        step, buckets = config.get("bucket_reso_steps", 64), config.get("enable_bucket", True)
        if buckets and float(step) % (32 if config.get("sdxl") else 64):
            failing.append(preset.stem)
    assert failing == ["ia3-sd15", "locon-dadaptation-sdxl", "loha-sd15", "lokr-sd15", "sd15 - GLoRA v1.0",
                       "sd15 - LoKR v1.0", "sd15 - LoKr v1.1", "sd15 - LoKr v2.0"]  # fmt: skip


def test_the_gui_turns_decompose_both_off_into_on():
    """lycoris-lora 3.4.0's kohya.create_network passes kwargs.get('decompose_both', False) on as it came:
    the GUI's 'decompose_both=False' arrives as the non-empty string 'False'."""
    lokr = [p for p in PRESETS if json.loads(p.read_text()).get("LoRA_type") == "LyCORIS/LoKr"]
    assert lokr
    for preset in lokr:
        args = gui_config(json.loads(preset.read_text()), IMAGES, REPEATS)["network_args"]
        value = dict(a.split("=", 1) for a in args)["decompose_both"]
        assert bool(value) is True  # what LyCORIS sees, whatever the box said
