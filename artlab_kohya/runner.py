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

from . import __version__
from .display import Display, EpochRecord
from .hub import ResolvedModel
from .launch import Install, build_command, spawn
from .plan import Plan, make_plan
from .prepare import ALIAS_FAMILY, ModelChoice, render_checked, render_inputs, resolved_repeats
from .progress import LogRecord, NanLoss, Parser, Progress, Step, TrainingSummary
from .render import ConcreteFamily, script_for
from .runs import LOCK_FILE, RESULT_FILE, RunFolder, default_runs_root, redact
from .spec import LoadedSpec
from .spec.model import Spec

LOCK_HEADER = (
    "# artlab-kohya run lock: the spec fully resolved, and what ran it. `artlab-kohya rerun RUN_DIR`\n"
    "# runs it again (same model file by sha256, same settings); written before the trainer started.\n"
)


class SetupError(Exception):
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


def tokenizer_root(cache: Path) -> Path:
    """$ARTLAB_KOHYA_TOKENIZERS (e.g. an offline kohya setup's folder), else the cache's."""
    env = os.environ.get("ARTLAB_KOHYA_TOKENIZERS")
    return Path(env).expanduser() if env else cache / "tokenizers"


def concrete_family(spec: Spec, model: ResolvedModel) -> ConcreteFamily:
    if spec.model.family != "auto":
        return spec.model.family
    source = spec.model.source
    if source.type == "alias":
        return ALIAS_FAMILY[source.name]
    if model.family is None:
        raise SetupError(f"cannot tell the family of {model.path}; set model.family (sd15, sd2, sd2-v or sdxl)")
    return "sd2-v" if model.family == "sd2" and spec.model.v_parameterization else model.family


def resolve_model(spec: Spec, offline: bool | None) -> ResolvedModel:
    """The base model pinned: a hub file by commit and sha256, a local file by sha256."""
    from .hub import ModelError, check_model_file, resolve_alias, resolve_hub, resolve_local

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
    from .kohya import InstallError, check_install, require_install

    try:
        if options.install is not None:
            check_install(options.install)
            return options.install
        return require_install(spec)
    except InstallError as exc:
        raise SetupError(str(exc)) from None


def _surface(install: Install, script: str) -> Any:
    """The install's own argument surface (asked of its parser, cached per commit)."""
    from .kohya import InstallError, read_surface

    try:
        return read_surface(install, script)
    except InstallError as exc:
        raise SetupError(str(exc)) from None


def _versions(install: Install) -> dict[str, Any]:
    from .kohya import recorded_versions

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
    from .hub import sha256_file

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


