"""The Kohya GUI's saved LoRA fields (bmaltais/kohya_ss, kohya_gui/lora_gui.py) and where each one goes in a
spec: declared once, read by `import-gui`, `export-gui`, scripts/gui_coverage.py and the README.

A field maps to a spec path (a first-class field), to `kohya.extra_args.NAME` (an sd-scripts argument the spec
does not model, passed on as it is), or to nothing, with the reason. The mapping follows how lora_gui.py's
train_model() turns each field into a `config_toml_data` key (and the accelerate command line), so that an
imported spec runs what the GUI would have run. `default` is the GUI widget's own value, which the GUI keeps
for a field a saved config lacks (open_configuration); `blank` is what its update_my_data() makes of a string
that is no number ("" becomes 0, the cycle count 1, the token window 75).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any, Literal, cast

from ..errors import InputError

Kind = Literal["int", "float", "bool", "str", "path", "any"]

# Why a field has no place in a spec.
SECRET = "a credential: never copied into a spec (set WANDB_API_KEY / HF_TOKEN in the environment)"
GUI_ONLY = "GUI-only: it drives the GUI's forms, not sd-scripts"
OTHER_FAMILY = (
    "not supported: a setting for a model family artlab-kohya does not train (HunyuanImage, Anima, Lumina), and "
    "the GUI passes it only for those"
)
NOT_IN_SD_SCRIPTS = "ignored by sd-scripts: train_network.py has no such argument at the pinned commit"
LAUNCH = "not supported: artlab-kohya launches accelerate itself (--dynamo_backend no; machines and GPUs: launch.*)"
CONVERTED = "converted into the fields named in the comment beside them"
# Why a field that reaches sd-scripts stays in kohya.extra_args or network.args rather than a spec field.
PASSED_ON = ("kohya.extra_args", "network.args")
UNCHANGED = "passes through unchanged"
NO_EFFECT = UNCHANGED + ": no effect on the trained weights"


@dataclass(frozen=True)
class GuiField:
    name: str
    to: str = ""  # a spec path (dots; [] for each subset) or kohya.extra_args.NAME; "" when unmapped
    why: str = ""  # unmapped: the reason; mapped: how the value is converted, when it is
    kind: Kind = "any"
    default: Any = None  # the GUI's own value when a saved config lacks the field; None: nothing reaches sd-scripts
    blank: Any = None  # update_my_data's value for a string that is no number
    old: tuple[str, ...] = ()  # names earlier GUI versions saved it under
    saved: bool = True  # the current GUI writes it (export writes it)
    plain: bool = False  # the value goes to `to` as it is, when it is set and not the GUI's default
    stays: str = ""  # passed on (kohya.extra_args, network.args): why the spec has no field for it

    @property
    def first_class(self) -> bool:
        return bool(self.to) and not self.to.startswith(PASSED_ON)

    @property
    def reason(self) -> str:
        """Why the field is not a first-class spec field ("" when it is one, or when nobody said)."""
        return "" if self.first_class else self.stays if self.to else self.why


def _pass(name: str, kind: Kind, stays: str, default: Any = None, why: str = "") -> GuiField:
    """An sd-scripts argument of the same name that the spec does not model: kohya.extra_args.NAME."""
    return GuiField(name, f"kohya.extra_args.{name}", why, kind, default, plain=True, stays=stays)


def _plain(name: str, to: str, kind: Kind = "any", default: Any = None, why: str = "") -> GuiField:
    """A spec field that takes the GUI's value as it is."""
    return GuiField(name, to, why, kind, default, plain=True)


_NETWORK_ARG = UNCHANGED + " as network.args: the network module reads it by this name"
# What networks.lora_flux takes from the GUI for LoRA_type Flux1 (network.args, unchanged).
LORA_FLUX_ARGS = (
    "img_attn_dim", "img_mlp_dim", "img_mod_dim", "single_dim", "txt_attn_dim", "txt_mlp_dim", "txt_mod_dim",
    "single_mod_dim", "in_dims", "train_double_block_indices", "train_single_block_indices",
)  # fmt: skip
_FLUX_ARG = _NETWORK_ARG + " (networks.lora_flux: per-layer ranks, block indices, GGPO)"
_HUB = NO_EFFECT + " (an upload to the Hugging Face hub; the run's record does not follow it there)"


def _none(why: str, names: str) -> tuple[GuiField, ...]:
    return tuple(GuiField(name, "", why) for name in names.split())


