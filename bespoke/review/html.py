"""The review page: one self-contained HTML file for one run or several side by side.

Images are referenced relatively (the page works from file://, no network) and the 24 px candidates
are inlined as data URIs. Charts are inline SVG drawn here in Python; a few lines of vanilla JavaScript
give a click-to-enlarge lightbox and record, on load, how many images rendered (the browser test
reads `data-images-loaded`, `data-images-failed` and `data-chart` on <body>).
"""

from __future__ import annotations

import base64
import json
import os
import shlex
from dataclasses import dataclass, field
from html import escape
from pathlib import Path
from urllib.parse import quote

from bespoke.fsutil import atomic_write_text
from bespoke.review.sheets import arrange, prompt_label
from bespoke.review.charts import PALETTE, RefLine, Series, legend, line_chart

BASELINE_FALLBACK = {
    "epoch": 8,
    "resolution": 512,
    "mean_colors_nearest": 216.6,
    "per_epoch": {1: 323.9, 2: 335.7, 3: 272.6, 4: 314.4, 5: 238.9, 6: 313.6, 7: 296.0, 8: 216.6, 9: 277.9, 10: 315.9},
    "source": "../shared/baseline/baseline.json (recorded CAPTION_FIX evaluation; constant built into bespoke)",
}


@dataclass
class RunView:
    """Everything the page shows about one run."""

    run_dir: Path
    run_id: str
    manifest: dict
    report: dict
    method: str | None
    training_toml: str | None = None
    loss: list[dict] = field(default_factory=list)
    sheets: list[Path] = field(default_factory=list)

    @property
    def simulated(self) -> bool:
        return bool(self.manifest.get("simulated") or self.report.get("simulated"))

    @property
    def label(self) -> str:
        resolution = self.manifest.get("resolution")
        name = f"{resolution} px" if resolution else self.run_id
        return name + (" (simulated)" if self.simulated else "")


def load_baseline() -> dict:
    """The recorded 512 px baseline: bespoke/data/baseline_recorded.json if present, else the constant."""
    path = Path(__file__).resolve().parent.parent / "data" / "baseline_recorded.json"
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        head = data["headline"]
        per_epoch = {int(e["epoch"]): float(e["mean"]) for e in data.get("epochs", []) if e.get("mean") is not None}
        return {
            "epoch": int(head["epoch"]),
            "resolution": int(data.get("protocol", {}).get("width", 512)),
            "mean_colors_nearest": float(head["mean_colors_nearest"]),
            "per_epoch": per_epoch,
            "source": f"bespoke/data/baseline_recorded.json ({data.get('provenance', {}).get('copied_from', 'recorded')})",
        }
    except (OSError, ValueError, KeyError, TypeError):
        return dict(BASELINE_FALLBACK)


def rel_url(path: Path, base_dir: Path) -> str:
    """A relative URL from the page's folder to `path` (works from file://)."""
    rel = os.path.relpath(Path(path).resolve(), Path(base_dir).resolve())
    return quote(rel.replace(os.sep, "/"))


def _data_uri(path: Path) -> str | None:
    try:
        return "data:image/png;base64," + base64.b64encode(Path(path).read_bytes()).decode("ascii")
    except OSError:
        return None


def _num(value, fmt: str = "{:.1f}", none: str = "—") -> str:
    if value is None:
        return none
    try:
        return fmt.format(value)
    except (TypeError, ValueError):
        return escape(str(value))


