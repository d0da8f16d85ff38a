"""A sweep's size before it runs: each run's steps (the plan's step math) and the GPU time they add up to.

The time is total steps / rate. The rate is the latest one recorded (the it/s of the last step event)
by a run of this spec's name, `<name>` or `<name>-...`, under the runs root; with none recorded it is
a rough guess per model family (ROUGH_RATES), meant only to tell an hour from a day.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..build.plan import Plan, PlanError, make_plan
from ..spec import Issue, LoadedSpec, SpecError
from .matrix import Matrix, Variant, relocate
from .records import find_runs, last_step

# Optimizer steps per second of a LoRA at the guide's settings (512 px SD1.x/SD2, 1024 px SDXL, batch
# 1-4) on a recent 24 GB card: a rough guess, replaced by a recorded rate as soon as one exists.
ROUGH_RATES = {"sd15": 1.5, "sd2": 1.5, "sd2-v": 1.5, "sdxl": 0.5}
DEFAULT_RATE = 1.5


@dataclass(frozen=True)
class RunSize:
    variant: Variant
    plan: Plan


@dataclass(frozen=True)
class SweepSize:
    runs: list[RunSize]
    total_steps: int
    rate: float  # steps per second
    rate_source: str
    warnings: list[Issue]

    @property
    def seconds(self) -> float:
        return self.total_steps / self.rate if self.rate > 0 else float("inf")


def recorded_rate(runs_root: Path, name: str) -> tuple[float, Path] | None:
    """The it/s of the last step of the newest run named `name` or `name-...` that recorded one."""
    if not runs_root.is_dir():
        return None
    folders = [p for p in runs_root.iterdir() if p.is_dir() and (p.name == name or p.name.startswith(name + "-"))]
    runs = sorted((run for f in folders for run in find_runs(f)), key=lambda p: p.name, reverse=True)
    for run in runs:
        step = last_step(run)
        if step is not None and step.rate:
            return step.rate, run
    return None


def size_sweep(loaded: LoadedSpec, matrix: Matrix, runs: list[LoadedSpec], runs_root: Path) -> SweepSize:
    """Every run's plan (dataset problems located at the matrix entry that caused them) and the time."""
    sizes: list[RunSize] = []
    errors: list[Issue] = []
    warnings: list[Issue] = []
    for variant, run in zip(matrix.variants, runs, strict=True):
        try:
            plan = make_plan(run)
        except PlanError as exc:
            errors += [relocate(loaded, matrix, variant, i) for i in exc.issues]
            continue
        warnings += [relocate(loaded, matrix, variant, w) for w in plan.warnings]
        sizes.append(RunSize(variant, plan))
    if errors:
        raise SpecError(list({str(i): i for i in errors}.values()), loaded.path)
    total = sum(s.plan.total_steps for s in sizes)
    found = recorded_rate(runs_root, matrix.base_name)
    if found is not None:
        rate, source = found[0], f"the latest recorded rate ({found[1]})"
    else:
        family = next((s.plan.family for s in sizes if s.plan.family), None)
        rate = ROUGH_RATES.get(family or "", DEFAULT_RATE)
        source = f"a rough rate for {family or 'an unknown family'}; no run of {matrix.base_name} recorded yet"
    return SweepSize(sizes, total, rate, source, list({str(w): w for w in warnings}.values()))


def clock(seconds: float) -> str:
    if seconds == float("inf"):
        return "?"
    minutes, secs = divmod(round(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}"


def table(size: SweepSize, keys: list[str]) -> list[str]:
    """The expansion as lines: one row per run (name, its values, steps, epochs), then the totals."""
    from .values import format_value

    head = ["run", *keys, "steps", "epochs"]
    rows = [
        [
            s.variant.name,
            *(format_value(s.variant.values[k]) for k in keys),
            str(s.plan.total_steps),
            str(s.plan.epochs),
        ]
        for s in size.runs
    ]
    widths = [max(len(r[i]) for r in [head, *rows]) for i in range(len(head))]
    numeric = {len(head) - 2, len(head) - 1}

    def line(cells: list[str]) -> str:
        return "  ".join(
            c.rjust(w) if i in numeric else c.ljust(w) for i, (c, w) in enumerate(zip(cells, widths, strict=True))
        )

    out = [f"matrix: {len(size.runs)} runs ({' x '.join(keys)})", line(head).rstrip()]
    out += [line(r).rstrip() for r in rows]
    out.append(
        f"total {size.total_steps:,} steps; GPU time about {clock(size.seconds)} at {size.rate:.2f} it/s "
        f"({size.rate_source})"
    )
    return out


def as_json(size: SweepSize, keys: list[str]) -> dict[str, object]:
    return {
        "keys": keys,
        "runs": [
            {
                "name": s.variant.name,
                "values": s.variant.values,
                "overrides": list(s.variant.overrides),
                "total_steps": s.plan.total_steps,
                "epochs": s.plan.epochs,
                "saves": list(s.plan.saves),
            }
            for s in size.runs
        ],
        "total_steps": size.total_steps,
        "estimate": {"seconds": round(size.seconds), "rate_it_s": size.rate, "rate_source": size.rate_source},
        "warnings": [str(w) for w in size.warnings],
    }
