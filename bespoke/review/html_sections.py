"""The review page's tables and per-run sections: the summary, per-epoch and methods tables, the best-epoch
line, the run settings, and the samples grid (each sample beside its 24 px candidate)."""

from __future__ import annotations

import json
import os
import shlex
from html import escape
from pathlib import Path
from urllib.parse import quote

from bespoke.review.html_data import Baseline, RunView, baseline_applies, differences, method_stat
from bespoke.review.sheets import best_epoch


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


def _best_stats(view: RunView) -> dict:
    """The report's stats of the best epoch ({} when there is none)."""
    best = best_epoch(view.report)
    return next((e for e in view.report.get("epochs") or [] if best is not None and e.get("epoch") == best), {})


def _terms(terms: object) -> str:
    """A score's terms as 'name value' pairs, in the report's order."""
    if not isinstance(terms, dict) or not terms:
        return ""
    return ", ".join(f"{escape(str(k))} {_num(v, '{:.3g}')}" for k, v in terms.items())


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
        best = view.report.get("best") or {}
        stats = _best_stats(view)
        mean = stats.get("colors_nearest_mean")
        delta = (f"{mean - ref:+.1f}" if mean is not None else "—") if baseline_applies(view, baseline) else \
            '<span class="muted">n/a</span>'
        status = escape(str(view.manifest.get("status", "—")))
        if view.simulated:
            status += ' <span class="sim-tag">SIMULATED</span>'
        ident = f'<br><span class="muted">{escape(view.run_id)}</span>' if view.label != view.run_id else ""
        score = best.get("score")
        rows.append(
            f'<tr><td class="l"><a href="#run-{escape(view.key)}"><b>{escape(view.label)}</b></a>{ident}</td>'
            f'<td class="l">{escape(", ".join(diffs.get(view.run_id) or []) or "—")}</td>'
            f'<td class="l">{status}</td><td>{_num(view.manifest.get("epochs_done"), "{}")}</td>'
            f'<td>{len(view.report.get("samples") or [])}</td><td><b>{_num(best.get("epoch"), "{}")}</b></td>'
            f'<td class="l">{escape(str(best.get("method") or view.method or "—"))}</td>'
            f'<td>{_num(score, "{:.3g}")}</td><td class="l terms">{_terms(best.get("terms")) or "—"}</td>'
            f'<td>{_num(stats.get("near_copy_pct"), "{:.0f} %")}</td><td>{_num(mean)}</td><td>{delta}</td>'
            f'<td>{_num(method_stat(stats, view.method, "clean_pct"), "{:.0f} %")}</td></tr>'
        )
    rows.append("</table>")
    return "\n".join(rows)


def _score_cell(stats: dict) -> str:
    score = stats.get("score")
    if isinstance(score, dict):
        title = "; ".join(f"{k} {v}" for k, v in (score.get("terms") or {}).items())
        return f'<td title="{escape(title)}">{_num(score.get("total"), "{:.3g}")}</td>'
    return f"<td>{_num(score, '{:.3g}')}</td>"


def epoch_table(view: RunView) -> str:
    """The per-epoch numbers of one run, the best epoch highlighted; score, near-copies and diversity when
    the report has them."""
    m = view.method or "—"
    best = best_epoch(view.report)
    epochs = view.report.get("epochs") or []
    scored = any(e.get("score") is not None for e in epochs)
    novelty = any(e.get("near_copy_pct") is not None or e.get("diversity") is not None for e in epochs)
    head = ("<tr><th>epoch</th>" + ("<th>score</th>" if scored else "") + "<th>samples</th>"
            '<th title="colors_nearest: colours after a plain NEAREST downscale to 24 px">raw colours</th>'
            "<th>% clean (raw)</th><th>top-10 colour share</th>"
            f"<th>{escape(m)} colours</th><th>{escape(m)} % clean</th><th>off-palette</th><th>grid error</th>"
            "<th>uniform bg</th>" + ("<th>near-copies</th><th>diversity</th>" if novelty else "") + "</tr>")
    rows = ["<table>", head]
    for stats in epochs:
        ms = ((stats.get("methods") or {}).get(view.method) or {}) if view.method else {}
        cls = ' class="best"' if best is not None and stats.get("epoch") == best else ""
        rows.append(
            f'<tr{cls}><td>{_num(stats.get("epoch"), "{}", "?")}{" ★" if cls else ""}</td>'
            + (_score_cell(stats) if scored else "")
            + f'<td>{_num(stats.get("samples"), "{}")}</td><td>{_num(stats.get("colors_nearest_mean"))}</td>'
            f'<td>{_num(stats.get("clean_pct"), "{:.0f} %")}</td>'
            f'<td>{_num(stats.get("top10_coverage_mean"), "{:.0%}")}</td>'
            f'<td>{_num(ms.get("colors_mean"))}</td><td>{_num(ms.get("clean_pct"), "{:.0f} %")}</td>'
            f'<td>{_num(ms.get("off_palette_mean"), "{:.1%}")}</td><td>{_num(ms.get("grid_error_mean"))}</td>'
            f'<td>{_num(ms.get("background_uniform_pct"), "{:.0f} %")}</td>'
            + (f'<td>{_num(stats.get("near_copy_pct"), "{:.0f} %")}</td><td>{_num(stats.get("diversity"), "{:.3g}")}'
               "</td>" if novelty else "") + "</tr>"
        )
    rows.append("</table>")
    return "\n".join(rows)


