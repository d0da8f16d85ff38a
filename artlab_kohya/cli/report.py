"""`artlab-kohya report RUN|SWEEP`: report.html for a run folder or a sweep folder."""

from __future__ import annotations

from pathlib import Path

import click

from .common import loss_option


@click.command()
@click.argument("target", metavar="RUN|SWEEP", type=click.Path(file_okay=False, exists=True, path_type=Path))
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path), help="Default: report.html in it.")
@click.option("--self-contained", is_flag=True, help="Put the sample images inside the page (data: URIs).")
@loss_option
def report(target: Path, output: Path | None, self_contained: bool, window: tuple[float, float]) -> None:
    """Write report.html: loss per step and per epoch with the pick window, the epochs and the pick,
    the parameters that matter, each checkpoint's ss_* metadata and the sample images. For a sweep:
    the runs' curves overlaid, a table of their values and picks, their last samples side by side
    (and each run's own report.html, linked)."""
    from ..errors import InputError
    from ..experiments.records import RecordError, is_run_folder, is_sweep_folder
    from ..experiments.report import write_run_report, write_sweep_report

    try:
        if is_sweep_folder(target):
            path = write_sweep_report(target, output, window=window, self_contained=self_contained)
        elif is_run_folder(target):
            path = write_run_report(target, output, window=window, self_contained=self_contained)
        else:
            raise InputError(f"{target} is neither a run folder nor a sweep folder")
    except RecordError as exc:
        raise InputError(str(exc)) from None
    click.echo(str(path))
