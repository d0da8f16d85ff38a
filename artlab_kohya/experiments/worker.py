"""One run of a sweep in a process of its own (`sweep --gpus`): run_spec calls the trainer from its
main thread and handles Ctrl-C there, so runs side by side each need a process.

    python -m artlab_kohya.experiments.worker JOB.json

JOB.json holds the spec's text and path, the overrides of this run, the runs root and where to write
the outcome ({status, exit_code, folder, diagnosis} or {status: error, error}). Exits with the run's
exit status. The sweep starts it in a session of its own and passes Ctrl-C on to it; should the sweep die
without doing so (SIGKILL, a crash), the kernel sends the worker the same Ctrl-C (Linux's parent-death
signal), so no run trains on unrecorded, and a resumed sweep does not train it twice.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

from ..files import write_atomic


def start(job: dict[str, Any], job_path: Path, log: Path) -> subprocess.Popen[bytes]:
    """Write JOB.json and start a worker on it in a session of its own (Ctrl-C reaches its caller, which
    passes it on once), its output appended to `log`."""
    job_path.write_text(json.dumps({**job, "parent": os.getpid()}), encoding="utf-8")
    with log.open("ab") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "artlab_kohya.experiments.worker", str(job_path)],
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


PR_SET_PDEATHSIG = 1  # prctl(2)


def stop_with_parent(parent: int | None) -> bool:
    """Have the kernel send this process SIGINT when `parent` dies (Linux; elsewhere nothing is armed);
    False when it has already died."""
    if sys.platform.startswith("linux"):
        with contextlib.suppress(OSError, AttributeError):  # no prctl in this libc: nothing armed
            ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGINT, 0, 0, 0)
    return parent is None or os.getppid() == parent


def main(argv: list[str]) -> int:
    from ..errors import ArtlabError
    from ..run.train import RunOptions, run_spec
    from ..spec.load import load_spec_text
    from .report import write_run_report

    job = json.loads(Path(argv[0]).read_text(encoding="utf-8"))
    outcome_path = Path(job["outcome"])
    if not stop_with_parent(job.get("parent")):  # the sweep died before this worker got going
        write_atomic(outcome_path, json.dumps({"status": "interrupted", "exit_code": 130}))
        return 130
    try:
        loaded = load_spec_text(job["spec_text"], Path(job["spec_path"]), job["overrides"])
        outcome = run_spec(loaded, RunOptions(runs_root=Path(job["runs_root"]), plain=True, offline=job["offline"]))
    except ArtlabError as exc:
        write_atomic(outcome_path, json.dumps({"status": "error", "error": str(exc)}))
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        write_atomic(outcome_path, json.dumps({"status": "interrupted", "exit_code": 130}))
        return 130
    record = {
        "status": outcome.status,
        "exit_code": outcome.exit_code,
        "folder": str(outcome.folder),
        "diagnosis": outcome.diagnosis,
    }
    write_atomic(outcome_path, json.dumps(record))
    if job.get("no_report"):  # tune's short timed runs: nobody reads their page
        return outcome.exit_code
    try:
        write_run_report(outcome.folder)
    except Exception as exc:  # noqa: BLE001 - the report is a view; it never changes how the run ended
        print(f"warning: no report.html: {exc}", file=sys.stderr)
    return outcome.exit_code


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
