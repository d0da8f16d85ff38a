"""`artlab-kohya show RUN`: one run folder: its lock, how it ended, its epochs and files."""

from __future__ import annotations

from pathlib import Path

import click

from .common import loss_option


@click.command()
@click.argument("run_dir", metavar="RUN", type=click.Path(file_okay=False, exists=True, path_type=Path))
@loss_option
def show(run_dir: Path, window: tuple[float, float]) -> None:
    """Show a run: the lock's summary (spec, git, model, sd-scripts, plan, parameters), its status, the
    average loss of each epoch with its checkpoint and the pick, its files, and the `tensorboard
    --logdir` line when TensorBoard logs exist."""
    from ..errors import InputError
    from ..experiments.records import RecordError
    from ..experiments.show import describe

    try:
        lines = describe(run_dir, window)
    except RecordError as exc:
        raise InputError(str(exc)) from None
    click.echo("\n".join(lines))
