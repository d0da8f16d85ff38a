"""Bucket and step arithmetic of sd-scripts' DreamBooth-style datasets, without torch or numpy.

How many optimizer steps a run takes follows from image sizes alone: each image goes to a bucket
(`BucketManager.select_bucket`), each bucket is cut into batches of `batch_size` (`BaseDataset.make_buckets`),
the batches of all datasets form one epoch (`DatasetGroup`, a ConcatDataset), and train_network.py divides
that by processes and gradient accumulation. This module redoes that arithmetic for the pinned sd-scripts
(48d368fa), so a spec can be priced in steps before anything is launched. Pure functions, no I/O.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

__all__ = [
    "BucketConfig",
    "DatasetCount",
    "SubsetSizes",
    "assign_bucket",
    "batches_per_process",
    "bucket_resolutions",
    "dataset_batches",
    "epochs_for_steps",
    "steps_per_epoch",
    "total_steps",
]

Size = tuple[int, int]


@dataclass(frozen=True)
class BucketConfig:
    """One dataset's resolution and bucketing settings, as sd-scripts' dataset config names them.

    resolution is (width, height); `resolution = 512` in a dataset TOML means (512, 512). min_reso and
    max_reso are used as `adjust_min_max_bucket_reso_by_steps` leaves them: min rounded down and max
    rounded up to a multiple of reso_steps. With enable=True sd-scripts asserts min <= both sides of
    resolution <= max after that rounding; the same check raises ValueError here. The defaults are
    train_util's argparse defaults.
    """

    resolution: Size
    enable: bool = False
    min_reso: int = 256
    max_reso: int = 1024
    reso_steps: int = 64
    no_upscale: bool = False

    def __post_init__(self) -> None:
        w, h = self.resolution
        if w <= 0 or h <= 0:
            raise ValueError(f"resolution: both sides must be positive (got {w}x{h})")
        if not self.enable:
            return
        if self.reso_steps <= 0:
            raise ValueError(f"reso_steps: must be positive (got {self.reso_steps})")
        if min(w, h) < self.effective_min_reso:
            raise ValueError(
                f"min_reso: must be at most the shorter side of resolution {w}x{h} "
                f"(got {self.min_reso}, used as {self.effective_min_reso})"
            )
        if max(w, h) > self.effective_max_reso:
            raise ValueError(
                f"max_reso: must be at least the longer side of resolution {w}x{h} "
                f"(got {self.max_reso}, used as {self.effective_max_reso})"
            )

    @property
    def effective_min_reso(self) -> int:
        return self.min_reso - self.min_reso % self.reso_steps

    @property
    def effective_max_reso(self) -> int:
        rest = self.max_reso % self.reso_steps
        return self.max_reso if rest == 0 else self.max_reso + self.reso_steps - rest


def bucket_resolutions(cfg: BucketConfig) -> list[Size]:
    """The predefined buckets, sorted, as `model_util.make_bucket_resolutions` makes them.

    Without bucketing there is one, the resolution itself. With no_upscale there is no predefined list
    (sd-scripts skips make_buckets and derives each image's bucket from its size), so this returns [].
    """
    if not cfg.enable:
        return [cfg.resolution]
    if cfg.no_upscale:
        return []
    w, h = cfg.resolution
    area, step = w * h, cfg.reso_steps
    lo, hi = cfg.effective_min_reso, cfg.effective_max_reso
    side = int(math.sqrt(area) // step) * step  # the square bucket of the same area
    resos = {(side, side)}
    for width in range(lo, hi + 1, step):
        height = min(hi, area // width // step * step)
        if height >= lo:
            resos.update({(width, height), (height, width)})
    return sorted(resos)


def assign_bucket(cfg: BucketConfig, size: Size) -> Size:
    """The bucket (width, height) sd-scripts' BucketManager.select_bucket gives an image of this size."""
    return _bucketer(cfg)(size)


def _bucketer(cfg: BucketConfig) -> Callable[[Size], Size]:
    """select_bucket with the predefined list computed once, for many images of one dataset."""
    if not cfg.enable:
        return lambda size: _fixed_bucket(cfg, size)
    if cfg.no_upscale:
        return lambda size: _no_upscale_bucket(cfg, size)
    resos = bucket_resolutions(cfg)
    exact = set(resos)
    ratios = [rw / rh for rw, rh in resos]

    def pick(size: Size) -> Size:
        w, h = _check_size(size)
        if size in exact:  # an image already at a bucket's size keeps it
            return size
        ar = w / h
        errors = [abs(r - ar) for r in ratios]  # nearest aspect ratio; first one on a tie (numpy argmin)
        return resos[errors.index(min(errors))]

    return pick


def _fixed_bucket(cfg: BucketConfig, size: Size) -> Size:
    # No bucketing: one bucket at the resolution; every image is resized to cover it, then cropped.
    _check_size(size)
    return cfg.resolution


def _no_upscale_bucket(cfg: BucketConfig, size: Size) -> Size:
    # select_bucket's no_upscale branch: shrink to the resolution's area if larger, keeping the aspect
    # ratio, with one side rounded to reso_steps (whichever rounding keeps the ratio closer); then crop each
    # side down to a multiple of reso_steps. Never enlarged, so min_reso/max_reso play no part.
    w, h = _check_size(size)
    step = cfg.reso_steps
    max_area = cfg.resolution[0] * cfg.resolution[1]
    ar = w / h
    if w * h > max_area:
        rw = math.sqrt(max_area * ar)
        rh = max_area / rw

        def round_to_steps(x: float) -> int:
            x = int(x + 0.5)
            return x - x % step

        bw = round_to_steps(rw)
        bh_for_bw = round_to_steps(bw / ar)
        bh = round_to_steps(rh)
        bw_for_bh = round_to_steps(bh * ar)
        if bh_for_bw == 0 or bh == 0:
            raise ValueError(f"{w}x{h}: too elongated for bucket_no_upscale with reso_steps {step}")
        if abs(bw / bh_for_bw - ar) < abs(bw_for_bh / bh - ar):
            resized = (bw, int(bw / ar + 0.5))
        else:
            resized = (int(bh * ar + 0.5), bh)
    else:
        resized = (w, h)
    bucket = (resized[0] - resized[0] % step, resized[1] - resized[1] % step)
    if 0 in bucket:
        raise ValueError(f"{w}x{h}: a side is below reso_steps {step}; sd-scripts would make a {bucket} bucket")
    return bucket


def _check_size(size: Size) -> Size:
    if size[0] <= 0 or size[1] <= 0:
        raise ValueError(f"image size must be positive (got {size[0]}x{size[1]})")
    return size


@dataclass(frozen=True)
class SubsetSizes:
    """One DreamBooth subset: its image sizes (as read_size gives them, in list_images order), repeats, role.

    image_dir matters only for duplicates: sd-scripts drops a later subset whose image_dir string equals
    an earlier kept one's (DreamBoothSubset.__eq__). Leave it None to count every subset.
    """

    sizes: Sequence[Size]
    num_repeats: int = 1
    is_reg: bool = False
    image_dir: str | None = None


@dataclass(frozen=True)
class DatasetCount:
    """What one training dataset contributes to an epoch.

    buckets: images x repeats per bucket, regularisation images included as sd-scripts really places
      them (see dataset_batches), sorted by resolution; this is the "bucket N: resolution (w, h), count"
      log. Only non-empty buckets are listed.
    num_train_images: train images x repeats ("num train images * repeats").
    num_reg_images: reg images x repeats as sd-scripts reports it ("num reg images"), whether used or not.
    num_reg_used: reg images x repeats actually in the buckets: num_train_images (more if one reg
      subset's repeats overshoot it), or 0 when the dataset has no train images.
    batches: len(dataset), the batches this dataset adds to each epoch.
    """

    buckets: dict[Size, int] = field(default_factory=dict)
    num_train_images: int = 0
    num_reg_images: int = 0
    num_reg_used: int = 0
    batches: int = 0


def dataset_batches(cfg: BucketConfig, subsets: Sequence[SubsetSizes], batch_size: int) -> DatasetCount:
    """Bucket counts and batches per epoch of one training DreamBoothDataset, as its __init__ and
    make_buckets compute them.

    Subsets with num_repeats < 1, no images, or a duplicate image_dir are skipped, as sd-scripts skips
    them. Each train image sits in its bucket num_repeats times. Regularisation images are not simply
    added: sd-scripts walks them in subset order, then file order, giving each its subset's num_repeats
    until the running total reaches the train total (the images after that point are left out), then, if
    still short, adds one repeat at a time round-robin until it matches exactly. Each bucket yields
    ceil(count / batch_size) batches: batches never mix buckets, so small buckets cost partial batches.

    Not modelled: validation_split (which images it keeps is random), the same file listed under two
    different image_dir strings (sd-scripts keys images by path, so the later one wins), and sizes taken
    from latent cache file names (sd-scripts reads "<name>_<W>x<H>_sd.npz" names instead of the image when
    such files sit beside the images).
    """
    if batch_size < 1:
        raise ValueError(f"batch_size: must be at least 1 (got {batch_size})")
    select = _bucketer(cfg)
    memo: dict[Size, Size] = {}  # datasets repeat a few sizes many times

    def bucket_of(size: Size) -> Size:
        if size not in memo:
            memo[size] = select(size)
        return memo[size]

    counts: dict[Size, int] = {}
    reg: list[tuple[Size, int]] = []  # (size, repeats) per reg image, in sd-scripts' order
    n_train = n_reg = 0
    kept_dirs: set[str] = set()
    for subset in subsets:
        if subset.num_repeats < 1 or not subset.sizes:
            continue
        if subset.image_dir is not None:
            if subset.image_dir in kept_dirs:
                continue
            kept_dirs.add(subset.image_dir)
        if subset.is_reg:
            reg += [(size, subset.num_repeats) for size in subset.sizes]
            n_reg += subset.num_repeats * len(subset.sizes)
            continue
        for size in subset.sizes:
            bucket = bucket_of(size)
            counts[bucket] = counts.get(bucket, 0) + subset.num_repeats
        n_train += subset.num_repeats * len(subset.sizes)

    n_used = 0
    for size, repeats in _place_reg(reg, n_train):  # only the reg images sd-scripts keeps get sized
        bucket = bucket_of(size)
        counts[bucket] = counts.get(bucket, 0) + repeats
        n_used += repeats
    batches = sum(-(-count // batch_size) for count in counts.values())
    return DatasetCount(dict(sorted(counts.items())), n_train, n_reg, n_used, batches)


def _place_reg(reg: list[tuple[Size, int]], n_train: int) -> list[tuple[Size, int]]:
    """(size, repeats) of the reg images sd-scripts registers, from DreamBoothDataset.__init__'s loop."""
    if not reg or n_train == 0:
        return []
    placed: list[tuple[Size, int]] = []
    total = 0
    for size, repeats in reg:  # first pass: whole subsets' repeats, stop as soon as the total is reached
        placed.append((size, repeats))
        total += repeats
        if total >= n_train:
            return placed
    short = n_train - total  # later passes: +1 per image, round-robin, until equal
    rounds, extra = divmod(short, len(placed))
    return [(size, n + rounds + (1 if i < extra else 0)) for i, (size, n) in enumerate(placed)]


def batches_per_process(batches: int | Sequence[int], num_processes: int = 1) -> int:
    """len(train_dataloader) once accelerate has sharded it: ceil(batches / num_processes).

    `batches` is the sum of len(dataset) over the DatasetGroup (or that list). The DataLoader runs with
    batch_size=1 over dataset batches, and accelerate's BatchSamplerShard (even_batches=True) gives every
    process the same count, repeating batches to fill the last round. This is the "num batches per epoch"
    that train_network.py prints and stores as ss_num_batches_per_epoch.
    """
    total = batches if isinstance(batches, int) else sum(batches)
    if total < 1:
        raise ValueError("no batches: sd-scripts stops with 'No data found' before training")
    if num_processes < 1:
        raise ValueError(f"num_processes: must be at least 1 (got {num_processes})")
    return -(-total // num_processes)


def steps_per_epoch(batches: int | Sequence[int], grad_accum: int = 1, num_processes: int = 1) -> int:
    """Optimizer steps per epoch: ceil(batches per process / gradient_accumulation_steps).

    accelerate syncs at the end of each epoch's dataloader, so a partial accumulation still steps.
    """
    if grad_accum < 1:
        raise ValueError(f"grad_accum: must be at least 1 (got {grad_accum})")
    return -(-batches_per_process(batches, num_processes) // grad_accum)


def total_steps(batches: int | Sequence[int], epochs: int, grad_accum: int = 1, num_processes: int = 1) -> int:
    """max_train_steps as train_network.py sets it from max_train_epochs.

    It computes `epochs * ceil(len(dataloader) / num_processes / grad_accum)` on the unsharded loader,
    which equals epochs * steps_per_epoch.
    """
    if epochs < 1:
        raise ValueError(f"epochs: must be at least 1 (got {epochs})")
    return epochs * steps_per_epoch(batches, grad_accum, num_processes)


def epochs_for_steps(
    batches: int | Sequence[int], max_train_steps: int, grad_accum: int = 1, num_processes: int = 1
) -> int:
    """The epoch count train_network.py derives when given max_train_steps (default 1600), not epochs.

    ceil(max_train_steps / steps_per_epoch): the last epoch stops early, once max_train_steps is reached.
    Steps per epoch shrink with more processes, so a step count carried over from one GPU to N GPUs
    trains about N times as many epochs.
    """
    if max_train_steps < 1:
        raise ValueError(f"max_train_steps: must be at least 1 (got {max_train_steps})")
    return -(-max_train_steps // steps_per_epoch(batches, grad_accum, num_processes))
