"""The runs table (`runs`): one row per run folder under a runs root, or per run of a sweep folder.

Each row comes from records.summarize (result.json, the end of events.jsonl, a few lock entries), so a
thousand runs list in well under a second. The values a sweep varied become columns: a sweep folder
lists its own runs in matrix order; a runs root finds the sweeps under it and gives their runs' values.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..run.folder import alive_here
from .pick import Window, pick
from .records import ABANDONED, RecordError, find_runs, find_sweeps, is_sweep_folder, read_sweep, summarize
from .values import format_value


@dataclass
class Listing:
    rows: list[dict[str, Any]]
    varied: list[str]  # the sweeps' matrix keys, in order
    notes: list[str] = field(default_factory=list)  # what could not be shown (SLURM absent), each once


def _row(folder: Path, window: Window | None, values: dict[str, Any], sweep: Path | None) -> dict[str, Any]:
    s = summarize(folder)
    chosen = pick(s.epochs, window).chosen
    git = s.spec_git or {}
    return {
        "run": s.name,
        "folder": str(folder),
        "status": s.status,
        "started": s.started,
        "duration_s": s.duration_s,
        "step": s.step,
        "total_steps": s.total,
        "final_loss": s.final_loss,
        "pick_epoch": chosen.epoch if chosen else None,
        "pick_loss": chosen.loss if chosen else None,
        "pick_file": str(chosen.checkpoint) if chosen and chosen.checkpoint else None,
        "model": s.model,
        "spec_commit": git.get("commit"),
        "spec_dirty": git.get("dirty"),
        "values": values,
        "sweep": str(sweep) if sweep else None,
    }


_KEYS = ("started", "duration_s", "step", "total_steps", "final_loss", "pick_epoch", "pick_loss", "pick_file", "model",
         "spec_commit", "spec_dirty")  # fmt: skip


def _pending_row(entry: dict[str, Any], sweep: Path, sweep_gone: bool) -> dict[str, Any]:
    """A run of a sweep that has no folder yet (pending, or not started for an error); `running` while
    the sweep's process is gone from this host is `abandoned`, as a run folder's would be."""
    status = str(entry.get("status", "pending"))
    return {
        "run": str(entry.get("name")),
        "folder": None,
        "status": ABANDONED if status == "running" and sweep_gone else status,
        **dict.fromkeys(_KEYS),
        "values": entry.get("values") or {},
        "sweep": str(sweep),
    }


# A run whose job SLURM has ended while its result.json is not final (the job was killed before the run
# could record its end): the status the runs table gives it.
_ENDED_BY_SLURM = {"timeout": "failed", "failed": "failed", "cancelled": "interrupted", "completed": ABANDONED}


def join_slurm(listing: Listing) -> Listing:
    """Runs submitted to SLURM (slurm.json in the folder) get their job's state, asked once for all."""
    from .slurm import FINAL, SUBMITTED, job_states, read_record

    records = {}
    for row in listing.rows:
        record = read_record(Path(row["folder"])) if row.get("folder") else None
        if record and record.get("job_id"):
            records[row["folder"]] = record
    if not records:
        return listing
    unfinished = {
        str(r["job_id"])
        for row in listing.rows
        if (r := records.get(row.get("folder") or "")) and row["status"] in (SUBMITTED, "running")
    }
    states = job_states([(str(r["job_id"]), r.get("raw_job_id")) for r in records.values()], unfinished)
    listing.notes += states.notes
    for row in listing.rows:
        record = records.get(row.get("folder") or "")
        if record is None:
            continue
        state = states.jobs.get(str(record["job_id"]))
        row["slurm"] = {
            "job": record["job_id"],
            "state": state.state if state else None,
            "said": state.raw if state else None,
        }
        if state and state.state in FINAL and row["status"] in (SUBMITTED, "running"):
            row["status"] = _ENDED_BY_SLURM[state.state]
    return listing


def list_runs(path: Path, window: Window | None = None) -> Listing:
    """The rows for `path`: a sweep folder, a run folder, or a folder of runs (a runs root); runs
    submitted to SLURM with their job's state."""
    return join_slurm(_list_runs(path, window))


def _list_runs(path: Path, window: Window | None = None) -> Listing:
    if is_sweep_folder(path):
        data = read_sweep(path)
        gone = alive_here(data) is False
        rows = []
        for entry in data["runs"]:
            folder = (path / entry["folder"]).resolve() if entry.get("folder") else None
            if folder is None or not folder.is_dir():
                rows.append(_pending_row(entry, path, gone))
            else:
                rows.append(_row(folder, window, entry.get("values") or {}, path))
        return Listing(rows, [str(k) for k in data.get("matrix") or []])
    if not path.is_dir():
        raise RecordError(f"{path} is not a folder")
    values: dict[Path, tuple[dict[str, Any], Path | None]] = {}
    varied: list[str] = []
    for found in find_sweeps(path):
        try:
            data = read_sweep(found)
        except RecordError:
            continue
        varied += [str(k) for k in data.get("matrix") or [] if k not in varied]
        for entry in data["runs"]:
            for folder in {*(entry.get("attempts") or []), *([entry["folder"]] if entry.get("folder") else [])}:
                values[(found / folder).resolve()] = (entry.get("values") or {}, found)
    rows = []
    for folder in find_runs(path):
        given, sweep = values.get(folder.resolve(), ({}, None))
        rows.append(_row(folder, window, given, sweep))
    return Listing(rows, varied)


# --- as text -------------------------------------------------------------------------------------


def _clock(seconds: Any) -> str:
    if not isinstance(seconds, int | float):
        return ""
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}"


def _loss(value: Any) -> str:
    return f"{value:.4f}" if isinstance(value, float) else ""


def _slurm_cell(row: dict[str, Any]) -> str:
    job = row.get("slurm")
    return f"{job['job']} {job['state']}" if job and job["state"] else str(job["job"]) if job else ""


def text_table(listing: Listing) -> list[str]:
    head = ["run", "status", "started", "time", "steps", "loss", "pick", "pick loss", *listing.varied, "model", "spec"]
    slurm = any(r.get("slurm") for r in listing.rows)
    if slurm:
        head.insert(2, "slurm")
    body = []
    for r in listing.rows:
        started = (r.get("started") or "").replace("T", " ")[:16]
        steps = f"{r['step']}/{r['total_steps'] or '?'}" if r.get("step") is not None else ""
        spec = ""
        if r.get("spec_commit"):
            spec = str(r["spec_commit"])[:8] + (" dirty" if r.get("spec_dirty") else "")
        values = [format_value(r["values"][k]) if k in r.get("values", {}) else "" for k in listing.varied]
        pick_epoch = f"e{r['pick_epoch']}" if r.get("pick_epoch") is not None else ""
        body.append(
            [
                r["run"],
                r["status"],
                *([_slurm_cell(r)] if slurm else []),
                started,
                _clock(r.get("duration_s")),
                steps,
                _loss(r.get("final_loss")),
                pick_epoch,
                _loss(r.get("pick_loss")),
                *values,
                r.get("model") or "",
                spec,
            ]
        )
    widths = [max(len(row[i]) for row in [head, *body]) for i in range(len(head))]
    right = {i + slurm for i in (3, 4, 5, 6, 7)}
    return [
        "  ".join(
            c.rjust(w) if i in right else c.ljust(w) for i, (c, w) in enumerate(zip(row, widths, strict=True))
        ).rstrip()
        for row in [head, *body]
    ]
