"""`artlab-kohya doctor`: click and the standard library only at import, so `--help` stays instant."""

from __future__ import annotations

import json
import shutil
import sys
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import click

if TYPE_CHECKING:
    from ..trainer.install import Install


@click.command()
@click.option(
    "--spec",
    "spec_path",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Check the install this spec would use (its kohya.dir and kohya.python).",
)
@click.option(
    "--kohya-dir",
    type=click.Path(path_type=Path),
    default=None,
    help="sd-scripts folder or kohya_ss folder (default: ARTLAB_KOHYA_DIR, then vendor/sd-scripts).",
)
@click.option("--python", "python", default=None, help="The trainer's Python or its venv folder (default: this one).")
@click.option(
    "--smoke",
    is_flag=True,
    help="Then train 8 steps at 64 px on a random-initialised SD1.5 model, nothing downloaded "
    "(the 2 GB model is built once: about a minute and 9 GB of memory).",
)
@click.option("--plain", is_flag=True, help="With --smoke: plain progress lines instead of the live display.")
@click.option("--json", "as_json", is_flag=True, help="Print the findings as JSON.")
def doctor(
    spec_path: Path | None, kohya_dir: Path | None, python: str | None, smoke: bool, plain: bool, as_json: bool
) -> None:
    """Check the trainer: its Python, torch, CUDA, GPUs, packages and sd-scripts commit."""
    from ..trainer.doctor import print_report, run_doctor, smoke_assets, smoke_precision
    from ..trainer.install import InstallError, locate_install

    folder, trainer = kohya_dir, python
    if spec_path is not None:
        from ..spec import SpecError, load_spec

        try:
            kohya = load_spec(spec_path).spec.kohya
        except SpecError as exc:
            for issue in exc.issues:
                click.echo(str(issue), err=True)
            sys.exit(2)
        folder = folder if folder is not None else kohya.dir
        trainer = trainer if trainer is not None else (str(kohya.python) if kohya.python else None)
    install = locate_install(folder, trainer)
    result = run_doctor(install)
    if as_json:
        click.echo(json.dumps(result.as_json(), indent=2))
    else:
        print_report(result.checks)
    if result.failed:
        sys.exit(1)
    if not smoke:
        return

    try:
        model, tokenizers = smoke_assets(install, on_status=lambda line: click.echo(line, err=True))
    except InstallError as exc:
        click.echo(f"smoke: {exc}", err=True)
        sys.exit(1)
    sys.exit(smoke_run(install, model, tokenizers, smoke_precision(result.versions), plain=True if plain else None))


def smoke_run(
    install: Install, model: Path, tokenizers: Path, precision: Literal["no", "fp16", "bf16"], *, plain: bool | None
) -> int:
    """Train the smoke spec in a temporary project (None for plain: by TTY); returns the exit status.

    The project goes away afterwards; only a failed run's folder stays, and is named, to be looked at.
    """
    from ..trainer.doctor import write_smoke_project

    project = Path(tempfile.mkdtemp(prefix="artlab-kohya-smoke-"))
    code = 1
    try:
        spec_file = write_smoke_project(project, model, precision)
        click.echo(f"smoke: training {spec_file}", err=True)
        from ..run.train import run_smoke

        code = run_smoke(install, model, tokenizers, spec_file, plain=plain)
        return code
    finally:
        runs = sorted((project / "runs").glob("*/*/"))
        if code == 0 or not runs:
            shutil.rmtree(project, ignore_errors=True)
        else:
            click.echo(f"smoke: failed; its run folder is kept: {runs[-1]}", err=True)
