"""Dataset checks before a GPU hour is spent: images, captions, sizes and buckets, per subset.

Most failed trainings are dataset mistakes that sd-scripts reports late or never: "No data found", a
caption file that is empty (an assertion after the model has loaded), captions cut at 75 tokens, a
trigger word that no caption contains, a bucket with fewer images than the batch. This looks at the
folders the way the pinned sd-scripts does (same extensions, same caption lookup, same buckets) and
returns a typed report. By default only file headers and ends and caption files are read.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from .buckets import BucketConfig, SubsetSizes, assign_bucket, dataset_batches
from .images import folder_repeats, list_images
from .report import (
    EXTREME_ASPECT,
    KINDS,
    MIN_SHORT_SIDE,
    SHOWN,
    BucketRow,
    DatasetReport,
    FolderIssue,
    Locate,
    Size,
    SubsetInput,
    SubsetReport,
)
from .scan import find_duplicates, list_subset, read_subset

if TYPE_CHECKING:
    from ..spec import LoadedSpec
    from ..spec.load import Issue
    from .cliptok import ClipCounter


# --------------------------------------------------------------------------- entry points


def check_spec_dataset(
    loaded: LoadedSpec, *, deep: bool = False, tokenizer_dir: str | os.PathLike[str] | None = None
) -> DatasetReport:
    """Check every subset of a loaded spec; issues point at the subset's line in the spec."""
    from .steps import bucket_config, solve_auto_repeats, subset_repeats

    spec = loaded.spec
    repeats, sources, tokens, repeat_issues = subset_repeats(loaded)
    inputs = []
    for i, sub in enumerate(spec.dataset.subsets):
        inputs.append(
            SubsetInput(
                path=sub.path,
                repeats=repeats[i],
                repeats_from=sources[i],
                class_tokens=tokens[i],
                class_tokens_from="spec" if sub.class_tokens else "folder name",
                regularization=sub.regularization,
                caption_extension=sub.caption_extension or spec.dataset.caption_extension,
                caption_prefix=sub.caption_prefix,
                caption_suffix=sub.caption_suffix,
            )
        )

    def locator(i: int | None) -> Locate:
        at = ("dataset", "subsets", i, "path") if i is not None else ("dataset", "batch_size")
        return lambda severity, message: loaded.issue(severity, at, message)

    try:
        cfg: BucketConfig | None = bucket_config(spec)
    except ValueError as exc:
        cfg = None
        repeat_issues.append(loaded.issue("error", ("dataset", "buckets"), str(exc)))

    def solve(reports: list[SubsetReport]) -> list[int]:
        if None in repeats and "auto" in sources and not any(i.severity == "error" for i in repeat_issues):
            try:
                return solve_auto_repeats(spec, [r.sizes for r in reports], repeats)[0]
            except ValueError:
                pass
        return [r or 1 for r in repeats]

    report = _check(
        inputs,
        cfg,
        spec.dataset.batch_size,
        spec.training.max_token_length,
        deep=deep,
        tokenizer_dir=tokenizer_dir,
        locator=locator,
        solve_repeats=solve,
        resolution=_resolution(spec.dataset.resolution),
    )
    report.issues[:0] = repeat_issues
    report.tokenizer_hint = (  # `check SPEC` has no --tokenizer; it looks where `run` keeps them
        "`artlab-kohya fetch SPEC` puts one in $ARTLAB_KOHYA_TOKENIZERS (default ~/.cache/artlab-kohya/tokenizers)"
    )
    return report


def check_folder(
    folder: str | os.PathLike[str],
    *,
    resolution: Size = (512, 512),
    batch_size: int = 1,
    bucketing: bool = True,
    caption_extension: str = ".txt",
    class_tokens: str | None = None,
    max_token_length: int = 75,
    deep: bool = False,
    tokenizer_dir: str | os.PathLike[str] | None = None,
) -> DatasetReport:
    """Check a bare folder: one `N_name` image folder, or a folder of them (kohya's img/ layout)."""
    root = Path(folder)
    subfolders = []
    try:
        if root.is_dir() and folder_repeats(root) is None and not list_images(root):
            subfolders = sorted(p for p in root.iterdir() if folder_repeats(p) is not None and p.is_dir())
    except OSError:  # the folder cannot be listed: checked as one subset, whose check says why
        subfolders = []
    inputs = []
    for path in subfolders or [root]:
        named = folder_repeats(path)
        tokens, tokens_from = (class_tokens, "option") if class_tokens else (None, "")
        if tokens is None and named and named[1]:
            tokens, tokens_from = named[1], "folder name"
        inputs.append(
            SubsetInput(
                path=path,
                repeats=named[0] if named else 1,
                repeats_from="folder" if named else "none",
                class_tokens=tokens,
                class_tokens_from=tokens_from,
                caption_extension=caption_extension,
            )
        )

    def locator(i: int | None) -> Locate:
        where = str(inputs[i].path) if i is not None else str(root)
        return lambda severity, message: FolderIssue(severity, (), message, where)

    cfg = BucketConfig(resolution=resolution, enable=bucketing)
    return _check(
        inputs,
        cfg,
        batch_size,
        max_token_length,
        deep=deep,
        tokenizer_dir=tokenizer_dir,
        locator=locator,
        solve_repeats=lambda reports: [s.repeats or 1 for s in inputs],
        resolution=resolution,
    )


def _resolution(value: int | Sequence[int]) -> Size:
    return (value, value) if isinstance(value, int) else (value[0], value[1])


# --------------------------------------------------------------------------- the checks


