"""report.html for a run folder or a sweep folder: the folders read into html.py's dataclasses.

From a run: the loss at every step (events.jsonl), each epoch's average loss and checkpoint, the
pick (pick.py), the parameters that matter (the lock), each checkpoint's `ss_*` metadata (read from
its safetensors header, no tensor read) and the sample images sd-scripts wrote to
`<output_dir>/sample/`, named `<output_name>_e<epoch, 6 digits>_<prompt index, 2 digits>_<time>[_<seed>].png`
(samples taken every N steps are named with the step instead of `e<epoch>`; they are not shown).
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any
from urllib.parse import quote

from ..files import write_atomic
from .html import EpochRow, RunReport, Sample, SweepReport, render_run, render_sweep
from .pick import Window, pick
from .records import RunDetail, model_label, read_run, read_sweep
from .values import format_value

REPORT_FILE = "report.html"

# The parameters a reader compares, in the order shown: (label, path in the locked spec).
PARAMS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("network.type", ("network", "type")),
    ("network.dim", ("network", "dim")),
    ("network.alpha", ("network", "alpha")),
    ("network.conv_dim", ("network", "conv_dim")),
    ("optimizer.type", ("optimizer", "type")),
    ("optimizer.learning_rate", ("optimizer", "learning_rate")),
    ("optimizer.unet_lr", ("optimizer", "unet_lr")),
    ("optimizer.text_encoder_lr", ("optimizer", "text_encoder_lr")),
    ("scheduler.type", ("scheduler", "type")),
    ("training.epochs", ("training", "epochs")),
    ("training.max_steps", ("training", "max_steps")),
    ("dataset.batch_size", ("dataset", "batch_size")),
    ("dataset.resolution", ("dataset", "resolution")),
    ("training.mixed_precision", ("training", "mixed_precision")),
    ("training.noise_offset", ("training", "noise_offset")),
    ("training.min_snr_gamma", ("training", "min_snr_gamma")),
    ("training.seed", ("training", "seed")),
)


def _at(data: Any, path: tuple[str | int, ...]) -> Any:
    for part in path:
        inside_list = isinstance(data, list) and isinstance(part, int) and 0 <= part < len(data)
        if not (inside_list or (isinstance(data, dict) and part in data)):
            return None
        data = data[part]
    return data


def params(run: RunDetail, extra: dict[str, Any] | None = None) -> dict[str, str]:
    """The parameters that matter, from the lock: the base model, the usual ones, then the run's overrides."""
    from ..spec.yamlpos import parse_path

    spec = run.lock.get("spec") if isinstance(run.lock.get("spec"), dict) else {}
    out: dict[str, str] = {}
    model = model_label(run.lock.get("model"))
    if model:
        out["model"] = model
    for label, path in PARAMS:
        value = _at(spec, path)
        if value is not None:
            out[label] = format_value(value)
    for text in run.lock.get("overrides") or []:
        key = str(text).partition("=")[0].strip()
        if key in ("output.name", "launch.gpu_ids") or key in out:
            continue
        try:
            value = _at(spec, parse_path(key))
        except ValueError:
            continue
        out[key] = format_value(value)
    for key, value in (extra or {}).items():
        out[key] = format_value(value)
    plan = run.lock.get("plan")
    if isinstance(plan, dict) and plan.get("total_steps"):
        out["steps (planned)"] = str(plan["total_steps"])
    kohya = run.lock.get("kohya")
    if isinstance(kohya, dict) and kohya.get("commit"):
        out["sd-scripts"] = str(kohya["commit"])[:8]
    return out


# --- samples -------------------------------------------------------------------------------------


def sample_prompts(spec: dict[str, Any]) -> list[str]:
    """The prompts in the order sd-scripts numbers them: it reads prompts.txt line by line and skips
    blank lines and lines starting with '#'."""
    prompts = _at(spec, ("sample", "prompts")) or []
    lines = [line for p in prompts for line in str(p).split("\n")]
    return [line.strip() for line in lines if line.strip() and not line.startswith("#")]


def output_dir(run: RunDetail) -> Path:
    configured = _at(run.lock.get("spec") or {}, ("output", "dir"))
    return Path(configured) if configured else run.folder / "checkpoints"


def find_samples(run: RunDetail) -> list[tuple[int, int, Path]]:
    """(epoch, prompt index, file) of the epoch samples; the latest file when one was written twice."""
    folder = output_dir(run) / "sample"
    pattern = re.compile(re.escape(run.name) + r"_e(\d{6})_(\d{2,})_(\d{14})(?:_\d+)?\.png")
    found: dict[tuple[int, int], tuple[str, Path]] = {}
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return []
    for entry in entries:
        match = pattern.fullmatch(entry.name)
        if match:
            key = (int(match.group(1)), int(match.group(2)))
            if key not in found or found[key][0] < match.group(3):
                found[key] = (match.group(3), Path(entry.path))
    return sorted((epoch, index, path) for (epoch, index), (_, path) in found.items())


