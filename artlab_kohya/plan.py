"""The step math before any model is loaded: images, repeats, buckets, batches, steps, saves.

Computed the way sd-scripts computes it (buckets.py mirrors its bucketing), so the total here is
the "total optimization steps" the trainer prints.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

from .buckets import (
    BucketConfig,
    SubsetSizes,
    batches_per_process,
    dataset_batches,
    epochs_for_steps,
    steps_per_epoch,
    total_steps,
)
from .images import IMAGE_EXTENSIONS, ImageHeaderError, folder_repeats, list_images, read_sizes
from .spec import Issue, LoadedSpec, SpecError
from .spec.model import Spec

GUIDE_MIN_STEPS = 1500
GUIDE_MIN_IMAGES = 15
MAX_AUTO_REPEATS = 10_000


class PlanError(SpecError):
    """Located problems found by looking at the dataset (missing folders, no images, names)."""


@dataclass(frozen=True)
class SubsetPlan:
    index: int
    path: Path
    images: int
    repeats: int
    repeats_from: str  # "spec", "folder" or "auto"
    class_tokens: str | None
    regularization: bool


@dataclass(frozen=True)
class Plan:
    subsets: tuple[SubsetPlan, ...]
    buckets: dict[tuple[int, int], int]
    train_images_x_repeats: int
    reg_images_x_repeats: int
    batch_size: int
    batches_per_epoch: int
    epochs: int
    gradient_accumulation: int
    processes: int
    steps_per_epoch: int
    total_steps: int
    saves: tuple[str, ...]
    removed: tuple[str, ...]
    family: str | None
    lora_bytes: int | None
    lora_params: int | None
    auto_repeats: str | None
    warnings: list[Issue] = field(default_factory=list)


def bucket_config(spec: Spec) -> BucketConfig:
    ds = spec.dataset
    res = ds.resolution
    return BucketConfig(
        resolution=(res, res) if isinstance(res, int) else (res[0], res[1]),
        enable=ds.buckets.enabled,
        min_reso=ds.buckets.min_resolution,
        max_reso=ds.buckets.max_resolution,
        reso_steps=ds.buckets.step,
        no_upscale=ds.buckets.no_upscale,
    )


def _scan(loaded: LoadedSpec) -> tuple[list[list[tuple[int, int]]], list[Issue]]:
    """Image sizes per subset, from headers; problems located at the subset's path."""
    sizes: list[list[tuple[int, int]]] = []
    issues: list[Issue] = []
    for i, subset in enumerate(loaded.spec.dataset.subsets):
        at = ("dataset", "subsets", i, "path")
        try:
            paths = list_images(subset.path)
        except OSError as exc:
            if isinstance(exc, FileNotFoundError):
                what = "does not exist"
            elif isinstance(exc, NotADirectoryError):
                what = "is a file, not a folder"
            else:  # no permission, a symlink loop
                what = f"cannot be read: {exc.strerror or exc}"
            issues.append(loaded.issue("error", at, f"{subset.path} {what}"))
            sizes.append([])
            continue
        if not paths:
            issues.append(
                loaded.issue(
                    "error",
                    at,
                    f"no images in {subset.path} (sd-scripts takes {' '.join(sorted(set(IMAGE_EXTENSIONS)))}; "
                    "images go straight in this folder, not in subfolders) - sd-scripts would stop with "
                    "'No data found'",
                )
            )
        results = read_sizes(paths)
        bad = [r for r in results if isinstance(r, ImageHeaderError)]
        if bad:
            shown = "; ".join(str(b) for b in bad[:3]) + (f"; and {len(bad) - 3} more" if len(bad) > 3 else "")
            issues.append(loaded.issue("error", at, f"{len(bad)} image(s) cannot be read: {shown}"))
        sizes.append([r for r in results if not isinstance(r, ImageHeaderError)])
    return sizes, issues


