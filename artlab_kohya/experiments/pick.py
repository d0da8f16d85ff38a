"""`pick`: the checkpoint to keep, by the epoch's average loss against a window.

The guide: a good LoRA shows an average loss around 0.08-0.1 (spec.guide.LOSS_WINDOW). The rule:

1. Candidates are the epochs whose checkpoint file exists and whose average loss is a number.
   An epoch's average loss is the trainer's running average at its last step (events.jsonl).
2. Candidates with LO <= loss <= HI are inside the window; if any are, the latest epoch among them
   is picked (it trained longest while still in the window).
3. If none is inside, the candidate nearest to the window is picked: distance LO - loss below it,
   loss - HI above it; on equal distance the later epoch.
4. No candidate: nothing is picked.
"""

from __future__ import annotations

import hashlib
import math
import os
from dataclasses import dataclass
from pathlib import Path

from ..errors import ArtlabError
from .records import EpochLoss

Window = tuple[float, float]


class PickError(ArtlabError):
    pass


def loss_window() -> Window:
    """The guide's window, spec.guide.LOSS_WINDOW, imported when asked for: importing the spec package
    starts pydantic (a third of a second), which reading run folders does without."""
    from ..spec.guide import LOSS_WINDOW

    return LOSS_WINDOW


def parse_window(text: str) -> Window:
    """'0.08:0.1' -> (0.08, 0.1); both finite, LO <= HI."""
    lo_text, sep, hi_text = text.partition(":")
    try:
        lo, hi = float(lo_text), float(hi_text)
    except ValueError:
        raise ValueError(f"write the window as LO:HI, e.g. 0.08:0.1 (got {text!r})") from None
    if not sep or not (math.isfinite(lo) and math.isfinite(hi)) or lo > hi:
        raise ValueError(f"write the window as LO:HI with LO <= HI, e.g. 0.08:0.1 (got {text!r})")
    return lo, hi


def distance(loss: float, window: Window) -> float:
    """How far a loss lies outside the window (0 inside)."""
    lo, hi = window
    return lo - loss if loss < lo else loss - hi if loss > hi else 0.0


@dataclass(frozen=True)
class Pick:
    window: Window
    chosen: EpochLoss | None
    inside: tuple[EpochLoss, ...]  # candidates inside the window, by epoch
    candidates: tuple[EpochLoss, ...]

    @property
    def how(self) -> str:
        if self.chosen is None:
            return "no checkpoint with an average loss"
        if self.inside:
            return f"inside the window, the latest of {len(self.inside)}"
        assert self.chosen.loss is not None
        gap = distance(self.chosen.loss, self.window)
        side = "below" if self.chosen.loss < self.window[0] else "above"
        return f"none inside the window; nearest, {gap:.4f} {side} it"


def is_candidate(epoch: EpochLoss) -> bool:
    return epoch.checkpoint is not None and epoch.loss is not None and math.isfinite(epoch.loss)


def pick(epochs: list[EpochLoss], window: Window | None = None) -> Pick:
    window = window or loss_window()
    candidates = tuple(sorted((e for e in epochs if is_candidate(e)), key=lambda e: e.epoch))
    inside = tuple(e for e in candidates if distance(e.loss or 0.0, window) == 0.0)
    if inside:
        chosen: EpochLoss | None = inside[-1]
    elif candidates:
        chosen = min(candidates, key=lambda e: (distance(e.loss or 0.0, window), -e.epoch))
    else:
        chosen = None
    return Pick(window, chosen, inside, candidates)


def copy_name(run_name: str, epoch: int, suffix: str) -> str:
    return f"{run_name}-e{epoch}{suffix}"


def copy_checkpoint(source: Path, dest_dir: Path, name: str, expect_sha256: str | None = None) -> Path:
    """A byte copy of `source` as dest_dir/name (metadata and all); never overwrites. When the run
    recorded the file's sha256, the copy must match it (a file changed since the run is refused)."""
    dest_dir.mkdir(parents=True, exist_ok=True)
    target = dest_dir / name
    digest = hashlib.sha256()
    try:
        out = target.open("xb")
    except FileExistsError:
        raise PickError(f"{target} already exists; not overwriting it") from None
    except OSError as exc:
        raise PickError(f"cannot write {target}: {exc.strerror or exc}") from None
    try:
        with out, source.open("rb") as src:
            while chunk := src.read(1 << 20):
                digest.update(chunk)
                out.write(chunk)
    except OSError as exc:
        target.unlink(missing_ok=True)
        raise PickError(f"cannot copy {source} to {target}: {exc.strerror or exc}") from None
    if expect_sha256 and digest.hexdigest() != expect_sha256:
        target.unlink(missing_ok=True)
        raise PickError(f"{source} changed since the run (its sha256 is not the recorded {expect_sha256[:12]}...)")
    os.utime(target, (source.stat().st_atime, source.stat().st_mtime))
    return target
