"""Inline SVG line charts: no dependency, no script, readable from a file opened offline.

A chart is a pure function of its data. Each series is one `<polyline>` whose `data-points` says how
many points it draws (and `data-source-points` how many it was given), optionally with one `<circle>`
per drawn point (per-epoch values). Around them: axes with "nice" ticks, an optional log y axis, a
shaded horizontal band (the pick window), marked points (the picked epoch), vertical guides (epoch
boundaries on a step axis) and a legend when several series share the axes (a sweep's runs).

Long series are decimated before drawing (M4): in each column two pixels wide, the first, lowest,
highest and last point are kept, in x order. A 10,000-step run then draws at most two points per
pixel of width, and its spikes stay visible. Every text that reaches the SVG is escaped.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from html import escape

# Tableau 10: distinct, and still tellable apart by most colour-blind readers.
PALETTE = (
    "#1f77b4",
    "#ff7f0e",
    "#2ca02c",
    "#d62728",
    "#9467bd",
    "#8c564b",
    "#e377c2",
    "#7f7f7f",
    "#bcbd22",
    "#17becf",
)
FONT = "system-ui, -apple-system, 'Segoe UI', Roboto, sans-serif"
CHAR_WIDTH = 6.6  # average advance of a 12px sans-serif character, for laying out the legend
# Scoped to .chart: a style element inside inline SVG applies to the whole page.
STYLE = (
    f".chart text{{font:12px {FONT};fill:#333}}.chart .title{{font-weight:600;font-size:13px}}"
    ".chart .tick{fill:#555;font-size:11px}.chart .axis-label{fill:#444}.chart .grid{stroke:#e4e4e4}"
    ".chart .axis{stroke:#888}.chart .frame{fill:none;stroke:#bbb}.chart .guide{stroke:#ccc;stroke-dasharray:2 3}"
    ".chart .guide-label{font-size:10px;fill:#777}.chart .band-label{fill:#1e7a1e;font-size:11px}"
    ".chart .mark-label{font-weight:600;fill:#b01c1c}.chart .empty{fill:#999;font-size:14px}"
    ".chart .band-label,.chart .mark-label{paint-order:stroke;stroke:#fff;stroke-width:3px;stroke-linejoin:round}"
)

Point = tuple[float, float]


@dataclass(frozen=True)
class Series:
    name: str
    points: Sequence[Point]
    color: str | None = None  # None: the palette's colour for the series' position
    dots: bool = False  # a circle per drawn point, for few, meaningful points (epochs)
    width: float = 1.5
    opacity: float = 1.0
    dash: str | None = None  # an SVG stroke-dasharray ("6 3"): tells apart series that share a colour
    in_legend: bool = True


@dataclass(frozen=True)
class Band:
    """A horizontal stripe between two y values (the pick window)."""

    lo: float
    hi: float
    label: str = ""


@dataclass(frozen=True)
class Mark:
    """A ringed point (the picked epoch); `label` is drawn beside it, `title` shows on hover."""

    x: float
    y: float
    label: str = ""
    title: str = ""
    color: str = "#d62728"


@dataclass(frozen=True)
class Guide:
    """A faint vertical line with a small label on top (an epoch boundary on a step axis)."""

    x: float
    label: str = ""


@dataclass(frozen=True)
class _Box:
    """Where the plot area lies in the SVG, in pixels."""

    left: float
    top: float
    width: float
    height: float
    log_y: bool

    @property
    def right(self) -> float:
        return self.left + self.width

    @property
    def bottom(self) -> float:
        return self.top + self.height


@dataclass(frozen=True)
class _Frame:
    """The plot area and the data domain it shows: data to pixels."""

    box: _Box
    x0: float
    x1: float
    y0: float  # in log10 units on a log axis
    y1: float

    def sx(self, x: float) -> float:
        return self.box.left + (x - self.x0) / (self.x1 - self.x0) * self.box.width

    def sy(self, y: float) -> float:
        v = math.log10(y) if self.box.log_y else y
        return self.box.bottom - (v - self.y0) / (self.y1 - self.y0) * self.box.height


# --- ticks and decimation ------------------------------------------------------------------------


def _nice(step: float) -> float:
    """The 1, 2 or 5 times a power of ten closest above a raw tick step."""
    exponent = math.floor(math.log10(step))
    fraction = step / 10**exponent
    nice = 1 if fraction <= 1 else 2 if fraction <= 2 else 5 if fraction <= 5 else 10
    return nice * 10.0**exponent


def nice_ticks(lo: float, hi: float, count: int = 5) -> list[float]:
    """About `count` round tick values covering [lo, hi]; the first is <= lo, the last >= hi."""
    if hi < lo:
        lo, hi = hi, lo
    if hi == lo:
        pad = abs(lo) * 0.1 or 1.0
        lo, hi = lo - pad, hi + pad
    step = _nice((hi - lo) / max(count - 1, 1))
    digits = max(0, -math.floor(math.log10(step))) + 2
    start, stop = math.floor(lo / step + 1e-9), math.ceil(hi / step - 1e-9)
    return [round(i * step, digits) for i in range(start, stop + 1)]


def log_ticks(lo: float, hi: float) -> list[float]:
    """Ticks for a log axis over [lo, hi] (both > 0): the sparsest of powers of ten, 1-2-5 or
    1-1.5-2-3-5-7 that gives at least three, else round linear values inside the range."""
    decades = range(math.floor(math.log10(lo)), math.ceil(math.log10(hi)) + 1)
    for mantissas in ((1,), (1, 2, 5), (1, 1.5, 2, 3, 5, 7)):
        ticks = sorted(round(m * 10.0**e, 12 - e) for e in decades for m in mantissas if lo <= m * 10.0**e <= hi)
        if len(ticks) >= 3:
            return ticks
    ticks = [t for t in nice_ticks(lo, hi, 6) if lo <= t <= hi and t > 0]
    return ticks if len(ticks) >= 2 else [lo, hi]


def format_tick(value: float, step: float) -> str:
    """A tick label with as many decimals as the step needs: 0.05, 0.10 / 2,000 / 1e-05."""
    if value == 0:
        return "0"
    if abs(value) >= 1e6 or abs(value) < 1e-4:
        return f"{value:.0e}"
    digits = max(0, -math.floor(math.log10(step) + 1e-9)) if step > 0 else 3
    return f"{value:,.{digits}f}"


def decimate(points: Sequence[Point], buckets: int) -> list[Point]:
    """At most 4 points per x bucket (its first, lowest, highest and last, in x order): the drawn
    line keeps the envelope and the trend of the series while its size stops growing with length.
    Points must be sorted by x. Series of at most 4 * buckets points come back unchanged."""
    if buckets < 1:
        raise ValueError(f"buckets must be at least 1 (got {buckets})")
    if len(points) <= 4 * buckets:
        return list(points)
    x0, x1 = points[0][0], points[-1][0]
    scale = buckets / ((x1 - x0) or 1.0)
    out: list[Point] = []
    start = 0
    while start < len(points):
        bucket = min(int((points[start][0] - x0) * scale), buckets - 1)
        end = start + 1
        while end < len(points) and min(int((points[end][0] - x0) * scale), buckets - 1) == bucket:
            end += 1
        chunk = range(start, end)
        low = min(chunk, key=lambda i: points[i][1])
        high = max(chunk, key=lambda i: points[i][1])
        for i in sorted({start, low, high, end - 1}):
            out.append(points[i])
        start = end
    return out


# --- drawing -----------------------------------------------------------------------------------


def _finite(points: Sequence[Point], log_y: bool) -> list[Point]:
    good = [(float(x), float(y)) for x, y in points if math.isfinite(x) and math.isfinite(y) and (y > 0 or not log_y)]
    if any(good[i][0] > good[i + 1][0] for i in range(len(good) - 1)):
        good.sort(key=lambda p: p[0])
    return good


def _attr(value: object) -> str:
    return escape(str(value), quote=True)


def _n(value: float) -> str:
    """A coordinate with one decimal: sub-pixel enough, and short."""
    text = f"{value:.1f}"
    return text[:-2] if text.endswith(".0") else text


def _legend(
    entries: list[tuple[str, str, bool, str]], left: float, top: float, width: float
) -> tuple[list[str], float]:
    """Legend entries laid out in rows under the plot; returns the SVG and the height it takes."""
    parts: list[str] = []
    x, y, row = left, top + 12, 18
    for name, color, dots, dash in entries:
        shown = name if len(name) <= 48 else name[:47] + "\u2026"
        span = 24 + len(shown) * CHAR_WIDTH + 18
        if x > left and x + span > left + width:
            x, y = left, y + row
        swatch = (
            f'<line x1="{_n(x)}" y1="{_n(y - 4)}" x2="{_n(x + 18)}" y2="{_n(y - 4)}" '
            f'stroke="{color}" stroke-width="2.5"{dash}/>'
        )
        if dots:
            swatch += f'<circle cx="{_n(x + 9)}" cy="{_n(y - 4)}" r="3" fill="{color}"/>'
        parts.append(
            f'<g class="legend-entry" data-name="{_attr(name)}"><title>{escape(name)}</title>{swatch}'
            f'<text x="{_n(x + 24)}" y="{_n(y)}">{escape(shown)}</text></g>'
        )
        x += span
    return parts, y - top + 8


def _frame(
    drawn: list[list[Point]], band: Band | None, marks: Sequence[Mark], guides: Sequence[Guide], box: _Box
) -> tuple[_Frame, list[float], list[float]]:
    """The domain every drawn thing fits in, extended to round ticks; the ticks themselves."""
    xs = [x for p in drawn for x, _ in p] + [m.x for m in marks] + [g.x for g in guides]
    ys = [y for p in drawn for _, y in p] + [m.y for m in marks] + ([band.lo, band.hi] if band else [])
    xs = [x for x in xs if math.isfinite(x)]
    ys = [y for y in ys if math.isfinite(y) and (y > 0 or not box.log_y)]
    x_ticks = nice_ticks(min(xs), max(xs), max(2, int(box.width // 90))) if xs else [0.0, 1.0]
    if box.log_y:
        lo, hi = (min(ys), max(ys)) if ys else (0.1, 1.0)
        if lo == hi:
            lo, hi = lo / 2, hi * 2
        pad = (math.log10(hi) - math.log10(lo)) * 0.05
        y0, y1 = math.log10(lo) - pad, math.log10(hi) + pad
        y_ticks = log_ticks(10**y0, 10**y1)
    else:
        y_ticks = nice_ticks(min(ys), max(ys), max(3, int(box.height // 50))) if ys else [0.0, 1.0]
        y0, y1 = y_ticks[0], y_ticks[-1]
    return _Frame(box, x_ticks[0], x_ticks[-1], y0, y1), x_ticks, y_ticks


def _axes(f: _Frame, x_ticks: list[float], y_ticks: list[float], x_label: str, y_label: str) -> Iterator[str]:
    b = f.box
    y_step = min((hi - lo for lo, hi in zip(y_ticks[:-1], y_ticks[1:], strict=True)), default=1.0)
    for t in y_ticks:
        y = f.sy(t)
        label = f"{t:.3g}" if b.log_y else format_tick(t, y_step)
        yield f'<line class="grid" x1="{_n(b.left)}" y1="{_n(y)}" x2="{_n(b.right)}" y2="{_n(y)}"/>'
        yield f'<text class="tick" x="{_n(b.left - 6)}" y="{_n(y + 4)}" text-anchor="end">{label}</text>'
    x_step = x_ticks[1] - x_ticks[0] if len(x_ticks) > 1 else 1.0
    for t in x_ticks:
        x = f.sx(t)
        yield f'<line class="axis" x1="{_n(x)}" y1="{_n(b.bottom)}" x2="{_n(x)}" y2="{_n(b.bottom + 4)}"/>'
        yield (
            f'<text class="tick" x="{_n(x)}" y="{_n(b.bottom + 17)}" text-anchor="middle">'
            f"{format_tick(t, x_step)}</text>"
        )
    if x_label:
        yield (
            f'<text class="axis-label" x="{_n(b.left + b.width / 2)}" y="{_n(b.bottom + 36)}" '
            f'text-anchor="middle">{escape(x_label)}</text>'
        )
    if y_label:
        cy = _n(b.top + b.height / 2)
        yield (
            f'<text class="axis-label" x="14" y="{cy}" text-anchor="middle" transform="rotate(-90 14 {cy})">'
            f"{escape(y_label)}</text>"
        )


def _band(f: _Frame, band: Band) -> Iterator[str]:
    b = f.box
    if b.log_y and band.lo <= 0:
        return
    y_hi, y_lo = f.sy(band.hi), f.sy(band.lo)
    yield (
        f'<g class="band"><title>{escape(band.label)}</title>'
        f'<rect x="{_n(b.left)}" y="{_n(y_hi)}" width="{_n(b.width)}" height="{_n(max(y_lo - y_hi, 1))}" '
        f'fill="#2ca02c" fill-opacity="0.14"/>'
    )
    if band.label:
        yield (
            f'<text class="band-label" x="{_n(b.right - 6)}" y="{_n(y_hi - 4)}" text-anchor="end">'
            f"{escape(band.label)}</text>"
        )
    yield "</g>"


def _guides(f: _Frame, guides: Sequence[Guide]) -> Iterator[str]:
    """Vertical lines; their labels thinned so that they never overlap."""
    b, last_label = f.box, -math.inf
    for g in guides:
        if not math.isfinite(g.x):
            continue
        x = f.sx(g.x)
        yield f'<line class="guide" x1="{_n(x)}" y1="{_n(b.top)}" x2="{_n(x)}" y2="{_n(b.bottom)}"/>'
        if g.label and x - last_label >= len(g.label) * CHAR_WIDTH + 8:
            yield (
                f'<text class="guide-label" x="{_n(x)}" y="{_n(b.top - 3)}" text-anchor="middle">'
                f"{escape(g.label)}</text>"
            )
            last_label = x


def _series(f: _Frame, s: Series, points: list[Point], color: str, dash: str) -> Iterator[str]:
    coords = [(f.sx(x), f.sy(y)) for x, y in points]
    text = " ".join(f"{_n(x)},{_n(y)}" for x, y in coords)
    yield (
        f'<g class="series" data-name="{_attr(s.name)}"><title>{escape(s.name)}</title>'
        f'<polyline data-points="{len(points)}" data-source-points="{len(s.points)}" points="{text}" '
        f'fill="none" stroke="{color}" stroke-width="{s.width:g}" stroke-opacity="{s.opacity:g}" '
        f'stroke-linejoin="round" stroke-linecap="round"{dash}/>'
    )
    if s.dots:
        yield from (f'<circle class="dot" cx="{_n(x)}" cy="{_n(y)}" r="3.2" fill="{color}"/>' for x, y in coords)
    yield "</g>"


def _mark(f: _Frame, m: Mark) -> Iterator[str]:
    if not (math.isfinite(m.x) and math.isfinite(m.y)) or (f.box.log_y and m.y <= 0):
        return
    x, y = f.sx(m.x), f.sy(m.y)
    yield (
        f'<g class="mark"><title>{escape(m.title or m.label)}</title>'
        f'<circle cx="{_n(x)}" cy="{_n(y)}" r="7" fill="none" stroke="{_attr(m.color)}" stroke-width="2.5"/>'
    )
    if m.label:  # to the left of the ring when it sits in the right part of the plot
        anchor, dx = ("end", -11) if x > f.box.left + f.box.width * 0.7 else ("start", 11)
        yield (
            f'<text class="mark-label" x="{_n(x + dx)}" y="{_n(y - 9)}" text-anchor="{anchor}">{escape(m.label)}</text>'
        )
    yield "</g>"


def line_chart(
    series: Sequence[Series],
    *,
    title: str = "",
    x_label: str = "",
    y_label: str = "",
    log_y: bool = False,
    band: Band | None = None,
    marks: Sequence[Mark] = (),
    guides: Sequence[Guide] = (),
    width: int = 760,
    height: int = 320,
    max_points: int | None = None,
) -> str:
    """One `<svg>` element drawing the series on shared axes.

    `max_points` bounds the points drawn per series (default: two per pixel column of the plot);
    non-finite values, and values <= 0 on a log axis, are left out. The y domain also covers the band
    and the marks, so the pick window shows even when the loss never reaches it. The legend, under
    the plot when there are several series, adds to `height`."""
    top, bottom = (30.0 if title else 14.0), (44.0 if x_label else 28.0)
    box = _Box(left=64.0, top=top, width=width - 64.0 - 20.0, height=height - top - bottom, log_y=log_y)
    buckets = max(1, (max_points if max_points is not None else int(box.width) * 2) // 4)
    drawn = [decimate(_finite(s.points, log_y), buckets) for s in series]
    frame, x_ticks, y_ticks = _frame(drawn, band, marks, guides, box)

    out = list(_axes(frame, x_ticks, y_ticks, x_label, y_label))
    if band is not None:
        out += _band(frame, band)  # under the lines
    out += _guides(frame, guides)
    out.append(
        f'<rect class="frame" x="{_n(box.left)}" y="{_n(top)}" width="{_n(box.width)}" height="{_n(box.height)}"/>'
    )
    legend: list[tuple[str, str, bool, str]] = []
    for i, (s, points) in enumerate(zip(series, drawn, strict=True)):
        color = _attr(s.color or PALETTE[i % len(PALETTE)])
        dash = f' stroke-dasharray="{_attr(s.dash)}"' if s.dash else ""
        out += _series(frame, s, points, color, dash)
        if s.in_legend:
            legend.append((s.name, color, s.dots, dash))
    for m in marks:
        out += _mark(frame, m)  # over the lines
    if not any(drawn):
        out.append(
            f'<text class="empty" x="{_n(box.left + box.width / 2)}" y="{_n(top + box.height / 2)}" '
            'text-anchor="middle">no data</text>'
        )
    if title:
        out.append(f'<text class="title" x="{_n(box.left)}" y="18">{escape(title)}</text>')
    legend_height = 0.0
    if len(legend) > 1:
        parts, legend_height = _legend(legend, box.left, height, box.width)
        out.append('<g class="legend">' + "".join(parts) + "</g>")
    total = _n(height + legend_height)
    return (
        f'<svg class="chart" xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {total}" '
        f'width="{width}" height="{total}" role="img" aria-label="{_attr(title or "chart")}">'
        f"<style>{STYLE}</style>" + "".join(out) + "</svg>"
    )
