"""The `lora` command group: look inside a LoRA file (info), and sd-scripts' own tools on it (resize, merge)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

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


_TOOL_OPTIONS = [
    click.option("--kohya-dir", type=click.Path(file_okay=False, path_type=Path),
                 help="sd-scripts (or kohya_ss) folder (default: $ARTLAB_KOHYA_DIR, else vendor/sd-scripts)."),
    click.option("--python", "python_exe", help="The trainer's Python or venv folder (default: $ARTLAB_KOHYA_PYTHON)."),
    click.option("--save-precision", type=click.Choice(["fp16", "bf16", "float"]), default="fp16", show_default=True,
                 help="Precision of the saved weights."),
    click.option("-o", "--out", "output", type=click.Path(dir_okay=False, path_type=Path), required=True,
                 help="The .safetensors file to write (never overwritten); OUT.artlab.json records how."),
]  # fmt: skip


def _tool_options(command: Any) -> Any:
    for option in reversed(_TOOL_OPTIONS):
        command = option(command)
    return command


@lora.command()
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--dim", type=click.IntRange(min=1), required=True, help="The new rank (with --dynamic: the highest).")
@click.option("--conv-dim", type=click.IntRange(min=1), help="The new rank of 3x3 convolutions (default: --dim).")
@click.option("--dynamic", type=click.Choice(["sv_ratio", "sv_fro", "sv_cumulative"]),
              help="Choose each module's rank from its singular values.")  # fmt: skip
@click.option(
    "--dynamic-param", type=float, help="sv_ratio: largest ratio kept (>= 1); sv_fro, sv_cumulative: share kept (0-1]."
)
@click.option("--device", help="Where the SVD runs, e.g. cuda (default: the CPU).")
@click.option("--verbose", is_flag=True, help="Have resize_lora.py print what each module keeps.")
@_tool_options
def resize(
    file: Path,
    dim: int,
    conv_dim: int | None,
    dynamic: str | None,
    dynamic_param: float | None,
    device: str | None,
    verbose: bool,
    kohya_dir: Path | None,
    python_exe: str | None,
    save_precision: str,
    output: Path,
) -> None:
    """Lower FILE's rank with sd-scripts' networks/resize_lora.py (SVD), in the trainer's Python."""
    from ..models.lora_file import read_lora
    from ..trainer import lora_tools as tools

    tools.check_output(output)
    notes = tools.check_resize(read_lora(file), dim, cast(Any, dynamic), dynamic_param)
    install = _install(kohya_dir, python_exe)
    job = tools.resize_job(
        install, file.resolve(), output.resolve(), dim=dim, conv_dim=conv_dim, dynamic=cast(Any, dynamic),
        dynamic_param=dynamic_param, save_precision=cast(Any, save_precision), device=device, verbose=verbose,
    )  # fmt: skip
    _run(job, install, notes, "resizing")


@lora.command()
@click.argument("files", nargs=-1, required=True, type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--into", "model", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="A checkpoint to merge the LoRAs into; without it the LoRAs become one LoRA.")  # fmt: skip
@click.option("--ratio", "ratios", type=float, multiple=True, help="Weight of each LoRA, in order (default 1 each).")
@click.option(
    "--concat", is_flag=True, help="LoRAs into one LoRA: stack the ranks instead of adding (ranks may differ)."
)
@click.option("--precision", type=click.Choice(["float", "fp16", "bf16"]), default="float", show_default=True,
              help="Precision of the merge arithmetic.")  # fmt: skip
@click.option("--allow-pickle", is_flag=True, help="Allow a pickled .ckpt checkpoint for --into.")
@_tool_options
def merge(
    files: tuple[Path, ...],
    model: Path | None,
    ratios: tuple[float, ...],
    concat: bool,
    precision: str,
    allow_pickle: bool,
    kohya_dir: Path | None,
    python_exe: str | None,
    save_precision: str,
    output: Path,
) -> None:
    """Merge LoRA FILES into a checkpoint (--into) or into one LoRA, with sd-scripts' merge_lora.py
    (sdxl_merge_lora.py for SDXL), in the trainer's Python."""
    from ..errors import InputError
    from ..models.lora_file import read_lora
    from ..trainer import lora_tools as tools

    tools.check_output(output)
    if ratios and len(ratios) != len(files):
        raise InputError(f"{len(ratios)} --ratio for {len(files)} LoRA file(s): give one per file, in order")
    if model is None and len(files) < 2:
        raise InputError("one LoRA and no --into: nothing to merge")
    if model is not None and concat:
        raise InputError("--concat stacks LoRAs into one LoRA; it has no meaning with --into")
    family = tools.model_family(model, allow_pickle) if model is not None else None
    family = tools.check_merge([read_lora(f) for f in files], family, concat)
    install = _install(kohya_dir, python_exe)
    job = tools.merge_job(
        install, [f.resolve() for f in files], output.resolve(), family=family, ratios=ratios or [1.0] * len(files),
        model=model.resolve() if model else None, concat=concat, precision=cast(Any, precision),
        save_precision=cast(Any, save_precision),
    )  # fmt: skip
    _run(job, install, [], "merging")


def _install(kohya_dir: Path | None, python_exe: str | None) -> Any:
    from ..trainer.install import check_install, locate_install

    install = locate_install(kohya_dir, python_exe)  # as `run` finds it: kohya_ss roots and venv folders too
    check_install(install)
    return install


def _run(job: Any, install: Any, notes: list[str], label: str) -> None:
    from ..dataset.caption_generate import ConsoleProgress
    from ..trainer.lora_tools import run_job

    for note in notes:
        click.echo(f"note: {note}", err=True)
    display = ConsoleProgress(label=label)
    try:
        result = run_job(job, install, on_event=display, on_hash=lambda name: click.echo(f"sha256 {name}", err=True))
    finally:
        display.close()
    click.echo(f"wrote {result.output} ({result.record_data['output']['size']:,} bytes)")
    click.echo(f"record {result.record}")


_PART_NAMES = {
    "unet": "U-Net",
    "text_encoder": "text encoder",
    "text_encoder_1": "text encoder 1",
    "text_encoder_2": "text encoder 2",
    "other": "other",
}


def describe(found: LoraInfo) -> list[str]:
    """The human-readable lines of `lora info`."""
    from ..files import human_size
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
        f"  size        {human_size(found.size)} ({found.size:,} bytes), {found.tensors} tensors, "
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
