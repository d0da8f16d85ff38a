"""`artlab-kohya explain [FIELD]`: what each spec field means (the descriptions in spec/model.py)."""

from __future__ import annotations

import click

from ..errors import InputError


@click.command()
@click.argument("field", required=False)
@click.option("--markdown", is_flag=True, help="The whole reference as a Markdown table (as in the README).")
def explain(field: str | None, markdown: bool) -> None:
    """Describe spec fields: all of them, or those under FIELD (e.g. network, training.epochs)."""
    from ..spec.reference import field_docs, reference_markdown

    if markdown:
        click.echo(reference_markdown(), nl=False)
        return
    docs = [d for d in field_docs() if field is None or d.path == field or d.path.startswith(f"{field}.")]
    docs += [d for d in field_docs() if field and d.path.startswith(f"{field}[]") and d not in docs]
    if not docs:
        raise InputError(f"no spec field '{field}'; `artlab-kohya explain` lists them all")
    for doc in docs:
        default = f" (default: {doc.default})" if doc.default else ""
        click.echo(f"{doc.path}: {doc.type}{default}\n    {doc.description}")
