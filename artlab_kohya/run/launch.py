"""The launch: `build_command` says what to run (pure, recorded as is); `spawn` runs it as a child
process group and passes its output on as it arrives."""

from __future__ import annotations

import codecs
import os
import selectors
import signal
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from ..build.render import ConcreteFamily, script_for
from ..spec.model import Spec


@dataclass(frozen=True)
class Install:
    """An sd-scripts folder and the Python that runs it."""

    dir: Path
    python: str
    commit: str | None = None


# Environment the trainer needs for its output to be readable live: unbuffered stdout (it is
# block-buffered on a pipe otherwise), wide rich logs (wrapped at 80 columns otherwise), UTF-8.
CHILD_ENV = {"PYTHONUNBUFFERED": "1", "PYTHONIOENCODING": "utf-8", "COLUMNS": "200"}


def build_command(
    spec: Spec, install: Install, config_path: Path, family: ConcreteFamily, *, offline: bool = False
) -> tuple[list[str], dict[str, str]]:
    """argv and the environment variables to add for `accelerate launch <script> --config_file`.

    Every value accelerate would otherwise default (and warn about) is passed, so the argv is the
    whole record of how the trainer was started.
    """
    launch = spec.launch
    argv = [
        install.python, "-m", "accelerate.commands.launch",
        "--num_processes", str(launch.num_processes),
        "--num_machines", "1",
        "--mixed_precision", launch.mixed_precision or spec.training.mixed_precision,
        "--dynamo_backend", "no",
        "--num_cpu_threads_per_process", str(launch.cpu_threads),
    ]  # fmt: skip
    if launch.num_processes > 1:
        argv.append("--multi_gpu")
    if launch.gpu_ids is not None:
        argv += ["--gpu_ids", ",".join(str(g) for g in launch.gpu_ids)]
    argv += [str(install.dir / script_for(family)), "--config_file", str(config_path)]
    env = dict(CHILD_ENV)
    if offline:
        env |= {"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    return argv, env


# --- spawn: the thin wrapper around Popen ------------------------------------------------------

_ESCALATION = (signal.SIGINT, signal.SIGTERM, signal.SIGKILL)


def spawn(
    argv: list[str],
    env: dict[str, str],
    cwd: Path,
    on_output: Callable[[str, str], None],
    *,
    grace: float = 10.0,
) -> int:
    """Run argv in its own process group; call on_output("stdout" | "stderr", text) as bytes arrive.

    Ctrl-C or SIGTERM to us reaches the whole group as SIGINT (sd-scripts stops with a
    KeyboardInterrupt); after `grace` seconds the group gets SIGTERM, after another `grace`
    SIGKILL. A second signal to us escalates at once. The group, not the leader: signalled
    alone, accelerate's launcher exits and orphans the training process, which trains on.
    If the leader exits on its own, what is left of its group gets the same treatment.

    Returns the child's exit status, 128 + signal number if a signal killed it, or
    128 + our signal (130 for Ctrl-C) if we were interrupted. Call it from the main thread.
    """
    received: list[int] = []

    def on_signal(signum: int, frame: object) -> None:
        received.append(signum)

    # Our handlers go in before the fork: a caught signal is reset to SIG_DFL by exec, while an
    # ignored one stays ignored, which is how a background job of a non-interactive shell would
    # pass SIGINT=SIG_IGN to the engine and make Ctrl-C do nothing. (No preexec_fn: it is not
    # safe with threads, and rich's live display runs one.)
    previous = {s: signal.signal(s, on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        proc = subprocess.Popen(
            argv,
            env=env,
            cwd=cwd,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            start_new_session=True,
        )
        try:
            _pump(proc, on_output, received, grace)
            proc.wait()
        except BaseException:
            _signal_group(proc.pid, signal.SIGKILL)
            proc.wait()
            raise
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
    if received:
        return 128 + received[0]
    return 128 - proc.returncode if proc.returncode < 0 else proc.returncode


def _pump(
    proc: subprocess.Popen[bytes], on_output: Callable[[str, str], None], received: list[int], grace: float
) -> None:
    """Read both pipes until they close and the group is gone, escalating signals on the way."""
    with selectors.DefaultSelector() as selector:
        for name, pipe in (("stdout", proc.stdout), ("stderr", proc.stderr)):
            decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
            selector.register(pipe, selectors.EVENT_READ, (name, decoder))  # type: ignore[arg-type]
        try:
            _loop(proc, selector, on_output, received, grace)
        finally:
            for key in list(selector.get_map().values()):
                key.fileobj.close()  # type: ignore[union-attr]


def _loop(
    proc: subprocess.Popen[bytes],
    selector: selectors.BaseSelector,
    on_output: Callable[[str, str], None],
    received: list[int],
    grace: float,
) -> None:
    stage, deadline, handled = -1, float("inf"), 0  # stage: index into _ESCALATION
    while True:
        for key, _ in selector.select(timeout=0.1):
            name, decoder = key.data
            data = os.read(key.fd, 65536)
            if not data:
                selector.unregister(key.fileobj)
                key.fileobj.close()  # type: ignore[union-attr]
            if text := decoder.decode(data, final=not data):
                on_output(name, text)
        proc.poll()
        alive = _signal_group(proc.pid, 0)
        if not alive and not selector.get_map():
            return
        if len(received) > handled:  # a signal to us: the next step at once
            handled = len(received)
            stage = min(stage + 1, len(_ESCALATION) - 1)
            _signal_group(proc.pid, _ESCALATION[stage])
            deadline = time.monotonic() + grace
        elif proc.returncode is not None and stage < 0:  # leader gone, group or pipes still there
            stage, deadline = 0, time.monotonic() + grace
        elif time.monotonic() >= deadline:
            if stage == len(_ESCALATION) - 1:
                return  # killed: what is left are zombies that init has not reaped yet
            stage += 1
            _signal_group(proc.pid, _ESCALATION[stage])
            deadline = time.monotonic() + grace


def _signal_group(pgid: int, signum: int) -> bool:
    """Send signum to the group (0 only asks); False if no process is left in it."""
    try:
        os.killpg(pgid, signum)
    except ProcessLookupError:
        return False
    return True
