"""The review page's tables and per-run sections: the summary, per-epoch and methods tables, the best-epoch
line, the run settings, and the samples grid (each sample beside its 24 px candidate)."""

from __future__ import annotations

import base64
import json
import os
import shlex
from html import escape
from pathlib import Path
from urllib.parse import quote

from bespoke.review.html_data import Baseline, RunView, method_stat
from bespoke.review.sheets import arrange, best_epoch, prompt_label


def rel_url(path: Path, base_dir: Path) -> str:
    """A relative URL from the page's folder to `path` (works from file://)."""
    rel = os.path.relpath(Path(path).resolve(), Path(base_dir).resolve())
    return quote(rel.replace(os.sep, "/"))


def _data_uri(path: Path) -> str | None:
    try:
        return "data:image/png;base64," + base64.b64encode(Path(path).read_bytes()).decode("ascii")
    except OSError:
        return None


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


def summary_table(views: list[RunView], baseline: Baseline) -> str:
    """One row per run: best epoch, its numbers, and the difference to the recorded baseline."""
    ref = float(baseline["mean_colors_nearest"])
    rows = ['<table><tr><th class="l">run</th><th>resolution</th><th class="l">status</th><th>epochs</th>'
            '<th>samples</th><th>best epoch</th><th>method</th><th>mean colours at best</th>'
            f'<th>vs baseline {ref:.1f}</th><th>% clean (method) at best</th></tr>']
    for view in views:
        best = view.report.get("best") or {}
        stats: dict = next((e for e in view.report.get("epochs") or [] if best and e.get("epoch") == best.get("epoch")), {})
        mean = stats.get("colors_nearest_mean")
        delta = f"{mean - ref:+.1f}" if mean is not None else "—"
        status = escape(str(view.manifest.get("status", "—")))
        if view.simulated:
            status += ' <span class="sim-tag">SIMULATED</span>'
        rows.append(
            f'<tr><td class="l"><a href="#run-{escape(view.run_id)}">{escape(view.run_id)}</a></td>'
            f'<td>{_num(view.manifest.get("resolution"), "{}")}</td><td class="l">{status}</td>'
            f'<td>{_num(view.manifest.get("epochs_done"), "{}")}</td><td>{len(view.report.get("samples") or [])}</td>'
            f'<td>{_num(best.get("epoch"), "{}")}</td><td>{escape(str(best.get("method") or view.method or "—"))}</td>'
            f'<td>{_num(mean)}</td><td>{delta}</td>'
            f'<td>{_num(method_stat(stats, view.method, "clean_pct"), "{:.0f} %")}</td></tr>'
        )
    rows.append("</table>")
    return "\n".join(rows)


