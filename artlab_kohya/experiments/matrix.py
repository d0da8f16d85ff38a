"""A spec's `matrix:`: several runs from one spec, each an ordinary spec with overrides.

    matrix:
      optimizer.unet_lr: [1.0e-4, 5.0e-5]   # an axis: one value per run
      network.dim: [32, 64]                  # axes multiply: 2 x 2 = 4 runs
      zip:                                   # values that move together: the i-th of each list
        network.dim: [32, 64]
        network.alpha: [16, 32]

A key is a spec path as `--set` takes it (`dataset.subsets[0].repeats`); its list holds one value per
run. `zip:` is one group of lists of equal length (or a list of such groups); a group is one axis. Axes
combine as a cartesian product in the order written, the last varying fastest. Each combination is
the spec with those values set (as `--set` would) and `output.name` made `<name>-dim32-unet_lr1e-4`,
validated like any spec; a bad value is reported at its line in the matrix
(`spec.yaml:12: matrix.network.dim[1]: must be at least 1 (got 0)`).
"""

from __future__ import annotations

import itertools
import json
import math
from dataclasses import dataclass, field
from typing import Any

from ..spec import Issue, LoadedSpec, SpecError
from ..spec.load import MATRIX_ZIP, load_spec_text, printable
from ..spec.yamlpos import PathKey, format_path, parse_path
from .values import format_value, name_part

MAX_RUNS = 1000  # a typo in a matrix should not queue ten thousand trainings
ZIP = MATRIX_ZIP
NAME = ("output", "name")
# What sd-scripts' latent cache on disk does not notice: at the pinned commit a `<image>_<W>x<H>_sd.npz`
# beside the image is reused whatever the training resolution, buckets or VAE.
LATENT_INPUTS: tuple[PathKey, ...] = (
    ("dataset", "resolution"),
    ("dataset", "buckets"),
    ("model", "source"),
    ("model", "vae"),
    ("model", "family"),
)


@dataclass(frozen=True)
class Entry:
    """One key of the matrix: its spec path, its values, and where it is written (path below `matrix`)."""

    key: str
    path: PathKey
    values: tuple[Any, ...]
    at: PathKey  # ("network.dim",) or ("zip", "network.dim") or ("zip", 0, "network.dim")


@dataclass(frozen=True)
class Variant:
    """One run of the matrix."""

    index: int
    name: str
    values: dict[str, Any]  # key as written -> value, in the matrix's order
    positions: dict[str, int]  # key -> index of its value in the key's list
    overrides: tuple[str, ...]  # as `--set` texts: the matrix values, then output.name

    def labels(self) -> dict[str, str]:
        return {k: format_value(v) for k, v in self.values.items()}


@dataclass(frozen=True)
class Matrix:
    base_name: str
    axes: tuple[tuple[Entry, ...], ...]  # each axis: one entry, or a zip group's entries
    variants: tuple[Variant, ...] = field(default_factory=tuple)

    @property
    def entries(self) -> list[Entry]:
        return [e for axis in self.axes for e in axis]

    @property
    def keys(self) -> list[str]:
        return [e.key for e in self.entries]


def _labels(entries: list[Entry]) -> dict[str, str]:
    """Each key's label in run names: the last name of its path, or the whole path where two clash."""
    last = {e.key: next((str(p) for p in reversed(e.path) if isinstance(p, str)), e.key) for e in entries}
    counts: dict[str, int] = {}
    for label in last.values():
        counts[label] = counts.get(label, 0) + 1
    return {k: (label if counts[label] == 1 else k) for k, label in last.items()}


# --- reading `matrix:` ---------------------------------------------------------------------------


class _Problems:
    def __init__(self, loaded: LoadedSpec) -> None:
        self.loaded = loaded
        self.issues: list[Issue] = []

    def add(self, at: PathKey, message: str) -> None:
        self.issues.append(Issue("error", ("matrix", *at), message, where_in_matrix(self.loaded, at)))


def where_in_matrix(loaded: LoadedSpec, at: PathKey) -> str:
    """`spec.yaml:LINE` of a place below `matrix:` (the nearest written parent when it has no line)."""
    for end in range(len(at), -1, -1):
        line = loaded.matrix_lines.get(at[:end])
        if line is not None:
            return f"{loaded.path.name}:{line}"
    return f"{loaded.path.name}:1"


