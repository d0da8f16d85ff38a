"""What the Kohya GUI would pass to sd-scripts for a saved LoRA config: the --config_file keys, as read in
bmaltais/kohya_ss kohya_gui/lora_gui.py (train_model's config_toml_data for SD1.x/SD2.x/SDXL, FLUX.1 and SD3,
with common_gui.update_my_data's coercions and the widgets' defaults for absent fields: class_flux1.py,
class_sd3.py, class_advanced_training.py). Written from reading that
code, apart from artlab-kohya's importer, so that test_gui_presets.py can hold one against the other.

    ARTLAB_UPDATE_GOLDEN=1 .venv/bin/pytest tests/test_gui_presets.py   # rewrites data/gui_presets/expected/
"""

from __future__ import annotations

import math
from typing import Any

# The widgets' values for fields a config lacks (open_configuration keeps them).
WIDGET_DEFAULTS: dict[str, Any] = {
    "LoRA_type": "Standard", "LyCORIS_preset": "full", "adaptive_noise_scale": 0, "additional_parameters": "",
    "bucket_no_upscale": True, "bucket_reso_steps": 64, "bypass_mode": False, "cache_latents": True,
    "cache_latents_to_disk": False, "caption_dropout_every_n_epochs": 0, "caption_dropout_rate": 0,
    "caption_extension": ".txt", "clip_skip": 1, "color_aug": False, "constrain": 0.0, "conv_alpha": 1,
    "conv_dim": 1, "debiased_estimation_loss": False, "decompose_both": False, "dora_wd": False,
    "enable_bucket": True, "epoch": 1, "factor": -1, "flip_aug": False, "gradient_accumulation_steps": 1,
    "gradient_checkpointing": False, "huber_c": 0.1, "huber_scale": 1.0, "huber_schedule": "snr",
    "ip_noise_gamma": 0, "keep_tokens": 0, "learning_rate": 0.0001, "log_with": "", "loss_type": "l2",
    "lr_scheduler": "cosine", "lr_scheduler_args": "", "lr_scheduler_num_cycles": 1, "lr_scheduler_power": 1.0,
    "lr_scheduler_type": "", "lr_warmup": 10, "lr_warmup_steps": 0, "max_bucket_reso": 2048, "max_grad_norm": 1.0,
    "max_resolution": "512,512", "max_timestep": 1000, "max_token_length": 75, "max_train_epochs": 0,
    "max_train_steps": 1600, "mem_eff_attn": False, "min_bucket_reso": 256, "min_snr_gamma": 0, "min_timestep": 0,
    "mixed_precision": "fp16", "module_dropout": 0.0, "multires_noise_discount": 0.3, "multires_noise_iterations": 0,
    "network_alpha": 1, "network_dim": 8, "network_dropout": 0, "noise_offset": 0, "noise_offset_type": "Original",
    "optimizer": "AdamW8bit", "optimizer_args": "", "output_name": "last", "prior_loss_weight": 1.0,
    "random_crop": False, "rank_dropout": 0, "rank_dropout_scale": False, "rescaled": False,
    "save_every_n_epochs": 1, "save_model_as": "safetensors", "save_precision": "fp16", "scale_weight_norms": 0,
    "seed": 0, "shuffle_caption": False, "text_encoder_lr": 0.0001, "train_norm": False, "train_on_input": True,
    "unet_lr": 0.0001, "unit": 1, "use_cp": False, "use_scalar": False, "use_tucker": False, "v2": False,
    "v_parameterization": False, "sdxl": False, "sdxl_no_half_vae": False, "sdxl_cache_text_encoder_outputs": False,
    "vae_batch_size": 0, "wandb_run_name": "", "xformers": "xformers", "max_data_loader_n_workers": 0,
    "persistent_data_loader_workers": False, "v_pred_like_loss": 0, "save_every_n_steps": 0,
    "save_last_n_epochs": 0, "save_last_n_steps": 0, "network_weights": "", "vae": "", "training_comment": "",
    # FLUX.1 (class_flux1.py; model_prediction_type's default is read from the wrong key, but is sigma_scaled)
    "flux1_checkbox": False, "ae": "", "clip_l": "", "t5xxl": "", "discrete_flow_shift": 3.0,
    "model_prediction_type": "sigma_scaled", "timestep_sampling": "sigma", "apply_t5_attn_mask": False,
    "split_mode": False, "train_blocks": "all", "split_qkv": False, "train_t5xxl": False,
    "cpu_offload_checkpointing": False, "guidance_scale": 3.5, "t5xxl_max_token_length": 512,
    "flux1_cache_text_encoder_outputs": False, "flux1_cache_text_encoder_outputs_to_disk": False,
    "mem_eff_save": False, "single_blocks_to_swap": 0, "double_blocks_to_swap": 0, "blocks_to_swap": 0,
    "fp8_base_unet": False, "t5xxl_lr": 0, "train_lora_ggpo": False,
    # SD3 (class_sd3.py)
    "sd3_checkbox": False, "weighting_scheme": "logit_normal", "logit_mean": 0.0, "logit_std": 1.0,
    "mode_scale": 1.29, "sd3_clip_l": "", "clip_g": "", "sd3_t5xxl": "", "save_clip": False, "save_t5xxl": False,
    "t5xxl_device": "", "t5xxl_dtype": "bf16", "sd3_text_encoder_batch_size": 1,
    "sd3_cache_text_encoder_outputs": False, "sd3_cache_text_encoder_outputs_to_disk": False,
    "sd3_clip_l_dropout_rate": 0.0, "clip_g_dropout_rate": 0.0, "sd3_t5_dropout_rate": 0.0,
    "sd3_fused_backward_pass": False, "sd3_disable_mmap_load_safetensors": False,
    "sd3_enable_scaled_pos_embed": False, "pos_emb_random_crop_rate": 0.0,
}  # fmt: skip
_INT = ("clip_skip", "epoch", "gradient_accumulation_steps", "keep_tokens", "lr_warmup", "max_data_loader_n_workers",
        "max_train_epochs", "save_every_n_epochs", "seed", "max_train_steps", "caption_dropout_every_n_epochs")  # fmt: skip
