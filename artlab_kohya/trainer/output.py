"""sd-scripts' console output, turned into typed events.

The engine writes to two pipes. stdout carries `print` output (epoch headers, checkpoint
paths, the "running training" summary, the LyCORIS logger); stderr carries tqdm bars,
separated by "\\r" and only closed by "\\n", and Python logging through rich, wrapped at 80
columns with a 29-space continuation indent. Log lines are written straight after a tqdm
frame, with no newline in between. The facts behind every rule here were measured on real runs;
the transcripts in tests/data/transcripts are their raw output.

`Parser` is incremental and pure: text in, events out, no clock and no I/O, and the events do
not depend on how the text was chunked. Two things are emitted lazily, because only the next
line tells where they end: a log record (wrapped continuation lines may follow) and a
traceback (chained exceptions may follow). A tqdm frame is emitted as soon as its closing
"]" has arrived, without waiting for the next "\\r".

Each logical line yields one event: the specific one when it is understood (`Step`,
`EpochStarted`, `CheckpointSaved`, ...), else `LogRecord` or `Line`. Problems (`NoDataFound`,
`OutOfMemory`, ...) are diagnoses; they follow the event that revealed them.
"""

from __future__ import annotations

import math
import re
import unicodedata
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

Stream = Literal["stdout", "stderr"]


# --- events -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Line:
    """An output line that nothing below recognised (ANSI colour removed)."""

    stream: Stream
    text: str


@dataclass(frozen=True)
class LogRecord:
    """A Python logging record: rich's layout (wrapped lines re-joined) or the LyCORIS one."""

    level: str  # DEBUG, INFO, WARNING, ERROR, CRITICAL
    message: str  # a newline only where the message itself had an indented next line
    location: str | None = None  # "train_util.py:784" (rich) or "LyCORIS" (logger name)
    time: str | None = None  # "2026-11-28 02:27:21"; rich leaves it blank within one second


@dataclass(frozen=True)
class Progress:
    """A frame of a tqdm bar other than training's "steps" (latents, captions, validation)."""

    desc: str  # "" for the unnamed bars
    n: int
    total: int | None
    elapsed: float  # seconds
    remaining: float | None  # seconds; None while tqdm shows "?"
    rate: float | None  # iterations per second, "s/it" already inverted
    postfix: tuple[tuple[str, str], ...] = ()
    stage: str = ""  # an unnamed bar's work, as the log line before it said: "caching latents", ...


@dataclass(frozen=True)
class Step:
    """A frame of the "steps" bar.

    tqdm prints each optimizer step twice: after update(1), still with the previous step's
    postfix, then after set_postfix with the new average. So `avr_loss` is the latest
    average the bar shows, which is step `step`'s or step `step - 1`'s.
    """

    step: int
    total: int
    elapsed: float
    remaining: float | None
    rate: float | None  # optimizer steps per second
    avr_loss: float | None  # None before the first postfix; may be nan
    postfix: tuple[tuple[str, str], ...] = ()


class StepLosses:
    """Each optimizer step once, with its own average loss, from the frames of the "steps" bar.

    A step's own loss is on its second frame (see Step). tqdm may skip the first frame when steps come
    faster than its refresh interval, so a step with one frame is final when the next step begins; a
    frame of a step already given (tqdm repeats the last one on close) gives nothing.
    """

    def __init__(self) -> None:
        self._pending: Step | None = None
        self._done = 0

    def final(self, frame: Step) -> Step | None:
        """The step this frame completes, if any."""
        pending, self._pending = self._pending, None
        if frame.step <= self._done:
            self._pending = pending
            return None
        if pending is not None and pending.step == frame.step:
            return self._give(frame)
        self._pending = frame
        return self._give(pending) if pending is not None else None

    def _give(self, step: Step) -> Step | None:
        self._done = max(self._done, step.step)
        return step if step.avr_loss is not None else None