def _entry(problems: _Problems, key: Any, values: Any, at: PathKey) -> Entry | None:
    try:
        path = parse_path(str(key))
    except ValueError as exc:
        problems.add(at, str(exc))
        return None
    if path[:1] == ("matrix",) or path == NAME:
        problems.add(at, f"{format_path(path)} cannot vary in a matrix (the sweep names each run)")
        return None
    if not isinstance(values, list) or not values:
        got = "an empty list" if values == [] else f"{format_value(values)!r}"
        problems.add(at, f"must be a list with one value per run, e.g. [32, 64] (got {got})")
        return None
    unfit = [(i, why) for i, why in enumerate(map(_unfit, values)) if why]
    for i, why in unfit:
        problems.add((*at, i), why)
    return None if unfit else Entry(str(key), path, tuple(values), at)


def _unfit(value: Any) -> str | None:
    """Why `value` cannot be a matrix value, or None: each travels to its run as a `--set` text (JSON),
    which holds text, finite numbers, true/false, null, lists and tables, not YAML's dates or binary."""
    if isinstance(value, float) and not math.isfinite(value):
        return f"must be a finite number (got {value})"
    if value is None or isinstance(value, str | int | float):
        return None
    if isinstance(value, list):
        return next(filter(None, map(_unfit, value)), None)
    if isinstance(value, dict):
        return next(filter(None, map(_unfit, value.values())), None)
    return f"must be text, a number, true/false, a list or a table (got {type(value).__name__} {value})"


def _zip_group(problems: _Problems, group: Any, at: PathKey) -> tuple[Entry, ...] | None:
    if not isinstance(group, dict) or len(group) < 2:
        problems.add(
            at,
            "a zip group is a table of two or more `path: [values]` lists whose i-th values go together "
            "(a single list belongs directly under matrix:)",
        )
        return None
    entries = [_entry(problems, k, v, (*at, k)) for k, v in group.items()]
    good = [e for e in entries if e is not None]
    if len(good) != len(entries):
        return None
    lengths = {len(e.values) for e in good}
    if len(lengths) > 1:
        first = len(good[0].values)
        for e in good[1:]:
            if len(e.values) != first:
                problems.add(e.at, f"has {len(e.values)} values; {good[0].key} in the same zip group has {first}")
        return None
    return tuple(good)


def read_matrix(loaded: LoadedSpec) -> tuple[tuple[Entry, ...], ...] | None:
    """The axes of the spec's matrix, or None without one; SpecError with every located problem."""
    raw = loaded.matrix
    if raw is None:
        return None
    problems = _Problems(loaded)
    if not isinstance(raw, dict) or not raw:
        problems.add((), "must be a table of `path: [values]` entries (and an optional zip: group)")
        raise SpecError(problems.issues, loaded.path)
    axes: list[tuple[Entry, ...]] = []
    for key, value in raw.items():
        if key == ZIP:
            groups = value if isinstance(value, list) else [value]
            for i, group in enumerate(groups):
                found = _zip_group(problems, group, (ZIP, i) if isinstance(value, list) else (ZIP,))
                if found:
                    axes.append(found)
            continue
        entry = _entry(problems, key, value, (key,))
        if entry is not None:
            axes.append((entry,))
    seen: dict[PathKey, Entry] = {}
    for entry in (e for axis in axes for e in axis):
        clash = next((s for p, s in seen.items() if p[: len(entry.path)] == entry.path[: len(p)]), None)
        if clash is not None:
            problems.add(entry.at, f"{entry.key} is already varied by matrix entry {clash.key}")
        seen[entry.path] = entry
    if problems.issues:
        raise SpecError(problems.issues, loaded.path)
    count = math.prod(len(axis[0].values) for axis in axes)
    if count > MAX_RUNS:
        problems.add((), f"expands to {count:,} runs; a matrix may have at most {MAX_RUNS:,}")
        raise SpecError(problems.issues, loaded.path)
    return tuple(axes)


