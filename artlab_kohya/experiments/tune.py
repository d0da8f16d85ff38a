"""`tune`: short timed runs of candidate speed settings on this machine's card; the fastest stable one is
cached for `launch.profile: fast`.

    runs/<name>/tune-<YYYYmmdd-HHMMSS>/tune.json          the candidates, what each measured, the choice
    runs/<name>/tune-<YYYYmmdd-HHMMSS>/<candidate>/<stamp>/  each candidate's ordinary run folder

Each candidate is the spec with a few overrides, run for `steps` optimizer steps (no epoch saves, no
samples, no logging) in a process of its own with a time bound: a candidate that hangs (torch_compile
did, at step 0, on an H200) or crashes is stopped, recorded and skipped. Measured from its run folder:
the steady images per second (optimizer steps per second over the second half of the steps, times the
images a step takes) and the time to the first step (result.json's startup record).

Only settings that do not change what is learned are candidates (speed.TUNABLE). The batch is one that
does: with `batch=True`, tune also tries the fastest candidate at 2x, 4x, 8x, 16x the batch, until one
fails (out of memory) or is not 3% faster than the one before, and shows what each would mean for the
effective batch and the learning rate; it never writes a batch into the cache.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from ..build.plan import images_per_step
from ..build.speed import TUNABLE, Card, read_tuned, tune_file, tune_key
from ..errors import ArtlabError, InputError
from ..files import write_atomic
from ..spec import LoadedSpec
from ..spec.load import load_spec_text
from .records import find_runs, last_step, read_lock, read_result
from .worker import start as start_worker

TUNE_FILE = "tune.json"
TUNE_PREFIX = "tune-"
MIN_GAIN = 1.03  # a candidate must beat the default by 3% to be chosen: within that, the default's simplicity wins
BATCH_FACTORS = (2, 4, 8, 16)  # --batch: the largest batch that fits and still pays, by doubling
STOP_GRACE = 30.0  # seconds a stopped candidate gets to record its end before it is killed
PROGRESS_EVERY = 15.0  # seconds between the lines saying where a candidate is
# Each candidate run: this many steps, nothing saved or sampled on the way, no logger.
RUN_OVERRIDES = (
    "training.epochs=null",
    "training.save_every_n_epochs=null",
    "training.save_every_n_steps=null",
    "sample.prompts=[]",
    "output.log_with=none",
    "output.dir=null",
)


@dataclass(frozen=True)
class Candidate:
    name: str
    overrides: tuple[str, ...]
    what: str


# The built-in candidates, tried in this order on top of the spec (profile default). A spec value for a
# setting is overridden here, so that each candidate measures what its name says.
CANDIDATES = (
    Candidate("default", (), "the default profile: data-loader workers from the machine, fused AdamW on CUDA"),
    Candidate("cudnn", ("launch.cudnn_benchmark=true",), "+ cuDNN autotuning"),
    Candidate(
        "cudnn-workers8",
        ("launch.cudnn_benchmark=true", "training.workers=8", "training.persistent_workers=true"),
        "+ cuDNN autotuning, 8 persistent data-loader workers (sd-scripts' own default count)",
    ),
    Candidate(
        "compile",
        (
            "launch.cudnn_benchmark=true",
            "kohya.extra_args.torch_compile=true",
            "kohya.extra_args.dynamo_backend=inductor",
        ),
        "+ cuDNN autotuning, torch.compile (inductor)",
    ),
)


class TuneError(ArtlabError):
    pass


@dataclass
class Measured:
    candidate: Candidate
    status: str  # ok, timeout, failed, interrupted
    folder: Path | None = None
    images_per_s: float | None = None
    steps_per_s: float | None = None
    first_step_s: float | None = None
    images_per_step: int | None = None
    seconds: float = 0.0
    note: str | None = None
    losses: list[float] = field(default_factory=list)

    def record(self) -> dict[str, Any]:
        return {
            "name": self.candidate.name,
            "what": self.candidate.what,
            "overrides": list(self.candidate.overrides),
            "status": self.status,
            "folder": str(self.folder) if self.folder else None,
            "images_per_s": self.images_per_s,
            "steps_per_s": self.steps_per_s,
            "first_step_s": self.first_step_s,
            "images_per_step": self.images_per_step,
            "seconds": round(self.seconds, 1),
            "note": self.note,
            "losses": self.losses,
        }


@dataclass(frozen=True)
class TuneOptions:
    steps: int = 40
    timeout: float = 300.0
    batch: bool = False
    candidates: tuple[Candidate, ...] = CANDIDATES
    runs_root: Path | None = None
    offline: bool | None = None
    overrides: tuple[str, ...] = ()
    cache: bool = True
    echo: Callable[[str], None] = print


def parse_candidate(text: str) -> Candidate:
    """NAME:path=value[,path=value...] from the command line; NAME: alone is the spec as it is."""
    name, sep, rest = text.partition(":")
    name = name.strip()
    usage = f"--candidate {text!r}: give NAME:path=value[,path=value...] (NAME: letters, digits, - _; NAME: alone is "
    usage += "the spec as it is)"
    if not sep or not name or not name.replace("-", "").replace("_", "").isalnum():
        raise InputError(usage)
    overrides = tuple(o.strip() for o in rest.split(",") if o.strip())
    for override in overrides:
        path, eq, value = override.partition("=")
        if not eq or not path.strip() or not value.strip():
            raise InputError(f"--candidate {name}: {override!r} is not path=value")
    return Candidate(name, overrides, ", ".join(overrides) or "the spec as it is")


def check_candidates(
    loaded: LoadedSpec, candidates: tuple[Candidate, ...], overrides: tuple[str, ...] = (), steps: int = 40
) -> list[str]:
    """Every candidate's spec is loaded before anything trains: a bad override is an error now, named by its
    candidate, not a failure after the others have run. Returns warnings: candidates whose overrides change
    what is learned are measured but never cached."""
    names = [c.name for c in candidates]
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise InputError(f"--candidate: the name {twice[0]} is used twice; each candidate needs its own")
    warnings = []
    for c in candidates:
        try:
            load_spec_text(
                loaded.text, loaded.path, [*overrides, *RUN_OVERRIDES, f"training.max_steps={steps}", *c.overrides]
            )
        except ArtlabError as exc:
            lines = [line.replace("--set ", f"--candidate {c.name}: ", 1) for line in exc.lines()]
            raise InputError("\n".join(lines)) from None
        other = changes_learning(c)
        if other:
            warnings.append(
                f"--candidate {c.name}: {', '.join(other)} change(s) what is learned: measured and shown, "
                "never chosen or cached"
            )
    return warnings


def changes_learning(candidate: Candidate) -> list[str]:
    """The candidate's override paths that are not speed settings (speed.TUNABLE, launch.profile)."""
    paths = [o.partition("=")[0].strip() for o in candidate.overrides]
    return [p for p in paths if p not in TUNABLE and p != "launch.profile"]


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def steady_rate(folder: Path) -> tuple[float | None, list[float]]:
    """Optimizer steps per second over the second half of the steps (the first ones warm up), from the
    times events.jsonl recorded; and the per-step average losses."""
    steps: list[tuple[int, float]] = []
    losses: list[float] = []
    try:
        lines = (folder / "events.jsonl").read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError:
        return None, []
    for line in lines:
        if '"Step"' not in line:
            continue
        try:
            event = json.loads(line)
        except ValueError:
            continue
        if isinstance(event.get("step"), int) and isinstance(event.get("t"), int | float):
            steps.append((event["step"], float(event["t"])))
            if isinstance(event.get("loss"), int | float):
                losses.append(float(event["loss"]))
    if len(steps) < 4:
        return None, losses
    mid, last = steps[len(steps) // 2], steps[-1]
    if last[1] <= mid[1]:
        return None, losses
    return (last[0] - mid[0]) / (last[1] - mid[1]), losses


def run_candidate(
    loaded: LoadedSpec, candidate: Candidate, tune_dir: Path, options: TuneOptions, extra: tuple[str, ...] = ()
) -> Measured:
    """One candidate in a worker process of its own, stopped at the time bound."""
    overrides = [
        *options.overrides,
        "launch.profile=default",
        *RUN_OVERRIDES,
        f"training.max_steps={options.steps}",
        f"output.name={candidate.name}",
        *candidate.overrides,
        *extra,
    ]
    try:
        run_spec = load_spec_text(loaded.text, loaded.path, overrides)
    except ArtlabError as exc:
        return Measured(candidate, "failed", note=" ".join(exc.lines()))
    work = Path(tempfile.mkdtemp(prefix="artlab-tune-"))
    job, outcome = work / "job.json", work / "outcome.json"
    job_data = {
        "spec_path": str(loaded.path),
        "spec_text": loaded.text,
        "overrides": overrides,
        "runs_root": str(tune_dir),
        "offline": options.offline,
        "outcome": str(outcome),
        "no_report": True,
    }
    log = tune_dir / f"{candidate.name}.log"
    started = time.monotonic()
    proc = start_worker(job_data, job, log)
    status = None
    try:
        _wait(proc, started + options.timeout, tune_dir / candidate.name, candidate.name, options.echo)
    except subprocess.TimeoutExpired:
        status = "timeout"
        _stop(proc)
    except BaseException:
        _stop(proc)
        raise
    seconds = time.monotonic() - started
    folders = find_runs(tune_dir / candidate.name) if (tune_dir / candidate.name).is_dir() else []
    folder = folders[-1] if folders else None
    result = read_result(folder) if folder else {}
    if status is None:
        status = "ok" if result.get("status") == "succeeded" else (result.get("status") or "failed")
        if status == "succeeded":
            status = "ok"
    note = None
    if status == "timeout":
        note = f"stopped after {options.timeout:.0f} s (the time bound)" + (
            "" if (folder and steady_rate(folder)[0]) else ", too few steps for a steady rate"
        )
    elif status != "ok":
        note = result.get("diagnosis") or _outcome_error(outcome) or f"see {log}"
    rate, losses = steady_rate(folder) if folder else (None, [])
    images = images_per_step(run_spec.spec)
    startup = result.get("startup") or {}
    measured = Measured(
        candidate,
        status,
        folder,
        images_per_s=round(rate * images, 2) if rate and status == "ok" else None,
        steps_per_s=round(rate, 3) if rate and status == "ok" else None,
        first_step_s=startup.get("first_step_s"),
        images_per_step=images,
        seconds=seconds,
        note=note,
        losses=losses,
    )
    with contextlib.suppress(OSError):
        job.unlink()
        outcome.unlink(missing_ok=True)
        work.rmdir()
    return measured


def _wait(proc: subprocess.Popen[bytes], deadline: float, runs: Path, name: str, echo: Callable[[str], None]) -> None:
    """Wait for the candidate until the deadline (TimeoutExpired after it), saying its step now and then."""
    said, last = time.monotonic(), ""
    while True:
        try:
            proc.wait(timeout=max(0.0, min(PROGRESS_EVERY / 10, deadline - time.monotonic())))
            return
        except subprocess.TimeoutExpired:
            if time.monotonic() >= deadline:
                raise
        if time.monotonic() - said >= PROGRESS_EVERY:
            said = time.monotonic()
            folders = find_runs(runs) if runs.is_dir() else []
            step = last_step(folders[-1]) if folders else None
            line = f"tune: {name}: step {step.step}/{step.total}" if step else f"tune: {name}: starting"
            if line != last:
                echo(line)
                last = line


def _outcome_error(path: Path) -> str | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data.get("error") or data.get("diagnosis")


def _stop(proc: subprocess.Popen[bytes]) -> None:
    """Ctrl-C to the candidate (its run records how it ended), then, after a grace, the whole group."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGINT)
    try:
        proc.wait(timeout=STOP_GRACE)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def choose(measured: list[Measured]) -> Measured | None:
    """The fastest candidate that finished; the default unless another beats it by MIN_GAIN."""
    ok = [m for m in measured if m.status == "ok" and m.images_per_s and not changes_learning(m.candidate)]
    if not ok:
        return None
    best = max(ok, key=lambda m: m.images_per_s or 0.0)
    default = next((m for m in ok if m.candidate.name == "default"), None)
    if default and default is not best and (best.images_per_s or 0) < (default.images_per_s or 0) * MIN_GAIN:
        return default
    return best


def tuned_settings(candidate: Candidate) -> dict[str, Any]:
    """The candidate's overrides that a tune result may carry (speed.TUNABLE), as values."""
    import yaml

    out: dict[str, Any] = {}
    for text in candidate.overrides:
        path, _, value = text.partition("=")
        if path.strip() in TUNABLE:
            out[path.strip()] = yaml.safe_load(value)
    return out


def _key_of(folder: Path, loaded: LoadedSpec) -> tuple[str, Card]:
    lock = read_lock(folder, ("model", "trainer"))
    card = Card.from_versions(lock.get("trainer") if isinstance(lock.get("trainer"), dict) else None)
    family = (lock.get("model") or {}).get("family") or loaded.spec.model.family
    return tune_key(loaded.spec, str(family), card), card


def tune(loaded: LoadedSpec, options: TuneOptions) -> dict[str, Any]:
    """Run the candidates, then (with options.batch) the winner at larger batches; write tune.json in the tune
    folder and, when a candidate won, the cache entry. Returns the tune.json record."""
    root = (options.runs_root or loaded.path.resolve().parent / "runs").absolute() / loaded.spec.output.name
    tune_dir = root / f"{TUNE_PREFIX}{datetime.now().strftime('%Y%m%d-%H%M%S')}"
    tune_dir.mkdir(parents=True, exist_ok=False)
    record: dict[str, Any] = {
        "spec_file": str(loaded.path.resolve()),
        "started": _now(),
        "steps": options.steps,
        "timeout_s": options.timeout,
        "candidates": [],
        "batches": [],
    }
    measured: list[Measured] = []

    def save() -> None:
        record["updated"] = _now()
        write_atomic(tune_dir / TUNE_FILE, json.dumps(record, indent=2, ensure_ascii=False) + "\n")

    save()
    options.echo(f"tune: {len(options.candidates)} candidates, {options.steps} steps each, {tune_dir}")
    previous = {sig: signal.signal(sig, _stop_tune) for sig in (signal.SIGTERM, signal.SIGHUP)}
    try:
        for candidate in options.candidates:
            options.echo(f"tune: {candidate.name}: {candidate.what}")
            m = run_candidate(loaded, candidate, tune_dir, options)
            measured.append(m)
            record["candidates"].append(m.record())
            save()
            options.echo(f"tune: {candidate.name}: {_said(m)}")
        best = _decide(loaded, options, record, measured, tune_dir)
        save()
        if options.batch and best is not None:
            _batches(loaded, best, tune_dir, options, record, save)
    except (KeyboardInterrupt, TuneStopped):
        record["stopped"] = "interrupted: the running candidate was stopped; nothing more was tried"
        record["finished"] = _now()
        save()
        raise
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    record["finished"] = _now()
    save()
    record["folder"] = str(tune_dir)
    return record


class TuneStopped(Exception):
    """SIGTERM or SIGHUP (kill, timeout, a closed terminal, scancel): stop the candidate, then tune."""


def _stop_tune(signum: int, frame: object) -> None:
    signal.signal(signum, signal.SIG_IGN)  # a second one must not cut the candidate's stop short
    raise TuneStopped(signal.Signals(signum).name)


def _decide(
    loaded: LoadedSpec, options: TuneOptions, record: dict[str, Any], measured: list[Measured], tune_dir: Path
) -> Measured | None:
    """The choice, in the record and (unless --no-cache) the cache."""
    best = choose(measured)
    record["chosen"] = best.candidate.name if best else None
    if best is not None and best.folder is not None:
        key, card = _key_of(best.folder, loaded)
        entry = {
            "candidate": best.candidate.name,
            "settings": tuned_settings(best.candidate),
            "images_per_s": best.images_per_s,
            "first_step_s": best.first_step_s,
            "default_images_per_s": next(
                (m.images_per_s for m in measured if m.candidate.name == "default" and m.status == "ok"), None
            ),
            "steps": options.steps,
            "date": _now()[:10],
            "card": card.name,
            "tune": str(tune_dir / TUNE_FILE),
        }
        record["key"], record["entry"] = key, entry
        if options.cache:
            _write_cache(key, entry)
            record["cached_in"] = str(tune_file())
    return best


def _batches(
    loaded: LoadedSpec,
    best: Measured,
    tune_dir: Path,
    options: TuneOptions,
    record: dict[str, Any],
    save: Callable[[], None],
) -> None:
    """The chosen candidate at twice the batch, again and again until one fails (out of memory, most
    often) or stops getting faster; what each would mean, never applied."""
    spec = loaded.spec
    batch, lr = spec.dataset.batch_size, spec.optimizer.unet_lr or spec.optimizer.learning_rate
    previous = best.images_per_s or 0.0
    for factor in BATCH_FACTORS:
        size = batch * factor
        name = f"{best.candidate.name}-batch{size}"
        candidate = Candidate(name, best.candidate.overrides, f"{best.candidate.what}, batch {size}")
        options.echo(f"tune: {name}: batch {size} (x{factor})")
        m = run_candidate(loaded, candidate, tune_dir, options, extra=(f"dataset.batch_size={size}",))
        entry = m.record() | {
            "batch_size": size,
            "speedup": round(m.images_per_s / best.images_per_s, 2) if m.images_per_s and best.images_per_s else None,
            "consequence": (
                f"effective batch {m.images_per_step} instead of {best.images_per_step}: {factor}x fewer steps per "
                f"epoch; the learning rates were chosen for {best.images_per_step} (a square-root rule would give "
                f"{lr * factor**0.5:.2g}, a linear one {lr * factor:.2g}); nothing is changed for you: set "
                f"dataset.batch_size: {size} and optimizer.lr_reference_batch yourself"
            ),
        }
        record["batches"].append(entry)
        save()
        options.echo(f"tune: {name}: {_said(m)}")
        if m.status != "ok" or (m.images_per_s or 0.0) < previous * MIN_GAIN:
            break
        previous = m.images_per_s or 0.0


def _said(m: Measured) -> str:
    if m.status == "ok" and m.images_per_s:
        first = f", first step after {m.first_step_s:.1f} s" if m.first_step_s is not None else ""
        return f"{m.images_per_s:.1f} images/s{first}"
    return f"{m.status}: {m.note or ''}".rstrip(": ")


def _write_cache(key: str, entry: dict[str, Any]) -> None:
    path = tune_file()
    data = read_tuned(path)
    data[key] = entry
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(path, json.dumps(data, indent=2, ensure_ascii=False) + "\n")
