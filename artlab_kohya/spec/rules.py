"""Rules that judge several fields together, each naming the field it points at.

Errors are what sd-scripts would reject (often only after minutes of model loading); warnings
are the practice of the Kohya LoRA guide. Rules that need the images (counts, total steps) live
in plan.py. `check_files` looks at the disk for the files a spec names (the base model first); it is
kept apart from `check_rules` because `render` may write files for a machine that has them.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Literal

from .blocks import BLOCK_NAMES
from .blocks import lengths as blocks_lengths
from .families import ALIAS_NAMES, ALIASES, FAMILY_INFO, Family
from .model import LYCORIS_ALGOS, DyLoraNetwork, Ia3Network, LoconNetwork, LohaNetwork, LoraNetwork, Spec
from .yamlpos import PathKey

Found = tuple[Literal["error", "warning"], PathKey, str]

ADAPTIVE_OPTIMIZERS = ("dadapt", "prodigy")


def check_rules(spec: Spec) -> list[Found]:
    return [*_errors(spec), *_warnings(spec)]


def is_adaptive(optimizer: str) -> bool:
    """DAdaptation and Prodigy find their own step size and expect lr 1.0."""
    return optimizer.lower().startswith(ADAPTIVE_OPTIMIZERS)


def _errors(spec: Spec) -> Iterator[Found]:
    training, sched = spec.training, spec.scheduler
    if training.max_steps is not None and "epochs" in training.model_fields_set and training.epochs is not None:
        yield "error", ("training", "max_steps"), "give either training.epochs or training.max_steps, not both"
    if training.max_steps is None and training.epochs is None:
        yield "error", ("training", "epochs"), "give training.epochs or training.max_steps"
    if sched.warmup_steps is not None and sched.warmup_ratio is not None:
        yield "error", ("scheduler", "warmup_ratio"), "give warmup_steps or warmup_ratio, not both"
    has_warmup = bool(sched.warmup_steps) or bool(sched.warmup_ratio)
    if has_warmup and sched.type in ("constant", "adafactor"):
        field = "warmup_steps" if sched.warmup_steps else "warmup_ratio"
        yield (
            "error",
            ("scheduler", field),
            (
                f"sd-scripts refuses a warmup with the {sched.type} schedule; "
                "use constant_with_warmup or drop the warmup"
            ),
        )
    launch = spec.launch
    if launch.machine_rank >= launch.num_machines:
        yield (
            "error",
            ("launch", "machine_rank"),
            f"must be below launch.num_machines ({launch.num_machines}); ranks count from 0",
        )
    if launch.num_machines > 1 and launch.main_process_ip is None:
        yield (
            "error",
            ("launch", "main_process_ip"),
            "num_machines > 1 needs the address of machine 0 (a SLURM job sets it on each node)",
        )
    if sched.type == "adafactor" and spec.optimizer.type != "Adafactor":
        yield "error", ("scheduler", "type"), "the adafactor schedule only works with optimizer.type: Adafactor"
    if sched.type == "piecewise_constant" and "step_rules" not in sched.args:
        yield "error", ("scheduler", "args"), "piecewise_constant needs args.step_rules, e.g. '1:10,0.1:20,0.01'"

    if training.cache_latents != "off":
        for i, subset in enumerate(spec.dataset.subsets):
            for name in ("color_aug", "random_crop"):
                if getattr(subset, name):
                    yield (
                        "error",
                        ("dataset", "subsets", i, name),
                        (
                            f"{name} changes the pixels every epoch, so it cannot be used with cached latents; "
                            "set training.cache_latents: off"
                        ),
                    )
    if all(subset.regularization for subset in spec.dataset.subsets):
        yield "error", ("dataset", "subsets"), "every subset is a regularization set; add one with training images"
    yield from _bucket_errors(spec)

    net = spec.network
    if isinstance(net, DyLoraNetwork) and net.dim % net.unit:
        yield "error", ("network", "unit"), f"network.dim ({net.dim}) must be a multiple of the unit ({net.unit})"
    if isinstance(net, DyLoraNetwork) and net.conv_dim is not None and net.conv_dim != net.dim:
        yield "error", ("network", "conv_dim"), f"DyLoRA needs conv_dim equal to dim ({net.dim}) or unset"
    if isinstance(net, LoraNetwork):
        yield from _block_errors(net, known_family(spec))
    if getattr(net, "conv_alpha", None) is not None and getattr(net, "conv_dim", None) is None:
        yield "error", ("network", "conv_alpha"), "needs network.conv_dim as well"
    if net.dim_from_weights and net.weights is None:
        yield "error", ("network", "dim_from_weights"), "needs network.weights, the file whose ranks it reads"

    yield from _network_args_errors(spec)
    yield from _training_errors(spec)

    sample = spec.sample
    if (sample.every_n_epochs or sample.every_n_steps or sample.at_first) and not sample.prompts:
        yield "error", ("sample", "prompts"), "sampling is switched on but there are no prompts"
    for i, prompt in enumerate(sample.prompts):
        # prompts.txt holds one prompt a line; sd-scripts skips blank lines and lines starting with '#',
        # which would silently drop a prompt and renumber the sample images after it.
        if not prompt.strip() or "\n" in prompt or "\r" in prompt or prompt.startswith("#"):
            yield (
                "error",
                ("sample", "prompts", i),
                "a sample prompt is one line of text that does not start with '#' (sd-scripts reads "
                "prompts.txt line by line and skips blank and '#' lines)",
            )

    launch = spec.launch
    if launch.gpu_ids is not None and len(launch.gpu_ids) != launch.num_processes:
        yield (
            "error",
            ("launch", "gpu_ids"),
            (f"lists {len(launch.gpu_ids)} GPU(s) for {launch.num_processes} process(es); give one per process"),
        )


def known_family(spec: Spec) -> Family | None:
    """The family when the spec says it (model.family, or an alias); None for `auto` on a file."""
    if spec.model.family != "auto":
        return spec.model.family
    source = spec.model.source
    return ALIASES[source.name].family if source.type == "alias" else None


def v_prediction(spec: Spec) -> bool | None:
    family = known_family(spec)
    if spec.model.v_parameterization or (family is not None and FAMILY_INFO[family].v_prediction):
        return True
    return None if family is None else False


_BLOCK_FIELDS = {
    "block_dims": "block",
    "block_alphas": "block",
    "conv_block_dims": "block",
    "conv_block_alphas": "block",
    "down_lr_weight": "down",
    "up_lr_weight": "up",
    "mid_lr_weight": "mid",
}


def _block_errors(net: LoraNetwork, family: str | None) -> Iterator[Found]:
    """Block vectors as long as sd-scripts asserts for the family (SDXL has fewer blocks); named vectors are
    defined on SD1.x/SD2.x's blocks."""
    families = [family] if family else ["sd15", "sdxl"]
    for name, kind in _BLOCK_FIELDS.items():
        value = getattr(net, name)
        if value is None:
            continue
        if isinstance(value, str):
            if value in BLOCK_NAMES and family == "sdxl":
                yield (
                    "error",
                    ("network", name),
                    f"the named vectors ({value}) are SD1.x/SD2.x's blocks; give SDXL's "
                    f"{blocks_lengths('sdxl')[kind]} values as a list",
                )
            continue
        count = 1 if isinstance(value, int | float) else len(value)
        wanted = sorted({blocks_lengths(f)[kind] for f in families})
        if count not in wanted:
            which = f"for {family}" if family else "(SD1.x/SD2.x or SDXL)"
            yield (
                "error",
                ("network", name),
                f"needs {' or '.join(map(str, wanted))} values {which} (got {count})",
            )
    if net.block_alphas is not None and net.block_dims is None:
        yield "error", ("network", "block_alphas"), "needs network.block_dims as well"
    if net.conv_block_alphas is not None and net.conv_block_dims is None:
        yield "error", ("network", "conv_block_alphas"), "needs network.conv_block_dims as well"
    weighs = net.block_dims is not None or any(
        v is not None for v in (net.down_lr_weight, net.mid_lr_weight, net.up_lr_weight)
    )
    if net.conv_block_dims is not None and not weighs:
        yield (
            "error",
            ("network", "conv_block_dims"),
            "sd-scripts reads it only with block_dims or a learning-rate weight; give one of them too",
        )
    for name, base in (("conv_block_dims", "conv_dim"), ("conv_block_alphas", "conv_alpha")):
        if isinstance(getattr(net, name), str) and getattr(net, base) is None:
            yield "error", ("network", name), f"a named vector is a share of network.{base}: set that too"