def subset_repeats(loaded: LoadedSpec) -> tuple[list[int | None], list[str], list[str | None], list[Issue]]:
    repeats: list[int | None] = []
    sources: list[str] = []
    tokens: list[str | None] = []
    issues: list[Issue] = []
    for i, subset in enumerate(loaded.spec.dataset.subsets):
        from_folder = folder_repeats(subset.path)
        tokens.append(subset.class_tokens or (from_folder[1] if from_folder and from_folder[1] else None))
        if subset.repeats == "folder":
            if from_folder is None:
                issues.append(
                    loaded.issue(
                        "error",
                        ("dataset", "subsets", i, "repeats"),
                        f"the folder '{subset.path.name}' is not named N_name (e.g. 10_{subset.path.name}); "
                        "rename it or give repeats as a number",
                    )
                )
            repeats.append(from_folder[0] if from_folder else None)
            sources.append("folder")
        elif subset.repeats == "auto":
            repeats.append(None)
            sources.append("auto")
        else:
            repeats.append(subset.repeats)
            sources.append("spec")
    if "auto" in sources and loaded.spec.training.max_steps is not None:
        issues.append(
            loaded.issue(
                "error",
                ("dataset", "subsets", sources.index("auto"), "repeats"),
                "repeats: auto needs training.epochs (with max_steps the length is fixed already)",
            )
        )
    return repeats, sources, tokens, issues


def _count(spec: Spec, sizes: list[list[tuple[int, int]]], repeats: list[int]) -> tuple[Any, int, int]:
    """(bucket counts, total optimization steps, epochs) as train_network.py computes them."""
    subsets = [
        SubsetSizes(sizes=tuple(s), num_repeats=r, is_reg=sub.regularization, image_dir=str(sub.path))
        for s, r, sub in zip(sizes, repeats, spec.dataset.subsets, strict=True)
    ]
    count = dataset_batches(bucket_config(spec), subsets, spec.dataset.batch_size)
    training, processes = spec.training, spec.launch.num_processes
    if training.max_steps is not None:
        epochs = epochs_for_steps(count.batches, training.max_steps, training.gradient_accumulation, processes)
        return count, training.max_steps, epochs
    epochs = training.epochs or 1
    return count, total_steps(count.batches, epochs, training.gradient_accumulation, processes), epochs


def solve_auto_repeats(
    spec: Spec, sizes: list[list[tuple[int, int]]], repeats: list[int | None]
) -> tuple[list[int], str]:
    """The smallest repeats for `auto` subsets whose total reaches dataset.target_steps."""
    target = spec.dataset.target_steps

    def steps_with(r: int) -> int:
        return _count(spec, sizes, [r if x is None else x for x in repeats])[1]

    low, high = 1, 1
    while steps_with(high) < target and high < MAX_AUTO_REPEATS:
        low, high = high, min(high * 2, MAX_AUTO_REPEATS)
    while low < high:
        mid = (low + high) // 2
        if steps_with(mid) >= target:
            high = mid
        else:
            low = mid + 1
    chosen = high
    images = sum(len(s) for s, r in zip(sizes, repeats, strict=True) if r is None)
    epochs = spec.training.epochs or 1
    estimate = target * spec.dataset.batch_size * spec.training.gradient_accumulation * spec.launch.num_processes
    why = (
        f"repeats auto = {chosen}: the smallest repeats whose total reaches {target} steps "
        f"(about {target} x batch {spec.dataset.batch_size} x accumulation {spec.training.gradient_accumulation} "
        f"x processes {spec.launch.num_processes} / ({images} images x {epochs} epochs) = "
        f"{estimate / max(images * epochs, 1):.1f}, then buckets rounded up) -> {steps_with(chosen)} steps"
    )
    return [chosen if x is None else x for x in repeats], why


