"""The step math before any model is loaded: images, repeats, buckets, batches, steps, saves.

Computed the way sd-scripts computes it (buckets.py mirrors its bucketing), so the total here is
the "total optimization steps" the trainer prints.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast, get_args

from ..dataset.buckets import (
    batches_per_process,
    steps_per_epoch,
)
from ..dataset.images import IMAGE_EXTENSIONS, ImageHeaderError, list_images, read_sizes
from ..dataset.steps import count_steps, solve_auto_repeats, subset_repeats, world_size
from ..spec import Issue, LoadedSpec, SpecError, guide
from ..spec.families import ALIASES, Architecture, Family, Sd3Variant, architecture, resolve_family
from ..spec.model import Spec

MAX_SAVES = 10_000  # checkpoint files one run may write (each is megabytes); also bounds the list kept here


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
    processes: int  # on each machine
    machines: int
    steps_per_epoch: int
    total_steps: int
    saves: tuple[str, ...]
    removed: tuple[str, ...]
    family: Family | None
    lora_bytes: int | None
    lora_params: int | None
    auto_repeats: str | None
    warnings: list[Issue] = field(default_factory=list)

    @property
    def effective_batch(self) -> int:
        """Images per optimizer step, all processes together: batch x processes x machines x accumulation."""
        return self.batch_size * self.processes * self.machines * self.gradient_accumulation


def images_per_step(spec: Spec) -> int:
    """A spec's effective batch (Plan.effective_batch) without scanning its dataset."""
    return spec.dataset.batch_size * world_size(spec) * spec.training.gradient_accumulation


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


def _too_many_saves(loaded: LoadedSpec, epochs: int, steps: int) -> Issue | None:
    """Counted before `_saves` lists them, so that a typo cannot make a list of a million names."""
    training = loaded.spec.training
    by_step = steps // training.save_every_n_steps if training.save_every_n_steps else 0
    by_epoch = (epochs - 1) // training.save_every_n_epochs if training.save_every_n_epochs else 0
    if by_step + by_epoch <= MAX_SAVES:
        return None
    field = "save_every_n_steps" if by_step >= by_epoch else "save_every_n_epochs"
    message = f"would save {by_step + by_epoch} checkpoints (at most {MAX_SAVES}); save less often"
    return loaded.issue("error", ("training", field), message)


def spec_family(spec: Spec, detected: Architecture | None, prediction: str | None = None) -> Family | None:
    """The family to train, from the spec's word, its alias, or what the weights said (`detected`, and
    `prediction` from the file's metadata). The one place plan, render and run decide it (see
    spec.families.resolve_family)."""
    source = spec.model.source
    return resolve_family(
        spec.model.family,
        alias=source.name if source.type == "alias" else None,
        detected=detected,
        v_parameterization=spec.model.v_parameterization,
        prediction=prediction,
    )


def _local_header(spec: Spec) -> dict[str, Any] | None:
    """The local base model's safetensors header, or None (not local, not there, not readable)."""
    source = spec.model.source
    if source.type != "local" or not source.path.is_file() or source.path.suffix.lower() != ".safetensors":
        return None
    from ..models.checkpoint import ModelError, read_safetensors_header

    try:
        return read_safetensors_header(source.path)
    except (ModelError, OSError):  # an unreadable header only means "unknown" here
        return None


def plan_family(spec: Spec) -> Family | None:
    """The family as far as it can be known without downloading: the spec's, the alias's, or the file header's."""
    source = spec.model.source
    detected, prediction = None, None
    if source.type == "local" and source.path.exists():
        from ..models.checkpoint import ModelError, detect_family, prediction_type

        header = _local_header(spec)
        prediction = prediction_type(header) if header is not None else None
        if spec.model.family == "auto":
            with contextlib.suppress(ModelError, OSError):
                detected = detect_family(source.path)
    return spec_family(spec, detected, prediction)


def sd3_variant_of(spec: Spec) -> Sd3Variant | None:
    """Which SD3 the spec trains, from its alias or its local file's header (for the LoRA size)."""
    source = spec.model.source
    if source.type == "alias":
        return ALIASES[source.name].variant
    header = _local_header(spec)
    if header is None:
        return None
    from ..models.checkpoint import sd3_variant

    return sd3_variant(header)


def dit_blocks_of(spec: Spec) -> tuple[int, int] | None:
    """The FLUX.1/SD3 transformer's block counts from its local file's header (a tiny or pruned model);
    None for an alias or an unread file: the released model's sizes."""
    header = _local_header(spec)
    if header is None:
        return None
    from ..models.checkpoint import dit_blocks

    return dit_blocks(header)


def _lora_size(spec: Spec, family: Family | None) -> tuple[int | None, int | None]:
    if family is None:
        return None, None
    from ..models.netsize import NetworkType, SaveDtype, predict

    net, arch = spec.network, architecture(family)
    if net.type not in get_args(NetworkType):
        return None, None  # no size model for LyCORIS ia3, glora and the OFTs
    variant = sd3_variant_of(spec) if arch == "sd3" else None
    if arch in ("flux1", "sd3") and (net.type == "dylora" or (arch == "sd3" and variant is None)):
        return None, None  # networks.dylora wraps no transformer; SD3 is sized once its variant is known
    section = spec.flux if arch == "flux1" else spec.sd3 if arch == "sd3" else None
    size = predict(
        arch,
        cast(NetworkType, net.type),
        dim=net.dim,
        conv_dim=getattr(net, "conv_dim", None),  # unset: none for lora/dylora, dim for LyCORIS (netsize follows each)
        train_unet=net.train != "text_encoder",
        train_text_encoder=net.train != "unet",
        save_dtype=cast(SaveDtype, {"float": "fp32"}.get(spec.training.save_precision, spec.training.save_precision)),
        lokr_factor=getattr(net, "factor", -1),
        use_tucker=getattr(net, "use_tucker", False),
        variant=variant,
        train_t5xxl=net.type == "lora" and section is not None and section.train_t5xxl,  # lora_flux/sd3 args
        train_blocks=spec.flux.train_blocks if spec.flux is not None and net.type == "lora" else "all",
        blocks=dit_blocks_of(spec) if arch in ("flux1", "sd3") else None,
    )
    return size.bytes, size.params