_FLOAT = ("adaptive_noise_scale", "noise_offset", "learning_rate", "text_encoder_lr", "unet_lr")


def _update_my_data(data: dict[str, Any]) -> dict[str, Any]:
    data = dict(data)
    if "lora_network_weights" in data:
        data["network_weights"] = data.pop("lora_network_weights")
    for key in _INT:
        if key in data:
            try:
                data[key] = int(data[key])
            except ValueError:
                data[key] = 0
    if "lr_scheduler_num_cycles" in data:
        try:
            data["lr_scheduler_num_cycles"] = int(data["lr_scheduler_num_cycles"])
        except ValueError:
            data["lr_scheduler_num_cycles"] = 1
    if "max_token_length" in data:
        try:
            data["max_token_length"] = int(data["max_token_length"])
        except ValueError:
            data["max_token_length"] = 75
    for key in _FLOAT:
        if key in data:
            try:
                data[key] = float(data[key])
            except ValueError:
                data[key] = 0.0
    if "lr_scheduler_power" in data:
        try:
            data["lr_scheduler_power"] = float(data["lr_scheduler_power"])
        except ValueError:
            data["lr_scheduler_power"] = 1.0
    if data.get("LoRA_type") == "LoCon":
        data["LoRA_type"] = "LyCORIS/LoCon"
    if isinstance(data.get("xformers"), bool):
        data["xformers"] = "xformers" if data["xformers"] else "none"
    return data


