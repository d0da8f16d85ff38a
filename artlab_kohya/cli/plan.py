"""`artlab-kohya plan SPEC`: the step math and the files training will save."""

from __future__ import annotations

import json
from pathlib import Path

import click

from .common import load, print_issues, set_option


@click.command()
@click.argument("spec_path", metavar="SPEC", type=click.Path(dir_okay=False, path_type=Path))
@set_option
@click.option("--json", "as_json", is_flag=True, help="Print the plan as JSON.")
def plan(spec_path: Path, overrides: tuple[str, ...], as_json: bool) -> None:
    """Show the step math and the files training will save."""
    from ..build.plan import plan_checked, plan_json, print_plan

    loaded = load(spec_path, overrides)
    result = plan_checked(loaded)
    if as_json:
        click.echo(json.dumps(plan_json(result), indent=2))
        return
    print_issues(loaded.warnings + result.warnings)
    print_plan(result)