CSS = """
:root{--ink:#1e2024;--muted:#6b7078;--line:#dfe1e5;--bg:#fafaf8;--card:#fff;--best:#fff0a8;--bar:#e28c00;--sim:#c81e28}
*{box-sizing:border-box}
body{margin:0;font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;color:var(--ink);background:var(--bg)}
main{max-width:1500px;margin:0 auto;padding:18px 22px 60px}
h1{font-size:22px;margin:4px 0 2px}h2{font-size:18px;margin:28px 0 8px;border-bottom:1px solid var(--line);padding-bottom:4px}
h3{font-size:15px;margin:18px 0 6px}.muted{color:var(--muted)}
.sim-banner{background:var(--sim);color:#fff;font-weight:700;padding:9px 22px;letter-spacing:.02em}
.sim-tag{background:var(--sim);color:#fff;border-radius:3px;padding:1px 6px;font-size:12px;font-weight:700}
.card{background:var(--card);border:1px solid var(--line);border-radius:6px;padding:12px 14px;margin:10px 0}
.charts{display:grid;grid-template-columns:repeat(auto-fit,minmax(460px,1fr));gap:12px}
svg.chart{width:100%;height:auto;background:#fff;border:1px solid var(--line);border-radius:6px}
svg.chart .title{font-weight:600;font-size:13px}svg.chart .tick,svg.chart .label,svg.chart .ref-label{font-size:11px;fill:#555}
svg.chart .grid{stroke:#eceef1}svg.chart .axis,svg.chart .axis-tick{stroke:#999}svg.chart .empty{fill:#999}
.legend{display:flex;flex-wrap:wrap;gap:6px 16px;font-size:12px;margin:4px 2px}.legend span{display:inline-flex;align-items:center;gap:5px}
table{border-collapse:collapse;font-size:13px}th,td{padding:3px 8px;border-bottom:1px solid var(--line);text-align:right}
th{background:#f1f2f4;font-weight:600}td.l,th.l{text-align:left}tr.best td{background:var(--best)}tr.best td:first-child{box-shadow:inset 4px 0 var(--bar)}
pre{background:#f4f5f7;border:1px solid var(--line);border-radius:4px;padding:8px;overflow:auto;font-size:12px;white-space:pre-wrap;word-break:break-all}
dl.kv{display:grid;grid-template-columns:max-content 1fr;gap:2px 14px;margin:0}dl.kv dt{color:var(--muted)}dl.kv dd{margin:0}
.grid-wrap{overflow-x:auto}table.samples td{vertical-align:top;text-align:left;padding:4px}
table.samples th{font-weight:500;font-size:11.5px;max-width:150px;text-align:left;vertical-align:bottom}
.pair{display:flex;gap:3px}.pair img{width:72px;height:72px;display:block;border:1px solid #ccc;background:#eee}
img.cand{image-rendering:pixelated}.nums{font-size:11.5px;color:var(--muted)}.nums b{color:var(--ink)}.ok{color:#14823c;font-weight:600}
tr.best-row td{background:var(--best)}
.best-choice{font-size:15px}.best-choice b{font-size:17px}
#lightbox{position:fixed;inset:0;background:rgba(15,16,18,.86);display:none;align-items:center;justify-content:center;flex-direction:column;z-index:9}
#lightbox.open{display:flex}#lightbox img{max-width:92vw;max-height:84vh;image-rendering:pixelated;background:#fff}
#lightbox p{color:#eee;margin:8px;font-size:13px}
"""

JS = """
(function(){
  var box=document.getElementById('lightbox'),img=box.querySelector('img'),cap=box.querySelector('p');
  document.addEventListener('click',function(e){
    var a=e.target.closest('a.zoom'); if(!a) return; e.preventDefault();
    img.src=a.getAttribute('href'); cap.textContent=a.dataset.caption||''; box.classList.add('open');
  });
  box.addEventListener('click',function(){box.classList.remove('open');});
  document.addEventListener('keydown',function(e){if(e.key==='Escape')box.classList.remove('open');});
  window.addEventListener('load',function(){
    var ok=0,bad=0; Array.prototype.forEach.call(document.images,function(i){
      if(i.closest('#lightbox')) return; if(i.complete&&i.naturalWidth>0) ok++; else bad++;});
    var charts=document.querySelectorAll('svg.chart'),drawn=0;
    Array.prototype.forEach.call(charts,function(c){if(c.querySelector('polyline.series')) drawn++;});
    document.body.setAttribute('data-images-loaded',ok); document.body.setAttribute('data-images-failed',bad);
    document.body.setAttribute('data-charts',charts.length); document.body.setAttribute('data-charts-drawn',drawn);
    document.body.setAttribute('data-chart',charts.length&&drawn===charts.length?'ok':'missing');
  });
})();
"""


def _epoch_points(view: RunView, getter) -> list[tuple[float, float]]:
    points = []
    for stats in view.report.get("epochs") or []:
        if stats.get("epoch") is None:
            continue
        value = getter(stats)
        if value is not None:
            points.append((float(stats["epoch"]), float(value)))
    return points


def _method_stat(stats: dict, method: str | None, key: str):
    return ((stats.get("methods") or {}).get(method) or {}).get(key) if method else None


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


