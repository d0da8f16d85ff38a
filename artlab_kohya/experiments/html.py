"""report.html for a run or a sweep: plain dataclasses in, one HTML string out.

The page stands alone: an inline `<style>`, inline SVG charts (`svg.py`), no script, no font or
stylesheet from a network, and a Content-Security-Policy that forbids scripts, so that a hostile run
name stays text even if an escape were missed. Sample images are referenced by relative href (relative
to where the page is written) unless `self_contained=True` inlines them as data: URIs, which is the
only thing here that reads a file.
"""

from __future__ import annotations

import base64
import math
import mimetypes
import re
from dataclasses import dataclass, field
from html import escape
from pathlib import Path

from .svg import PALETTE, Band, Guide, Mark, Series, line_chart

STEP_COLOR = "#7aa6d6"
EPOCH_COLOR = "#d9650b"
DASHES = (None, "7 4", "2 3", "10 3 2 3")
STATUS_CLASS = {"succeeded": "ok", "failed": "bad", "interrupted": "warn", "running": "run"}
DASH, DOT = "\u2014", " \u00b7 "
SCHEME = re.compile(r"[\x00-\x20]*([a-zA-Z][a-zA-Z0-9+.-]*):")
SAFE_SCHEMES = ("http", "https", "file")
# Images only from the page's own place (its folder, or the server that serves it) or inlined: no tracking.
CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src 'self' data: file:"


@dataclass(frozen=True)
class EpochRow:
    epoch: int
    avg_loss: float | None
    checkpoint: str | None = None  # the file's name, as in checkpoint_metadata
    picked: bool = False
    in_window: bool = False
    end_step: int | None = None  # the epoch's last step; None: estimated from the steps


@dataclass(frozen=True)
class Sample:
    epoch: int
    prompt_index: int
    prompt: str
    image_href: str  # relative to the folder report.html is written to


@dataclass(frozen=True)
class RunReport:
    name: str
    status: str  # running | succeeded | failed | interrupted (others shown as they are)
    params: dict[str, str] = field(default_factory=dict)  # the parameters that matter, in order
    steps: list[tuple[int, float]] = field(default_factory=list)  # (step, loss)
    epochs: list[EpochRow] = field(default_factory=list)
    window: tuple[float, float] | None = None  # the pick window on the epoch's average loss
    checkpoint_metadata: dict[str, dict[str, str]] = field(default_factory=dict)  # file name: ss_* keys
    samples: list[Sample] = field(default_factory=list)
    href: str | None = None  # this run's own report, relative to a sweep's report (a link there)


@dataclass(frozen=True)
class SweepReport:
    name: str
    runs: list[RunReport]
    varied: list[str] = field(default_factory=list)  # the params that differ between the runs


# --- small pieces --------------------------------------------------------------------------------


def _e(value: object) -> str:
    return escape(str(value), quote=True)


def fmt_loss(value: float | None) -> str:
    if value is None:
        return DASH
    if not math.isfinite(value):
        return str(value)
    return f"{value:.4f}"


def fmt_window(window: tuple[float, float]) -> str:
    return f"{window[0]:g}\u2013{window[1]:g}"


def picked(run: RunReport) -> EpochRow | None:
    return next((row for row in run.epochs if row.picked), None)


def safe_href(href: str) -> str:
    """The href, unless its scheme could run something (javascript:, vbscript:, data: other than an
    image): then it is made a relative path, which opens nothing."""
    scheme = SCHEME.match(re.sub(r"[\t\n\r]", "", href))  # browsers drop these inside a URL
    if scheme is None or scheme.group(1).lower() in SAFE_SCHEMES or href.lower().startswith("data:image/"):
        return href
    return "./" + href


def _image_src(href: str, self_contained: bool, base_dir: Path | None) -> str:
    """The href itself, or the file as a data: URI. A missing file keeps its href (a broken image
    in the page says more than a report that refuses to render)."""
    if not self_contained or SCHEME.match(href):
        return safe_href(href)
    path = (base_dir or Path()) / href
    try:
        data = path.read_bytes()
    except OSError:
        return safe_href(href)
    mime = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
    return f"data:{mime};base64,{base64.b64encode(data).decode('ascii')}"


