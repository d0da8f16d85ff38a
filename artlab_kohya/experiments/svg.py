"""Inline SVG line charts: no dependency, no script, readable from a file opened offline.

A chart is a pure function of its data. Each series is one `<polyline>` whose `data-points` says how
many points it draws (and `data-source-points` how many it was given), optionally with one `<circle>`
per drawn point (per-epoch values). Around them: axes with "nice" ticks, an optional log y axis, a
shaded horizontal band (the pick window), marked points (the picked epoch), vertical guides (epoch
boundaries on a step axis) and a legend when several series share the axes (a sweep's runs).

Long series are decimated before drawing: per column two pixels wide the first, lowest, highest and
last point are kept in x order (M4), so a 10,000-step run stays a few kilobytes per series and its spikes stay
visible. Every text that reaches the SVG is escaped; colours and numbers are ours.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
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
class _Frame:
    """Where the plot area lies in the SVG and the data domain it shows."""

    left: float
    top: float
    width: float
    height: float
    x0: float
    x1: float
    y0: float  # in log10 units when log_y
    y1: float
    log_y: bool

    def sx(self, x: float) -> float:
        return self.left + (x - self.x0) / (self.x1 - self.x0) * self.width

    def sy(self, y: float) -> float:
        v = math.log10(y) if self.log_y else y
        return self.top + self.height - (v - self.y0) / (self.y1 - self.y0) * self.height


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
    and the marks, so the pick window shows even when the loss never reaches it."""
    left, right, top, bottom = 64.0, 20.0, 30.0 if title else 14.0, 44.0 if x_label else 28.0
    plot_w, plot_h = width - left - right, height - top - bottom
    buckets = max(1, (max_points if max_points is not None else int(plot_w) * 2) // 4)
    drawn = [(s, _finite(s.points, log_y)) for s in series]
    drawn = [(s, decimate(p, buckets)) for s, p in drawn]

    xs = [x for _, p in drawn for x, _ in p] + [m.x for m in marks] + [g.x for g in guides]
    ys = [y for _, p in drawn for _, y in p] + [m.y for m in marks]
    if band is not None:
        ys += [band.lo, band.hi]
    xs = [x for x in xs if math.isfinite(x)]
    ys = [y for y in ys if math.isfinite(y) and (y > 0 or not log_y)]
    empty = not any(p for _, p in drawn)

    x_ticks = nice_ticks(min(xs), max(xs), max(2, int(plot_w // 90))) if xs else [0.0, 1.0]
    if log_y:
        lo, hi = (min(ys), max(ys)) if ys else (0.1, 1.0)
        if lo == hi:
            lo, hi = lo / 2, hi * 2
        pad = (math.log10(hi) - math.log10(lo)) * 0.05
        y0, y1 = math.log10(lo) - pad, math.log10(hi) + pad
        y_ticks = log_ticks(10**y0, 10**y1)
    else:
        y_ticks = nice_ticks(min(ys), max(ys), max(3, int(plot_h // 50))) if ys else [0.0, 1.0]
        y0, y1 = y_ticks[0], y_ticks[-1]
    frame = _Frame(left, top, plot_w, plot_h, x_ticks[0], x_ticks[-1], y0, y1, log_y)
    x_step = x_ticks[1] - x_ticks[0] if len(x_ticks) > 1 else 1.0
    y_step = min((b - a for a, b in zip(y_ticks[:-1], y_ticks[1:], strict=True)), default=1.0)

    out: list[str] = []
    bottom_y = top + plot_h
    # grid and axes
    for t in y_ticks:
        y = frame.sy(t)
        out.append(f'<line class="grid" x1="{_n(left)}" y1="{_n(y)}" x2="{_n(left + plot_w)}" y2="{_n(y)}"/>')
        label = f"{t:.3g}" if log_y else format_tick(t, y_step)
        out.append(f'<text class="tick" x="{_n(left - 6)}" y="{_n(y + 4)}" text-anchor="end">{label}</text>')
    for t in x_ticks:
        x = frame.sx(t)
        out.append(f'<line class="axis" x1="{_n(x)}" y1="{_n(bottom_y)}" x2="{_n(x)}" y2="{_n(bottom_y + 4)}"/>')
        out.append(
            f'<text class="tick" x="{_n(x)}" y="{_n(bottom_y + 17)}" text-anchor="middle">'
            f"{format_tick(t, x_step)}</text>"
        )
    # the band under everything else
    if band is not None and (not log_y or band.lo > 0):
        y_hi, y_lo = frame.sy(band.hi), frame.sy(band.lo)
        out.append(
            f'<g class="band"><title>{escape(band.label)}</title>'
            f'<rect x="{_n(left)}" y="{_n(y_hi)}" width="{_n(plot_w)}" height="{_n(max(y_lo - y_hi, 1))}" '
            f'fill="#2ca02c" fill-opacity="0.14"/>'
        )
        if band.label:
            out.append(
                f'<text class="band-label" x="{_n(left + plot_w - 6)}" y="{_n(y_hi - 4)}" text-anchor="end">'
                f"{escape(band.label)}</text>"
            )
        out.append("</g>")
    # guides, their labels thinned so that they never overlap
    last_label = -math.inf
    for g in guides:
        if not frame.x0 <= g.x <= frame.x1:
            continue
        x = frame.sx(g.x)
        out.append(f'<line class="guide" x1="{_n(x)}" y1="{_n(top)}" x2="{_n(x)}" y2="{_n(bottom_y)}"/>')
        if g.label and x - last_label >= len(g.label) * CHAR_WIDTH + 8:
            out.append(
                f'<text class="guide-label" x="{_n(x)}" y="{_n(top - 3)}" text-anchor="middle">{escape(g.label)}</text>'
            )
            last_label = x
    out.append(f'<rect class="frame" x="{_n(left)}" y="{_n(top)}" width="{_n(plot_w)}" height="{_n(plot_h)}"/>')
    # series
    legend: list[tuple[str, str, bool, str]] = []
    for i, (s, points) in enumerate(drawn):
        color = s.color or PALETTE[i % len(PALETTE)]
        dash = f' stroke-dasharray="{_attr(s.dash)}"' if s.dash else ""
        coords = [(frame.sx(x), frame.sy(y)) for x, y in points]
        text = " ".join(f"{_n(x)},{_n(y)}" for x, y in coords)
        out.append(
            f'<g class="series" data-name="{_attr(s.name)}"><title>{escape(s.name)}</title>'
            f'<polyline data-points="{len(points)}" data-source-points="{len(s.points)}" points="{text}" '
            f'fill="none" stroke="{_attr(color)}" stroke-width="{s.width:g}" stroke-opacity="{s.opacity:g}" '
            f'stroke-linejoin="round" stroke-linecap="round"{dash}/>'
        )
        if s.dots:
            out.extend(
                f'<circle class="dot" cx="{_n(x)}" cy="{_n(y)}" r="3.2" fill="{_attr(color)}"/>' for x, y in coords
            )
        out.append("</g>")
        if s.in_legend:
            legend.append((s.name, _attr(color), s.dots, dash))
    # marks on top
    for m in marks:
        if not (math.isfinite(m.x) and math.isfinite(m.y)) or (log_y and m.y <= 0):
            continue
        x, y = frame.sx(m.x), frame.sy(m.y)
        out.append(
            f'<g class="mark"><title>{escape(m.title or m.label)}</title>'
            f'<circle cx="{_n(x)}" cy="{_n(y)}" r="7" fill="none" stroke="{_attr(m.color)}" stroke-width="2.5"/>'
        )
        if m.label:
            anchor, dx = ("end", -11) if x > left + plot_w * 0.7 else ("start", 11)
            out.append(
                f'<text class="mark-label" x="{_n(x + dx)}" y="{_n(y - 9)}" text-anchor="{anchor}">'
                f"{escape(m.label)}</text>"
            )
        out.append("</g>")
    if empty:
        out.append(
            f'<text class="empty" x="{_n(left + plot_w / 2)}" y="{_n(top + plot_h / 2)}" text-anchor="middle">'
            "no data</text>"
        )
    # labels
    if title:
        out.append(f'<text class="title" x="{_n(left)}" y="18">{escape(title)}</text>')
    if x_label:
        out.append(
            f'<text class="axis-label" x="{_n(left + plot_w / 2)}" y="{_n(bottom_y + 36)}" text-anchor="middle">'
            f"{escape(x_label)}</text>"
        )
    if y_label:
        cy = top + plot_h / 2
        out.append(
            f'<text class="axis-label" x="14" y="{_n(cy)}" text-anchor="middle" transform="rotate(-90 14 {_n(cy)})">'
            f"{escape(y_label)}</text>"
        )
    legend_height = 0.0
    if len(legend) > 1:
        parts, legend_height = _legend(legend, left, height, plot_w)
        out.append('<g class="legend">' + "".join(parts) + "</g>")
    total_h = height + legend_height
    style = (
        f"<style>text{{font:12px {FONT};fill:#333}}.title{{font-weight:600;font-size:13px}}"
        ".tick{fill:#555;font-size:11px}.axis-label{fill:#444}.grid{stroke:#e4e4e4}.axis{stroke:#888}"
        ".frame{fill:none;stroke:#bbb}.guide{stroke:#ccc;stroke-dasharray:2 3}.guide-label{font-size:10px;fill:#777}"
        ".band-label{fill:#1e7a1e;font-size:11px}.mark-label{font-weight:600;fill:#b01c1c}"
        ".band-label,.mark-label{paint-order:stroke;stroke:#fff;stroke-width:3px;stroke-linejoin:round}"
        ".empty{fill:#999;font-size:14px}</style>"
    )
    return (
        f'<svg class="chart" xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {_n(total_h)}" '
        f'width="{width}" height="{_n(total_h)}" role="img" aria-label="{_attr(title or "chart")}">'
        f"{style}" + "".join(out) + "</svg>"
    )
