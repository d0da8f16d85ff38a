"""`artlab-kohya schema`: the spec's JSON Schema, for editor completion."""

from __future__ import annotations

import json

import click


@click.command()
def schema() -> None:
    """Print the spec's JSON Schema (for editor completion)."""
    from ..spec.reference import json_schema

    click.echo(json.dumps(json_schema(), indent=2))