def expand(loaded: LoadedSpec) -> Matrix | None:
    """The matrix's runs, named and with their overrides; None when the spec has no matrix."""
    axes = read_matrix(loaded)
    if axes is None:
        return None
    entries = [e for axis in axes for e in axis]
    labels = _labels(entries)
    base = loaded.spec.output.name
    variants: list[Variant] = []
    by_name: dict[str, Variant] = {}
    problems = _Problems(loaded)
    for index, combo in enumerate(itertools.product(*(range(len(axis[0].values)) for axis in axes))):
        values: dict[str, Any] = {}
        positions: dict[str, int] = {}
        for axis, i in zip(axes, combo, strict=True):
            for entry in axis:
                values[entry.key], positions[entry.key] = entry.values[i], i
        name = "-".join([base] + [f"{labels[k]}{name_part(v)}" for k, v in values.items()])
        overrides = tuple(f"{format_path(e.path)}={json.dumps(values[e.key], ensure_ascii=False)}" for e in entries) + (
            f"output.name={json.dumps(name)}",
        )
        variant = Variant(index, name, values, positions, overrides)
        if name in by_name:
            other = by_name[name]
            differ = next((e for e in entries if values[e.key] != other.values[e.key]), None)
            if differ is None:
                problems.add(
                    (), f"runs {other.index + 1} and {index + 1} have the same values ({name}): a value is listed twice"
                )
            else:
                problems.add(
                    differ.at,
                    f"runs {other.index + 1} and {index + 1} would both be named {name} "
                    f"({differ.key}: {other.values[differ.key]!r} and {values[differ.key]!r} read the same); "
                    "write them apart",
                )
            continue
        by_name[name] = variant
        variants.append(variant)
    if problems.issues:
        raise SpecError(problems.issues, loaded.path)
    return Matrix(base, tuple(axes), tuple(variants))


# --- each run, validated --------------------------------------------------------------------------


def relocate(loaded: LoadedSpec, matrix: Matrix, variant: Variant, issue: Issue) -> Issue:
    """An issue of a run's spec, moved from the `--set` it came from to the matrix entry that set it
    (an issue of the `--set` itself, such as a list index the spec lacks, has no path but its text)."""
    for entry, given in zip(matrix.entries, variant.overrides, strict=False):
        own = issue.path[: len(entry.path)] == entry.path and issue.where.startswith("--set ")
        if own or (not issue.path and issue.where == f"--set {printable(given)}"):
            at = (*entry.at, variant.positions[entry.key])
            rest = issue.path[len(entry.path) :]
            return Issue(issue.severity, ("matrix", *at, *rest), issue.message, where_in_matrix(loaded, at))
    return issue


def _dedupe(issues: list[Issue]) -> list[Issue]:
    return list({str(i): i for i in issues}.values())


def load_variants(
    loaded: LoadedSpec, matrix: Matrix, overrides: tuple[str, ...] = ()
) -> tuple[list[LoadedSpec], list[Issue]]:
    """Every run's spec, validated (`overrides`, the command's own `--set`, apply to all of them), and
    the warnings of all, located in the matrix where a matrix value is the cause.
    Raises SpecError with every problem of every run at once, each reported once."""
    runs: list[LoadedSpec] = []
    errors: list[Issue] = []
    warnings: list[Issue] = []
    given = [parse_path(o.partition("=")[0].strip()) for o in overrides if "=" in o]
    for entry in matrix.entries:
        for path in given:
            if path[: len(entry.path)] == entry.path[: len(path)]:
                errors.append(
                    Issue(
                        "error",
                        ("matrix", *entry.at),
                        f"--set {format_path(path)} would override what the matrix varies",
                        where_in_matrix(loaded, entry.at),
                    )
                )
    if errors:
        raise SpecError(errors, loaded.path)
    for variant in matrix.variants:
        try:
            run = load_spec_text(loaded.text, loaded.path, (*overrides, *variant.overrides))
        except SpecError as exc:
            errors += [relocate(loaded, matrix, variant, i) for i in exc.issues]
            continue
        run.warnings = [relocate(loaded, matrix, variant, w) for w in run.warnings]
        warnings += run.warnings
        runs.append(run)
    errors += _latent_cache_problems(loaded, matrix, runs) if not errors else []
    if errors:
        raise SpecError(_dedupe(errors), loaded.path)
    return runs, _dedupe(warnings)


def _latent_cache_problems(loaded: LoadedSpec, matrix: Matrix, runs: list[LoadedSpec]) -> list[Issue]:
    """Runs that cache latents on disk share the .npz files beside the images: they must agree on
    everything that shapes a latent (see LATENT_INPUTS)."""
    disk = [(v, r) for v, r in zip(matrix.variants, runs, strict=True) if r.spec.training.cache_latents == "disk"]
    out = []
    for entry in matrix.entries:
        if not any(entry.path[: len(p)] == p or p[: len(entry.path)] == entry.path for p in LATENT_INPUTS):
            continue
        seen = {json.dumps(v.values[entry.key], sort_keys=True) for v, _ in disk}
        if len(seen) > 1:
            out.append(
                Issue(
                    "error",
                    ("matrix", *entry.at),
                    "runs that cache latents on disk (training.cache_latents: disk) reuse the .npz files beside "
                    "the images, and sd-scripts does not check their resolution, buckets or VAE: varying "
                    f"{entry.key} would train later runs on the first run's latents; use cache_latents: memory",
                    where_in_matrix(loaded, entry.at),
                )
            )
    return out