FIELDS: tuple[GuiField, ...] = (
    # --- source model
    GuiField("pretrained_model_name_or_path", "model.source", "a file path, or a hub repository the GUI lists", "path"),
    GuiField("v2", "model.family", "with v_parameterization: sd2 or sd2-v", "bool", False),
    GuiField("v_parameterization", "model.family", "sd2-v with v2; model.v_parameterization without", "bool", False),
    GuiField("sdxl", "model.family", "sdxl (sdxl_train_network.py)", "bool", False),
    GuiField("model_list", "", GUI_ONLY + " (its list of hub models)"),
    GuiField(
        "dataset_config",
        "",
        "not supported: the spec's dataset.subsets are rendered into sd-scripts' "
        "dataset config; list the folders there (or --dataset)",
        "path",
    ),
    GuiField("save_model_as", "output.format", "", "str", "safetensors"),
    GuiField("save_precision", "training.save_precision", "", "str", "fp16"),
    GuiField("train_data_dir", "dataset.subsets", "one subset per N_name folder, repeats: folder", "path"),
    GuiField("output_name", "output.name", "", "str", "last"),
    GuiField("training_comment", "output.comment", "", "str"),
    # --- folders
    GuiField("logging_dir", "output.logging_dir", "", "path"),
    GuiField("reg_data_dir", "dataset.subsets", "one regularization subset per N_name folder", "path"),
    GuiField("output_dir", "output.dir", "", "path"),
    # --- basic training
    GuiField("max_resolution", "dataset.resolution", "'768,768' is 768; '512,650' is [512, 650]", "str", "512,512"),
    GuiField("learning_rate", "optimizer.learning_rate", "", "float", 0.0001, 0.0),
    GuiField("lr_scheduler", "scheduler.type", "", "str", "cosine"),
    GuiField("lr_warmup", "scheduler.warmup_ratio", "a percentage of the steps", "float", 10, 0),
    GuiField("lr_warmup_steps", "scheduler.warmup_steps", "wins over lr_warmup when above 0", "int", 0, 0),
    GuiField("train_batch_size", "dataset.batch_size", "", "int", 1),
    GuiField("epoch", "training.epochs", "the GUI turns it into max_train_steps from the folders' images", "int", 1, 0),
    GuiField("save_every_n_epochs", "training.save_every_n_epochs", "0: none", "int", 1, 0),
    GuiField("seed", "training.seed", "0: sd-scripts draws one (training.seed: random)", "int", 0, 0),
    GuiField("cache_latents", "training.cache_latents", "", "bool", True, old=("cache_latent",)),
    GuiField("cache_latents_to_disk", "training.cache_latents", "disk", "bool", False),
    GuiField("train_inpainting", "", NOT_IN_SD_SCRIPTS, "bool", False),
    GuiField(
        "caption_extension",
        "dataset.caption_extension",
        "'': sd-scripts' .caption",
        "str",
        ".txt",
        old=("caption_extention",),
    ),
    GuiField("enable_bucket", "dataset.buckets.enabled", "", "bool", True),
    GuiField(
        "stop_text_encoder_training",
        "",
        NOT_IN_SD_SCRIPTS + " (the GUI says 'not yet supported. Ignoring')",
        "int",
        0,
        0,
        old=("stop_text_encoder_training_pct",),
    ),
    GuiField("min_bucket_reso", "dataset.buckets.min_resolution", "", "int", 256),
    GuiField("max_bucket_reso", "dataset.buckets.max_resolution", "", "int", 2048),
    GuiField("max_train_epochs", "training.epochs", "wins over max_train_steps in sd-scripts", "int", 0, 0),
    GuiField("max_train_steps", "training.max_steps", "absent: the GUI's 1600", "int", 1600, 0),
    GuiField("lr_scheduler_num_cycles", "scheduler.cycles", "", "int", 1, 1),
    GuiField("lr_scheduler_power", "scheduler.power", "", "float", 1.0, 1.0),
    GuiField("optimizer", "optimizer.type", "", "str", "AdamW8bit", old=("use_8bit_adam",)),
    GuiField("optimizer_args", "optimizer.args", "'key=value ...'", "str", ""),
    GuiField("lr_scheduler_args", "scheduler.args", "'key=value ...'", "str", ""),
    _plain("lr_scheduler_type", "scheduler.custom", "str", ""),
    GuiField("max_grad_norm", "optimizer.max_grad_norm", "", "float", 1.0),
    # --- accelerate launch
    GuiField("mixed_precision", "training.mixed_precision", "", "str", "fp16"),
    GuiField("num_cpu_threads_per_process", "launch.cpu_threads", "", "int", 2),
    GuiField("num_processes", "launch.num_processes", "", "int", 1),
    GuiField("num_machines", "launch.num_machines", "more than one also needs launch.main_process_ip", "int", 1),
    GuiField("multi_gpu", "launch.num_processes", "implied by more than one process", "bool", False),
    GuiField("gpu_ids", "launch.gpu_ids", "'0,1' is [0, 1]", "str", ""),
    GuiField("main_process_port", "launch.main_process_port", "0: unset; read across machines only", "int", 0),
    GuiField("dynamo_backend", "", LAUNCH, "str", "no"),
    *_none(LAUNCH, "dynamo_mode dynamo_use_fullgraph dynamo_use_dynamic extra_accelerate_launch_args"),
    # --- advanced training
    GuiField("gradient_checkpointing", "training.gradient_checkpointing", "", "bool", False),
    _plain("fp8_base", "model.fp8_base", "bool"),
    _pass(
        "fp8_base_unet",
        "bool",
        UNCHANGED + ": the FLUX.1 transformer alone in fp8 (model.fp8_base puts the text encoders in fp8 too)",
        why="FLUX.1 only",
    ),
    _pass("full_fp16", "bool", UNCHANGED + ": fp16 training, gradients included (sd-scripts' full_fp16)"),
    _pass("highvram", "bool", NO_EFFECT + " (a memory hint: the CUDA cache is kept while latents are cached)"),
    GuiField("lowvram", "", "ignored: removed from sd-scripts, and the GUI does not pass it", "bool"),
    GuiField("xformers", "training.attention", "xformers, sdpa or none (older GUIs: true/false)", "any", "xformers"),
    GuiField("shuffle_caption", "dataset.subsets[].shuffle_caption", "", "bool", False),
    _plain("save_state", "training.save_state", "bool"),
    _plain("save_state_on_train_end", "training.save_state_on_train_end", "bool"),
    _plain("resume", "training.resume", "path"),
    _plain("prior_loss_weight", "training.prior_loss_weight", "float", 1.0),
    GuiField("color_aug", "dataset.subsets[].color_aug", "", "bool", False),
    GuiField("flip_aug", "dataset.subsets[].flip_aug", "", "bool", False),
    _pass(
        "masked_loss",
        "bool",
        UNCHANGED + ": its masks come from conditioning_data_dir or alpha_mask, which a spec's subsets do not model",
    ),
    GuiField("clip_skip", "model.clip_skip", "0: unset", "int", 1, 0),
    GuiField("gradient_accumulation_steps", "training.gradient_accumulation", "", "int", 1, 0),
    GuiField("mem_eff_attn", "training.attention", "mem_eff (sd-scripts prefers it to xformers)", "bool", False),
    GuiField("max_token_length", "training.max_token_length", "", "int", 75, 75),
    GuiField("max_data_loader_n_workers", "training.workers", "", "int", 0, 0),
    GuiField("keep_tokens", "dataset.subsets[].keep_tokens", "", "int", 0, 0),
    GuiField("persistent_data_loader_workers", "training.persistent_workers", "", "bool", False),
    GuiField("bucket_no_upscale", "dataset.buckets.no_upscale", "", "bool", True),
    GuiField("random_crop", "dataset.subsets[].random_crop", "", "bool", False),
    GuiField("bucket_reso_steps", "dataset.buckets.step", "", "int", 64),
    _pass("v_pred_like_loss", "float", UNCHANGED + ": adds a v-prediction-like loss term of this weight"),
    GuiField("caption_dropout_every_n_epochs", "dataset.subsets[].caption_dropout_every_n_epochs", "", "int", 0),
    GuiField("caption_dropout_rate", "dataset.subsets[].caption_dropout_rate", "", "float", 0),
    GuiField(
        "noise_offset_type",
        "",
        "GUI-only: chooses which noise fields are passed (Original: noise_offset, "
        "adaptive_noise_scale, noise_offset_random_strength; Multires: multires_noise_*)",
        "str",
        "Original",
    ),
    GuiField("noise_offset", "training.noise_offset", "Original noise only", "float", 0, 0.0),
    _pass(
        "noise_offset_random_strength",
        "bool",
        UNCHANGED + ": a switch of training.noise_offset (a random strength up to it)",
        why="Original noise only",
    ),
    _plain("adaptive_noise_scale", "training.adaptive_noise_scale", "float", why="Original noise only"),
    _plain("multires_noise_iterations", "training.multires_noise_iterations", "int", why="Multires noise only"),
    _plain("multires_noise_discount", "training.multires_noise_discount", "float", 0.3, why="Multires noise only"),
    _plain("ip_noise_gamma", "training.ip_noise_gamma", "float"),
    _pass(
        "ip_noise_gamma_random_strength",
        "bool",
        UNCHANGED + ": a switch of training.ip_noise_gamma (a random strength)",
    ),
    GuiField(
        "additional_parameters",
        "kohya.extra_args",
        "parsed: arguments a spec field models go to it",
        "str",
        "",
        stays="a command line, not one setting: scripts/gui_coverage.py counts each of its arguments on its own",
    ),
    _plain("loss_type", "training.loss_type", "str", "l2"),
    _plain("huber_schedule", "training.huber_schedule", "str", "snr"),
    _plain("huber_c", "training.huber_c", "float", 0.1),
    _plain("huber_scale", "training.huber_scale", "float", 1.0),
    _pass("vae_batch_size", "int", NO_EFFECT + " (how many images the VAE encodes at once when caching)"),
    GuiField("min_snr_gamma", "training.min_snr_gamma", "0: unset", "float", 0),
    GuiField("save_every_n_steps", "training.save_every_n_steps", "0: unset", "int", 0),
    _plain("save_last_n_steps", "training.save_last_n_steps", "int"),
    _plain("save_last_n_steps_state", "training.save_last_n_steps_state", "int"),
    GuiField("save_last_n_epochs", "training.save_last_n_epochs", "0: unset", "int", 0),
    _plain("save_last_n_epochs_state", "training.save_last_n_epochs_state", "int"),
    _pass("skip_cache_check", "bool", NO_EFFECT + " (cached latents on disk are not checked against the images)"),
    GuiField(
        "log_with",
        "output.log_with",
        "'': tensorboard, sd-scripts' default",
        "str",
        "",
        old=("use_wandb", "use_wandb_checkbox"),
    ),
    GuiField("wandb_api_key", "", SECRET, "str", old=("wandb_api_key_textbox",)),
    GuiField("wandb_run_name", "output.wandb_run_name", "the GUI passes output_name when it is empty", "str"),
    _pass("log_tracker_name", "str", NO_EFFECT + " (the tracker's project name; the run records the spec itself)"),
    _pass("log_tracker_config", "path", NO_EFFECT + " (a TOML file of the trackers' own settings)"),
    _pass("log_config", "bool", NO_EFFECT + " (the arguments logged to the tracker; the run folder keeps them)"),
    _plain("scale_v_pred_loss_like_noise_pred", "training.scale_v_pred_loss_like_noise_pred", "bool"),
    _pass("full_bf16", "bool", UNCHANGED + ": bf16 training, gradients included (sd-scripts' full_bf16)"),
    _plain("min_timestep", "training.min_timestep", "int"),
    _plain("max_timestep", "training.max_timestep", "int", 1000),
    GuiField("vae", "model.vae", "", "path"),
    _pass(
        "weighted_captions",
        "bool",
        UNCHANGED + ": '(word:1.2)' weights in the caption files, read by sd-scripts as they are written",
    ),
    _plain("debiased_estimation_loss", "training.debiased_estimation_loss", "bool"),
    # --- SDXL
    GuiField("sdxl_cache_text_encoder_outputs", "training.cache_text_encoder_outputs", "SDXL only: memory", "bool"),
    _plain("sdxl_no_half_vae", "model.no_half_vae", "bool", why="SDXL only"),
    # --- network
    GuiField(
        "text_encoder_lr", "optimizer.text_encoder_lr", "0: the U-Net alone (network.train: unet)", "float", 0.0001, 0.0
    ),
    GuiField(
        "t5xxl_lr",
        "",
        "not supported: the spec has one text-encoder rate (optimizer.text_encoder_lr), which T5-XXL takes too",
        "float",
    ),
    GuiField(
        "unet_lr", "optimizer.unet_lr", "0: the text encoder alone (network.train: text_encoder)", "float", 0.0001, 0.0
    ),
    GuiField("network_dim", "network.dim", "", "int", 8),
    GuiField("network_weights", "network.weights", "", "path", old=("lora_network_weights",)),
    _plain("dim_from_weights", "network.dim_from_weights", "bool"),
    GuiField("network_alpha", "network.alpha", "", "float", 1),
    GuiField(
        "LoRA_type",
        "network.type",
        "Standard: lora, Kohya LoCon: lora with conv_dim, LyCORIS/X: X, Kohya DyLoRA: dylora",
        "str",
        "Standard",
    ),
    GuiField("factor", "network.factor", "LyCORIS/LoKr only", "int", -1),
    GuiField("bypass_mode", "network.bypass_mode", "LyCORIS LoCon, LoHa, LoKr only", "bool", False),
    GuiField("dora_wd", "network.dora_wd", "LyCORIS LoCon, LoHa, LoKr only", "bool", False),
    GuiField(
        "use_cp",
        "network.use_tucker",
        "LyCORIS/LoKr only; LyCORIS reads it as use_tucker, over use_tucker",
        "bool",
        False,
    ),
    GuiField("use_tucker", "network.use_tucker", "LyCORIS only", "bool", False),
    GuiField("use_scalar", "network.use_scalar", "LyCORIS LoCon, LoHa, LoKr only", "bool", False),
    GuiField("rank_dropout_scale", "", "ignored: lycoris-lora 3.4.0's create_network does not read it", "bool"),
    GuiField("constrain", "network.constraint", "LyCORIS BOFT and diag-OFT only", "float", 0.0),
    GuiField("rescaled", "network.rescaled", "LyCORIS BOFT and diag-OFT only", "bool", False),
    GuiField("train_norm", "network.train_norm", "LyCORIS only (not iA3)", "bool", False),
    GuiField("decompose_both", "network.decompose_both", "LyCORIS/LoKr only", "bool", False),
    GuiField("train_on_input", "", "ignored: lycoris-lora 3.4.0's create_network does not read it", "bool", True),
    GuiField("conv_dim", "network.conv_dim", "LyCORIS, Kohya LoCon, Kohya DyLoRA", "int", 1),
    GuiField("conv_alpha", "network.conv_alpha", "LyCORIS, Kohya LoCon, Kohya DyLoRA", "float", 1),
    GuiField("sample_every_n_steps", "sample.every_n_steps", "0: unset", "int", 0),
    GuiField("sample_every_n_epochs", "sample.every_n_epochs", "0: unset", "int", 0),
    GuiField("sample_sampler", "sample.sampler", "", "str", "euler_a"),
    GuiField("sample_prompts", "sample.prompts", "one prompt a line", "str", ""),
    GuiField("down_lr_weight", "network.down_lr_weight", "Standard and Kohya LoCon only", "str", ""),
    GuiField("mid_lr_weight", "network.mid_lr_weight", "Standard and Kohya LoCon only", "str", ""),
    GuiField("up_lr_weight", "network.up_lr_weight", "Standard and Kohya LoCon only", "str", ""),
    GuiField(
        "block_lr_zero_threshold",
        "network.args.block_lr_zero_threshold",
        "Standard and Kohya LoCon only",
        "str",
        "",
        stays=_NETWORK_ARG,
    ),
    GuiField("block_dims", "network.block_dims", "Standard and Kohya LoCon only", "str", ""),
    GuiField("block_alphas", "network.block_alphas", "Standard and Kohya LoCon only", "str", ""),
    GuiField(
        "conv_block_dims",
        "network.conv_block_dims",
        "Standard and Kohya LoCon only",
        "str",
        "",
        old=("conv_dims",),
    ),
    GuiField(
        "conv_block_alphas",
        "network.conv_block_alphas",
        "Standard and Kohya LoCon only",
        "str",
        "",
        old=("conv_alphas",),
    ),
    GuiField("unit", "network.unit", "Kohya DyLoRA (LyCORIS/DyLoRA: block_size)", "int", 1),
    _plain("scale_weight_norms", "network.scale_weight_norms", "float"),
    GuiField("network_dropout", "network.dropout", "0: unset", "float", 0),
    GuiField("rank_dropout", "network.rank_dropout", "0: unset", "float", 0),
    GuiField("module_dropout", "network.module_dropout", "0: unset", "float", 0),
    GuiField("LyCORIS_preset", "network.preset", "LyCORIS only", "str", "full"),
    *(
        GuiField(name, f"network.args.{name}", "0: unset", "float", 0, stays=_NETWORK_ARG)
        for name in ("loraplus_lr_ratio", "loraplus_text_encoder_lr_ratio", "loraplus_unet_lr_ratio")
    ),
    GuiField("train_lora_ggpo", "", CONVERTED + " (LoRA_type Flux1: ggpo_sigma and ggpo_beta as network.args)", "bool"),
    *(
        GuiField(name, f"network.args.{name}", "LoRA_type Flux1 with train_lora_ggpo", "str", stays=_FLUX_ARG)
        for name in ("ggpo_sigma", "ggpo_beta")
    ),  # fmt: skip
    # --- hugging face, metadata
    *(
        _pass(name, "str", _HUB)
        for name in (
            "huggingface_repo_id",
            "huggingface_repo_type",
            "huggingface_repo_visibility",
            "huggingface_path_in_repo",
        )
    ),
    *(_pass(name, "bool", _HUB) for name in ("save_state_to_huggingface", "resume_from_huggingface", "async_upload")),
    GuiField("huggingface_token", "", SECRET, "str"),
    *(
        _pass(f"metadata_{name}", "str", NO_EFFECT + " (text stored in the LoRA file's metadata)")
        for name in ("author", "description", "license", "tags", "title")
    ),
    # --- what older GUIs saved, and the GUI's own bookkeeping
    GuiField(
        "no_token_padding",
        "",
        "ignored: a DreamBooth option; train_network.py has no such argument",
        "bool",
        saved=False,
    ),
    GuiField("save_as_bool", "", GUI_ONLY, "bool", False),
    *(GuiField(name, "", GUI_ONLY, saved=False) for name in ("training_preset", "save_as", "file_path")),
    # --- FLUX.1 and SD3 (class_flux1.py, class_sd3.py; blocks_to_swap in class_advanced_training.py)
    GuiField("flux1_checkbox", "model.family", "flux1 (flux_train_network.py)", "bool", False),
    GuiField("sd3_checkbox", "model.family", "sd3 (sd3_train_network.py)", "bool", False),
    GuiField("model_type", "", GUI_ONLY + " for FLUX.1: flux passes nothing (Chroma is refused)", "str", "flux"),
    GuiField("ae", "model.ae", "FLUX.1 only", "path", ""),
    GuiField("clip_l", "model.clip_l", "FLUX.1 only", "path", ""),
    GuiField("t5xxl", "model.t5xxl", "FLUX.1 only", "path", ""),
    GuiField("sd3_clip_l", "model.clip_l", "SD3 only", "path", ""),
    GuiField("clip_g", "model.clip_g", "SD3 only", "path", ""),
    GuiField("sd3_t5xxl", "model.t5xxl", "SD3 only", "path", ""),
    *(
        GuiField(f"{f}_cache_text_encoder_outputs{disk}", "training.cache_text_encoder_outputs", how, "bool", False)
        for f, only in (("flux1", "FLUX.1 only"), ("sd3", "SD3 only"))
        for disk, how in (("", f"{only}: memory"), ("_to_disk", f"{only}: disk, with the cache on"))
    ),
    GuiField("blocks_to_swap", "training.blocks_to_swap", "FLUX.1 and SD3 only; 0: none", "int", 0, 0),
    GuiField(
        "guidance_scale", "flux.guidance_scale", "FLUX.1 only; 0: sd-scripts' 3.5 (the GUI drops it)", "float", 3.5
    ),
    GuiField("timestep_sampling", "flux.timestep_sampling", "FLUX.1 only", "str", "sigma"),
    GuiField(
        "discrete_flow_shift",
        "flux.discrete_flow_shift",
        "FLUX.1 only; 0: sd-scripts' 3.0 (the GUI drops it)",
        "float",
        3.0,
    ),  # fmt: skip
    GuiField("model_prediction_type", "flux.model_prediction_type", "FLUX.1 only", "str", "sigma_scaled"),
    GuiField("t5xxl_max_token_length", "flux.t5xxl_max_token_length", "FLUX.1 only", "int", 512),
    GuiField("apply_t5_attn_mask", "flux.apply_t5_attn_mask", "FLUX.1 only", "bool", False),
    GuiField("split_mode", "flux.split_mode", "FLUX.1 only; the GUI then passes train_blocks=single", "bool", False),
    GuiField(
        "train_blocks",
        "flux.train_blocks",
        "LoRA_type Flux1; the GUI passes it only as split_mode's single",
        "str",
        "all",
    ),  # fmt: skip
    GuiField("split_qkv", "flux.split_qkv", "LoRA_type Flux1 only", "bool", False),
    GuiField(
        "train_t5xxl", "flux.train_t5xxl", "LoRA_type Flux1 only (the GUI passes it for FLUX.1 alone)", "bool", False
    ),
    GuiField("cpu_offload_checkpointing", "flux.cpu_offload_checkpointing", "FLUX.1 only", "bool", False),
    GuiField(
        "mem_eff_save",
        "",
        "ignored by sd-scripts: flux_train_network.py has no such argument at the pinned "
        "commit (flux_train.py's full fine-tuning has it)",
        "bool",
        False,
    ),  # fmt: skip
    *(
        GuiField(
            name,
            "",
            "ignored by sd-scripts: deprecated and gone at the pinned commit; blocks_to_swap replaces it",
            "int",
            0,
            0,
        )  # fmt: skip
        for name in ("single_blocks_to_swap", "double_blocks_to_swap")
    ),
    GuiField(
        "show_timesteps",
        "",
        "ignored by sd-scripts: flux_train_network.py and sd3_train_network.py have no "
        "such argument at the pinned commit",
        "str",
        "",
    ),  # fmt: skip
    GuiField("show_timesteps_resolution", "", "passed only with show_timesteps, which sd-scripts ignores", "int"),
    GuiField(
        "enable_all_linear",
        "",
        "LoRA_type Flux1 OFT only (networks.oft_flux), which a spec cannot train",
        "bool",
        False,
    ),  # fmt: skip
    *(
        GuiField(name, f"network.args.{name}", "LoRA_type Flux1 only", "str", "", stays=_FLUX_ARG)
        for name in LORA_FLUX_ARGS
    ),  # fmt: skip
    GuiField("weighting_scheme", "sd3.weighting_scheme", "SD3 only", "str", "logit_normal"),
    GuiField("logit_mean", "sd3.logit_mean", "SD3 only", "float", 0.0),
    GuiField("logit_std", "sd3.logit_std", "SD3 only", "float", 1.0),
    GuiField("mode_scale", "sd3.mode_scale", "SD3 only", "float", 1.29),
    GuiField("sd3_clip_l_dropout_rate", "sd3.clip_l_dropout_rate", "SD3 only", "float", 0.0),
    GuiField("clip_g_dropout_rate", "sd3.clip_g_dropout_rate", "SD3 only", "float", 0.0),
    GuiField("sd3_t5_dropout_rate", "sd3.t5_dropout_rate", "SD3 only", "float", 0.0),
    GuiField("sd3_enable_scaled_pos_embed", "sd3.enable_scaled_pos_embed", "SD3 only", "bool", False),
    GuiField("pos_emb_random_crop_rate", "sd3.pos_emb_random_crop_rate", "SD3 only", "float", 0.0),
    *(
        GuiField(
            name,
            f"kohya.extra_args.{arg}",
            "SD3 only",
            cast(Kind, kind),
            "bf16" if arg == "t5xxl_dtype" else None,
            plain=True,
            stays=stays,
        )  # fmt: skip
        for name, arg, kind, stays in (
            ("save_clip", "save_clip", "bool", NO_EFFECT + " (sd3_train_network.py saves the LoRA only)"),
            ("save_t5xxl", "save_t5xxl", "bool", NO_EFFECT + " (sd3_train_network.py saves the LoRA only)"),
            ("t5xxl_device", "t5xxl_device", "str", NO_EFFECT + " (where T5-XXL runs while captions are encoded)"),
            ("t5xxl_dtype", "t5xxl_dtype", "str", UNCHANGED + ": T5-XXL's precision while captions are encoded"),
            (
                "sd3_text_encoder_batch_size",
                "text_encoder_batch_size",
                "int",
                NO_EFFECT + " (captions encoded at once when caching)",
            ),
            (
                "sd3_disable_mmap_load_safetensors",
                "disable_mmap_load_safetensors",
                "bool",
                NO_EFFECT + " (how the weights are read from disk)",
            ),
            (
                "sd3_fused_backward_pass",
                "fused_backward_pass",
                "bool",
                UNCHANGED + ": the optimizer step fused into the backward pass (Adafactor only)",
            ),
        )
    ),  # fmt: skip
    # --- other model families
    *_none(
        OTHER_FAMILY,
        "hunyuan_image_checkbox hunyuan_image_cache_text_encoder_outputs "
        "hunyuan_image_cache_text_encoder_outputs_to_disk hunyuan_text_encoder hunyuan_byt5 hunyuan_vae "
        "hunyuan_discrete_flow_shift hunyuan_model_prediction_type hunyuan_timestep_sampling hunyuan_sigmoid_scale "
        "hunyuan_attn_mode hunyuan_split_attn hunyuan_fp8_scaled hunyuan_fp8_vl hunyuan_text_encoder_cpu "
        "hunyuan_vae_chunk_size anima_checkbox anima_cache_text_encoder_outputs "
        "anima_cache_text_encoder_outputs_to_disk anima_qwen3 anima_vae anima_llm_adapter_path "
        "anima_t5_tokenizer_path anima_discrete_flow_shift anima_timestep_sampling anima_sigmoid_scale "
        "anima_qwen3_max_token_length anima_t5_max_token_length anima_attn_mode anima_split_attn "
        "anima_vae_chunk_size anima_vae_disable_cache anima_unsloth_offload_checkpointing anima_qwen_image_vae_2d "
        "anima_compile anima_torch_compile anima_compile_backend anima_compile_mode anima_compile_dynamic "
        "anima_compile_fullgraph anima_compile_cache_size_limit lumina_checkbox lumina_cache_text_encoder_outputs "
        "lumina_cache_text_encoder_outputs_to_disk lumina_gemma2 lumina_ae lumina_discrete_flow_shift "
        "lumina_model_prediction_type lumina_timestep_sampling lumina_sigmoid_scale lumina_gemma2_max_token_length "
        "lumina_system_prompt lumina_use_flash_attn lumina_use_sage_attn",
    ),
)

