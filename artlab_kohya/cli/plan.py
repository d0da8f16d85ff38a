"""`artlab-kohya plan SPEC`: the step math and the files training will save."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

import click

if TYPE_CHECKING:
    from ..spec import LoadedSpec

from .common import load, print_issues, set_option, size_matrix


@click.command()
@click.argument("spec_path", metavar="SPEC", type=click.Path(dir_okay=False, path_type=Path))
@set_option
@click.option("--json", "as_json", is_flag=True, help="Print the plan as JSON.")
def plan(spec_path: Path, overrides: tuple[str, ...], as_json: bool) -> None:
    """Show the step math and the files training will save."""
    from ..build.inputs import speed_for_plan
    from ..build.plan import plan_checked, plan_json, print_plan

    loaded = load(spec_path, overrides)
    if loaded.matrix is not None:
        plan_matrix(loaded, overrides, as_json)
        return
    result = plan_checked(loaded)
    speed = speed_for_plan(loaded, result.family)
    if as_json:
        click.echo(json.dumps(plan_json(result) | {"speed": speed.record()}, indent=2))
        return
    print_issues(loaded.warnings + result.warnings)
    print_plan(result)
    click.echo(f"speed (profile {speed.profile}, on this machine; the run's lock records what it chose):")
    for line in speed.lines():
        click.echo(f"  {line}")


def plan_matrix(loaded: LoadedSpec, overrides: tuple[str, ...], as_json: bool) -> None:
    """A spec with a matrix: every run's steps, the total and the GPU time it adds up to."""
    from ..experiments.estimate import as_json as size_json
    from ..experiments.estimate import table

    size, keys, warnings = size_matrix(loaded, overrides)
    if as_json:
        click.echo(json.dumps({"matrix": size_json(size, keys)}, indent=2))
        return
    print_issues(warnings)
    for line in table(size, keys):
        click.echo(line)
