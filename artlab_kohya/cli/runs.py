"""`artlab-kohya runs [DIR]`: the recorded runs, one line each."""

from __future__ import annotations

import json
from pathlib import Path

import click

from .common import loss_option


@click.command()
@click.argument("folder", metavar="[DIR]", required=False, type=click.Path(file_okay=False, path_type=Path))
@loss_option
@click.option("--json", "as_json", is_flag=True, help="Print the rows as JSON.")
def runs(folder: Path | None, window: tuple[float, float], as_json: bool) -> None:
    """List the runs under DIR (default $ARTLAB_KOHYA_RUNS, else ./runs), or the runs of a sweep folder:
    status (abandoned: a running run whose process is gone; submitted: waiting for its SLURM job), the SLURM job and its
    state for submitted runs (pending, running, completed, failed, cancelled, timeout), start, duration,
    steps, final loss, the epoch `pick` would choose and its loss, base model, the values a sweep
    varied, and the spec's git commit ("dirty" when the spec file differed from it at launch)."""
    from .. import settings
    from ..errors import InputError
    from ..experiments.listing import Listing, list_runs, text_table
    from ..experiments.records import RecordError

    where = folder or settings.listed_runs_root()
    try:
        # nothing trained here yet: an empty table, not an error
        listing = Listing([], []) if folder is None and not where.exists() else list_runs(where, window)
    except RecordError as exc:
        raise InputError(str(exc)) from None
    for note in listing.notes:
        click.echo(f"note: {note}", err=True)
    if as_json:
        click.echo(json.dumps({"varied": listing.varied, "runs": listing.rows}, indent=2))
        return
    if not listing.rows:
        click.echo(f"no runs under {where}" + ("" if where.exists() else " (no such folder yet)"), err=True)
        return
    click.echo("\n".join(text_table(listing)))