# FLUX.1 / SD3: the GUI field that holds each of the model's other files (the spec's model.ae, clip_l, ...).
COMPONENT_FIELDS = {
    "flux1": {"ae": "ae", "clip_l": "clip_l", "t5xxl": "t5xxl"},
    "sd3": {"sd3_clip_l": "clip_l", "clip_g": "clip_g", "sd3_t5xxl": "t5xxl"},
}
BY_NAME: dict[str, GuiField] = {f.name: f for f in FIELDS} | {old: f for f in FIELDS for old in f.old}
# The families' own switches: when one is on, the config is not for a family we train.
FAMILY_SWITCHES = {
    "hunyuan_image_checkbox": "HunyuanImage",
    "anima_checkbox": "Anima",
    "lumina_checkbox": "Lumina",
}
# LoRA_type -> network.type; types the spec cannot express are refused with their reason.
LORA_TYPES = {
    "Standard": "lora",
    "Kohya LoCon": "lora",
    "LoCon": "locon",
    "LyCORIS/LoCon": "locon",
    "LyCORIS/LoHa": "loha",
    "LyCORIS/LoKr": "lokr",
    "LyCORIS/iA3": "ia3",
    "LyCORIS/GLoRA": "glora",
    "LyCORIS/BOFT": "boft",
    "LyCORIS/Diag-OFT": "diag-oft",
    "Kohya DyLoRA": "dylora",
    "Flux1": "lora",
}
UNSUPPORTED_LORA_TYPES = {
    "LyCORIS/DyLoRA": "LyCORIS's DyLoRA (use 'Kohya DyLoRA': network.type dylora)",
    "LyCORIS/Native Fine-Tuning": "LyCORIS full fine-tuning",
    "LoRA-FA": "sd-scripts' networks.lora_fa",
    "Kohya LoHa": "sd-scripts' own networks.loha (SDXL and Anima only)",
    "Kohya LoKr": "sd-scripts' own networks.lokr (SDXL and Anima only)",
    "Flux1 OFT": "sd-scripts' networks.oft_flux (OFT for FLUX.1; train a Flux1 LoRA or LyCORIS instead)",
    "HunyuanImage-2.1": "HunyuanImage",
    "Anima": "Anima",
    "Lumina": "Lumina",
}
# Hub repositories the GUI's model list offers, as the spec's aliases where one is the same model.
HUB_ALIASES = {
    "runwayml/stable-diffusion-v1-5": "sd15",
    "stable-diffusion-v1-5/stable-diffusion-v1-5": "sd15",
    "stabilityai/stable-diffusion-xl-base-1.0": "sdxl",
    "stabilityai/stable-diffusion-2-1": "sd2",
}


