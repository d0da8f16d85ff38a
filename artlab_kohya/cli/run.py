"""`artlab-kohya run SPEC`: check, resolve, write the run folder, train with live progress."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn

import click

from ..errors import SPEC_ERROR
from .check import preflight
from .common import load, print_issues, set_option

if TYPE_CHECKING:
    from ..run.train import RunOptions
    from ..spec import LoadedSpec


@click.command()
@click.argument("spec_path", metavar="SPEC", type=click.Path(dir_okay=False, path_type=Path))
@set_option
@click.option("--runs-dir", type=click.Path(file_okay=False, path_type=Path), help="Where run folders go.")
@click.option("--plain", is_flag=True, help="Plain progress lines, no live view (the default when not a terminal).")
@click.option("--offline", is_flag=True, default=None, help="Use only the local hub cache (as HF_HUB_OFFLINE=1).")
@click.option("--ignore-dataset-errors", is_flag=True, help="Launch even if the dataset check finds errors.")
def run(
    spec_path: Path,
    overrides: tuple[str, ...],
    runs_dir: Path | None,
    plain: bool,
    offline: bool | None,
    ignore_dataset_errors: bool,
) -> None:
    """Train: check, resolve the model, write the run folder, launch sd-scripts, show progress."""
    from ..run.train import RunOptions

    loaded = load(spec_path, overrides)
    if loaded.matrix is not None:
        from ..errors import InputError

        raise InputError(
            f"{spec_path} has a matrix: (several runs); run them with `artlab-kohya sweep {spec_path}`, "
            "or copy the spec without its matrix to run one"
        )
    print_issues(loaded.warnings)
    if not preflight(loaded, force=ignore_dataset_errors):
        sys.exit(SPEC_ERROR)
    start(loaded, RunOptions(runs_root=runs_dir, plain=plain or None, offline=offline))


def start(loaded: LoadedSpec, options: RunOptions) -> NoReturn:
    """Run, write the run's report.html, and exit with the run's status (`run` and `rerun` end here)."""
    from ..run.train import run_spec

    outcome = run_spec(loaded, options)
    write_report(outcome.folder)
    sys.exit(outcome.exit_code)


def write_report(folder: Path) -> None:
    """report.html in the run folder; a failure to write it is a warning, never the run's status."""
    from ..experiments.report import write_run_report

    try:
        click.echo(f"report: {write_run_report(folder)}", err=True)
    except Exception as exc:  # noqa: BLE001 - the report is a view of the run, not part of it
        click.echo(f"warning: no report.html: {exc}", err=True)
