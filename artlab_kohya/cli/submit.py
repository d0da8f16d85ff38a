"""`artlab-kohya submit SPEC --slurm`: a run (or a sweep's runs, as one job array) as SLURM jobs."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from ..errors import SPEC_ERROR
from .common import load, print_issues, set_option


@click.command()
@click.argument("spec_path", metavar="SPEC", type=click.Path(dir_okay=False, path_type=Path))
@click.option(
    "--slurm", "use_slurm", is_flag=True, required=True, help="Submit to SLURM with sbatch (the one scheduler)."
)
@set_option
@click.option("--partition", "-p", help="sbatch --partition.")
@click.option("--account", "-A", help="sbatch --account.")
@click.option("--time", "-t", "time_limit", metavar="TIME", help="sbatch --time: minutes, HH:MM:SS or D-HH:MM.")
@click.option(
    "--gpus-per-job",
    type=click.IntRange(min=0),
    default=0,
    show_default=True,
    help="GPUs per node (--gpus-per-node); they become the run's processes (launch.num_processes).",
)
@click.option(
    "--nodes",
    "-N",
    type=click.IntRange(min=1),
    default=1,
    show_default=True,
    help="Machines for each run: one accelerate launch per node through srun (launch.num_machines).",
)
@click.option("--max-parallel", type=click.IntRange(min=1), help="A sweep's array runs at most this many at once (%N).")
@click.option("--sbatch-arg", "sbatch_args", multiple=True, metavar="ARG", help="Another #SBATCH line, e.g. --mem=64G.")
@click.option("--runs-dir", type=click.Path(file_okay=False, path_type=Path), help="Where run folders go.")
@click.option("--offline", is_flag=True, default=None, help="The job uses only the local hub cache.")
@click.option("--ignore-dataset-errors", is_flag=True, help="Submit even if the dataset check finds errors.")
@click.option("--dry-run", is_flag=True, help="Print the job script; write and submit nothing.")
def submit(
    spec_path: Path,
    use_slurm: bool,
    overrides: tuple[str, ...],
    partition: str | None,
    account: str | None,
    time_limit: str | None,
    gpus_per_job: int,
    nodes: int,
    max_parallel: int | None,
    sbatch_args: tuple[str, ...],
    runs_dir: Path | None,
    offline: bool | None,
    ignore_dataset_errors: bool,
    dry_run: bool,
) -> None:
    """Submit SPEC's run, or its matrix's runs as one job array, to SLURM.

    Each run's folder is made now (runs/<name>/<time>-<id>/, status `submitted`, slurm.json with the job
    id); the job does the run in it on its node, against the same spec and runs root (a shared
    filesystem is assumed, and checked by the job). `runs` shows the jobs' states, `cancel` stops them.
    """
    from .. import settings
    from ..experiments.slurm import ClusterOptions, plan_submission, submit
    from .check import preflight

    loaded = load(spec_path, overrides)
    print_issues(loaded.warnings)
    options = ClusterOptions(
        partition=partition,
        account=account,
        time=time_limit,
        gpus_per_job=gpus_per_job,
        nodes=nodes,
        max_parallel=max_parallel,
        sbatch_args=tuple(a if a.startswith("-") else f"--{a}" for a in sbatch_args),
        offline=offline,
    )
    runs_root = settings.runs_root(loaded.path, runs_dir)
    submission = plan_submission(loaded, overrides, options, runs_root, echo=lambda line: click.echo(line, err=True))
    checked: set[str] = set()
    for run in submission.runs:
        key = run.spec.spec.dataset.model_dump_json()
        if key not in checked:
            checked.add(key)
            if not preflight(run.spec, force=ignore_dataset_errors):
                sys.exit(SPEC_ERROR)
    if not submission.runs:
        click.echo("nothing to submit: every run already succeeded", err=True)
        return
    if dry_run:
        click.echo(submission.script, nl=False)
        return
    submit(submission)
    where = submission.sweep_folder or submission.runs[0].folder
    click.echo(
        f"submitted job {submission.job_id}: {len(submission.runs)} run(s), script {submission.script_path}", err=True
    )
    for run in submission.runs:
        task = f"{submission.job_id}_{run.task}" if run.task is not None else submission.job_id
        click.echo(f"  {task}  {run.name}  {run.folder}", err=True)
    click.echo(str(where))
