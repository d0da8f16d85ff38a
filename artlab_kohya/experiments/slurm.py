"""SLURM: `submit --slurm` turns a spec (or a sweep's runs) into jobs; `runs` asks for their states,
`cancel` calls scancel.

Each run's folder is made at submission, as `run` would name it (runs/<name>/<stamp>-<id>/), holding
spec.yaml, result.json (status `submitted`) and slurm.json: the job id, the script, the spec file, the
overrides and the runs root, everything the job needs to do the run in that folder on its node
(experiments/slurm_job.py). A sweep is one job array (`--array=0,1,...%max_parallel`) whose script
picks its run by SLURM_ARRAY_TASK_ID; its sweep folder (runs/<name>/sweep-<stamp>/) holds sweep.json,
the script and, per task, a link task-<i> to the run's folder, through which SLURM writes each task's
output into its own run folder. A single run's script is kept in its run folder.

SLURM's states come from squeue while it knows the job, then sacct (from the accounting database, or
`sacct --completion` where a cluster only keeps the job completion log), then `scontrol show job`
(finished jobs for a few minutes): each command bounded in time, and their absence said once.
"""

from __future__ import annotations

import json
import os
import secrets
import shlex
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .. import settings
from ..errors import ArtlabError, InputError
from ..files import write_atomic
from ..run.folder import RESULT_FILE

if TYPE_CHECKING:  # listing runs reads slurm.json and asks SLURM without loading the spec package
    from ..spec import LoadedSpec

SLURM_FILE = "slurm.json"
SUBMITTED = "submitted"  # result.json's status from submission until the job starts the run
RUN_SCRIPT = "job.sbatch"
SWEEP_SCRIPT = "sweep.sbatch"
JOB_MODULE = "artlab_kohya.experiments.slurm_job"

# SLURM's job states, as the runs table says them
STATES = {
    "PENDING": "pending",
    "CONFIGURING": "pending",
    "REQUEUED": "pending",
    "REQUEUE_FED": "pending",
    "REQUEUE_HOLD": "pending",
    "RESV_DEL_HOLD": "pending",
    "SUSPENDED": "pending",
    "RUNNING": "running",
    "COMPLETING": "running",
    "STAGE_OUT": "running",
    "SIGNALING": "running",
    "RESIZING": "running",
    "COMPLETED": "completed",
    "FAILED": "failed",
    "NODE_FAIL": "failed",
    "BOOT_FAIL": "failed",
    "OUT_OF_MEMORY": "failed",
    "SPECIAL_EXIT": "failed",
    "REVOKED": "cancelled",
    "CANCELLED": "cancelled",
    "PREEMPTED": "cancelled",
    "DEADLINE": "timeout",
    "TIMEOUT": "timeout",
}
FINAL = {"completed", "failed", "cancelled", "timeout"}


class SlurmError(ArtlabError):
    """sbatch refused a job, a SLURM command is missing or did not answer, a folder has no job."""


# --- calling SLURM's commands ----------------------------------------------------------------------


def slurm(argv: Sequence[str], *, timeout: float | None = None) -> subprocess.CompletedProcess[str]:
    """One SLURM command, bounded in time; SlurmError when it is missing or does not answer."""
    if shutil.which(argv[0]) is None:
        raise SlurmError(f"{argv[0]} not found: SLURM's commands are not installed (or not on PATH) here")
    limit = timeout or settings.SLURM_COMMAND_TIMEOUT
    try:
        return subprocess.run(list(argv), capture_output=True, text=True, timeout=limit, check=False)
    except subprocess.TimeoutExpired:
        raise SlurmError(f"{argv[0]} did not answer within {limit:.0f} s") from None


def hostnames(nodelist: str) -> list[str]:
    """`scontrol show hostnames`: a node list such as node[01-03] as host names, in order."""
    done = slurm(["scontrol", "show", "hostnames", nodelist])
    if done.returncode != 0:
        raise SlurmError(f"scontrol show hostnames {nodelist}: {done.stderr.strip()}")
    return done.stdout.split()


# --- states ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class JobState:
    state: str  # pending, running, completed, failed, cancelled, timeout
    raw: str  # SLURM's word (and reason), e.g. "PENDING (Priority)"
    source: str  # squeue, sacct, scontrol