@dataclass(frozen=True)
class TrainingSummary:
    """The "running training / 学習開始" block (train_network.py; the fine-tune scripts print a subset)."""

    train_images: int | None = None  # "num train images * repeats" (or "num examples")
    validation_images: int | None = None
    reg_images: int | None = None
    batches_per_epoch: int | None = None  # per process, after accelerate's sharding
    epochs: int | None = None
    batch_size_per_device: tuple[int, ...] = ()  # one per dataset
    gradient_accumulation_steps: int | None = None
    total_steps: int | None = None

    @property
    def steps_per_epoch(self) -> int | None:
        """Optimizer steps per epoch, as train_network.py computes it."""
        if self.batches_per_epoch is None:
            return None
        return math.ceil(self.batches_per_epoch / (self.gradient_accumulation_steps or 1))


@dataclass(frozen=True)
class EpochStarted:
    epoch: int  # 1-based
    total: int


@dataclass(frozen=True)
class CheckpointSaved:
    path: Path  # as the engine printed it, relative to its working directory if relative


@dataclass(frozen=True)
class CheckpointRemoved:
    path: Path


@dataclass(frozen=True)
class ModelSaved:
    """The engine's last word on a successful run ("model saved.")."""


@dataclass(frozen=True)
class Traceback:
    """A whole Python traceback block, chained exceptions included; the type is the last one's."""

    exc_type: str  # "voluptuous.error.MultipleInvalid"; "" if the block was cut short
    message: str
    text: str


@dataclass(frozen=True)
class OutOfMemory:
    message: str


@dataclass(frozen=True)
class NanLoss:
    """The average loss on the bar became nan or inf (reported once)."""

    step: int


@dataclass(frozen=True)
class NoDataFound:
    """No training images: sd-scripts logs this and exits 0 without writing a file."""

    message: str


@dataclass(frozen=True)
class ModuleNotFound:
    module: str
    message: str


@dataclass(frozen=True)
class UsageError:
    """argparse refused the command line (exit status 2)."""

    prog: str
    message: str


@dataclass(frozen=True)
class LauncherFailed:
    """accelerate's CalledProcessError: the training process's own status (accelerate exits 1)."""

    returncode: int  # negative: killed by that signal
    command: str


Problem = OutOfMemory | NanLoss | NoDataFound | ModuleNotFound | UsageError | LauncherFailed
Event = (
    Line
    | LogRecord
    | Progress
    | Step
    | TrainingSummary
    | EpochStarted
    | CheckpointSaved
    | CheckpointRemoved
    | ModelSaved
    | Traceback
    | Problem
)


# --- patterns -----------------------------------------------------------------------------

