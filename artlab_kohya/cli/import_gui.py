"""`artlab-kohya import-gui CONFIG.json -o spec.yaml`: a saved Kohya GUI LoRA config becomes a commented spec."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import click


@click.command("import-gui")
@click.argument("config", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("-o", "--out", "out", type=click.Path(dir_okay=False, path_type=Path), required=True,
              help="The spec to write (never overwritten).")  # fmt: skip
@click.option("--dataset", type=click.Path(exists=True, file_okay=False, path_type=Path),
              help="The image folder (N_name folders) instead of the config's train_data_dir.")  # fmt: skip
@click.option("--model", help="The base model instead of the config's pretrained_model_name_or_path.")
@click.option("--component", "components", multiple=True, metavar="NAME=PATH",
              help="FLUX.1/SD3: one of the model's other files (ae, clip_l, clip_g, t5xxl) instead of the config's "
              "path; repeat for each.")  # fmt: skip
def import_gui(config: Path, out: Path, dataset: Path | None, model: str | None, components: tuple[str, ...]) -> None:
    """Turn a saved Kohya GUI (kohya_ss) LoRA config into a spec that trains the same way.

    Every field of the config is mapped to a spec field, or listed at the top of the spec (and here) with the
    reason it is not: GUI-only, ignored by sd-scripts, not supported. Secrets are never copied.
    """
    from ..errors import ArtlabError, InputError
    from ..files import write_atomic
    from ..spec import SpecError, load_spec
    from ..spec.gui_import import import_gui as convert
    from ..spec.gui_import import spec_text

    if out.exists():
        raise ArtlabError(f"{out} exists; import-gui never overwrites a spec")
    base = out.resolve().parent
    files = _components(components, base)
    try:
        data = json.loads(config.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise InputError(f"{config}: not a JSON file ({exc})") from None
    if not isinstance(data, dict):
        raise InputError(f"{config}: a GUI config is a JSON object of fields")
    imported = convert(
        data,
        folders=lambda root: _kohya_folders(base / root),
        exists=lambda path: (base / path).exists(),
        dataset=_relative(dataset, base) if dataset else None,
        model=_relative(Path(model), base) if model and Path(model).exists() else model,
        components=files,
    )
    write_atomic(out, spec_text(imported, config.name))
    for name, value, reason in imported.unmapped:
        click.echo(f"not mapped: {name} = {value}: {reason}", err=True)
    for name in imported.secrets:
        click.echo(f"not copied: {name} (a credential; set it in the environment)", err=True)
    for warning in imported.warnings:
        click.echo(f"warning: {warning}", err=True)
    click.echo(f"wrote {out}")
    try:
        load_spec(out)
    except SpecError as exc:
        for line in exc.lines():
            click.echo(line, err=True)
        click.echo(f"{out} needs the changes above before it can run", err=True)
        sys.exit(exc.exit_code)


def _components(given: tuple[str, ...], base: Path) -> dict[str, str]:
    """--component NAME=PATH, each NAME one of the families' component files."""
    from typing import get_args

    from ..errors import InputError
    from ..spec.families import Component

    names = get_args(Component)
    out = {}
    for item in given:
        name, sep, path = item.partition("=")
        if not sep or name not in names or not path:
            raise InputError(f"--component {item}: write NAME=PATH, NAME one of {', '.join(names)}")
        out[name] = _relative(Path(path), base) if Path(path).exists() else path
    return out


def _kohya_folders(root: Path) -> list[tuple[str, int]] | None:
    """The N_name folders of root (kohya's repeats_name layout); root itself when it is one; None: not a folder."""
    from ..dataset.images import folder_repeats

    if not root.is_dir():
        return None
    own = folder_repeats(root)
    if own is not None:
        return [(".", own[0])]
    found = []
    for sub in sorted(root.iterdir()):
        named = folder_repeats(sub) if sub.is_dir() else None
        if named is not None:
            found.append((sub.name, named[0]))
    return found


def _relative(path: Path, base: Path) -> str:
    """A path as the spec should hold it: relative to the spec's folder when inside it."""
    full = path.resolve()
    try:
        return full.relative_to(base).as_posix()
    except ValueError:
        return str(full) if os.sep == "/" else full.as_posix()
