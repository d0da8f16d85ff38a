"""Replay a recorded sd-scripts run as a real process, for the launcher's tests.

    python tests/replay.py tests/data/transcripts/lora [--duration 0.5]
    python tests/replay.py tests/data/streams/lora_unbuffered.json --launcher --announce

A transcript (NAME.stdout, NAME.stderr, NAME.meta) is written in chunks of random size (fixed
seed; they cut lines, tqdm frames and UTF-8 sequences anywhere), spread evenly over --duration
seconds; the process then exits with the .meta's rc (a negative rc: killed by that signal). A
stream file (stream_*.json: arrival times of each pipe's reads) is written with its own
timing, scaled to --duration.

--launcher mimics `accelerate launch`: the process re-runs itself as a child that does the
writing, waits for it, and exits 1 if the child failed. Like accelerate's launcher it does not
handle SIGINT, so Ctrl-C raises KeyboardInterrupt in its wait().
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path


def load(source: Path, duration: float, seed: int) -> tuple[list[tuple[float, int, bytes]], int]:
    """(time, fd, bytes) pieces in the order to write them, and the exit status."""
    if source.suffix == ".json":
        recorded = json.loads(source.read_text(encoding="utf-8"))
        events = recorded["events"]
        start, end = events[0][0], events[-1][0]
        scale = duration / max(end - start, 1e-9)
        pieces = [((t - start) * scale, 1 if name == "stdout" else 2, text.encode()) for t, name, text in events]
        return pieces, int(recorded["rc"])
    meta = dict(line.split(": ", 1) for line in source.with_suffix(".meta").read_text().splitlines() if ": " in line)
    rng = random.Random(seed)
    pieces = []
    for fd, suffix in ((1, ".stdout"), (2, ".stderr")):
        data = source.with_suffix(suffix).read_bytes()
        offset = 0
        while offset < len(data):
            size = rng.randint(1, 400)
            pieces.append((duration * offset / len(data), fd, data[offset : offset + size]))
            offset += size
    pieces.sort(key=lambda piece: piece[0])
    return pieces, int(meta["rc"])


def announce(role: str) -> None:
    handler = signal.getsignal(signal.SIGINT)
    sigint = {signal.SIG_IGN: "ignored", signal.SIG_DFL: "default", signal.default_int_handler: "python"}.get(
        handler, "handler"
    )
    os.write(2, f"replay {role}: pid={os.getpid()} pgid={os.getpgrp()} sigint={sigint}\n".encode())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("source", type=Path, help="transcript path without extension, or a stream_*.json")
    parser.add_argument("--duration", type=float, default=0.5, help="seconds the replay takes")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--rc", type=int, help="exit status instead of the recorded one")
    parser.add_argument("--hold", type=float, default=0.0, help="seconds to stay alive after writing")
    parser.add_argument("--launcher", action="store_true", help="write from a child, like accelerate launch")
    parser.add_argument("--announce", action="store_true", help="first write pid, pgid and SIGINT disposition")
    parser.add_argument("--ignore-sigint", action="store_true")
    parser.add_argument("--ignore-sigterm", action="store_true")
    args = parser.parse_args()

    if args.ignore_sigint:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
    if args.ignore_sigterm:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
    if args.launcher:
        if args.announce:
            announce("launcher")
        child = subprocess.Popen([sys.executable, *(a for a in sys.argv if a != "--launcher")])
        return 0 if child.wait() == 0 else 1  # no kill on KeyboardInterrupt: the child is orphaned

    if args.announce:
        announce("engine")
    pieces, rc = load(args.source, args.duration, args.seed)
    start = time.monotonic()
    for at, fd, data in pieces:
        time.sleep(max(0.0, start + at - time.monotonic()))
        while data:
            data = data[os.write(fd, data) :]
    time.sleep(args.hold)
    rc = rc if args.rc is None else args.rc
    if rc < 0:
        if -rc not in (signal.SIGKILL, signal.SIGSTOP):
            signal.signal(-rc, signal.SIG_DFL)
        os.kill(os.getpid(), -rc)
        time.sleep(10)  # a blocked or ignored signal; should not happen
    return rc


if __name__ == "__main__":
    sys.exit(main())


def parse_transcript(stdout: str, stderr: str) -> list:
    """All events of a finished run. The pipes' interleaving is lost in a transcript, so
    stdout's events come first, then stderr's; within each stream the order is the real one."""
    from artlab_kohya.trainer.output import Parser

    parser = Parser()
    events = parser.feed("stdout", stdout) + parser._streams["stdout"].close()
    return events + parser.feed("stderr", stderr) + parser.close()
