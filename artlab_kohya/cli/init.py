"""`artlab-kohya init`: a commented spec and the dataset folder, from the guide's beginner table."""

from __future__ import annotations

from pathlib import Path

import click

from ..errors import ArtlabError, InputError


@click.command()
@click.argument("folder", type=click.Path(file_okay=False, path_type=Path))
@click.option(
    "--preset",
    type=click.Choice(["anime", "person", "object", "style"]),
    required=True,
    help="Starting numbers from the guide's beginner table.",
)
@click.option(
    "--family",
    type=click.Choice(["sd15", "sdxl", "flux1", "sd3"]),
    default="sd15",
    show_default=True,
    help="Base model family: sdxl, flux1 and sd3 get community settings for 24 GB, or 80+ GB with --vram.",
)
@click.option("--vram", type=float, default=None, help="GPU memory in GB; picks the batch size (and the tier).")
@click.option("--name", default=None, help="Trigger word and output name (default: the folder's name).")
def init(folder: Path, preset: str, family: str, vram: float | None, name: str | None) -> None:
    """Write FOLDER/spec.yaml and a kohya-style dataset folder (img/N_name).

    The optimizer and mixed precision suit this machine: AdamW8bit and bf16 with a CUDA GPU, AdamW and
    no mixed precision without one, as far as init can tell without importing torch (the trainer's
    cached probe, else whether nvidia-smi is installed); the spec's comments say which and why.
    `--family sdxl|flux1|sd3` writes those families' community settings, which assume a CUDA GPU.
    """
    from ..spec.presets import init_project
    from ..trainer.needs import guess_machine

    machine = guess_machine()
    try:
        spec_path, images = init_project(folder, preset, vram, name, machine, family)
    except FileExistsError as exc:
        raise ArtlabError(str(exc)) from None
    except ValueError as exc:
        raise InputError(str(exc)) from None
    click.echo(f"wrote {spec_path}")
    if not machine.cuda:
        click.echo(
            f"no CUDA GPU ({machine.why}): the spec uses AdamW and mixed_precision no; "
            "its comments say what to change for a GPU"
        )
    click.echo(f"put your images and .txt captions in {images}/")
    click.echo(f"then: artlab-kohya check {spec_path}")