@dataclass
class States:
    jobs: dict[str, JobState] = field(default_factory=dict)  # by the id asked with
    notes: list[str] = field(default_factory=list)  # what could not be asked, each said once


def _state(word: str, reason: str = "") -> str:
    word = word.split()[0].rstrip("+") if word else ""
    if word == "COMPLETING" and reason == "TimeLimit":
        return "timeout"
    if word == "CANCELLED" and reason == "TimeLimit":
        return "timeout"
    return STATES.get(word, word.lower() or "unknown")


def job_states(jobs: Sequence[tuple[str, str | None]], one_by_one: Collection[str] | None = None) -> States:
    """SLURM's state of each job: (id as submitted, e.g. 12 or 12_3; the raw job id once known). squeue and
    sacct are asked once for all; `scontrol show job`, one call a job, only for those in `one_by_one`
    (default: all) that neither knew."""
    out = States()
    wanted = {job for job, _ in jobs}
    if not wanted:
        return out
    try:
        _from_squeue(sorted(wanted), out)
        left = [(job, raw) for job, raw in jobs if job not in out.jobs]
        if left:
            _from_sacct(left, out)
        for job, _ in jobs:
            if job not in out.jobs and (one_by_one is None or job in one_by_one):
                _from_scontrol(job, out)
    except SlurmError as exc:
        out.notes.append(f"SLURM states not shown: {exc}")
    return out


def _from_squeue(ids: list[str], out: States) -> None:
    done = slurm(["squeue", "-h", "-r", "-o", "%i|%T|%r", "-j", ",".join(ids)])
    # squeue exits 1 with "Invalid job id specified" when none of them is known any more
    for line in done.stdout.splitlines():
        parts = line.strip().split("|")
        if len(parts) == 3 and parts[0] in ids:
            out.jobs[parts[0]] = JobState(_state(parts[1], parts[2]), f"{parts[1]} ({parts[2]})", "squeue")


def _from_sacct(jobs: list[tuple[str, str | None]], out: States) -> None:
    done = slurm(["sacct", "-n", "-P", "-X", "-o", "JobID,State", "-j", ",".join(job for job, _ in jobs)])
    if done.returncode == 0:
        for line in done.stdout.splitlines():
            job, _, word = line.strip().partition("|")
            if job in dict(jobs):
                out.jobs[job] = JobState(_state(word), word, "sacct")
        return
    if "accounting storage is disabled" not in done.stderr + done.stdout:
        return
    # no database: the job completion log (jobcomp/filetxt) knows finished jobs by their raw id only
    raw = {r: job for job, r in jobs if r}
    if not raw:
        return
    done = slurm(["sacct", "--completion", "-n", "-P", "-o", "JobIDRaw,State", "-j", ",".join(raw)])
    for line in done.stdout.splitlines():
        job_raw, _, word = line.strip().partition("|")
        if job_raw in raw:
            out.jobs[raw[job_raw]] = JobState(_state(word), word, "sacct --completion")


def _from_scontrol(job: str, out: States) -> None:
    done = slurm(["scontrol", "show", "job", "-o", job])
    fields = dict(item.split("=", 1) for item in done.stdout.split() if "=" in item)
    if done.returncode == 0 and "JobState" in fields:
        word, reason = fields["JobState"], fields.get("Reason", "")
        out.jobs[job] = JobState(_state(word, reason), f"{word} ({reason})", "scontrol")


def stopped_for_time_limit(job: str) -> bool | None:
    """Whether SLURM is ending (or ended) this job at its time limit; None when SLURM cannot say."""
    try:
        done = slurm(["scontrol", "show", "job", "-o", job], timeout=5)
    except SlurmError:
        return None
    fields = dict(item.split("=", 1) for item in done.stdout.split() if "=" in item)
    if "JobState" not in fields:
        return None
    return fields.get("Reason") == "TimeLimit" or fields["JobState"] == "TIMEOUT"


