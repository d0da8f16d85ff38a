"""What a dataset check found: typed per-subset findings, bucket rows, issues; as JSON or rich tables."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    from rich.console import Console

    from ..spec.load import Issue

MIN_SHORT_SIDE = 512
EXTREME_ASPECT = 3.0
SHOWN = 5  # file names listed in one message
Severity = Literal["error", "warning"]
Size = tuple[int, int]

KINDS: dict[str, tuple[Severity, str]] = {
    "unreadable": ("error", "image(s) cannot be read"),
    "decode_failed": ("error", "image(s) fail to decode in full"),
    "no_bucket": ("error", "image(s) fit no bucket"),
    "caption_empty_file": (
        "error",
        "caption file(s) are empty (0 bytes): sd-scripts stops with 'caption file is empty'",
    ),
    "caption_not_utf8": ("error", "caption file(s) are not UTF-8: sd-scripts stops with a UnicodeDecodeError"),
    "caption_unreadable": ("error", "caption file(s) cannot be read: sd-scripts stops when it opens them"),
    "caption_missing_no_tokens": (
        "error",
        "image(s) have no caption file and the subset has no class tokens: they would train on an empty caption",
    ),
    "caption_missing": ("warning", "image(s) have no caption file"),
    "caption_not_file": (
        "warning",
        "caption name(s) are not regular files (a folder, FIFO or broken link): sd-scripts passes over them",
    ),
    "caption_blank": ("warning", "caption(s) start with a blank line: sd-scripts reads only the first line"),
    "caption_multiline": ("warning", "caption(s) have more than one line: sd-scripts reads only the first"),
    "caption_orphan": ("warning", "caption file(s) belong to no image"),
    "caption_too_long": ("warning", "caption(s) are longer than the token window"),
    "trigger_missing": ("warning", "caption(s) lack the class tokens"),
    "extension_mismatch": ("warning", "image(s) are not what their extension says (sd-scripts goes by content)"),
    "skipped_files": ("warning", "file(s) look like images but sd-scripts skips them (extension)"),
    "subfolder_images": ("warning", "subfolder(s) hold images, which sd-scripts does not look into"),
    "duplicate": ("warning", "image(s) are exact duplicates of another (same bytes)"),
    "small": ("warning", f"image(s) are below {MIN_SHORT_SIDE} px on the short side"),
    "not_multiple_64": ("warning", "image(s) have a side that is not a multiple of 64 (bucketing is off)"),
    "extreme_aspect": ("warning", f"image(s) have an extreme aspect ratio ({EXTREME_ASPECT:g}:1 or more)"),
    "exif_rotated": ("warning", "image(s) carry an EXIF rotation that sd-scripts ignores (trained as stored)"),
}


@dataclass(frozen=True)
class SubsetInput:
    """One image folder to check and how the run will use it."""

    path: Path
    repeats: int | None = None
    repeats_from: str = "none"  # "spec", "folder", "auto", "option" or "none"
    class_tokens: str | None = None
    class_tokens_from: str = ""  # "spec", "folder name", "option"
    regularization: bool = False
    caption_extension: str = ".txt"
    caption_prefix: str | None = None
    caption_suffix: str | None = None


@dataclass
class SubsetReport:
    index: int
    input: SubsetInput
    images: int = 0
    captioned: int = 0
    repeats: int | None = None  # as used for the bucket table: `auto` solved, a broken `folder` as 1
    findings: dict[str, list[str]] = field(default_factory=dict)
    sizes: list[Size] = field(default_factory=list)  # readable images, in sd-scripts' order
    names: list[str] = field(default_factory=list)  # their file names
    buckets: dict[Size, int] = field(default_factory=dict)  # distinct images per bucket

    @property
    def path(self) -> Path:
        return self.input.path

    def add(self, kind: str, entry: str) -> None:
        self.findings.setdefault(kind, []).append(entry)


@dataclass(frozen=True)
class BucketRow:
    resolution: Size
    images: int  # distinct images, train and reg
    images_x_repeats: int  # what sd-scripts logs as the bucket's count
    batches: int


@dataclass
class DatasetReport:
    subsets: list[SubsetReport]
    buckets: list[BucketRow]
    resolution: Size
    bucketing: bool
    batch_size: int
    max_tokens: int
    tokens: str  # how captions were counted: "CLIP BPE (<folder>)" or "estimate"
    deep: bool
    issues: list[Issue | FolderIssue] = field(default_factory=list)
    tokenizer_hint: str = "--tokenizer DIR"  # how to give a tokenizer to the command that made the report

    @property
    def errors(self) -> list[Issue | FolderIssue]:
        return [i for i in self.issues if i.severity == "error"]

    @property
    def warnings(self) -> list[Issue | FolderIssue]:
        return [i for i in self.issues if i.severity == "warning"]


Locate = Callable[[Severity, str], "Issue | FolderIssue"]


@dataclass(frozen=True)
class FolderIssue:
    """A problem of a bare folder, printed as spec issues are (`where: warning: message`).

    Not spec.Issue itself only because importing the spec package loads pydantic, an eighth of the
    1-second budget of `dataset check` on 10,000 images; the fields and the text are the same.
    """

    severity: Severity
    path: tuple[str | int, ...]
    message: str
    where: str = ""

    def __str__(self) -> str:
        label = "" if self.severity == "error" else "warning: "
        return f"{self.where}: {label}{self.message}"


# --------------------------------------------------------------------------- output


def report_json(report: DatasetReport) -> dict[str, Any]:
    return {
        "ok": not report.errors,
        "errors": [str(i) for i in report.errors],
        "warnings": [str(i) for i in report.warnings],
        "resolution": list(report.resolution),
        "bucketing": report.bucketing,
        "batch_size": report.batch_size,
        "max_tokens": report.max_tokens,
        "tokens_counted_by": report.tokens,
        "deep": report.deep,
        "subsets": [
            {
                "path": str(s.path),
                "images": s.images,
                "repeats": s.repeats,
                "repeats_from": s.input.repeats_from,
                "class_tokens": s.input.class_tokens,
                "regularization": s.input.regularization,
                "captioned": s.captioned,
                "findings": {k: list(v) for k, v in s.findings.items()},
                "buckets": [{"resolution": list(k), "images": v} for k, v in sorted(s.buckets.items())],
            }
            for s in report.subsets
        ],
        "buckets": [
            {
                "resolution": list(b.resolution),
                "images": b.images,
                "images_x_repeats": b.images_x_repeats,
                "batches": b.batches,
            }
            for b in report.buckets
        ],  # fmt: skip
    }


_SHORT = {
    "caption_missing": "no caption",
    "caption_missing_no_tokens": "no caption",
    "caption_empty_file": "empty caption",
    "caption_blank": "blank caption",
    "caption_not_utf8": "not UTF-8",
    "caption_unreadable": "unreadable caption",
    "caption_not_file": "caption not a file",
    "caption_multiline": "multi-line",
    "caption_orphan": "orphan caption",
    "caption_too_long": "too long",
    "trigger_missing": "no trigger",
    "unreadable": "unreadable",
    "decode_failed": "broken",
    "no_bucket": "no bucket",
    "extension_mismatch": "wrong ext",
    "skipped_files": "skipped",
    "subfolder_images": "in subfolder",
    "duplicate": "duplicate",
    "small": f"<{MIN_SHORT_SIDE} px",
    "not_multiple_64": "not x64",
    "extreme_aspect": "extreme aspect",
    "exif_rotated": "EXIF rotated",
}


def print_report(report: DatasetReport, console: Console | None = None) -> None:
    """The per-subset table and the bucket table; the caller prints the issues."""
    from rich.console import Console
    from rich.table import Table

    console = console or Console()
    table = Table(title="dataset", title_justify="left")
    for column in ("folder", "images", "repeats", "captions", "findings"):
        table.add_column(column, justify="right" if column in ("images", "repeats") else "left", overflow="fold")
    for s in report.subsets:
        findings = ", ".join(
            f"[{'red' if severity == 'error' else 'yellow'}]{len(s.findings[k])} {_SHORT[k]}[/]"
            for k, (severity, _) in KINDS.items()
            if s.findings.get(k)
        )
        label = str(s.path) + (" (reg)" if s.input.regularization else "")
        repeats = f"{s.repeats} ({s.input.repeats_from})" if s.repeats is not None else s.input.repeats_from
        table.add_row(label, str(s.images), repeats, f"{s.captioned}/{s.images}", findings or "[green]ok[/]")
    console.print(table)
    if report.buckets:
        buckets = Table(title=f"buckets (batch size {report.batch_size})", title_justify="left")
        for column in ("bucket", "images", "images x repeats", "batches"):
            buckets.add_column(column, justify="right")
        for b in report.buckets:
            style = "yellow" if report.batch_size > 1 and b.images < report.batch_size else ""
            buckets.add_row(
                f"{b.resolution[0]}x{b.resolution[1]}", str(b.images), str(b.images_x_repeats), str(b.batches),
                style=style,
            )  # fmt: skip
        console.print(buckets)
    counted = (
        report.tokens if report.tokens != "estimate" else f"estimate (no CLIP tokenizer found; {report.tokenizer_hint})"
    )
    console.print(f"caption tokens: {counted}; window {report.max_tokens}", highlight=False)