def _href(path: Path, base: Path, self_contained: bool) -> str:
    rel = os.path.relpath(path, base)
    return rel if self_contained else quote(rel.replace(os.sep, "/"))


# --- a run ---------------------------------------------------------------------------------------


def checkpoint_metadata(path: Path) -> dict[str, str]:
    from ..models.checkpoint import ModelError, read_safetensors_header

    try:
        header = read_safetensors_header(path)
    except ModelError:
        return {}
    meta = header.get("__metadata__")
    if not isinstance(meta, dict):
        return {}
    return {str(k): str(v) for k, v in meta.items() if str(k).startswith("ss_")}


def run_report(
    run: RunDetail,
    base: Path,
    *,
    window: Window | None = None,
    self_contained: bool = False,
    extra: dict[str, Any] | None = None,
) -> RunReport:
    """A run as html.py draws it; image hrefs relative to `base` (where the page goes)."""
    chosen = pick(run.epochs, window)
    inside = {e.epoch for e in chosen.inside}
    rows = [
        EpochRow(
            epoch=e.epoch,
            avg_loss=e.loss,
            checkpoint=e.checkpoint.name if e.checkpoint else None,
            picked=chosen.chosen is not None and e.epoch == chosen.chosen.epoch,
            in_window=e.epoch in inside,
            end_step=e.end_step,
        )
        for e in run.epochs
    ]
    metadata = {e.checkpoint.name: checkpoint_metadata(e.checkpoint) for e in run.epochs if e.checkpoint}
    prompts = sample_prompts(run.lock.get("spec") or {})
    samples = [
        Sample(
            epoch, index, prompts[index] if index < len(prompts) else f"prompt {index}", _href(p, base, self_contained)
        )
        for epoch, index, p in find_samples(run)
    ]
    return RunReport(
        name=run.name,
        status=run.status,
        params=params(run, extra),
        steps=run.events.steps,
        epochs=rows,
        window=chosen.window,
        checkpoint_metadata={k: v for k, v in metadata.items() if v},
        samples=samples,
    )


def write_run_report(
    folder: Path, out: Path | None = None, *, window: Window | None = None, self_contained: bool = False
) -> Path:
    """Write `folder`'s report (default: report.html in it); returns the page's path."""
    run = read_run(folder)
    out = out or folder / REPORT_FILE
    base = out.resolve().parent
    report = run_report(run, base, window=window, self_contained=self_contained)
    write_atomic(out, render_run(report, self_contained=self_contained, base_dir=base))
    return out


# --- a sweep -------------------------------------------------------------------------------------


def sweep_report(
    folder: Path, base: Path, *, window: Window | None = None, self_contained: bool = False, run_pages: bool = True
) -> SweepReport:
    """The sweep's runs in matrix order (a run not started yet shows as pending, without data); with
    run_pages each run's own report.html is (re)written in its folder and linked."""
    from .records import RecordError

    data = read_sweep(folder)
    runs = []
    for entry in data["runs"]:
        values = entry.get("values") or {}
        shown = {k: format_value(v) for k, v in values.items()}
        run_folder = (folder / entry["folder"]).resolve() if entry.get("folder") else None
        try:
            run = read_run(run_folder) if run_folder else None
        except RecordError:
            run = None
        if run is None:
            runs.append(RunReport(name=str(entry["name"]), status=str(entry.get("status", "pending")), params=shown))
            continue
        report = run_report(run, base, window=window, self_contained=self_contained, extra=values)
        href = None
        if run_pages:
            page = write_run_report(run.folder, window=window)
            href = _href(page, base, False)
        runs.append(
            RunReport(
                name=report.name,
                status=report.status,
                params=report.params,
                steps=report.steps,
                epochs=report.epochs,
                window=report.window,
                checkpoint_metadata=report.checkpoint_metadata,
                samples=report.samples,
                href=href,
            )
        )
    return SweepReport(
        name=f"{data.get('name', folder.parent.name)} ({folder.name})", runs=runs, varied=list(data.get("matrix") or [])
    )


def write_sweep_report(
    folder: Path, out: Path | None = None, *, window: Window | None = None, self_contained: bool = False
) -> Path:
    out = out or folder / REPORT_FILE
    base = out.resolve().parent
    report = sweep_report(folder, base, window=window, self_contained=self_contained)
    write_atomic(out, render_sweep(report, self_contained=self_contained, base_dir=base))
    return out
