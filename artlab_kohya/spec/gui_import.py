"""A saved Kohya GUI LoRA config (JSON) -> a commented spec, so that the spec runs what the GUI would have run.

Every field of the config ends in the spec (a first-class field, or kohya.extra_args for an sd-scripts argument
the spec does not model) or in the list at the top of the spec with its reason (gui.py). Values come the way
GUI versions wrote them: numbers as strings ("0.0001", "1", ""), old field names, LoRA_type names. The GUI's
own defaults fill the fields a config lacks, as the GUI does when it loads one. Secrets are never copied.

The folders are looked at through the callables the caller passes (`folders`: the N_name subfolders of a
path; `exists`), so that the conversion is a function of its inputs.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ..errors import InputError
from .gui import (
    BY_NAME,
    FAMILY_SWITCHES,
    HUB_ALIASES,
    LORA_TYPES,
    SECRET,
    SPEC_ARGUMENTS,
    UNSUPPORTED_LORA_TYPES,
    arguments,
    coerce,
    key_values,
    numbers,
    plain_number,
    renamed,
    resolution,
    show,
    truthy,
)
from .model import _CREDENTIAL, CREDENTIAL_ENV, name_problem

Folders = Callable[[str], "list[tuple[str, int]] | None"]  # path -> [(folder name, repeats)], None: unreadable
PathKey = tuple[str | int, ...]
_WINDOWS = re.compile(r"^[A-Za-z]:[\\/]|\\")
_LYCORIS = ("locon", "loha", "lokr", "glora", "boft", "diag-oft")  # with conv_dim, use_tucker, dropouts
# The LyCORIS switches the GUI passes for each algorithm (lora_gui.py train_model), as network.args.
_LYCORIS_FLAGS = {
    "locon": ("bypass_mode", "dora_wd", "use_scalar", "train_norm"),
    "loha": ("bypass_mode", "dora_wd", "use_scalar", "train_norm"),
    "lokr": ("bypass_mode", "dora_wd", "use_scalar", "train_norm", "decompose_both"),
    "glora": ("train_norm",),
    "boft": ("train_norm",),
    "diag-oft": ("train_norm",),
}
_LYCORIS_FIELDS = (
    "LyCORIS_preset",
    "use_tucker",
    "use_cp",
    "factor",
    "bypass_mode",
    "dora_wd",
    "use_scalar",
    "train_norm",
    "decompose_both",
    "constrain",
    "rescaled",
)
_BLOCK_FIELDS = (
    "down_lr_weight",
    "mid_lr_weight",
    "up_lr_weight",
    "block_lr_zero_threshold",
    "block_dims",
    "block_alphas",
    "conv_block_dims",
    "conv_block_alphas",
)


@dataclass
class Imported:
    data: dict[str, Any]
    notes: dict[PathKey, list[str]] = field(default_factory=dict)
    unmapped: list[tuple[str, str, str]] = field(default_factory=list)  # (field, value shown, reason)
    at_default: list[str] = field(default_factory=list)  # fields whose value is sd-scripts' default anyway
    secrets: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


def import_gui(
    config: dict[str, Any],
    *,
    folders: Folders,
    exists: Callable[[str], bool],
    dataset: str | None = None,
    model: str | None = None,
) -> Imported:
    """The spec (as YAML data) for a GUI config; raises InputError for a config of a family or network we
    cannot train (FLUX.1, SD3, ..., LoRA-FA)."""
    return _Importer(config, folders, exists, dataset, model).run()


class _Importer:
    def __init__(
        self,
        config: dict[str, Any],
        folders: Folders,
        exists: Callable[[str], bool],
        dataset: str | None,
        model: str | None,
    ) -> None:
        self.raw, self.was, outranked = renamed(config)
        self.folders, self.exists, self.dataset, self.model = folders, exists, dataset, model
        self.out = Imported({"version": 1})
        self.done: set[str] = set()  # read by the conversion
        self.mentioned: set[str] = set()  # named in the spec's comments or the unmapped list
        for name in outranked:
            self.out.unmapped.append((name, show(config[name]), "an older GUI's field; the config's newer one is used"))

    # ------------------------------------------------------------------ reading the config

    def has(self, name: str) -> bool:
        return name in self.raw

    def get(self, name: str) -> Any:
        """The value the GUI would use: the config's, coerced as update_my_data does, else the GUI default."""
        spec = BY_NAME[name]
        self.done.add(name)
        if name not in self.raw:
            return spec.default
        return coerce(spec, self.raw[name])

    def put(self, path: str, value: Any, *gui: str, note: str = "") -> None:
        keys = path.split(".")
        node = self.out.data
        for key in keys[:-1]:
            node = node.setdefault(key, {})
        node[keys[-1]] = value
        self.note(tuple(keys), *gui, note=note)

    def note(self, keys: PathKey, *gui: str, note: str = "") -> None:
        said = []
        for name in gui:
            self.mentioned.add(name)
            absent = name not in self.raw and BY_NAME[name].default not in (None, False, "", 0)
            said.append(
                f"{self.label(name)} (absent: the GUI's {show(BY_NAME[name].default)})" if absent else self.label(name)
            )
        text = ", ".join(said) + (": " if said and note else "") + note
        if text:
            self.out.notes.setdefault(keys, []).append(text)

    def label(self, name: str) -> str:
        """The field's name, and the name an older GUI saved it under."""
        return f"{name} (saved as {self.was[name]})" if name in self.was else name

    def skip(self, name: str, reason: str) -> None:
        """A field of the config that reaches no spec field, with why (said at the top of the spec)."""
        self.done.add(name)
        if name in self.raw and name not in self.mentioned:
            self.out.unmapped.append((self.label(name), show(self.raw[name]), reason))
            self.mentioned.add(name)

    def warn(self, text: str) -> None:
        self.out.warnings.append(text)

    # ------------------------------------------------------------------ the conversion

    def run(self) -> Imported:
        self._refuse_other_families()
        family = self._model()
        self._dataset()
        self._network(family)
        self._optimizer()
        self._training()
        self._output()
        self._sample()
        self._launch()
        self._extra(family)
        self._rest()
        return self.out

    def _refuse_other_families(self) -> None:
        for name, what in FAMILY_SWITCHES.items():
            if truthy(self.raw.get(name)):
                raise InputError(
                    f"this config trains a {what} LoRA ({name} is on); artlab-kohya trains SD1.x, SD2.x and SDXL LoRAs"
                )
        lora_type = str(self.raw.get("LoRA_type", "Standard"))
        if lora_type in UNSUPPORTED_LORA_TYPES:
            raise InputError(
                f"LoRA_type '{lora_type}' ({UNSUPPORTED_LORA_TYPES[lora_type]}) has no network.type in a spec"
            )
        if lora_type not in LORA_TYPES:
            raise InputError(f"LoRA_type '{lora_type}' is unknown to this mapping ({', '.join(LORA_TYPES)})")

    def _model(self) -> str:
        sdxl, v2, vpred = self.get("sdxl"), self.get("v2"), self.get("v_parameterization")
        family = "sdxl" if sdxl else ("sd2-v" if v2 and vpred else "sd2" if v2 else "sd15")
        source = self.model or str(self.get("pretrained_model_name_or_path") or "")
        gui = () if self.model else ("pretrained_model_name_or_path",)
        if not source:
            alias = {"sd2-v": "sd2"}.get(family, family)
            self.put("model.source", alias, note=f"the config names no base model: the {family} alias")
        elif source in HUB_ALIASES:
            self.put("model.source", HUB_ALIASES[source], *gui, note=f"the GUI loads {source} from the hub")
        else:
            self.put("model.source", source, *gui, note="--model" if self.model else "")
            self._path_exists("model.source", source)
            if "/" in source and not self.exists(source) and not source.endswith((".safetensors", ".ckpt")):
                self.warn(
                    f"model.source: the GUI would load '{source}' from the hub as a Diffusers model; a spec "
                    "takes a file: write {type: hub, repo: ..., file: ...} or pass --model"
                )
        self.put("model.family", family, "sdxl", "v2", "v_parameterization")
        if vpred and not v2 and not sdxl:
            self.put("model.v_parameterization", True, "v_parameterization")
        clip_skip = self.get("clip_skip")
        if clip_skip and clip_skip > 1:
            self.put("model.clip_skip", clip_skip, "clip_skip")
        vae = self.get("vae")
        if vae:
            self.put("model.vae", vae, "vae")
            self._path_exists("model.vae", vae)
        self.skip("model_list", BY_NAME["model_list"].why)
        return family

    def _dataset(self) -> None:
        self.put("dataset.resolution", resolution(self.get("max_resolution")), "max_resolution")
        self.put("dataset.batch_size", self.get("train_batch_size"), "train_batch_size")
        buckets = bool(self.get("enable_bucket"))
        self.put("dataset.buckets.enabled", buckets, "enable_bucket")
        fields = {"min_bucket_reso": "min_resolution", "max_bucket_reso": "max_resolution", "bucket_reso_steps": "step"}
        for gui, path in fields.items():
            if buckets:
                self.put(f"dataset.buckets.{path}", self.get(gui), gui)
            else:
                self.skip(gui, "ignored by sd-scripts with bucketing off (enable_bucket false)")
        if buckets:
            self.put("dataset.buckets.no_upscale", bool(self.get("bucket_no_upscale")), "bucket_no_upscale")
        else:
            self.skip("bucket_no_upscale", "ignored by sd-scripts with bucketing off (enable_bucket false)")
        ext = self.get("caption_extension")
        if ext:
            self.put("dataset.caption_extension", ext, "caption_extension")
        else:
            self.put(
                "dataset.caption_extension",
                ".caption",
                "caption_extension",
                note="empty: the GUI passes none, and sd-scripts reads .caption files",
            )
        if self.get("dataset_config"):
            self.skip("dataset_config", BY_NAME["dataset_config"].why)
            self.warn(
                "dataset_config: the GUI trained from that dataset config, not from train_data_dir; check the subsets"
            )
        subsets: list[dict[str, Any]] = []
        train = self.dataset or str(self.get("train_data_dir") or "")
        reg = str(self.get("reg_data_dir") or "")
        gui_train = "--dataset" if self.dataset else "train_data_dir"
        if not train:
            subsets.append({"path": "img"})
            self.warn(
                "dataset.subsets: the config names no train_data_dir: edit the subset's path (an N_name folder) "
                "or pass --dataset"
            )
            notes = [(0, "placeholder: the config names no image folder")]
        else:
            notes = self._subsets(train, False, subsets, gui_train)
        if reg:
            notes += self._subsets(reg, True, subsets, "reg_data_dir")
        per_subset = {
            "shuffle_caption": bool(self.get("shuffle_caption")),
            "keep_tokens": self.get("keep_tokens"),
            "flip_aug": bool(self.get("flip_aug")),
            "color_aug": bool(self.get("color_aug")),
            "random_crop": bool(self.get("random_crop")),
            "caption_dropout_rate": float(self.get("caption_dropout_rate") or 0),
            "caption_dropout_every_n_epochs": self.get("caption_dropout_every_n_epochs") or 0,
        }
        for subset in subsets:
            subset.update({k: v for k, v in per_subset.items() if v})
        self.out.data.setdefault("dataset", {})["subsets"] = subsets
        for i, text in notes:
            self.out.notes.setdefault(("dataset", "subsets", i, "path"), []).append(text)
        set_here = [k for k, v in per_subset.items() if v]
        if set_here:
            self.out.notes.setdefault(("dataset", "subsets"), []).append(
                f"{', '.join(set_here)}: the GUI's settings, on every subset"
            )

    def _subsets(self, root: str, reg: bool, subsets: list[dict[str, Any]], gui: str) -> list[tuple[int, str]]:
        notes = []
        found = self.folders(root)
        kind = "regularization " if reg else ""
        if found is None:
            self.warn(
                f"{gui}: '{root}' does not exist here{_windows(root)}; its N_name folders could not be listed: "
                "write one subset per folder once it is here, or pass --dataset"
            )
            found = []
        if not found:
            if self.exists(root):
                self.warn(f"{gui}: '{root}' has no N_name folders (kohya's repeats_name layout)")
            subsets.append({"path": root, **({"regularization": True} if reg else {})})
            notes.append((len(subsets) - 1, f"{gui}: {kind}images; list its N_name folders as subsets"))
            return notes
        for name, _repeats in found:
            path = root if name == "." else root.rstrip("/\\") + "/" + name
            subsets.append({"path": path, "repeats": "folder", **({"regularization": True} if reg else {})})
            notes.append((len(subsets) - 1, f"{gui}: {kind}folder {name}, repeats from its name"))
        return notes

    def _network(self, family: str) -> None:
        lora_type = str(self.get("LoRA_type"))
        kind = LORA_TYPES[lora_type]
        self.put("network.type", kind, "LoRA_type", note=lora_type)
        self.put("network.dim", self.get("network_dim"), "network_dim")
        self.put("network.alpha", plain_number(self.get("network_alpha")), "network_alpha")
        args: dict[str, Any] = {}
        conv_dim, conv_alpha = self.get("conv_dim"), self.get("conv_alpha")
        if kind == "ia3":
            for name in ("conv_dim", "conv_alpha"):
                self.skip(name, "(IA)^3 has no convolution rank; LyCORIS does not read it")
        elif kind in _LYCORIS or lora_type == "Kohya LoCon" or (kind == "dylora" and conv_dim):
            self.put("network.conv_dim", conv_dim, "conv_dim", note="the GUI passes it for this LoRA_type")
            self.put("network.conv_alpha", plain_number(conv_alpha), "conv_alpha")
        else:
            self._unused(("conv_dim", "conv_alpha"), lora_type)
        weights = self.get("network_weights")
        if weights:
            self.put("network.weights", weights, "network_weights")
            self._path_exists("network.weights", weights)
        dropout = plain_number(self.get("network_dropout") or 0)
        if dropout:
            self.put("network.dropout", dropout, "network_dropout")
        for name in ("rank_dropout", "module_dropout"):
            value = plain_number(self.get(name) or 0)
            if value and kind not in ("dylora", "ia3"):
                self.put(f"network.{name}", value, name)
            elif value:
                self.skip(name, f"not read by {lora_type}")
        flags = _LYCORIS_FLAGS.get(kind, ())
        if kind in _LYCORIS or kind == "ia3":
            self.put("network.preset", self.get("LyCORIS_preset"), "LyCORIS_preset")
        if kind in _LYCORIS:
            # For LoKr the GUI passes use_cp too, which LyCORIS reads (deprecated) as use_tucker, over use_tucker
            tucker = self.get("use_cp") if kind == "lokr" else self.get("use_tucker")
            if tucker:
                self.put("network.use_tucker", True, "use_cp" if kind == "lokr" else "use_tucker")
            if kind == "lokr" and self.get("use_tucker") and not tucker:
                self.skip("use_tucker", "LyCORIS reads use_cp (false here) in its place for LoKr")
            if kind == "lokr" and self.get("factor") not in (None, -1):
                self.put("network.factor", self.get("factor"), "factor")
            if kind == "diag-oft":
                if self.get("constrain"):
                    self.put("network.constraint", plain_number(self.get("constrain")), "constrain")
                if self.get("rescaled"):
                    self.put("network.rescaled", True, "rescaled")
            for name in flags:
                if self.get(name):
                    self.put(BY_NAME[name].to, True, name)
        used = {"LyCORIS_preset", "use_tucker", *flags} if kind in _LYCORIS else set()
        used |= {"LyCORIS_preset"} if kind == "ia3" else set()
        used |= {"use_cp", "factor", "decompose_both"} if kind == "lokr" else set()
        used |= {"constrain", "rescaled"} if kind == "diag-oft" else set()
        self._unused(tuple(n for n in _LYCORIS_FIELDS if n not in used and n not in self.mentioned), lora_type)
        if lora_type in ("Standard", "Kohya LoCon"):
            self._blocks(args)
        else:
            self._unused(_BLOCK_FIELDS, lora_type)
        if kind == "dylora":
            self.put("network.unit", self.get("unit"), "unit")
        else:
            self._unused(("unit",), lora_type)
        for name in ("loraplus_lr_ratio", "loraplus_unet_lr_ratio", "loraplus_text_encoder_lr_ratio"):
            value = plain_number(self.get(name) or 0)
            if value:
                args[name] = value
                self.mentioned.add(name)
        if args:
            self.put("network.args", args, note="the GUI's " + ", ".join(sorted(args)))
        te, unet = float(self.get("text_encoder_lr") or 0), float(self.get("unet_lr") or 0)
        if te == 0 and unet != 0:
            self.put("network.train", "unet", "text_encoder_lr", note="0: the GUI trains the U-Net alone")
        elif te != 0 and unet == 0:
            self.put("network.train", "text_encoder", "unet_lr", note="0: the GUI trains the text encoder alone")

    def _unused(self, names: tuple[str, ...], lora_type: str) -> None:
        for name in names:
            self.done.add(name)
            self.skip(name, f"not passed by the GUI for LoRA_type {lora_type}")

    def _blocks(self, args: dict[str, Any]) -> None:
        """Block vectors: number lists, or a name (the WebUI's, or sd-scripts' lr curves) as it is."""
        for name in ("down_lr_weight", "up_lr_weight", "block_dims", "block_alphas", "conv_block_dims",
                     "conv_block_alphas", "mid_lr_weight"):  # fmt: skip
            text = str(self.get(name) or "").strip()
            if not text:
                continue
            values = numbers(text, int if name.endswith("dims") else float)
            if values is None:
                self.put(f"network.{name}", text, name, note="a name, as written")
            elif name == "mid_lr_weight" and len(values) == 1:
                self.put("network.mid_lr_weight", values[0], name)
            else:
                self.put(f"network.{name}", values, name)
        threshold = str(self.get("block_lr_zero_threshold") or "")
        if threshold:
            args["block_lr_zero_threshold"] = threshold
            self.mentioned.add("block_lr_zero_threshold")

    def _optimizer(self) -> None:
        self.put("optimizer.type", self.get("optimizer"), "optimizer")
        lr = float(self.get("learning_rate") or 0)
        if lr > 0:
            self.put("optimizer.learning_rate", lr, "learning_rate")
        else:
            self.skip("learning_rate", "0: the U-Net and text-encoder rates decide (the spec keeps its default)")
        for name in ("unet_lr", "text_encoder_lr"):
            value = float(self.get(name) or 0)
            if value > 0:
                self.put(f"optimizer.{name}", value, name)
        norm = self.get("max_grad_norm")
        if norm is not None and float(norm) != 1.0:
            self.put("optimizer.max_grad_norm", float(norm), "max_grad_norm")
        args = key_values(str(self.get("optimizer_args") or ""))
        if args:
            self.put("optimizer.args", args, "optimizer_args")
        self.put("scheduler.type", self.get("lr_scheduler"), "lr_scheduler")
        steps, pct = int(self.get("lr_warmup_steps") or 0), float(self.get("lr_warmup") or 0)
        if steps > 0:
            self.put("scheduler.warmup_steps", steps, "lr_warmup_steps")
            if pct:
                self.skip("lr_warmup", "lr_warmup_steps is set and wins")
        elif pct:
            self.put("scheduler.warmup_ratio", pct / 100, "lr_warmup", note=f"{show(pct)}% of the steps")
        cycles, power = self.get("lr_scheduler_num_cycles"), self.get("lr_scheduler_power")
        if cycles not in (None, 1):
            self.put("scheduler.cycles", cycles, "lr_scheduler_num_cycles")
        if power not in (None, 1, 1.0):
            self.put("scheduler.power", plain_number(power), "lr_scheduler_power")
        sargs = key_values(str(self.get("lr_scheduler_args") or ""))
        if sargs:
            self.put("scheduler.args", sargs, "lr_scheduler_args")

    def _training(self) -> None:
        self._length()
        seed = self.get("seed")
        if seed:
            self.put("training.seed", seed, "seed")
        else:
            self.put("training.seed", "random", "seed", note="0: the GUI lets sd-scripts draw one each run")
        cache, disk = self.get("cache_latents"), self.get("cache_latents_to_disk")
        self.put(
            "training.cache_latents",
            "disk" if disk else "memory" if cache else "off",
            "cache_latents",
            "cache_latents_to_disk",
        )
        self.put("training.mixed_precision", self.get("mixed_precision"), "mixed_precision")
        self.put("training.save_precision", self.get("save_precision"), "save_precision")
        every = self.get("save_every_n_epochs")
        self.put("training.save_every_n_epochs", every or None, "save_every_n_epochs")
        for gui, path in (
            ("save_every_n_steps", "save_every_n_steps"),
            ("save_last_n_epochs", "save_last_n_epochs"),
            ("min_snr_gamma", "min_snr_gamma"),
        ):
            value = plain_number(self.get(gui) or 0)
            if value:
                self.put(f"training.{path}", value, gui)
        self.put("training.gradient_checkpointing", bool(self.get("gradient_checkpointing")), "gradient_checkpointing")
        accumulate = self.get("gradient_accumulation_steps")
        if accumulate and accumulate != 1:
            self.put("training.gradient_accumulation", accumulate, "gradient_accumulation_steps")
        noise_type = str(self.get("noise_offset_type"))
        offset = plain_number(self.get("noise_offset") or 0)
        if offset and noise_type == "Original":
            self.put("training.noise_offset", offset, "noise_offset")
        elif offset:
            self.skip("noise_offset", f"not passed: noise_offset_type is {noise_type}")
        attention = self._attention()
        self.put("training.attention", attention, "xformers", "mem_eff_attn")
        tokens = self.get("max_token_length")
        if tokens in (150, 225):
            self.put("training.max_token_length", tokens, "max_token_length")
        self.put("training.workers", self.get("max_data_loader_n_workers") or 0, "max_data_loader_n_workers")
        if self.get("persistent_data_loader_workers"):
            self.put("training.persistent_workers", True, "persistent_data_loader_workers")

    def _attention(self) -> str:
        if self.get("mem_eff_attn"):
            return "mem_eff"
        value = self.get("xformers")
        if isinstance(value, bool):
            return "xformers" if value else "none"
        return {"xformers": "xformers", "sdpa": "sdpa"}.get(str(value), "none")

    def _length(self) -> None:
        """epochs or steps, the way the GUI ends up telling sd-scripts (train_model)."""
        epochs, steps, epoch = self.get("max_train_epochs"), self.get("max_train_steps"), self.get("epoch")
        from_folders = not self.raw.get("dataset_config")
        if epochs:
            self.put("training.epochs", epochs, "max_train_epochs", note="sd-scripts counts these (it wins over steps)")
            if steps:
                self.note(
                    ("training", "epochs"),
                    note=f"the GUI also passes max_train_steps {steps}, which sd-scripts then ignores",
                )
        elif steps:
            self.put("training.max_steps", steps, "max_train_steps")
            self.put(
                "training.epochs",
                None,
                "epoch",
                note=f"the GUI's epoch ({epoch}) does not reach sd-scripts when max_train_steps is set",
            )
        elif epoch and from_folders:
            self.put(
                "training.epochs",
                epoch,
                "epoch",
                note="the GUI turns it into max_train_steps = ceil(images x "
                "repeats / batch / accumulation x epoch, x2 with regularization images); the same epochs here",
            )
        else:
            self.put(
                "training.max_steps",
                1600,
                "max_train_steps",
                "epoch",
                note="neither is set: sd-scripts trains its default of 1600 steps, as the GUI would",
            )
            self.put("training.epochs", None)

    def _output(self) -> None:
        name = str(self.get("output_name") or "last")
        if name_problem(name):
            safe = re.sub(r"[^\w.\-]", "_", name).strip(".") or "lora"
            self.put("output.name", safe, "output_name", note=f"'{name}' made a file name")
            self.warn(f"output.name: '{name}' {name_problem(name)}; written as '{safe}'")
        else:
            self.put("output.name", name, "output_name")
        self.put("output.format", self.get("save_model_as"), "save_model_as")
        for gui, path in (("output_dir", "output.dir"), ("logging_dir", "output.logging_dir")):
            value = self.get(gui)
            if value:
                self.put(path, value, gui)
                self._path_exists(path, value, folder=True)
        log_with = str(self.get("log_with") or "")
        if log_with:
            self.put("output.log_with", log_with, "log_with")
        elif not self.get("logging_dir"):
            self.put("output.log_with", "none", "log_with", "logging_dir", note="both empty: sd-scripts logs nothing")
        comment = self.get("training_comment")
        if comment:
            self.put("output.comment", comment, "training_comment")

    def _sample(self) -> None:
        prompts = [line.strip() for line in str(self.get("sample_prompts") or "").splitlines() if line.strip()]
        if prompts:
            self.put("sample.prompts", prompts, "sample_prompts")
            for gui, path in (("sample_every_n_epochs", "every_n_epochs"), ("sample_every_n_steps", "every_n_steps")):
                value = self.get(gui)
                if value:
                    self.put(f"sample.{path}", value, gui)
            self.put("sample.sampler", self.get("sample_sampler"), "sample_sampler")
        else:
            for name in ("sample_every_n_epochs", "sample_every_n_steps", "sample_sampler"):
                if self.get(name) and name != "sample_sampler":
                    self.skip(name, "no sample prompts: nothing to sample")

    def _launch(self) -> None:
        processes = self.get("num_processes") or 1
        if processes != 1:
            self.put("launch.num_processes", processes, "num_processes", "multi_gpu")
        else:
            self.done.add("multi_gpu")
        threads = self.get("num_cpu_threads_per_process")
        if threads and threads != 2:
            self.put("launch.cpu_threads", threads, "num_cpu_threads_per_process")
        ids = str(self.get("gpu_ids") or "")
        if ids:
            self.put("launch.gpu_ids", [int(i) for i in ids.split(",") if i.strip().isdigit()], "gpu_ids")
        machines = self.get("num_machines") or 1
        if machines != 1:
            self.put("launch.num_machines", machines, "num_machines")
            self.warn(
                "launch.num_machines: a GUI config names no address of machine 0: set launch.main_process_ip "
                "(and launch.machine_rank on each machine)"
            )
        port = self.get("main_process_port")
        if port and machines != 1:
            self.put("launch.main_process_port", port, "main_process_port")
        elif port:
            self.skip("main_process_port", "one machine: artlab-kohya lets accelerate choose its port")
        for name in (
            "dynamo_backend",
            "dynamo_mode",
            "dynamo_use_fullgraph",
            "dynamo_use_dynamic",
            "extra_accelerate_launch_args",
        ):
            value = self.raw.get(name)
            self.done.add(name)
            if name in self.raw and value not in ("", None, False, 0, 1, "no", "default", "0", "1"):
                self.skip(name, BY_NAME[name].why)

    def _extra(self, family: str) -> None:
        """sd-scripts arguments the spec does not model (kohya.extra_args), then additional_parameters."""
        extra: dict[str, Any] = {}
        noise_type = str(self.get("noise_offset_type"))
        gated = {
            "noise_offset_random_strength": noise_type == "Original",
            "adaptive_noise_scale": noise_type == "Original",
            "multires_noise_iterations": noise_type == "Multires",
            "multires_noise_discount": noise_type == "Multires" and bool(self.get("multires_noise_iterations")),
            "sdxl_no_half_vae": family == "sdxl",
        }
        self.done.add("noise_offset_type")
        for spec in BY_NAME.values():
            if not spec.plain or spec.name in self.mentioned:
                continue
            value = self.get(spec.name)
            if spec.name in gated and not gated[spec.name]:
                if value not in (None, "", False, 0, spec.default):
                    self.skip(spec.name, "not passed by the GUI here (noise_offset_type, or not SDXL)")
                continue
            if value in (None, "", False, 0) or value == spec.default:
                continue  # what sd-scripts does anyway: listed as such by _rest
            if spec.to.startswith("kohya.extra_args."):
                key = spec.to.rsplit(".", 1)[1]
                extra[key] = value
                self.note(("kohya", "extra_args", key), spec.name)
            else:
                self.put(spec.to, plain_number(value), spec.name)
            if spec.kind == "path":
                self._path_exists(spec.to, str(value))
        if self.get("sdxl_cache_text_encoder_outputs") and family == "sdxl":
            self.put("training.cache_text_encoder_outputs", "memory", "sdxl_cache_text_encoder_outputs")
        elif self.get("sdxl_cache_text_encoder_outputs"):
            self.skip("sdxl_cache_text_encoder_outputs", "not passed by the GUI here (not SDXL)")
        if str(self.get("log_with")) in ("wandb", "all"):
            name = self.get("wandb_run_name") or self.out.data["output"]["name"]
            self.put("output.wandb_run_name", name, "wandb_run_name", "output_name")
        for key, value in arguments(str(self.get("additional_parameters") or "")):
            self._additional(key, value, extra)
        if extra:
            self.out.data.setdefault("kohya", {}).setdefault("extra_args", {}).update(extra)

    def _additional(self, key: str, value: Any, extra: dict[str, Any]) -> None:
        """One argument of additional_parameters: on the command line it wins over the config file."""
        note = "additional_parameters: on the command line, it wins over the config"
        if key in ("network_train_unet_only", "network_train_text_encoder_only") and value is True:
            self.put("network.train", "unet" if "unet" in key else "text_encoder", note=note)
        elif key in ("lr_scheduler_args", "optimizer_args"):
            items = value if isinstance(value, list) else [value]
            section = "scheduler" if key.startswith("lr_") else "optimizer"
            self.put(f"{section}.args", key_values(" ".join(str(i) for i in items)), note=note)
        elif key in SPEC_ARGUMENTS:
            self.put(SPEC_ARGUMENTS[key], value, note=note)
        else:
            extra[key] = value
            self.note(("kohya", "extra_args", key), "additional_parameters")

    def _rest(self) -> None:
        """Every field of the config is in the spec's comments, in the unmapped list, or at sd-scripts' default."""
        for name, value in self.raw.items():
            if name in self.mentioned:
                continue
            spec = BY_NAME.get(name)
            if spec is None:
                if _CREDENTIAL.search(name) or name.lower() in CREDENTIAL_ENV:
                    self._secret(name, value)
                else:
                    self.skip(name, "unknown to this mapping (a newer GUI version?)")
                    self.warn(f"{name}: unknown to this mapping; not in the spec")
            elif spec.why == SECRET:
                self._secret(name, value)
            elif not spec.to:
                self.skip(name, spec.why)
            else:
                self.out.at_default.append(self.label(name))

    def _secret(self, name: str, value: Any) -> None:
        self.mentioned.add(name)
        if value not in (None, ""):
            self.out.secrets.append(name)
        else:
            self.out.unmapped.append((name, "''", SECRET))

    def _path_exists(self, where: str, path: str, folder: bool = False) -> None:
        if folder and where in ("output.dir", "output.logging_dir"):
            return  # sd-scripts makes these
        if not self.exists(path):
            self.warn(f"{where}: '{path}' does not exist here{_windows(path)}; kept as written")