def gui_config(preset: dict[str, Any], train_images: int, repeats: int) -> dict[str, Any]:
    """The keys the GUI writes into its config_lora-*.toml for `preset` with train_data_dir holding one N_name
    folder of train_images images at `repeats` (paths left out: they are the user's)."""
    g = {**WIDGET_DEFAULTS, **_update_my_data(preset)}
    num = lambda k: float(g[k]) if g[k] not in ("", None) else 0.0  # noqa: E731  Gradio's Number gives floats
    lora_type = g["LoRA_type"]
    # max_train_steps: folder mode (train_data_dir, no dataset_config)
    steps = int(g["max_train_steps"] or 0)
    if steps == 0:
        steps = math.ceil(train_images * repeats / int(g["train_batch_size"]) / int(g["gradient_accumulation_steps"])
                          * int(g["epoch"]) * 1)  # fmt: skip
    warmup_steps = num("lr_warmup_steps")
    warmup = int(warmup_steps) if warmup_steps > 0 else (num("lr_warmup") / 100 if num("lr_warmup") else 0)
    args = _network_args(g, lora_type)
    te, unet, t5 = num("text_encoder_lr"), num("unet_lr"), num("t5xxl_lr")
    noise = g["noise_offset_type"]
    sdxl, flux, sd3 = bool(g["sdxl"]), bool(g["flux1_checkbox"]), bool(g["sd3_checkbox"])
    data = {
        "adaptive_noise_scale": g["adaptive_noise_scale"]
        if g["adaptive_noise_scale"] != 0 and noise == "Original"
        else None,
        "bucket_no_upscale": g["bucket_no_upscale"],
        "bucket_reso_steps": g["bucket_reso_steps"],
        "cache_latents": g["cache_latents"],
        "cache_latents_to_disk": g["cache_latents_to_disk"],
        "cache_text_encoder_outputs": True
        if (sdxl and g["sdxl_cache_text_encoder_outputs"])
        or (flux and g["flux1_cache_text_encoder_outputs"])
        or (sd3 and g["sd3_cache_text_encoder_outputs"])
        else None,
        "cache_text_encoder_outputs_to_disk": True
        if (flux and g["flux1_cache_text_encoder_outputs_to_disk"])
        or (sd3 and g["sd3_cache_text_encoder_outputs_to_disk"])
        else None,
        "caption_dropout_every_n_epochs": int(g["caption_dropout_every_n_epochs"]),
        "caption_dropout_rate": g["caption_dropout_rate"],
        "caption_extension": g["caption_extension"],
        "clip_skip": g["clip_skip"] if g["clip_skip"] != 0 else None,
        "color_aug": g["color_aug"],
        "debiased_estimation_loss": g["debiased_estimation_loss"],
        "enable_bucket": g["enable_bucket"],
        "epoch": int(g["epoch"]),
        "flip_aug": g["flip_aug"],
        "gradient_accumulation_steps": int(g["gradient_accumulation_steps"]),
        "gradient_checkpointing": g["gradient_checkpointing"],
        "huber_c": g["huber_c"],
        "huber_scale": g["huber_scale"],
        "huber_schedule": g["huber_schedule"],
        "ip_noise_gamma": g["ip_noise_gamma"] if g["ip_noise_gamma"] != 0 else None,
        "keep_tokens": int(g["keep_tokens"]),
        "learning_rate": num("learning_rate"),
        "loss_type": g["loss_type"],
        "lr_scheduler": g["lr_scheduler"],
        "lr_scheduler_args": str(g["lr_scheduler_args"]).replace('"', "").split(),
        "lr_scheduler_num_cycles": int(g["lr_scheduler_num_cycles"])
        if g["lr_scheduler_num_cycles"] != ""
        else int(g["epoch"]),
        "lr_scheduler_power": g["lr_scheduler_power"],
        "lr_scheduler_type": g["lr_scheduler_type"] or None,
        "lr_warmup_steps": warmup,
        "max_bucket_reso": g["max_bucket_reso"],
        "max_grad_norm": g["max_grad_norm"],
        "max_timestep": g["max_timestep"] if g["max_timestep"] != 0 else None,
        "max_token_length": int(g["max_token_length"]) if not flux else None,
        "max_train_epochs": int(g["max_train_epochs"]) or None,
        "max_train_steps": steps or None,
        "mem_eff_attn": g["mem_eff_attn"],
        "min_bucket_reso": int(g["min_bucket_reso"]),
        "min_snr_gamma": g["min_snr_gamma"] if g["min_snr_gamma"] != 0 else None,
        "min_timestep": g["min_timestep"] if g["min_timestep"] != 0 else None,
        "mixed_precision": g["mixed_precision"],
        "multires_noise_discount": g["multires_noise_discount"] if noise == "Multires" else None,
        "multires_noise_iterations": g["multires_noise_iterations"]
        if g["multires_noise_iterations"] != 0 and noise == "Multires"
        else None,
        "network_alpha": g["network_alpha"],
        "network_args": args.replace('"', "").split(),
        "network_dim": g["network_dim"],
        "network_dropout": g["network_dropout"],
        "network_module": "lycoris.kohya"
        if lora_type.startswith("LyCORIS")
        else "networks.dylora"
        if lora_type == "Kohya DyLoRA"
        else "networks.lora_flux"
        if lora_type == "Flux1"
        else "networks.lora_sd3"
        if sd3
        else "networks.lora",
        "network_train_unet_only": te == 0 and unet != 0,
        "network_train_text_encoder_only": te != 0 and unet == 0,
        "no_half_vae": True if sdxl and g["sdxl_no_half_vae"] else None,
        "noise_offset": g["noise_offset"] if g["noise_offset"] != 0 and noise == "Original" else None,
        "noise_offset_type": noise,
        "optimizer_type": g["optimizer"],
        "optimizer_args": str(g["optimizer_args"]).replace('"', "").split(),
        "output_name": g["output_name"],
        "persistent_data_loader_workers": int(g["persistent_data_loader_workers"]),
        "prior_loss_weight": g["prior_loss_weight"],
        "random_crop": g["random_crop"],
        "resolution": g["max_resolution"],
        "save_every_n_epochs": g["save_every_n_epochs"] if g["save_every_n_epochs"] != 0 else None,
        "save_every_n_steps": g["save_every_n_steps"] if g["save_every_n_steps"] != 0 else None,
        "save_last_n_epochs": g["save_last_n_epochs"] if g["save_last_n_epochs"] != 0 else None,
        "save_model_as": g["save_model_as"],
        "save_precision": g["save_precision"],
        "scale_weight_norms": g["scale_weight_norms"],
        "sdpa": True if g["xformers"] == "sdpa" else None,
        "seed": int(g["seed"]) if int(g["seed"]) != 0 else None,
        "shuffle_caption": g["shuffle_caption"],
        "text_encoder_lr": [te, t5 if t5 > 0 else te] if te > 0 else None,
        "train_batch_size": g["train_batch_size"],
        "unet_lr": unet if unet != 0 else None,
        "v2": g["v2"],
        "v_parameterization": g["v_parameterization"],
        "v_pred_like_loss": g["v_pred_like_loss"] if g["v_pred_like_loss"] != 0 else None,
        "vae_batch_size": g["vae_batch_size"] if g["vae_batch_size"] != 0 else None,
        "wandb_run_name": g["wandb_run_name"] or g["output_name"],
        "xformers": True if g["xformers"] == "xformers" else None,
    }
    for key in AS_THEY_ARE:
        data[key] = g.get(key)
    data |= _family_keys(g, flux, sd3)
    for key in ("save_last_n_steps", "save_last_n_steps_state", "save_last_n_epochs_state"):
        data[key] = g.get(key) if g.get(key) != 0 else None
    data = {k: v for k, v in data.items() if v not in ("", False, None)}
    data["max_data_loader_n_workers"] = int(g["max_data_loader_n_workers"])
    data |= _command_line(str(g["additional_parameters"]))
    return dict(sorted(data.items()))