def charts_html(views: list[RunView], baseline: dict) -> str:
    """The colour, clean and loss charts on shared axes, with the recorded baseline as a reference."""
    colors = {v.run_id: PALETTE[i % len(PALETTE)] for i, v in enumerate(views)}
    epochs = [e.get("epoch") for v in views for e in v.report.get("epochs") or [] if e.get("epoch") is not None]
    x_domain = (min(epochs + [1]), max(epochs + [1]))
    colour_series, clean_series, items = [], [], []
    for view in views:
        best = (view.report.get("best") or {}).get("epoch")
        marks = [float(best)] if best is not None else []
        color = colors[view.run_id]
        colour_series.append(Series(view.label, _epoch_points(view, lambda s: s.get("colors_nearest_mean")), color,
                                    marks=marks))
        if view.method:
            m = view.method
            clean_series.append(Series(f"{view.label} {m}", _epoch_points(
                view, lambda s, m=m: _method_stat(s, m, "clean_pct")), color, marks=marks))
        clean_series.append(Series(f"{view.label} samples", _epoch_points(view, lambda s: s.get("clean_pct")),
                                   color, dash="2 3", width=1.4, dots=False))
        items.append((view.label, color, None))
    per_epoch = baseline.get("per_epoch") or {}
    base_series = Series(f"recorded {baseline.get('resolution', 512)} px run", sorted(
        (float(e), float(v)) for e, v in per_epoch.items() if x_domain[0] <= e <= x_domain[1]
    ), "#9aa0a8", dash="1 3", width=1.5, dots=False)
    ref = RefLine(float(baseline["mean_colors_nearest"]),
                  f"recorded baseline {baseline.get('resolution', 512)} px e{baseline.get('epoch')}: "
                  f"{baseline['mean_colors_nearest']:.1f}")
    all_y = [y for s in colour_series + [base_series] for _, y in s.points] + [ref.y]
    chart1 = line_chart(colour_series + [base_series], title="Mean colours per epoch (colors_nearest; lower is cleaner)",
                        x_label="epoch", y_label="mean colours", x_domain=x_domain,
                        y_domain=(0.0, max(all_y) * 1.08), refs=[ref], chart_id="colours")
    method_names = sorted({v.method for v in views if v.method})
    chart2 = line_chart(clean_series, title=f"% clean per epoch ({', '.join(method_names) or 'no'} candidates solid, "
                        "samples dotted)", x_label="epoch", y_label="% clean", x_domain=x_domain,
                        y_domain=(0.0, 100.0), chart_id="clean")
    items_all = items + [("recorded baseline (dashed: e8 mean, dotted: per epoch)", "#444", "6 4")]
    parts = ['<div class="charts">', f"<div>{chart1}</div>", f"<div>{chart2}</div>"]
    loss_series = [Series(v.label, _loss_points(v.loss), colors[v.run_id], dots=False, width=1.6)
                   for v in views if v.loss]
    if loss_series:
        simulated = any(v.simulated and v.manifest.get("loss_history_simulated") for v in views if v.loss)
        title = "Training loss" + (" (SIMULATED)" if simulated else "") + " by epoch"
        ys = [y for s in loss_series for _, y in s.points]
        parts.append("<div>" + line_chart(loss_series, title=title, x_label="epoch", y_label="loss",
                                          x_domain=(0.0, x_domain[1]), y_domain=(0.0, max(ys) * 1.1),
                                          chart_id="loss") + "</div>")
    parts.append("</div>")
    parts.append(legend(items_all))
    parts.append(f'<p class="muted">Recorded baseline: {escape(str(baseline.get("source")))}.</p>')
    return "\n".join(parts)


def summary_table(views: list[RunView], baseline: dict) -> str:
    """One row per run: best epoch, its numbers, and the difference to the recorded baseline."""
    ref = float(baseline["mean_colors_nearest"])
    rows = ['<table><tr><th class="l">run</th><th>resolution</th><th class="l">status</th><th>epochs</th>'
            '<th>samples</th><th>best epoch</th><th>method</th><th>mean colours at best</th>'
            f'<th>vs baseline {ref:.1f}</th><th>% clean (method) at best</th></tr>']
    for view in views:
        best = view.report.get("best") or {}
        stats = next((e for e in view.report.get("epochs") or [] if best and e.get("epoch") == best.get("epoch")), {})
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
            f'<td>{_num(_method_stat(stats, view.method, "clean_pct"), "{:.0f} %")}</td></tr>'
        )
    rows.append("</table>")
    return "\n".join(rows)


