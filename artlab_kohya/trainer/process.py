"""The trainer's process: `spawn` runs a command as its own process group and passes its output on
as it arrives; `run_parsed` adds the parser, so callers see typed events. Training and captioning
both run through here."""

from __future__ import annotations

import codecs
import os
import selectors
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

from .output import Event, Parser, Stream

OnOutput = Callable[[Stream, str], None]
OnEvent = Callable[[Event], None]

# Environment the trainer needs for its output to be readable live: unbuffered stdout (it is
# block-buffered on a pipe otherwise), wide rich logs (wrapped at 80 columns otherwise), UTF-8.
CHILD_ENV = {"PYTHONUNBUFFERED": "1", "PYTHONIOENCODING": "utf-8", "COLUMNS": "200"}


def run_parsed(
    argv: list[str], env: dict[str, str], cwd: Path, on_event: OnEvent, *, on_output: OnOutput | None = None
) -> int:
    """spawn, with every chunk of output (also passed raw to on_output) parsed into events for on_event."""
    parser = Parser()

    def forward(stream: Stream, text: str) -> None:
        if on_output is not None:
            on_output(stream, text)
        for event in parser.feed(stream, text):
            on_event(event)

    code = spawn(argv, env, cwd, forward)
    for event in parser.close():
        on_event(event)
    return code


_ESCALATION = (signal.SIGINT, signal.SIGTERM, signal.SIGKILL)


def spawn(
    argv: list[str],
    env: dict[str, str],
    cwd: Path,
    on_output: OnOutput,
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


def _pump(proc: subprocess.Popen[bytes], on_output: OnOutput, received: list[int], grace: float) -> None:
    """Read both pipes until they close and the group is gone, escalating signals on the way."""
    with selectors.DefaultSelector() as selector:
        for name, pipe in (("stdout", proc.stdout), ("stderr", proc.stderr)):
            assert pipe is not None  # Popen(stdout=PIPE, stderr=PIPE)
            decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
            selector.register(pipe, selectors.EVENT_READ, (name, decoder, pipe))
        try:
            _loop(proc, selector, on_output, received, grace)
        finally:
            for key in list(selector.get_map().values()):
                key.data[2].close()


def _loop(
    proc: subprocess.Popen[bytes],
    selector: selectors.BaseSelector,
    on_output: OnOutput,
    received: list[int],
    grace: float,
) -> None:
    stage, deadline, handled = -1, float("inf"), 0  # stage: index into _ESCALATION
    while True:
        for key, _ in selector.select(timeout=0.1):
            name, decoder, pipe = key.data
            data = os.read(key.fd, 65536)
            if not data:
                selector.unregister(pipe)
                pipe.close()
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
