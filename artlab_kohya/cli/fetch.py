"""`artlab-kohya fetch SPEC`: download (or find in the cache) the base model and tokenizer, pinned."""

from __future__ import annotations

from pathlib import Path

import click

from .common import load, set_option


@click.command()
@click.argument("spec_path", metavar="SPEC", type=click.Path(dir_okay=False, path_type=Path))
@set_option
def fetch(spec_path: Path, overrides: tuple[str, ...]) -> None:
    """Download (or find in the cache) the base model and tokenizer, and print what they pin to."""
    from .. import settings
    from ..models.tokenizers import prepare_tokenizer_cache
    from ..run.train import concrete_family, resolve_model

    loaded = load(spec_path, overrides)
    model = resolve_model(loaded.spec, None)
    family = concrete_family(loaded.spec, model)
    tokenizer = prepare_tokenizer_cache(family, settings.tokenizer_root())
    pin = f" @ {model.commit}" if model.commit else ""
    where = f"{model.repo}/{model.filename}" if model.repo else str(model.path)
    click.echo(f"model: {where}{pin}")
    click.echo(f"  file: {model.path}\n  sha256: {model.sha256}\n  size: {model.size:,} bytes\n  family: {family}")
    click.echo(f"tokenizer: {tokenizer}")
