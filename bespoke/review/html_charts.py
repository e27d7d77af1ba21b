"""The review page's "Per epoch" charts: mean colours, % clean and training loss of every run on shared axes,
with the recorded baseline drawn as a reference."""

from __future__ import annotations

from html import escape

from bespoke.review.charts import PALETTE, RefLine, Series, legend, line_chart
from bespoke.review.html_data import Baseline, RunView, method_stat
from bespoke.review.sheets import best_epoch

BASELINE_GREY = "#9aa0a8"


def charts_html(views: list[RunView], baseline: Baseline) -> str:
    """The colour, clean and loss charts on shared axes, with the recorded baseline as a reference."""
    colors = {v.run_id: PALETTE[i % len(PALETTE)] for i, v in enumerate(views)}
    epochs = [e.get("epoch") for v in views for e in v.report.get("epochs") or [] if e.get("epoch") is not None]
    x_domain = (min(epochs + [1]), max(epochs + [1]))
    parts = ['<div class="charts">', f"<div>{_colour_chart(views, colors, baseline, x_domain)}</div>",
             f"<div>{_clean_chart(views, colors, x_domain)}</div>"]
    loss = _loss_chart(views, colors, x_domain[1])
    if loss:
        parts.append(f"<div>{loss}</div>")
    parts.append("</div>")
    items: list[tuple[str, str, str | None]] = [(v.label, colors[v.run_id], None) for v in views]
    parts.append(legend(items + [("recorded baseline (dashed: e8 mean, dotted: per epoch)", "#444", "6 4")]))
    parts.append(f'<p class="muted">Recorded baseline: {escape(str(baseline.get("source")))}.</p>')
    return "\n".join(parts)


def _colour_chart(views: list[RunView], colors: dict[str, str], baseline: Baseline,
                  x_domain: tuple[int, int]) -> str:
    """Mean colours per epoch, the best epoch ringed, with the recorded run per epoch and its headline mean."""
    series = [Series(v.label, _epoch_points(v, "colors_nearest_mean"), colors[v.run_id], marks=_best_marks(v))
              for v in views]
    resolution = baseline.get("resolution", 512)
    per_epoch = baseline.get("per_epoch") or {}
    series.append(Series(f"recorded {resolution} px run", sorted(
        (float(e), float(v)) for e, v in per_epoch.items() if x_domain[0] <= e <= x_domain[1]
    ), BASELINE_GREY, dash="1 3", width=1.5, dots=False))
    ref = RefLine(float(baseline["mean_colors_nearest"]),
                  f"recorded baseline {resolution} px e{baseline.get('epoch')}: {baseline['mean_colors_nearest']:.1f}")
    all_y = [y for s in series for _, y in s.points] + [ref.y]
    return line_chart(series, title="Mean colours per epoch (colors_nearest; lower is cleaner)",
                      x_label="epoch", y_label="mean colours", x_domain=x_domain,
                      y_domain=(0.0, max(all_y) * 1.08), refs=[ref], chart_id="colours")


def _clean_chart(views: list[RunView], colors: dict[str, str], x_domain: tuple[int, int]) -> str:
    """% clean per epoch: each run's candidates (solid) and its raw samples (dotted)."""
    series = []
    for view in views:
        color = colors[view.run_id]
        if view.method:
            series.append(Series(f"{view.label} {view.method}", _epoch_points(view, "clean_pct", view.method),
                                 color, marks=_best_marks(view)))
        series.append(Series(f"{view.label} samples", _epoch_points(view, "clean_pct"), color, dash="2 3",
                             width=1.4, dots=False))
    method_names = sorted({v.method for v in views if v.method})
    return line_chart(series, title=f"% clean per epoch ({', '.join(method_names) or 'no'} candidates solid, "
                      "samples dotted)", x_label="epoch", y_label="% clean", x_domain=x_domain,
                      y_domain=(0.0, 100.0), chart_id="clean")


def _loss_chart(views: list[RunView], colors: dict[str, str], last_epoch: int) -> str | None:
    """Training loss by (fractional) epoch of the runs that have a loss history; None when none has."""
    series = [Series(v.label, _loss_points(v.loss), colors[v.run_id], dots=False, width=1.6) for v in views if v.loss]
    if not series:
        return None
    simulated = any(v.simulated and v.manifest.get("loss_history_simulated") for v in views if v.loss)
    title = "Training loss" + (" (SIMULATED)" if simulated else "") + " by epoch"
    ys = [y for s in series for _, y in s.points]
    return line_chart(series, title=title, x_label="epoch", y_label="loss", x_domain=(0.0, last_epoch),
                      y_domain=(0.0, max(ys) * 1.1), chart_id="loss")


def _best_marks(view: RunView) -> list[float]:
    best = best_epoch(view.report)
    return [float(best)] if best is not None else []


def _epoch_points(view: RunView, key: str, method: str | None = None) -> list[tuple[float, float]]:
    """(epoch, value) for every epoch of the report with a `key` value: of `method`'s candidates when given,
    else of the samples."""
    points = []
    for stats in view.report.get("epochs") or []:
        if stats.get("epoch") is None:
            continue
        value = method_stat(stats, method, key) if method else stats.get(key)
        if value is not None:
            points.append((float(stats["epoch"]), float(value)))
    return points


def _loss_points(loss: list[dict]) -> list[tuple[float, float]]:
    """(fractional epoch, loss): entries inside epoch k spread over (k-1, k]."""
    by_epoch: dict[int, list[dict]] = {}
    for entry in loss:
        if entry.get("loss") is None:
            continue
        by_epoch.setdefault(int(entry.get("epoch") or 1), []).append(entry)
    points = []
    for epoch, entries in sorted(by_epoch.items()):
        entries.sort(key=lambda e: e.get("step") or 0)
        for i, entry in enumerate(entries):
            points.append((epoch - 1 + (i + 1) / len(entries), float(entry["loss"])))
    return points
