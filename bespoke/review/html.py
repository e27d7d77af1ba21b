"""The review page: one self-contained HTML file for one run or several side by side.

Images are referenced relatively (the page works from file://, no network) and the 24 px candidates
are inlined as data URIs. Charts are inline SVG drawn in Python (html_charts); a few lines of vanilla
JavaScript give a click-to-enlarge lightbox and record, on load, how many images rendered (the browser test
reads `data-images-loaded`, `data-images-failed` and `data-chart` on <body>).

This module assembles the page; the sections and tables are in html_sections, the charts in html_charts,
and RunView and the recorded baseline in html_data.
"""

from __future__ import annotations

from html import escape
from pathlib import Path

from bespoke.fsutil import atomic_write_text
from bespoke.review.html_charts import charts_html
from bespoke.review.html_data import Baseline, RunView, load_baseline
from bespoke.review.html_sections import (
    best_html,
    epoch_table,
    methods_html,
    samples_html,
    settings_html,
    summary_table,
)

__all__ = ["CSS", "JS", "Baseline", "RunView", "build_html", "load_baseline"]

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


def build_html(views: list[RunView], out_path: Path, *, baseline: Baseline | None = None, title: str | None = None,
               inline_candidates: bool = True, generated: str | None = None) -> Path:
    """Write the review page for `views` to `out_path` (atomically) and return it.

    `baseline` defaults to the recorded one (load_baseline); `inline_candidates` embeds the 24 px candidates
    as data URIs; `generated` is the creation time shown under the title.
    """
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
        body += _run_section(view, page_dir, inline_candidates)
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


def _run_section(view: RunView, page_dir: Path, inline_candidates: bool) -> list[str]:
    """One run's part of the page: heading, best epoch and tables, settings, errors, and the samples grid."""
    tag = ' <span class="sim-tag">SIMULATED</span>' if view.simulated else ""
    out = [f'<h2 id="run-{escape(view.run_id)}">{escape(view.run_id)} — {escape(view.label)}{tag}</h2>',
           '<div class="card">' + best_html(view) + epoch_table(view) + methods_html(view) + "</div>",
           '<details class="card"><summary>Run settings</summary>' + settings_html(view, page_dir) + "</details>"]
    errors = view.report.get("errors") or []
    if errors:
        out.append('<div class="card"><h3>Samples that could not be processed</h3><ul>' + "".join(
            f"<li><code>{escape(str(e.get('file')))}</code>: {escape(str(e.get('error')))}</li>" for e in errors)
            + "</ul></div>")
    out.append(f"<h3>Samples and {escape(view.method or 'no')} candidates (click to enlarge)</h3>")
    out.append(samples_html(view, page_dir, inline_candidates))
    return out
