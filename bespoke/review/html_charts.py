"""The review page's "Per epoch" charts, each with its own legend: the best-epoch score (when the report has
one), raw mean colours (with the recorded 512 px baseline only when a 512 px run is shown), % clean, and the
training loss per epoch (and the validation loss on the held-out designs beside it)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from functools import partial
from html import escape

from bespoke.review.charts import PALETTE, Chart, RefLine, Series, legend, line_chart
from bespoke.review.html_data import Baseline, RunView, baseline_applies, method_row
from bespoke.review.records import EpochRow
from bespoke.review.sheets import best_epoch

BASELINE_GREY = "#8a9099"
BASELINE_DASH = "1 3"
REF_DASH = "6 4"
VALIDATION_DASH = "4 3"  # the validation loss beside the training loss
LegendItem = tuple[str, str, str | None]


def _box(svg: str, items: list[LegendItem], note: str = "") -> str:
    """A chart with its legend (and a note) under it."""
    foot = f'<p class="muted chart-note">{escape(note)}</p>' if note else ""
    return f'<figure class="chart-box">{svg}{legend(items)}{foot}</figure>'


def charts_html(views: list[RunView], baseline: Baseline) -> str:
    """Every per-epoch chart of the runs on one shared epoch axis."""
    colors = {v.run_id: PALETTE[i % len(PALETTE)] for i, v in enumerate(views)}
    epochs = [e.epoch for v in views for e in v.report.epochs if e.epoch is not None]
    x_domain = (min(epochs + [1]), max(epochs + [1]))
    parts = ['<div class="charts">']
    score = _score_chart(views, colors, x_domain)
    if score:
        parts.append(score)
    parts += [_colour_chart(views, colors, baseline, x_domain), _clean_chart(views, colors, x_domain)]
    loss = _loss_chart(views, colors, x_domain)
    if loss:
        parts.append(loss)
    parts.append("</div>")
    return "\n".join(parts)


def _runs_legend(views: list[RunView], colors: dict[str, str]) -> list[LegendItem]:
    return [(v.label, colors[v.run_id], None) for v in views]


def _score_points(view: RunView) -> list[tuple[float, float]]:
    return [(float(e.epoch), e.score.total) for e in view.report.epochs if e.epoch is not None]


def _score_chart(views: list[RunView], colors: dict[str, str], x_domain: tuple[int, int]) -> str | None:
    """The best-epoch rule's score per epoch (None when no report has per-epoch scores)."""
    series = [Series(v.label, _score_points(v), colors[v.run_id], marks=_best_marks(v)) for v in views]
    if not any(s.points for s in series):
        return None
    ys = [y for s in series for _, y in s.points]
    low = min(0.0, min(ys))
    svg = line_chart(series, Chart(title="Best-epoch score per epoch (higher is better)", x_label="epoch",
                                   y_label="score", x_domain=x_domain,
                                   y_domain=(low, max(ys) * 1.08 if max(ys) > 0 else 1.0), chart_id="score"))
    return _box(svg, _runs_legend(views, colors), "The score of the best-epoch rule; its terms are in each run's "
                "table. Rings mark each run's best epoch.")


def _colour_chart(views: list[RunView], colors: dict[str, str], baseline: Baseline,
                  x_domain: tuple[int, int]) -> str:
    """Raw mean colours per epoch; the recorded 512 px run and its headline mean only beside a 512 px run."""
    series = [Series(v.label, _epoch_points(v, lambda e: e.colors_nearest_mean), colors[v.run_id],
                     marks=_best_marks(v)) for v in views]
    items = _runs_legend(views, colors)
    refs: list[RefLine] = []
    note = ("Raw colours: distinct colours after a plain NEAREST downscale of the sample to 24 px. Rings mark "
            "each run's best epoch.")
    if any(baseline_applies(v, baseline) for v in views):
        resolution, epoch = baseline["resolution"], baseline["epoch"]
        per_epoch = baseline.get("per_epoch") or {}
        series.append(Series(f"recorded {resolution} px run", sorted(
            (float(e), float(y)) for e, y in per_epoch.items() if x_domain[0] <= e <= x_domain[1]
        ), BASELINE_GREY, dash=BASELINE_DASH, width=1.5, dots=False))
        mean = float(baseline["mean_colors_nearest"])
        refs.append(RefLine(mean, f"recorded baseline, {resolution} px epoch {epoch}: {mean:.1f}", dash=REF_DASH))
        items += [(f"recorded {resolution} px run, per epoch", BASELINE_GREY, BASELINE_DASH),
                  (f"recorded baseline: {resolution} px epoch {epoch} mean {mean:.1f}", "#444", REF_DASH)]
        note += f" The recorded baseline ({baseline['source']}) applies to {resolution} px runs only."
    all_y = [y for s in series for _, y in s.points] + [r.y for r in refs] + [1.0]
    svg = line_chart(series, Chart(title="Raw mean colours per epoch (lower is cleaner)", x_label="epoch",
                                   y_label="mean colours", x_domain=x_domain, y_domain=(0.0, max(all_y) * 1.08),
                                   refs=refs, chart_id="colours"))
    return _box(svg, items, note)