# sd-scripts arguments in additional_parameters that a spec field models (the rest go to kohya.extra_args).
SPEC_ARGUMENTS = {
    "max_grad_norm": "optimizer.max_grad_norm",
    "learning_rate": "optimizer.learning_rate",
    "unet_lr": "optimizer.unet_lr",
    "text_encoder_lr": "optimizer.text_encoder_lr",
    "optimizer_type": "optimizer.type",
    "lr_scheduler": "scheduler.type",
    "lr_warmup_steps": "scheduler.warmup_steps",
    "lr_scheduler_num_cycles": "scheduler.cycles",
    "lr_scheduler_power": "scheduler.power",
    "seed": "training.seed",
    "max_train_epochs": "training.epochs",
    "max_train_steps": "training.max_steps",
    "noise_offset": "training.noise_offset",
    "min_snr_gamma": "training.min_snr_gamma",
    "gradient_accumulation_steps": "training.gradient_accumulation",
    "save_every_n_epochs": "training.save_every_n_epochs",
    "save_every_n_steps": "training.save_every_n_steps",
    "save_last_n_epochs": "training.save_last_n_epochs",
    "clip_skip": "model.clip_skip",
    "network_dim": "network.dim",
    "network_alpha": "network.alpha",
    "network_dropout": "network.dropout",
    "output_name": "output.name",
    "training_comment": "output.comment",
    "lr_scheduler_type": "scheduler.custom",
    "prior_loss_weight": "training.prior_loss_weight",
    "save_state": "training.save_state",
    "save_state_on_train_end": "training.save_state_on_train_end",
    "save_last_n_steps": "training.save_last_n_steps",
    "save_last_n_epochs_state": "training.save_last_n_epochs_state",
    "save_last_n_steps_state": "training.save_last_n_steps_state",
    "dim_from_weights": "network.dim_from_weights",
    "scale_weight_norms": "network.scale_weight_norms",
    "no_half_vae": "model.no_half_vae",
    "log_prefix": "output.log_prefix",
    "wandb_run_name": "output.wandb_run_name",
}
# Arguments the importer turns into a spec field of another shape.
SHAPED_ARGUMENTS = {
    "network_train_unet_only": "network.train",
    "network_train_text_encoder_only": "network.train",
    "optimizer_args": "optimizer.args",
    "lr_scheduler_args": "scheduler.args",
}


