"""`artlab-kohya export-gui SPEC -o config.json`: a spec as a config the Kohya GUI (kohya_ss) loads."""

from __future__ import annotations

import json
from pathlib import Path

import click

from .common import load, set_option


@click.command("export-gui")
@click.argument("spec_path", metavar="SPEC", type=click.Path(dir_okay=False, path_type=Path))
@click.option("-o", "--out", "out", type=click.Path(dir_okay=False, path_type=Path), required=True,
              help="The GUI config to write (never overwritten).")  # fmt: skip
@set_option
def export_gui(spec_path: Path, out: Path, overrides: tuple[str, ...]) -> None:
    """Write SPEC as a Kohya GUI LoRA config (its field names and value types), to open in the GUI.

    What the GUI cannot hold (folders with their own settings, network args it has no box for, artlab-kohya's
    own settings) is said here, field by field.
    """
    from ..errors import ArtlabError
    from ..files import write_atomic
    from ..spec.gui_export import export_gui as convert

    if out.exists():
        raise ArtlabError(f"{out} exists; export-gui never overwrites a file")
    loaded = load(spec_path, overrides)
    exported = convert(loaded.spec, random_seed=loaded.seed_drawn)
    write_atomic(out, json.dumps(exported.config, indent=2) + "\n")
    for note in exported.notes:
        click.echo(f"note: {note}", err=True)
    click.echo(f"wrote {out}")
