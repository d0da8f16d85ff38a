"""`artlab-kohya sweep SPEC`: the runs of a spec's matrix, as a queue that resumes where it stopped."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from ..errors import SPEC_ERROR
from .common import load, print_issues, set_option


def _gpus(ctx: click.Context, param: click.Parameter, value: str | None) -> list[int] | None:
    if value is None:
        return None
    try:
        gpus = [int(g) for g in value.split(",") if g.strip()]
    except ValueError:
        raise click.BadParameter(f"a comma-separated list of GPU numbers, e.g. 0,1 (got {value!r})") from None
    if not gpus or any(g < 0 for g in gpus) or len(set(gpus)) != len(gpus):
        raise click.BadParameter(f"a comma-separated list of distinct GPU numbers, e.g. 0,1 (got {value!r})")
    return gpus


@click.command()
@click.argument("spec_path", metavar="SPEC", type=click.Path(dir_okay=False, path_type=Path))
@set_option
@click.option(
    "--gpus",
    callback=_gpus,
    metavar="0,1,...",
    help="Run side by side, each run on its own GPUs (launch.num_processes of them, as launch.gpu_ids); "
    "one number: one after another on that GPU. Default: one after another, as the spec says.",
)
@click.option("--runs-dir", type=click.Path(file_okay=False, path_type=Path), help="Where run folders go.")
@click.option("--plain", is_flag=True, help="Plain progress lines, no live view.")
@click.option("--offline", is_flag=True, default=None, help="Use only the local hub cache (as HF_HUB_OFFLINE=1).")
@click.option("--ignore-dataset-errors", is_flag=True, help="Launch even if the dataset check finds errors.")
def sweep(
    spec_path: Path,
    overrides: tuple[str, ...],
    gpus: list[int] | None,
    runs_dir: Path | None,
    plain: bool,
    offline: bool | None,
    ignore_dataset_errors: bool,
) -> None:
    """Run every combination of SPEC's matrix: one run after another (or one per GPU with --gpus).

    A run whose resolved spec already succeeded is skipped, so running the same command again resumes
    an interrupted sweep. A failed run does not stop the others; Ctrl-C stops the queue (exit 130).
    The sweep's record is runs/<name>/sweep-<time>/sweep.json, with report.html beside it.
    """
    from ..experiments.matrix import expand, load_variants
    from ..experiments.sweep import SweepOptions, run_sweep
    from .check import preflight

    loaded = load(spec_path, overrides)
    matrix = expand(loaded)
    if matrix is None:
        from ..errors import InputError

        raise InputError(f"{spec_path} has no matrix: section; `artlab-kohya run {spec_path}` runs it")
    runs, warnings = load_variants(loaded, matrix, overrides)
    print_issues(list({str(w): w for w in loaded.warnings + warnings}.values()))
    checked: set[str] = set()
    for run in runs:
        key = run.spec.dataset.model_dump_json()
        if key not in checked:
            checked.add(key)
            if not preflight(run, force=ignore_dataset_errors):
                sys.exit(SPEC_ERROR)
    options = SweepOptions(runs_root=runs_dir, gpus=gpus, plain=plain or None, offline=offline, overrides=overrides)
    sys.exit(run_sweep(loaded, options).exit_code)
