"""The argument surface of sd-scripts: which keys a --config_file may hold, and of what type.

sd-scripts merges --config_file into argparse's namespace without type conversion, choice checks
or unknown-key errors (a typo trains silently with the default). So every key we write is checked
here first. The bundled surface is the argparse dump of the pinned commit; kohya.py can ask an
installed sd-scripts for its own.
"""

from __future__ import annotations

import difflib
import json
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any

from .pins import PINNED_COMMIT

# library/config_util.py's voluptuous schema: the keys a --dataset_config accepts (DreamBooth style).
DATASET_KEYS = frozenset(
    {
        "batch_size", "bucket_no_upscale", "bucket_reso_steps", "enable_bucket", "max_bucket_reso",
        "min_bucket_reso", "validation_seed", "validation_split", "resolution", "network_multiplier",
        "resize_interpolation",
    }
)  # fmt: skip
SUBSET_KEYS = frozenset(
    {
        "color_aug", "face_crop_aug_range", "flip_aug", "num_repeats", "random_crop", "shuffle_caption",
        "keep_tokens", "keep_tokens_separator", "secondary_separator", "caption_separator", "enable_wildcard",
        "token_warmup_min", "token_warmup_step", "caption_prefix", "caption_suffix", "custom_attributes",
        "resize_interpolation", "caption_dropout_every_n_epochs", "caption_dropout_rate",
        "caption_tag_dropout_rate", "image_dir", "is_reg", "alpha_mask", "caption_extension", "class_tokens",
        "cache_info",
    }
)  # fmt: skip


@dataclass(frozen=True)
class Option:
    dest: str
    type: str | None  # "int", "float", "str", "Path", "int_or_float", "flag"
    nargs: str | None
    choices: tuple[Any, ...] | None
    default: Any


@dataclass(frozen=True)
class Surface:
    commit: str
    script: str
    options: dict[str, Option]

    def problem(self, key: str, value: Any) -> str | None:
        """Why `key = value` in a --config_file would be wrong, or None when it is fine."""
        option = self.options.get(key)
        if option is None:
            close = difflib.get_close_matches(key, self.options, n=1, cutoff=0.7)
            hint = f"; did you mean '{close[0]}'?" if close else ""
            return f"{self.script} at commit {self.commit[:8]} has no argument --{key}{hint}"
        return _type_problem(option, value)


def _type_problem(option: Option, value: Any) -> str | None:
    if option.type == "flag":
        return None if isinstance(value, bool) else f"--{option.dest} is a switch: true or false (got {value!r})"
    if option.nargs in ("*", "+"):
        if option.dest == "text_encoder_lr" and _is_number(value):
            return None  # train_network.py also accepts a single number here
        if not isinstance(value, list):
            return f"--{option.dest} takes a list (got {value!r})"
        items = value
    else:
        items = [value]
    for item in items:
        wrong = _item_problem(option, item)
        if wrong:
            return wrong
    return None


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _item_problem(option: Option, value: Any) -> str | None:
    expected = {
        "int": lambda v: isinstance(v, int) and not isinstance(v, bool),
        "float": _is_number,
        "int_or_float": _is_number,
        "str": lambda v: isinstance(v, str),
        "Path": lambda v: isinstance(v, str),
    }.get(option.type or "str", lambda v: True)
    if not expected(value):
        return f"--{option.dest} takes {option.type} values (got {value!r})"
    if option.choices is not None and value not in option.choices:
        shown = ", ".join(str(c) for c in option.choices if c is not None)
        return f"--{option.dest} must be one of {shown} (got {value!r})"
    return None


def surface_from_dump(commit: str, script: str, options: dict[str, dict[str, Any]]) -> Surface:
    return Surface(
        commit=commit,
        script=script,
        options={
            dest: Option(
                dest=dest,
                type=o.get("type"),
                nargs=o.get("nargs"),
                choices=tuple(o["choices"]) if o.get("choices") is not None else None,
                default=o.get("default"),
            )
            for dest, o in options.items()
        },
    )


@cache
def bundled_surface(script: str) -> Surface:
    """The pinned commit's surface for one of the training scripts FAMILY_INFO names."""
    text = (
        resources.files("artlab_kohya")
        .joinpath(f"trainer/data/surface-{PINNED_COMMIT[:8]}.json")
        .read_text(encoding="utf-8")
    )
    dump = json.loads(text)
    return surface_from_dump(dump["commit"], script, dump["scripts"][script])
