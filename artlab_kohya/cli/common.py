"""What the commands share: the `--set` option, loading a spec (with its overrides echoed), warnings."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

if TYPE_CHECKING:
    from ..experiments.estimate import SweepSize
    from ..spec import LoadedSpec

set_option = click.option(
    "--set",
    "overrides",
    multiple=True,
    metavar="PATH=VALUE",
    help="Override a spec value, e.g. --set dataset.batch_size=4 (repeatable; YAML values).",
)


def _window(ctx: click.Context, param: click.Parameter, value: str) -> tuple[float, float]:
    from ..experiments.pick import parse_window

    try:
        return parse_window(value)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None


loss_option = click.option(
    "--loss",
    "window",
    default="0.08:0.1",
    show_default=True,
    metavar="LO:HI",
    callback=_window,
    help="The pick window on an epoch's average loss; the default is the guide's 'a good LoRA shows an "
    "average loss around 0.08-0.1' (spec.guide.LOSS_WINDOW).",
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


def size_matrix(
    loaded: LoadedSpec, overrides: tuple[str, ...], runs_dir: Path | None = None
) -> tuple[SweepSize, list[str], list[Any]]:
    """A spec with a matrix, expanded: each run validated and planned (SpecError locates problems at the
    matrix entry), its steps and GPU time; the matrix's keys; the warnings of all runs, each once."""
    from .. import settings
    from ..experiments.estimate import size_sweep
    from ..experiments.matrix import expand, load_variants

    matrix = expand(loaded)
    assert matrix is not None
    runs, warnings = load_variants(loaded, matrix, overrides)
    size = size_sweep(loaded, matrix, runs, settings.runs_root(loaded.path, runs_dir))
    every = {str(w): w for w in loaded.warnings + warnings + size.warnings}
    return size, matrix.keys, list(every.values())
