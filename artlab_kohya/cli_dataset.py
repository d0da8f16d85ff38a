"""The `dataset` and `caption` command groups: parse arguments, call the library, print.

Only click and the stdlib are imported here; everything else is imported inside the commands, so
`artlab-kohya --help` stays instant. `check_spec` and `preflight` are what `check` and `run` call.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

if TYPE_CHECKING:
    from .dataset import DatasetReport
    from .spec import LoadedSpec

DATASET_ERROR = 1
SPEC_ERROR = 2


def _size(text: str) -> tuple[int, int]:
    parts = text.lower().split("x")
    try:
        values = [int(p) for p in parts]
    except ValueError:
        raise click.BadParameter(f"{text!r}: give one side (512) or WIDTHxHEIGHT (768x512)") from None
    if len(values) not in (1, 2) or min(values) < 64:
        raise click.BadParameter(f"{text!r}: give one side (512) or WIDTHxHEIGHT (768x512), each at least 64")
    return values[0], values[-1]


def _caption_extension(ctx: click.Context, param: click.Parameter, value: str) -> str:
    from .captions import check_caption_extension

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
        from .dataset import report_json

        click.echo(json.dumps({**report_json(report), **(extra or {})}, indent=2))
    else:
        from rich.console import Console

        from .dataset import print_report

        print_report(report, Console(highlight=False))
        for issue in report.issues:
            click.echo(str(issue), err=True)
    return DATASET_ERROR if report.errors else 0


def check_spec(loaded: LoadedSpec, spec_path: Path, *, as_json: bool = False, deep: bool = False) -> int:
    """`artlab-kohya check SPEC` after loading: the dataset report, then the plan's warnings and steps.

    Returns the exit status: 2 when the spec's dataset has errors (as for other spec errors), else 0.
    """
    from .dataset import check_spec_dataset
    from .plan import PlanError, make_plan

    report = check_spec_dataset(loaded, deep=deep)
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


def preflight(loaded: LoadedSpec, *, force: bool = False) -> bool:
    """The dataset check `run` makes before launching: prints its issues; False means do not launch."""
    from .dataset import check_spec_dataset

    report = check_spec_dataset(loaded)
    for issue in report.issues:
        click.echo(str(issue), err=True)
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


# --------------------------------------------------------------------------- dataset


@click.group()
def dataset() -> None:
    """Check, organize and prepare image folders before training."""


@dataset.command("check")
@click.argument("folder", type=click.Path(path_type=Path))
@click.option("--resolution", default="512", show_default=True, help="Training resolution: 512 or WIDTHxHEIGHT.")
@click.option("--batch-size", type=click.IntRange(min=1), default=1, show_default=True, help="Images per batch.")
@click.option("--no-buckets", is_flag=True, help="Bucketing off: every image is cropped to the resolution.")
@click.option("--trigger", "class_tokens", help="Class tokens captions must contain (default: from N_name).")
@click.option("--caption-extension", default=".txt", show_default=True, callback=_caption_extension,
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
    from .dataset import check_folder

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
@click.option("--caption-extension", default=".txt", show_default=True, callback=_caption_extension,
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
    from .organize import OrganizeError, auto_repeats
    from .organize import organize as build

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
        result = build(src, out or Path("img"), name, count, mode=mode, caption_extension=caption_extension)  # type: ignore[arg-type]
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
@click.option("--caption-extension", default=".txt", show_default=True, callback=_caption_extension,
              help=CAPTION_EXTENSION_HELP)  # fmt: skip
def prepare(src: Path, dst: Path, size: str, crop: str, bucket: bool, caption_extension: str) -> None:
    """Write resized copies of SRC's images (RGB, EXIF rotation applied) and their captions to DST."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeRemainingColumn

    from .resize import PrepareError, parse_size
    from .resize import prepare as run_prepare

    try:
        target = parse_size(size)
        with Progress("resizing", BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(), transient=True) as bar:
            task = bar.add_task("resizing", total=None)
            result = run_prepare(
                src, dst, target, crop=crop, bucket=bucket, caption_extension=caption_extension,  # type: ignore[arg-type]
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


# --------------------------------------------------------------------------- caption


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
@click.option("--caption-extension", default=".txt", show_default=True, callback=_caption_extension,
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
    from .captioning import CaptioningError, CaptionOptions, ConsoleProgress, caption_folder
    from .hub import cache_root
    from .kohya import locate_install

    install = locate_install(kohya_dir, python_exe)  # as `run` finds it: kohya_ss roots and venv folders too
    options = CaptionOptions(
        model=model,  # type: ignore[arg-type]
        caption_extension=caption_extension,
        batch_size=batch_size,
        onnx=onnx,
        model_dir=(model_dir or cache_root() / "wd14").resolve() if model == "wd14" else None,
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
@click.option("--caption-extension", default=".txt", show_default=True, callback=_caption_extension,
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
    from .captions import CaptionError, Edit, diff, edit_captions

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
    try:
        result = edit_captions(folder, change, caption_extension, "caption edit " + " ".join(what), dry_run=dry_run)
    except CaptionError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(DATASET_ERROR)
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
    from .captions import CaptionError, list_backups
    from .captions import restore as undo

    try:
        if list_only:
            for b in list_backups(folder):
                click.echo(f"{b.id}  {len(b.changed)} changed, {len(b.created)} created  {b.command}")
            return
        restored, saved = undo(folder, backup_id)
    except (FileNotFoundError, CaptionError) as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(DATASET_ERROR)
    click.echo(
        f"restored {restored.id} ({restored.command}): {len(restored.changed)} file(s) put back, "
        f"{len(restored.created)} removed"
    )
    if saved is not None:
        click.echo(f"what was there is in backup {saved.id} (artlab-kohya caption restore {folder} undoes this)")
