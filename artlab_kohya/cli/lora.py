"""The `lora` command group: look inside a LoRA file (info), and sd-scripts' own tools on it (resize, merge)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

if TYPE_CHECKING:
    from ..models.lora_file import LoraInfo


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def lora() -> None:
    """Read a LoRA file, resize it, or merge LoRAs (into a model, or into one LoRA)."""


@lora.command()
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Print everything as JSON (the metadata in full).")
@click.option("--tags", "top_tags", type=click.IntRange(min=0), default=10, show_default=True,
              help="How many of the most frequent caption tags to show.")  # fmt: skip
def info(file: Path, as_json: bool, top_tags: int) -> None:
    """What FILE is: network and algorithm, ranks and alphas, parts, size, base model, training record.

    Reads the safetensors header only (and the alpha values, a few bytes each); works on LoRA and LyCORIS
    files from any trainer that writes kohya-style key names.
    """
    from ..models.lora_file import read_lora

    found = read_lora(file, top_tags=top_tags)
    if as_json:
        click.echo(json.dumps(found.as_dict(), indent=1, default=str))
        return
    for line in describe(found):
        click.echo(line)


_PART_NAMES = {
    "unet": "U-Net",
    "text_encoder": "text encoder",
    "text_encoder_1": "text encoder 1",
    "text_encoder_2": "text encoder 2",
    "other": "other",
}


def describe(found: LoraInfo) -> list[str]:
    """The human-readable lines of `lora info`."""
    from ..models.lora_file import summarise

    network = found.network + (" + DoRA" if found.dora else "")
    module = f" ({found.module})" if found.module else ""
    parts = ", ".join(f"{_PART_NAMES.get(p, p)} {n}" for p, n in found.parts.items())
    conv = f"; {found.conv_modules} of them 3x3 convolutions" if found.conv_modules else ""
    lines = [
        f"{found.path}",
        f"  network     {network}{module}",
        f"  modules     {len(found.modules)}: {parts}{conv}",
        f"  rank        {_spread(summarise(found.ranks))}",
        f"  alpha       {_spread(summarise(found.alphas))}",
        f"  size        {_bytes(found.size)} ({found.size:,} bytes), {found.tensors} tensors, "
        f"{found.params:,} parameters, {', '.join(f'{d} x{n}' for d, n in found.dtypes.items())}",
    ]
    base = found.base
    if base:
        shown = [base.get("name", "")]
        if base.get("hash"):
            shown.append(f"hash {base['hash']}")
        if base.get("sha256"):
            shown.append(f"sha256 {base['sha256']}")
        if base.get("family"):
            shown.append(f"family {base['family']}")
        lines.append(f"  base model  {', '.join(s for s in shown if s)}")
    else:
        lines.append("  base model  not recorded")
    if found.training:
        lines.append("  training")
        lines += [f"    {key:<24}{_short(_when(key, value))}" for key, value in found.training.items()]
    if found.dataset_dirs:
        lines.append("  dataset")
        for folder, entry in found.dataset_dirs.items():
            if isinstance(entry, dict):
                lines.append(
                    f"    {folder}: {entry.get('img_count', '?')} images x {entry.get('n_repeats', '?')} repeats"
                )
    if found.top_tags:
        lines.append("  top tags    " + ", ".join(f"{tag} ({n})" for tag, n in found.top_tags))
    if not found.metadata:
        lines.append("  (no metadata: the file holds tensors only)")
    return lines


def _spread(entries: list[dict[str, Any]]) -> str:
    """'4 (all 264 modules)' or '8 (200 modules), 4 (64 modules)'."""
    if not entries or (len(entries) == 1 and entries[0]["value"] is None):
        return "none (this network has no rank)" if entries else "-"
    if len(entries) == 1:
        return f"{_number(entries[0]['value'])} (all {entries[0]['modules']} modules)"
    shown = [f"{_number(e['value'])} ({e['modules']} modules)" for e in entries[:6]]
    more = f", ... {len(entries) - 6} more values" if len(entries) > 6 else ""
    return ", ".join(shown) + more


def _number(value: Any) -> str:
    if value is None:
        return "none"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _bytes(n: int) -> str:
    size = float(n)
    for unit in ("B", "KB", "MB"):
        if size < 1000:
            return f"{n} B" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1000
    return f"{size:.1f} GB"


def _when(key: str, value: Any) -> Any:
    """ss_training_started_at/finished_at are Unix times: shown as UTC dates."""
    if not key.endswith("_at"):
        return value
    from datetime import datetime, timezone

    try:
        return datetime.fromtimestamp(float(value), tz=timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")
    except (ValueError, OverflowError, OSError):
        return value


def _short(value: Any, limit: int = 100) -> str:
    text = str(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."
