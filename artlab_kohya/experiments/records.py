"""Reading run folders back: status, steps, per-epoch losses, checkpoints, what the lock says.

A run folder is what `run` writes (run/folder.py): spec.lock.yaml, events.jsonl, result.json and
checkpoints/. Listing many runs must stay fast, so the light reads are separate from the full one:
`summarize` reads result.json, the end of events.jsonl and a few top-level entries of the lock; only
a run that has no per-checkpoint losses in its result (still running, or abandoned) has its events
read in full. `read_run` reads everything one run has.
"""

from __future__ import annotations

import json
import math
import os
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import yaml

from ..run.folder import EVENTS_FILE, LOCK_FILE, RESULT_FILE, status_of

SWEEP_FILE = "sweep.json"
ABANDONED = "abandoned"
_TAIL = 16384


class RecordError(Exception):
    """A folder that is not a run (or sweep) folder, or one that cannot be read."""


# --- the lock, fast ------------------------------------------------------------------------------

_TOP_KEY = re.compile(r"^([A-Za-z_][\w-]*):", re.MULTILINE)


def _yaml(text: str) -> Any:
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    return yaml.load(text, Loader=loader)  # noqa: S506 - a safe loader


def _chunks(text: str) -> dict[str, str]:
    """The lock's top-level entries, each as its own text (`key: ...` up to the next top-level key)."""
    starts = [(m.start(), m.group(1)) for m in _TOP_KEY.finditer(text)]
    ends = [start for start, _ in starts[1:]] + [len(text)]
    return {key: text[start:end] for (start, key), end in zip(starts, ends, strict=True)}


_INT = re.compile(r"[-+]?[0-9]+")
_FLOAT = re.compile(r"[-+]?(?:[0-9]+\.[0-9]*|\.[0-9]+)(?:[eE][-+]?[0-9]+)?")
_SPECIAL = tuple("'\"[]{}&*!|>%@`#,?:-~ \t")
_WORDS = {"yes", "no", "on", "off", "y", "n", "true", "false", "null"}


def _scalar(text: str) -> Any:
    """One value as yaml.safe_dump writes it: plain numbers, null, booleans and text that reads as
    text without quotes; anything else (quoted, special) goes to the YAML parser."""
    if text in ("null", "~"):
        return None
    if text in ("true", "false"):
        return text == "true"
    if _INT.fullmatch(text):
        return int(text)
    if _FLOAT.fullmatch(text):
        return float(text)
    plain = text and not text.startswith(_SPECIAL) and not text.endswith((" ", ":"))
    if plain and ": " not in text and " #" not in text and text.lower() not in _WORDS and text[0] != ".":
        return text
    return _yaml(text)


def _flat_table(chunk: str, scalars: bool) -> dict[str, Any] | None:
    """A top-level table's `  name: value` lines without the YAML parser; None when the chunk holds
    anything else (a nested table or list, unless `scalars` says to leave those out; a wrapped value),
    for the parser."""
    lines = chunk.rstrip("\n").split("\n")
    head = lines[0].split(":", 1)[1].strip()
    if head:
        return {"": _scalar(head)} if len(lines) == 1 else None
    out: dict[str, Any] = {}
    nested = False
    for line in lines[1:]:
        if nested and (line.startswith(("   ", "  - ")) or line == "  -"):
            continue  # inside a nested entry that is left out
        nested = False
        if not line.startswith("  ") or line.startswith("   "):
            return None
        key, sep, value = line[2:].partition(": ")
        if not sep and line.endswith(":") and scalars:
            nested = True
            continue
        if not sep or not value:
            return None
        out[key] = _scalar(value)
    return out


def read_lock(folder: Path, keys: Iterable[str] | None = None, *, scalars: bool = False) -> dict[str, Any]:
    """spec.lock.yaml, or only its top-level `keys`. The lock is a block mapping written by yaml.safe_dump,
    so each top-level entry parses on its own; a table of plain scalars (model, spec_git) is read line
    by line, faster than the YAML parser (listing a thousand runs reads a thousand locks), and anything
    else goes to the parser. With `scalars`, the tables' nested lists and tables are left out."""
    try:
        text = (folder / LOCK_FILE).read_text(encoding="utf-8")
    except OSError:
        return {}
    if keys is None:
        data = _yaml(text)
        return data if isinstance(data, dict) else {}
    out: dict[str, Any] = {}
    for key, chunk in _chunks(text).items():
        if key not in keys:
            continue
        flat = _flat_table(chunk, scalars)
        if flat is not None:
            out[key] = flat.get("", flat)
            continue
        try:
            data = _yaml(chunk)
        except yaml.YAMLError:
            continue
        if isinstance(data, dict):
            out.update(data)
    return out


