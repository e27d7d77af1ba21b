"""The review page's tables and per-run sections: the summary (the best run marked; one card per run on a
narrow screen), the per-epoch table in words with the figures in tooltips, the folded terms, adherence and
methods tables, the best-epoch line (or a folder's one set), and the run settings."""

from __future__ import annotations

import os
import shlex
from html import escape
from pathlib import Path
from urllib.parse import quote

from bespoke.review.epochs import mean_of, pct_of
from bespoke.review.html_data import (
    Baseline,
    RunView,
    baseline_applies,
    best_of_runs,
    best_row,
    blockiness,
    differences,
    headline,
    method_row,
)
from bespoke.review.records import EpochRow, MethodRow
from bespoke.review.selection import describe_best
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


def _summary_heads(baseline: Baseline) -> list[tuple[str, str, str]]:
    """(label, CSS class, title) of each summary column: what a reader needs first comes first."""
    res, ref = baseline["resolution"], float(baseline["mean_colors_nearest"])
    return [("run", "l", ""), ("best epoch", "", ""), ("score", "", "higher is better"),
            ("why (score terms)", "l", ""),
            ("% with few colours at best", "", "clean: at most 50 colours, the 10 most used covering 70 % of it"),
            ("raw colours at best", "", "colors_nearest: colours after a plain NEAREST downscale to 24 px"),
            (f"vs recorded {res} px baseline {ref:.1f} (fewer is better)", "", f"only for {res} px runs"),
            ("near-copies at best", "", ""), ("differs by", "l", ""), ("status", "l", ""), ("epochs", "", ""),
            ("samples", "", ""), ("method", "l", "")]


def summary_table(views: list[RunView], baseline: Baseline) -> str:
    """Which epoch of which run: one row per run with its label, the chosen epoch and its score with each term,
    the raw downscale colours (vs the recorded baseline at 512 px) and what differs from the other runs; the
    best of several runs marked, the runs it cannot be told apart from said so. On a narrow screen each row
    reflows into a card of label: value lines (CSS; each cell carries its column's label)."""
    heads = _summary_heads(baseline)
    diffs = differences(views)
    top, close = best_of_runs(views)
    rows = ['<div class="scroll"><table class="summary"><tr>' + "".join(
        f'<th class="{cls}"' + (f' title="{escape(title)}"' if title else "") + f">{escape(label)}</th>"
        for label, cls, title in heads) + "</tr>"]
    for view in views:
        cells = _summary_cells(view, diffs.get(view.run_id) or [], baseline, (top, close.get(view.run_id)))
        cls = ' class="best"' if top == view.run_id else ""
        rows.append(f"<tr{cls}>" + "".join(f'<td class="{c}" data-label="{escape(label)}">{cell}</td>'
                                           for (label, c, _), cell in zip(heads, cells, strict=True)) + "</tr>")
    rows.append("</table></div>")
    return "\n".join(rows)


def _vs_baseline(mean: float | None, ref: float) -> str:
    """The raw colours' difference from the baseline, with which way it goes ("−9.2 (fewer: better)")."""
    if mean is None:
        return "—"
    delta = mean - ref
    way = "fewer: better" if delta < 0 else ("more: worse" if delta > 0 else "the same")
    return f"{delta:+.1f}".replace("-", "−") + f" ({way})"


def _summary_cells(view: RunView, diffs: list[str], baseline: Baseline,
                   best: tuple[str | None, str | None]) -> list[str]:
    """One run's cells of the summary table (HTML, in _summary_heads order); `best` is (the best run's id,
    this run's note against it)."""
    head = headline(view.report)
    stats = head.row if head is not None else None
    mean = stats.colors_nearest_mean if stats is not None else None
    delta = _vs_baseline(mean, float(baseline["mean_colors_nearest"])) if baseline_applies(view, baseline) else \
        '<span class="muted">n/a</span>'
    status = escape(view.status)
    if view.simulated:
        status += ' <span class="sim-tag">SIMULATED</span>'
    ident = f'<br><span class="muted">{escape(view.run_id)}</span>' if view.label != view.run_id else ""
    mark = ' <span class="best-run">★ best run</span>' if best[0] == view.run_id else ""
    note = f'<br><span class="muted">{escape(best[1])}</span>' if best[1] else ""
    shown = method_row(stats, view.method)
    method = view.report.best.method if view.report.best is not None else None
    return [f'<a href="#run-{escape(view.key)}"><b>{escape(view.label)}</b></a>{ident}{mark}{note}',
            f'<b>{escape(head.epoch) if head else "—"}</b>', _num(head.score if head else None, "{:.3g}"),
            (_terms(head.terms) if head else "") or "—", _num(shown.clean_pct if shown else None, "{:.0f} %"),
            _num(mean), delta, _num(stats.near_copy_pct if stats else None, "{:.0f} %"),
            escape(", ".join(diffs) or "—"), status, _num(view.run.epochs_done if view.run else None, "{}"),
            str(len(view.report.samples)), escape(str(method or view.method or "—"))]


