"""`artlab-kohya run`: resolve, record, launch, watch, record the outcome.

The order matters: everything that can fail without a GPU (spec, dataset, install, model,
tokenizer, argument surface) fails before the run folder exists; the folder is written in full
before the trainer starts; the outcome is written however the trainer ends.
"""

from __future__ import annotations

import contextlib
import errno
import os
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.text import Text

from .. import __version__, settings
from ..build.command import build_command
from ..build.inputs import ModelChoice, render_checked, render_inputs, resolved_repeats, speed_here
from ..build.plan import Plan, make_plan, spec_family
from ..build.speed import Speed
from ..errors import ArtlabError
from ..models.components import check_pinned_source, component_record, resolve_components
from ..models.hub import ResolvedModel
from ..spec import LoadedSpec
from ..spec.families import FAMILIES, Component, Family, script_for
from ..spec.model import Spec
from ..trainer.install import Install
from ..trainer.output import Event, Line, LogRecord, NanLoss, Progress, Step, StepLosses, Stream, TrainingSummary
from ..trainer.process import run_parsed
from .display import Display, EpochRecord
from .folder import LOCK_FILE, RESULT_FILE, ClaimError, OutputClaim, RunFolder, owner, redact
from .startup import StartupClock, startup_line

LOCK_HEADER = (
    "# artlab-kohya run lock: the spec fully resolved, and what ran it. `artlab-kohya rerun RUN_DIR`\n"
    "# runs it again (same model file by sha256, same settings); written before the trainer started.\n"
)


class SetupError(ArtlabError):
    """Something outside the spec stops the run before launch (model, install, tokenizer, folders)."""


@dataclass(frozen=True)
class RunOptions:
    runs_root: Path | None = None
    plain: bool | None = None
    offline: bool | None = None
    tokenizer_dir: Path | None = None  # a ready tokenizer folder (doctor --smoke), else prepared in the cache
    rerun_of: Path | None = None
    install: Install | None = None
    expect_sha256: str | None = None  # rerun: the model file must be the one the first run used
    folder: Path | None = None  # a run folder made beforehand (submit --slurm) instead of a new one
    # asked once when a signal stopped the trainer: result fields (status, diagnosis, ...) that say why,
    # written in the same write as the end (a SLURM time limit is a failure, not an interruption)
    why_stopped: Callable[[], dict[str, Any] | None] | None = None
    # told the run folder as soon as it exists, before training: a sweep records it then, so a sweep
    # killed mid-run still knows which folder its run was in
    on_folder: Callable[[Path], None] | None = None


@dataclass(frozen=True)
class RunOutcome:
    status: str
    exit_code: int
    folder: Path
    diagnosis: str | None


class _StopForNan(Exception):
    def __init__(self, step: int) -> None:
        super().__init__(f"NaN loss at step {step}")
        self.step = step


def concrete_family(spec: Spec, model: ResolvedModel) -> Family:
    family = spec_family(spec, model.family, model.prediction)
    if family is None:
        raise SetupError(f"cannot tell the family of {model.path}; set model.family ({', '.join(FAMILIES)})")
    return family


def resolve_model(spec: Spec, offline: bool | None) -> ResolvedModel:
    """The base model pinned: a hub file by commit and sha256, a local file by sha256."""
    from ..models.checkpoint import check_model_file
    from ..models.hub import resolve_alias, resolve_hub, resolve_local

    source = spec.model.source
    if source.type == "local":
        check_model_file(source.path, allow_pickle=spec.model.allow_pickle)
        return resolve_local(source.path, allow_pickle=spec.model.allow_pickle)
    if source.type == "alias":
        return resolve_alias(source.name, offline=offline)
    return resolve_hub(source.repo, source.file, source.revision, offline=offline, allow_pickle=spec.model.allow_pickle)


def _install(spec: Spec, options: RunOptions) -> Install:
    from ..trainer.install import check_install, require_install

    if options.install is not None:
        check_install(options.install)
        return options.install
    return require_install(spec)