def argument_to(key: str) -> str:
    """Where an argument of additional_parameters goes: the spec field that models it, else kohya.extra_args."""
    return SHAPED_ARGUMENTS.get(key) or SPEC_ARGUMENTS.get(key) or f"kohya.extra_args.{key}"


# --------------------------------------------------------------------------- values as GUI versions wrote them


def renamed(config: dict[str, Any]) -> tuple[dict[str, Any], dict[str, str], list[str]]:
    """Old field names and shapes as the current GUI's update_my_data() reads them: the config under the
    current names, {current name: the name it was saved under}, and the old fields a current one outranks."""
    out, was, outranked = dict(config), {}, []
    if "use_8bit_adam" in out:
        flag = out.pop("use_8bit_adam")
        if "optimizer" in out:
            outranked.append("use_8bit_adam")
        else:
            out["optimizer"], was["optimizer"] = ("AdamW8bit" if truthy(flag) else "AdamW"), "use_8bit_adam"
    for old in ("use_wandb", "use_wandb_checkbox"):
        if old in out:
            if truthy(out.pop(old)):
                out["log_with"], was["log_with"] = "wandb", old
            else:
                outranked.append(old)
    for name, spec in BY_NAME.items():
        if name != spec.name and name in out:
            if spec.name in out:
                outranked.append(name)
                out.pop(name)
            else:
                out[spec.name], was[spec.name] = out.pop(name), name
    if out.get("LoRA_type") == "LoCon":
        out["LoRA_type"] = "LyCORIS/LoCon"
    return out, was, outranked