def _score_cell(row: EpochRow) -> str:
    title = "; ".join(f"{k} {v}" for k, v in row.score.terms.items())
    interval = row.score.interval
    span = "—" if interval is None else f"{interval[0]:.3f}–{interval[1]:.3f}"
    return f'<td title="{escape(title)}">{_num(row.score.total, "{:.3g}")}</td><td>{span}</td>'


def _words_cell(words: str, title: str) -> str:
    return f'<td class="l" title="{escape(title)}">{escape(words)}</td>'


def _method_cells(ms: MethodRow | None) -> str:
    """The shown method's colours, % few colours, share in the training colours and blockiness, in words with
    the figure in the title."""
    if ms is None:
        return "<td>—</td>" * 4
    inside = "—" if ms.off_palette_mean is None else f"{1 - ms.off_palette_mean:.1%}".replace("%", " %")
    blocks = "—" if ms.grid_error_mean is None else blockiness(ms.grid_error_mean)
    return (f'<td>{_num(ms.colors_mean)}</td><td>{_num(ms.clean_pct, "{:.0f} %")}</td>'
            f'<td title="off_palette {_num(ms.off_palette_mean, "{:.3f}")}: the share of cells with no training '
            f'colour within delta E 5">{inside}</td>'
            + _words_cell(blocks, f"grid error {_num(ms.grid_error_mean, '{:.2f}')}: mean difference (0-255) "
                                  "between the sample and its 24 px candidate drawn back as blocks"))


def epoch_table(view: RunView) -> str:
    """The per-epoch numbers of one run, the best epoch highlighted, in words where a number is jargon (the
    figure in the cell's title); the terms and prompt adherence folded below it."""
    m = escape(view.method or "—")
    best = best_epoch(view.report)
    head = ("<tr><th>epoch</th><th>score</th><th title=\"95 % bootstrap interval over the epoch's samples\">"
            "interval</th><th>samples</th>"
            '<th title="colors_nearest: colours after a plain NEAREST downscale to 24 px">raw colours</th>'
            f"<th>{m} colours</th><th title=\"clean: at most 50 colours, the 10 most used covering 70 % of it\">"
            f"{m} % with few colours</th><th title=\"1 - off_palette\">cells in the training colours</th>"
            '<th class="l" title="grid error">drawn in blocks</th>'
            "<th>plain background</th><th>near-copies</th><th>diversity</th></tr>")
    rows = ['<div class="scroll"><table class="epochs">', head]
    for stats in view.report.epochs:
        ms = method_row(stats, view.method)
        cls = ' class="best"' if best is not None and stats.epoch == best else ""
        rows.append(
            f'<tr{cls}><td>{_num(stats.epoch, "{}", "all")}{" ★" if cls else ""}</td>' + _score_cell(stats)
            + f'<td>{stats.samples}</td><td>{_num(stats.colors_nearest_mean)}</td>' + _method_cells(ms)
            + f'<td>{_num(ms.background_uniform_pct if ms else None, "{:.0f} %")}</td>'
            f'<td>{_num(stats.near_copy_pct, "{:.0f} %")}</td><td>{_num(stats.diversity, "{:.3g}")}</td></tr>'
        )
    rows.append("</table></div>")
    return "\n".join(rows) + terms_table(view) + adherence_html(view)


