"""`caption DIR --model blip|wd14`: sd-scripts' own captioning scripts, run in the trainer's environment.

finetune/make_captions.py (BLIP) and finetune/tag_images_by_wd14_tagger.py (WD14 tagger) caption every
image of a folder and overwrite existing caption files. To keep captions a person wrote, the script is
pointed at a temporary folder of links to just the images to caption; its captions are then edited
(prefix/postfix, the guide's "prefix words" step) and written next to the images through
captions.write_captions, which backs up anything it replaces. The child runs through trainer.process (own
process group, Ctrl-C forwarded) and its tqdm bar becomes progress.Progress events.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from ..errors import ArtlabError
from ..trainer.install import Install
from ..trainer.output import Event, LogRecord, ModuleNotFound, Progress, last_traceback, wrong_python
from ..trainer.process import CHILD_ENV
from .caption_edit import Backup, CaptionError, Edit, apply_edit, write_captions
from .images import list_images

if TYPE_CHECKING:
    from rich.console import Console
    from rich.progress import Progress as RichProgress
    from rich.progress import TaskID

__all__ = ["CaptionOptions", "CaptionResult", "CaptioningError", "ConsoleProgress", "build_command", "caption_folder"]

Model = Literal["blip", "wd14"]
SCRIPTS: dict[str, str] = {
    "blip": "finetune/make_captions.py",
    "wd14": "finetune/tag_images_by_wd14_tagger.py",
}
# What each model needs in the trainer's environment beyond sd-scripts' own requirements.
NEEDS = {"blip": "timm and fairscale", "wd14": "onnx and onnxruntime (or tensorflow with --no-onnx)"}
_EXTRAS = {"blip": ("timm", "fairscale"), "wd14": ("onnx", "onnxruntime", "tensorflow")}


class CaptioningError(ArtlabError):
    """Captioning could not run or failed; one line for the user, with a hint where one is known."""


@dataclass(frozen=True)
class CaptionOptions:
    model: Model
    caption_extension: str = ".txt"
    batch_size: int = 1
    onnx: bool = True  # wd14: onnxruntime instead of tensorflow
    model_dir: Path | None = None  # wd14: where the tagger model is kept (default: <cache>/wd14)
    repo_id: str | None = None  # wd14: the tagger's hub repository
    threshold: float | None = None  # wd14: tag confidence
    weights: str | None = None  # blip: model_large_caption.pth, a path or URL
    extra_args: tuple[str, ...] = ()


@dataclass
class CaptionResult:
    images: int = 0  # images in the folder
    asked: int = 0  # images given to the script
    written: int = 0  # caption files written (new or changed)
    kept: int = 0  # images that already had a caption and were skipped
    missing: list[str] = field(default_factory=list)  # asked, but the script wrote no caption
    backup: Backup | None = None
    returncode: int = 0


def build_command(install: Install, image_dir: Path, options: CaptionOptions) -> tuple[list[str], dict[str, str]]:
    """argv and the environment variables to add, for the captioning script on image_dir. Pure.

    PYTHONPATH gets the sd-scripts folder: the scripts live in finetune/ and import `library`, which
    is only importable otherwise when sd-scripts was pip-installed (`-e .` in its requirements).
    """
    argv = [install.python, str(install.dir / SCRIPTS[options.model]), str(image_dir)]
    argv += ["--caption_extension", options.caption_extension, "--batch_size", str(options.batch_size)]
    if options.model == "blip":
        if options.weights:
            argv += ["--caption_weights", options.weights]
    else:
        if options.onnx:
            argv.append("--onnx")
        if options.model_dir is not None:
            argv += ["--model_dir", str(options.model_dir)]
        if options.repo_id:
            argv += ["--repo_id", options.repo_id]
        if options.threshold is not None:
            argv += ["--thresh", str(options.threshold)]
    argv += list(options.extra_args)
    env = dict(CHILD_ENV)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(install.dir), os.environ.get("PYTHONPATH", "")) if p)
    return argv, env


def caption_folder(
    folder: str | os.PathLike[str],
    install: Install,
    options: CaptionOptions,
    *,
    prefix: str | None = None,
    postfix: str | None = None,
    overwrite: bool = False,
    on_event: Callable[[Event], None] | None = None,
) -> CaptionResult:
    """Caption the images of FOLDER that have no caption (all of them with overwrite), then prefix/postfix.

    Captions the script did write are kept even when it fails later on (the error is raised after
    they are in place); every file replaced is backed up first (`caption restore` undoes the run).
    """
    from ..trainer.process import run_parsed

    root = Path(folder)
    script = install.dir / SCRIPTS[options.model]
    if not script.is_file():
        raise CaptioningError(f"{script} not found: point --kohya-dir (or ARTLAB_KOHYA_DIR) at an sd-scripts folder")
    images = list_images(root)
    result = CaptionResult(images=len(images))
    ext = options.caption_extension
    todo = [p for p in images if overwrite or not p.with_suffix(ext).exists()]
    result.kept = len(images) - len(todo)
    result.asked = len(todo)
    if not todo:
        return result
    work = Path(tempfile.mkdtemp(prefix="artlab-caption-"))
    try:
        for image in todo:
            _link(image, work / image.name)
        argv, env_add = build_command(install, work, options)
        seen: list[Event] = []

        def forward(event: Event) -> None:
            seen.append(event)
            if on_event is not None:
                on_event(event)

        result.returncode = run_parsed(argv, {**os.environ, **env_add}, install.dir, forward)
        edit = Edit(prefix=prefix or None, postfix=postfix or None)
        texts: dict[Path, str] = {}
        for image in todo:
            made = work / (image.stem + ext)
            if not made.is_file():
                result.missing.append(image.name)
                continue
            caption = made.read_text(encoding="utf-8").strip()
            texts[image.with_suffix(ext)] = apply_edit(caption, edit) + "\n"
        command = f"caption --model {options.model}" + (" --overwrite" if overwrite else "")
        try:
            result.backup = write_captions(root, texts, command)
        except CaptionError as exc:
            raise CaptioningError(f"the new captions were not all written: {exc}") from None
        result.written = len(result.backup.changed) + len(result.backup.created) if result.backup else 0
    finally:
        shutil.rmtree(work, ignore_errors=True)
    if result.returncode != 0:
        raise CaptioningError(_failure(options.model, result.returncode, seen, install.python))
    return result


def _link(src: Path, dst: Path) -> None:
    try:
        dst.symlink_to(src.resolve())
    except OSError:  # no symlinks here (Windows without the privilege): a copy does the same job
        shutil.copy2(src, dst)


def _failure(model: str, rc: int, events: list[Event], python: str) -> str:
    missing = next((e for e in events if isinstance(e, ModuleNotFound)), None)
    if missing is not None and missing.module.split(".")[0] in _EXTRAS[model]:
        return (
            f"the trainer's Python has no module '{missing.module}': {model} captioning needs {NEEDS[model]} "
            "there (pip install them into the sd-scripts environment, or pass --python)"
        )
    if missing is not None:
        return wrong_python(python, missing.module)
    detail, text = last_traceback(events)
    hint = ""
    if model == "blip" and ("from_pretrained" in text or "download_cached_file" in text):
        hint = " (BLIP downloads its weights and BERT's tokenizer on first use: run once with network access)"
    elif "hf_hub_download" in text:
        hint = " (the WD14 tagger is downloaded on first use: run once with network access, or pass --model-dir)"
    return f"{model} captioning failed with status {rc}{detail}{hint}"


class ConsoleProgress:
    """Shows a script's events (captioning, `lora resize`/`merge`): a progress bar on a terminal, a line per
    10% elsewhere; log lines as they come."""

    def __init__(self, console: Console | None = None, label: str = "captioning") -> None:
        from rich.console import Console

        self.console = console or Console(stderr=True)
        self.label = label
        self._bar: RichProgress | None = None
        self._task: TaskID | None = None
        self._shown = -1

    def __call__(self, event: Event) -> None:
        if isinstance(event, Progress):
            self._progress(event)
        elif isinstance(event, LogRecord):
            style = {"WARNING": "yellow", "ERROR": "red", "CRITICAL": "red"}.get(event.level, "dim")
            self.console.print(f"{event.level}: {event.message}", style=style, highlight=False)

    def _progress(self, event: Progress) -> None:
        total = event.total or 0
        if not self.console.is_terminal:
            tenth = event.n * 10 // total if total else event.n
            if tenth != self._shown:
                self._shown = tenth
                self.console.print(f"{self.label} {event.n}/{total or '?'}", highlight=False)
            return
        if self._bar is None or self._task is None:
            from rich.progress import BarColumn, MofNCompleteColumn, TimeRemainingColumn
            from rich.progress import Progress as Bar

            columns = (BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
            self._bar = Bar(self.label, *columns, console=self.console)
            self._bar.start()
            self._task = self._bar.add_task(self.label, total=total or None)
        self._bar.update(self._task, completed=event.n, total=total or None)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.stop()
            self._bar = None