def _clean_chart(views: list[RunView], colors: dict[str, str], x_domain: tuple[int, int]) -> str:
    """% clean per epoch: each run's candidates (solid) and its raw samples (dotted)."""
    series: list[Series] = []
    for view in views:
        color = colors[view.run_id]
        method = view.method
        if method:
            series.append(Series(f"{view.label} {method}", _epoch_points(view, partial(_clean_pct, method=method)),
                                 color, marks=_best_marks(view)))
        series.append(Series(f"{view.label} samples", _epoch_points(view, lambda e: e.clean_pct), color, dash="2 3",
                             width=1.4, dots=False))
    methods = ", ".join(sorted({v.method for v in views if v.method})) or "no"
    items = _runs_legend(views, colors) + [(f"solid: {methods} candidates", "#444", None),
                                           ("dotted: raw samples", "#444", "2 3")]
    series, same = _nested(series)  # solid lines only: nested dotted lines would read as a comb
    svg = line_chart(series, Chart(title="% clean per epoch (few colours, higher is better)", x_label="epoch",
                                   y_label="% clean", x_domain=x_domain, y_domain=(0.0, 100.0), chart_id="clean"))
    note = "Clean: at most 50 colours and the 10 most used colours cover at least 70 % of it."
    if same:
        note += " " + " ".join(f"Identical lines, drawn as nested stripes: {', '.join(names)}." for names in same)
    return _box(svg, items, note)


def _nested(series: list[Series]) -> tuple[list[Series], list[list[str]]]:
    """`series` with each group of identical lines drawn as nested stripes (the first widest, each later one
    narrower on top, so every colour shows), and the names of each group of two or more."""
    groups: dict[tuple[tuple[float, float], ...], list[int]] = {}
    for i, s in enumerate(series):
        if s.points and not s.dash:
            groups.setdefault(tuple(s.points), []).append(i)
    out = list(series)
    same = []
    for members in groups.values():
        if len(members) < 2:
            continue
        same.append([series[i].name for i in members])
        for rank, i in enumerate(members):
            out[i] = replace(series[i], width=series[i].width + 2.5 * (len(members) - 1 - rank))
    return out, same


def _loss_chart(views: list[RunView], colors: dict[str, str], x_domain: tuple[int, int]) -> str | None:
    """Training loss per epoch of the runs that have one, with the loss on their held-out designs beside it
    (dashed); None when no run has a loss."""
    with_loss = [v for v in views if v.loss or v.validation_loss]
    if not with_loss:
        return None
    series = [Series(v.label, [(float(e), y) for e, y in sorted(v.loss.items())], colors[v.run_id])
              for v in with_loss if v.loss]
    series += [Series(f"{v.label} (validation)", [(float(e), y) for e, y in sorted(v.validation_loss.items())],
                      colors[v.run_id], dash=VALIDATION_DASH) for v in with_loss if v.validation_loss]
    simulated = any(v.simulated for v in with_loss)
    ys = [y for s in series for _, y in s.points]
    validated = any(v.validation_loss for v in with_loss)
    title = ("Training and validation loss per epoch" if validated else "Training loss per epoch")
    svg = line_chart(series, Chart(title=title + (" (SIMULATED)" if simulated else ""),
                                   x_label="epoch", y_label="loss", x_domain=(min(x_domain[0], 1), x_domain[1]),
                                   y_domain=(0.0, max(ys) * 1.1 if max(ys) > 0 else 1.0), chart_id="loss"))
    sources = sorted({v.loss_source for v in with_loss if v.loss_source})
    if validated:
        sources.append("dashed: the loss on the designs held out for validation (TensorBoard "
                       "loss/validation/epoch_average)")
    legend = _runs_legend(with_loss, colors) + ([("solid: training", "#444", None),
                                                  ("dashed: validation", "#444", VALIDATION_DASH)] if validated else [])
    return _box(svg, legend, "Source: " + "; ".join(sources) + ".")


def _best_marks(view: RunView) -> list[float]:
    best = best_epoch(view.report)
    return [float(best)] if best is not None else []


def _clean_pct(row: EpochRow, method: str) -> float | None:
    stats = method_row(row, method)
    return stats.clean_pct if stats is not None else None


def _epoch_points(view: RunView, value: Callable[[EpochRow], float | None]) -> list[tuple[float, float]]:
    """(epoch, value) for every numbered epoch of the report that has a value."""
    points = []
    for row in view.report.epochs:
        y = value(row)
        if row.epoch is not None and y is not None:
            points.append((float(row.epoch), float(y)))
    return points
