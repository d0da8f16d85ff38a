"""`show`: one run folder as text: what the lock says, how it ended, each epoch, its files."""

from __future__ import annotations

import os
from pathlib import Path

from ..files import human_size
from .pick import Window, pick
from .records import RunDetail, model_label, read_run, recorded_checkpoints
from .report import REPORT_FILE, find_samples, output_dir, params


def logging_dir(run: RunDetail) -> Path:
    spec = run.lock.get("spec") or {}
    configured = (spec.get("output") or {}).get("logging_dir")
    return Path(configured) if configured else run.folder / "logs"


def tensorboard_logs(run: RunDetail) -> Path | None:
    """The logging folder when TensorBoard event files exist in it (sd-scripts writes them one level down)."""
    folder = logging_dir(run)
    for _root, _dirs, files in os.walk(folder):
        if any(f.startswith("events.out.tfevents") for f in files):
            return folder
    return None


def describe(folder: Path, window: Window | None = None) -> list[str]:
    run = read_run(folder)
    lock, result = run.lock, run.result
    out = [f"run        {run.name}  ({run.folder})"]
    status = run.status
    if "exit_code" in result:
        status += f" (exit {result['exit_code']})"
    if result.get("started"):
        status += f", started {result['started']}"
    if isinstance(result.get("duration_s"), int | float):
        minutes, secs = divmod(int(result["duration_s"]), 60)
        status += f", {minutes // 60}:{minutes % 60:02d}:{secs:02d}"
    out.append(f"status     {status}")
    git = lock.get("spec_git")
    where = f"{lock.get('spec_file')}"
    if isinstance(git, dict) and git.get("commit"):
        where += f", git {str(git['commit'])[:12]}" + (" (spec dirty at launch)" if git.get("dirty") else "")
    out.append(f"spec       {where}")
    if lock.get("overrides"):
        out.append(f"overrides  {' '.join(str(o) for o in lock['overrides'])}")
    model = lock.get("model") or {}
    if model:
        out.append(f"model      {model_label(model)}  sha256 {str(model.get('sha256'))[:16]}  ({model.get('family')})")
    kohya = lock.get("kohya") or {}
    if kohya:
        commit = str(kohya["commit"])[:8] if kohya.get("commit") else "commit unknown"
        out.append(f"sd-scripts {kohya.get('dir')} ({commit}), {kohya.get('script')}")
    plan = lock.get("plan") or {}
    if plan:
        out.append(
            f"plan       {plan.get('total_steps')} steps, {plan.get('epochs')} epochs, "
            f"{plan.get('steps_per_epoch')} steps per epoch"
        )
    out.append("params     " + ", ".join(f"{k}={v}" for k, v in params(run).items() if k != "model"))
    if result.get("diagnosis"):
        out.append(f"diagnosis  {result['diagnosis']}")
    chosen = pick(run.epochs, window)
    out.append("")
    lo, hi = chosen.window
    out.append(f"epoch  end step  avg loss  checkpoint   (pick window {lo:g}:{hi:g})")
    for e in run.epochs:
        loss = f"{e.loss:.4f}" if e.loss is not None else "-"
        note = (
            "picked" if chosen.chosen and e.epoch == chosen.chosen.epoch else "in window" if e in chosen.inside else ""
        )
        step = str(e.end_step) if e.end_step is not None else "-"
        out.append(f"{e.epoch:>5}  {step:>8}  {loss:>8}  {e.checkpoint.name if e.checkpoint else '-'}  {note}".rstrip())
    if not run.epochs:
        out.append("(no epoch recorded)")
    out.append("")
    out.append("files")
    for c in recorded_checkpoints(result):
        path = Path(str(c.get("file")))
        state = human_size(path.stat().st_size) if path.is_file() else "missing"
        out.append(f"  {path}  {state}")
    samples = find_samples(run)
    if samples:
        out.append(f"  {output_dir(run) / 'sample'}/  {len(samples)} sample image(s)")
    for name in ("stdout.log", "stderr.log", "events.jsonl", REPORT_FILE):
        if (run.folder / name).is_file():
            out.append(f"  {run.folder / name}  {human_size((run.folder / name).stat().st_size)}")
    logs = tensorboard_logs(run)
    if logs is not None:
        out.append("")
        out.append(f"tensorboard --logdir {logs}")
    return out
