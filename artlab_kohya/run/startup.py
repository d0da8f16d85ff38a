"""Where the time to the first step goes: phases of the trainer's start, timed from its own output.

Each phase starts at a line sd-scripts prints (the same words in train_network.py, sdxl_, flux_ and
sd3_train_network.py at the pinned commit) and ends where the next phase seen starts; the last one, the
first step, ends at the first finished step. A phase whose line never came is left out (no latents
cached: no latent caching), its time counted in the phase before. Only stderr is read: sd-scripts logs
and draws its progress bar there, while its few print()s on stdout reach the pipe in another order.
"""

from __future__ import annotations

import re
import time
from typing import Any

# (phase, the line that starts it), in the order sd-scripts prints them
PHASES: tuple[tuple[str, re.Pattern[str] | None], ...] = (
    ("python and imports", None),  # from the launch to the trainer's first line of output
    ("settings and dataset", re.compile(r"\S")),
    ("model load", re.compile(r"preparing accelerator")),
    ("latent caching", re.compile(r"caching latents")),
    ("text-encoder caching", re.compile(r"caching Text Encoder outputs")),
    ("network", re.compile(r"create LoRA network")),
    ("optimizer and prepare", re.compile(r"use \S+ optimizer")),
    ("first step", re.compile(r"steps:\s+0%")),
)


TAIL = 200  # characters kept between pieces of output, longer than any marker


class StartupClock:
    def __init__(self) -> None:
        self.t0: float | None = None
        self.seen: dict[str, float] = {}
        self.first_step: float | None = None
        self._tail = ""  # the end of the output so far: a line may arrive in pieces

    def start(self) -> None:
        self.t0 = time.monotonic()
        self.seen = {PHASES[0][0]: 0.0}

    def output(self, stream: str, text: str) -> None:
        if self.t0 is None or self.first_step is not None or stream != "stderr":
            return
        now = time.monotonic() - self.t0
        seen = self._tail + text
        for name, marker in PHASES[1:]:
            if name not in self.seen and marker is not None and marker.search(seen):
                self.seen[name] = now
        self._tail = seen[-TAIL:]

    def step(self) -> None:
        if self.t0 is not None and self.first_step is None:
            self.first_step = time.monotonic() - self.t0

    def record(self) -> dict[str, Any] | None:
        """{first_step_s, phases: [{phase, s}]}; None before the trainer started."""
        if self.t0 is None:
            return None
        order = [name for name, _ in PHASES if name in self.seen]
        starts = sorted((self.seen[name], i, name) for i, name in enumerate(order))
        ends = [t for t, _, _ in starts[1:]] + [self.first_step]
        phases = [
            {"phase": name, "s": None if end is None else round(end - start, 2)}
            for (start, _, name), end in zip(starts, ends, strict=True)
        ]
        return {"first_step_s": None if self.first_step is None else round(self.first_step, 2), "phases": phases}


def startup_line(startup: dict[str, Any] | None) -> str | None:
    """One line for the console: 'first step after 41.2 s: python and imports 14.0 s, ...'."""
    if not startup or startup.get("first_step_s") is None:
        return None
    parts = [f"{p['phase']} {p['s']:.1f} s" for p in startup["phases"] if p.get("s") is not None]
    return f"first step after {startup['first_step_s']:.1f} s: " + ", ".join(parts)
