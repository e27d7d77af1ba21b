"""Small server-side SVG line charts for the HTML report: no JavaScript library, no network.

One chart = shared x/y axes, one polyline per series, optional dashed horizontal reference lines and a
legend. Values are placed in a fixed viewBox so the chart scales with the page.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from html import escape

PALETTE = ("#1f6fd1", "#d2372f", "#1a9a55", "#8a4fd8", "#e08a00", "#0f9bb0", "#c2409a", "#5b6470")


@dataclass
class Series:
    """One line: `points` are (x, y) pairs; `dash` is an SVG dasharray or None; `marks` highlights x values."""

    name: str
    points: list[tuple[float, float]]
    color: str = PALETTE[0]
    dash: str | None = None
    width: float = 2.2
    marks: list[float] = field(default_factory=list)
    dots: bool = True


@dataclass
class RefLine:
    """A horizontal reference line at `y` (e.g. the recorded baseline)."""

    y: float
    label: str
    color: str = "#444"
    dash: str = "6 4"


@dataclass(frozen=True)
class _Frame:
    """The plot area inside the viewBox (margins for the title, ticks and labels) and the data range it shows."""

    width: int
    height: int
    x0: float
    x1: float
    y0: float
    y1: float
    left: int = 56
    right: int = 16
    top: int = 30
    bottom: int = 40

    @property
    def plot_w(self) -> int:
        return self.width - self.left - self.right

    @property
    def plot_h(self) -> int:
        return self.height - self.top - self.bottom

    @property
    def base(self) -> int:
        """The y of the x axis."""
        return self.top + self.plot_h

    def px(self, x: float) -> float:
        return self.left + (x - self.x0) / (self.x1 - self.x0) * self.plot_w

    def py(self, y: float) -> float:
        return self.top + self.plot_h - (y - self.y0) / (self.y1 - self.y0) * self.plot_h


def nice_ticks(low: float, high: float, count: int = 5) -> list[float]:
    """About `count` round tick values from at or below `low` up to `high` (the last may stop short of it)."""
    if high <= low:
        high = low + 1.0
    raw = (high - low) / max(1, count)
    magnitude = 10 ** math.floor(math.log10(raw))
    step = next(m * magnitude for m in (1, 2, 2.5, 5, 10) if m * magnitude >= raw)
    start = math.floor(low / step) * step
    ticks = []
    value = start
    while value <= high + step * 1e-9:
        ticks.append(round(value, 10))
        value += step
    return ticks


def _fmt(value: float) -> str:
    if abs(value - round(value)) < 1e-9:
        return str(int(round(value)))
    return f"{value:.3g}"


@dataclass(frozen=True)
class Chart:
    """What a chart says and how big it is: `title`, axis labels, the x and y ranges (None: the data's; see
    line_chart), horizontal `refs`, the viewBox size, whole-number x ticks (`integer_x`: epochs), and the
    <svg>'s class and `data-chart` id."""

    title: str
    x_label: str
    y_label: str
    x_domain: tuple[float, float] | None = None
    y_domain: tuple[float, float] | None = None
    refs: Sequence[RefLine] = ()
    width: int = 640
    height: int = 300
    integer_x: bool = True
    css_class: str = "chart"
    chart_id: str = ""


def line_chart(series: list[Series], chart: Chart) -> str:
    """An inline <svg> line chart. Empty series are skipped; a chart with no data says so.

    Without `x_domain` the x axis spans the data; without `y_domain` the y axis runs from 0 to 8 % above the
    highest point or reference line.
    """
    (x0, x1), y_domain = _domains(series, chart.refs, chart.x_domain, chart.y_domain)
    y_ticks = nice_ticks(y_domain[0], y_domain[1])
    frame = _Frame(chart.width, chart.height, x0, x1, y_ticks[0], max(y_ticks[-1], y_domain[1]))
    out = [
        f'<svg class="{chart.css_class}" data-chart="{escape(chart.chart_id)}" viewBox="0 0 {chart.width} '
        f'{chart.height}" role="img" aria-label="{escape(chart.title)}" xmlns="http://www.w3.org/2000/svg">',
        f'<text class="title" x="{frame.left}" y="18">{escape(chart.title)}</text>',
    ]
    out += _y_ticks(frame, y_ticks)
    out += _x_ticks(frame, chart.integer_x)
    out += _axes(frame, chart.x_label, chart.y_label)
    out += _ref_lines(frame, chart.refs)
    drawn = [s for s in series if s.points]
    for s in drawn:
        out += _series(frame, s)
    if not drawn:
        out.append(f'<text class="empty" x="{frame.left + frame.plot_w / 2:.1f}" '
                   f'y="{frame.top + frame.plot_h / 2:.1f}" text-anchor="middle">no data</text>')
    out.append("</svg>")
    return "\n".join(out)


def _domains(series: list[Series], refs: Sequence[RefLine], x_domain: tuple[float, float] | None,
             y_domain: tuple[float, float] | None) -> tuple[tuple[float, float], tuple[float, float]]:
    """The x and y ranges: the given ones, else the data's; a single x value gets half a unit either side."""
    xs = [x for s in series for x, _ in s.points]
    ys = [y for s in series for _, y in s.points] + [r.y for r in refs]
    if x_domain is None:
        x_domain = (min(xs), max(xs)) if xs else (0.0, 1.0)
    if y_domain is None:
        y_domain = (0.0, max(ys) * 1.08) if ys else (0.0, 1.0)
    x0, x1 = x_domain
    if x1 <= x0:
        x0, x1 = x0 - 0.5, x1 + 0.5
    return (x0, x1), y_domain


