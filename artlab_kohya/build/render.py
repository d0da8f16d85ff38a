"""A validated spec -> the files sd-scripts reads: --dataset_config and --config_file TOML.

Rendering is pure: the same spec and inputs give the same bytes. Paths are absolute. Every key
is checked against the argument surface of the trainer script before anything is written.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..files import write_atomic
from ..spec.blocks import BLOCK_NAMES, named_values
from ..spec.families import FAMILY_INFO, Family
from ..spec.model import (
    DyLoraNetwork,
    LokrNetwork,
    LoraNetwork,
    Spec,
    _LowRankLycoris,
    _LycorisNetwork,
    _OftNetwork,
)
from ..trainer.surface import Surface
from .family_args import family_network, family_problems, family_sections
from .speed import Speed, fixed_speed
from .tomlio import dumps

HEADER = "# Rendered by artlab-kohya from {spec}. Do not edit: change the spec and render again.\n"


class RenderError(Exception):
    """Keys the trainer would not accept; `problems` holds (spec path, message) pairs."""

    def __init__(self, problems: list[tuple[tuple[str | int, ...], str]]) -> None:
        super().__init__("; ".join(m for _, m in problems))
        self.problems = problems


@dataclass(frozen=True)
class RenderInputs:
    """What rendering needs beyond the spec: resolved model, family, repeats, folders."""

    model_path: Path
    family: Family
    repeats: tuple[int, ...]
    class_tokens: tuple[str | None, ...]
    config_dir: Path
    output_dir: Path
    logging_dir: Path | None
    tokenizer_cache_dir: Path | None = None
    spec_name: str = "spec.yaml"
    components: dict[str, Path] = field(default_factory=dict)  # FLUX.1/SD3: ae, clip_l, clip_g, t5xxl
    speed: Speed | None = None  # build/speed.py's choices; None: the spec's own values (auto: sd-scripts')


@dataclass(frozen=True)
class Rendered:
    dataset_toml: str
    config_toml: str
    prompts_txt: str | None
    config: dict[str, Any]  # the flat key -> value view sd-scripts ends up with

    def write(self, folder: Path) -> list[Path]:
        folder.mkdir(parents=True, exist_ok=True)
        files = [(DATASET_FILE, self.dataset_toml), (CONFIG_FILE, self.config_toml)]
        if self.prompts_txt is not None:
            files.append((PROMPTS_FILE, self.prompts_txt))
        written = []
        for name, text in files:
            write_atomic(folder / name, text)
            written.append(folder / name)
        return written


# sd-scripts arguments that a --dataset_config overrides (or makes it ignore), and the spec field that sets each.
DATASET_ARGUMENTS = {
    "resolution": "dataset.resolution",
    "train_batch_size": "dataset.batch_size",
    "enable_bucket": "dataset.buckets.enabled",
    "min_bucket_reso": "dataset.buckets.min_resolution",
    "max_bucket_reso": "dataset.buckets.max_resolution",
    "bucket_reso_steps": "dataset.buckets.step",
    "bucket_no_upscale": "dataset.buckets.no_upscale",
    "caption_extension": "dataset.caption_extension",
    "train_data_dir": "dataset.subsets[].path",
    "reg_data_dir": "dataset.subsets[].path (regularization: true)",
    "in_json": "dataset.subsets",
    "dataset_repeats": "dataset.subsets[].repeats",
    "shuffle_caption": "dataset.subsets[].shuffle_caption",
    "keep_tokens": "dataset.subsets[].keep_tokens",
    "keep_tokens_separator": "dataset.subsets[].keep_tokens_separator",
    "secondary_separator": "dataset.subsets[].secondary_separator",
    "flip_aug": "dataset.subsets[].flip_aug",
    "color_aug": "dataset.subsets[].color_aug",
    "random_crop": "dataset.subsets[].random_crop",
    "caption_dropout_rate": "dataset.subsets[].caption_dropout_rate",
    "caption_dropout_every_n_epochs": "dataset.subsets[].caption_dropout_every_n_epochs",
    "caption_tag_dropout_rate": "dataset.subsets[].caption_tag_dropout_rate",
    "caption_prefix": "dataset.subsets[].caption_prefix",
    "caption_suffix": "dataset.subsets[].caption_suffix",
}

DATASET_FILE = "dataset.toml"
CONFIG_FILE = "config.toml"
PROMPTS_FILE = "prompts.txt"


def render(spec: Spec, inputs: RenderInputs, surface: Surface) -> Rendered:
    dataset = _dataset_doc(spec, inputs)
    sections = _config_sections(spec, inputs)
    problems = family_problems(spec, inputs.family) + _check(sections, spec, surface)
    if problems:
        raise RenderError(problems)
    header = HEADER.format(spec=inputs.spec_name)
    flat = {k: v for table in sections.values() for k, v in table.items()}
    prompts = "".join(p + "\n" for p in spec.sample.prompts) if spec.sample.prompts else None
    return Rendered(
        dataset_toml=header + dumps(dataset),
        config_toml=header + dumps({k: v for k, v in sections.items() if v}),
        prompts_txt=prompts,
        config=flat,
    )


def _dataset_doc(spec: Spec, inputs: RenderInputs) -> dict[str, Any]:
    ds = spec.dataset
    resolution: int | list[int] = ds.resolution if isinstance(ds.resolution, int) else list(ds.resolution)
    dataset: dict[str, Any] = {
        "resolution": resolution,
        "batch_size": ds.batch_size,
        "enable_bucket": ds.buckets.enabled,
    }
    if ds.buckets.enabled:
        dataset |= {
            "min_bucket_reso": ds.buckets.min_resolution,
            "max_bucket_reso": ds.buckets.max_resolution,
            "bucket_reso_steps": ds.buckets.step,
            "bucket_no_upscale": ds.buckets.no_upscale,
        }
    subsets = []
    for i, sub in enumerate(ds.subsets):
        entry: dict[str, Any] = {
            "image_dir": str(sub.path),
            "num_repeats": inputs.repeats[i],
            "caption_extension": sub.caption_extension or ds.caption_extension,
        }
        if inputs.class_tokens[i]:
            entry["class_tokens"] = inputs.class_tokens[i]
        entry |= {
            "is_reg": sub.regularization,
            "shuffle_caption": sub.shuffle_caption,
            "keep_tokens": sub.keep_tokens,
            "flip_aug": sub.flip_aug,
            "color_aug": sub.color_aug,
            "random_crop": sub.random_crop,
            "caption_dropout_rate": sub.caption_dropout_rate,
            "caption_tag_dropout_rate": sub.caption_tag_dropout_rate,
        }
        if sub.caption_dropout_every_n_epochs:
            entry["caption_dropout_every_n_epochs"] = sub.caption_dropout_every_n_epochs
        if sub.keep_tokens_separator is not None:
            entry["keep_tokens_separator"] = sub.keep_tokens_separator
        if sub.secondary_separator is not None:
            entry["secondary_separator"] = sub.secondary_separator
        if sub.caption_prefix is not None:
            entry["caption_prefix"] = sub.caption_prefix
        if sub.caption_suffix is not None:
            entry["caption_suffix"] = sub.caption_suffix
        subsets.append(entry)
    dataset["subsets"] = subsets
    return {"datasets": [dataset]}


def _network(spec: Spec, family: Family) -> dict[str, Any]:
    net = spec.network
    args: dict[str, Any] = {}
    if isinstance(net, LoraNetwork | DyLoraNetwork):
        module = "networks.lora" if isinstance(net, LoraNetwork) else "networks.dylora"
    else:
        module = "lycoris.kohya"
        args["algo"] = net.type
    args["conv_dim"] = getattr(net, "conv_dim", None)
    args["conv_alpha"] = getattr(net, "conv_alpha", None)
    if isinstance(net, DyLoraNetwork):
        args["unit"] = net.unit
    if isinstance(net, LoraNetwork | _LycorisNetwork):
        args["rank_dropout"] = net.rank_dropout
        args["module_dropout"] = net.module_dropout
    if isinstance(net, LoraNetwork):
        args |= _blocks(net, family)
    if isinstance(net, _LycorisNetwork):
        args["use_tucker"] = net.use_tucker or None
        args["train_norm"] = net.train_norm or None
    if isinstance(net, _LowRankLycoris):
        args |= {"dora_wd": net.dora_wd or None, "bypass_mode": net.bypass_mode or None}
        args["use_scalar"] = net.use_scalar or None
    if not isinstance(net, LoraNetwork | DyLoraNetwork):
        args["preset"] = net.preset
    if isinstance(net, _OftNetwork):
        args["constraint"] = net.constraint
        args["rescaled"] = net.rescaled or None
    if isinstance(net, LokrNetwork) and net.factor != -1:
        args["factor"] = net.factor
    if isinstance(net, LokrNetwork):  # never False: LyCORIS reads the string 'False' as true
        args["decompose_both"] = net.decompose_both or None
    args |= net.args
    network_args = [f"{k}={_plain(v)}" for k, v in args.items() if v is not None]
    return {
        "network_module": module,
        "network_dim": net.dim,
        "network_alpha": float(net.alpha),
        "network_dropout": net.dropout,
        "scale_weight_norms": net.scale_weight_norms,
        "network_args": network_args or None,
        "network_weights": str(net.weights) if net.weights else None,
        "dim_from_weights": net.dim_from_weights,
        "network_train_unet_only": net.train == "unet",
        "network_train_text_encoder_only": net.train == "text_encoder",
    }


def _blocks(net: LoraNetwork, family: Family) -> dict[str, str | None]:
    """Block vectors as networks.lora reads them: comma-separated; a named vector (spec/blocks.py) scaled by
    the dim or alpha it is a share of, and cut into the down/up parts for the learning-rate weights."""
    out: dict[str, str | None] = {}
    scales = {"block_dims": net.dim, "block_alphas": net.alpha, "conv_block_dims": net.conv_dim,
              "conv_block_alphas": net.conv_alpha}  # fmt: skip
    for name in ("block_dims", "block_alphas", "conv_block_dims", "conv_block_alphas", "down_lr_weight",
                 "up_lr_weight"):  # fmt: skip
        value = getattr(net, name)
        if value is None:
            out[name] = None
            continue
        if isinstance(value, str) and value not in BLOCK_NAMES:
            out[name] = value  # sd-scripts' own lr-weight curve
            continue
        if isinstance(value, str):
            if family == "sdxl":
                raise RenderError([(("network", name), f"the named vectors ({value}) are SD1.x/SD2.x's blocks; "
                                    "give SDXL's values as a list")])  # fmt: skip
            values: list[Any] = named_values(name, value, scales.get(name))
        else:
            values = list(value)
        out[name] = ",".join(_plain(v) for v in values)
    mid = net.mid_lr_weight
    if isinstance(mid, list):
        out["mid_lr_weight"] = ",".join(_plain(v) for v in mid)
    else:
        out["mid_lr_weight"] = None if mid is None else _plain(mid)
    return out


def _plain(value: Any) -> str:
    """network_args reach the network module as strings: 'true', '0.1', '8'."""
    if isinstance(value, bool):
        return "True" if value else "False"
    if isinstance(value, float) and value.is_integer():
        return str(int(value)) if abs(value) < 1e15 else repr(value)
    return str(value)


def _literal(value: Any) -> str:
    """optimizer_args and lr_scheduler_args go through ast.literal_eval in sd-scripts."""
    if isinstance(value, list):
        return "(" + ",".join(_literal(v) for v in value) + ("," if len(value) == 1 else "") + ")"
    return repr(value)


def _config_sections(spec: Spec, inputs: RenderInputs) -> dict[str, dict[str, Any]]:
    model, training, opt, sched, out = spec.model, spec.training, spec.optimizer, spec.scheduler, spec.output
    family = inputs.family
    speed = inputs.speed or fixed_speed(spec)
    optimizer_args = {**speed.optimizer_args, **opt.args}
    v_pred = model.v_parameterization or FAMILY_INFO[family].v_prediction
    sections: dict[str, dict[str, Any]] = {
        "model_arguments": {
            "pretrained_model_name_or_path": str(inputs.model_path),
            "v2": FAMILY_INFO[family].v2,
            "v_parameterization": v_pred,
            "clip_skip": model.clip_skip,
            "vae": str(model.vae) if model.vae else None,
            "no_half_vae": model.no_half_vae,
            "tokenizer_cache_dir": str(inputs.tokenizer_cache_dir) if inputs.tokenizer_cache_dir else None,
        },
        "dataset_arguments": {
            "dataset_config": str(inputs.config_dir / DATASET_FILE),
            "cache_latents": training.cache_latents != "off",
            "cache_latents_to_disk": training.cache_latents == "disk",
            "max_token_length": None if training.max_token_length == 75 else training.max_token_length,
            "max_data_loader_n_workers": speed.workers,
            "persistent_data_loader_workers": speed.persistent_workers,
        },
        "network_arguments": family_network(_network(spec, family), spec, family),
        "optimizer_arguments": {
            "optimizer_type": opt.type,
            "learning_rate": opt.learning_rate,
            "unet_lr": opt.unet_lr,
            "text_encoder_lr": opt.text_encoder_lr,
            "max_grad_norm": opt.max_grad_norm,
            "optimizer_args": [f"{k}={_literal(v)}" for k, v in optimizer_args.items()] or None,
            "lr_scheduler": sched.type,
            "lr_warmup_steps": sched.warmup_ratio if sched.warmup_ratio is not None else sched.warmup_steps,
            "lr_scheduler_num_cycles": sched.cycles,
            "lr_scheduler_power": sched.power,
            "lr_scheduler_args": [f"{k}={_literal(v)}" for k, v in sched.args.items()] or None,
            "lr_scheduler_type": sched.custom,
        },
        "saving_arguments": {
            "output_dir": str(inputs.output_dir),
            "output_name": out.name,
            "save_model_as": out.format,
            "save_precision": training.save_precision,
            "save_every_n_epochs": training.save_every_n_epochs,
            "save_every_n_steps": training.save_every_n_steps,
            "save_last_n_epochs": training.save_last_n_epochs,
            "save_last_n_steps": training.save_last_n_steps,
            "save_state": training.save_state,
            "save_state_on_train_end": training.save_state_on_train_end,
            "save_last_n_epochs_state": training.save_last_n_epochs_state,
            "save_last_n_steps_state": training.save_last_n_steps_state,
            "resume": str(training.resume) if training.resume else None,
            "training_comment": out.comment,
        },
        "training_arguments": {
            "max_train_epochs": training.epochs if training.max_steps is None else None,
            "max_train_steps": training.max_steps,
            "mixed_precision": training.mixed_precision,
            "seed": training.seed if isinstance(training.seed, int) else None,
            "gradient_checkpointing": training.gradient_checkpointing,
            "gradient_accumulation_steps": training.gradient_accumulation,
            "prior_loss_weight": None if training.prior_loss_weight == 1.0 else training.prior_loss_weight,
            "sdpa": training.attention == "sdpa",
            "xformers": training.attention == "xformers",
            "mem_eff_attn": training.attention == "mem_eff",
            "noise_offset": training.noise_offset,
            "min_snr_gamma": training.min_snr_gamma,
            "multires_noise_iterations": training.multires_noise_iterations,
            "multires_noise_discount": training.multires_noise_discount,
            "adaptive_noise_scale": training.adaptive_noise_scale,
            "ip_noise_gamma": training.ip_noise_gamma,
            "min_timestep": training.min_timestep,
            "max_timestep": training.max_timestep,
            "loss_type": None if training.loss_type == "l2" else training.loss_type,
            "huber_c": training.huber_c,
            "huber_schedule": training.huber_schedule,
            "huber_scale": training.huber_scale,
            "debiased_estimation_loss": training.debiased_estimation_loss,
            "zero_terminal_snr": training.zero_terminal_snr,
            "scale_v_pred_loss_like_noise_pred": training.scale_v_pred_loss_like_noise_pred,
            "logging_dir": str(inputs.logging_dir) if inputs.logging_dir and out.log_with != "none" else None,
            "log_with": None if out.log_with == "none" else out.log_with,
            "wandb_run_name": out.wandb_run_name,
            "log_prefix": out.log_prefix,
        },
        "sample_arguments": {
            "sample_prompts": str(inputs.config_dir / PROMPTS_FILE) if spec.sample.prompts else None,
            "sample_every_n_epochs": spec.sample.every_n_epochs,
            "sample_every_n_steps": spec.sample.every_n_steps,
            "sample_sampler": spec.sample.sampler if spec.sample.prompts else None,
            "sample_at_first": spec.sample.at_first,
        },
        **family_sections(spec, family, inputs.components),
        "extra_arguments": {**speed.extra_args, **spec.kohya.extra_args},
    }
    # TOML has no null, and a store_true flag written as false is the default anyway.
    return {
        name: {k: v for k, v in table.items() if v is not None and v is not False} for name, table in sections.items()
    }


def _check(sections: dict[str, dict[str, Any]], spec: Spec, surface: Surface) -> list[tuple[Any, str]]:
    problems: list[tuple[Any, str]] = []
    rendered = {k for name, table in sections.items() if name != "extra_arguments" for k in table}
    for key, value in spec.kohya.extra_args.items():
        where = ("kohya", "extra_args", key)
        if key in DATASET_ARGUMENTS:
            problems.append((where, f"--{key} is set by the dataset config rendered from {DATASET_ARGUMENTS[key]} "
                             "(sd-scripts would not read it from here); set that spec field instead"))  # fmt: skip
            continue
        if key in rendered or key in ("config_file", "dataset_config", "output_config"):
            problems.append((where, f"--{key} is set from the spec already; change the spec field instead"))
            continue
        wrong = surface.problem(key, value)
        if wrong:
            problems.append((where, wrong))
    for name, table in sections.items():
        if name == "extra_arguments":
            continue
        for key, value in table.items():
            wrong = surface.problem(key, value)
            if wrong:
                problems.append(((), f"internal: rendered {wrong}"))
    return problems