def _family_keys(g: dict[str, Any], flux: bool, sd3: bool) -> dict[str, Any]:
    """The FLUX.1 and SD3 keys of config_toml_data (None: not passed)."""
    out: dict[str, Any] = {
        "clip_l": g["sd3_clip_l"] if sd3 else g["clip_l"] if flux else None,
        "t5xxl": g["t5xxl"] if flux else g["sd3_t5xxl"] if sd3 else None,
        "ae": g["ae"] if flux else None,
        "blocks_to_swap": g["blocks_to_swap"] if flux or sd3 else None,
    }
    flux_keys = ("split_mode", "mem_eff_save", "apply_t5_attn_mask", "cpu_offload_checkpointing", "fp8_base_unet",
                 "single_blocks_to_swap", "double_blocks_to_swap", "model_prediction_type", "timestep_sampling")  # fmt: skip
    out |= {k: g[k] if flux else None for k in flux_keys}
    out |= {
        "t5xxl_max_token_length": int(g["t5xxl_max_token_length"]) if flux else None,
        "guidance_scale": float(g["guidance_scale"]) if flux else None,
        "discrete_flow_shift": float(g["discrete_flow_shift"]) if flux else None,
    }
    sd3_keys = {"clip_g": "clip_g", "clip_g_dropout_rate": "clip_g_dropout_rate",
                "clip_l_dropout_rate": "sd3_clip_l_dropout_rate", "enable_scaled_pos_embed": "sd3_enable_scaled_pos_embed",
                "logit_mean": "logit_mean", "logit_std": "logit_std", "mode_scale": "mode_scale",
                "pos_emb_random_crop_rate": "pos_emb_random_crop_rate", "save_clip": "save_clip",
                "save_t5xxl": "save_t5xxl", "t5_dropout_rate": "sd3_t5_dropout_rate", "t5xxl_device": "t5xxl_device",
                "t5xxl_dtype": "t5xxl_dtype", "text_encoder_batch_size": "sd3_text_encoder_batch_size",
                "weighting_scheme": "weighting_scheme", "fused_backward_pass": "sd3_fused_backward_pass",
                "disable_mmap_load_safetensors": "sd3_disable_mmap_load_safetensors"}  # fmt: skip
    out |= {k: g[name] if sd3 else None for k, name in sd3_keys.items()}
    return out