_ANSI = re.compile(r"\x1b\[[0-?]*[ -/]*[@-~]")
_NEWLINE = re.compile(r"[\r\n]")
# {desc}: {pct}%|{bar}| {n}/{total} [{elapsed}<{remaining}, {rate}{, postfix}]  and, without a
# total, {desc}: {n}it [{elapsed}, {rate}{, postfix}]. The match ends at the first "]".
_FRAME = re.compile(
    r"(?:(?P<desc>[^\r\n|]*?): ?)?"
    r"(?:\s*(?P<pct>\d+)%\|[^|]*\|\s*(?P<n>\d+)/(?P<total>\d+)"
    r" \[(?P<elapsed>[\d:]+)<(?P<remaining>[\d:]+|\?)"
    r"|\s*(?P<n_only>\d+)\w* \[(?P<elapsed_only>[\d:]+))"
    r", *(?P<rate>\?|[\d.]+[kMGT]?)(?P<unit>\w+/s|s/\w+)"
    r"(?:, (?P<postfix>[^\]]*))?\]"
)
_LEVELS = "DEBUG|INFO|WARNING|ERROR|CRITICAL"
_RICH_HEAD = re.compile(rf"(?P<time>\d{{4}}-\d\d-\d\d \d\d:\d\d:\d\d| {{19}}) (?P<level>{_LEVELS})(?: |$)")
_RICH_INDENT = 29  # len("2026-11-28 02:27:21 WARNING  ")
_LOCATION = re.compile(r"(?P<msg>.*?)\s+(?P<loc>[^\s:]+:\d+)\s*$")
_GLUED_LEVEL = re.compile(rf"(?:{_LEVELS}) ")
_LYCORIS = re.compile(
    rf"(?P<time>\d{{4}}-\d\d-\d\d \d\d:\d\d:\d\d)\|\[(?P<name>[^\]]+)\]-(?P<level>{_LEVELS}): ?(?P<msg>.*)"
)
_BASIC_LOG = re.compile(rf"(?P<level>{_LEVELS}):(?P<name>[\w.]*):(?P<msg>.*)")
_USAGE_ERROR = re.compile(r"(?P<prog>\S+): error: (?P<msg>.*)")
_EPOCH = re.compile(r"epoch (?P<k>\d+)/(?P<n>\d+)")
_SAVING = re.compile(r"saving checkpoint: (?P<path>.+)")
_REMOVING = re.compile(r"removing old checkpoint: (?P<path>.+)")
_SUMMARY_ITEM = re.compile(r"  (?P<key>[a-z][a-z *]*?) / .*?(?:: | = )(?P<value>\d+(?:, \d+)*)\s*")
_SUMMARY_KEYS = {
    "num train images * repeats": "train_images",
    "num examples": "train_images",
    "num validation images * repeats": "validation_images",
    "num reg images": "reg_images",
    "num batches per epoch": "batches_per_epoch",
    "num epochs": "epochs",
    "batch size per device": "batch_size_per_device",
    "gradient accumulation steps": "gradient_accumulation_steps",
    "total optimization steps": "total_steps",
}
# Log lines that announce the unnamed bar after them (library/train_util.py: "caching latents...").
_STAGES = {"caching latents": "caching latents", "caching text encoder outputs": "caching text encoder outputs"}
_TRACEBACK = "Traceback (most recent call last):"
_CHAINED = ("During handling of the above exception", "The above exception was the direct cause")
_EXC_LINE = re.compile(r"(?P<type>[A-Za-z_][\w.]*)(?:: ?(?P<msg>.*))?")
_NO_MODULE = re.compile(r"No module named '(?P<name>[^']+)'")
# `python -m accelerate.commands.launch` without accelerate: runpy's one line, after the interpreter's
# path ("/venv/bin/python: Error while finding module specification for 'accelerate.commands.launch'
# (ModuleNotFoundError: No module named 'accelerate')", or "...: No module named accelerate"), no traceback
_RUNPY_NO_MODULE = re.compile(
    r"(?P<python>\S*?(?i:python)[\w.]*): (?:Error while finding module specification for '[^']+' "
    r"\(ModuleNotFoundError: No module named '(?P<name>[^']+)'\)|No module named (?P<bare>[\w.]+))"
)
_CALLED = re.compile(
    r"Command '(?P<cmd>.*)' (?:returned non-zero exit status (?P<rc>-?\d+)|died with <Signals\.\w+: (?P<sig>\d+)>)"
)


def _cells(text: str) -> int:
    """Terminal columns, as rich counts them when it wraps (East Asian wide = 2)."""
    return sum(2 if unicodedata.east_asian_width(c) in "WF" else 1 for c in text)


def _seconds(clock: str) -> float:
    """tqdm's "MM:SS" or "H:MM:SS"."""
    total = 0
    for part in clock.split(":"):
        total = total * 60 + int(part)
    return float(total)


def _rate(number: str, unit: str) -> float | None:
    if number == "?":
        return None
    value = float(number[:-1]) * 1000 ** ("kMGT".index(number[-1]) + 1) if number[-1] in "kMGT" else float(number)
    if unit.startswith("s/"):
        return 1.0 / value if value else None
    return value