def methods_html(view: RunView) -> str:
    """Every method of the report side by side, at the best epoch and over all epochs ("" for one method)."""
    methods = list(view.report.get("methods") or [])
    if len(methods) < 2:
        return ""
    best_row = _best_stats(view)
    samples = view.report.get("samples") or []
    rows = ['<table class="methods"><tr><th class="l">method</th><th>colours at best</th><th>% clean at best</th>'
            '<th>colours, all epochs</th><th>% clean, all epochs</th><th>grid error, all</th></tr>']
    for m in methods:
        cands = [s["candidates"][m] for s in samples if m in (s.get("candidates") or {})]
        colours = [c["colors"] for c in cands if c.get("colors") is not None]
        errors = [c["grid_error"] for c in cands if c.get("grid_error") is not None]
        stats = (best_row.get("methods") or {}).get(m) or {}
        cls = ' class="best"' if m == view.method else ""
        rows.append(
            f'<tr{cls}><td class="l">{escape(m)}</td><td>{_num(stats.get("colors_mean"))}</td>'
            f'<td>{_num(stats.get("clean_pct"), "{:.0f} %")}</td>'
            f'<td>{_num(sum(colours) / len(colours) if colours else None)}</td>'
            f'<td>{_num(100.0 * sum(bool(c.get("clean")) for c in cands) / len(cands) if cands else None, "{:.0f} %")}</td>'
            f'<td>{_num(sum(errors) / len(errors) if errors else None)}</td></tr>'
        )
    rows.append("</table>")
    return "<h3>Methods compared (candidates)</h3>" + "\n".join(rows)


def best_html(view: RunView) -> str:
    """The chosen epoch and why: method, score, each term of the score, and the rule that picked it."""
    best = view.report.get("best")
    if not best:
        return '<p class="best-choice muted">No best epoch: no epoch-numbered samples were processed.</p>'
    score = best.get("score")
    score_text = f", score {score:.3g}" if isinstance(score, (int, float)) else ""
    terms = best.get("terms")
    why = ""
    if isinstance(terms, dict) and terms:
        why = '<ul class="terms">' + "".join(f"<li>{escape(str(k))}: <b>{_num(v, '{:.3g}')}</b></li>"
                                              for k, v in terms.items()) + "</ul>"
    return (f'<p class="best-choice">Best epoch: <b>{escape(str(best.get("epoch")))}</b> '
            f'(method {escape(str(best.get("method")))}{score_text}).</p>{why}'
            f'<p class="muted">Rule: {escape(str(best.get("rule") or "not stated"))}</p>')


def settings_html(view: RunView, page_dir: Path) -> str:
    """Run settings: what ran (or would run), with the resolved training config."""
    m = view.manifest
    argv = m.get("argv")
    env = m.get("env_overrides") or {}
    items = _settings_items(view, page_dir)
    parts = ['<dl class="kv">'] + [f"<dt>{k}</dt><dd>{v}</dd>" for k, v in items] + ["</dl>"]
    if argv:
        command = shlex.join(str(a) for a in argv) if isinstance(argv, list) else str(argv)
        note = " (never launched: simulated run)" if view.simulated else ""
        parts.append(f"<h3>Launch command{note}</h3><pre>{escape(command)}</pre>")
    if env:
        parts.append("<h3>Environment overrides</h3><pre>" + escape(
            "\n".join(f"{k}={v}" for k, v in env.items())) + "</pre>")
    if view.training_toml:
        parts.append(f"<details><summary>Resolved training config (config/training.toml)</summary>"
                     f"<pre>{escape(view.training_toml)}</pre></details>")
    return "\n".join(parts)


def _settings_items(view: RunView, page_dir: Path) -> list[tuple[str, str]]:
    """(name, HTML value) of the run's manifest facts, the simulator and links to its contact sheets."""
    m = view.manifest
    dataset = m.get("dataset") or {}
    layout = m.get("layout")
    items = [
        ("run", f'<code>{escape(view.run_id)}</code>' + (f" ({escape(view.name)})" if view.name else "")),
        ("status", escape(str(m.get("status", "—")))),
        ("resolution", escape(str(m.get("resolution", "—")))),
        ("preset", escape(str(m.get("preset") or "—"))),
        ("overrides", escape(" ".join(str(o) for o in m.get("overrides") or []) or "—")),
        ("layout", escape(json.dumps(layout) if isinstance(layout, dict) else str(layout or "—"))),
        ("dataset", escape(", ".join(f"{k}: {v}" for k, v in dataset.items()
                                     if k in ("name", "images", "sha256", "palette_size", "trigger")) or "—")),
        ("sd-scripts commit", escape(str(m.get("sd_scripts_commit") or "—"))),
        ("config sha256", f'<code>{escape(str(m.get("config_sha256") or "—"))}</code>'),
        ("epochs done", escape(str(m.get("epochs_done", "—")))),
        ("started / finished", escape(f'{m.get("started_at") or "—"} / {m.get("finished_at") or "—"}')),
    ]
    if view.simulated:
        sim = m.get("simulator") or {}
        items.append(("simulator", '<span class="sim-tag">SIMULATED</span> ' + escape(
            f'{sim.get("note", "samples made by the simulator")}; seed {sim.get("seed")}, version {sim.get("version")}')))
    if view.sheets:
        links = " · ".join(f'<a href="{rel_url(p, page_dir)}">{escape(p.name)}</a>' for p in view.sheets)
        items.append(("contact sheets", links))
    return items
