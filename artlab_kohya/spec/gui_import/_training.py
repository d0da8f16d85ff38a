"""Optimizer and schedule, and training: its length (epochs or steps, as the GUI ends up telling sd-scripts),
seed, caching, precision, saving, noise and attention."""

from __future__ import annotations

from ..gui import key_values, plain_number, show
from ._conversion import Conversion


def optimizer(c: Conversion) -> None:
    c.put("optimizer.type", c.get("optimizer"), "optimizer")
    lr = float(c.get("learning_rate") or 0)
    if lr > 0:
        c.put("optimizer.learning_rate", lr, "learning_rate")
    else:
        c.skip("learning_rate", "0: the U-Net and text-encoder rates decide (the spec keeps its default)")
    for name in ("unet_lr", "text_encoder_lr"):
        value = float(c.get(name) or 0)
        if value > 0:
            c.put(f"optimizer.{name}", value, name)
    norm = c.get("max_grad_norm")
    if norm is not None and float(norm) != 1.0:
        c.put("optimizer.max_grad_norm", float(norm), "max_grad_norm")
    args = key_values(str(c.get("optimizer_args") or ""))
    if args:
        c.put("optimizer.args", args, "optimizer_args")
    c.put("scheduler.type", c.get("lr_scheduler"), "lr_scheduler")
    steps, pct = int(c.get("lr_warmup_steps") or 0), float(c.get("lr_warmup") or 0)
    if steps > 0:
        c.put("scheduler.warmup_steps", steps, "lr_warmup_steps")
        if pct:
            c.skip("lr_warmup", "lr_warmup_steps is set and wins")
    elif pct:
        c.put("scheduler.warmup_ratio", pct / 100, "lr_warmup", note=f"{show(pct)}% of the steps")
    cycles, power = c.get("lr_scheduler_num_cycles"), c.get("lr_scheduler_power")
    if cycles not in (None, 1):
        c.put("scheduler.cycles", cycles, "lr_scheduler_num_cycles")
    if power not in (None, 1, 1.0):
        c.put("scheduler.power", plain_number(power), "lr_scheduler_power")
    sargs = key_values(str(c.get("lr_scheduler_args") or ""))
    if sargs:
        c.put("scheduler.args", sargs, "lr_scheduler_args")


def training(c: Conversion) -> None:
    _length(c)
    seed = c.get("seed")
    if seed:
        c.put("training.seed", seed, "seed")
    else:
        c.put("training.seed", "random", "seed", note="0: the GUI lets sd-scripts draw one each run")
    cache, disk = c.get("cache_latents"), c.get("cache_latents_to_disk")
    c.put(
        "training.cache_latents",
        "disk" if disk else "memory" if cache else "off",
        "cache_latents",
        "cache_latents_to_disk",
    )
    c.put("training.mixed_precision", c.get("mixed_precision"), "mixed_precision")
    c.put("training.save_precision", c.get("save_precision"), "save_precision")
    every = c.get("save_every_n_epochs")
    c.put("training.save_every_n_epochs", every or None, "save_every_n_epochs")
    for gui, path in (
        ("save_every_n_steps", "save_every_n_steps"),
        ("save_last_n_epochs", "save_last_n_epochs"),
        ("min_snr_gamma", "min_snr_gamma"),
    ):
        value = plain_number(c.get(gui) or 0)
        if value:
            c.put(f"training.{path}", value, gui)
    c.put("training.gradient_checkpointing", bool(c.get("gradient_checkpointing")), "gradient_checkpointing")
    accumulate = c.get("gradient_accumulation_steps")
    if accumulate and accumulate != 1:
        c.put("training.gradient_accumulation", accumulate, "gradient_accumulation_steps")
    noise_type = str(c.get("noise_offset_type"))
    offset = plain_number(c.get("noise_offset") or 0)
    if offset and noise_type == "Original":
        c.put("training.noise_offset", offset, "noise_offset")
    elif offset:
        c.skip("noise_offset", f"not passed: noise_offset_type is {noise_type}")
    attention = _attention(c)
    c.put("training.attention", attention, "xformers", "mem_eff_attn")
    tokens = c.get("max_token_length")
    if tokens in (150, 225):
        c.put("training.max_token_length", tokens, "max_token_length")
    c.put("training.workers", c.get("max_data_loader_n_workers") or 0, "max_data_loader_n_workers")
    persistent = bool(c.get("persistent_data_loader_workers"))  # explicit: the spec's default is auto
    c.put("training.persistent_workers", persistent, "persistent_data_loader_workers")


def _attention(c: Conversion) -> str:
    if c.get("mem_eff_attn"):
        return "mem_eff"
    value = c.get("xformers")
    if isinstance(value, bool):
        return "xformers" if value else "none"
    return {"xformers": "xformers", "sdpa": "sdpa"}.get(str(value), "none")


def _length(c: Conversion) -> None:
    """epochs or steps, the way the GUI ends up telling sd-scripts (train_model)."""
    epochs, steps, epoch = c.get("max_train_epochs"), c.get("max_train_steps"), c.get("epoch")
    from_folders = not c.raw.get("dataset_config")
    if epochs:
        c.put("training.epochs", epochs, "max_train_epochs", note="sd-scripts counts these (it wins over steps)")
        if steps:
            c.note(
                ("training", "epochs"),
                note=f"the GUI also passes max_train_steps {steps}, which sd-scripts then ignores",
            )
    elif steps:
        c.put("training.max_steps", steps, "max_train_steps")
        c.put(
            "training.epochs",
            None,
            "epoch",
            note=f"the GUI's epoch ({epoch}) does not reach sd-scripts when max_train_steps is set",
        )
    elif epoch and from_folders:
        c.put(
            "training.epochs",
            epoch,
            "epoch",
            note="the GUI turns it into max_train_steps = ceil(images x "
            "repeats / batch / accumulation x epoch, x2 with regularization images); the same epochs here",
        )
    else:
        c.put(
            "training.max_steps",
            1600,
            "max_train_steps",
            "epoch",
            note="neither is set: sd-scripts trains its default of 1600 steps, as the GUI would",
        )
        c.put("training.epochs", None)
