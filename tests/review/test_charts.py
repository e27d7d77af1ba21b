"""The SVG line charts: ticks, domains, reference lines, marks, and the empty chart."""

from __future__ import annotations

import re

from bespoke.review.charts import Chart, RefLine, Series, legend, line_chart, nice_ticks


def _points(svg: str) -> list[tuple[float, float]]:
    coords = re.search(r'<polyline [^>]*points="([^"]*)"', svg)
    assert coords, svg
    return [tuple(map(float, p.split(","))) for p in coords.group(1).split()]


def test_nice_ticks_are_round_steps_from_below_the_low_end():
    assert nice_ticks(0, 100) == [0, 20, 40, 60, 80, 100]
    assert nice_ticks(0, 0) == [0, 0.2, 0.4, 0.6, 0.8, 1.0]
    assert nice_ticks(3, 217) == [0, 50, 100, 150, 200]  # the chart extends its axis to 217 itself


def test_the_y_axis_reaches_the_top_of_the_domain_between_ticks():
    svg = line_chart([Series("a", [(1, 3.0), (2, 217.0)])], Chart(title="t", x_label="x", y_label="y",
                                                                  y_domain=(0.0, 217.0)))
    assert min(y for _, y in _points(svg)) == 30.0  # the highest point sits on the plot's top edge


def test_points_are_placed_left_to_right_and_low_values_low():
    svg = line_chart([Series("a", [(3, 10.0), (1, 30.0), (2, 20.0)])], Chart(title="t", x_label="x", y_label="y"))
    points = _points(svg)
    xs, ys = [p[0] for p in points], [p[1] for p in points]
    assert xs == sorted(xs)  # sorted by x
    assert ys == sorted(ys)  # y falls as the value falls -> the svg y grows
    assert 'data-series="a"' in svg and "no data" not in svg


def test_reference_lines_outside_the_y_range_are_left_out():
    svg = line_chart([Series("a", [(1, 5.0), (2, 6.0)])], Chart(
        title="t", x_label="x", y_label="y", y_domain=(0.0, 10.0),
        refs=[RefLine(4.0, "inside"), RefLine(50.0, "outside")]))
    assert svg.count('class="ref"') == 1 and "inside" in svg and "outside" not in svg


def test_marks_ring_the_marked_point_only():
    svg = line_chart([Series("a", [(1, 5.0), (2, 6.0)], marks=[2.0])], Chart(title="t", x_label="x", y_label="y"))
    assert svg.count('class="mark"') == 1 and "best: 2" in svg


def test_a_chart_without_data_says_so_and_escapes_its_text():
    svg = line_chart([Series("empty", [])], Chart(title="a <b>", x_label="x", y_label="y", chart_id="c&d"))
    assert "no data" in svg and "<polyline" not in svg
    assert 'aria-label="a &lt;b&gt;"' in svg and 'data-chart="c&amp;d"' in svg


def test_legend_lists_every_line_with_its_dash():
    html = legend([("run", "#111", None), ("baseline", "#444", "6 4")])
    assert html.count("<span>") == 2 and html.count('stroke-dasharray="6 4"') == 1