def _windows(path: str) -> str:
    return " (a Windows path)" if _WINDOWS.search(path) else ""


def spec_text(imported: Imported, source: str) -> str:
    """The imported spec as commented YAML: where every key came from, and every field that is not in it."""
    from .yamlwrite import dump

    header = [
        f"Imported by `artlab-kohya import-gui` from {source}, a Kohya GUI LoRA config.",
        "The comment beside each key names the GUI field(s) it comes from; every other field of the config",
        "is listed here with the reason it is not in the spec.",
    ]
    by_reason: dict[str, list[str]] = {}
    for name, value, reason in imported.unmapped:
        by_reason.setdefault(reason, []).append(f"{name} = {value}")
    if by_reason:
        header += ["", "Not in this spec:"]
        for reason, fields in by_reason.items():
            header += _wrapped(f"- {reason}:", "  ") + _wrapped(", ".join(fields), "    ")
    if imported.secrets:
        header += [""] + _wrapped(
            f"Not copied: {', '.join(imported.secrets)}, set in the config; a spec is copied into every run's "
            "record, so set WANDB_API_KEY / HF_TOKEN in the environment instead.",
            "",
        )
    if imported.at_default:
        header += [""] + _wrapped(
            "At what sd-scripts (or the spec) does anyway, so not written: " + ", ".join(imported.at_default) + ".", ""
        )
    if imported.warnings:
        header += ["", "Warnings:"]
        for warning in imported.warnings:
            header += _wrapped(f"- {warning}", "  ")
    return dump(imported.data, imported.notes, header + [""])


def _wrapped(text: str, indent: str, width: int = 110) -> list[str]:
    import textwrap

    more = indent + ("  " if text.startswith("-") else "")
    return textwrap.wrap(text, width, initial_indent=indent, subsequent_indent=more, break_on_hyphens=False)
