"""`artlab-kohya fetch SPEC`: download (or find in the cache) the base model, its FLUX.1/SD3 files and
the tokenizers, pinned."""

from __future__ import annotations

from pathlib import Path

import click

from .common import load, set_option


@click.command()
@click.argument("spec_path", metavar="SPEC", type=click.Path(dir_okay=False, path_type=Path))
@set_option
def fetch(spec_path: Path, overrides: tuple[str, ...]) -> None:
    """Download (or find in the cache) the base model, its other files and tokenizers; print what they pin to."""
    from .. import settings
    from ..models.components import check_pinned_source, resolve_components
    from ..models.tokenizers import prepare_tokenizer_cache
    from ..run.train import concrete_family, resolve_model

    loaded = load(spec_path, overrides)
    model = resolve_model(loaded.spec, None)
    check_pinned_source(loaded.spec, model)
    family = concrete_family(loaded.spec, model)
    parts = resolve_components(loaded.spec, family)
    tokenizer = prepare_tokenizer_cache(family, settings.tokenizer_root())
    pin = f" @ {model.commit}" if model.commit else ""
    where = f"{model.repo}/{model.filename}" if model.repo else str(model.path)
    click.echo(f"model: {where}{pin}")
    click.echo(f"  file: {model.path}\n  sha256: {model.sha256}\n  size: {model.size:,} bytes\n  family: {family}")
    for name, part in parts.items():
        where = f"{part.repo}/{part.filename} @ {part.commit}" if part.repo else str(part.path)
        click.echo(f"{name}: {where}\n  file: {part.path}\n  sha256: {part.sha256}\n  size: {part.size:,} bytes")
    click.echo(f"tokenizer: {tokenizer}")
