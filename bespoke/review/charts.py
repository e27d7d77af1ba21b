"""Small server-side SVG line charts for the HTML report: no JavaScript library, no network.

One chart = shared x/y axes, one polyline per series, optional dashed horizontal reference lines and a
legend. Values are placed in a fixed viewBox so the chart scales with the page.
"""

from __future__ import annotations

import math
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


def nice_ticks(low: float, high: float, count: int = 5) -> list[float]:
    """Round tick values covering [low, high]."""
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


def line_chart(
    series: list[Series], *, title: str, x_label: str, y_label: str, x_domain: tuple[float, float] | None = None,
    y_domain: tuple[float, float] | None = None, refs: list[RefLine] = (), width: int = 640, height: int = 300,
    integer_x: bool = True, css_class: str = "chart", chart_id: str = "",
) -> str:
    """An inline <svg> line chart. Empty series are skipped; a chart with no data says so."""
    left, right, top, bottom = 56, 16, 30, 40
    plot_w, plot_h = width - left - right, height - top - bottom
    xs = [x for s in series for x, _ in s.points]
    ys = [y for s in series for _, y in s.points] + [r.y for r in refs]
    if x_domain is None:
        x_domain = (min(xs), max(xs)) if xs else (0.0, 1.0)
    if y_domain is None:
        y_domain = (0.0, max(ys) * 1.08) if ys else (0.0, 1.0)
    x0, x1 = x_domain
    if x1 <= x0:
        x0, x1 = x0 - 0.5, x1 + 0.5
    y_ticks = nice_ticks(y_domain[0], y_domain[1])
    y0, y1 = y_ticks[0], max(y_ticks[-1], y_domain[1])

    def px(x: float) -> float:
        return left + (x - x0) / (x1 - x0) * plot_w

    def py(y: float) -> float:
        return top + plot_h - (y - y0) / (y1 - y0) * plot_h

    out = [
        f'<svg class="{css_class}" data-chart="{escape(chart_id)}" viewBox="0 0 {width} {height}" role="img" '
        f'aria-label="{escape(title)}" xmlns="http://www.w3.org/2000/svg">',
        f'<text class="title" x="{left}" y="18">{escape(title)}</text>',
    ]
    for tick in y_ticks:
        y = py(tick)
        out.append(f'<line class="grid" x1="{left}" x2="{left + plot_w}" y1="{y:.1f}" y2="{y:.1f}"/>')
        out.append(f'<text class="tick" x="{left - 6}" y="{y + 4:.1f}" text-anchor="end">{_fmt(tick)}</text>')
    if integer_x:
        step = max(1, math.ceil((x1 - x0) / 12))
        x_ticks = list(range(math.ceil(x0), math.floor(x1) + 1, step))
    else:
        x_ticks = nice_ticks(x0, x1, 8)
    for tick in x_ticks:
        if x0 - 1e-9 <= tick <= x1 + 1e-9:
            x = px(tick)
            out.append(f'<line class="axis-tick" x1="{x:.1f}" x2="{x:.1f}" y1="{top + plot_h}" y2="{top + plot_h + 4}"/>')
            out.append(f'<text class="tick" x="{x:.1f}" y="{top + plot_h + 17}" text-anchor="middle">{_fmt(tick)}</text>')
    out.append(f'<line class="axis" x1="{left}" x2="{left + plot_w}" y1="{top + plot_h}" y2="{top + plot_h}"/>')
    out.append(f'<line class="axis" x1="{left}" x2="{left}" y1="{top}" y2="{top + plot_h}"/>')
    out.append(f'<text class="label" x="{left + plot_w / 2:.1f}" y="{height - 4}" text-anchor="middle">'
               f'{escape(x_label)}</text>')
    out.append(f'<text class="label" transform="translate(13 {top + plot_h / 2:.1f}) rotate(-90)" '
               f'text-anchor="middle">{escape(y_label)}</text>')
    for ref in refs:
        if y0 <= ref.y <= y1:
            y = py(ref.y)
            out.append(f'<line class="ref" x1="{left}" x2="{left + plot_w}" y1="{y:.1f}" y2="{y:.1f}" '
                       f'stroke="{ref.color}" stroke-dasharray="{ref.dash}"/>')
            out.append(f'<text class="ref-label" x="{left + 6}" y="{y - 5:.1f}" text-anchor="start" '
                       f'fill="{ref.color}">{escape(ref.label)}</text>')
    drawn = 0
    for s in series:
        if not s.points:
            continue
        pts = sorted(s.points)
        coords = " ".join(f"{px(x):.1f},{py(y):.1f}" for x, y in pts)
        dash = f' stroke-dasharray="{s.dash}"' if s.dash else ""
        out.append(f'<polyline class="series" data-series="{escape(s.name)}" points="{coords}" fill="none" '
                   f'stroke="{s.color}" stroke-width="{s.width}"{dash}/>')
        if s.dots:
            for x, y in pts:
                out.append(f'<circle cx="{px(x):.1f}" cy="{py(y):.1f}" r="2.8" fill="{s.color}">'
                           f'<title>{escape(s.name)}: {_fmt(x)} → {y:.1f}</title></circle>')
        for mark in s.marks:
            for x, y in pts:
                if x == mark:
                    out.append(f'<circle class="mark" cx="{px(x):.1f}" cy="{py(y):.1f}" r="7" fill="none" '
                               f'stroke="{s.color}" stroke-width="2"><title>best: {_fmt(x)}</title></circle>')
        drawn += 1
    if not drawn:
        out.append(f'<text class="empty" x="{left + plot_w / 2:.1f}" y="{top + plot_h / 2:.1f}" '
                   f'text-anchor="middle">no data</text>')
    out.append("</svg>")
    return "\n".join(out)


def legend(items: list[tuple[str, str, str | None]]) -> str:
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