def make_plan(loaded: LoadedSpec) -> Plan:
    spec = loaded.spec
    sizes, scan_issues = _scan(loaded)
    repeats, sources, tokens, repeat_issues = subset_repeats(loaded)
    if scan_issues or repeat_issues:
        raise PlanError(scan_issues + repeat_issues, loaded.path)
    why = None
    if None in repeats:
        final, why = solve_auto_repeats(spec, sizes, repeats)
    else:
        final = [r for r in repeats if r is not None]
    count, steps, epochs = count_steps(spec, sizes, final)
    world = world_size(spec)
    per_epoch = steps_per_epoch(count.batches, spec.training.gradient_accumulation, world)
    too_many = _too_many_saves(loaded, epochs, steps)
    if too_many:
        raise PlanError([too_many], loaded.path)
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
        batches_per_epoch=batches_per_process(count.batches, world),
        epochs=epochs,
        gradient_accumulation=spec.training.gradient_accumulation,
        processes=spec.launch.num_processes,
        machines=spec.launch.num_machines,
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


def plan_checked(loaded: LoadedSpec) -> Plan:
    """make_plan after the files the spec names are checked: `plan` reports a missing base model with the
    dataset's problems. (render may write files for another machine, and run resolves the model itself.)"""
    missing = loaded.file_issues()
    try:
        plan = make_plan(loaded)
    except PlanError as exc:
        raise PlanError(missing + exc.issues, loaded.path) from None
    if missing:
        raise PlanError(missing, loaded.path)
    return plan


def _batch_warning(loaded: LoadedSpec, plan: Plan) -> Issue | None:
    """The learning rates were chosen for one effective batch (optimizer.lr_reference_batch, else one
    process's batch x accumulation, as the guide's rates are); a run with another is warned, with the
    rates scaled the two usual ways. Adaptive optimizers (DAdaptation, Prodigy) find their own."""
    from ..spec.rules import is_adaptive

    opt = loaded.spec.optimizer
    if is_adaptive(opt.type):
        return None
    reference = opt.lr_reference_batch or plan.batch_size * plan.gradient_accumulation
    if reference == plan.effective_batch:
        return None
    ratio = plan.effective_batch / reference
    rate = opt.unet_lr or opt.learning_rate
    at = ("optimizer", "lr_reference_batch") if opt.lr_reference_batch else ("launch", "num_processes")
    said = "optimizer.lr_reference_batch" if opt.lr_reference_batch else "one process (batch x accumulation)"
    return loaded.issue(
        "warning",
        at,
        f"effective batch {plan.effective_batch} (batch {plan.batch_size} x {plan.processes} process(es) x "
        f"{plan.machines} machine(s) x accumulation {plan.gradient_accumulation}) is {ratio:g}x the {reference} "
        f"the learning rates were set for ({said}); the rate {rate:g} scaled: linear {rate * ratio:.3g}, "
        f"square root {rate * ratio**0.5:.3g}. Set optimizer.lr_reference_batch: {plan.effective_batch} once the "
        "rates are chosen for this batch",
    )


def _warnings(loaded: LoadedSpec, plan: Plan) -> list[Issue]:
    out = []
    if (batch := _batch_warning(loaded, plan)) is not None:
        out.append(batch)
    for sub in plan.subsets:
        if not sub.regularization and sub.images < guide.MIN_IMAGES:
            out.append(
                loaded.issue(
                    "warning",
                    ("dataset", "subsets", sub.index, "path"),
                    f"{sub.images} image(s); the guide wants at least 10 and 15 or more is better",
                )
            )
    if plan.total_steps < guide.MIN_STEPS:
        at = ("training", "max_steps") if loaded.spec.training.max_steps else ("training", "epochs")
        out.append(
            loaded.issue(
                "warning",
                at,
                f"{plan.total_steps} total steps; the guide aims above ~{guide.MIN_STEPS} "
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
        "machines": plan.machines,
        "effective_batch": plan.effective_batch,
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
        ("batches per epoch (each process)", plan.batches_per_epoch),
        ("processes per machine", plan.processes),
        ("machines", plan.machines),
        ("gradient accumulation", plan.gradient_accumulation),
        ("effective batch (all processes)", plan.effective_batch),
        ("steps per epoch (each process)", plan.steps_per_epoch),
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
        if plan.family is None
        else f"size not predicted for this network on {plan.family} (lora and LyCORIS locon, loha, lokr on any "
        "family, SD3 once its variant is known; dylora on SD1.x, SD2 and SDXL)"
    )
    console.print(f"saves {len(plan.saves)} file(s), {size}:", highlight=False)
    for name in plan.saves:
        note = " (removed later by save_last_n_epochs)" if name in plan.removed else ""
        console.print(f"  {name}{note}", highlight=False)