def run_spec(loaded: LoadedSpec, options: RunOptions, console: Console | None = None) -> RunOutcome:
    """The whole run; raises SetupError (before any folder exists) or returns how it ended."""
    from .diagnose import diagnose
    from .hub import cache_root, prepare_tokenizer_cache

    console = console or Console(stderr=True)
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
            family, tokenizer_root(cache_root()), offline=options.offline
        )
    except Exception as exc:  # hub.ModelError
        raise SetupError(str(exc)) from None
    output_dir = spec.output.dir
    if output_dir is not None:
        clash = [name for name in plan.saves if (output_dir / name).exists()]
        if clash:
            raise SetupError(
                f"{output_dir} already holds {', '.join(clash)}; a run never overwrites checkpoints "
                "(choose another output.name or output.dir, or leave output.dir unset for a fresh run folder)"
            )

    runs_root = options.runs_root or default_runs_root(loaded.path)
    folder = RunFolder.create(runs_root, spec.output.name)
    output_dir = output_dir or folder.path / "checkpoints"
    inputs = render_inputs(
        loaded,
        ModelChoice(model.path, family),
        folder.path,
        output_dir,
        tokenizer_dir,
        default_logging=folder.path / "logs",
    )
    rendered = render_checked(loaded, inputs, surface)
    rendered.write(folder.path)
    argv, env_add = build_command(spec, install, folder.path / "config.toml", family, offline=True)
    repeats, tokens = resolved_repeats(loaded)
    folder.write_text("spec.yaml", loaded.text)
    lock = {
        "artlab_kohya": __version__,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "spec_file": str(loaded.path.resolve()),
        "overrides": [o.text for o in loaded.overrides],
        "rerun_of": str(options.rerun_of) if options.rerun_of else None,
        "spec": locked_spec(spec, model, family, repeats, tokens, install),
        "model": {
            "path": str(model.path),
            "source": model.source,
            "repo": model.repo,
            "file": model.filename,
            "revision_requested": model.revision_requested,
            "commit": model.commit,
            "sha256": model.sha256,
            "size": model.size,
            "family": family,
        },
        "kohya": {"dir": str(install.dir), "commit": install.commit, "script": script, "python": install.python},
        "trainer": versions,
        "tokenizer_cache_dir": str(tokenizer_dir),
        "argv": argv,
        "env": redact(env_add),
        "seed": spec.training.seed,
        "plan": _plan_record(plan),
    }
    folder.write_yaml(LOCK_FILE, lock, LOCK_HEADER)
    started = datetime.now(timezone.utc)
    result: dict[str, Any] = {"status": "running", "started": started.isoformat(timespec="seconds")}
    folder.write_json(RESULT_FILE, result)

    pin = f"@{model.commit[:12]}" if model.commit else ""
    commit = install.commit[:8] if install.commit else "commit unknown"
    for line in (
        f"run folder: {folder.path}",
        f"model: {model.repo or model.path}{pin} sha256 {model.sha256[:12]} ({family})",
        f"sd-scripts: {install.dir} ({commit}), {script}",
        f"plan: {plan.total_steps} steps, {plan.epochs} epochs",
    ):
        console.print(line, highlight=False, soft_wrap=True)

    display = Display(console, options.plain)
    parser = Parser()
    events: list[object] = []
    summary: list[TrainingSummary] = []
    last_step: list[tuple[int, float | None]] = [(-1, None)]

    def on_event(event: object) -> None:
        events.append(event)
        display.handle(event)  # type: ignore[arg-type]
        if isinstance(event, TrainingSummary):
            summary.append(event)
        if isinstance(event, Step):
            # each step shows two frames: the first with the previous loss (or none), then its own
            if event.avr_loss is not None and (event.step, event.avr_loss) != last_step[0] and event.step > 0:
                last_step[0] = (event.step, event.avr_loss)
                per_epoch = summary[-1].steps_per_epoch if summary else None
                epoch = -(-event.step // per_epoch) if per_epoch else None
                folder.event(
                    {
                        "type": "Step",
                        "epoch": epoch,
                        "step": event.step,
                        "total": event.total,
                        "loss": event.avr_loss,
                        "it_s": event.rate,
                    }
                )
        elif (
            not isinstance(event, Progress)
            and not (isinstance(event, LogRecord) and event.level not in ("WARNING", "ERROR", "CRITICAL"))
            and type(event).__name__ != "Line"
        ):
            folder.event(event)
        if isinstance(event, NanLoss) and spec.training.stop_on_nan:
            raise _StopForNan(event.step)

    def on_output(stream: str, text: str) -> None:
        folder.log(stream, text)
        for event in parser.feed(stream, text):  # type: ignore[arg-type]
            on_event(event)

    nan_step: int | None = None
    t0 = time.monotonic()
    result["launched_at_unix"] = time.time()  # what the wrapper adds before the trainer starts is measurable
    folder.write_json(RESULT_FILE, result)
    try:
        exit_code = spawn(argv, {**os.environ, **env_add}, install.dir, on_output)
        for event in parser.close():
            on_event(event)
    except _StopForNan as stop:
        nan_step, exit_code = stop.step, 1
    finally:
        records = display.finish()
        folder.close()
    interrupted = exit_code in (130, 143) and nan_step is None
    final = output_dir / plan.saves[-1]
    verdict = diagnose(
        spec,
        exit_code,
        events,
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
            "problems": [e for e in display.problems],
            "checkpoints": _checkpoint_records(output_dir, plan, records),
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
    from .spec import SpecError, load_spec

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