def truthy(value: Any) -> bool:
    return value is True or (isinstance(value, str) and value.strip().lower() == "true")


def coerce(spec: GuiField, value: Any) -> Any:
    """A saved value as the GUI reads it: numbers from strings ("" -> the field's blank value), flags."""
    if spec.kind in ("int", "float"):
        if isinstance(value, bool):
            return int(value)
        if isinstance(value, str):
            try:
                number = float(value)
            except ValueError:
                return spec.blank if spec.blank is not None else 0
            value = number
        if isinstance(value, int | float) and math.isfinite(value):
            return int(value) if spec.kind == "int" else plain_number(value)
        return spec.blank if spec.blank is not None else 0
    if spec.kind == "bool":
        return truthy(value) if isinstance(value, str) else bool(value)
    if spec.kind in ("str", "path") and value is not None and not isinstance(value, str):
        return str(value)
    return value


def plain_number(value: Any) -> Any:
    """1.0 -> 1 where a whole number reads better; other numbers as they are."""
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e15:
        return int(value)
    return value


def show(value: Any) -> str:
    text = json.dumps(value) if not isinstance(value, str) else repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def resolution(text: Any) -> int | list[int]:
    parts = [p.strip() for p in str(text).split(",") if p.strip()]
    try:
        sides = [int(float(p)) for p in parts]
    except ValueError:
        raise InputError(f"max_resolution: '{text}' is not 'W,H' or one side") from None
    if len(sides) == 1 or (len(sides) == 2 and sides[0] == sides[1]):
        return sides[0]
    if len(sides) == 2:
        return sides
    raise InputError(f"max_resolution: '{text}' is not 'W,H' or one side")