def _saves(spec: Spec, epochs: int, steps: int, per_epoch: int) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """Checkpoint files in the order sd-scripts writes them, and those save_last_n_epochs removes."""
    out = spec.output
    ext = out.format
    every_epoch = spec.training.save_every_n_epochs
    every_step = spec.training.save_every_n_steps
    written: list[tuple[int, str]] = []
    removed: list[str] = []
    if every_step:
        written += [(s, f"{out.name}-step{s:08d}.{ext}") for s in range(every_step, steps + 1, every_step)]
    if every_epoch:
        for epoch in range(1, epochs):
            if epoch % every_epoch == 0:
                written.append((epoch * per_epoch, f"{out.name}-{epoch:06d}.{ext}"))
                last_n = spec.training.save_last_n_epochs
                if last_n and epoch - every_epoch * last_n > 0:
                    removed.append(f"{out.name}-{epoch - every_epoch * last_n:06d}.{ext}")
    written.sort(key=lambda item: item[0])
    return tuple(name for _, name in written) + (f"{out.name}.{ext}",), tuple(removed)


def plan_family(spec: Spec) -> str | None:
    """The family as far as it can be known without downloading: the spec's, or the file header's."""
    if spec.model.family != "auto":
        return spec.model.family
    source = spec.model.source
    if source.type == "local" and source.path.exists():
        from .hub import detect_family

        try:
            return detect_family(source.path)
        except Exception:  # noqa: BLE001 - an unreadable header only means "unknown" here
            return None
    if source.type == "alias":
        return source.name
    return None


def _lora_size(spec: Spec, family: str | None) -> tuple[int | None, int | None]:
    if family is None:
        return None, None
    from .netsize import Family as NetFamily
    from .netsize import SaveDtype, predict

    net = spec.network
    size = predict(
        cast(NetFamily, "sd2" if family == "sd2-v" else family),
        net.type,
        dim=net.dim,
        conv_dim=net.conv_dim,  # unset: none for lora/dylora, dim for LyCORIS (netsize follows each module)
        train_unet=net.train != "text_encoder",
        train_text_encoder=net.train != "unet",
        save_dtype=cast(SaveDtype, {"float": "fp32"}.get(spec.training.save_precision, spec.training.save_precision)),
        lokr_factor=getattr(net, "factor", -1),
        use_tucker=getattr(net, "use_tucker", False),
    )
    return size.bytes, size.params


def make_plan(loaded: LoadedSpec) -> Plan:
    spec = loaded.spec
    sizes, scan_issues = _scan(loaded)
    repeats, sources, tokens, repeat_issues = subset_repeats(loaded)
    if scan_issues or repeat_issues:
        raise PlanError(scan_issues + repeat_issues)
    why = None
    if None in repeats:
        final, why = solve_auto_repeats(spec, sizes, repeats)
    else:
        final = [r for r in repeats if r is not None]
    count, steps, epochs = _count(spec, sizes, final)
    per_epoch = steps_per_epoch(count.batches, spec.training.gradient_accumulation, spec.launch.num_processes)
    saves, removed = _saves(spec, epochs, steps, per_epoch)
    family = plan_family(spec)
    lora_bytes, lora_params = _lora_size(spec, family)
    subsets = tuple(
        SubsetPlan(i, sub.path, len(sizes[i]), final[i], sources[i], tokens[i], sub.regularization)
        for i, sub in enumerate(spec.dataset.subsets)
    )
    plan = Plan(
        subsets=subsets,
        buckets=dict(count.buckets),
        train_images_x_repeats=count.num_train_images,
        reg_images_x_repeats=count.num_reg_images,
        batch_size=spec.dataset.batch_size,
        batches_per_epoch=batches_per_process(count.batches, spec.launch.num_processes),
        epochs=epochs,
        gradient_accumulation=spec.training.gradient_accumulation,
        processes=spec.launch.num_processes,
        steps_per_epoch=per_epoch,
        total_steps=steps,
        saves=saves,
        removed=removed,
        family=family,
        lora_bytes=lora_bytes,
        lora_params=lora_params,
        auto_repeats=why,
    )
    plan.warnings.extend(_warnings(loaded, plan))
    return plan