def _versions(install: Install) -> dict[str, Any]:
    from ..trainer.install import InstallError, recorded_versions

    try:
        return dict(recorded_versions(install))
    except (InstallError, OSError) as exc:  # versions are for the record; the run itself will tell
        return {"error": str(exc)}


def locked_spec(spec: Spec, model: ResolvedModel, family: str, repeats: tuple[int, ...], tokens, install: Install):
    """The spec as it will run: pinned model, concrete family, repeats as numbers, the install."""
    data = spec.model_dump(mode="json")
    if model.source == "hub":
        data["model"]["source"] = {"type": "hub", "repo": model.repo, "file": model.filename, "revision": model.commit}
    else:
        data["model"]["source"] = {"type": "local", "path": str(model.path)}
    data["model"]["family"] = family
    for subset, r, t in zip(data["dataset"]["subsets"], repeats, tokens, strict=True):
        subset["repeats"], subset["class_tokens"] = r, t
    data["kohya"]["dir"], data["kohya"]["python"] = str(install.dir), str(install.python)
    return data


def _plan_record(plan: Plan) -> dict[str, Any]:
    return {
        "total_steps": plan.total_steps,
        "epochs": plan.epochs,
        "batches_per_epoch": plan.batches_per_epoch,
        "steps_per_epoch": plan.steps_per_epoch,
        "saves": list(plan.saves),
    }


def _checkpoint_records(output_dir: Path, plan: Plan, epochs: list[EpochRecord]) -> list[dict[str, Any]]:
    from ..models.hashing import sha256_file

    by_name = {r.checkpoint.name: r for r in epochs if r.checkpoint is not None}
    out = []
    for name in plan.saves:
        path = output_dir / name
        if not path.exists():
            continue
        record = by_name.get(name)
        out.append(
            {
                "file": str(path),
                "epoch": record.epoch if record else None,
                "avr_loss": record.avr_loss if record else None,
                "size": path.stat().st_size,
                "sha256": sha256_file(path),
            }
        )
    return out


@dataclass(frozen=True)
class _Resolved:
    """Everything a launch needs that can fail without a GPU, found before any folder is written."""

    plan: Plan
    install: Install
    model: ResolvedModel
    family: Family
    script: str
    surface: Any
    versions: dict[str, Any]
    tokenizer_dir: Path
    components: dict[Component, ResolvedModel] = field(default_factory=dict)  # FLUX.1/SD3 files
    speed: Speed | None = None  # build/speed.py: workers, fused AdamW, the fast profile's settings


def _resolve(loaded: LoadedSpec, options: RunOptions) -> _Resolved:
    from ..models.tokenizers import prepare_tokenizer_cache
    from ..trainer.install import read_surface
    from ..trainer.needs import check_trainer

    spec = loaded.spec
    plan = make_plan(loaded)
    install = _install(spec, options)
    # Three waits that do not depend on each other, each once per model/environment/commit and cached
    # after: hashing the model, probing the trainer's versions, asking its parser for its arguments.
    with ThreadPoolExecutor(max_workers=2) as pool:
        versions_job = pool.submit(_versions, install)
        surface_jobs = {
            family: pool.submit(read_surface, install, script_for(family))
            for family in ([spec.model.family] if spec.model.family != "auto" else [])
        }
        model = resolve_model(spec, options.offline)
        if options.expect_sha256 and model.sha256 != options.expect_sha256:
            raise SetupError(f"{model.path} has sha256 {model.sha256}, not the {options.expect_sha256} of the run")
        check_pinned_source(spec, model)
        family = concrete_family(spec, model)
        components = resolve_components(spec, family, offline=options.offline)
        script = script_for(family)
        surface = surface_jobs[family].result() if family in surface_jobs else read_surface(install, script)
        versions = versions_job.result()
        check_trainer(loaded, install, versions, family)  # no torch, accelerate, a module the spec needs: no launch
    tokenizer_dir = options.tokenizer_dir or prepare_tokenizer_cache(
        family, settings.tokenizer_root(), offline=options.offline
    )
    if spec.output.dir is not None and spec.launch.machine_rank == 0:  # machine 0 saves; the others write nothing
        clash = [name for name in plan.saves if os.path.lexists(spec.output.dir / name)]  # a dangling link too
        if clash:
            raise SetupError(
                f"{spec.output.dir} already holds {', '.join(clash)}; a run never overwrites checkpoints "
                "(choose another output.name or output.dir, or leave output.dir unset for a fresh run folder)"
            )
    speed = speed_here(loaded, family, versions)
    return _Resolved(plan, install, model, family, script, surface, versions, tokenizer_dir, components, speed)