def epoch_table(view: RunView) -> str:
    """The per-epoch numbers of one run, the best epoch highlighted."""
    m = view.method or "—"
    best = best_epoch(view.report)
    head = ("<tr><th>epoch</th><th>samples</th><th>mean colours</th><th>% clean</th><th>top-10 cover</th>"
            f"<th>{escape(m)} colours</th><th>{escape(m)} % clean</th><th>off-palette</th><th>grid error</th>"
            "<th>uniform bg</th></tr>")
    rows = ["<table>", head]
    for stats in view.report.get("epochs") or []:
        ms = ((stats.get("methods") or {}).get(view.method) or {}) if view.method else {}
        cls = ' class="best"' if best is not None and stats.get("epoch") == best else ""
        rows.append(
            f'<tr{cls}><td>{_num(stats.get("epoch"), "{}", "?")}{" ★" if cls else ""}</td>'
            f'<td>{_num(stats.get("samples"), "{}")}</td><td>{_num(stats.get("colors_nearest_mean"))}</td>'
            f'<td>{_num(stats.get("clean_pct"), "{:.0f} %")}</td>'
            f'<td>{_num(stats.get("top10_coverage_mean"), "{:.3f}")}</td>'
            f'<td>{_num(ms.get("colors_mean"))}</td><td>{_num(ms.get("clean_pct"), "{:.0f} %")}</td>'
            f'<td>{_num(ms.get("off_palette_mean"), "{:.1%}")}</td><td>{_num(ms.get("grid_error_mean"))}</td>'
            f'<td>{_num(ms.get("background_uniform_pct"), "{:.0f} %")}</td></tr>'
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
    """The best-epoch line: epoch, method, score and the rule that picked it."""
    best = view.report.get("best")
    if not best:
        return '<p class="best-choice muted">No best epoch: no epoch-numbered samples were processed.</p>'
    score = best.get("score")
    score_text = f", score {score:.3g}" if isinstance(score, (int, float)) else ""
    return (f'<p class="best-choice">Best epoch: <b>{escape(str(best.get("epoch")))}</b> '
            f'(method {escape(str(best.get("method")))}{score_text}). '
            f'<span class="muted">Rule: {escape(str(best.get("rule") or "not stated"))}</span></p>')


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
        ("run folder", f'<code>{escape(str(view.run_dir))}</code>'),
        ("status", escape(str(m.get("status", "—")))),
        ("resolution", escape(str(m.get("resolution", "—")))),
        ("preset", escape(str(m.get("preset") or "—"))),
        ("layout", escape(json.dumps(layout) if isinstance(layout, dict) else str(layout or "—"))),
        ("dataset", escape(", ".join(f"{k}: {v}" for k, v in dataset.items() if not isinstance(v, (dict, list)))
                           or "—")),
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


def samples_html(view: RunView, page_dir: Path, inline_candidates: bool = True) -> str:
    """The grid: epochs as rows, prompts as columns; each cell the sample and its candidate."""
    rows, columns, grid = arrange(view.report.get("samples") or [])
    if not rows:
        return '<p class="muted">No samples.</p>'
    best = best_epoch(view.report)
    out = ['<div class="grid-wrap"><table class="samples"><tr><th>epoch</th>']
    for col in columns:
        sample = next((grid[(r.key, col)] for r in rows if (r.key, col) in grid), None)
        label = prompt_label(sample, col)
        out.append(f'<th title="{escape((sample or {}).get("prompt") or "")}">{escape(label[:64])}</th>')
    out.append("</tr>")
    for row in rows:
        cls = ' class="best-row"' if best is not None and row.epoch == best else ""
        out.append(f'<tr{cls}><td><b>{escape(row.label)}</b>{"<br>★ best" if cls else ""}</td>')
        for col in columns:
            sample = grid.get((row.key, col))
            out.append("<td>" + (_cell(view, sample, page_dir, inline_candidates) if sample else "") + "</td>")
        out.append("</tr>")
    out.append("</table></div>")
    return "\n".join(out)


def _cell(view: RunView, sample: dict, page_dir: Path, inline: bool) -> str:
    """One grid cell: the sample and its candidate (inlined as a data URI when `inline`), each a zoom link,
    and their colour counts."""
    src = rel_url(view.run_dir / sample["file"], page_dir)
    caption = f'{sample.get("file")} · {sample.get("colors_nearest")} colours'
    parts = ['<div class="pair">', f'<a class="zoom" href="{src}" data-caption="{escape(caption)}">'
             f'<img src="{src}" alt="sample {escape(sample.get("file", ""))}"></a>']
    method = view.method
    candidate = (sample.get("candidates") or {}).get(method) if method else None
    if method and candidate:
        cand_path = view.run_dir / candidate["file"]
        href = rel_url(cand_path, page_dir)
        data = _data_uri(cand_path) if inline else None
        cap = f'{method} candidate · {candidate.get("colors")} colours'
        parts.append(f'<a class="zoom" href="{href}" data-caption="{escape(cap)}"><img class="cand" '
                     f'src="{data or href}" alt="{escape(method)} candidate"></a>')
    parts.append("</div>")
    nums = f'<div class="nums"><b>{_num(sample.get("colors_nearest"), "{}")}</b> col'
    if method and candidate:
        clean = ' <span class="ok">clean</span>' if candidate.get("clean") else ""
        nums += f' · {escape(method)} <b>{_num(candidate.get("colors"), "{}")}</b>{clean}'
    parts.append(nums + "</div>")
    return "".join(parts)
