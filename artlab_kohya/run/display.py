"""Show a run's progress events: a live view on a terminal, plain lines elsewhere.

Epoch and checkpoint events come from the engine's stdout, steps from its stderr; they only
arrive in step with each other when the child's stdout is unbuffered (PYTHONUNBUFFERED=1).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from rich.console import Console, Group, RenderableType
from rich.live import Live
from rich.progress_bar import ProgressBar
from rich.table import Table
from rich.text import Text

from artlab_kohya.trainer.output import (
    CheckpointRemoved,
    CheckpointSaved,
    EpochStarted,
    Event,
    LauncherFailed,
    LogRecord,
    ModelSaved,
    ModuleNotFound,
    NanLoss,
    NoDataFound,
    OutOfMemory,
    Problem,
    Progress,
    Step,
    Traceback,
    TrainingSummary,
    UsageError,
)

# Tracebacks that only repeat what the run already said: the wrapper around the training
# process's failure, and the KeyboardInterrupt of a run we stopped ourselves.
_QUIET_EXCEPTIONS = ("CalledProcessError", "KeyboardInterrupt")


@dataclass(frozen=True)
class EpochRecord:
    epoch: int
    avr_loss: float | None  # the bar's average at the epoch's last step
    checkpoint: Path | None  # the last file saved during the epoch


def _clock(seconds: float | None) -> str:
    if seconds is None:
        return "?"
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


def _speed(rate: float | None) -> str:
    if not rate:
        return "? it/s"
    return f"{rate:.2f} it/s" if rate >= 1 else f"{1 / rate:.2f} s/it"


def _loss(value: float | None) -> str:
    return "-" if value is None else f"{value:.4g}"


def _size(path: Path | None) -> str:
    try:
        return f"{path.stat().st_size / 1e6:.1f} MB" if path else ""
    except OSError:
        return ""


def _hint(problem: Problem) -> str | None:
    match problem:
        case OutOfMemory():
            return "hint: out of GPU memory; lower the batch size or resolution, or enable gradient checkpointing"
        case NanLoss(step=step):
            return f"WARNING: the average loss became nan at step {step}; the run is not learning"
        case NoDataFound():
            return "hint: no training images were found; sd-scripts still exits 0 and writes no file"
        case ModuleNotFound(module=module):
            return f"hint: the Python module '{module}' is missing from the sd-scripts environment"
        case UsageError(prog=prog, message=message):
            return f"error: {prog}: {message}"
    return None


class Display:
    """Consumes events one at a time; `finish` closes the view and returns the epoch table.

    plain=None picks the live view when the console is a terminal. In plain mode a step line is
    printed at the first step, every 10% and the last step, or when `interval` seconds have passed.
    `folder` is the run folder: the table names checkpoints inside it relative to it, so a long path
    does not push the file name out of a narrow terminal.
    """

    def __init__(
        self,
        console: Console | None = None,
        plain: bool | None = None,
        *,
        interval: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
        folder: Path | None = None,
    ):
        self.console = console or Console(stderr=True)
        self.plain = not self.console.is_terminal if plain is None else plain
        self.folder = folder
        self.problems: list[Problem] = []
        self._interval, self._clock = interval, clock
        self._summary: TrainingSummary | None = None
        self._epoch: EpochStarted | None = None
        self._step: Step | None = None
        self._status = ""
        self._progress: Progress | None = None  # the latest unnamed bar with a known stage (caching latents)
        self._losses: dict[int, float] = {}  # by epoch
        self._epochs: set[int] = set()  # seen starting
        self._checkpoints: dict[int, Path] = {}
        self._removed: set[Path] = set()
        self._failed = False
        self._pending: Step | None = None  # plain mode: a step line waiting for its fresh loss
        self._printed = (0, -1, clock())  # plain mode: last printed step, its 10% bucket, when
        self._live: Live | None = None

    def handle(self, event: Event) -> None:
        if isinstance(event, Step):
            self._on_step(event)
            return
        self._flush_step()
        match event:
            case TrainingSummary():
                self._summary = event
                self._say(self._describe(event))
            case EpochStarted(epoch=epoch, total=total):
                self._epoch = event
                self._epochs.add(epoch)
                self._say(f"epoch {epoch}/{total}")
            case CheckpointSaved(path=path):
                self._checkpoints[self._epoch.epoch if self._epoch else 1] = path
                self._say(f"saved checkpoint: {path}")
            case CheckpointRemoved(path=path):
                self._removed.add(path)
                self._say(f"removed old checkpoint: {path}")
            case ModelSaved():
                self._say("model saved")
            case LogRecord(level=level, message=message) if level in ("WARNING", "ERROR", "CRITICAL"):
                self._failed |= level != "WARNING"
                self._say(f"{level}: {message}", "yellow" if level == "WARNING" else "red")
            case LogRecord(message=message):
                self._status, self._progress = message.split("\n", 1)[0], None
            case Progress(desc=desc, n=n, total=total, stage=stage):
                self._status = f"{desc or stage or 'working'} {n}/{total or '?'}"
                self._progress = event if stage and total else None
            case Traceback(exc_type=exc_type, message=message):
                if not exc_type.endswith(_QUIET_EXCEPTIONS):
                    self._failed = True
                    self._say(f"error: {exc_type}: {message}".rstrip(": "), "red")
            case LauncherFailed(returncode=rc):
                self.problems.append(event)
                if not self._failed:
                    how = f"was killed by signal {-rc}" if rc < 0 else f"exited with status {rc}"
                    self._say(f"error: the training process {how}", "red")
            case OutOfMemory() | NanLoss() | NoDataFound() | ModuleNotFound() | UsageError():
                self.problems.append(event)
                self._failed |= not isinstance(event, NanLoss)
                if hint := _hint(event):
                    self._say(hint, "red" if hint.startswith("error") else "yellow")

    def finish(self) -> list[EpochRecord]:
        self._flush_step()
        if self._live is not None:
            self._live.stop()
            self._live = None
        epochs = sorted(self._epochs | set(self._checkpoints))
        records = [EpochRecord(e, self._losses.get(e), self._checkpoints.get(e)) for e in epochs]
        if records:
            self._table(records)
        return records

    # --- steps ------------------------------------------------------------------------------

    def _on_step(self, step: Step) -> None:
        self._step = step
        if step.avr_loss is not None and step.step > 0:
            self._losses[self._epoch_of(step)] = step.avr_loss
        if not self.plain:
            self._ensure_live()
            return
        if self._pending is not None:
            same = self._pending.step == step.step
            self._pending = step if same else self._pending
            self._flush_step()
            if same:
                return
        last, bucket, when = self._printed
        due = (
            step.step == 1
            or step.step == step.total
            or step.step * 10 // step.total > bucket
            or self._clock() - when >= self._interval
        )
        if step.step > last and due:
            self._pending = step
            self._printed = (step.step, step.step * 10 // step.total, self._clock())

    def _epoch_of(self, step: Step) -> int:
        """The epoch a step belongs to. With the summary this does not depend on the two pipes'
        interleaving; a resumed run's bar counts from the resume point, so then use the order."""
        s = self._summary
        if s and s.steps_per_epoch and s.epochs and s.total_steps == step.total:
            return min((step.step - 1) // s.steps_per_epoch + 1, s.epochs)
        return self._epoch.epoch if self._epoch else 1

    def _flush_step(self) -> None:
        step, self._pending = self._pending, None
        if step is not None:
            self._say(
                f"step {step.step}/{step.total} ({100 * step.step / step.total:.0f}%)"
                f"  avr_loss {_loss(step.avr_loss)}  {_speed(step.rate)}"
                f"  elapsed {_clock(step.elapsed)}  remaining {_clock(step.remaining)}"
            )

    # --- output -----------------------------------------------------------------------------

    def _say(self, line: str, style: str = "") -> None:
        if self.plain:
            self.console.out(line, highlight=False)
        else:
            self._ensure_live()
            self.console.print(Text(line, style=style))

    @staticmethod
    def _describe(s: TrainingSummary) -> str:
        parts = [f"{s.train_images} images (with repeats)"]
        if s.reg_images:
            parts.append(f"{s.reg_images} regularization images")
        parts.append(f"{s.batches_per_epoch} batches per epoch")
        parts.append(f"{s.epochs} epochs")
        if s.batch_size_per_device:
            parts.append(f"batch size {', '.join(map(str, s.batch_size_per_device))}")
        if s.gradient_accumulation_steps and s.gradient_accumulation_steps > 1:
            parts.append(f"gradient accumulation {s.gradient_accumulation_steps}")
        parts.append(f"{s.total_steps} steps")
        return "training: " + ", ".join(parts)

    def _ensure_live(self) -> None:
        if self._live is None:
            self._live = Live(console=self.console, get_renderable=self._render, refresh_per_second=4)
            self._live.start()

    def _render(self) -> RenderableType:
        step, epoch = self._step, self._epoch
        if step is None and self._progress is not None:
            bar = self._progress
            grid = Table.grid(padding=(0, 1))
            grid.add_row(
                Text(bar.stage, style="bold"),
                ProgressBar(total=bar.total, completed=bar.n, width=30),
                Text(f"{bar.n}/{bar.total}"),
                Text(_speed(bar.rate)),
                Text(f"ETA {_clock(bar.remaining)}"),
            )
            return grid
        if step is None:
            return Text(self._status or "starting", style="dim")
        epochs = self._summary.epochs if self._summary else epoch.total if epoch else None
        grid = Table.grid(padding=(0, 1))
        grid.add_row(
            Text(f"epoch {self._epoch_of(step) if step.step else 1}/{epochs or '?'}", style="bold"),
            ProgressBar(total=step.total, completed=step.step, width=30),
            Text(f"{step.step}/{step.total}"),
            Text(_speed(step.rate)),
            Text(f"ETA {_clock(step.remaining)}"),
            Text(f"avr_loss {_loss(step.avr_loss)}", style="cyan"),
        )
        last = self._checkpoints[max(self._checkpoints)] if self._checkpoints else None
        return Group(grid, Text(f"last checkpoint: {last.name if last else '-'}", style="dim"))

    def _shown(self, path: Path) -> str:
        """A checkpoint as the table names it: relative to the run folder when it lies inside it."""
        if self.folder is not None and path.is_absolute():
            try:
                return path.relative_to(self.folder).as_posix()
            except ValueError:
                pass
        return str(path)

    def _table(self, records: list[EpochRecord]) -> None:
        def where(r: EpochRecord) -> str:
            if r.checkpoint is None:
                return "-"
            return self._shown(r.checkpoint) + (" (removed)" if r.checkpoint in self._removed else "")

        if self.plain:
            for r in records:
                size = _size(r.checkpoint)
                self._say(f"epoch {r.epoch}: avr_loss {_loss(r.avr_loss)}, {where(r)}" + (f", {size}" if size else ""))
            return
        table = Table(title="epochs")
        for column in ("epoch", "avr_loss", "checkpoint", "size"):
            if column == "checkpoint":  # folded, never cut: the file name is what the user looks for
                table.add_column(column, overflow="fold")
            else:
                table.add_column(column, justify="right", no_wrap=True)
        for r in records:
            table.add_row(str(r.epoch), _loss(r.avr_loss), where(r), _size(r.checkpoint))
        self.console.print(table)