def _y_ticks(frame: _Frame, ticks: list[float]) -> list[str]:
    """A grid line and a label per y tick."""
    out = []
    for tick in ticks:
        y = frame.py(tick)
        out.append(f'<line class="grid" x1="{frame.left}" x2="{frame.left + frame.plot_w}" y1="{y:.1f}" y2="{y:.1f}"/>')
        out.append(f'<text class="tick" x="{frame.left - 6}" y="{y + 4:.1f}" text-anchor="end">{_fmt(tick)}</text>')
    return out


def _x_ticks(frame: _Frame, integer_x: bool) -> list[str]:
    """A tick mark and a label per x tick inside the range: at most ~12 whole numbers, or round values."""
    ticks: list[float]
    if integer_x:
        step = max(1, math.ceil((frame.x1 - frame.x0) / 12))
        ticks = list(range(math.ceil(frame.x0), math.floor(frame.x1) + 1, step))
    else:
        ticks = nice_ticks(frame.x0, frame.x1, 8)
    out = []
    for tick in ticks:
        if frame.x0 - 1e-9 <= tick <= frame.x1 + 1e-9:
            x = frame.px(tick)
            out.append(f'<line class="axis-tick" x1="{x:.1f}" x2="{x:.1f}" y1="{frame.base}" y2="{frame.base + 4}"/>')
            out.append(f'<text class="tick" x="{x:.1f}" y="{frame.base + 17}" text-anchor="middle">{_fmt(tick)}</text>')
    return out


def _axes(frame: _Frame, x_label: str, y_label: str) -> list[str]:
    """The two axis lines and their labels."""
    left, top, plot_w, plot_h = frame.left, frame.top, frame.plot_w, frame.plot_h
    return [
        f'<line class="axis" x1="{left}" x2="{left + plot_w}" y1="{frame.base}" y2="{frame.base}"/>',
        f'<line class="axis" x1="{left}" x2="{left}" y1="{top}" y2="{frame.base}"/>',
        f'<text class="label" x="{left + plot_w / 2:.1f}" y="{frame.height - 4}" text-anchor="middle">'
        f'{escape(x_label)}</text>',
        f'<text class="label" transform="translate(13 {top + plot_h / 2:.1f}) rotate(-90)" '
        f'text-anchor="middle">{escape(y_label)}</text>',
    ]


def _ref_lines(frame: _Frame, refs: Sequence[RefLine]) -> list[str]:
    """Each reference line inside the y range, labelled just above it."""
    out = []
    for ref in refs:
        if frame.y0 <= ref.y <= frame.y1:
            y = frame.py(ref.y)
            out.append(f'<line class="ref" x1="{frame.left}" x2="{frame.left + frame.plot_w}" y1="{y:.1f}" '
                       f'y2="{y:.1f}" stroke="{ref.color}" stroke-dasharray="{ref.dash}"/>')
            out.append(f'<text class="ref-label" x="{frame.left + 6}" y="{y - 5:.1f}" text-anchor="start" '
                       f'fill="{ref.color}">{escape(ref.label)}</text>')
    return out


def _series(frame: _Frame, s: Series) -> list[str]:
    """One series: its polyline, a dot with a tooltip per point, and a ring around each marked x."""
    pts = sorted(s.points)
    coords = " ".join(f"{frame.px(x):.1f},{frame.py(y):.1f}" for x, y in pts)
    dash = f' stroke-dasharray="{s.dash}"' if s.dash else ""
    out = [f'<polyline class="series" data-series="{escape(s.name)}" points="{coords}" fill="none" '
           f'stroke="{s.color}" stroke-width="{s.width}"{dash}/>']
    if s.dots:
        for x, y in pts:
            out.append(f'<circle cx="{frame.px(x):.1f}" cy="{frame.py(y):.1f}" r="2.8" fill="{s.color}">'
                       f'<title>{escape(s.name)}: {_fmt(x)} → {y:.1f}</title></circle>')
    for mark in s.marks:
        for x, y in pts:
            if x == mark:
                out.append(f'<circle class="mark" cx="{frame.px(x):.1f}" cy="{frame.py(y):.1f}" r="7" fill="none" '
                           f'stroke="{s.color}" stroke-width="2"><title>best: {_fmt(x)}</title></circle>')
    return out


def legend(items: Sequence[tuple[str, str, str | None]]) -> str:
    """HTML legend: (label, colour, dasharray or None) per line."""
    parts = ['<div class="legend">']
    for label, color, dash in items:
        dash_attr = f' stroke-dasharray="{dash}"' if dash else ""
        parts.append(
            f'<span><svg width="28" height="10" aria-hidden="true"><line x1="1" x2="27" y1="5" y2="5" '
            f'stroke="{color}" stroke-width="2.5"{dash_attr}/></svg>{escape(label)}</span>'
        )
    parts.append("</div>")
    return "".join(parts)
