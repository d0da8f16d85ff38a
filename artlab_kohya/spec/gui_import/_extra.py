"""The GUI fields that hold a spec field's value as it is (gui.py's plain fields) or an sd-scripts argument the spec
does not model (kohya.extra_args), additional_parameters argument by argument, and the account of every
field left: at sd-scripts' default, a secret, or listed with its reason."""

from __future__ import annotations

from typing import Any

from ..gui import BY_NAME, SECRET, SPEC_ARGUMENTS, arguments, key_values, plain_number
from ..model import _CREDENTIAL, CREDENTIAL_ENV
from ._conversion import Conversion
from ._dit import FAMILY_NAMES, FAMILY_ONLY


def extra(c: Conversion, family: str) -> None:
    """sd-scripts arguments the spec does not model (kohya.extra_args), then additional_parameters."""
    passed: dict[str, Any] = {}
    noise_type = str(c.get("noise_offset_type"))
    gated = {
        "noise_offset_random_strength": noise_type == "Original",
        "adaptive_noise_scale": noise_type == "Original",
        "multires_noise_iterations": noise_type == "Multires",
        "multires_noise_discount": noise_type == "Multires" and bool(c.get("multires_noise_iterations")),
        "sdxl_no_half_vae": family == "sdxl",
    }
    c.done.add("noise_offset_type")
    for spec in BY_NAME.values():
        if not spec.plain or spec.name in c.mentioned:
            continue
        value = c.get(spec.name)
        if spec.name in FAMILY_ONLY and FAMILY_ONLY[spec.name] != family:
            if value not in (None, "", False, 0, spec.default):
                c.skip(spec.name, f"not passed by the GUI here ({FAMILY_NAMES[FAMILY_ONLY[spec.name]]} only)")
            continue
        if spec.name in gated and not gated[spec.name]:
            if value not in (None, "", False, 0, spec.default):
                c.skip(spec.name, "not passed by the GUI here (noise_offset_type, or not SDXL)")
            continue
        if value in (None, "", False, 0) or value == spec.default:
            continue  # what sd-scripts does anyway: listed as such by rest()
        if spec.to.startswith("kohya.extra_args."):
            key = spec.to.rsplit(".", 1)[1]
            passed[key] = value
            c.note(("kohya", "extra_args", key), spec.name)
        else:
            c.put(spec.to, plain_number(value), spec.name)
        if spec.kind == "path":
            c.path_exists(spec.to, str(value))
    if c.get("sdxl_cache_text_encoder_outputs") and family == "sdxl":
        c.put("training.cache_text_encoder_outputs", "memory", "sdxl_cache_text_encoder_outputs")
    elif c.get("sdxl_cache_text_encoder_outputs"):
        c.skip("sdxl_cache_text_encoder_outputs", "not passed by the GUI here (not SDXL)")
    if str(c.get("log_with")) in ("wandb", "all"):
        name = c.get("wandb_run_name") or c.out.data["output"]["name"]
        c.put("output.wandb_run_name", name, "wandb_run_name", "output_name")
    for key, value in arguments(str(c.get("additional_parameters") or "")):
        _additional(c, key, value, passed)
    if passed:
        c.out.data.setdefault("kohya", {}).setdefault("extra_args", {}).update(passed)


def _additional(c: Conversion, key: str, value: Any, passed: dict[str, Any]) -> None:
    """One argument of additional_parameters: on the command line it wins over the config file."""
    note = "additional_parameters: on the command line, it wins over the config"
    if key in ("network_train_unet_only", "network_train_text_encoder_only") and value is True:
        c.put("network.train", "unet" if "unet" in key else "text_encoder", note=note)
    elif key in ("lr_scheduler_args", "optimizer_args"):
        items = value if isinstance(value, list) else [value]
        section = "scheduler" if key.startswith("lr_") else "optimizer"
        c.put(f"{section}.args", key_values(" ".join(str(i) for i in items)), note=note)
    elif key in SPEC_ARGUMENTS:
        c.put(SPEC_ARGUMENTS[key], value, note=note)
    else:
        passed[key] = value
        c.note(("kohya", "extra_args", key), "additional_parameters")


def rest(c: Conversion) -> None:
    """Every field of the config is in the spec's comments, in the unmapped list, or at sd-scripts' default."""
    for name, value in c.raw.items():
        if name in c.mentioned:
            continue
        spec = BY_NAME.get(name)
        if spec is None:
            if _CREDENTIAL.search(name) or name.lower() in CREDENTIAL_ENV:
                c.secret(name, value)
            else:
                c.skip(name, "unknown to this mapping (a newer GUI version?)")
                c.warn(f"{name}: unknown to this mapping; not in the spec")
        elif spec.why == SECRET:
            c.secret(name, value)
        elif not spec.to:
            c.skip(name, spec.why)
        else:
            c.out.at_default.append(c.label(name))