# Fields train_model writes under their own name and value (then dropped when "", False or None).
AS_THEY_ARE = (
    "training_comment", "save_state", "save_state_on_train_end", "resume", "log_with", "full_fp16", "full_bf16",
    "fp8_base", "highvram", "masked_loss", "scale_v_pred_loss_like_noise_pred", "weighted_captions",
    "skip_cache_check", "dim_from_weights", "log_tracker_name", "log_config", "huggingface_repo_id",
    "huggingface_repo_type", "huggingface_repo_visibility", "huggingface_path_in_repo", "save_state_to_huggingface",
    "resume_from_huggingface", "async_upload", "metadata_author", "metadata_description", "metadata_license",
    "metadata_tags", "metadata_title", "sample_sampler", "network_weights", "vae",
)  # fmt: skip


def _command_line(additional: str) -> dict[str, Any]:
    """additional_parameters: appended to the command after --config_file, so they win over it (quotes dropped,
    split on spaces, as run_cmd_advanced_training does)."""
    out: dict[str, Any] = {}
    key = None
    for token in additional.replace('"', "").split():
        if token.startswith("--"):
            key, sep, value = token[2:].partition("=")
            out[key] = [value] if sep else True
        elif key is not None:
            out[key] = [token] if out[key] is True else [*out[key], token]
    for k, v in out.items():
        if isinstance(v, list) and len(v) == 1 and k not in ("lr_scheduler_args", "optimizer_args", "network_args"):
            out[k] = _number(v[0])
    return out


def _number(text: str) -> Any:
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


def _network_args(g: dict[str, Any], lora_type: str) -> str:
    """The network_args string train_model builds, loraplus ratios appended for every type."""
    out = _type_args(g, lora_type)
    for name in ("loraplus_lr_ratio", "loraplus_unet_lr_ratio", "loraplus_text_encoder_lr_ratio"):
        if g.get(name):
            out += f" {name}={g[name]}"
    return out


def _type_args(g: dict[str, Any], lora_type: str) -> str:
    f = lambda k: g[k]  # noqa: E731
    if lora_type == "Flux1":
        names = ["img_attn_dim", "img_mlp_dim", "img_mod_dim", "single_dim", "txt_attn_dim", "txt_mlp_dim",
                 "txt_mod_dim", "single_mod_dim", "in_dims", "train_double_block_indices",
                 "train_single_block_indices"] + (["ggpo_beta", "ggpo_sigma"] if g.get("train_lora_ggpo") else [])  # fmt: skip
        found = {k: g[k] for k in names if g.get(k)}
        if g["split_mode"]:
            found["train_blocks"] = "single"
        if g["split_qkv"]:
            found["split_qkv"] = True
        if g["train_t5xxl"] and g["flux1_checkbox"]:
            found["train_t5xxl"] = True
        out = "".join(f" {k}={v}" for k, v in found.items() if v)
        for name in ("rank_dropout", "module_dropout"):
            if g.get(name) is not None and float(g[name]) > 0:
                out += f" {name}={g[name]}"
        return out
    common = f" preset={f('LyCORIS_preset')} conv_dim={f('conv_dim')} conv_alpha={f('conv_alpha')}"
    if lora_type == "LyCORIS/iA3":
        return common + f" train_on_input={f('train_on_input')} algo=ia3"
    lyco = (
        f" use_tucker={f('use_tucker')} rank_dropout={f('rank_dropout')} bypass_mode={f('bypass_mode')}"
        f" dora_wd={f('dora_wd')} module_dropout={f('module_dropout')}"
    )
    tail = f" rank_dropout_scale={f('rank_dropout_scale')}"
    if lora_type in ("LyCORIS/LoCon", "LyCORIS/LoHa"):
        algo = lora_type.split("/")[1].lower()
        return common + lyco + f" use_tucker={f('use_tucker')} use_scalar={f('use_scalar')}{tail} algo={algo}" \
            f" train_norm={f('train_norm')}"  # fmt: skip
    if lora_type == "LyCORIS/LoKr":
        return common + lyco + f" factor={f('factor')} use_cp={f('use_cp')} use_scalar={f('use_scalar')}" \
            f" decompose_both={f('decompose_both')}{tail} algo=lokr train_norm={f('train_norm')}"  # fmt: skip
    names: tuple[str, ...] = ("down_lr_weight", "mid_lr_weight", "up_lr_weight", "block_lr_zero_threshold",
                              "block_dims", "block_alphas", "conv_block_dims", "conv_block_alphas", "rank_dropout",
                              "module_dropout")  # fmt: skip
    out = ""
    if lora_type == "Kohya LoCon":
        out += f' conv_dim="{f("conv_dim")}" conv_alpha="{f("conv_alpha")}"'
    if lora_type == "Kohya DyLoRA":
        names = ("conv_dim", "conv_alpha", *names, "unit")
    for name in names:
        value = g.get(name, "")
        if value:
            out += f" {name}={value}"
    return out