def _network_args_errors(spec: Spec) -> Iterator[Found]:
    """network.args are passed last: one that a network field (or network.type) sets would replace it silently."""
    net = spec.network
    fields = set(type(net).model_fields) - {"train", "weights", "dropout", "args", "type", "scale_weight_norms"}
    for key in net.args:
        if key == "algo":
            yield (
                "error",
                ("network", "args", "algo"),
                f"the algorithm is network.type ({net.type}); set network.type instead "
                f"(lora, dylora, {', '.join(LYCORIS_ALGOS)})",
            )
        elif key in fields:
            yield "error", ("network", "args", key), f"network.{key} sets it; set that field instead"
    if isinstance(net, DyLoraNetwork) and net.scale_weight_norms is not None:
        yield (
            "error",
            ("network", "scale_weight_norms"),
            "networks.dylora has no max-norm regularization (sd-scripts would fail on it); use lora or a LyCORIS type",
        )


def _training_errors(spec: Spec) -> Iterator[Found]:
    t = spec.training
    if t.adaptive_noise_scale is not None and t.noise_offset is None:
        yield "error", ("training", "adaptive_noise_scale"), "needs training.noise_offset (sd-scripts refuses it alone)"
    if t.min_timestep is not None and t.max_timestep is not None and t.min_timestep >= t.max_timestep:
        yield "error", ("training", "min_timestep"), f"must be below max_timestep ({t.max_timestep})"
    if t.scale_v_pred_loss_like_noise_pred and v_prediction(spec) is False:
        yield (
            "error",
            ("training", "scale_v_pred_loss_like_noise_pred"),
            "needs a v-prediction model (family sd2-v or sdxl-v, or model.v_parameterization); "
            "sd-scripts refuses it otherwise",
        )
    buckets, family = spec.dataset.buckets, known_family(spec)
    if buckets.enabled:
        multiple = {"sdxl": 32}.get(family or "", 64) if family else 32
        if buckets.step % multiple:
            which = f"for {family}" if family else "for SDXL, and of 64 for SD1.x/SD2.x"
            yield (
                "error",
                ("dataset", "buckets", "step"),
                f"sd-scripts asserts a multiple of {multiple} {which} (got {buckets.step})",
            )


