"""The review page's tables and per-run sections: the summary, per-epoch and methods tables, the best-epoch
line, the run settings, and the samples grid (each sample beside its 24 px candidate)."""

from __future__ import annotations

import os
import shlex
from html import escape
from pathlib import Path
from urllib.parse import quote

from bespoke.review.epochs import mean_of, pct_of
from bespoke.review.html_data import Baseline, RunView, baseline_applies, best_row, differences, method_row
from bespoke.review.records import EpochRow
from bespoke.review.sheets import best_epoch
from bespoke.run.cost import usd
from bespoke.run.manifest import RunManifest


def rel_url(path: Path, base_dir: Path) -> str:
    """A relative URL from the page's folder to `path` (works from file://)."""
    rel = os.path.relpath(Path(path).resolve(), Path(base_dir).resolve())
    return quote(rel.replace(os.sep, "/"))


def _num(value: object, fmt: str = "{:.1f}", none: str = "—") -> str:
    """`value` formatted with `fmt`; `none` for None, the escaped text for what `fmt` cannot format."""
    if value is None:
        return none
    try:
        return fmt.format(value)
    except (TypeError, ValueError):
        return escape(str(value))


def _terms(terms: dict[str, float]) -> str:
    """A score's terms as 'name value' pairs, in the report's order."""
    return ", ".join(f"{escape(k)} {_num(v, '{:.3g}')}" for k, v in terms.items())


def summary_table(views: list[RunView], baseline: Baseline) -> str:
    """Which epoch of which run: one row per run with its label, what differs from the other runs, the chosen
    epoch and its score with each term, and the raw downscale colours (vs the recorded baseline at 512 px)."""
    ref = float(baseline["mean_colors_nearest"])
    diffs = differences(views)
    rows = ['<table class="summary"><tr><th class="l">run</th><th class="l">differs by</th><th class="l">status</th>'
            '<th>epochs</th><th>samples</th><th>best epoch</th><th class="l">method</th><th>score</th>'
            '<th class="l">why (score terms)</th><th>near-copies at best</th>'
            '<th title="colors_nearest: colours after a plain NEAREST downscale to 24 px">raw colours at best</th>'
            f'<th title="only for {baseline["resolution"]} px runs">vs recorded {baseline["resolution"]} px '
            f'baseline {ref:.1f}</th><th>% clean at best</th></tr>']
    for view in views:
        best = view.report.best
        stats = best_row(view.report)
        mean = stats.colors_nearest_mean if stats is not None else None
        delta = (f"{mean - ref:+.1f}" if mean is not None else "—") if baseline_applies(view, baseline) else \
            '<span class="muted">n/a</span>'
        status = escape(view.status)
        if view.simulated:
            status += ' <span class="sim-tag">SIMULATED</span>'
        ident = f'<br><span class="muted">{escape(view.run_id)}</span>' if view.label != view.run_id else ""
        shown = method_row(stats, view.method)
        rows.append(
            f'<tr><td class="l"><a href="#run-{escape(view.key)}"><b>{escape(view.label)}</b></a>{ident}</td>'
            f'<td class="l">{escape(", ".join(diffs.get(view.run_id) or []) or "—")}</td>'
            f'<td class="l">{status}</td><td>{_num(view.run.epochs_done if view.run else None, "{}")}</td>'
            f'<td>{len(view.report.samples)}</td><td><b>{_num(best.epoch if best else None, "{}")}</b></td>'
            f'<td class="l">{escape(str((best.method if best else None) or view.method or "—"))}</td>'
            f'<td>{_num(best.score if best else None, "{:.3g}")}</td>'
            f'<td class="l terms">{(_terms(best.terms) if best else "") or "—"}</td>'
            f'<td>{_num(stats.near_copy_pct if stats else None, "{:.0f} %")}</td><td>{_num(mean)}</td>'
            f'<td>{delta}</td><td>{_num(shown.clean_pct if shown else None, "{:.0f} %")}</td></tr>'
        )
    rows.append("</table>")
    return "\n".join(rows)