def _postfix(text: str | None) -> tuple[tuple[str, str], ...]:
    if not text:
        return ()
    pairs = []
    for item in text.split(", "):
        key, sep, value = item.partition("=")
        if sep:
            pairs.append((key.strip(), value.strip()))
    return tuple(pairs)


def _float(text: str) -> float | None:
    try:
        return float(text)
    except ValueError:
        return None


# --- the parser ---------------------------------------------------------------------------


class _Record:
    """A rich log record whose wrapped continuation lines may still arrive."""

    def __init__(self, time: str | None, level: str, first: str, location: str | None, width: int):
        self.time, self.level, self.location = time, level, location
        self.width = width  # cells in the message column
        self.message = first.strip()
        self.last = first.rstrip()  # the previous physical line, to tell a fold from a wrap

    def add(self, line: str) -> None:
        text = line[_RICH_INDENT:].rstrip()
        if not text or text[0] == " ":
            sep = "\n"  # an indented or blank line: a newline in the message itself
        elif " " not in self.last.strip() and _cells(self.last) >= self.width - 1:
            sep = ""  # a word longer than the column, folded (or Japanese, which has no spaces)
        else:
            sep = " "
        self.message += sep + text
        self.last = text


class _Block:
    """A traceback being collected."""

    def __init__(self) -> None:
        self.lines = [_TRACEBACK]
        self.phase: Literal["frames", "exception", "chained"] = "frames"
        self.exc_type = ""
        self.message = ""


class _Shared:
    """What both streams' parsers know: problems already reported (once per run), and the stage the
    last announcing log line named, with the stream it came on (rich logs: stderr; --console_log_simple:
    stdout, while the bar is always on stderr)."""

    def __init__(self) -> None:
        self.seen: set[str] = set()
        self.stage = ""
        self.stage_stream: Stream | None = None


