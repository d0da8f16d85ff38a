"""`artlab-kohya cancel RUN|SWEEP`: scancel the SLURM job of a submitted run, or a sweep's job array."""

from __future__ import annotations

from pathlib import Path

import click


@click.command()
@click.argument("folder", metavar="RUN|SWEEP", type=click.Path(file_okay=False, exists=True, path_type=Path))
def cancel(folder: Path) -> None:
    """Cancel what `submit --slurm` submitted for a run folder (its job, or its array task) or a sweep
    folder (the whole array). SLURM stops a running job with SIGTERM: the run records itself as
    interrupted; a run whose job had not started yet is recorded as interrupted here."""
    from ..experiments.slurm import cancel as scancel

    for job, runs in scancel(folder.absolute()).items():
        click.echo(
            f"cancelled job {job}" + (f" ({runs} run(s) that had not started marked interrupted)" if runs else "")
        )