def _bucket_errors(spec: Spec) -> Iterator[Found]:
    """sd-scripts asserts min <= both resolution sides <= max, after rounding min down and max up to the step."""
    buckets, res = spec.dataset.buckets, spec.dataset.resolution
    if not buckets.enabled:
        return
    sides = (res, res) if isinstance(res, int) else tuple(res)
    low = buckets.min_resolution - buckets.min_resolution % buckets.step
    high = -(-buckets.max_resolution // buckets.step) * buckets.step
    if min(sides) < low:
        yield (
            "error",
            ("dataset", "buckets", "min_resolution"),
            (
                f"{buckets.min_resolution} is above the resolution's shorter side ({min(sides)}); sd-scripts refuses "
                "that: lower it or turn buckets off"
            ),
        )
    if max(sides) > high:
        yield (
            "error",
            ("dataset", "buckets", "max_resolution"),
            (
                f"{buckets.max_resolution} is below the resolution's longer side ({max(sides)}); sd-scripts refuses "
                "that: raise it or turn buckets off"
            ),
        )


def _warnings(spec: Spec) -> Iterator[Found]:
    opt, net, model = spec.optimizer, spec.network, spec.model
    if is_adaptive(opt.type):
        for name in ("learning_rate", "unet_lr", "text_encoder_lr"):
            value = getattr(opt, name)
            if value is not None and value != 1.0:
                yield (
                    "warning",
                    ("optimizer", name),
                    (f"{opt.type} adapts its own step size; the guide sets the learning rate to 1.0 (got {value:g})"),
                )
    elif opt.text_encoder_lr is not None and opt.text_encoder_lr > (opt.unet_lr or opt.learning_rate):
        yield (
            "warning",
            ("optimizer", "text_encoder_lr"),
            ("is above the U-Net's; the guide keeps it lower (5e-5 against 1e-4)"),
        )

    limits = {LoconNetwork: 64, LohaNetwork: 32}
    for kind, most in limits.items():
        if isinstance(net, kind):
            if net.dim > most:
                yield "warning", ("network", "dim"), f"the guide keeps {net.type} dim at {most} or less (got {net.dim})"
            if net.alpha != 1:
                yield "warning", ("network", "alpha"), f"the guide uses alpha 1 for {net.type} (got {net.alpha:g})"
    if net.alpha > net.dim:
        yield (
            "warning",
            ("network", "alpha"),
            (f"alpha {net.alpha:g} is above dim {net.dim}: the weights are scaled up by {net.alpha / net.dim:g}"),
        )
    conv_dim, conv_alpha = getattr(net, "conv_dim", None), getattr(net, "conv_alpha", None)
    if conv_dim is not None and conv_alpha is not None and conv_alpha > conv_dim:
        yield "warning", ("network", "conv_alpha"), "is above network.conv_dim"

    resolution = spec.dataset.resolution
    sides = (resolution, resolution) if isinstance(resolution, int) else resolution
    if any(side % 64 for side in sides):
        yield "warning", ("dataset", "resolution"), f"{list(sides)} is not a multiple of 64"
    if model.family == "sdxl" and model.clip_skip is not None:
        yield "warning", ("model", "clip_skip"), "sd-scripts ignores clip_skip for SDXL"
    if spec.output.format != "safetensors":
        yield (
            "warning",
            ("output", "format"),
            (f"{spec.output.format} files are pickles that can run code when loaded; prefer safetensors"),
        )
    if spec.training.save_every_n_epochs is None and spec.training.save_every_n_steps is None:
        yield (
            "warning",
            ("training", "save_every_n_epochs"),
            ("only the last epoch is saved, so you cannot pick the epoch whose loss looks best"),
        )
    yield from _training_warnings(spec)
    launch_mp = spec.launch.mixed_precision
    if launch_mp is not None and launch_mp != spec.training.mixed_precision:
        yield (
            "warning",
            ("launch", "mixed_precision"),
            (f"{launch_mp} differs from training.mixed_precision ({spec.training.mixed_precision})"),
        )
    if spec.sample.prompts and not (spec.sample.every_n_epochs or spec.sample.every_n_steps or spec.sample.at_first):
        yield "warning", ("sample", "prompts"), "no sample.every_n_epochs/every_n_steps is set, so they are never used"


def _training_warnings(spec: Spec) -> Iterator[Found]:
    t, net = spec.training, spec.network
    if t.multires_noise_discount is not None and t.multires_noise_iterations is None:
        yield "warning", ("training", "multires_noise_discount"), "has no effect without multires_noise_iterations"
    if t.loss_type not in ("huber", "smooth_l1"):
        for name in ("huber_c", "huber_schedule", "huber_scale"):
            if getattr(t, name) is not None:
                yield "warning", ("training", name), f"has no effect with loss_type {t.loss_type}"
    if t.zero_terminal_snr and v_prediction(spec) is False:
        yield "warning", ("training", "zero_terminal_snr"), "is meant for v-prediction models (sd-scripts warns too)"
    if t.save_last_n_steps is not None and t.save_every_n_steps is None:
        yield "warning", ("training", "save_last_n_steps"), "only counts step checkpoints: set save_every_n_steps"
    for name in ("save_last_n_epochs_state", "save_last_n_steps_state"):
        if getattr(t, name) is not None and not t.save_state:
            yield "warning", ("training", name), "only counts the states save_state writes: set save_state"
    if t.prior_loss_weight != 1.0 and not any(s.regularization for s in spec.dataset.subsets):
        yield "warning", ("training", "prior_loss_weight"), "has no effect without a regularization subset"
    if spec.output.wandb_run_name is not None and spec.output.log_with not in ("wandb", "all"):
        yield "warning", ("output", "wandb_run_name"), "is used only with output.log_with wandb or all"
    if isinstance(net, Ia3Network) and net.preset != "ia3":
        yield "warning", ("network", "preset"), "LyCORIS recommends preset ia3 for (IA)^3 (it warns otherwise)"


# --------------------------------------------------------------------------- files on this disk

MODEL_SUFFIXES = (".safetensors", ".ckpt", ".pt", ".pth", ".bin")
_HUB_REPO = re.compile(r"[\w.\-]+/[\w.\-]+")


def check_files(spec: Spec, base_dir: Path) -> list[Found]:
    """Errors for files the spec names that this disk lacks: the base model, its VAE, network weights.

    A local model.source that does not exist may be a typo of an alias (`sd-15`) or a hub repository
    written as a path (`owner/repo`); the message says which form was probably meant.
    """
    found: list[Found] = []
    source = spec.model.source
    if source.type == "local" and not _exists(source.path):
        found.append(("error", ("model", "source"), _missing_model(source.path, base_dir)))
    for at, path in ((("model", "vae"), spec.model.vae), (("network", "weights"), spec.network.weights)):
        if path is not None and not _exists(path):
            found.append(("error", at, f"{path} does not exist"))
    for name in ("ae", "clip_l", "clip_g", "t5xxl"):  # FLUX.1/SD3 files given as local paths
        component = getattr(spec.model, name)
        if component is not None and component.type == "local" and not _exists(component.path):
            found.append(("error", ("model", name), f"{component.path} does not exist"))
    return found


def _exists(path: Path) -> bool:
    try:
        return path.exists()
    except OSError:  # a name too long for the file system, a folder we may not enter
        return False


def _missing_model(path: Path, base_dir: Path) -> str:
    try:
        written = path.relative_to(base_dir.resolve()).as_posix()
    except ValueError:
        written = str(path)
    squashed = re.sub(r"[\W_]", "", written).lower()
    alias: str | None = next((a for a in ALIAS_NAMES if a == squashed), None)
    alias = alias or next(iter(difflib.get_close_matches(written.lower(), ALIAS_NAMES, n=1, cutoff=0.6)), None)
    if alias is not None:
        aliases = ", ".join(ALIAS_NAMES)
        return f"no file '{written}' next to the spec; did you mean {alias} (one of the aliases {aliases})?"
    if _HUB_REPO.fullmatch(written) and not written.lower().endswith(MODEL_SUFFIXES):
        return (
            f"'{written}' is not a file next to the spec; for a Hugging Face hub repository write "
            f"{{type: hub, repo: {written}, file: <file>.safetensors}}"
        )
    return f"{path} does not exist (a checkpoint file or a diffusers folder; relative paths start at the spec's folder)"