def _score_cell(row: EpochRow) -> str:
    title = "; ".join(f"{k} {v}" for k, v in row.score.terms.items())
    return f'<td title="{escape(title)}">{_num(row.score.total, "{:.3g}")}</td>'


def epoch_table(view: RunView) -> str:
    """The per-epoch numbers of one run, the best epoch highlighted; near-copies when the report has them."""
    m = view.method or "—"
    best = best_epoch(view.report)
    head = ("<tr><th>epoch</th><th>score</th><th>samples</th>"
            '<th title="colors_nearest: colours after a plain NEAREST downscale to 24 px">raw colours</th>'
            "<th>% clean (raw)</th><th>top-10 colour share</th>"
            f"<th>{escape(m)} colours</th><th>{escape(m)} % clean</th><th>off-palette</th><th>grid error</th>"
            "<th>uniform bg</th><th>near-copies</th><th>diversity</th></tr>")
    rows = ["<table>", head]
    for stats in view.report.epochs:
        ms = method_row(stats, view.method)
        cls = ' class="best"' if best is not None and stats.epoch == best else ""
        rows.append(
            f'<tr{cls}><td>{_num(stats.epoch, "{}", "?")}{" ★" if cls else ""}</td>' + _score_cell(stats)
            + f'<td>{stats.samples}</td><td>{_num(stats.colors_nearest_mean)}</td>'
            f'<td>{_num(stats.clean_pct, "{:.0f} %")}</td><td>{_num(stats.top10_coverage_mean, "{:.0%}")}</td>'
            f'<td>{_num(ms.colors_mean if ms else None)}</td><td>{_num(ms.clean_pct if ms else None, "{:.0f} %")}</td>'
            f'<td>{_num(ms.off_palette_mean if ms else None, "{:.1%}")}</td>'
            f'<td>{_num(ms.grid_error_mean if ms else None)}</td>'
            f'<td>{_num(ms.background_uniform_pct if ms else None, "{:.0f} %")}</td>'
            f'<td>{_num(stats.near_copy_pct, "{:.0f} %")}</td><td>{_num(stats.diversity, "{:.3g}")}</td></tr>'
        )
    rows.append("</table>")
    return "\n".join(rows)


def methods_html(view: RunView) -> str:
    """Every method of the report side by side, at the best epoch and over all epochs ("" for one method)."""
    methods = view.report.methods
    if len(methods) < 2:
        return ""
    at_best = best_row(view.report)
    samples = view.report.samples
    rows = ['<table class="methods"><tr><th class="l">method</th><th>colours at best</th><th>% clean at best</th>'
            '<th>colours, all epochs</th><th>% clean, all epochs</th><th>grid error, all</th></tr>']
    for m in methods:
        cands = [s.candidates[m] for s in samples if m in s.candidates]
        stats = method_row(at_best, m)
        cls = ' class="best"' if m == view.method else ""
        rows.append(
            f'<tr{cls}><td class="l">{escape(m)}</td><td>{_num(stats.colors_mean if stats else None)}</td>'
            f'<td>{_num(stats.clean_pct if stats else None, "{:.0f} %")}</td>'
            f'<td>{_num(mean_of(c.colors for c in cands))}</td>'
            f'<td>{_num(pct_of(c.clean for c in cands), "{:.0f} %")}</td>'
            f'<td>{_num(mean_of(c.grid_error for c in cands))}</td></tr>'
        )
    rows.append("</table>")
    return "<h3>Methods compared (candidates)</h3>" + "\n".join(rows)


def best_html(view: RunView) -> str:
    """The chosen epoch and why: method, score, each term of the score, and the rule that picked it."""
    best = view.report.best
    if best is None:
        return '<p class="best-choice muted">No best epoch: no epoch-numbered samples were processed.</p>'
    why = ""
    if best.terms:
        why = '<ul class="terms">' + "".join(f"<li>{escape(k)}: <b>{_num(v, '{:.3g}')}</b></li>"
                                              for k, v in best.terms.items()) + "</ul>"
    return (f'<p class="best-choice">Best epoch: <b>{best.epoch}</b> '
            f'(method {escape(str(best.method))}, score {best.score:.3g}).</p>{why}'
            f'<p class="muted">Rule: {escape(best.rule or "not stated")}</p>')


