"""`artlab-kohya run`: resolve, record, launch, watch, record the outcome.

The order matters: everything that can fail without a GPU (spec, dataset, install, model,
tokenizer, argument surface) fails before the run folder exists; the folder is written in full
before the trainer starts; the outcome is written however the trainer ends.
"""

from __future__ import annotations

import os
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from rich.console import Console

from .. import __version__, settings
from ..build.command import build_command
from ..build.inputs import ModelChoice, render_checked, render_inputs, resolved_repeats
from ..build.plan import Plan, make_plan, spec_family
from ..errors import ArtlabError
from ..models.hub import ResolvedModel
from ..spec import LoadedSpec
from ..spec.families import Family, script_for
from ..spec.model import Spec
from ..trainer.install import Install
from ..trainer.output import Event, Line, LogRecord, NanLoss, Progress, Step, Stream, TrainingSummary
from ..trainer.process import run_parsed
from .display import Display, EpochRecord
from .folder import LOCK_FILE, RESULT_FILE, RunFolder, redact

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
    family = spec_family(spec, model.family)
    if family is None:
        raise SetupError(f"cannot tell the family of {model.path}; set model.family (sd15, sd2, sd2-v or sdxl)")
    return family


def resolve_model(spec: Spec, offline: bool | None) -> ResolvedModel:
    """The base model pinned: a hub file by commit and sha256, a local file by sha256."""
    from ..models.checkpoint import ModelError, check_model_file
    from ..models.hub import resolve_alias, resolve_hub, resolve_local

    source = spec.model.source
    try:
        if source.type == "local":
            check_model_file(source.path, allow_pickle=spec.model.allow_pickle)
            return resolve_local(source.path, allow_pickle=spec.model.allow_pickle)
        if source.type == "alias":
            return resolve_alias(source.name, offline=offline)
        return resolve_hub(
            source.repo, source.file, source.revision, offline=offline, allow_pickle=spec.model.allow_pickle
        )
    except ModelError as exc:
        raise SetupError(str(exc)) from None


def _install(spec: Spec, options: RunOptions) -> Install:
    from ..trainer.install import InstallError, check_install, require_install

    try:
        if options.install is not None:
            check_install(options.install)
            return options.install
        return require_install(spec)
    except InstallError as exc:
        raise SetupError(str(exc)) from None


def _surface(install: Install, script: str) -> Any:
    """The install's own argument surface (asked of its parser, cached per commit)."""
    from ..trainer.install import InstallError, read_surface

    try:
        return read_surface(install, script)
    except InstallError as exc:
        raise SetupError(str(exc)) from None


def _versions(install: Install) -> dict[str, Any]:
    from ..trainer.install import recorded_versions

    try:
        return dict(recorded_versions(install))
    except Exception as exc:  # noqa: BLE001 - versions are for the record; the run itself will tell
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


