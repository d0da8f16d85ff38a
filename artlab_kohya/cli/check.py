"""`artlab-kohya check SPEC`: every problem of the spec and its dataset at once, located; `preflight`
is the same dataset check as `run` makes it before launching."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING

import click

from ..errors import SPEC_ERROR
from .common import load, print_issues, set_option, size_matrix
from .dataset import emit_report

if TYPE_CHECKING:
    from ..spec import LoadedSpec


@click.command()
@click.argument("spec_path", metavar="SPEC", type=click.Path(dir_okay=False, path_type=Path))
@set_option
@click.option("--json", "as_json", is_flag=True, help="Print the findings as JSON.")
@click.option("--deep", is_flag=True, help="Also decode every image in full (slower).")
def check(spec_path: Path, overrides: tuple[str, ...], as_json: bool, deep: bool) -> None:
    """Report every problem of SPEC and its dataset at once, each with its line."""
    loaded = load(spec_path, overrides)
    if loaded.matrix is not None:
        sys.exit(check_matrix(loaded, spec_path, overrides, as_json=as_json, deep=deep))
    sys.exit(check_spec(loaded, spec_path, as_json=as_json, deep=deep))


def check_spec(loaded: LoadedSpec, spec_path: Path, *, as_json: bool = False, deep: bool = False) -> int:
    """`artlab-kohya check SPEC` after loading: the dataset report, then the plan's warnings and steps.

    Returns the exit status: 2 when the spec's dataset has errors (as for other spec errors), else 0.
    """
    from ..build.plan import PlanError, make_plan
    from ..dataset import check_spec_dataset

    report = check_spec_dataset(loaded, deep=deep)
    report.issues[:0] = loaded.file_issues()
    steps = None
    if not report.errors:
        try:
            plan = make_plan(loaded)
        except PlanError as exc:
            report.issues += [i for i in exc.issues if i not in report.issues]
        else:
            report.issues += [w for w in plan.warnings if w not in report.issues]
            steps = plan.total_steps
    report.issues[:0] = loaded.warnings
    code = emit_report(report, as_json, {"total_steps": steps})
    if as_json:
        return SPEC_ERROR if code else 0
    if code:
        click.echo(f"{len(report.errors)} error(s) in {spec_path}", err=True)
        return SPEC_ERROR
    click.echo(f"{spec_path}: ok ({len(report.warnings)} warning(s)), {steps} steps")
    return 0


def check_matrix(
    loaded: LoadedSpec, spec_path: Path, overrides: tuple[str, ...], *, as_json: bool = False, deep: bool = False
) -> int:
    """`check` of a spec with a matrix: every run validated, each distinct dataset checked once, every
    run planned; then the expansion with its steps and GPU time. Exit status as check_spec's."""
    import json

    from ..dataset import check_spec_dataset, report_json
    from ..experiments.estimate import as_json as size_json
    from ..experiments.estimate import table
    from ..experiments.matrix import expand, load_variants

    matrix = expand(loaded)
    assert matrix is not None
    runs, _ = load_variants(loaded, matrix, overrides)
    reports, seen = [], set()
    for run in runs:
        key = run.spec.dataset.model_dump_json()
        if key not in seen:
            seen.add(key)
            reports.append(check_spec_dataset(run, deep=deep))
    errors = [i for r in reports for i in r.errors]
    if not as_json:
        for report in reports:
            emit_report(report, False)
    if errors:
        if as_json:
            click.echo(json.dumps({"datasets": [report_json(r) for r in reports]}, indent=2))
        else:
            click.echo(f"{len(errors)} error(s) in {spec_path}", err=True)
        return SPEC_ERROR
    size, keys, warnings = size_matrix(loaded, overrides)
    if as_json:
        data = {"datasets": [report_json(r) for r in reports], "matrix": size_json(size, keys)}
        click.echo(json.dumps(data, indent=2))
        return 0
    shown = {str(i) for r in reports for i in r.issues}
    print_issues([w for w in warnings if str(w) not in shown])
    for line in table(size, keys):
        click.echo(line)
    count = len({str(i) for r in reports for i in r.warnings} | {str(w) for w in warnings})
    click.echo(f"{spec_path}: ok ({count} warning(s)), {len(size.runs)} runs, {size.total_steps} steps")
    return 0


def preflight(loaded: LoadedSpec, *, force: bool = False) -> bool:
    """The dataset check `run` makes before launching: prints its issues; False means do not launch."""
    from ..dataset import check_spec_dataset

    missing = loaded.file_issues()  # the base model: --ignore-dataset-errors does not reach it
    report = check_spec_dataset(loaded)
    for issue in missing + report.issues:
        click.echo(str(issue), err=True)
    if missing:
        click.echo(f"not launching: {len(missing)} file(s) the spec names are missing", err=True)
        return False
    if not report.errors:
        return True
    if force:
        click.echo(f"launching anyway with {len(report.errors)} dataset error(s) (--ignore-dataset-errors)", err=True)
        return True
    click.echo(
        f"not launching: {len(report.errors)} dataset error(s); fix them (artlab-kohya check) "
        "or pass --ignore-dataset-errors",
        err=True,
    )
    return False
