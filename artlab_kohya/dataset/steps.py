"""A dataset's step math, as sd-scripts computes it: repeats per subset (from the spec, the N_name
folder, or solved for `auto`), buckets, batches and total optimization steps. `plan` builds on it;
the dataset check and `dataset organize` use it directly."""

from __future__ import annotations

from typing import Any

from ..spec import Issue, LoadedSpec
from ..spec.model import MAX_REPEATS, Spec
from .buckets import BucketConfig, SubsetSizes, dataset_batches, epochs_for_steps, total_steps
from .images import folder_repeats

MAX_AUTO_REPEATS = MAX_REPEATS


def world_size(spec: Spec) -> int:
    """accelerate's num_processes inside the trainer: every process of every machine. sd-scripts divides
    the batches of an epoch among them (ceil(batches / world size) each)."""
    return spec.launch.num_processes * spec.launch.num_machines


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


def count_steps(spec: Spec, sizes: list[list[tuple[int, int]]], repeats: list[int]) -> tuple[Any, int, int]:
    """(bucket counts, total optimization steps, epochs) as train_network.py computes them."""
    subsets = [
        SubsetSizes(sizes=tuple(s), num_repeats=r, is_reg=sub.regularization, image_dir=str(sub.path))
        for s, r, sub in zip(sizes, repeats, spec.dataset.subsets, strict=True)
    ]
    count = dataset_batches(bucket_config(spec), subsets, spec.dataset.batch_size)
    training, processes = spec.training, world_size(spec)
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
        return count_steps(spec, sizes, [r if x is None else x for x in repeats])[1]

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
    processes = world_size(spec)
    estimate = target * spec.dataset.batch_size * spec.training.gradient_accumulation * processes
    why = (
        f"repeats auto = {chosen}: the smallest repeats whose total reaches {target} steps "
        f"(about {target} x batch {spec.dataset.batch_size} x accumulation {spec.training.gradient_accumulation} "
        f"x processes {processes} / ({images} images x {epochs} epochs) = "
        f"{estimate / max(images * epochs, 1):.1f}, then buckets rounded up) -> {steps_with(chosen)} steps"
    )
    return [chosen if x is None else x for x in repeats], why
