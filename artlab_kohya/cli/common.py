"""What the commands share: the `--set` option, loading a spec (with its overrides echoed), warnings."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

if TYPE_CHECKING:
    from ..spec import LoadedSpec

set_option = click.option(
    "--set",
    "overrides",
    multiple=True,
    metavar="PATH=VALUE",
    help="Override a spec value, e.g. --set dataset.batch_size=4 (repeatable; YAML values).",
)


def load(spec_path: Path, overrides: tuple[str, ...]) -> LoadedSpec:
    """The validated spec; a SpecError (exit 2, every issue located) reaches the entry point."""
    from ..spec import load_spec

    loaded = load_spec(spec_path, overrides)
    for override in loaded.overrides:
        click.echo(f"override: {override}", err=True)
    return loaded


def print_issues(issues: list[Any]) -> None:
    for issue in issues:
        click.echo(str(issue), err=True)
