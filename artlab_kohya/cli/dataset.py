"""The `dataset` command group (check, organize, prepare), and `emit_report`, which `check` shares."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import click

if TYPE_CHECKING:
    from ..dataset import DatasetReport

DATASET_ERROR = 1


def _size(text: str) -> tuple[int, int]:
    parts = text.lower().split("x")
    try:
        values = [int(p) for p in parts]
    except ValueError:
        raise click.BadParameter(f"{text!r}: give one side (512) or WIDTHxHEIGHT (768x512)") from None
    if len(values) not in (1, 2) or min(values) < 64:
        raise click.BadParameter(f"{text!r}: give one side (512) or WIDTHxHEIGHT (768x512), each at least 64")
    return values[0], values[-1]


def caption_extension_option(ctx: click.Context, param: click.Parameter, value: str) -> str:
    from ..dataset.caption_edit import check_caption_extension

    try:
        return check_caption_extension(value)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None


CAPTION_EXTENSION_HELP = (
    'Caption file extension with its dot (.txt, .caption): sd-scripts adds none, so txt and "" are refused.'
)


def emit_report(report: DatasetReport, as_json: bool, extra: dict[str, Any] | None = None) -> int:
    """Print a dataset report: JSON on stdout, or the tables on stdout and the issues on stderr.
    Returns 1 when it has errors, else 0."""
    if as_json:
        from ..dataset import report_json

        click.echo(json.dumps({**report_json(report), **(extra or {})}, indent=2))
    else:
        from rich.console import Console

        from ..dataset import print_report

        print_report(report, Console(highlight=False))
        for issue in report.issues:
            click.echo(str(issue), err=True)
    return DATASET_ERROR if report.errors else 0


@click.group()
def dataset() -> None:
    """Check, organize and prepare image folders before training."""


@dataset.command("check")
@click.argument("folder", type=click.Path(path_type=Path))
@click.option("--resolution", default="512", show_default=True, help="Training resolution: 512 or WIDTHxHEIGHT.")
@click.option("--batch-size", type=click.IntRange(min=1), default=1, show_default=True, help="Images per batch.")
@click.option("--no-buckets", is_flag=True, help="Bucketing off: every image is cropped to the resolution.")
@click.option("--trigger", "class_tokens", help="Class tokens captions must contain (default: from N_name).")
@click.option("--caption-extension", default=".txt", show_default=True, callback=caption_extension_option,
              help=CAPTION_EXTENSION_HELP)  # fmt: skip
@click.option("--max-token-length", type=click.Choice(["75", "150", "225"]), default="75", show_default=True)
@click.option("--tokenizer", type=click.Path(file_okay=False, path_type=Path), help="A CLIP tokenizer folder.")
@click.option("--deep", is_flag=True, help="Decode every image in full (slower; finds damaged pixel data).")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
def check_command(
    folder: Path,
    resolution: str,
    batch_size: int,
    no_buckets: bool,
    class_tokens: str | None,
    caption_extension: str,
    max_token_length: str,
    tokenizer: Path | None,
    deep: bool,
    as_json: bool,
) -> None:
    """Check an image folder (an N_name folder, or a folder of them) the way sd-scripts will read it."""
    from ..dataset import check_folder

    if folder.is_file():
        raise click.UsageError(f"{folder} is a file; for a spec use `artlab-kohya check {folder}`")
    report = check_folder(
        folder,
        resolution=_size(resolution),
        batch_size=batch_size,
        bucketing=not no_buckets,
        caption_extension=caption_extension,
        class_tokens=class_tokens,
        max_token_length=int(max_token_length),
        deep=deep,
        tokenizer_dir=tokenizer,
    )
    code = emit_report(report, as_json)
    if not as_json:
        errors, warnings = len(report.errors), len(report.warnings)
        click.echo(f"{folder}: {f'{errors} error(s)' if errors else 'ok'}, {warnings} warning(s)", err=bool(errors))
    sys.exit(code)


@dataset.command()
@click.argument("src", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--name", required=True, help="Class/trigger tokens; the folder becomes N_NAME.")
@click.option("--repeats", required=True, help="A number, or auto (from --target-steps).")
@click.option("--target-steps", type=click.IntRange(min=1), default=1500, show_default=True)
@click.option("--epochs", type=click.IntRange(min=1), default=10, show_default=True, help="For --repeats auto.")
@click.option("--batch-size", type=click.IntRange(min=1), default=1, show_default=True, help="For --repeats auto.")
@click.option("--resolution", type=click.IntRange(min=64), default=512, show_default=True, help="For --repeats auto.")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), help="Where N_NAME/ goes (default: img/).")
@click.option(
    "--mode",
    type=click.Choice(["link", "copy", "symlink"]),
    default="link",
    show_default=True,
    help="Images: hard links (copies across filesystems), copies or symlinks. Captions are always copied.",
)
@click.option("--caption-extension", default=".txt", show_default=True, callback=caption_extension_option,
              help=CAPTION_EXTENSION_HELP)  # fmt: skip
def organize(
    src: Path,
    name: str,
    repeats: str,
    target_steps: int,
    epochs: int,
    batch_size: int,
    resolution: int,
    out: Path | None,
    mode: str,
    caption_extension: str,
) -> None:
    """Build kohya's N_NAME/ folder from a flat folder SRC (linked or copied; SRC is never changed)."""
    from ..dataset.organize import Mode, OrganizeError, auto_repeats
    from ..dataset.organize import organize as build

    try:
        if repeats == "auto":
            count, why = auto_repeats(
                src, target_steps=target_steps, epochs=epochs, batch_size=batch_size, resolution=resolution
            )
            click.echo(why, err=True)
        elif repeats.isdigit() and int(repeats) >= 1:
            count = int(repeats)
        else:
            raise click.BadParameter(f"{repeats!r}: a number of at least 1, or auto", param_hint="--repeats")
        placing = cast(Mode, mode)
        result = build(src, out or Path("img"), name, count, mode=placing, caption_extension=caption_extension)
    except OrganizeError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(DATASET_ERROR)
    how = ", ".join(f"{n} {w}" for n, w in ((result.linked, "hard-linked"), (result.copied, "copied"),
                                            (result.symlinked, "symlinked")) if n)  # fmt: skip
    click.echo(f"{result.folder}: {result.images} images ({how}), {result.captions} captions copied")
    if result.captions < result.images:
        click.echo(f"warning: {result.images - result.captions} image(s) have no {caption_extension} caption", err=True)
    if result.skipped:
        click.echo(f"warning: not used by sd-scripts, left out: {', '.join(result.skipped)}", err=True)
    click.echo(f"in a spec:  - path: {result.folder}")