def read_result(folder: Path) -> dict[str, Any]:
    try:
        data = json.loads((folder / RESULT_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


# --- status --------------------------------------------------------------------------------------


def run_status(result: dict[str, Any]) -> str:
    """result.json's status, `abandoned` for a dead `running` run (see run.folder.status_of)."""
    return status_of(result)


# --- events --------------------------------------------------------------------------------------


@dataclass
class Events:
    """events.jsonl, read in full."""

    steps: list[tuple[int, float]] = field(default_factory=list)  # (step, average loss), in order
    step_epochs: list[int | None] = field(default_factory=list)  # the epoch of each step, when known
    total: int | None = None
    rate: float | None = None  # the last it/s
    checkpoints: list[tuple[str, int | None]] = field(default_factory=list)  # (path, epoch it was saved in)
    steps_per_epoch: int | None = None


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int | float):
        return float(value)
    if value == "nan":
        return math.nan
    return None


# A step event as the recorder writes it (run/train.py); a line that reads otherwise goes to json.
_STEP = re.compile(
    r'"type": "Step", "epoch": (null|[0-9]+), "step": ([0-9]+), "total": ([0-9]+|null), '
    r'"loss": ([^,}]+), "it_s": ([^,}]+)\}$'
)


def _value(text: str) -> Any:
    try:
        return float(text) if text[:1] not in ('"', "n") else json.loads(text)
    except ValueError:
        return None


def _step_fields(line: str) -> tuple[Any, Any, Any, Any, Any] | None:
    """(epoch, step, total, loss, it_s) of a Step line, read with one regex instead of a JSON parse."""
    match = _STEP.search(line)
    if match:
        epoch, step, total, loss, rate = match.groups()
        return (
            None if epoch == "null" else int(epoch),
            int(step),
            None if total == "null" else int(total),
            _value(loss),
            _value(rate),
        )
    try:
        event = json.loads(line)
    except ValueError:
        return None  # a line cut short by a crash
    if event.get("type") != "Step":
        return None
    return event.get("epoch"), event.get("step"), event.get("total"), event.get("loss"), event.get("it_s")


def read_events(folder: Path) -> Events:
    out = Events()
    epoch: int | None = None
    try:
        handle = (folder / EVENTS_FILE).open(encoding="utf-8", errors="replace")
    except OSError:
        return out
    with handle:
        for raw in handle:
            line = raw.rstrip("\n")
            if '"Step"' in line:
                fields = _step_fields(line)
                if fields is None:
                    continue
                e, step, total, loss_value, rate_value = fields
                loss = _number(loss_value)
                if isinstance(step, int) and loss is not None:
                    out.steps.append((step, loss))
                    out.step_epochs.append(e if isinstance(e, int) else None)
                    out.total = total if isinstance(total, int) else out.total
                    rate = _number(rate_value)
                    out.rate = rate if rate is not None else out.rate
                continue
            if '"type"' not in line:
                continue
            try:
                event = json.loads(line)
            except ValueError:
                continue
            kind = event.get("type")
            if kind == "EpochStarted" and isinstance(event.get("epoch"), int):
                epoch = event["epoch"]
            elif kind == "CheckpointSaved" and isinstance(event.get("path"), str):
                out.checkpoints.append((event["path"], epoch))
            elif kind == "TrainingSummary" and isinstance(event.get("steps_per_epoch"), int):
                out.steps_per_epoch = event["steps_per_epoch"]
    return out


_STEP_AT = re.compile(r'"type": "Step", "epoch": (null|[0-9]+), "step": ([0-9]+)')
_OTHER_AT = re.compile(r'"type": "(EpochStarted|CheckpointSaved|TrainingSummary)"')


def read_epoch_events(folder: Path) -> Events:
    """As read_events, keeping only each epoch's last step (what per-epoch losses need): the step lines
    are found with one regex over the file and only the last of each epoch is parsed."""
    try:
        text = (folder / EVENTS_FILE).read_text(encoding="utf-8", errors="replace")
    except OSError:
        return Events()
    last: dict[str, tuple[int, int]] = {}  # epoch (or "step N" when unknown) -> (step, position)
    count = 0
    for match in _STEP_AT.finditer(text):
        count += 1
        key = match.group(1) if match.group(1) != "null" else f"step {match.group(2)}"
        last[key] = (int(match.group(2)), match.start())
    if count != text.count('"Step"'):
        return read_events(folder)  # lines written otherwise than the recorder writes them
    marks = [(m.start(), m.group(1)) for m in _OTHER_AT.finditer(text)]
    positions = sorted([(pos, "Step") for _, pos in last.values()] + marks)
    out = Events()
    epoch: int | None = None
    for pos, kind in positions:
        start, end = text.rfind("\n", 0, pos) + 1, text.find("\n", pos)
        try:
            event = json.loads(text[start : end if end >= 0 else len(text)])
        except ValueError:
            continue
        if kind == "Step":
            loss = _number(event.get("loss"))
            if isinstance(event.get("step"), int) and loss is not None:
                out.steps.append((event["step"], loss))
                out.step_epochs.append(event.get("epoch") if isinstance(event.get("epoch"), int) else None)
                out.total = event.get("total") if isinstance(event.get("total"), int) else out.total
        elif kind == "EpochStarted" and isinstance(event.get("epoch"), int):
            epoch = event["epoch"]
        elif kind == "CheckpointSaved" and isinstance(event.get("path"), str):
            out.checkpoints.append((event["path"], epoch))
        elif kind == "TrainingSummary" and isinstance(event.get("steps_per_epoch"), int):
            out.steps_per_epoch = event["steps_per_epoch"]
    return out


@dataclass(frozen=True)
class LastStep:
    step: int
    total: int | None
    loss: float | None
    rate: float | None


def last_step(folder: Path) -> LastStep | None:
    """The last Step event, read from the end of events.jsonl backwards (a long run's file is large)."""
    try:
        handle = (folder / EVENTS_FILE).open("rb")
    except OSError:
        return None
    with handle:
        end = handle.seek(0, os.SEEK_END)
        pos, carry = end, b""
        while pos > 0:
            size = min(_TAIL, pos)
            pos -= size
            handle.seek(pos)
            block = handle.read(size) + carry
            lines = block.split(b"\n")
            carry = lines[0] if pos > 0 else b""
            for raw in reversed(lines[1:] if pos > 0 else lines):
                if b'"Step"' not in raw:
                    continue
                try:
                    event = json.loads(raw)
                except ValueError:
                    continue
                if event.get("type") == "Step" and isinstance(event.get("step"), int):
                    total = event.get("total")
                    return LastStep(
                        event["step"],
                        total if isinstance(total, int) else None,
                        _number(event.get("loss")),
                        _number(event.get("it_s")),
                    )
    return None


# --- epochs --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class EpochLoss:
    """One epoch: its average loss (the trainer's average at the epoch's last step), the step it ended
    at, and its checkpoint file when one was saved and still exists."""

    epoch: int
    loss: float | None
    end_step: int | None = None
    checkpoint: Path | None = None


def _epoch_of_file(name: str, output_name: str, last_epoch: int | None) -> int | None:
    """sd-scripts' names: NAME-000003.ext for epoch 3, NAME.ext for the end of training."""
    stem = name.rsplit(".", 1)[0]
    if stem == output_name:
        return last_epoch
    match = re.fullmatch(re.escape(output_name) + r"-(\d{6})", stem)
    return int(match.group(1)) if match else None


def epochs_from_events(
    events: Events, result: dict[str, Any], output_name: str, steps_per_epoch: int | None
) -> list[EpochLoss]:
    """Per-epoch losses from the step events; checkpoints from result.json (or, while running, from the
    checkpoint events), kept only when the file is still there."""
    per_epoch = steps_per_epoch or events.steps_per_epoch
    ends: dict[int, tuple[int, float]] = {}
    for (step, loss), epoch in zip(events.steps, events.step_epochs, strict=True):
        if epoch is None and per_epoch:
            epoch = -(-step // per_epoch)
        if epoch is not None:
            ends[epoch] = (step, loss)
    last_epoch = max(ends, default=None)
    files: dict[int, Path] = {}
    recorded = result.get("checkpoints")
    if isinstance(recorded, list) and recorded:
        for c in recorded:
            if isinstance(c, dict) and isinstance(c.get("epoch"), int) and isinstance(c.get("file"), str):
                files[c["epoch"]] = Path(c["file"])
    else:
        for path, epoch in events.checkpoints:
            e = _epoch_of_file(Path(path).name, output_name, last_epoch) or epoch
            if e is not None:
                files[e] = Path(path)
    out = []
    for epoch in sorted(set(ends) | set(files)):
        end: int | None = ends[epoch][0] if epoch in ends else None
        # an epoch only result.json knows (its events lost): the average it recorded
        average: float | None = ends[epoch][1] if epoch in ends else _recorded_loss(result, epoch)
        file = files.get(epoch)
        out.append(EpochLoss(epoch, average, end, file if file is not None and file.is_file() else None))
    return out


def recorded_checkpoints(result: dict[str, Any]) -> list[dict[str, Any]]:
    """result.json's checkpoint entries, none when it holds something else there (an edited file)."""
    recorded = result.get("checkpoints")
    return [c for c in recorded if isinstance(c, dict)] if isinstance(recorded, list) else []


def _recorded_loss(result: dict[str, Any], epoch: int) -> float | None:
    for c in recorded_checkpoints(result):
        if c.get("epoch") == epoch:
            return _number(c.get("avr_loss"))
    return None


def epochs_from_result(result: dict[str, Any]) -> list[EpochLoss] | None:
    """Per-checkpoint epochs and losses as result.json recorded them at the end of the run (the same
    average the step events give for that epoch); None when it recorded none."""
    recorded = result.get("checkpoints")
    if not isinstance(recorded, list) or not recorded:
        return None
    good = [
        c
        for c in recorded
        if isinstance(c, dict) and isinstance(c.get("epoch"), int) and isinstance(c.get("file"), str)
    ]
    there = _existing([c["file"] for c in good])
    out = [
        EpochLoss(c["epoch"], _number(c.get("avr_loss")), None, Path(c["file"]) if c["file"] in there else None)
        for c in good
    ]
    return sorted(out, key=lambda e: e.epoch) or None


def _existing(files: list[str]) -> set[str]:
    """Which of these files exist, one folder listing per folder rather than a stat per file."""
    out: set[str] = set()
    for folder in {os.path.dirname(f) for f in files}:
        try:
            with os.scandir(folder or ".") as entries:
                names = {e.name for e in entries if e.is_file()}
        except OSError:
            continue
        out.update(f for f in files if os.path.dirname(f) == folder and os.path.basename(f) in names)
    return out


# --- one run -------------------------------------------------------------------------------------


@dataclass
class RunSummary:
    """What the runs table shows of one run."""

    folder: Path
    name: str
    status: str
    started: str | None
    duration_s: float | None
    step: int | None
    total: int | None
    final_loss: float | None
    rate: float | None
    epochs: list[EpochLoss]
    model: str | None
    spec_git: dict[str, Any] | None
    result: dict[str, Any]


def _duration(result: dict[str, Any], status: str) -> float | None:
    if isinstance(result.get("duration_s"), int | float):
        return float(result["duration_s"])
    started = result.get("started")
    if status == "running" and isinstance(started, str):
        try:
            return (datetime.now(timezone.utc) - datetime.fromisoformat(started)).total_seconds()
        except ValueError:
            return None
    return None


def model_label(model: Any) -> str | None:
    """The base model as a short text: repo/file@commit for a hub file, the file name for a local one."""
    if not isinstance(model, dict):
        return None
    if model.get("repo"):
        commit = f"@{str(model['commit'])[:8]}" if model.get("commit") else ""
        return f"{model['repo']}/{model.get('file')}{commit}"
    path = model.get("path")
    return Path(str(path)).name if path else None


def summarize(folder: Path) -> RunSummary:
    result = read_result(folder)
    lock = read_lock(folder, ("model", "spec_git", "plan"), scalars=True)
    status = run_status(result)
    tail = last_step(folder)
    plan: dict[str, Any] = lock["plan"] if isinstance(lock.get("plan"), dict) else {}
    epochs = epochs_from_result(result)
    if epochs is None:
        per_epoch = plan.get("steps_per_epoch") if isinstance(plan.get("steps_per_epoch"), int) else None
        epochs = epochs_from_events(read_epoch_events(folder), result, folder.parent.name, per_epoch)
    total = tail.total if tail and tail.total else plan.get("total_steps")
    return RunSummary(
        folder=folder,
        name=folder.parent.name,
        status=status,
        started=result.get("started") if isinstance(result.get("started"), str) else None,
        duration_s=_duration(result, status),
        step=tail.step if tail else None,
        total=total if isinstance(total, int) else None,
        final_loss=tail.loss if tail else None,
        rate=tail.rate if tail else None,
        epochs=epochs,
        model=model_label(lock.get("model")),
        spec_git=lock.get("spec_git") if isinstance(lock.get("spec_git"), dict) else None,
        result=result,
    )


@dataclass
class RunDetail:
    """Everything of one run: the lock in full, result.json, every event that matters."""

    folder: Path
    name: str
    status: str
    lock: dict[str, Any]
    result: dict[str, Any]
    events: Events
    epochs: list[EpochLoss]


def read_run(folder: Path) -> RunDetail:
    if not is_run_folder(folder):
        raise RecordError(f"{folder} is not a run folder (no {LOCK_FILE} or {RESULT_FILE})")
    lock = read_lock(folder)
    result = read_result(folder)
    events = read_events(folder)
    spec: dict[str, Any] = lock["spec"] if isinstance(lock.get("spec"), dict) else {}
    name = str((spec.get("output") or {}).get("name") or folder.parent.name)
    plan: dict[str, Any] = lock["plan"] if isinstance(lock.get("plan"), dict) else {}
    per_epoch = plan.get("steps_per_epoch") if isinstance(plan.get("steps_per_epoch"), int) else None
    epochs = epochs_from_events(events, result, name, per_epoch)
    return RunDetail(folder, name, run_status(result), lock, result, events, epochs)


# --- finding runs --------------------------------------------------------------------------------


def is_run_folder(path: Path) -> bool:
    return (path / LOCK_FILE).is_file() or (path / RESULT_FILE).is_file()


def is_sweep_folder(path: Path) -> bool:
    return (path / SWEEP_FILE).is_file()


def _run_dirs(folder: Path) -> list[Path]:
    out: list[Path] = []
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return out
    for entry in entries:
        if entry.is_dir() and not entry.name.startswith((".", "sweep-")):
            path = Path(entry.path)
            if os.path.exists(os.path.join(entry.path, LOCK_FILE)) or os.path.exists(
                os.path.join(entry.path, RESULT_FILE)
            ):
                out.append(path)
    return out


def find_runs(root: Path) -> list[Path]:
    """The run folders under a runs root (runs/<name>/<stamp>), under one name's folder, or the folder
    itself when it is a run; oldest first (the stamps sort by time)."""
    if is_run_folder(root):
        return [root]
    found = _run_dirs(root)
    if not found:
        try:
            names = [Path(e.path) for e in os.scandir(root) if e.is_dir() and not e.name.startswith(".")]
        except OSError:
            names = []
        for name in names:
            found += _run_dirs(name)
    return sorted(found, key=lambda p: (p.name, p.parent.name))


def find_sweeps(root: Path) -> list[Path]:
    """Sweep folders (runs/<name>/sweep-<stamp>) under a runs root or one name's folder."""
    if is_sweep_folder(root):
        return [root]
    out = sorted(root.glob("sweep-*/" + SWEEP_FILE)) + sorted(root.glob("*/sweep-*/" + SWEEP_FILE))
    return [p.parent for p in out]


def read_sweep(folder: Path) -> dict[str, Any]:
    try:
        data = json.loads((folder / SWEEP_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise RecordError(f"{folder / SWEEP_FILE}: cannot read it ({exc})") from None
    if not isinstance(data, dict) or not isinstance(data.get("runs"), list):
        raise RecordError(f"{folder / SWEEP_FILE} is not an artlab-kohya sweep record")
    wrong = _sweep_shape(data)
    if wrong:
        raise RecordError(f"{folder / SWEEP_FILE} is not an artlab-kohya sweep record: {wrong}")
    return data


def _sweep_shape(data: dict[str, Any]) -> str | None:
    """What of a sweep record is not as the sweep writes it (an edited or damaged file), or None: the
    readers then take every entry at its type."""
    if not isinstance(data.get("matrix") or [], list):
        return "matrix is not a list"
    kinds: dict[str, tuple[type, ...]] = {"name": (str,), "status": (str,), "folder": (str,), "values": (dict,)}
    for i, entry in enumerate(data["runs"]):
        if not isinstance(entry, dict) or not isinstance(entry.get("name"), str):
            return f"runs[{i}] is not a run entry with a name"
        for key, kind in kinds.items():
            if entry.get(key) is not None and not isinstance(entry[key], kind):
                return f"runs[{i}].{key} is not {'a table' if kind == (dict,) else 'text'}"
        attempts = entry.get("attempts")
        if attempts is not None and not (isinstance(attempts, list) and all(isinstance(a, str) for a in attempts)):
            return f"runs[{i}].attempts is not a list of folders"
    return None
