"""The imported spec as commented YAML."""

from __future__ import annotations

import textwrap

from ..yamlwrite import dump
from ._conversion import Imported


def spec_text(imported: Imported, source: str) -> str:
    """The imported spec as commented YAML: where every key came from, and every field that is not in it."""
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
    more = indent + ("  " if text.startswith("-") else "")
    return textwrap.wrap(text, width, initial_indent=indent, subsequent_indent=more, break_on_hyphens=False)