def _status(status: str) -> str:
    return f'<span class="status {STATUS_CLASS.get(status, "other")}">{_e(status)}</span>'


def _page(title: str, body: list[str]) -> str:
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en"><head><meta charset="utf-8">'
        f'<meta http-equiv="Content-Security-Policy" content="{_e(CSP)}">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{_e(title)}</title><style>{STYLE}</style></head>\n<body>\n"
        + "\n".join(body)
        + "\n<footer>artlab-kohya report</footer>\n</body></html>\n"
    )


STYLE = """
body{font:14px/1.45 system-ui,-apple-system,'Segoe UI',Roboto,sans-serif;color:#222;background:#fff;
 max-width:1180px;margin:0 auto;padding:20px 28px}
h1{font-size:22px;margin:0 0 6px;word-break:break-word}h2{font-size:16px;margin:28px 0 8px;
 border-bottom:1px solid #e3e3e3;padding-bottom:4px}
.muted,footer{color:#777}footer{margin-top:36px;font-size:12px}
.status{display:inline-block;padding:1px 9px;border-radius:10px;font-size:12px;font-weight:600;
 vertical-align:middle;color:#fff;background:#888}
.status.ok{background:#2e8540}.status.bad{background:#c62828}.status.warn{background:#c77700}
.status.run{background:#1f6fb2}
table{border-collapse:collapse;font-size:13px}th,td{padding:3px 10px;text-align:left;vertical-align:top}
thead th{border-bottom:2px solid #ccc;white-space:nowrap}tbody td{border-bottom:1px solid #eee}
td.num,th.num{text-align:right;font-variant-numeric:tabular-nums}
.params{display:grid;grid-template-columns:repeat(auto-fill,minmax(250px,1fr));gap:2px 22px;margin:12px 0}
.params div{display:flex;gap:8px;border-bottom:1px dotted #e3e3e3;padding:2px 0;min-width:0}
.params dt{color:#666;flex:none}.params dd{margin:0;font-family:ui-monospace,Menlo,Consolas,monospace;
 font-size:12.5px;overflow-wrap:anywhere}
tr.in-window td{background:#e9f6ea}tr.picked td{background:#cdebd0;font-weight:600}
.pick{color:#b01c1c;font-weight:700}
.chart{max-width:100%;height:auto;display:block}
.caption{font-size:12.5px;color:#555;margin:4px 0 0}
details{margin:4px 0;border:1px solid #e3e3e3;border-radius:4px;padding:4px 10px}
summary{cursor:pointer;font-family:ui-monospace,Menlo,Consolas,monospace;font-size:13px}
details table{margin:6px 0}details td:first-child{white-space:nowrap;color:#555}
.val{max-height:9em;overflow:auto;white-space:pre-wrap;overflow-wrap:anywhere;
 font-family:ui-monospace,Menlo,Consolas,monospace;font-size:12px}
table.samples td,table.samples th{border:1px solid #e3e3e3;text-align:center;vertical-align:middle}
table.samples th.prompt{font-weight:500;max-width:220px;font-size:12px;white-space:normal}
table.samples th.row{text-align:left;white-space:nowrap}
table.samples img{display:block;margin:0 auto;width:180px;max-width:100%;height:auto;background:#f4f4f4}
.swatch{vertical-align:middle;margin-right:6px}
code{font-family:ui-monospace,Menlo,Consolas,monospace}
"""


# --- a run ---------------------------------------------------------------------------------------


def _epoch_steps(run: RunReport) -> dict[int, float] | None:
    """Each epoch's x on a step axis: its end_step, else the last step times its share of the epochs.
    None when there are no steps to place the epochs on (then the x axis counts epochs)."""
    if not run.steps:
        if all(row.end_step is not None for row in run.epochs) and run.epochs:
            return {row.epoch: float(row.end_step or 0) for row in run.epochs}
        return None
    last_step = max(step for step, _ in run.steps)
    last_epoch = max((row.epoch for row in run.epochs), default=1) or 1
    return {
        row.epoch: float(row.end_step if row.end_step is not None else round(last_step * row.epoch / last_epoch))
        for row in run.epochs
    }