def _lock(
    loaded: LoadedSpec, options: RunOptions, r: _Resolved, argv: list[str], env_add: dict[str, str]
) -> dict[str, Any]:
    model, spec = r.model, loaded.spec
    repeats, tokens = resolved_repeats(loaded)
    return {
        "artlab_kohya": __version__,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "spec_file": str(loaded.path.resolve()),
        "spec_git": spec_git(loaded.path),
        "overrides": [o.text for o in loaded.overrides],
        "rerun_of": str(options.rerun_of) if options.rerun_of else None,
        "spec": locked_spec(spec, model, r.family, repeats, tokens, r.install),
        "model": {
            "path": str(model.path),
            "source": model.source,
            "repo": model.repo,
            "file": model.filename,
            "revision_requested": model.revision_requested,
            "commit": model.commit,
            "sha256": model.sha256,
            "size": model.size,
            "family": r.family,
        },
        "kohya": {
            "dir": str(r.install.dir),
            "commit": r.install.commit,
            "script": r.script,
            "python": r.install.python,
        },
        "trainer": r.versions,
        "tokenizer_cache_dir": str(r.tokenizer_dir),
        "components": {name: component_record(c) for name, c in r.components.items()},
        "argv": argv,
        "env": redact(env_add),
        "seed": spec.training.seed,
        "plan": _plan_record(r.plan),
        "speed": r.speed.record() if r.speed else None,
    }


def spec_git(spec_path: Path, timeout: float = 5.0) -> dict[str, Any] | None:
    """The commit of the git repository the spec lives in, and whether the spec file differs from it
    (changed, or not committed at all); None outside a repository or without git."""
    import subprocess

    folder, name = spec_path.resolve().parent, spec_path.resolve().name

    def git(*args: str) -> str | None:
        try:
            done = subprocess.run(
                ["git", "-C", str(folder), *args], capture_output=True, text=True, timeout=timeout, check=False
            )
        except (OSError, subprocess.TimeoutExpired):
            return None
        return done.stdout if done.returncode == 0 else None

    commit = git("rev-parse", "HEAD")
    if not commit:
        return None
    status = git("status", "--porcelain", "--ignored", "--", name)
    return {"commit": commit.strip(), "dirty": None if status is None else bool(status.strip())}