# --- records ---------------------------------------------------------------------------------------


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def read_record(folder: Path) -> dict[str, Any] | None:
    """A folder's slurm.json (a run's or a sweep's), or None."""
    try:
        data = json.loads((folder / SLURM_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def write_record(folder: Path, data: dict[str, Any]) -> None:
    write_atomic(folder / SLURM_FILE, json.dumps(data, indent=2, ensure_ascii=False) + "\n")


# --- submitting ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ClusterOptions:
    partition: str | None = None
    account: str | None = None
    time: str | None = None  # SLURM's --time: minutes, MM:SS, HH:MM:SS, D-HH...
    gpus_per_job: int = 0  # per node: they become the run's processes (launch.num_processes)
    nodes: int = 1  # machines for one run (launch.num_machines); one artlab-kohya per node through srun
    max_parallel: int | None = None  # an array's % throttle
    sbatch_args: tuple[str, ...] = ()  # more #SBATCH lines, as written
    offline: bool | None = None


@dataclass
class JobRun:
    """One run the job (or array task) does."""

    name: str
    folder: Path
    overrides: tuple[str, ...]  # the command's --set, the matrix's, then the cluster's
    values: dict[str, Any]
    task: int | None  # the array index, for a sweep
    spec: LoadedSpec


@dataclass
class Submission:
    """What `submit` writes and hands to sbatch: the runs, their script, where it is kept."""

    spec: LoadedSpec
    overrides: tuple[str, ...]  # the command's own --set
    runs: list[JobRun]
    runs_root: Path
    options: ClusterOptions
    script_path: Path
    sweep_folder: Path | None  # a sweep's folder; None for a single run
    skipped: list[tuple[str, Path]] = field(default_factory=list)  # (run, folder where it succeeded)
    script: str = ""
    job_id: str | None = None
    made: list[Path] = field(default_factory=list)  # folders submit made, the only ones it may remove


def cluster_overrides(options: ClusterOptions) -> tuple[str, ...]:
    """The spec value the job's shape decides at submission: its GPUs per node are the run's processes.
    With several nodes, the machine count, each node's rank and machine 0's address are set on the
    node, from the job's environment (slurm_job.machine_overrides)."""
    return (f"launch.num_processes={options.gpus_per_job}",) if options.gpus_per_job else ()


def _new_folder(runs_root: Path, name: str) -> Path:
    """A run folder's path as `run` names them (run/folder.py: runs/<name>/<stamp>-<id>); made by submit."""
    return runs_root / name / f"{time.strftime('%Y%m%d-%H%M%S')}-{secrets.token_hex(3)}"


def _refuse_gpu_ids(run: LoadedSpec, name: str) -> None:
    if run.spec.launch.gpu_ids is not None:
        raise InputError(
            f"{name}: launch.gpu_ids is set; under SLURM the job's GPUs are the ones it was given "
            "(CUDA_VISIBLE_DEVICES), so leave launch.gpu_ids unset"
        )


def plan_submission(
    loaded: LoadedSpec,
    overrides: tuple[str, ...],
    options: ClusterOptions,
    runs_root: Path,
    *,
    echo: Callable[[str], None] = lambda line: None,
) -> Submission:
    """The runs to submit, each validated with the cluster's overrides and given its folder, and the job
    script; a sweep's runs whose resolved spec already succeeded are left out, as `sweep` does.
    Nothing is written: `submit` does that."""
    from ..spec.load import load_spec_text
    from .matrix import expand, load_variants
    from .sweep import SWEEP_PREFIX

    extra = cluster_overrides(options)
    matrix = expand(loaded)
    if matrix is None:
        run = load_spec_text(loaded.text, loaded.path, (*overrides, *extra))
        _refuse_gpu_ids(run, run.spec.output.name)
        name = run.spec.output.name
        folder = _new_folder(runs_root, name)
        job = JobRun(name, folder, (*overrides, *extra), {}, None, run)
        single = Submission(loaded, overrides, [job], runs_root, options, folder / RUN_SCRIPT, None)
        single.script = job_script(single, sys.executable)
        return single
    for entry in matrix.entries:
        if entry.path[:2] == ("launch", "num_processes") and extra:
            raise InputError(f"the matrix varies {entry.key}; --gpus-per-job sets it for every run")
    runs, _ = load_variants(loaded, matrix, (*overrides, *extra))
    sweep_folder = runs_root / matrix.base_name / f"{SWEEP_PREFIX}{time.strftime('%Y%m%d-%H%M%S')}"
    submission = Submission(loaded, overrides, [], runs_root, options, sweep_folder / SWEEP_SCRIPT, sweep_folder)
    done = _already_succeeded(matrix.variants, runs, runs_root, options.offline)
    for variant, run in zip(matrix.variants, runs, strict=True):
        _refuse_gpu_ids(run, variant.name)
        if variant.name in done:
            submission.skipped.append((variant.name, done[variant.name]))
            echo(f"skip {variant.name}: already succeeded in {done[variant.name]}")
            continue
        folder = _new_folder(runs_root, variant.name)
        job_overrides = (*overrides, *variant.overrides, *extra)
        submission.runs.append(JobRun(variant.name, folder, job_overrides, variant.values, variant.index, run))
    if submission.runs:
        submission.script = job_script(submission, sys.executable)
    return submission


def _already_succeeded(variants: Sequence[Any], runs: list[LoadedSpec], runs_root: Path, offline: bool | None):
    from ..run.train import SetupError
    from .sweep import resolved_spec, spec_sha256, succeeded_runs

    out: dict[str, Path] = {}
    for variant, run in zip(variants, runs, strict=True):
        done = succeeded_runs(runs_root, variant.name)
        if not done:
            continue
        try:
            folder = done.get(spec_sha256(resolved_spec(run, offline)))
        except SetupError:
            continue  # the job itself will say what is wrong
        if folder is not None:
            out[variant.name] = folder
    return out


def _sbatch_lines(submission: Submission) -> list[str]:
    o = submission.options
    lines = [
        f"--job-name=artlab-{submission.runs[0].name if submission.sweep_folder is None else _sweep_name(submission)}"
    ]
    if submission.sweep_folder is None:
        folder = submission.runs[0].folder
        lines += [f"--output={folder}/slurm.out", f"--error={folder}/slurm.err"]
    else:
        lines += [
            f"--output={submission.sweep_folder}/task-%a/slurm.out",
            f"--error={submission.sweep_folder}/task-%a/slurm.err",
        ]
        tasks = ",".join(str(r.task) for r in submission.runs)
        lines.append(f"--array={tasks}" + (f"%{o.max_parallel}" if o.max_parallel else ""))
    lines += ["--open-mode=append", f"--nodes={o.nodes}", "--ntasks-per-node=1"]
    if o.gpus_per_job:
        lines.append(f"--gpus-per-node={o.gpus_per_job}")
    cpus = max(r.spec.spec.launch.cpu_threads * r.spec.spec.launch.num_processes for r in submission.runs)
    lines.append(f"--cpus-per-task={cpus}")
    for flag, value in (("time", o.time), ("partition", o.partition), ("account", o.account)):
        if value:
            lines.append(f"--{flag}={value}")
    lines += list(o.sbatch_args)
    return lines


def _sweep_name(submission: Submission) -> str:
    assert submission.sweep_folder is not None
    return submission.sweep_folder.parent.name


def job_script(submission: Submission, artlab_python: str) -> str:
    """The job script: its #SBATCH lines, the paths it checks on the node, the run it does."""
    from ..trainer.install import find_install

    first = submission.runs[0]
    install = find_install(first.spec.spec)
    q = shlex.quote
    o = submission.options
    what = f"sweep {_sweep_name(submission)}" if submission.sweep_folder else f"run {first.name}"
    out = [
        "#!/bin/bash",
        f"# artlab-kohya: {what} of {submission.spec.path.resolve()} on SLURM, written by"
        f" `artlab-kohya submit` at {_now()}.",
        "# Each run is `artlab-kohya run` of that spec with the run's --set values, in the run folder made at",
        "# submission (slurm.json there holds them); the job needs the submitting machine's files at the",
        "# same paths (a shared filesystem), which it checks first.",
    ]
    out += [f"#SBATCH {line}" for line in _sbatch_lines(submission)]
    out += [
        "set -u",
        "",
        f"ARTLAB_PYTHON={q(artlab_python)}   # artlab-kohya's own Python",
        f"TRAINER_PYTHON={q(install.python)}   # the spec's trainer (kohya.python)",
        f"KOHYA_DIR={q(str(install.dir))}   # the spec's sd-scripts (kohya.dir)",
        f'export {settings.KOHYA_DIR}="$KOHYA_DIR" {settings.KOHYA_PYTHON}="$TRAINER_PYTHON"',
    ]
    if submission.sweep_folder is None:
        out.append(f"RUN={q(str(first.folder))}")
    else:
        out.append('case "${SLURM_ARRAY_TASK_ID:-}" in')
        for run in submission.runs:
            values = ", ".join(f"{k}={json.dumps(v)}" for k, v in run.values.items())
            out.append(f"  {run.task}) RUN={q(str(run.folder))} ;;  # {run.name}: {values}")
        out.append('  *) echo "artlab-kohya: no run for array task ${SLURM_ARRAY_TASK_ID:-(none)}" >&2; exit 2 ;;')
        out.append("esac")
    step = '"$ARTLAB_PYTHON" -m ' + JOB_MODULE + ' "$RUN"'
    if o.nodes > 1:  # one artlab-kohya (one accelerate launch) per node; each finds its rank in SLURM_NODEID
        step = f"srun --nodes={o.nodes} --ntasks-per-node=1 --kill-on-bad-exit=1 {step}"
    out += [
        "",
        "fail() {  # the run ends failed with this message: in result.json and in the job's error file",
        '  echo "artlab-kohya: $1" >&2',
        '  if [ -d "$RUN" ]; then',
        "    message=$(printf '%s' \"$1\" | sed 's/[\"\\\\]/\\\\&/g')",
        '    printf \'{"status": "failed", "exit_code": 1, "diagnosis": "%s", "finished": "%s"}\\n\' \\',
        '      "$message" "$(date -u +%Y-%m-%dT%H:%M:%S+00:00)" > "$RUN/.result.json.job" &&',
        '    mv "$RUN/.result.json.job" "$RUN/result.json"',
        "  fi",
        "  exit 1",
        "}",
        'for path in "$ARTLAB_PYTHON" "$TRAINER_PYTHON" "$KOHYA_DIR" "$RUN"; do',
        '  [ -e "$path" ] || fail "$path does not exist on $(hostname); the job needs the files of the machine that'
        ' submitted it, at the same paths (a shared filesystem)"',
        "done",
        "# SLURM sends SIGTERM at the time limit, on scancel and on preemption, then SIGKILL after KillWait:",
        "# the run records how it ended; the trap lets this script go on to check that it did.",
        "trap 'echo \"artlab-kohya: SIGTERM from SLURM\" >&2' TERM",
        step,
        "status=$?",
        f'"$ARTLAB_PYTHON" -m {JOB_MODULE} --after "$RUN" "$status"   # result.json final, whatever happened',
        'exit "$status"',
        "",
    ]
    return "\n".join(out)


def submit(submission: Submission) -> Submission:
    """Write the runs' folders and the script, then `sbatch --parsable` it; the job id recorded in each
    run's slurm.json (and the sweep's sweep.json). Undone when sbatch refuses."""
    try:
        _write(submission)
        done = slurm(["sbatch", "--parsable", str(submission.script_path)])
        if done.returncode != 0:
            raise SlurmError(f"sbatch refused the job: {(done.stderr or done.stdout).strip()}")
    except BaseException:
        _remove(submission)
        raise
    submission.job_id = done.stdout.strip().split(";")[0]
    _record_ids(submission)
    return submission


def _write(submission: Submission) -> None:
    from .sweep import SweepFolder

    sweep = submission.sweep_folder
    if sweep is not None:
        sweep.mkdir(parents=True, exist_ok=False)
        submission.made.append(sweep)
    for run in submission.runs:
        run.folder.mkdir(parents=True, exist_ok=False)
        submission.made.append(run.folder)
        write_atomic(run.folder / "spec.yaml", submission.spec.text)
        write_atomic(run.folder / RESULT_FILE, json.dumps({"status": SUBMITTED, "submitted": _now()}) + "\n")
        write_record(run.folder, _run_record(submission, run))
        if sweep is not None:
            os.symlink(os.path.relpath(run.folder, sweep), sweep / f"task-{run.task}")
    submission.script_path.write_text(submission.script, encoding="utf-8")
    if sweep is not None:
        data = {
            "version": 1,
            "spec_file": str(submission.spec.path.resolve()),
            "name": sweep.parent.name,
            "created": _now(),
            "status": SUBMITTED,
            "overrides": list(submission.overrides),
            "slurm": {"script": SWEEP_SCRIPT},
        }
        folder = SweepFolder(sweep, data)
        from .matrix import expand

        matrix = expand(submission.spec)
        assert matrix is not None
        data["matrix"] = matrix.keys
        submitted = {r.name: r for r in submission.runs}
        skipped = dict(submission.skipped)
        data["runs"] = [
            {
                "name": v.name,
                "values": v.values,
                "overrides": list(v.overrides),
                "status": SUBMITTED if v.name in submitted else "skipped",
                "folder": folder.relative(submitted[v.name].folder if v.name in submitted else skipped[v.name]),
                "attempts": [],
            }
            for v in matrix.variants
        ]
        folder.save()


def _run_record(submission: Submission, run: JobRun) -> dict[str, Any]:
    o = submission.options
    return {
        "version": 1,
        "job_id": None,
        "task": run.task,
        "script": str(submission.script_path),
        "sweep": str(submission.sweep_folder) if submission.sweep_folder else None,
        "spec_file": str(submission.spec.path.resolve()),
        "overrides": list(run.overrides),
        "runs_root": str(submission.runs_root),
        "offline": o.offline,
        "submitted": _now(),
        "cluster": {
            "partition": o.partition,
            "account": o.account,
            "time": o.time,
            "gpus_per_job": o.gpus_per_job,
            "nodes": o.nodes,
            "sbatch_args": list(o.sbatch_args),
        },
        "attempts": [],
    }


def _record_ids(submission: Submission) -> None:
    assert submission.job_id is not None
    for run in submission.runs:
        record = read_record(run.folder) or _run_record(submission, run)
        record["job_id"] = submission.job_id if run.task is None else f"{submission.job_id}_{run.task}"
        write_record(run.folder, record)
    if submission.sweep_folder is not None:
        from .records import read_sweep
        from .sweep import SweepFolder

        folder = SweepFolder(submission.sweep_folder, read_sweep(submission.sweep_folder))
        folder.data["slurm"]["job_id"] = submission.job_id
        folder.save()


def _remove(submission: Submission) -> None:
    """Undo a submission sbatch refused: the folders it made hold only what it wrote."""
    for folder in reversed(submission.made):
        shutil.rmtree(folder, ignore_errors=True)
        if folder.parent.is_dir() and not any(folder.parent.iterdir()):
            folder.parent.rmdir()


# --- cancelling ------------------------------------------------------------------------------------


def _submitted_runs(path: Path) -> list[Path]:
    """The run folders of a run or sweep folder that SLURM was given."""
    from .records import is_sweep_folder, read_sweep

    if not is_sweep_folder(path):
        return [path]
    data = read_sweep(path)
    return [(path / e["folder"]).resolve() for e in data["runs"] if e.get("folder") and e.get("status") == SUBMITTED]


def jobs_of(path: Path) -> list[str]:
    """The SLURM job ids a run folder or a sweep folder was submitted as."""
    record = read_record(path)
    if record is None:
        from .records import is_sweep_folder, read_sweep

        if is_sweep_folder(path):
            record = read_sweep(path).get("slurm")
    if not isinstance(record, dict) or not record.get("job_id"):
        raise SlurmError(f"{path} was not submitted to SLURM (no job id in its {SLURM_FILE} or sweep.json)")
    return [str(record["job_id"])]


def cancel(path: Path) -> dict[str, int]:
    """scancel the job of a run folder (or the array of a sweep folder). Runs whose job had not started
    (result.json still `submitted`) are recorded as interrupted: no job will write their end. Returns
    {job id: how many runs were so recorded}."""
    jobs = jobs_of(path)
    done = slurm(["scancel", *jobs])
    if done.returncode != 0:
        raise SlurmError(f"scancel {' '.join(jobs)}: {(done.stderr or done.stdout).strip()}")
    marked = 0
    for folder in _submitted_runs(path):
        try:
            result = json.loads((folder / RESULT_FILE).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        if result.get("status") == SUBMITTED:
            result.update(
                {
                    "status": "interrupted",
                    "finished": _now(),
                    "diagnosis": "Cancelled (scancel) before the job started.",
                }
            )
            write_atomic(folder / RESULT_FILE, json.dumps(result, indent=2) + "\n")
            marked += 1
    return {job: marked for job in jobs}