def settings_html(view: RunView, page_dir: Path) -> str:
    """Run settings: what ran (or would run), with the resolved training config ("" for a plain folder)."""
    run = view.run
    if run is None:
        return ""
    items = _settings_items(view, run, page_dir)
    parts = ['<dl class="kv">'] + [f"<dt>{k}</dt><dd>{v}</dd>" for k, v in items] + ["</dl>"]
    if run.argv:
        note = " (never launched: simulated run)" if view.simulated else ""
        parts.append(f"<h3>Launch command{note}</h3><pre>{escape(shlex.join(map(str, run.argv)))}</pre>")
    if run.env_overrides:
        parts.append("<h3>Environment overrides</h3><pre>" + escape(
            "\n".join(f"{k}={v}" for k, v in run.env_overrides.items())) + "</pre>")
    if view.training_toml:
        parts.append(f"<details><summary>Resolved training config (config/training.toml)</summary>"
                     f"<pre>{escape(view.training_toml)}</pre></details>")
    return "\n".join(parts)


def _loop_items(run: RunManifest) -> list[tuple[str, str]]:
    """What the run's loop recorded: why it stopped early, what it cost, the designs held out for validation."""
    items = []
    if run.status == "stopped-early" and run.early_stop is not None:
        items.append(("stopped early", escape(f"after epoch {run.early_stop.after_epoch} ({run.early_stop.rule}): "
                                              f"{run.early_stop.reason}")))
    if run.cost_usd is not None:
        price = f" at {usd(run.gpu_price_per_hour)} per GPU-hour" if run.gpu_price_per_hour is not None else ""
        per_epoch = [r.cost_usd for r in run.epoch_log if r.cost_usd is not None]
        mean = f", {usd(sum(per_epoch) / len(per_epoch))} an epoch" if per_epoch else ""
        items.append(("cost", escape(f"{usd(run.cost_usd)}{price}{mean} (every attempt)")))
    held = run.dataset.get("validation")
    if isinstance(held, dict) and held.get("designs"):
        names = "; ".join(", ".join(design) for design in held["designs"])
        items.append(("held out for validation", escape(
            f"{held.get('images')} pictures in {len(held['designs'])} designs (share {held.get('share')}, seed "
            f"{held.get('seed')}): {names}")))
    return items


def _settings_items(view: RunView, run: RunManifest, page_dir: Path) -> list[tuple[str, str]]:
    """(name, HTML value) of the run's manifest facts, the simulator and links to its contact sheets."""
    attempt = run.attempt
    started = (attempt.started_at if attempt else None) or "—"
    finished = (attempt.finished_at if attempt else None) or "—"
    items = [
        ("run", f'<code>{escape(view.run_id)}</code>' + (f" ({escape(view.name)})" if view.name else "")),
        ("status", escape(run.status)),
        ("resolution", escape(str(run.resolution or "—"))),
        ("preset", escape(str(run.preset or "—"))),
        ("overrides", escape(" ".join(run.overrides) or "—")),
        ("layout", escape(run.layout or "—")),
        ("dataset", escape(", ".join(f"{k}: {v}" for k, v in run.dataset.items()
                                     if k in ("name", "images", "sha256", "palette_size", "trigger")) or "—")),
        ("sd-scripts commit", escape(str(run.sd_scripts_commit or "—"))),
        ("config sha256", f'<code>{escape(str(run.config_sha256 or "—"))}</code>'),
        ("epochs done", escape(str(run.epochs_done))),
        ("started / finished", escape(f"{started} / {finished}")),
    ]
    items += _loop_items(run)
    if view.simulated:
        sim = run.simulator or {}
        items.append(("simulator", '<span class="sim-tag">SIMULATED</span> ' + escape(
            f'{sim.get("note", "samples made by the simulator")}; seed {sim.get("seed")}, version {sim.get("version")}')))
    if view.sheets:
        links = " · ".join(f'<a href="{rel_url(p, page_dir)}">{escape(p.name)}</a>' for p in view.sheets)
        items.append(("contact sheets", links))
    return items
