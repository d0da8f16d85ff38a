"""The job's side of `submit --slurm`: on a node, the run in the folder made at submission.

    python -m artlab_kohya.experiments.slurm_job RUN_DIR              the run (the job script's step)
    python -m artlab_kohya.experiments.slurm_job --after RUN_DIR RC   then: result.json final, whatever happened

The run is `run`'s (run.train.run_spec) on the spec text kept in RUN_DIR/spec.yaml with the overrides in
RUN_DIR/slurm.json, in RUN_DIR itself. What SLURM decides enters as overrides: with several nodes, each
node's launch.machine_rank (SLURM_NODEID), launch.num_machines (SLURM_NNODES) and the main address (the
first host of SLURM_JOB_NODELIST); machine 0 writes RUN_DIR, machine N its own RUN_DIR/machine-N/ (its
run records, and a slurm.json of its attempts: node, rank).

SLURM ends a job with SIGTERM (time limit, scancel, preemption), SIGKILL after KillWait. run_spec records
that as interrupted; here a stop at the time limit becomes `failed`, with that diagnosis. A requeued job
(SLURM_RESTART_COUNT) keeps the previous attempt's records in RUN_DIR/attempt-N/ and resumes from the
newest state folder when the spec saves state (kohya.extra_args.save_state), else starts over.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import sys
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from .. import settings
from ..files import write_atomic
from ..run.folder import EVENTS_FILE, LOCK_FILE, RESULT_FILE
from .slurm import SUBMITTED, hostnames, read_record, stopped_for_time_limit, write_record

MAIN_PORT_BASE = 29500  # accelerate's default port; a job adds its id (mod 1000) so jobs sharing a node differ
MOVED = (EVENTS_FILE, "stdout.log", "stderr.log", "report.html")  # the next attempt starts these anew
COPIED = (LOCK_FILE, RESULT_FILE)  # kept in place until the next attempt replaces them: the folder stays a run


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def _say(line: str) -> None:
    print(f"artlab-kohya: {line}", file=sys.stderr, flush=True)


def machine_overrides(job: dict[str, str], launch: Any, first_host: str | None) -> tuple[str, ...]:
    """The launch values SLURM decides for a run over several nodes (none on one node): the machine
    count, this node's rank, the address and port of machine 0 (the spec's own, when it gives them)."""
    nodes = int(job.get(settings.SLURM_NNODES, "1") or 1)
    if nodes <= 1:
        return ()
    out = [f"launch.num_machines={nodes}", f"launch.machine_rank={int(job.get(settings.SLURM_NODEID, '0') or 0)}"]
    if launch.main_process_ip is None and first_host:
        out.append(f"launch.main_process_ip={json.dumps(first_host)}")
    if launch.main_process_port is None:
        job_id = int(job.get(settings.SLURM_JOB_ID, "0") or 0)
        out.append(f"launch.main_process_port={MAIN_PORT_BASE + job_id % 1000}")
    return tuple(out)


def latest_state(output_dir: Path, name: str) -> Path | None:
    """The newest state folder sd-scripts saved (NAME-000003-state, NAME-step00000100-state, NAME-state),
    by the step its train_state.json records."""
    best: tuple[int, float, Path] | None = None
    for path in output_dir.glob(f"{name}*-state"):
        try:
            step = int(json.loads((path / "train_state.json").read_text(encoding="utf-8")).get("current_step", 0))
        except (OSError, ValueError, AttributeError):
            continue
        key = (step, path.stat().st_mtime, path)
        best = key if best is None or key[:2] > best[:2] else best
    return best[2] if best else None


def _archive(folder: Path, attempt: int) -> Path:
    """A requeued job's earlier attempt: its records moved to attempt-N/ (checkpoints and states stay)."""
    target = folder / f"attempt-{attempt}"
    target.mkdir(exist_ok=True)
    for name in COPIED:
        if (folder / name).exists():
            shutil.copy2(folder / name, target / name)
    for name in MOVED:
        if (folder / name).exists():
            os.replace(folder / name, target / name)
    return target


def _fail(folder: Path, diagnosis: str, exit_code: int = 1, **more: Any) -> None:
    result = _read_result(folder)
    result.update({"status": "failed", "exit_code": exit_code, "diagnosis": diagnosis, "finished": _now(), **more})
    write_atomic(folder / RESULT_FILE, json.dumps(result, indent=2, ensure_ascii=False) + "\n")