def numbers(text: str, kind: type) -> list[Any] | None:
    try:
        return [
            plain_number(kind(float(p))) if kind is int else plain_number(float(p))
            for p in text.split(",")
            if p.strip()
        ]
    except ValueError:
        return None


def literal(text: str) -> Any:
    """A value as sd-scripts' ast.literal_eval of an optimizer/scheduler argument reads it: True/False, a
    number (int or float as written), a tuple for commas (a list here), else the text."""
    lowered = text.lower()
    if lowered in ("true", "false"):
        return lowered == "true"
    if "," in text:
        return [literal(p) for p in text.split(",") if p]
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


def key_values(text: str) -> dict[str, Any]:
    """'weight_decay=0.01 betas=0.9,0.99' -> {weight_decay: 0.01, betas: [0.9, 0.99]} (the GUI drops the
    quotes and splits on spaces)."""
    out: dict[str, Any] = {}
    for item in text.replace('"', "").split():
        key, sep, value = item.partition("=")
        if sep and key:
            out[key] = literal(value)
    return out


def arguments(text: str) -> list[tuple[str, Any]]:
    """additional_parameters as the GUI passes them: quotes dropped, split on spaces; --key, --key=value,
    --key v1 v2."""
    found: list[tuple[str, Any]] = []
    tokens = text.replace('"', "").split()
    i = 0
    while i < len(tokens):
        token = tokens[i]
        i += 1
        if not token.startswith("--"):
            continue
        key, sep, value = token[2:].partition("=")
        values: list[Any] = [value] if sep else []
        while i < len(tokens) and not tokens[i].startswith("--"):
            values.append(tokens[i])
            i += 1
        parsed = [number_or_text(v) for v in values]
        found.append((key, True if not parsed else parsed[0] if len(parsed) == 1 else parsed))
    return found


def number_or_text(text: str) -> Any:
    try:
        return int(text)
    except ValueError:
        pass
    try:
        return plain_number(float(text))
    except ValueError:
        return text