class _Recorder:
    """The trainer's output, as it arrives: raw logs, parsed events to the display and events.jsonl."""

    RECORDED_LEVELS = ("WARNING", "ERROR", "CRITICAL")

    def __init__(self, folder: RunFolder, display: Display, stop_on_nan: bool) -> None:
        self.folder, self.display, self.stop_on_nan = folder, display, stop_on_nan
        self.events: list[Event] = []
        self._summary: TrainingSummary | None = None
        self._steps = StepLosses()
        self.startup = StartupClock()

    def output(self, stream: Stream, text: str) -> None:
        self.folder.log(stream, text)
        self.startup.output(stream, text)

    def event(self, event: Event) -> None:
        self.events.append(event)
        self.display.handle(event)
        if isinstance(event, TrainingSummary):
            self._summary = event
        if isinstance(event, Step):
            self._step(event)
        elif self._recorded(event):
            self.folder.event(event)
        if isinstance(event, NanLoss) and self.stop_on_nan:
            raise _StopForNan(event.step)

    def _recorded(self, event: Event) -> bool:
        """events.jsonl keeps what tells the run's story: not every log line or unnamed progress bar."""
        if isinstance(event, LogRecord):
            return event.level in self.RECORDED_LEVELS
        return not isinstance(event, Progress | Line)

    def _step(self, frame: Step) -> None:
        step = self._steps.final(frame)  # each step once, with its own loss (tqdm shows most steps twice)
        if step is None:
            return
        self.startup.step()
        per_epoch = self._summary.steps_per_epoch if self._summary else None
        epoch = -(-step.step // per_epoch) if per_epoch else None
        record = {"type": "Step", "epoch": epoch, "step": step.step, "total": step.total}
        self.folder.event(record | {"loss": step.avr_loss, "it_s": step.rate})


def run_spec(loaded: LoadedSpec, options: RunOptions, console: Console | None = None) -> RunOutcome:
    """The run's story: resolve what can fail without a GPU, write the run folder, train, record how it
    ended. Raises an ArtlabError before the folder exists; once it exists, result.json always ends in
    a final state (succeeded, failed or interrupted), whatever happens."""
    console = console or Console(stderr=True)
    spec = loaded.spec
    r = _resolve(loaded, options)
    claim = _claim_output(spec)
    try:
        folder = _create_folder(loaded, options)
        record: dict[str, Any] = {"status": "running", "started": _now(), **owner()}
        try:
            folder.write_result(record)
            if options.on_folder is not None:
                options.on_folder(folder.path)
            output_dir, argv, env_add = _write_folder(loaded, options, r, folder)
            _announce(console, folder, r)
            trained = _train(spec, r, argv, env_add, folder, console, options.plain, record)
            return _record(spec, r, folder, output_dir, trained, record, console, options.why_stopped)
        except BaseException as exc:  # the folder exists: its result.json must not stay `running`
            _record_crash(spec, r, folder, record, exc)
            if isinstance(exc, KeyboardInterrupt):
                console.print(f"interrupted: {folder.path}", highlight=False, markup=False, soft_wrap=True)
                return RunOutcome("interrupted", 130, folder.path, "interrupted before the trainer started")
            if isinstance(exc, OSError):
                raise SetupError(f"{_os_error(exc)}; recorded in {folder.path / RESULT_FILE}") from None
            raise
    finally:
        if claim is not None:
            claim.release()


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def _os_error(exc: OSError) -> str:
    if exc.errno == errno.ENOSPC:
        return f"the disk is full ({exc.filename or 'writing the run'})"
    if exc.errno == errno.ENAMETOOLONG:
        return f"a file name is too long (over 255 bytes in one part): {exc.filename}"
    return f"{exc.strerror or exc}: {exc.filename}" if exc.filename else str(exc)


def _claim_output(spec: Spec) -> OutputClaim | None:
    """A shared output.dir is claimed for the run (two runs at once would overwrite each other), by machine 0
    of a run over several: it saves the checkpoints, and the others, sharing the folder, must not find it
    taken."""
    if spec.output.dir is None or spec.launch.machine_rank > 0:
        return None
    try:
        return OutputClaim.take(spec.output.dir, spec.output.name)
    except ClaimError as exc:
        raise SetupError(
            f"{spec.output.dir} is in use by {exc.holder} (output.name {spec.output.name!r}); wait for it, "
            "or choose another output.name or output.dir"
        ) from None
    except OSError as exc:
        raise SetupError(f"cannot use output.dir: {_os_error(exc)}") from None


def _create_folder(loaded: LoadedSpec, options: RunOptions) -> RunFolder:
    if options.folder is not None:  # made beforehand (a SLURM job's run folder, made at submission)
        return RunFolder(options.folder.absolute())
    root = settings.runs_root(loaded.path, options.runs_root)
    try:
        return RunFolder.create(root, loaded.spec.output.name)
    except OSError as exc:
        raise SetupError(f"cannot create the run folder under {root}: {_os_error(exc)}") from None


def _write_folder(
    loaded: LoadedSpec, options: RunOptions, r: _Resolved, folder: RunFolder
) -> tuple[Path, list[str], dict[str, str]]:
    """The run folder before launch: the spec, the rendered TOML, the lock (every path in them absolute,
    since the trainer runs in the sd-scripts folder)."""
    output_dir = (loaded.spec.output.dir or folder.path / "checkpoints").absolute()
    model = ModelChoice(r.model.path.absolute(), r.family, {n: c.path.absolute() for n, c in r.components.items()})
    inputs = render_inputs(
        loaded, model, folder.path, output_dir, r.tokenizer_dir.absolute(),
        default_logging=folder.path / "logs", speed=r.speed,
    )  # fmt: skip
    render_checked(loaded, inputs, r.surface).write(folder.path)
    argv, env_add = build_command(
        loaded.spec, r.install, folder.path / "config.toml", r.family, offline=True, speed=r.speed
    )
    folder.write_text("spec.yaml", loaded.text)
    folder.write_yaml(LOCK_FILE, _lock(loaded, options, r, argv, env_add), LOCK_HEADER)
    return output_dir, argv, env_add


def _announce(console: Console, folder: RunFolder, r: _Resolved) -> None:
    model, install = r.model, r.install
    pin = f"@{model.commit[:12]}" if model.commit else ""
    commit = install.commit[:8] if install.commit else "commit unknown"
    for line in (
        f"run folder: {folder.path}",
        f"model: {model.repo or model.path}{pin} sha256 {model.sha256[:12]} ({r.family})",
        f"sd-scripts: {install.dir} ({commit}), {r.script}",
        f"plan: {r.plan.total_steps} steps, {r.plan.epochs} epochs",
        *([f"speed ({r.speed.profile}): {_speed_summary(r.speed)}"] if r.speed else []),
    ):
        console.print(line, highlight=False, markup=False, soft_wrap=True)  # paths are not rich markup


def _speed_summary(speed: Speed) -> str:
    parts = [f"{speed.workers} data-loader workers" + (" (persistent)" if speed.persistent_workers else "")]
    if speed.optimizer_args.get("fused"):
        parts.append("fused AdamW")
    if speed.cudnn_benchmark:
        parts.append("cuDNN autotuning")
    parts += [f"{k} {v}" for k, v in speed.extra_args.items()]
    if speed.tuned:
        parts.append(f"tuned {speed.tuned.get('date', '')}".strip())
    return ", ".join(parts)


@dataclass(frozen=True)
class _Trained:
    exit_code: int
    nan_step: int | None
    events: list[Event]
    epochs: list[EpochRecord]
    problems: list[Any]
    seconds: float


def _train(
    spec: Spec,
    r: _Resolved,
    argv: list[str],
    env_add: dict[str, str],
    folder: RunFolder,
    console: Console,
    plain: bool | None,
    record: dict[str, Any],
) -> _Trained:
    """Launch the trainer and watch it: raw logs, parsed events, the live display; stops on NaN."""
    display = Display(console, plain, folder=folder.path)
    recorder = _Recorder(folder, display, spec.training.stop_on_nan)
    nan_step: int | None = None
    t0 = time.monotonic()
    record["launched_at_unix"] = time.time()  # what the wrapper adds before the trainer starts is measurable
    folder.write_result(record)
    recorder.startup.start()
    try:
        exit_code = run_parsed(
            argv, {**os.environ, **env_add}, r.install.dir, recorder.event, on_output=recorder.output
        )
    except _StopForNan as stop:
        nan_step, exit_code = stop.step, 1
    finally:
        epochs = display.finish()
        folder.close()
        record["startup"] = recorder.startup.record()
    return _Trained(exit_code, nan_step, recorder.events, epochs, list(display.problems), time.monotonic() - t0)


def _record(
    spec: Spec,
    r: _Resolved,
    folder: RunFolder,
    output_dir: Path,
    trained: _Trained,
    record: dict[str, Any],
    console: Console,
    why_stopped: Callable[[], dict[str, Any] | None] | None = None,
) -> RunOutcome:
    """How the run ended, in result.json and on the console."""
    from .diagnose import diagnose

    exit_code = trained.exit_code
    interrupted = exit_code in (130, 143) and trained.nan_step is None
    # machine 0 saves; another machine's output_dir (empty, or machine 0's on a shared filesystem) is not
    # its own to judge: it neither renames a checkpoint machine 0 may still be writing nor lists them
    saves = spec.launch.machine_rank == 0
    partial = _set_aside_partial(output_dir, r.plan) if saves else []
    final = output_dir / r.plan.saves[-1]
    verdict = diagnose(
        spec,
        exit_code,
        trained.events,
        final,
        interrupted=interrupted,
        stopped_for_nan=trained.nan_step,
        kohya_commit=r.install.commit,
    )
    record.update(
        {
            "status": verdict.status,
            "exit_code": exit_code,
            "finished": _now(),
            "duration_s": round(trained.seconds, 1),
            "diagnosis": verdict.diagnosis,
            "problems": trained.problems,
            "checkpoints": _checkpoint_records(output_dir, r.plan, trained.epochs) if saves else [],
            "partial": partial,
            "final": str(final) if saves and final.exists() else None,
        }
    )
    if interrupted and why_stopped is not None:
        record.update(why_stopped() or {})
    folder.write_result(record)
    status, diagnosis = record["status"], record["diagnosis"]
    style = {"succeeded": "green", "interrupted": "yellow"}.get(status, "red")
    console.print(Text(status, style=style) + Text(f": {folder.path}"), highlight=False, soft_wrap=True)
    if diagnosis:
        console.print(diagnosis, highlight=False, markup=False, soft_wrap=True)
    if line := startup_line(record.get("startup")):
        console.print(line, highlight=False, markup=False, soft_wrap=True)
    code = exit_code if status != "failed" or exit_code != 0 else 1
    return RunOutcome(status, 130 if status == "interrupted" else code, folder.path, diagnosis)


def _set_aside_partial(output_dir: Path, plan: Plan) -> list[str]:
    """A checkpoint cut short (disk full, killed mid-write) never stays under its final name: renamed to
    NAME.partial, so nothing mistakes it for a finished LoRA."""
    from ..models.checkpoint import ModelError, read_safetensors_header

    moved = []
    for name in plan.saves:
        path = output_dir / name
        if path.suffix != ".safetensors" or not path.is_file():
            continue
        try:
            read_safetensors_header(path)
        except ModelError:
            with contextlib.suppress(OSError):
                path.rename(path.with_name(path.name + ".partial"))
                moved.append(path.name + ".partial")
    return moved


def _record_crash(spec: Spec, r: _Resolved, folder: RunFolder, record: dict[str, Any], exc: BaseException) -> None:
    """The final state of a run that ended in the wrapper itself (disk full, a bug, Ctrl-C before launch)."""
    import traceback

    folder.close()
    if isinstance(exc, KeyboardInterrupt):
        status, diagnosis = "interrupted", "Interrupted before the trainer finished starting."
    elif isinstance(exc, OSError):
        status, diagnosis = "failed", f"artlab-kohya could not write the run: {_os_error(exc)}."
    else:
        status, diagnosis = "failed", f"artlab-kohya failed: {type(exc).__name__}: {exc} (see wrapper-error.log)."
        with contextlib.suppress(OSError):
            (folder.path / "wrapper-error.log").write_text("".join(traceback.format_exception(exc)), encoding="utf-8")
    output_dir = spec.output.dir or folder.path / "checkpoints"
    partial = _set_aside_partial(output_dir, r.plan)
    record.update({"status": status, "finished": _now(), "diagnosis": diagnosis, "partial": partial})
    with contextlib.suppress(OSError):
        folder.write_result(record)


def run_smoke(install: Install, model_path: Path, tokenizer_dir: Path, spec_path: Path, *, plain: bool | None) -> int:
    """`doctor --smoke`: the smoke spec through the normal run path, offline; returns the exit status.
    An ArtlabError (spec or setup) reaches the CLI's entry point like any other."""
    from ..spec import load_spec

    loaded = load_spec(spec_path)  # its guide warnings (few images, few steps) are expected: not shown
    options = RunOptions(
        runs_root=spec_path.parent / "runs", plain=plain, offline=True, tokenizer_dir=tokenizer_dir, install=install
    )
    return run_spec(loaded, options, Console(stderr=True)).exit_code
