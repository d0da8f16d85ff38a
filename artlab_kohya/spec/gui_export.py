"""A spec -> a Kohya GUI LoRA config (JSON) the current GUI loads: its field names (gui.py), numbers where its
number widgets write numbers and strings where it writes strings, sorted as its SaveConfigFile() writes them.

What the GUI cannot hold (several image folders with their own settings, network args it has no box for,
artlab-kohya's own settings) is returned as notes, never dropped without a word.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path, PurePath
from typing import Any

from ..machine import data_loader_workers, this_machine
from .blocks import BLOCK_NAMES, named_values
from .families import ALIASES
from .gui import BY_NAME, COMPONENT_FIELDS, FIELDS, LORA_FLUX_ARGS, GuiField
from .model import (
    DyLoraNetwork,
    FluxSpec,
    Ia3Network,
    LokrNetwork,
    LoraNetwork,
    Sd3Spec,
    Spec,
    _LowRankLycoris,
    _LycorisNetwork,
    _OftNetwork,
)

# network.args the GUI has a field for; the rest cannot be given in the GUI.
_ARG_FIELDS = {
    "loraplus_lr_ratio": "loraplus_lr_ratio",
    "loraplus_unet_lr_ratio": "loraplus_unet_lr_ratio",
    "loraplus_text_encoder_lr_ratio": "loraplus_text_encoder_lr_ratio",
    "block_lr_zero_threshold": "block_lr_zero_threshold",
    **{name: name for name in LORA_FLUX_ARGS},
}
# The GUI field of each FLUX.1 / SD3 component file.
_FILE_FIELDS = {family: {name: gui for gui, name in files.items()} for family, files in COMPONENT_FIELDS.items()}


@dataclass
class Exported:
    config: dict[str, Any]
    notes: list[str] = field(default_factory=list)  # what the GUI cannot hold, or holds differently


def export_gui(spec: Spec, *, random_seed: bool = False) -> Exported:
    """The GUI config for `spec`; random_seed: the spec said `seed: random` (the GUI's 0)."""
    gui: dict[str, Any] = {f.name: _empty(f) for f in FIELDS if f.saved and f.to and f.name not in _DERIVED}
    gui |= {f.name: f.default for f in FIELDS if f.saved and not f.to and f.default is not None}
    out = Exported(gui)
    family = _model(spec, gui, out)
    _dataset(spec, gui, out)
    _network(spec, gui, out, family)
    _dit(spec, gui, out, family)
    _optimizer(spec, gui)
    _training(spec, gui, out)
    if random_seed:
        gui["seed"] = 0
    _output_and_sample(spec, gui, out)
    _plain_fields(spec, gui)
    _extra(spec, gui, out)
    for name, value in gui.items():
        gui[name] = _typed(BY_NAME[name], value)
    out.config = dict(sorted(gui.items()))
    return out


_DERIVED = {"additional_parameters"}


def _empty(f: GuiField) -> Any:
    """What a field holds when the spec says nothing of it: the GUI's default, else its widget's empty value."""
    if f.default is not None:
        return f.default
    return {"bool": False, "int": 0, "float": 0.0}.get(f.kind, "")


def _typed(f: GuiField, value: Any) -> Any:
    if value is None:
        return _empty(f)
    if f.kind == "int" and not isinstance(value, bool):
        return int(value)
    if f.kind == "float":
        return float(value)
    if f.kind == "bool":
        return bool(value)
    if f.kind in ("str", "path"):
        return str(value) if not isinstance(value, PurePath) else value.as_posix()
    return value


def _model(spec: Spec, gui: dict[str, Any], out: Exported) -> str | None:
    model, source = spec.model, spec.model.source
    if source.type == "local":
        gui["pretrained_model_name_or_path"] = source.path
    elif source.type == "alias":
        gui["pretrained_model_name_or_path"] = ALIASES[source.name].repo
        out.notes.append(f"model.source: the alias {source.name} is the hub repository {ALIASES[source.name].repo}")
    else:
        gui["pretrained_model_name_or_path"] = source.repo
        out.notes.append(
            f"model.source: the GUI loads a local file or a Diffusers repository, not {source.repo}'s file "
            f"{source.file}: download it (artlab-kohya fetch) and give the GUI its path"
        )
    family = (
        model.family if model.family != "auto" else (ALIASES[source.name].family if source.type == "alias" else None)
    )
    if family is None:
        out.notes.append("model.family is auto: the GUI needs sdxl/v2 set; SD1.x written (set the boxes if not)")
    gui["sdxl"] = family in ("sdxl", "sdxl-v")
    gui["flux1_checkbox"] = family == "flux1"
    gui["sd3_checkbox"] = family == "sd3"
    gui["v2"] = family in ("sd2", "sd2-v")
    gui["v_parameterization"] = family == "sd2-v" or model.v_parameterization
    gui["clip_skip"] = model.clip_skip or 1
    gui["vae"] = model.vae or ""
    if model.allow_pickle:
        out.notes.append("model.allow_pickle: the GUI loads pickles without asking")
    return family


def _dit(spec: Spec, gui: dict[str, Any], out: Exported, family: str | None) -> None:
    """FLUX.1 / SD3: the component files and the family's section, under the GUI's field names."""
    if family not in _FILE_FIELDS:
        return
    for name, field_name in _FILE_FIELDS[family].items():
        source = getattr(spec.model, name)
        if source is None:
            alias = spec.model.source
            if alias.type == "alias" and name in ALIASES[alias.name].components:
                hub = ALIASES[alias.name].components[name]
                out.notes.append(f"model.{name}: the alias's {hub.repo} {hub.filename}: download it and give the GUI "
                                 "its path")  # fmt: skip
            continue
        if source.type == "local":
            gui[field_name] = source.path
        else:
            out.notes.append(f"model.{name}: the GUI takes a local file, not {source.repo}'s {source.file}: download "
                             "it (artlab-kohya fetch) and give the GUI its path")  # fmt: skip
    t = spec.training
    cache = t.cache_text_encoder_outputs
    prefix = "flux1" if family == "flux1" else "sd3"
    gui[f"{prefix}_cache_text_encoder_outputs"] = cache != "off"
    gui[f"{prefix}_cache_text_encoder_outputs_to_disk"] = cache == "disk"
    gui["sdxl_cache_text_encoder_outputs"] = False
    gui["blocks_to_swap"] = t.blocks_to_swap or 0
    # no section: the spec trains with the section's defaults, which the GUI must be told
    section = (spec.flux or FluxSpec()) if family == "flux1" else (spec.sd3 or Sd3Spec())
    data = section.model_dump(mode="json")
    for f in FIELDS:
        if f.to.startswith("flux." if family == "flux1" else "sd3."):
            gui[f.name] = data[f.to.split(".", 1)[1]]
    if family == "flux1":
        if gui.get("t5xxl_max_token_length") is None:
            gui["t5xxl_max_token_length"] = 512
            out.notes.append("flux.t5xxl_max_token_length: unset (256 for schnell); the GUI holds a number: 512")
        if gui.get("split_mode") and gui.get("train_blocks") != "single":
            out.notes.append("flux.split_mode: the GUI then trains the single blocks only, whatever train_blocks says")
        if gui.get("train_blocks") not in ("all", "single") or (
            gui.get("train_blocks") == "single" and not gui.get("split_mode")
        ):
            out.notes.append("flux.train_blocks: the GUI passes it only with split_mode (as single)")
    elif spec.sd3 is not None and spec.sd3.training_shift != 1.0 or spec.sd3 and spec.sd3.apply_lg_attn_mask:
        out.notes.append("sd3.training_shift / apply_lg_attn_mask: the GUI has no field for them")


def _dataset(spec: Spec, gui: dict[str, Any], out: Exported) -> None:
    ds = spec.dataset
    res = ds.resolution
    gui["max_resolution"] = f"{res},{res}" if isinstance(res, int) else f"{res[0]},{res[1]}"
    gui["train_batch_size"] = ds.batch_size
    gui["enable_bucket"] = ds.buckets.enabled
    gui["min_bucket_reso"] = ds.buckets.min_resolution
    gui["max_bucket_reso"] = ds.buckets.max_resolution
    gui["bucket_reso_steps"] = ds.buckets.step
    gui["bucket_no_upscale"] = ds.buckets.no_upscale
    gui["caption_extension"] = ds.caption_extension
    for reg, key in ((False, "train_data_dir"), (True, "reg_data_dir")):
        subsets = [s for s in ds.subsets if s.regularization == reg]
        parents = {PurePath(s.path).parent for s in subsets}
        if len(parents) > 1:
            out.notes.append(
                f"dataset.subsets: the GUI's {key} is one folder of N_name folders; these subsets are in "
                f"{len(parents)} folders ({', '.join(str(p) for p in sorted(parents))}): the first is written"
            )
        gui[key] = sorted(parents)[0] if parents else ""
        for s in subsets:
            if s.repeats != "folder":
                out.notes.append(f"dataset.subsets: {s.path}: the GUI takes repeats from the folder name (N_name); "
                                 f"repeats {s.repeats} is not kept")  # fmt: skip
            if s.caption_extension or s.caption_prefix or s.caption_suffix or s.class_tokens:
                out.notes.append(f"dataset.subsets: {s.path}: caption settings per folder have no GUI field")
    first = ds.subsets[0]
    for name in ("shuffle_caption", "keep_tokens", "flip_aug", "color_aug", "random_crop", "caption_dropout_rate",
                 "caption_dropout_every_n_epochs"):  # fmt: skip
        gui[name] = getattr(first, name)
        if any(getattr(s, name) != getattr(first, name) for s in ds.subsets):
            out.notes.append(f"dataset.subsets: {name} differs between subsets; the GUI has one value (the first's)")
    for name in ("caption_tag_dropout_rate", "keep_tokens_separator", "secondary_separator"):
        if any(getattr(s, name) for s in ds.subsets):
            out.notes.append(f"dataset.subsets: {name} has no GUI field (additional_parameters cannot reach a subset)")
    if any(s.repeats == "auto" for s in ds.subsets):
        out.notes.append("dataset.target_steps: repeats: auto has no GUI field")


def _network(spec: Spec, gui: dict[str, Any], out: Exported, family: str | None) -> None:
    net = spec.network
    gui["network_dim"], gui["network_alpha"] = net.dim, net.alpha
    gui["network_weights"] = net.weights or ""
    gui["network_dropout"] = net.dropout or 0
    args = dict(net.args)
    if isinstance(net, LoraNetwork) and family == "flux1":
        gui["LoRA_type"] = "Flux1"  # networks.lora_flux
    elif isinstance(net, LoraNetwork):
        gui["LoRA_type"] = "Kohya LoCon" if net.conv_dim else "Standard"
        for name in ("block_dims", "block_alphas", "conv_block_dims", "conv_block_alphas", "down_lr_weight",
                     "up_lr_weight", "mid_lr_weight"):  # fmt: skip
            value = getattr(net, name)
            if isinstance(value, str) and value in BLOCK_NAMES:  # the GUI passes text on: the values, not the name
                scale = {"block_dims": net.dim, "block_alphas": net.alpha, "conv_block_dims": net.conv_dim,
                         "conv_block_alphas": net.conv_alpha}.get(name)  # fmt: skip
                gui[name] = ",".join(_plain(v) for v in named_values(name, value, scale))
            elif isinstance(value, str):  # sd-scripts' own lr-weight curve
                gui[name] = value
            elif isinstance(value, list):
                gui[name] = ",".join(_plain(v) for v in value)
            else:
                gui[name] = "" if value is None else _plain(value)
    elif isinstance(net, DyLoraNetwork):
        gui["LoRA_type"] = "Kohya DyLoRA"
        gui["unit"] = net.unit
    else:
        algo = str(args.pop("algo", net.type))
        gui["LoRA_type"] = {"locon": "LyCORIS/LoCon", "loha": "LyCORIS/LoHa", "lokr": "LyCORIS/LoKr",
                            "ia3": "LyCORIS/iA3", "glora": "LyCORIS/GLoRA", "boft": "LyCORIS/BOFT",
                            "diag-oft": "LyCORIS/Diag-OFT"}[algo]  # fmt: skip
    if isinstance(net, LoraNetwork | _LycorisNetwork):
        gui["rank_dropout"] = net.rank_dropout or 0
        gui["module_dropout"] = net.module_dropout or 0
    if isinstance(net, _LycorisNetwork):
        gui["conv_dim"] = net.conv_dim if net.conv_dim is not None else net.dim  # the GUI always passes one
        gui["conv_alpha"] = net.conv_alpha if net.conv_alpha is not None else net.alpha
        gui["use_tucker"] = net.use_tucker
        gui["train_norm"] = net.train_norm
        if isinstance(net, _LowRankLycoris):
            gui["bypass_mode"], gui["dora_wd"], gui["use_scalar"] = net.bypass_mode, net.dora_wd, net.use_scalar
        if isinstance(net, LokrNetwork):
            gui["use_cp"] = net.use_tucker  # for LoKr the GUI also passes use_cp, which LyCORIS reads over use_tucker
        gui["LyCORIS_preset"] = net.preset or "full"
        if isinstance(net, LokrNetwork):
            gui["factor"], gui["decompose_both"] = net.factor, net.decompose_both
        if isinstance(net, _OftNetwork):
            gui["constrain"], gui["rescaled"] = net.constraint or 0.0, net.rescaled
    elif isinstance(net, Ia3Network):
        gui["LyCORIS_preset"] = net.preset or "full"
    elif isinstance(net, LoraNetwork | DyLoraNetwork) and net.conv_dim is not None:
        gui["conv_dim"], gui["conv_alpha"] = net.conv_dim, net.conv_alpha if net.conv_alpha is not None else 1
    for key, value in args.items():
        if key in ("ggpo_sigma", "ggpo_beta") and family == "flux1":
            gui[key], gui["train_lora_ggpo"] = value, True
        elif key in _ARG_FIELDS:
            gui[_ARG_FIELDS[key]] = value
        else:
            out.notes.append(f"network.args.{key}: the GUI has no field for it (it builds network_args itself)")
    gui["text_encoder_lr"] = gui["unet_lr"] = None  # set by _optimizer, which knows network.train
    if isinstance(net, LokrNetwork) and not net.decompose_both:
        out.notes.append(
            "network: the GUI passes decompose_both=False as the string 'False', which lycoris-lora 3.4.0 reads as "
            "true: a LoKr trained from this config decomposes both factors"
        )


def _optimizer(spec: Spec, gui: dict[str, Any]) -> None:
    opt, sched, train = spec.optimizer, spec.scheduler, spec.network.train
    gui["optimizer"] = opt.type
    gui["learning_rate"] = opt.learning_rate
    # The GUI reads a rate of 0 as "do not train this part", and fills in nothing: both rates are written.
    gui["unet_lr"] = 0 if train == "text_encoder" else (opt.unet_lr or opt.learning_rate)
    gui["text_encoder_lr"] = 0 if train == "unet" else (opt.text_encoder_lr or opt.learning_rate)
    gui["max_grad_norm"] = opt.max_grad_norm
    gui["optimizer_args"] = " ".join(f"{k}={_arg(v)}" for k, v in opt.args.items())
    gui["lr_scheduler"] = sched.type
    gui["lr_warmup"] = (sched.warmup_ratio or 0) * 100
    gui["lr_warmup_steps"] = sched.warmup_steps or 0
    gui["lr_scheduler_num_cycles"] = sched.cycles
    gui["lr_scheduler_power"] = sched.power
    gui["lr_scheduler_args"] = " ".join(f"{k}={_arg(v)}" for k, v in sched.args.items())


def _training(spec: Spec, gui: dict[str, Any], out: Exported) -> None:
    t = spec.training
    if t.max_steps is not None:
        gui["max_train_steps"], gui["max_train_epochs"], gui["epoch"] = t.max_steps, 0, 1
    else:  # max_train_epochs makes sd-scripts count the epochs itself, over the GUI's own step estimate
        gui["max_train_steps"], gui["max_train_epochs"], gui["epoch"] = 0, t.epochs, t.epochs
    gui["save_every_n_epochs"] = t.save_every_n_epochs or 0
    gui["save_every_n_steps"] = t.save_every_n_steps or 0
    gui["save_last_n_epochs"] = t.save_last_n_epochs or 0
    gui["mixed_precision"] = spec.launch.mixed_precision or t.mixed_precision
    gui["save_precision"] = t.save_precision
    gui["seed"] = t.seed
    gui["cache_latents"] = t.cache_latents != "off"
    gui["cache_latents_to_disk"] = t.cache_latents == "disk"
    gui["gradient_checkpointing"] = t.gradient_checkpointing
    gui["gradient_accumulation_steps"] = t.gradient_accumulation
    gui["noise_offset_type"] = "Original"
    gui["noise_offset"] = t.noise_offset or 0
    gui["min_snr_gamma"] = t.min_snr_gamma or 0
    gui["xformers"] = {"xformers": "xformers", "sdpa": "sdpa"}.get(t.attention, "none")
    gui["mem_eff_attn"] = t.attention == "mem_eff"
    gui["max_token_length"] = t.max_token_length
    launch = spec.launch
    workers = t.workers
    if workers == "auto":  # the GUI holds a number: what a run on this machine would choose
        workers, _ = data_loader_workers(this_machine(), launch.num_processes, launch.cpu_threads)
        out.notes.append(f"training.workers is auto: written as {workers}, this machine's choice")
    gui["max_data_loader_n_workers"] = workers
    gui["persistent_data_loader_workers"] = workers > 0 if t.persistent_workers == "auto" else t.persistent_workers
    gui["num_processes"] = launch.num_processes
    gui["num_machines"] = launch.num_machines
    gui["main_process_port"] = launch.main_process_port or 0
    if launch.num_machines > 1:
        out.notes.append(
            "launch.main_process_ip / machine_rank: the GUI has no field for them (its extra_accelerate_launch_args)"
        )
    if t.cache_text_encoder_outputs == "disk":
        out.notes.append("training.cache_text_encoder_outputs: disk; the GUI's SDXL box caches in memory")
    gui["sdxl_cache_text_encoder_outputs"] = t.cache_text_encoder_outputs != "off"
    gui["multi_gpu"] = launch.num_processes > 1
    gui["gpu_ids"] = ",".join(str(i) for i in launch.gpu_ids) if launch.gpu_ids else ""
    gui["num_cpu_threads_per_process"] = launch.cpu_threads


def _output_and_sample(spec: Spec, gui: dict[str, Any], out: Exported) -> None:
    o, s = spec.output, spec.sample
    gui["output_name"] = o.name
    gui["output_dir"] = o.dir or ""
    gui["save_model_as"] = o.format
    gui["logging_dir"] = o.logging_dir or ""
    gui["log_with"] = "" if o.log_with == "none" else o.log_with
    if o.log_with == "tensorboard" and not o.logging_dir:
        out.notes.append("output.logging_dir: unset (artlab-kohya logs into the run folder); the GUI needs a folder")
    gui["training_comment"] = o.comment or ""
    gui["sample_prompts"] = "\n".join(s.prompts)
    gui["sample_every_n_epochs"] = s.every_n_epochs or 0
    gui["sample_every_n_steps"] = s.every_n_steps or 0
    gui["sample_sampler"] = s.sampler
    if s.at_first:
        out.notes.append("sample.at_first: the GUI has no field for it")
    if not spec.training.stop_on_nan:
        out.notes.append("training.stop_on_nan: artlab-kohya's own; the GUI trains on through NaN losses")
    if spec.launch.profile != "default":
        out.notes.append(f"launch.profile: {spec.launch.profile} is artlab-kohya's own; the GUI has no profiles")
    if spec.launch.cudnn_benchmark:
        out.notes.append("launch.cudnn_benchmark: artlab-kohya's own; the GUI cannot set cuDNN autotuning")
    if spec.kohya.dir or spec.kohya.python:
        out.notes.append("kohya.dir / kohya.python: the GUI runs its own sd-scripts")


def _plain_fields(spec: Spec, gui: dict[str, Any]) -> None:
    """Spec fields that hold the GUI's value as it is (gui.py's plain fields)."""
    data = spec.model_dump(mode="json")
    for f in FIELDS:
        if not f.plain or f.to.startswith("kohya.extra_args") or not f.saved:
            continue
        value: Any = data
        for part in f.to.split("."):
            value = value.get(part) if isinstance(value, dict) else None
        if value not in (None, False):
            gui[f.name] = value
            if f.name.startswith("multires_noise"):
                gui["noise_offset_type"] = "Multires"  # the GUI passes these only then
    gui["wandb_run_name"] = spec.output.wandb_run_name or ""
    gui["caption_dropout_every_n_epochs"] = spec.dataset.subsets[0].caption_dropout_every_n_epochs


def _extra(spec: Spec, gui: dict[str, Any], out: Exported) -> None:
    """kohya.extra_args: a GUI field where one passes that argument, else additional_parameters."""
    by_argument = {f.to.rsplit(".", 1)[1]: f for f in FIELDS if f.to.startswith("kohya.extra_args.")}
    rest = []
    for key, value in spec.kohya.extra_args.items():
        f = by_argument.get(key)
        if f is not None and f.saved:
            gui[f.name] = value
            continue
        if value is True:
            rest.append(f"--{key}")
        elif isinstance(value, list):
            rest.append(f"--{key} " + " ".join(_plain(v) for v in value))
        elif value is not False:
            rest.append(f"--{key}={_plain(value)}")
    if spec.output.log_prefix:  # no GUI field: sd-scripts' own argument
        rest.append(f"--log_prefix={spec.output.log_prefix}")
    gui["additional_parameters"] = " ".join(rest)
    if gui.get("noise_offset_type") == "Multires" and gui.get("noise_offset"):
        out.notes.append("training.noise_offset: the GUI passes either noise_offset or multires noise, not both")


def _plain(value: Any) -> str:
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, Path | PurePath):
        return value.as_posix()
    return str(value)


def _arg(value: Any) -> str:
    """An optimizer or scheduler argument as the GUI's text box holds it: key=value, a tuple as a,b."""
    if isinstance(value, list):
        return ",".join(_plain(v) for v in value)
    return _plain(value)