def _check(
    inputs: list[SubsetInput],
    cfg: BucketConfig | None,
    batch_size: int,
    max_tokens: int,
    *,
    deep: bool,
    tokenizer_dir: str | os.PathLike[str] | None,
    locator: Callable[[int | None], Locate],
    solve_repeats: Callable[[list[SubsetReport]], list[int]],
    resolution: Size,
) -> DatasetReport:
    counter, how = _token_counter(tokenizer_dir)
    reports = [SubsetReport(i, sub) for i, sub in enumerate(inputs)]
    issues: list[Issue | FolderIssue] = []
    paths_by_subset: list[list[Path]] = []
    for report in reports:
        paths, problems = list_subset(report)
        issues += [locator(report.index)(sev, msg) for sev, msg in problems]
        if paths is not None:
            read_subset(report, paths, counter, max_tokens, deep)
        paths_by_subset.append(paths or [])
    for index, entry in find_duplicates(paths_by_subset):
        reports[index].add("duplicate", entry)
    repeats = solve_repeats(reports)
    for report, used in zip(reports, repeats, strict=True):
        report.repeats = used
    rows: list[BucketRow] = []
    if cfg is not None:
        rows = _buckets(reports, cfg, repeats, batch_size)
        _size_findings(reports, cfg)
    for report in reports:
        issues += _issues_for(report, locator(report.index), max_tokens, how)
    if batch_size > 1:
        small = [r for r in rows if r.images < batch_size]
        if small:
            shown = ", ".join(
                f"{r.resolution[0]}x{r.resolution[1]} ({r.images} image(s), x repeats {r.images_x_repeats})"
                for r in small
            )
            issues.append(
                locator(None)(
                    "warning",
                    f"{len(small)} bucket(s) hold fewer images than the batch size {batch_size}: {shown}; their "
                    "batches repeat the same images or come out short",
                )
            )
    return DatasetReport(
        subsets=reports,
        buckets=rows,
        resolution=resolution,
        bucketing=bool(cfg and cfg.enable),
        batch_size=batch_size,
        max_tokens=max_tokens,
        tokens=how,
        deep=deep,
        issues=issues,
    )


def _token_counter(tokenizer_dir: str | os.PathLike[str] | None) -> tuple[ClipCounter | None, str]:
    from .cliptok import find_tokenizer, load_counter

    folder = find_tokenizer(tokenizer_dir)
    if folder is None:
        return None, "estimate"
    try:
        return load_counter(folder), f"CLIP BPE ({folder})"
    except (OSError, UnicodeDecodeError):
        return None, "estimate"


def _buckets(reports: list[SubsetReport], cfg: BucketConfig, repeats: list[int], batch_size: int) -> list[BucketRow]:
    """The buckets sd-scripts makes for this dataset, with distinct images and images x repeats."""
    memo: dict[Size, Size | None] = {}

    def bucket_of(size: Size) -> Size | None:
        if size not in memo:
            try:
                memo[size] = assign_bucket(cfg, size)
            except ValueError:
                memo[size] = None
        return memo[size]

    for report in reports:
        for size in report.sizes:
            bucket = bucket_of(size)
            if bucket is None:
                report.add("no_bucket", f"{size[0]}x{size[1]}: too small or elongated for a bucket")
                continue
            report.buckets[bucket] = report.buckets.get(bucket, 0) + 1
    subsets = [
        SubsetSizes(
            sizes=tuple(s for s in r.sizes if bucket_of(s) is not None),
            num_repeats=max(repeats[r.index], 1),
            is_reg=r.input.regularization,
            image_dir=str(r.path),
        )
        for r in reports
    ]
    try:
        count = dataset_batches(cfg, subsets, batch_size)
    except ValueError:
        return []
    distinct: dict[Size, int] = {}
    for report in reports:
        for bucket, n in report.buckets.items():
            distinct[bucket] = distinct.get(bucket, 0) + n
    return [BucketRow(res, distinct.get(res, 0), n, -(-n // batch_size)) for res, n in sorted(count.buckets.items())]


def _size_findings(reports: list[SubsetReport], cfg: BucketConfig) -> None:
    kinds_of: dict[Size, list[str]] = {}
    for report in reports:
        for name, size in zip(report.names, report.sizes, strict=True):
            if size not in kinds_of:
                w, h = size
                kinds = []
                if min(w, h) < MIN_SHORT_SIDE:
                    kinds.append("small")
                if not cfg.enable and (w % 64 or h % 64):
                    kinds.append("not_multiple_64")
                if max(w, h) / min(w, h) >= EXTREME_ASPECT:
                    kinds.append("extreme_aspect")
                kinds_of[size] = kinds
            for kind in kinds_of[size]:
                report.add(kind, f"{name}: {size[0]}x{size[1]}")


def _issues_for(report: SubsetReport, at: Locate, max_tokens: int, how: str) -> list[Issue | FolderIssue]:
    out = []
    sub = report.input
    for kind, (severity, text) in KINDS.items():
        entries = report.findings.get(kind)
        if not entries:
            continue
        n = len(entries)
        if kind == "caption_missing":
            text = (
                f"of {report.images} image(s) have no caption file; they train on the class tokens '{sub.class_tokens}'"
            )
        elif kind == "caption_too_long":
            counted = "counted with the CLIP tokenizer" if how != "estimate" else "an estimate: no CLIP tokenizer found"
            text = f"caption(s) are longer than the {max_tokens}-token window ({counted}); sd-scripts cuts the rest"
        elif kind == "trigger_missing":
            text = f"caption(s) lack the class tokens '{sub.class_tokens}' (from the {sub.class_tokens_from})"
        out.append(at(severity, f"{n} {text}: {_listed(entries)}"))
    return out


def _listed(entries: Sequence[str]) -> str:
    shown = ", ".join(entries[:SHOWN])
    return shown + (f", and {len(entries) - SHOWN} more" if len(entries) > SHOWN else "")
