"""`artlab-kohya rerun RUN_DIR`: a run's lock again, in a new run folder."""

from __future__ import annotations

from pathlib import Path

import click

from .run import start


@click.command()
@click.argument("run_dir", type=click.Path(file_okay=False, exists=True, path_type=Path))
@click.option("--runs-dir", type=click.Path(file_okay=False, path_type=Path), help="Where the new run folder goes.")
@click.option("--plain", is_flag=True, help="Plain progress lines, no live view.")
def rerun(run_dir: Path, runs_dir: Path | None, plain: bool) -> None:
    """Run a finished run's lock again, in a new run folder (same model file, same settings)."""
    from ..run.rerun import load_lock

    loaded, options = load_lock(run_dir, runs_root=runs_dir, plain=plain or None)
    start(loaded, options)