def _resolve(loaded: LoadedSpec, options: RunOptions) -> _Resolved:
    from ..models.tokenizers import prepare_tokenizer_cache

    spec = loaded.spec
    plan = make_plan(loaded)
    install = _install(spec, options)
    # Three waits that do not depend on each other, each once per model/environment/commit and cached
    # after: hashing the model, probing the trainer's versions, asking its parser for its arguments.
    with ThreadPoolExecutor(max_workers=2) as pool:
        versions_job = pool.submit(_versions, install)
        surface_jobs = {
            family: pool.submit(_surface, install, script_for(family))
            for family in ([spec.model.family] if spec.model.family != "auto" else [])
        }
        model = resolve_model(spec, options.offline)
        if options.expect_sha256 and model.sha256 != options.expect_sha256:
            raise SetupError(f"{model.path} has sha256 {model.sha256}, not the {options.expect_sha256} of the run")
        family = concrete_family(spec, model)
        script = script_for(family)
        surface = surface_jobs[family].result() if family in surface_jobs else _surface(install, script)
        versions = versions_job.result()
    try:
        tokenizer_dir = options.tokenizer_dir or prepare_tokenizer_cache(
            family, settings.tokenizer_root(), offline=options.offline
        )
    except Exception as exc:  # hub.ModelError
        raise SetupError(str(exc)) from None
    if spec.output.dir is not None:
        clash = [name for name in plan.saves if (spec.output.dir / name).exists()]
        if clash:
            raise SetupError(
                f"{spec.output.dir} already holds {', '.join(clash)}; a run never overwrites checkpoints "
                "(choose another output.name or output.dir, or leave output.dir unset for a fresh run folder)"
            )
    return _Resolved(plan, install, model, family, script, surface, versions, tokenizer_dir)


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
        "argv": argv,
        "env": redact(env_add),
        "seed": spec.training.seed,
        "plan": _plan_record(r.plan),
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
        self._last: tuple[int, float | None] = (-1, None)

    def output(self, stream: Stream, text: str) -> None:
        self.folder.log(stream, text)

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

    def _step(self, step: Step) -> None:
        # each step shows two frames: the first with the previous loss (or none), then its own
        if step.avr_loss is None or step.step <= 0 or (step.step, step.avr_loss) == self._last:
            return
        self._last = (step.step, step.avr_loss)
        per_epoch = self._summary.steps_per_epoch if self._summary else None
        epoch = -(-step.step // per_epoch) if per_epoch else None
        record = {"type": "Step", "epoch": epoch, "step": step.step, "total": step.total}
        self.folder.event(record | {"loss": step.avr_loss, "it_s": step.rate})


def run_spec(loaded: LoadedSpec, options: RunOptions, console: Console | None = None) -> RunOutcome:
    """The whole run; raises SetupError (before any folder exists) or returns how it ended."""
    from .diagnose import diagnose

    console = console or Console(stderr=True)
    spec = loaded.spec
    r = _resolve(loaded, options)

    folder = (
        RunFolder(options.folder)
        if options.folder
        else RunFolder.create(options.runs_root or settings.runs_root(loaded.path), spec.output.name)
    )
    output_dir = spec.output.dir or folder.path / "checkpoints"
    inputs = render_inputs(
        loaded,
        ModelChoice(r.model.path, r.family),
        folder.path,
        output_dir,
        r.tokenizer_dir,
        default_logging=folder.path / "logs",
    )
    render_checked(loaded, inputs, r.surface).write(folder.path)
    argv, env_add = build_command(spec, r.install, folder.path / "config.toml", r.family, offline=True)
    folder.write_text("spec.yaml", loaded.text)
    folder.write_yaml(LOCK_FILE, _lock(loaded, options, r, argv, env_add), LOCK_HEADER)
    started = datetime.now(timezone.utc)
    result: dict[str, Any] = {"status": "running", "started": started.isoformat(timespec="seconds")}
    folder.write_json(RESULT_FILE, result)

    model, install = r.model, r.install
    pin = f"@{model.commit[:12]}" if model.commit else ""
    commit = install.commit[:8] if install.commit else "commit unknown"
    for line in (
        f"run folder: {folder.path}",
        f"model: {model.repo or model.path}{pin} sha256 {model.sha256[:12]} ({r.family})",
        f"sd-scripts: {install.dir} ({commit}), {r.script}",
        f"plan: {r.plan.total_steps} steps, {r.plan.epochs} epochs",
    ):
        console.print(line, highlight=False, soft_wrap=True)

    display = Display(console, options.plain)
    recorder = _Recorder(folder, display, spec.training.stop_on_nan)
    nan_step: int | None = None
    t0 = time.monotonic()
    result["launched_at_unix"] = time.time()  # what the wrapper adds before the trainer starts is measurable
    folder.write_json(RESULT_FILE, result)
    try:
        exit_code = run_parsed(argv, {**os.environ, **env_add}, install.dir, recorder.event, on_output=recorder.output)
    except _StopForNan as stop:
        nan_step, exit_code = stop.step, 1
    finally:
        records = display.finish()
        folder.close()
    interrupted = exit_code in (130, 143) and nan_step is None
    final = output_dir / r.plan.saves[-1]
    verdict = diagnose(
        spec,
        exit_code,
        recorder.events,
        final,
        interrupted=interrupted,
        stopped_for_nan=nan_step,
        kohya_commit=install.commit,
    )
    result.update(
        {
            "status": verdict.status,
            "exit_code": exit_code,
            "finished": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "duration_s": round(time.monotonic() - t0, 1),
            "diagnosis": verdict.diagnosis,
            "problems": list(display.problems),
            "checkpoints": _checkpoint_records(output_dir, r.plan, records),
            "final": str(final) if final.exists() else None,
        }
    )
    folder.write_json(RESULT_FILE, result)
    style = {"succeeded": "green", "interrupted": "yellow"}.get(verdict.status, "red")
    console.print(f"[{style}]{verdict.status}[/{style}]: {folder.path}", highlight=False, soft_wrap=True)
    if verdict.diagnosis:
        console.print(verdict.diagnosis, highlight=False, soft_wrap=True)
    code = exit_code if verdict.status != "failed" or exit_code != 0 else 1
    return RunOutcome(verdict.status, 130 if interrupted else code, folder.path, verdict.diagnosis)


def run_smoke(install: Install, model_path: Path, tokenizer_dir: Path, spec_path: Path, *, plain: bool | None) -> int:
    """`doctor --smoke`: the smoke spec through the normal run path, offline; returns the exit status."""
    from ..spec import SpecError, load_spec

    console = Console(stderr=True)
    try:
        loaded = load_spec(spec_path)  # its guide warnings (few images, few steps) are expected: not shown
        outcome = run_spec(
            loaded,
            RunOptions(
                runs_root=spec_path.parent / "runs",
                plain=plain,
                offline=True,
                tokenizer_dir=tokenizer_dir,
                install=install,
            ),
            console,
        )
    except SpecError as exc:  # PlanError too
        console.print("\n".join(str(i) for i in exc.issues), highlight=False)
        return 2
    except SetupError as exc:
        console.print(f"error: {exc}", highlight=False)
        return 1
    return outcome.exit_code