class _StreamParser:
    def __init__(self, stream: Stream, shared: _Shared):
        self.stream: Stream = stream
        self.shared = shared
        self.seen = shared.seen  # problems reported once per run, shared by both streams
        self.buffer = ""
        self.frame_end: int | None = None  # the unterminated segment's frame was already emitted
        self.record: _Record | None = None
        self.block: _Block | None = None
        self.summary: dict[str, Any] | None = None  # the fields of a TrainingSummary, as they come

    def feed(self, text: str) -> list[Event]:
        out: list[Event] = []
        self.buffer += text
        while match := _NEWLINE.search(self.buffer):
            segment, self.buffer = self.buffer[: match.start()], self.buffer[match.end() :]
            skip, self.frame_end = self.frame_end, None
            self._segment(segment, skip, out)
        if self.buffer and self.frame_end is None:
            frame = _FRAME.match(_ANSI.sub("", self.buffer))
            if frame:
                self.frame_end = frame.end()
                self._frame(frame, out)
        return out

    def close(self) -> list[Event]:
        out: list[Event] = []
        if self.buffer:
            segment, self.buffer = self.buffer, ""
            skip, self.frame_end = self.frame_end, None
            if _SAVING.match(_ANSI.sub("", segment).strip()):  # cut off mid-path: the name is not the file's
                out.append(Line(self.stream, segment.rstrip()))
            else:
                self._segment(segment, skip, out)
        self._close_blocks(out)
        return out

    def _segment(self, segment: str, skip: int | None, out: list[Event]) -> None:
        segment = _ANSI.sub("", segment)
        if skip is None and (frame := _FRAME.match(segment)):
            self._frame(frame, out)
            skip = frame.end()
        if skip is None:
            self._line(segment, out)
            return
        rest = segment[skip:].lstrip(" ")  # glued after the frame and tqdm's padding: a new line
        if _GLUED_LEVEL.match(rest):
            rest = " " * 20 + rest  # a rich line whose time column is blank
        if rest:
            self._line(rest, out)

    def _frame(self, m: re.Match[str], out: list[Event]) -> None:
        self._close_blocks(out)
        desc = (m["desc"] or "").strip()
        n = int(m["n"] if m["n"] is not None else m["n_only"])
        total = int(m["total"]) if m["total"] is not None else None
        elapsed = _seconds(m["elapsed"] or m["elapsed_only"])
        remaining = _seconds(m["remaining"]) if m["remaining"] not in (None, "?") else None
        rate = _rate(m["rate"], m["unit"])
        postfix = _postfix(m["postfix"])
        if desc != "steps" or total is None:
            out.append(Progress(desc, n, total, elapsed, remaining, rate, postfix, "" if desc else self.shared.stage))
            return
        self.shared.stage = ""
        loss = _float(dict(postfix).get("avr_loss", ""))
        out.append(Step(n, total, elapsed, remaining, rate, loss, postfix))
        if loss is not None and not math.isfinite(loss) and "nan" not in self.seen:
            self.seen.add("nan")
            out.append(NanLoss(n))

    def _line(self, line: str, out: list[Event]) -> None:
        if self.block is not None:
            if self._in_block(line):
                return
            self._close_block(out)
        head = _RICH_HEAD.match(line)
        if self.record is not None and head is None and line.startswith(" " * _RICH_INDENT):
            self.record.add(line)
            return
        if not line.strip():
            return  # blank lines carry nothing, and do not end a record or a block
        self._close_record(out)
        if self.summary is not None and self._in_summary(line, out):
            return
        if head is not None:
            rest = line[_RICH_INDENT:]
            loc = _LOCATION.match(rest)
            location = loc["loc"] if loc else None
            width = _cells(line.rstrip()) - _RICH_INDENT - 1 - len(location or "")
            time = head["time"] if head["time"].strip() else None
            self.record = _Record(time, head["level"], loc["msg"] if loc else rest, location, width)
        elif line.startswith(_TRACEBACK):
            self.block = _Block()
        elif m := _LYCORIS.fullmatch(line) or _BASIC_LOG.fullmatch(line):
            name = m["name"]
            time = m["time"] if "time" in m.groupdict() else None
            self._message(LogRecord(m["level"], m["msg"].rstrip(), name, time), out)
        elif m := _USAGE_ERROR.fullmatch(line.rstrip()):
            out.append(UsageError(m["prog"], m["msg"]))
        elif line.startswith("running training"):
            self.summary = {}
        elif m := _RUNPY_NO_MODULE.fullmatch(line.rstrip()):
            out.append(Line(self.stream, line.rstrip()))
            out.append(ModuleNotFound(m["name"] or m["bare"], line.strip()))
        else:
            self._message(Line(self.stream, line.rstrip()), out)

    def _message(self, event: Line | LogRecord, out: list[Event]) -> None:
        """Emit a plain line or log record, or the specific event its text stands for."""
        text = event.text if isinstance(event, Line) else event.message
        self._stage(text)
        if (m := _EPOCH.fullmatch(text)) and isinstance(event, Line):
            out.append(EpochStarted(int(m["k"]), int(m["n"])))
        elif m := _SAVING.fullmatch(text):
            out.append(CheckpointSaved(Path(m["path"].strip())))
        elif m := _REMOVING.fullmatch(text):
            out.append(CheckpointRemoved(Path(m["path"].strip())))
        elif text == "model saved.":
            out.append(ModelSaved())
        else:
            out.append(event)
            if text.startswith("No data found"):
                out.append(NoDataFound(text))

    def _stage(self, text: str) -> None:
        """A line that announces a stage names the unnamed bars after it; the next other line on the
        same stream ends it."""
        shared, low = self.shared, text.lower()
        stage = next((name for start, name in _STAGES.items() if low.startswith(start)), None)
        if stage is not None:
            shared.stage, shared.stage_stream = stage, self.stream
        elif shared.stage_stream == self.stream:
            shared.stage = ""

    def _in_summary(self, line: str, out: list[Event]) -> bool:
        assert self.summary is not None
        m = _SUMMARY_ITEM.fullmatch(line)
        if m is None:
            self._close_summary(out)
            return False
        key = _SUMMARY_KEYS.get(m["key"])
        if key == "batch_size_per_device":
            self.summary[key] = tuple(int(v) for v in m["value"].split(", "))
        elif key is not None:
            self.summary[key] = int(m["value"])
        if key == "total_steps":  # the block's last line: no need to wait for the next one
            self._close_summary(out)
        return True

    def _close_summary(self, out: list[Event]) -> None:
        if self.summary is not None:
            out.append(TrainingSummary(**self.summary))
            self.summary = None

    def _close_record(self, out: list[Event]) -> None:
        if self.record is not None:
            r, self.record = self.record, None
            self._message(LogRecord(r.level, r.message.rstrip(), r.location, r.time), out)

    def _in_block(self, line: str) -> bool:
        """Whether the line belongs to the traceback being collected; if so, it is added."""
        block = self.block
        assert block is not None
        text = line.strip()
        indented = line[:1] in (" ", "\t") or not text
        if _RICH_HEAD.match(line):
            return False
        if block.phase == "frames" and not indented:  # the exception line ends the frames
            exc = _EXC_LINE.fullmatch(text)
            block.exc_type, block.message = (exc["type"], exc["msg"] or "") if exc else ("", text)
            block.phase = "exception"
        elif block.phase == "exception" and indented and text:  # a message of several lines
            block.message += "\n" + text
        elif block.phase == "exception" and line.startswith(_CHAINED):
            block.phase = "chained"
        elif block.phase == "chained" and line.startswith(_TRACEBACK):
            block.phase = "frames"
        elif not indented or (block.phase == "chained" and text):
            return False  # the traceback is over
        block.lines.append(line.rstrip())
        return True

    def _close_blocks(self, out: list[Event]) -> None:
        self._close_record(out)
        self._close_summary(out)
        self._close_block(out)

    def _close_block(self, out: list[Event]) -> None:
        if self.block is None:
            return
        b, self.block = self.block, None
        while b.lines and not b.lines[-1]:
            b.lines.pop()
        out.append(Traceback(b.exc_type, b.message, "\n".join(b.lines)))
        first = b.message.split("\n", 1)[0]
        if b.exc_type.endswith("OutOfMemoryError") or "CUDA out of memory" in b.message:
            if "oom" not in self.seen:
                self.seen.add("oom")
                out.append(OutOfMemory(first))
        elif b.exc_type.endswith("ModuleNotFoundError") and (m := _NO_MODULE.search(first)):
            out.append(ModuleNotFound(m["name"], first))
        elif b.exc_type.endswith("CalledProcessError") and (m := _CALLED.search(first)):
            rc = int(m["rc"]) if m["rc"] is not None else -int(m["sig"])
            out.append(LauncherFailed(rc, m["cmd"]))


class Parser:
    """Incremental: `feed` what arrives on each pipe, `close` at the end of the run."""

    def __init__(self) -> None:
        shared = _Shared()
        self._streams = {name: _StreamParser(name, shared) for name in ("stdout", "stderr")}

    def feed(self, stream: Stream, text: str) -> list[Event]:
        return self._streams[stream].feed(text)

    def close(self) -> list[Event]:
        """Flush partial lines and open blocks, stdout's first."""
        return [event for parser in self._streams.values() for event in parser.close()]


def wrong_python(python: str, module: str) -> str:
    """What a script run in a Python without sd-scripts' packages says (`lora` tools, captioning)."""
    return (
        f"{python} has no module '{module}': it is not sd-scripts' environment; pass --python "
        "the Python of the sd-scripts (kohya_ss) venv"
    )


def last_traceback(events: list[Event]) -> tuple[str, str]:
    """': ExcType: message' of the last traceback among `events` ('' when none), and its whole text."""
    tb = next((e for e in reversed(events) if isinstance(e, Traceback)), None)
    return (f": {tb.exc_type}: {tb.message}".rstrip(": ") if tb else "", tb.text if tb else "")