def _read_result(folder: Path) -> dict[str, Any]:
    try:
        data = json.loads((folder / RESULT_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def time_limit_diagnosis(record: dict[str, Any]) -> str:
    limit = (record.get("cluster") or {}).get("time")
    return (
        f"SLURM stopped the job at its time limit{f' (--time {limit})' if limit else ''}: the trainer got SIGTERM "
        "before it finished. Finished checkpoints are kept. Submit with a longer --time, or save state "
        "(kohya.extra_args.save_state: true) so that a requeued job resumes instead of starting over."
    )


def run_job(folder: Path) -> int:
    from ..errors import ArtlabError
    from ..run.train import RunOptions, run_spec
    from ..spec.load import load_spec_text
    from .report import write_run_report

    record = read_record(folder)
    if record is None:
        _say(f"{folder} has no readable slurm.json; it was not made by `artlab-kohya submit`")
        return 2
    job = settings.slurm_job()
    rank = int(job.get(settings.SLURM_NODEID, "0") or 0)
    restart = int(job.get(settings.SLURM_RESTART_COUNT, "0") or 0)
    target = folder if rank == 0 else folder / f"machine-{rank}"
    target.mkdir(exist_ok=True)
    spec_path, text = Path(record["spec_file"]), (folder / "spec.yaml").read_text(encoding="utf-8")
    overrides = list(record.get("overrides") or [])
    try:
        base = load_spec_text(text, spec_path, overrides)
        first = None
        if int(job.get(settings.SLURM_NNODES, "1") or 1) > 1 and base.spec.launch.main_process_ip is None:
            first = hostnames(job[settings.SLURM_JOB_NODELIST])[0]
        overrides += machine_overrides(job, base.spec.launch, first)
        attempt: dict[str, Any] = {
            "job": job.get(settings.SLURM_JOB_ID),
            "restart": restart,
            "node": socket.gethostname(),
            "slurm_node": job.get(settings.SLURMD_NODENAME),
            "rank": rank,
            "started": _now(),
        }
        mine = record if rank == 0 else read_record(target) or {"version": 1, "job_id": record.get("job_id")}
        mine.setdefault("attempts", [])
        if restart > 0 or (target / LOCK_FILE).exists():  # an earlier attempt ran: requeued
            if (target / LOCK_FILE).exists():  # this machine's records of it
                attempt["previous"] = str(_archive(target, len(mine["attempts"])).name)
            state = None  # every machine resumes from the state machine 0 saved, or none does
            if base.spec.kohya.extra_args.get("save_state"):
                state = latest_state(base.spec.output.dir or folder / "checkpoints", base.spec.output.name)
            if state is not None:
                overrides.append(f"kohya.extra_args.resume={json.dumps(str(state))}")
                attempt["resumed_from"] = str(state)
                _say(f"requeued (restart {restart}): resuming from {state}")
            else:
                why = (
                    "no state was saved yet"
                    if base.spec.kohya.extra_args.get("save_state")
                    else ("the spec saves no state (kohya.extra_args.save_state: true would let it resume)")
                )
                attempt["resumed_from"] = None
                _say(f"requeued (restart {restart}): the run starts over; {why}")
        if rank == 0:
            record["raw_job_id"] = job.get(settings.SLURM_JOB_ID)
        else:
            mine["rank"] = rank
        mine["attempts"].append(attempt)
        write_record(target, mine)  # machine 0's in the run's slurm.json, each other's in machine-N/: one writer a file
        loaded = load_spec_text(text, spec_path, overrides)
        job_id = job.get(settings.SLURM_JOB_ID)

        def why_stopped() -> dict[str, Any] | None:
            if job_id and stopped_for_time_limit(job_id):
                return {"status": "failed", "diagnosis": time_limit_diagnosis(record), "slurm_state": "timeout"}
            return None

        options = RunOptions(
            runs_root=Path(record["runs_root"]),
            plain=True,
            offline=record.get("offline"),
            folder=target,
            why_stopped=why_stopped,
        )
        outcome = run_spec(loaded, options)
    except ArtlabError as exc:
        for line in exc.lines():
            print(line, file=sys.stderr, flush=True)
        _fail(target, "\n".join(exc.lines()), exc.exit_code, slurm_job=job.get(settings.SLURM_JOB_ID))
        return exc.exit_code
    code = outcome.exit_code
    if rank == 0:
        try:
            write_run_report(folder)
        except Exception as exc:  # noqa: BLE001 - the report is a view; it never changes how the run ended
            _say(f"warning: no report.html: {exc}")
    return code


def after(folder: Path, status: int) -> int:
    """After the job's step: a run that could not record its end (killed, or it never started) ends
    failed here, with what SLURM says about the job; so does each other machine's (machine-N/)."""
    record = read_record(folder) or {}
    job = os.environ.get(settings.SLURM_JOB_ID)
    timed_out: bool | None = None
    for target in (folder, *sorted(folder.glob("machine-*"))):
        if _read_result(target).get("status") not in (None, SUBMITTED, "running"):
            continue
        if timed_out is None:
            timed_out = bool(job and stopped_for_time_limit(job))
        if timed_out:
            _fail(target, time_limit_diagnosis(record), status, slurm_state="timeout")
        else:
            _fail(
                target,
                f"The job's step ended with status {status} before the run recorded its end; see slurm.err.",
                status,
            )
        _say(f"{target}: recorded as failed")
    return 0


def main(argv: list[str]) -> int:
    if argv[:1] == ["--after"] and len(argv) == 3:
        return after(Path(argv[1]), int(argv[2]))
    if len(argv) != 1:
        _say("usage: python -m artlab_kohya.experiments.slurm_job RUN_DIR | --after RUN_DIR STATUS")
        return 2
    started = time.monotonic()
    code = run_job(Path(argv[0]))
    _say(f"job step done in {time.monotonic() - started:.0f} s, exit status {code}")
    return code


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