def epoch_table(view: RunView) -> str:
    """The per-epoch numbers of one run, the best epoch highlighted."""
    m = view.method or "—"
    best = (view.report.get("best") or {}).get("epoch")
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
    """Every method of the report side by side, at the best epoch and over all epochs."""
    methods = list(view.report.get("methods") or [])
    if len(methods) < 2:
        return ""
    best = (view.report.get("best") or {}).get("epoch")
    best_row = next((e for e in view.report.get("epochs") or [] if best is not None and e.get("epoch") == best), {})
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
    dataset = m.get("dataset") or {}
    argv = m.get("argv")
    env = m.get("env_overrides") or {}
    items = [
        ("run folder", f'<code>{escape(str(view.run_dir))}</code>'),
        ("status", escape(str(m.get("status", "—")))),
        ("resolution", escape(str(m.get("resolution", "—")))),
        ("preset", escape(str(m.get("preset") or "—"))),
        ("layout", escape(json.dumps(m.get("layout")) if isinstance(m.get("layout"), dict) else str(m.get("layout") or "—"))),
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


def samples_html(view: RunView, page_dir: Path, inline_candidates: bool = True) -> str:
    """The grid: epochs as rows, prompts as columns; each cell the sample and its candidate."""
    rows, columns, grid = arrange(view.report.get("samples") or [])
    if not rows:
        return '<p class="muted">No samples.</p>'
    best = (view.report.get("best") or {}).get("epoch")
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
    sample_path = view.run_dir / sample["file"]
    src = rel_url(sample_path, page_dir)
    caption = f'{sample.get("file")} · {sample.get("colors_nearest")} colours'
    parts = ['<div class="pair">', f'<a class="zoom" href="{src}" data-caption="{escape(caption)}">'
             f'<img src="{src}" alt="sample {escape(sample.get("file", ""))}"></a>']
    candidate = (sample.get("candidates") or {}).get(view.method) if view.method else None
    if candidate:
        cand_path = view.run_dir / candidate["file"]
        href = rel_url(cand_path, page_dir)
        data = _data_uri(cand_path) if inline else None
        cap = f'{view.method} candidate · {candidate.get("colors")} colours'
        parts.append(f'<a class="zoom" href="{href}" data-caption="{escape(cap)}"><img class="cand" '
                     f'src="{data or href}" alt="{escape(view.method)} candidate"></a>')
    parts.append("</div>")
    nums = f'<div class="nums"><b>{_num(sample.get("colors_nearest"), "{}")}</b> col'
    if candidate:
        clean = ' <span class="ok">clean</span>' if candidate.get("clean") else ""
        nums += f' · {escape(view.method)} <b>{_num(candidate.get("colors"), "{}")}</b>{clean}'
    parts.append(nums + "</div>")
    return "".join(parts)


def build_html(views: list[RunView], out_path: Path, *, baseline: dict | None = None, title: str | None = None,
               inline_candidates: bool = True, generated: str | None = None) -> Path:
    """Write the review page for `views` to `out_path` (atomically) and return it."""
    out_path = Path(out_path)
    page_dir = out_path.parent
    baseline = baseline or load_baseline()
    simulated = any(v.simulated for v in views)
    title = title or ("Review: " + ", ".join(v.run_id for v in views))
    body = []
    if simulated:
        sims = ", ".join(v.run_id for v in views if v.simulated)
        body.append(f'<div class="sim-banner">SIMULATED — not real training. The samples of {escape(sims)} '
                    "were made by bespoke's simulator from generated punks; no model was trained. "
                    "The configs and launch commands are real.</div>")
    body.append("<main>")
    body.append(f"<h1>{escape(title)}</h1>")
    if generated:
        body.append(f'<p class="muted">Generated {escape(generated)} by bespoke review.</p>')
    body.append('<h2>Summary</h2><div class="card">' + summary_table(views, baseline) + "</div>")
    body.append("<h2>Per epoch</h2>" + charts_html(views, baseline))
    for view in views:
        tag = ' <span class="sim-tag">SIMULATED</span>' if view.simulated else ""
        body.append(f'<h2 id="run-{escape(view.run_id)}">{escape(view.run_id)} — {escape(view.label)}{tag}</h2>')
        body.append('<div class="card">' + best_html(view) + epoch_table(view) + methods_html(view) + "</div>")
        body.append('<details class="card"><summary>Run settings</summary>' + settings_html(view, page_dir)
                    + "</details>")
        errors = view.report.get("errors") or []
        if errors:
            body.append('<div class="card"><h3>Samples that could not be processed</h3><ul>' + "".join(
                f"<li><code>{escape(str(e.get('file')))}</code>: {escape(str(e.get('error')))}</li>" for e in errors)
                + "</ul></div>")
        body.append(f"<h3>Samples and {escape(view.method or 'no')} candidates (click to enlarge)</h3>")
        body.append(samples_html(view, page_dir, inline_candidates))
    body.append("</main>")
    body.append('<div id="lightbox" role="dialog" aria-label="enlarged image"><img alt=""><p></p></div>')
    page = (
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
        "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
        f"<title>{escape(title)}</title><style>{CSS}</style></head>\n"
        f"<body data-simulated=\"{str(simulated).lower()}\">\n" + "\n".join(body)
        + f"\n<script>{JS}</script>\n</body></html>\n"
    )
    atomic_write_text(out_path, page)
    return out_path
