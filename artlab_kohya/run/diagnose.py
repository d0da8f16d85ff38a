"""From what the trainer said and how it ended to a verdict and a paragraph a user can act on.

sd-scripts' exit status alone misleads: "No data found" exits 0 with no file written, and
accelerate turns every failure into status 1. The parsed events carry the real story.
"""

from __future__ import annotations

import signal
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, TypeVar

from ..spec.model import Spec
from ..trainer.output import (
    Event,
    LauncherFailed,
    ModuleNotFound,
    NanLoss,
    NoDataFound,
    OutOfMemory,
    Traceback,
    UsageError,
)
from ..trainer.pins import INSTALL_HINTS

Status = Literal["succeeded", "failed", "interrupted"]
E = TypeVar("E")
_DISK_FULL = "No space left on device"  # strerror(ENOSPC), in an OSError traceback


@dataclass(frozen=True)
class Verdict:
    status: Status
    diagnosis: str | None


def _signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return f"signal {number}"


def _first(events: Sequence[Event], kind: type[E]) -> E | None:
    return next((e for e in events if isinstance(e, kind)), None)


def _killed_by(exit_code: int, events: Sequence[Event]) -> int | None:
    """The signal that ended the training process, whatever the launcher's exit status: our child's own
    (128 + N, when the signal reached the launcher too), else the one accelerate names in its
    CalledProcessError ("died with <Signals.SIGKILL: 9>"): accelerate itself exits 1 whatever killed its
    child, which is how the out-of-memory killer's SIGKILL reaches us."""
    if exit_code > 128 and exit_code - 128 in (signal.SIGKILL, signal.SIGTERM, signal.SIGSEGV, signal.SIGABRT):
        return exit_code - 128
    launcher = _first(events, LauncherFailed)
    if launcher is not None and launcher.returncode < 0:
        return -launcher.returncode
    return None


def diagnose(
    spec: Spec,
    exit_code: int,
    events: Sequence[Event],
    final_checkpoint: Path,
    *,
    interrupted: bool,
    stopped_for_nan: int | None,
    kohya_commit: str | None,
) -> Verdict:
    commit = (kohya_commit or "unknown commit")[:8]
    if stopped_for_nan is not None:
        return Verdict(
            "failed",
            f"The average loss became NaN at step {stopped_for_nan}, so the run was stopped (set "
            "training.stop_on_nan: false to let it go on). A NaN usually means the learning rate is too high "
            "for this optimizer, or fp16 overflowed: try a lower optimizer.learning_rate, "
            "training.mixed_precision: bf16 on cards that have it, or optimizer.max_grad_norm: 1.0.",
        )
    if interrupted:
        return Verdict("interrupted", "The run was interrupted (Ctrl-C or a signal); finished checkpoints are kept.")
    if _first(events, OutOfMemory) is not None:
        return Verdict(
            "failed",
            f"The GPU ran out of memory. Lower dataset.batch_size (now {spec.dataset.batch_size}), set "
            "training.gradient_checkpointing: true, lower dataset.resolution or the bucket maximum, keep "
            "training.cache_latents on, or use a smaller network.dim. Checkpoints finished before this are kept.",
        )
    if (missing := _first(events, ModuleNotFound)) is not None:
        module = missing.module
        package = INSTALL_HINTS.get(module.split(".")[0], module.split(".")[0])
        return Verdict(
            "failed",
            f"The trainer's Python cannot import '{module}'. Install {package} into the environment that "
            "runs sd-scripts (kohya.python), then run again; `artlab-kohya doctor` checks that environment.",
        )
    if _first(events, NoDataFound) is not None:
        folders = ", ".join(str(s.path) for s in spec.dataset.subsets)
        return Verdict(
            "failed",
            f"sd-scripts found no training images in {folders} (it says 'No data found' and exits 0 without "
            "writing a file). Each subset path must be a folder that directly holds the images (.png .jpg "
            ".jpeg .webp .bmp) with same-name .txt captions, e.g. img/10_name/photo1.png + photo1.txt.",
        )
    if (usage := _first(events, UsageError)) is not None:
        return Verdict(
            "failed",
            f"The sd-scripts install (commit {commit}) rejected an argument: {usage.message}. "
            "Your install may be older or newer than the pinned 48d368fa; check kohya.extra_args.",
        )
    if (killed := _killed_by(exit_code, events)) is not None:
        name = _signal_name(killed)
        hint = (
            " SIGKILL without a Ctrl-C is most often the kernel's out-of-memory killer (system RAM, not "
            "VRAM): close other programs, set training.workers: 0 or use training.cache_latents: disk."
            if killed == signal.SIGKILL
            else ""
        )
        return Verdict("failed", f"The training process was killed by {name}.{hint} Finished checkpoints are kept.")
    disk_full = next((e for e in events if isinstance(e, Traceback) and _DISK_FULL in e.text), None)
    if exit_code != 0 and disk_full is not None:
        return Verdict(
            "failed",
            f"The disk ran full while the trainer wrote ({disk_full.message}). Free space where output.dir and "
            "the run folder live, then run again; a checkpoint cut short is renamed NAME.partial, finished ones "
            "are kept.",
        )
    if exit_code != 0:
        trace = _first(events, Traceback)
        what = f" with {trace.exc_type}: {trace.message}" if trace else ""
        return Verdict("failed", f"The trainer stopped with exit status {exit_code}{what}. See stderr.log.")
    if spec.launch.machine_rank > 0:  # its checkpoints are machine 0's, there or not yet
        return Verdict(
            "succeeded",
            f"Machine {spec.launch.machine_rank} of {spec.launch.num_machines}: its processes trained; "
            "machine 0 saves the checkpoints.",
        )
    if not final_checkpoint.exists():
        return Verdict(
            "failed",
            f"The trainer exited 0 but wrote no {final_checkpoint.name}; see stderr.log for what it said last.",
        )
    if _first(events, NanLoss) is not None:
        return Verdict("succeeded", "Finished, but the average loss was NaN at some point: check the checkpoints.")
    return Verdict("succeeded", None)