@dataset.command()
@click.argument("src", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.argument("dst", type=click.Path(file_okay=False, path_type=Path))
@click.option("--size", required=True, help="512, 768 or WIDTHxHEIGHT; sides are multiples of 64.")
@click.option(
    "--crop",
    type=click.Choice(["center", "none"]),
    default="center",
    show_default=True,
    help="center: fill the size and crop; none: fit the whole picture, trimmed to multiples of 64.",
)
@click.option("--bucket", is_flag=True, help="Crop each image to the bucket sd-scripts would give it.")
@click.option("--caption-extension", default=".txt", show_default=True, callback=caption_extension_option,
              help=CAPTION_EXTENSION_HELP)  # fmt: skip
def prepare(src: Path, dst: Path, size: str, crop: str, bucket: bool, caption_extension: str) -> None:
    """Write resized copies of SRC's images (RGB, EXIF rotation applied) and their captions to DST."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeRemainingColumn

    from ..dataset.prepare import Crop, PrepareError, parse_size
    from ..dataset.prepare import prepare as run_prepare

    try:
        target = parse_size(size)
        with Progress("resizing", BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(), transient=True) as bar:
            task = bar.add_task("resizing", total=None)
            result = run_prepare(
                src, dst, target, crop=cast(Crop, crop), bucket=bucket, caption_extension=caption_extension,
                on_progress=lambda done, total: bar.update(task, completed=done, total=total),
            )  # fmt: skip
    except PrepareError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(DATASET_ERROR)
    sizes = ", ".join(f"{w}x{h}: {n}" for (w, h), n in result.sizes.items())
    click.echo(f"{dst}: {result.written} images ({sizes}), {result.captions} captions")
    if result.upscaled:
        click.echo(f"warning: {result.upscaled} image(s) were smaller than their target and were upscaled", err=True)
    for line in result.failed:
        click.echo(f"error: {line}", err=True)
    sys.exit(DATASET_ERROR if result.failed else 0)
