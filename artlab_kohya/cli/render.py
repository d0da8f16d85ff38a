"""`artlab-kohya render SPEC -o DIR`: kohya's dataset.toml and config.toml, and the command `run` would start."""

from __future__ import annotations

import shlex
from pathlib import Path

import click

from .common import load, print_issues, set_option


@click.command()
@click.argument("spec_path", metavar="SPEC", type=click.Path(dir_okay=False, path_type=Path))
@click.option(
    "-o", "--out", "out_dir", type=click.Path(file_okay=False, path_type=Path), required=True,
    help="Folder for dataset.toml, config.toml (and prompts.txt).",
)  # fmt: skip
@set_option
def render(spec_path: Path, out_dir: Path, overrides: tuple[str, ...]) -> None:
    """Write kohya's dataset.toml and config.toml for SPEC and print the launch command.

    The command goes to stdout, preceded by `#` comment lines when it cannot run as it stands (no
    sd-scripts install, no trainer environment found): what is missing, and how to point at it.
    """
    from ..build.inputs import render_for
    from ..trainer.install import find_install
    from ..trainer.needs import command_notes

    loaded = load(spec_path, overrides)
    install = find_install(loaded.spec)
    rendered, argv = render_for(loaded, out_dir.resolve(), install)
    print_issues(loaded.warnings)
    for path in rendered.write(out_dir.resolve()):
        click.echo(f"wrote {path}", err=True)
    for note in command_notes(install):
        click.echo(f"# {note}")
    click.echo(shlex.join(argv))