def terms_table(view: RunView) -> str:
    """Every term of the score per epoch (the mean over its samples), the tied epochs marked ("" without)."""
    names = list(dict.fromkeys(k for row in view.report.epochs for k in row.score.terms))
    if not names:
        return ""
    best = view.report.best
    tied = set(best.tied) if best is not None else set()
    rows = ['<details class="fold"><summary>The score\'s terms per epoch</summary><div class="scroll">'
            '<table class="terms-table"><tr><th>epoch</th>'
            + "".join(f"<th>{escape(n)}</th>" for n in names) + "<th>picture quality</th><th>score</th></tr>"]
    for row in view.report.epochs:
        mark = " ★" if best is not None and row.epoch == best.epoch else (" ~" if row.epoch in tied else "")
        rows.append(f'<tr><td>{_num(row.epoch, "{}", "?")}{mark}</td>'
                    + "".join(f'<td>{_num(row.score.terms.get(n), "{:.3f}")}</td>' for n in names)
                    + f'<td>{_num(row.score.quality, "{:.3f}")}</td><td>{_num(row.score.total, "{:.3f}")}</td></tr>')
    rows.append('</table></div><p class="muted">★ the pick; ~ indistinguishable from the highest score at this '
                'sample count</p></details>')
    return "\n".join(rows)


def adherence_html(view: RunView) -> str:
    """Per prompt, each tag's adherence per epoch and how it is measured ("fails on blue hair, works on pink")."""
    epochs = [row for row in view.report.epochs if row.adherence]
    parts = []
    for entry in view.report.prompts:
        shown = [row for row in epochs if entry.prompt in row.adherence]
        if not shown or not entry.tags:
            continue
        rows = [f'<table class="adherence"><caption>{escape(entry.prompt)}</caption><tr><th class="l">tag</th>'
                + "".join(f"<th>e{_num(row.epoch, '{}', '?')}</th>" for row in shown) + '<th class="l">measured by</th></tr>']
        for i, tag in enumerate(entry.tags):
            values = "".join(f'<td>{_num(row.adherence[entry.prompt][i], "{:.2f}")}</td>' for row in shown)
            how = escape(tag.measure or f"not measured: {tag.why or 'no measure applies'}")
            rows.append(f'<tr><td class="l">{escape(tag.text)}</td>{values}<td class="l muted">{how}</td></tr>')
        parts.append("\n".join(rows) + "</table>")
    if not parts:
        return ""
    return (f'<details class="fold"><summary>Prompt adherence per tag (0–1), {len(parts)} prompts</summary>'
            '<div class="scroll">' + "\n".join(parts) + "</div></details>")


def methods_html(view: RunView) -> str:
    """Every method of the report side by side, at the best epoch and over all epochs ("" for one method)."""
    methods = view.report.methods
    if len(methods) < 2:
        return ""
    at_best = best_row(view.report)
    samples = view.report.samples
    rows = ['<div class="scroll"><table class="methods"><tr><th class="l">method</th><th>colours at best</th><th>% clean at best</th>'
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
    rows.append("</table></div>")
    return ('<details class="fold"><summary>Methods compared (candidates)</summary>' + "\n".join(rows)
            + "</details>")


def best_html(view: RunView) -> str:
    """The chosen epoch and why: method, score, each term of the score, and the rule that picked it."""
    best = view.report.best
    if best is None:
        return _one_set_html(view)
    why = ""
    if best.terms:
        why = '<ul class="terms">' + "".join(f"<li>{escape(k)}: <b>{_num(v, '{:.3g}')}</b></li>"
                                              for k, v in best.terms.items()) + "</ul>"
    margin = "".join(f"<li>{escape(line.strip())}</li>" for line in describe_best(best)[1:])
    return (f'<p class="best-choice">Best epoch: <b>{best.epoch}</b> '
            f'(method {escape(str(best.method))}, score {best.score:.3g}).</p>{why}'
            + (f'<ul class="margin">{margin}</ul>' if margin else "")
            + '<details class="fold muted"><summary>How the best epoch is chosen</summary>'
            f'<p>Rule: {escape(best.rule or "not stated")}</p></details>')


def _one_set_html(view: RunView) -> str:
    """A folder whose names carry no epoch: its samples are one set, with one score (no epoch to choose)."""
    head = headline(view.report)
    if head is None or head.score is None:
        return '<p class="best-choice muted">No best epoch: no epoch-numbered samples were processed.</p>'
    span = f" (95 % interval {head.interval[0]:.3f}–{head.interval[1]:.3f})" if head.interval else ""
    terms = "".join(f"<li>{escape(k)}: <b>{_num(v, '{:.3g}')}</b></li>" for k, v in head.terms.items())
    return (f'<p class="best-choice">One set: <b>score {head.score:.3g}</b>{span}. The file names carry no epoch, '
            "so there is no epoch to choose; <code>bespoke export</code> exports them all.</p>"
            + (f'<ul class="terms">{terms}</ul>' if terms else ""))


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
