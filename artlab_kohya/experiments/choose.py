"""`pick` over a run folder or a sweep folder: each run's epochs read in full, the rule of pick.py
applied, the candidates shown, the picks copied out on request."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import InputError
from .pick import Pick, PickError, Window, copy_checkpoint, copy_name, distance, pick
from .records import (
    RecordError,
    RunDetail,
    is_run_folder,
    is_sweep_folder,
    read_run,
    read_sweep,
    recorded_checkpoints,
)


@dataclass
class RunPick:
    run: RunDetail
    pick: Pick


def _sha256_of(run: RunDetail, path: Path) -> str | None:
    for c in recorded_checkpoints(run.result):
        if c.get("file") == str(path) and isinstance(c.get("sha256"), str):
            return str(c["sha256"])
    return None


def _order(p: RunPick) -> tuple[int, float, str]:
    """Inside the window first, then by distance to it; runs without a pick last."""
    chosen = p.pick.chosen
    if chosen is None or chosen.loss is None:
        return (2, 0.0, p.run.name)
    return (0 if p.pick.inside else 1, distance(chosen.loss, p.pick.window), p.run.name)


@dataclass
class Choice:
    target: Path
    sweep: bool
    runs: list[RunPick]
    window: Window

    def copy_to(self, dest: Path) -> dict[str, Path]:
        """Each picked file copied to dest as <run>-e<epoch><suffix>; checked first that none exists."""
        plan = []
        for p in self.runs:
            chosen = p.pick.chosen
            if chosen is None or chosen.checkpoint is None:
                continue
            name = copy_name(p.run.name, chosen.epoch, chosen.checkpoint.suffix)
            plan.append((p, chosen.checkpoint, name))
        if not plan:
            raise InputError("nothing was picked, so nothing is copied")
        taken = [dest / name for _, _, name in plan if (dest / name).exists()]
        if taken:
            raise PickError(f"{', '.join(map(str, taken))} already exist(s); not overwriting")
        return {p.run.name: copy_checkpoint(src, dest, name, _sha256_of(p.run, src)) for p, src, name in plan}

    def lines(self, copies: dict[str, Path]) -> list[str]:
        lo, hi = self.window
        out = [f"window {lo:g}:{hi:g} (average loss per epoch)"]
        if not self.runs:
            out.append(f"no run of {self.target} has a run folder yet (`runs {self.target}` shows their status)")
        for p in self.runs:
            out.append("")
            out.append(f"{p.run.name} ({p.run.status}) {p.run.folder}")
            candidates = {e.epoch for e in p.pick.candidates}
            for e in p.run.epochs:
                loss = f"{e.loss:.4f}" if e.loss is not None else "-"
                mark = "*" if p.pick.chosen is not None and e.epoch == p.pick.chosen.epoch else " "
                where = "in window" if e in p.pick.inside else ("" if e.epoch in candidates else "no checkpoint")
                out.append(f" {mark} e{e.epoch:<4} {loss:>8}  {where}".rstrip())
            chosen = p.pick.chosen
            if chosen is None:
                out.append(f"   no pick: {p.pick.how}")
            else:
                out.append(f"   pick: epoch {chosen.epoch}, {chosen.checkpoint} ({p.pick.how})")
            if p.run.name in copies:
                out.append(f"   copied to {copies[p.run.name]}")
        return out

    def as_json(self, copies: dict[str, Path]) -> dict[str, Any]:
        def epoch(e: Any) -> dict[str, Any]:
            return {
                "epoch": e.epoch,
                "loss": e.loss,
                "end_step": e.end_step,
                "checkpoint": str(e.checkpoint) if e.checkpoint else None,
            }

        return {
            "window": list(self.window),
            "runs": [
                {
                    "run": p.run.name,
                    "folder": str(p.run.folder),
                    "status": p.run.status,
                    "epochs": [epoch(e) for e in p.run.epochs],
                    "inside": [e.epoch for e in p.pick.inside],
                    "pick": epoch(p.pick.chosen) if p.pick.chosen else None,
                    "how": p.pick.how,
                    "copied_to": str(copies[p.run.name]) if p.run.name in copies else None,
                }
                for p in self.runs
            ],
        }


def choose(target: Path, window: Window) -> Choice:
    try:
        if is_sweep_folder(target):
            data = read_sweep(target)
            folders = [(target / e["folder"]).resolve() for e in data["runs"] if e.get("folder")]
            folders = [f for f in folders if is_run_folder(f)]
            runs = [RunPick(run, pick(run.epochs, window)) for run in map(read_run, folders)]
            return Choice(target, True, sorted(runs, key=_order), window)
        if is_run_folder(target):
            run = read_run(target)
            return Choice(target, False, [RunPick(run, pick(run.epochs, window))], window)
    except RecordError as exc:
        raise InputError(str(exc)) from None
    raise InputError(f"{target} is neither a run folder (spec.lock.yaml, result.json) nor a sweep folder (sweep.json)")
