"""The `caption` command group: generate (sd-scripts' BLIP or WD14 in the trainer's Python), edit, restore."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import cast

import click

from .dataset import CAPTION_EXTENSION_HELP, DATASET_ERROR, caption_extension_option


class _DefaultGroup(click.Group):
    """A group whose first argument, when it names no subcommand, goes to `generate`."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        if args and args[0] not in self.commands and args[0] not in ctx.help_option_names:
            args = ["generate", *args]
        return super().parse_args(ctx, args)


@click.group(cls=_DefaultGroup, context_settings={"help_option_names": ["-h", "--help"]})
def caption() -> None:
    """Caption images with sd-scripts' BLIP or WD14 scripts, and edit or restore caption files.

    `caption DIR --model wd14` is short for `caption generate DIR --model wd14`.
    """


@caption.command()
@click.argument("folder", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--model", type=click.Choice(["blip", "wd14"]), required=True, help="BLIP sentences or WD14 tags.")
@click.option("--prefix", help="Put before every new caption (the guide's 'prefix words', e.g. the trigger).")
@click.option("--postfix", help="Put after every new caption.")
@click.option("--skip-existing/--overwrite", default=True, show_default=True,
              help="Caption only images without a caption file, or all (old captions are backed up).")  # fmt: skip
@click.option("--batch-size", type=click.IntRange(min=1), default=1, show_default=True)
@click.option("--caption-extension", default=".txt", show_default=True, callback=caption_extension_option,
              help=CAPTION_EXTENSION_HELP)  # fmt: skip
@click.option("--kohya-dir", type=click.Path(file_okay=False, path_type=Path), help="sd-scripts (or kohya_ss) folder "
              "(default: $ARTLAB_KOHYA_DIR, else vendor/sd-scripts).")  # fmt: skip
@click.option("--python", "python_exe", help="The trainer's Python or venv folder (default: this Python).")
@click.option("--onnx/--no-onnx", default=True, show_default=True, help="wd14: onnxruntime (or tensorflow).")
@click.option("--model-dir", type=click.Path(file_okay=False, path_type=Path), help="wd14: where the tagger is kept.")
@click.option("--repo-id", help="wd14: the tagger's hub repository (sd-scripts' default otherwise).")
@click.option("--threshold", type=float, help="wd14: tag confidence threshold (sd-scripts: 0.35).")
@click.option("--weights", help="blip: model_large_caption.pth, a path or URL.")
def generate(
    folder: Path,
    model: str,
    prefix: str | None,
    postfix: str | None,
    skip_existing: bool,
    batch_size: int,
    caption_extension: str,
    kohya_dir: Path | None,
    python_exe: str | None,
    onnx: bool,
    model_dir: Path | None,
    repo_id: str | None,
    threshold: float | None,
    weights: str | None,
) -> None:
    """Caption the images of FOLDER in the trainer's environment, with live progress."""
    from .. import settings
    from ..dataset.caption_generate import CaptioningError, CaptionOptions, ConsoleProgress, Model, caption_folder
    from ..trainer.install import locate_install

    install = locate_install(kohya_dir, python_exe)  # as `run` finds it: kohya_ss roots and venv folders too
    options = CaptionOptions(
        model=cast(Model, model),
        caption_extension=caption_extension,
        batch_size=batch_size,
        onnx=onnx,
        model_dir=(model_dir or settings.cache_root() / "wd14").resolve() if model == "wd14" else None,
        repo_id=repo_id,
        threshold=threshold,
        weights=weights,
    )
    display = ConsoleProgress()
    try:
        result = caption_folder(
            folder, install, options, prefix=prefix, postfix=postfix, overwrite=not skip_existing, on_event=display
        )
    except CaptioningError as exc:
        display.close()
        click.echo(f"error: {exc}", err=True)
        sys.exit(DATASET_ERROR)
    display.close()
    if not result.asked:
        click.echo(f"{folder}: all {result.images} images have captions already (--overwrite to redo them)")
        return
    click.echo(f"{folder}: {result.written} caption(s) written, {result.kept} kept")
    if result.backup is not None and result.backup.changed:
        click.echo(f"replaced captions are backed up; undo with: artlab-kohya caption restore {folder}")
    if result.missing:
        click.echo(f"warning: no caption came back for {', '.join(result.missing)}", err=True)


@caption.command()
@click.argument("folder", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--prefix", help="Put TEXT before each caption (unless it starts with it).")
@click.option("--postfix", help="Put TEXT after each caption (unless it ends with it).")
@click.option("--replace", "replacements", multiple=True, metavar="OLD=NEW", help="Replace text (repeatable).")
@click.option("--remove-tag", "remove_tags", multiple=True, metavar="TAG", help="Remove a tag (repeatable).")
@click.option("--dedupe-tags", is_flag=True, help="Keep the first of repeated tags.")
@click.option("--trigger", help="Make WORD the first tag (added if absent).")
@click.option("--separator", default=", ", show_default=True, help="Between tags, prefix and postfix.")
@click.option("--caption-extension", default=".txt", show_default=True, callback=caption_extension_option,
              help=CAPTION_EXTENSION_HELP)  # fmt: skip
@click.option("--dry-run", is_flag=True, help="Show the diff; write nothing.")
def edit(
    folder: Path,
    prefix: str | None,
    postfix: str | None,
    replacements: tuple[str, ...],
    remove_tags: tuple[str, ...],
    dedupe_tags: bool,
    trigger: str | None,
    separator: str,
    caption_extension: str,
    dry_run: bool,
) -> None:
    """Edit every caption file in FOLDER: atomic writes, each changed file backed up first."""
    from ..dataset.caption_edit import Edit, diff, edit_captions

    pairs = []
    for item in replacements:
        old, sep, new = item.partition("=")
        if not sep or not old:
            raise click.BadParameter(f"{item!r}: write it as OLD=NEW", param_hint="--replace")
        pairs.append((old, new))
    change = Edit(prefix, postfix, tuple(pairs), remove_tags, dedupe_tags, trigger, separator)
    if change == Edit(separator=separator):
        raise click.UsageError(
            "nothing to do: give --prefix, --postfix, --replace, --remove-tag, --dedupe-tags, --trigger"
        )
    what = [f"--{k.replace('_', '-')} {v!r}" for k, v in vars(change).items() if v and k != "separator"]
    result = edit_captions(folder, change, caption_extension, "caption edit " + " ".join(what), dry_run=dry_run)
    for name in result.not_utf8:
        click.echo(f"warning: {name} is not UTF-8; left alone", err=True)
    if dry_run:
        for c in result.changes:
            click.echo(diff(c), nl=False)
        click.echo(f"{len(result.changes)} caption file(s) would change (dry run: nothing written)", err=True)
        return
    click.echo(f"{len(result.changes)} caption file(s) changed")
    if result.backup is not None:
        click.echo(f"backup {result.backup.id}; undo with: artlab-kohya caption restore {folder}")


@caption.command()
@click.argument("folder", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--backup", "backup_id", metavar="ID", help="The backup set to restore (default: the newest).")
@click.option("--list", "list_only", is_flag=True, help="List the backup sets and exit.")
def restore(folder: Path, backup_id: str | None, list_only: bool) -> None:
    """Undo a caption change in FOLDER (the newest by default); the undo is backed up too."""
    from ..dataset.caption_edit import list_backups
    from ..dataset.caption_edit import restore as undo

    if list_only:
        for b in list_backups(folder):
            click.echo(f"{b.id}  {len(b.changed)} changed, {len(b.created)} created  {b.command}")
        return
    try:
        restored, saved = undo(folder, backup_id)
    except FileNotFoundError as exc:  # no backup set (a CaptionError reaches the entry point as it is)
        click.echo(f"error: {exc}", err=True)
        sys.exit(DATASET_ERROR)
    click.echo(
        f"restored {restored.id} ({restored.command}): {len(restored.changed)} file(s) put back, "
        f"{len(restored.created)} removed"
    )
    if saved is not None:
        click.echo(f"what was there is in backup {saved.id} (artlab-kohya caption restore {folder} undoes this)")