def _warnings(loaded: LoadedSpec, plan: Plan) -> list[Issue]:
    out = []
    for sub in plan.subsets:
        if not sub.regularization and sub.images < GUIDE_MIN_IMAGES:
            out.append(
                loaded.issue(
                    "warning",
                    ("dataset", "subsets", sub.index, "path"),
                    f"{sub.images} image(s); the guide wants at least 10 and 15 or more is better",
                )
            )
    if plan.total_steps < GUIDE_MIN_STEPS:
        at = ("training", "max_steps") if loaded.spec.training.max_steps else ("training", "epochs")
        out.append(
            loaded.issue(
                "warning",
                at,
                f"{plan.total_steps} total steps; the guide aims above ~{GUIDE_MIN_STEPS} "
                "(images x repeats x epochs / batch size)",
            )
        )
    return out


def plan_json(plan: Plan) -> dict[str, Any]:
    return {
        "subsets": [
            {
                "path": str(s.path),
                "images": s.images,
                "repeats": s.repeats,
                "repeats_from": s.repeats_from,
                "class_tokens": s.class_tokens,
                "regularization": s.regularization,
            }
            for s in plan.subsets
        ],
        "buckets": [{"resolution": list(k), "images_x_repeats": v} for k, v in sorted(plan.buckets.items())],
        "train_images_x_repeats": plan.train_images_x_repeats,
        "reg_images_x_repeats": plan.reg_images_x_repeats,
        "batch_size": plan.batch_size,
        "batches_per_epoch": plan.batches_per_epoch,
        "epochs": plan.epochs,
        "gradient_accumulation": plan.gradient_accumulation,
        "processes": plan.processes,
        "steps_per_epoch": plan.steps_per_epoch,
        "total_steps": plan.total_steps,
        "saves": list(plan.saves),
        "removed_by_save_last_n_epochs": list(plan.removed),
        "family": plan.family,
        "lora_bytes": plan.lora_bytes,
        "lora_params": plan.lora_params,
        "auto_repeats": plan.auto_repeats,
        "warnings": [str(w) for w in plan.warnings],
    }


def _short(path: Path) -> str:
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def _mb(n: int) -> str:
    return f"{n / 1e6:.1f} MB"


def print_plan(plan: Plan) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console()
    table = Table(title="subsets", title_justify="left")
    for column in ("folder", "images", "repeats", "from", "class tokens", "images x repeats"):
        numeric = column in ("images", "repeats", "images x repeats")
        table.add_column(column, justify="right" if numeric else "left", overflow="fold")
    for s in plan.subsets:
        label = _short(s.path) + (" (reg)" if s.regularization else "")
        table.add_row(
            label, str(s.images), str(s.repeats), s.repeats_from, s.class_tokens or "", str(s.images * s.repeats)
        )
    console.print(table)
    if plan.auto_repeats:
        console.print(plan.auto_repeats)
    if len(plan.buckets) > 1 or any(k != next(iter(plan.buckets)) for k in plan.buckets):
        buckets = ", ".join(f"{w}x{h}: {n}" for (w, h), n in sorted(plan.buckets.items()))
        console.print(f"buckets (images x repeats): {buckets}")
    lines = [
        ("train images x repeats", plan.train_images_x_repeats),
        ("reg images x repeats", plan.reg_images_x_repeats),
        ("batch size per device", plan.batch_size),
        ("batches per epoch", plan.batches_per_epoch),
        ("processes", plan.processes),
        ("gradient accumulation", plan.gradient_accumulation),
        ("steps per epoch", plan.steps_per_epoch),
        ("epochs", plan.epochs),
        ("total optimization steps", plan.total_steps),
    ]
    width = max(len(k) for k, _ in lines)
    for key, value in lines:
        console.print(f"{key:<{width}}  {value}", highlight=False)
    size = (
        f"{_mb(plan.lora_bytes)} each ({plan.lora_params:,} parameters, {plan.family})"
        if plan.lora_bytes is not None and plan.lora_params is not None
        else "size unknown until the model family is known (set model.family)"
    )
    console.print(f"saves {len(plan.saves)} file(s), {size}:", highlight=False)
    for name in plan.saves:
        note = " (removed later by save_last_n_epochs)" if name in plan.removed else ""
        console.print(f"  {name}{note}", highlight=False)
