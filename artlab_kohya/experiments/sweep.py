"""`sweep`: a spec's matrix run as a queue, one run after another or one per GPU side by side.

    runs/<name>/sweep-<YYYYmmdd-HHMMSS>/sweep.json     the sweep: its runs, their overrides, folders, status

Each run is an ordinary run (run.train.run_spec) in its own run folder, runs/<name>-dim32-.../<stamp>/.
A run whose resolved spec already succeeded is skipped: the resolved spec is the lock's `spec` mapping
(model pinned, repeats as numbers, the install), compared by the sha256 of its canonical JSON, with
`launch.gpu_ids` and the machine's rank and main address left out (where a run ran does not change what
it trains). Running `sweep` again resumes the latest unfinished sweep of the same spec file. A failed run
does not stop the others; Ctrl-C interrupts the running trainers, starts nothing more, and exits 130.

Side by side (`--gpus 0,1`), each run takes `launch.num_processes` of the GPUs (as `launch.gpu_ids`)
in a worker process of its own (experiments/worker.py), whose output goes to `<sweep>/<run>.log`.
When the runs cache latents on disk, the first run starts alone and the others wait for its first
step: the .npz files it writes beside the images are then there for them to read, not half-written.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import yaml

from .. import settings
from ..errors import ArtlabError, InputError
from ..files import write_atomic
from ..run.folder import alive_here
from ..spec import LoadedSpec
from .matrix import Matrix, Variant, expand, load_variants
from .records import SWEEP_FILE, find_runs, read_lock, read_result, read_sweep, run_status
from .worker import start as start_worker

FINISHED = "finished"
WHERE_IT_RAN = ("gpu_ids", "machine_rank", "main_process_ip", "main_process_port")
SWEEP_PREFIX = "sweep-"


class SweepError(ArtlabError):
    pass


# --- the resolved spec, hashed -------------------------------------------------------------------


def spec_sha256(spec: dict[str, Any]) -> str:
    """sha256 of a lock's `spec` mapping as canonical JSON (sorted keys, no spaces), with the launch values
    that say where a run ran rather than what it trains left out (GPU ids, a machine's rank and the main
    machine's address, which a SLURM job picks)."""
    data = json.loads(json.dumps(spec))
    if isinstance(data.get("launch"), dict):
        for key in WHERE_IT_RAN:
            data["launch"].pop(key, None)
    text = json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def resolved_spec(loaded: LoadedSpec, offline: bool | None = None) -> dict[str, Any]:
    """The `spec` mapping the lock of this spec's run would hold, found the way run_spec finds it (the
    model pinned, the family, repeats, the install), as written to YAML and read back."""
    from ..build.inputs import resolved_repeats
    from ..run.train import SetupError, concrete_family, locked_spec, resolve_model
    from ..trainer.install import InstallError, require_install

    spec = loaded.spec
    try:
        install = require_install(spec)
    except InstallError as exc:
        raise SetupError(str(exc)) from None
    model = resolve_model(spec, offline)
    family = concrete_family(spec, model)
    repeats, tokens = resolved_repeats(loaded)
    data = locked_spec(spec, model, family, repeats, tokens, install)
    return yaml.safe_load(yaml.safe_dump(data, sort_keys=False, allow_unicode=True))


def succeeded_runs(runs_root: Path, name: str) -> dict[str, Path]:
    """sha256 of the resolved spec -> the latest succeeded run folder with it, among runs_root/<name>/."""
    out: dict[str, Path] = {}
    for folder in find_runs(runs_root / name) if (runs_root / name).is_dir() else []:
        if run_status(read_result(folder)) != "succeeded":
            continue
        spec = read_lock(folder, ("spec",)).get("spec")
        if isinstance(spec, dict):
            out[spec_sha256(spec)] = folder
    return out


# --- sweep.json ----------------------------------------------------------------------------------


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


@dataclass
class SweepFolder:
    path: Path
    data: dict[str, Any]

    def save(self) -> None:
        self.data["updated"] = _now()
        write_atomic(self.path / SWEEP_FILE, json.dumps(self.data, indent=2, ensure_ascii=False) + "\n")

    def run(self, name: str) -> dict[str, Any]:
        return next(r for r in self.data["runs"] if r["name"] == name)

    def relative(self, folder: Path) -> str:
        return os.path.relpath(folder, self.path)

    def folder_of(self, entry: dict[str, Any]) -> Path | None:
        return (self.path / entry["folder"]).resolve() if entry.get("folder") else None


def _alive_here(data: dict[str, Any]) -> bool:
    """Another live process on this host (not this one) still runs the sweep."""
    return data.get("pid") != os.getpid() and alive_here(data) is True


def open_sweep(loaded: LoadedSpec, matrix: Matrix, runs_root: Path, overrides: tuple[str, ...]) -> SweepFolder:
    """The latest unfinished sweep of this spec file under runs_root/<name>/, or a new sweep folder."""
    spec_file = str(loaded.path.resolve())
    parent = runs_root / matrix.base_name
    previous = None
    for folder in sorted(parent.glob(SWEEP_PREFIX + "*"), reverse=True):
        try:
            data = read_sweep(folder)
        except ArtlabError:
            continue
        if data.get("slurm"):  # submitted to SLURM: its runs are the jobs', not this queue's to resume
            continue
        if data.get("spec_file") == spec_file:
            previous = SweepFolder(folder, data) if data.get("status") != FINISHED else None
            break
    if previous is not None:
        if _alive_here(previous.data):
            raise SweepError(
                f"{previous.path} is being run by process {previous.data['pid']}; "
                "wait for it or stop it (Ctrl-C) before starting this sweep again"
            )
        _merge_runs(previous, matrix, overrides)
        return previous
    for _ in range(100):
        path = parent / f"{SWEEP_PREFIX}{time.strftime('%Y%m%d-%H%M%S')}"
        try:
            path.mkdir(parents=True)
            break
        except FileExistsError:
            time.sleep(1)
    else:
        raise SweepError(f"cannot make a new sweep folder under {parent}")
    sweep = SweepFolder(path, {"version": 1, "spec_file": spec_file, "name": matrix.base_name, "created": _now()})
    _merge_runs(sweep, matrix, overrides)
    return sweep


def _merge_runs(sweep: SweepFolder, matrix: Matrix, overrides: tuple[str, ...]) -> None:
    """The runs of the matrix as it is now; what an earlier attempt of the sweep recorded is kept."""
    earlier = {r["name"]: r for r in sweep.data.get("runs", []) if isinstance(r, dict) and "name" in r}
    sweep.data["matrix"] = matrix.keys
    sweep.data["overrides"] = list(overrides)
    sweep.data["runs"] = [
        {
            "name": v.name,
            "values": v.values,
            "overrides": list(v.overrides),
            "status": earlier.get(v.name, {}).get("status", "pending"),
            "folder": earlier.get(v.name, {}).get("folder"),
            "attempts": earlier.get(v.name, {}).get("attempts", []),
        }
        for v in matrix.variants
    ]


# --- the queue -----------------------------------------------------------------------------------


@dataclass
class SweepOptions:
    runs_root: Path | None = None
    gpus: list[int] | None = None
    plain: bool | None = None
    offline: bool | None = None
    overrides: tuple[str, ...] = ()
    echo: Callable[[str], None] = field(default=lambda line: print(line, file=sys.stderr, flush=True))


@dataclass
class SweepOutcome:
    folder: Path
    exit_code: int
    counts: dict[str, int]


class _Stop(Exception):
    """SIGTERM while no trainer runs: stop like Ctrl-C."""


def prepare(loaded: LoadedSpec, overrides: tuple[str, ...] = ()) -> tuple[Matrix, list[LoadedSpec]]:
    matrix = expand(loaded)
    if matrix is None:
        raise InputError(f"{loaded.path} has no matrix: section; `artlab-kohya run` runs it")
    runs, _ = load_variants(loaded, matrix, overrides)
    return matrix, runs


def gpu_override(gpus: list[int]) -> str:
    return f"launch.gpu_ids={json.dumps(gpus)}"


def run_sweep(loaded: LoadedSpec, options: SweepOptions) -> SweepOutcome:
    """Run the matrix of `loaded` (already checked by the caller) and record it in its sweep folder."""
    matrix, runs = prepare(loaded, options.overrides)
    if options.gpus is not None:
        if any(e.path[:2] == ("launch", "gpu_ids") for e in matrix.entries):
            raise InputError("the matrix varies launch.gpu_ids; --gpus hands the GPUs out, so leave one of them")
        biggest = max(r.spec.launch.num_processes for r in runs)
        if biggest > len(options.gpus):
            raise InputError(f"a run needs {biggest} GPUs (launch.num_processes) but --gpus gives {len(options.gpus)}")
    runs_root = settings.runs_root(loaded.path, options.runs_root)
    sweep = open_sweep(loaded, matrix, runs_root, options.overrides)
    sweep.data.update({"status": "running", "pid": os.getpid(), "host": socket.gethostname(), "gpus": options.gpus})
    sweep.save()
    echo = options.echo
    echo(f"sweep folder: {sweep.path}")
    todo = _skip_done(sweep, matrix, runs, runs_root, options)
    interrupted = False
    previous = signal.signal(signal.SIGTERM, _raise_stop)
    try:
        if options.gpus and len(options.gpus) > 1 and todo:
            interrupted = _side_by_side(sweep, loaded, todo, runs_root, options)
        else:
            interrupted = _one_by_one(sweep, todo, runs_root, options)
    except (KeyboardInterrupt, _Stop):
        interrupted = True
    finally:
        signal.signal(signal.SIGTERM, previous)
        for entry in sweep.data["runs"]:
            if entry["status"] == "running":
                entry["status"] = "interrupted"
        sweep.data["status"] = "interrupted" if interrupted else FINISHED
        sweep.data["pid"] = None
        sweep.save()
    _write_reports(sweep, echo)
    counts: dict[str, int] = {}
    for entry in sweep.data["runs"]:
        counts[entry["status"]] = counts.get(entry["status"], 0) + 1
    echo(f"sweep {sweep.data['status']}: " + ", ".join(f"{n} {s}" for s, n in counts.items()) + f" ({sweep.path})")
    if interrupted:
        return SweepOutcome(sweep.path, 130, counts)
    failed = any(entry["status"] not in ("succeeded", "skipped") for entry in sweep.data["runs"])
    return SweepOutcome(sweep.path, 1 if failed else 0, counts)


def _raise_stop(signum: int, frame: object) -> None:
    raise _Stop()


def _skip_done(
    sweep: SweepFolder, matrix: Matrix, runs: list[LoadedSpec], runs_root: Path, options: SweepOptions
) -> list[tuple[Variant, LoadedSpec]]:
    """The runs still to do; those whose resolved spec already succeeded are marked done."""
    from ..run.train import SetupError

    todo = []
    for variant, run in zip(matrix.variants, runs, strict=True):
        entry = sweep.run(variant.name)
        done = succeeded_runs(runs_root, variant.name)
        folder = None
        if done:
            try:
                folder = done.get(spec_sha256(resolved_spec(run, options.offline)))
            except SetupError:
                folder = None  # the run itself will say what is wrong
        if folder is None:
            todo.append((variant, run))
            continue
        own = sweep.folder_of(entry)
        entry["folder"] = sweep.relative(folder)
        if own is None or own != folder.resolve():
            entry["status"] = "skipped"
            options.echo(f"skip {variant.name}: already succeeded in {folder}")
        else:
            entry["status"] = "succeeded"
    sweep.save()
    return todo


def _describe(variant: Variant) -> str:
    return ", ".join(f"{k}={v}" for k, v in variant.labels().items())


def _record(sweep: SweepFolder, variant: Variant, status: str, folder: Path | None, **more: Any) -> None:
    entry = sweep.run(variant.name)
    entry["status"] = status
    if folder is not None:
        entry["folder"] = sweep.relative(folder)
        if entry["folder"] not in entry["attempts"]:
            entry["attempts"].append(entry["folder"])
    entry.update(more)
    sweep.save()


def _one_by_one(
    sweep: SweepFolder, todo: list[tuple[Variant, LoadedSpec]], runs_root: Path, options: SweepOptions
) -> bool:
    """The queue in this process, one run at a time; True when it was interrupted."""
    from ..run.train import RunOptions, SetupError, run_spec
    from ..spec import SpecError

    for n, (variant, run) in enumerate(todo, 1):
        if options.gpus:
            from ..spec.load import load_spec_text

            run = load_spec_text(
                run.text, run.path, (*options.overrides, *variant.overrides, gpu_override(options.gpus))
            )
        options.echo(f"sweep: run {n}/{len(todo)}: {variant.name} ({_describe(variant)})")
        _record(sweep, variant, "running", None, started=_now())

        def on_folder(folder: Path, variant: Variant = variant) -> None:
            _record(sweep, variant, "running", folder)

        try:
            outcome = run_spec(
                run,
                RunOptions(runs_root=runs_root, plain=options.plain, offline=options.offline, on_folder=on_folder),
            )
        except (SetupError, SpecError) as exc:
            options.echo(f"{variant.name}: not started: {exc}")
            _record(sweep, variant, "error", None, error=str(exc))
            continue
        _record(sweep, variant, outcome.status, outcome.folder, exit_code=outcome.exit_code)
        _report(outcome.folder, options.echo)
        if outcome.status == "interrupted":
            return True
    return False


def _report(folder: Path, echo: Callable[[str], None]) -> None:
    from .report import write_run_report

    try:
        write_run_report(folder)
    except Exception as exc:  # noqa: BLE001 - the report is a view; it never changes how a run ended
        echo(f"warning: no report.html for {folder}: {exc}")


def _write_reports(sweep: SweepFolder, echo: Callable[[str], None]) -> None:
    from .report import write_sweep_report

    try:
        path = write_sweep_report(sweep.path)
        echo(f"report: {path}")
    except Exception as exc:  # noqa: BLE001 - as above
        echo(f"warning: no sweep report.html: {exc}")


# --- side by side --------------------------------------------------------------------------------


@dataclass
class _Worker:
    variant: Variant
    proc: subprocess.Popen[bytes]
    gpus: list[int]
    outcome: Path
    before: set[str]


def _side_by_side(
    sweep: SweepFolder,
    loaded: LoadedSpec,
    todo: list[tuple[Variant, LoadedSpec]],
    runs_root: Path,
    options: SweepOptions,
) -> bool:
    """One worker process per run, each on its own GPUs; True when interrupted."""
    assert options.gpus is not None
    free = list(options.gpus)
    pending = list(todo)
    active: list[_Worker] = []
    stopping: list[int] = []
    hold_for_cache = any(run.spec.training.cache_latents == "disk" for _, run in todo)
    first: list[_Worker] = []
    work = Path(tempfile.mkdtemp(prefix="artlab-sweep-"))

    def on_signal(signum: int, frame: object) -> None:
        stopping.append(signum)
        for worker in active:
            _signal(worker.proc, signal.SIGINT)

    previous = {s: signal.signal(s, on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        while active or (pending and not stopping):
            if hold_for_cache and first and not _cache_warming(first[0], runs_root):
                hold_for_cache = False
            while pending and not stopping and not (hold_for_cache and first):
                variant, run = pending[0]
                need = run.spec.launch.num_processes
                if len(free) < need:
                    break
                pending.pop(0)
                gpus, free = free[:need], free[need:]
                active.append(_start(sweep, loaded, variant, gpus, runs_root, options, work))
                first = first or active[-1:]
            time.sleep(0.2)
            for worker in [w for w in active if w.proc.poll() is not None]:
                active.remove(worker)
                free = sorted(free + worker.gpus)
                status = _finish(sweep, worker, options)
                if status == "interrupted":
                    stopping.append(signal.SIGINT)
                    for other in active:
                        _signal(other.proc, signal.SIGINT)
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
        for worker in active:  # only on an error of ours: leave no worker behind
            _signal(worker.proc, signal.SIGINT)
            worker.proc.wait()
    return bool(stopping)


def _signal(proc: subprocess.Popen[bytes], signum: int) -> None:
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(proc.pid, signum)


def _start(
    sweep: SweepFolder,
    loaded: LoadedSpec,
    variant: Variant,
    gpus: list[int],
    runs_root: Path,
    options: SweepOptions,
    work: Path,
) -> _Worker:
    outcome = work / f"{variant.index}.outcome.json"
    job = {
        "spec_path": str(loaded.path),
        "spec_text": loaded.text,
        "overrides": [*options.overrides, *variant.overrides, gpu_override(gpus)],
        "runs_root": str(runs_root),
        "offline": options.offline,
        "outcome": str(outcome),
    }
    log = sweep.path / f"{variant.name}.log"
    parent = runs_root / variant.name
    before = {p.name for p in parent.iterdir()} if parent.is_dir() else set()
    proc = start_worker(job, work / f"{variant.index}.json", log)
    options.echo(f"sweep: start {variant.name} on GPU {','.join(map(str, gpus))} ({_describe(variant)}), log {log}")
    _record(sweep, variant, "running", None, started=_now(), gpus=gpus, log=log.name)
    return _Worker(variant, proc, gpus, outcome, before)


def _cache_warming(worker: _Worker, runs_root: Path) -> bool:
    """True while the first run has not yet reached its first step (its latents are still being cached)."""
    if worker.proc.poll() is not None:
        return False
    parent = runs_root / worker.variant.name
    new = [p for p in parent.iterdir() if p.name not in worker.before] if parent.is_dir() else []
    for folder in new:
        try:
            with (folder / "events.jsonl").open("rb") as handle:
                if b'"Step"' in handle.read():
                    return False
        except OSError:
            continue
    return True


def _finish(sweep: SweepFolder, worker: _Worker, options: SweepOptions) -> str:
    try:
        outcome = json.loads(worker.outcome.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        outcome = {"status": "error", "error": f"the worker exited {worker.proc.returncode} without an outcome"}
    folder = Path(outcome["folder"]) if outcome.get("folder") else None
    status = str(outcome.get("status", "error"))
    extra = {k: outcome[k] for k in ("exit_code", "error") if k in outcome}
    _record(sweep, worker.variant, status, folder, **extra)
    options.echo(f"sweep: {worker.variant.name} {status}" + (f": {folder}" if folder else f": {outcome.get('error')}"))
    return status