def _stride(epochs: int, width: int) -> int:
    """Every how many epochs a boundary is drawn: 1, 2, 5, 10, 20, ... so that they stay ~40 px apart."""
    room = max(1, (width - 90) // 40)
    stride = 1
    while epochs / stride > room:
        stride = stride * 5 // 2 if str(stride)[0] == "2" else stride * 2
    return stride


def run_chart(run: RunReport, *, log_y: bool = False, width: int = 1120, height: int = 360) -> str:
    """Loss per step and per-epoch average on one step axis, the pick window shaded, the pick ringed."""
    at = _epoch_steps(run)
    epoch_points = [
        (at[row.epoch] if at else float(row.epoch), row.avg_loss) for row in run.epochs if row.avg_loss is not None
    ]
    series = []
    if run.steps or not epoch_points:
        series.append(
            Series("loss per step", [(float(s), float(v)) for s, v in run.steps], color=STEP_COLOR, width=1.2)
        )
    if epoch_points:
        series.append(Series("epoch average", epoch_points, color=EPOCH_COLOR, dots=True, width=2))
    band = Band(*run.window, label=f"pick window {fmt_window(run.window)}") if run.window else None
    marks = []
    chosen = picked(run)
    if chosen is not None and chosen.avg_loss is not None:
        x = at[chosen.epoch] if at else float(chosen.epoch)
        label = f"picked: epoch {chosen.epoch}"
        marks.append(Mark(x, chosen.avg_loss, label=label, title=f"{label}, average loss {fmt_loss(chosen.avg_loss)}"))
    stride = _stride(len(run.epochs), width)
    guides = [Guide(at[row.epoch], f"e{row.epoch}") for row in run.epochs if row.epoch % stride == 0] if at else []
    return line_chart(
        series,
        x_label="step" if at is not None else "epoch",
        y_label="loss (log)" if log_y else "loss",
        log_y=log_y,
        band=band,
        marks=marks,
        guides=guides,
        width=width,
        height=height,
    )


def _params(params: dict[str, str]) -> str:
    if not params:
        return ""
    items = "".join(f"<div><dt>{_e(k)}</dt><dd>{_e(v)}</dd></div>" for k, v in params.items())
    return f'<dl class="params">{items}</dl>'


def _epoch_table(run: RunReport) -> str:
    if not run.epochs:
        return '<p class="muted">No epoch finished yet.</p>'
    at = _epoch_steps(run)
    rows = []
    for row in run.epochs:
        classes = " ".join(c for c, on in (("in-window", row.in_window), ("picked", row.picked)) if on)
        note = '<span class="pick">\u2605 picked</span>' if row.picked else ("in window" if row.in_window else "")
        step = f"{at[row.epoch]:.0f}" if at else ""
        rows.append(
            f'<tr class="{classes}" data-epoch="{row.epoch}"><td class="num">{row.epoch}</td>'
            f'<td class="num">{step}</td><td class="num">{fmt_loss(row.avg_loss)}</td>'
            f"<td><code>{_e(row.checkpoint or DASH)}</code></td><td>{note}</td></tr>"
        )
    return (
        '<table class="epochs"><thead><tr><th class="num">epoch</th><th class="num">step</th>'
        '<th class="num">average loss</th><th>checkpoint</th><th></th></tr></thead>'
        f"<tbody>{''.join(rows)}</tbody></table>"
    )


def _metadata(run: RunReport) -> str:
    if not run.checkpoint_metadata:
        return '<p class="muted">No checkpoint metadata.</p>'
    chosen = picked(run)
    out = []
    for name, keys in run.checkpoint_metadata.items():
        star = ' <span class="pick">\u2605 picked</span>' if chosen and chosen.checkpoint == name else ""
        rows = "".join(
            f'<tr><td><code>{_e(k)}</code></td><td><div class="val">{_e(v)}</div></td></tr>'
            for k, v in sorted(keys.items())
        )
        out.append(
            f'<details><summary>{_e(name)} <span class="muted">({len(keys)} keys)</span>{star}</summary>'
            f"<table>{rows}</table></details>"
        )
    return "".join(out)


def _prompt_headers(prompts: dict[int, str]) -> str:
    cells = []
    for index, prompt in sorted(prompts.items()):
        short = prompt if len(prompt) <= 90 else prompt[:89] + "\u2026"
        cells.append(f'<th class="prompt" title="{_e(prompt)}">#{index}: {_e(short)}</th>')
    return "".join(cells)


def _image(sample: Sample | None, alt: str, self_contained: bool, base_dir: Path | None) -> str:
    if sample is None:
        return f'<td class="muted">{DASH}</td>'
    src = _e(_image_src(sample.image_href, self_contained, base_dir))
    img = f'<img src="{src}" alt="{_e(alt)}" title="{_e(sample.prompt)}" loading="lazy">'
    return f"<td>{img}</td>" if self_contained else f'<td><a href="{src}">{img}</a></td>'


def _samples(run: RunReport, self_contained: bool, base_dir: Path | None) -> str:
    if not run.samples:
        return '<p class="muted">No sample images.</p>'
    prompts = {s.prompt_index: s.prompt for s in run.samples}
    grid = {(s.epoch, s.prompt_index): s for s in run.samples}
    chosen = picked(run)
    rows = []
    for epoch in sorted({s.epoch for s in run.samples}):
        star = ' <span class="pick">\u2605</span>' if chosen and chosen.epoch == epoch else ""
        cells = "".join(
            _image(grid.get((epoch, i)), f"epoch {epoch}, prompt {i}", self_contained, base_dir)
            for i in sorted(prompts)
        )
        rows.append(f'<tr><th class="row">epoch {epoch}{star}</th>{cells}</tr>')
    return (
        f'<table class="samples"><thead><tr><th></th>{_prompt_headers(prompts)}</tr></thead>'
        f"<tbody>{''.join(rows)}</tbody></table>"
    )


def _run_caption(run: RunReport) -> str:
    parts = []
    if run.steps:
        parts.append(f"{len(run.steps):,} steps")
    if run.epochs:
        parts.append(f"{len(run.epochs)} epochs")
    if run.window:
        parts.append(f"pick window {fmt_window(run.window)} (average loss)")
    chosen = picked(run)
    if chosen is not None:
        parts.append(f"picked epoch {chosen.epoch} ({fmt_loss(chosen.avg_loss)})")
    elif run.window:
        parts.append("no epoch in the window")
    return f'<p class="caption">{_e(DOT.join(parts))}</p>' if parts else ""


def render_run(
    run: RunReport, *, self_contained: bool = False, base_dir: Path | None = None, log_y: bool = False
) -> str:
    """The run's report.html. `base_dir` is where relative image hrefs are read from when inlining."""
    body = [
        f"<header><h1>{_e(run.name)} {_status(run.status)}</h1>{_params(run.params)}</header>",
        f'<section id="loss"><h2>Loss</h2>{run_chart(run, log_y=log_y)}{_run_caption(run)}</section>',
        f'<section id="epochs"><h2>Epochs</h2>{_epoch_table(run)}</section>',
        f'<section id="checkpoints"><h2>Checkpoint metadata</h2>{_metadata(run)}</section>',
        f'<section id="samples"><h2>Samples</h2>{_samples(run, self_contained, base_dir)}</section>',
    ]
    return _page(f"{run.name} \u2013 artlab-kohya report", body)


# --- a sweep -------------------------------------------------------------------------------------


def _look(index: int) -> tuple[str, str | None]:
    """The colour and dash of a sweep's run: the palette, then the palette again, dashed."""
    cycle, slot = divmod(index, len(PALETTE))
    return PALETTE[slot], DASHES[cycle % len(DASHES)]


def _shared_window(sweep: SweepReport) -> tuple[float, float] | None:
    """The window the runs that have one agree on; None when they differ (one band would mislead)."""
    windows = {run.window for run in sweep.runs if run.window is not None}
    return windows.pop() if len(windows) == 1 else None


def sweep_chart(sweep: SweepReport, *, log_y: bool = False, width: int = 1120, height: int = 360) -> str:
    """Each run's per-epoch average loss on one epoch axis, each run's pick ringed in its colour."""
    series, marks = [], []
    for i, run in enumerate(sweep.runs):
        color, dash = _look(i)
        points = [(float(row.epoch), row.avg_loss) for row in run.epochs if row.avg_loss is not None]
        series.append(Series(run.name, points, color=color, dots=True, width=2, dash=dash))
        chosen = picked(run)
        if chosen is not None and chosen.avg_loss is not None:
            title = f"{run.name}: picked epoch {chosen.epoch}, average loss {fmt_loss(chosen.avg_loss)}"
            marks.append(Mark(float(chosen.epoch), chosen.avg_loss, title=title, color=color))
    window = _shared_window(sweep)
    band = Band(*window, label=f"pick window {fmt_window(window)}") if window else None
    return line_chart(
        series,
        x_label="epoch",
        y_label="average loss (log)" if log_y else "average loss",
        log_y=log_y,
        band=band,
        marks=marks,
        width=width,
        height=height,
    )


def _runs_table(sweep: SweepReport) -> str:
    head = "".join(f"<th>{_e(p)}</th>" for p in sweep.varied)
    rows = []
    for i, run in enumerate(sweep.runs):
        color, dash = _look(i)
        dashed = f' stroke-dasharray="{dash}"' if dash else ""
        swatch = (
            f'<svg class="swatch" width="22" height="10" aria-hidden="true"><line x1="1" y1="5" x2="21" y2="5" '
            f'stroke="{color}" stroke-width="3"{dashed}/></svg>'
        )
        name = f'<a href="{_e(safe_href(run.href))}">{_e(run.name)}</a>' if run.href else _e(run.name)
        chosen = picked(run)
        values = "".join(f"<td><code>{_e(run.params.get(p, DASH))}</code></td>" for p in sweep.varied)
        rows.append(
            f"<tr><td>{swatch}"
            f"{name}</td><td>{_status(run.status)}</td>{values}"
            f'<td class="num">{chosen.epoch if chosen else DASH}</td>'
            f'<td class="num">{fmt_loss(chosen.avg_loss) if chosen else DASH}</td></tr>'
        )
    return (
        f'<table class="runs"><thead><tr><th>run</th><th>status</th>{head}'
        '<th class="num">picked epoch</th><th class="num">its loss</th></tr></thead>'
        f"<tbody>{''.join(rows)}</tbody></table>"
    )


def _sweep_samples(sweep: SweepReport, self_contained: bool, base_dir: Path | None) -> str:
    """Runs x prompts, each run at its last epoch with samples."""
    last = {run.name: max((s.epoch for s in run.samples), default=None) for run in sweep.runs}
    prompts: dict[int, str] = {}
    for run in sweep.runs:
        for s in run.samples:
            prompts.setdefault(s.prompt_index, s.prompt)
    if not prompts:
        return '<p class="muted">No sample images.</p>'
    rows = []
    for run in sweep.runs:
        epoch = last[run.name]
        grid = {s.prompt_index: s for s in run.samples if s.epoch == epoch}
        cells = "".join(
            _image(grid.get(i), f"{run.name}, epoch {epoch}, prompt {i}", self_contained, base_dir)
            for i in sorted(prompts)
        )
        label = f"epoch {epoch}" if epoch is not None else "no samples"
        rows.append(f'<tr><th class="row">{_e(run.name)}<br><span class="muted">{label}</span></th>{cells}</tr>')
    return (
        f'<table class="samples"><thead><tr><th></th>{_prompt_headers(prompts)}</tr></thead>'
        f"<tbody>{''.join(rows)}</tbody></table>"
    )


def render_sweep(
    sweep: SweepReport, *, self_contained: bool = False, base_dir: Path | None = None, log_y: bool = False
) -> str:
    """The sweep's report.html: loss curves overlaid, the runs table, the last samples side by side."""
    varied = ", ".join(sweep.varied) or "nothing"
    window = _shared_window(sweep)
    caption = f"pick window {fmt_window(window)} (average loss)" if window else ""
    body = [
        f"<header><h1>{_e(sweep.name)}</h1>"
        f'<p class="muted">{len(sweep.runs)} runs{DOT}varied: {_e(varied)}</p></header>',
        f'<section id="loss"><h2>Loss</h2>{sweep_chart(sweep, log_y=log_y)}'
        f'<p class="caption">{_e(caption)}</p></section>',
        f'<section id="runs"><h2>Runs</h2>{_runs_table(sweep)}</section>',
        f'<section id="samples"><h2>Samples</h2>{_sweep_samples(sweep, self_contained, base_dir)}</section>',
    ]
    return _page(f"{sweep.name} \u2013 artlab-kohya sweep report", body)
