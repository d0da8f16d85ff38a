"""`artlab-kohya pick RUN|SWEEP`: the checkpoint whose epoch's average loss sits in the window."""

from __future__ import annotations

import json
from pathlib import Path

import click

from .common import loss_option


@click.command()
@click.argument("target", metavar="RUN|SWEEP", type=click.Path(file_okay=False, exists=True, path_type=Path))
@loss_option
@click.option(
    "--copy",
    "dest",
    type=click.Path(file_okay=False, path_type=Path),
    help="Copy the picked file(s) into this folder as <run name>-e<epoch>.safetensors (a byte copy, "
    "metadata intact); an existing file is never overwritten.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the picks as JSON.")
def pick(target: Path, window: tuple[float, float], dest: Path | None, as_json: bool) -> None:
    """Pick a run's checkpoint by its epoch's average loss (the trainer's average at the epoch's last
    step, from events.jsonl). Candidates are the epochs whose checkpoint file exists. Inside the window
    (LO <= loss <= HI) the latest epoch is picked; with none inside, the one nearest the window (on a
    tie, the later epoch). For a sweep folder: each run's pick, the runs inside the window first."""
    from ..experiments.choose import choose

    result = choose(target, window)
    copies = result.copy_to(dest) if dest is not None else {}
    if as_json:
        click.echo(json.dumps(result.as_json(copies), indent=2))
        return
    for line in result.lines(copies):
        click.echo(line)
    if not any(r.pick.chosen for r in result.runs):
        raise SystemExit(1)
