"""Report data for the report tests: runs with a realistic loss curve, sweeps of them, a hostile name."""

from __future__ import annotations

import math
import random
from dataclasses import replace

from artlab_kohya.experiments.html import EpochRow, RunReport, Sample, SweepReport

HOSTILE = '<script>alert(1)</script>"\' onerror="alert(2)" &amp;'


def loss_curve(n: int, seed: int = 0) -> list[tuple[int, float]]:
    rng = random.Random(seed)
    return [(s, 0.05 + 0.1 * math.exp(-3 * s / n) + rng.gauss(0, 0.01)) for s in range(1, n + 1)]


def make_run(
    name: str = "dog-lora", steps: int = 1000, epochs: int = 10, window=(0.08, 0.1), samples: bool = True, seed: int = 0
) -> RunReport:
    curve = loss_curve(steps, seed)
    per = steps // epochs
    averages = [sum(v for _, v in curve[(e - 1) * per : e * per]) / per for e in range(1, epochs + 1)]
    inside = [e for e, a in enumerate(averages, 1) if window[0] <= a <= window[1]]
    rows = [
        EpochRow(
            e,
            a,
            f"{name}-{e:06d}.safetensors",
            picked=bool(inside) and e == inside[0],
            in_window=e in inside,
            end_step=e * per,
        )
        for e, a in enumerate(averages, 1)
    ]
    metadata = {
        r.checkpoint or "": {"ss_network_dim": "16", "ss_epoch": str(r.epoch), "ss_output_name": name} for r in rows
    }
    prompts = ["sks dog on a beach", "sks dog, portrait"]
    grid = [
        Sample(e, i, p, f"samples/{name}_e{e:06d}_{i:02d}.png")
        for e in range(2, epochs + 1, 2)
        for i, p in enumerate(prompts)
    ]
    params = {"learning_rate": "0.0001", "network_dim": "16", "epochs": str(epochs)}
    return RunReport(name, "succeeded", params, curve, rows, window, metadata, grid if samples else [])


def make_sweep(n: int = 4) -> SweepReport:
    runs = [
        replace(
            make_run(f"lr-{i}", seed=i),
            params={"learning_rate": f"{i}e-4", "network_dim": "16"},
            href=f"lr-{i}/report.html",
        )
        for i in range(1, n + 1)
    ]
    return SweepReport("lr sweep", runs, ["learning_rate"])
