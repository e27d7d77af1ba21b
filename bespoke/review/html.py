"""The review page: one HTML file inside a folder that holds every image it shows, for one run or several.

The page links only to files inside its own folder (review/assets.py writes them: sample thumbnails,
candidates, nearest training images; the contact sheets are written there too), so the folder can be copied
anywhere alone; `single_file` inlines every image instead, for one file to mail. Charts are inline SVG drawn in
Python (html_charts); a few lines of vanilla JavaScript give the sheet lightbox and the compare view (sample,
candidate, nearest training image) and record, on load, how many images rendered (the browser test reads
`data-images-loaded`, `data-images-failed` and `data-chart` on <body>).

This module assembles the page; the tables are in html_sections, the samples grid in html_grid, the charts in
html_charts, RunView and the recorded baseline in html_data.
"""

from __future__ import annotations

import base64
import re
from html import escape
from pathlib import Path

from bespoke.fsutil import atomic_write_text
from bespoke.review.assets import build_assets
from bespoke.review.html_charts import charts_html
from bespoke.review.html_data import Baseline, RunView, best_of_runs, label_views, load_baseline
from bespoke.review.html_grid import samples_html
from bespoke.review.html_sections import best_html, epoch_table, methods_html, settings_html, summary_table

__all__ = ["CSS", "JS", "Baseline", "RunView", "build_html", "load_baseline"]

CAND_PX = 120  # candidates on the page: 24 px drawn 5x, pixelated (8 prompt columns fit a 1400 px window)

CSS = """
:root{--ink:#1e2024;--muted:#6b7078;--line:#dfe1e5;--bg:#fafaf8;--card:#fff;--best:#fff0a8;--bar:#e28c00;--sim:#c81e28}
*{box-sizing:border-box}
body{margin:0;font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;color:var(--ink);background:var(--bg)}
main{max-width:1500px;margin:0 auto;padding:18px 22px 60px}@media(max-width:600px){main{padding:12px 10px 40px}.sim-banner{padding:8px 10px}}
h1,h2,h3,p,li,dd{overflow-wrap:anywhere}
h1{font-size:22px;margin:4px 0 2px}h2{font-size:18px;margin:28px 0 8px;border-bottom:1px solid var(--line);padding-bottom:4px}
h3{font-size:15px;margin:18px 0 6px}.muted{color:var(--muted)}
.sim-banner{background:var(--sim);color:#fff;font-weight:700;padding:9px 22px;letter-spacing:.02em}
.sim-tag{background:var(--sim);color:#fff;border-radius:3px;padding:1px 6px;font-size:12px;font-weight:700}
.card{background:var(--card);border:1px solid var(--line);border-radius:6px;padding:12px 14px;margin:10px 0}
.charts{display:grid;grid-template-columns:repeat(auto-fit,minmax(min(460px,100%),1fr));gap:12px}
.scroll{overflow-x:auto;max-width:100%}details.fold{margin:10px 0}details.fold>summary,details.run-samples>summary{cursor:pointer;font-weight:600;margin:6px 0}
.best-run{display:inline-block;background:var(--bar);color:#fff;border-radius:3px;padding:0 6px;font-size:12px;font-weight:700;white-space:nowrap}
figure.chart-box{margin:0;background:#fff;border:1px solid var(--line);border-radius:6px;padding:6px 8px}
figure.chart-box svg.chart{border:0}.chart-note{font-size:12px;margin:2px 2px 0}
svg.chart{width:100%;height:auto;background:#fff;border:1px solid var(--line);border-radius:6px}
svg.chart .title{font-weight:600;font-size:16px}svg.chart .tick,svg.chart .label,svg.chart .ref-label{font-size:14px;fill:#444}
svg.chart .grid{stroke:#eceef1}svg.chart .axis,svg.chart .axis-tick{stroke:#999}svg.chart .empty{fill:#999}
.legend{display:flex;flex-wrap:wrap;gap:6px 16px;font-size:12px;margin:4px 2px}.legend span{display:inline-flex;align-items:center;gap:5px}
table{border-collapse:collapse;font-size:13px}th,td{padding:3px 8px;border-bottom:1px solid var(--line);text-align:right}
th{background:#f1f2f4;font-weight:600}td.l,th.l{text-align:left}tr.best td{background:var(--best)}tr.best td:first-child{box-shadow:inset 4px 0 var(--bar)}
pre{background:#f4f5f7;border:1px solid var(--line);border-radius:4px;padding:8px;overflow:auto;font-size:12px;white-space:pre-wrap;word-break:break-all}
dl.kv{display:grid;grid-template-columns:max-content 1fr;gap:2px 14px;margin:0}dl.kv dt{color:var(--muted)}dl.kv dd{margin:0}
.grid-wrap{overflow-x:auto}table.samples td{vertical-align:top;text-align:left;padding:4px}
table.samples th{font-weight:500;font-size:11px;line-height:1.3;min-width:136px;max-width:136px;text-align:left;vertical-align:bottom;white-space:normal;overflow-wrap:anywhere;word-break:normal}
table.samples th:first-child{min-width:0;width:56px}table.samples td.ep{vertical-align:middle;text-align:center;width:56px}
table.epochs td{white-space:nowrap}table.summary td:first-child{min-width:150px}table.summary td:nth-child(4){min-width:200px;font-size:12px}
table.samples th:first-child{overflow-wrap:normal}
.cell{width:128px;border:2px solid transparent;border-radius:4px;padding:2px}.with-samples .cell{width:252px}.with-samples table.samples th{min-width:260px;max-width:260px}
button.cmp img.thumb{display:none}.with-samples button.cmp img.thumb{display:block}label.toggle{font-size:13px;display:block;margin:4px 0 8px}.cell:hover{border-color:#9ab}
.cell.near-copy{border-color:#e08a00}.cell.degenerate{border-color:#c81e28;border-style:dashed}
button.cmp{display:flex;gap:4px;padding:0;border:0;background:none;cursor:zoom-in}
button.cmp img{width:120px;height:120px;display:block;border:1px solid #ccc;background:#eee}
img.cand,img.px{image-rendering:pixelated;image-rendering:crisp-edges}
.missing{display:flex;width:120px;height:120px;align-items:center;justify-content:center;background:#eee;color:#777;font-size:12px}
.badge{display:inline-block;border-radius:3px;padding:0 5px;font-size:11px;font-weight:600;color:#fff}
.badge.bad{background:#c81e28}.badge.copy{background:#e08a00}.badge.warn{background:#7a5a00}
ul.terms{margin:2px 0 6px 18px;padding:0;columns:2;font-size:13px}td.terms{font-size:12px;max-width:320px}
#compare{position:fixed;inset:0;background:rgba(15,16,18,.9);display:none;flex-direction:column;align-items:center;justify-content:center;z-index:10}
#compare.open{display:flex}#compare{overflow:auto;padding:10px}#compare .panes{display:flex;gap:min(18px,2vw);justify-content:center}
#compare figure{margin:0;color:#eee;text-align:center;font-size:13px}#compare img{width:min(288px,30vw);height:min(288px,30vw);background:#fff}
#compare figcaption{max-width:min(288px,30vw);margin-top:4px;overflow-wrap:anywhere}#compare p{color:#ddd;margin:10px;font-size:13px}.nums{font-size:11.5px;color:var(--muted)}.nums b{color:var(--ink)}.ok{color:#14823c;font-weight:600}
tr.best-row td{background:var(--best)}
.best-choice{font-size:15px}.best-choice b{font-size:17px}
#lightbox{position:fixed;inset:0;background:rgba(15,16,18,.86);display:none;align-items:center;justify-content:center;flex-direction:column;z-index:9}
#lightbox.open{display:flex}#lightbox img{max-width:92vw;max-height:84vh;image-rendering:pixelated;background:#fff}
#lightbox p{color:#eee;margin:8px;font-size:13px}
@media(max-width:600px){table.summary,table.summary tbody,table.summary tr,table.summary td{display:block}table.summary tr:first-child{display:none}table.summary tr{border-bottom:2px solid var(--line);padding:4px 0}table.summary td{text-align:left;border:0;padding:1px 4px}table.summary td::before{content:attr(data-label) ": ";color:var(--muted)}table.summary td:first-child::before{content:none}ul.terms{columns:1}}
"""

JS = """
(function(){
  var box=document.getElementById('lightbox'),img=box.querySelector('img'),cap=box.querySelector('p');
  document.addEventListener('click',function(e){
    var a=e.target.closest('a.zoom'); if(!a) return; e.preventDefault();
    img.src=a.getAttribute('href'); cap.textContent=a.dataset.caption||''; box.classList.add('open');
  });
  box.addEventListener('click',function(){box.classList.remove('open');});
  var cmp=document.getElementById('compare');
  function pane(id,src){var i=document.getElementById(id);i.parentNode.style.display=src?'':'none';if(src)i.src=src;}
  document.addEventListener('click',function(e){
    var b=e.target.closest('button.cmp'); if(!b) return; var c=b.closest('.cell');
    var s=c.querySelector('img.thumb'),k=c.querySelector('img.cand');
    pane('cmp-s',s&&s.getAttribute('src')); pane('cmp-c',k&&k.getAttribute('src')); pane('cmp-t',c.dataset.t||'');
    document.getElementById('cmp-cc').textContent=c.dataset.cap||'';
    document.getElementById('cmp-tc').textContent=c.dataset.tcap||''; cmp.classList.add('open');
    var sh=(c.dataset.shift||'0 0').split(' ');  /* the training figure where the candidate draws it */
    document.getElementById('cmp-t').style.transform='translate('+(sh[1]*100/24)+'%,'+(sh[0]*100/24)+'%)';
  });
  cmp.addEventListener('click',function(){cmp.classList.remove('open');});
  document.addEventListener('change',function(e){  /* the samples beside their candidates, or candidates alone */
    if(e.target.matches('input.show-samples')) e.target.closest('details').classList.toggle('with-samples',e.target.checked);
  });
  var m=/^#compare=(\\d+)$/.exec(location.hash);  /* a link to one comparison: index.html#compare=N */
  if(m){var bs=document.querySelectorAll('button.cmp'); if(bs[+m[1]]) bs[+m[1]].click();}
  document.addEventListener('keydown',function(e){if(e.key==='Escape'){box.classList.remove('open');cmp.classList.remove('open');}});
  window.addEventListener('load',function(){
    var ok=0,bad=0; Array.prototype.forEach.call(document.images,function(i){
      if(i.closest('#lightbox')||i.closest('#compare')) return; if(i.complete&&i.naturalWidth>0) ok++; else bad++;});
    var charts=document.querySelectorAll('svg.chart'),drawn=0;
    Array.prototype.forEach.call(charts,function(c){if(c.querySelector('polyline.series')) drawn++;});
    document.body.setAttribute('data-images-loaded',ok); document.body.setAttribute('data-images-failed',bad);
    document.body.setAttribute('data-charts',charts.length); document.body.setAttribute('data-charts-drawn',drawn);
    document.body.setAttribute('data-chart',charts.length&&drawn===charts.length?'ok':'missing');
  });
})();
"""


COMPARE = ('<div id="compare" role="dialog" aria-label="compare sample, candidate and nearest training image">'
           '<div class="panes"><figure><img id="cmp-s" alt="sample"><figcaption>sample (thumbnail)</figcaption></figure>'
           '<figure><img id="cmp-c" class="px" alt="candidate"><figcaption id="cmp-cc"></figcaption></figure>'
           '<figure><div style="overflow:hidden"><img id="cmp-t" class="px" alt="nearest training image"></div>'
           '<figcaption id="cmp-tc"></figcaption></figure></div><p>click or Esc to close</p></div>')
_LOCAL_URL = re.compile(r'((?:src|href|data-t)=")((?:img|sheets)/[^"]+)"')


def _inline(page: str, page_dir: Path) -> str:
    """Every local image URL of `page` as a data: URI (files read from `page_dir`)."""
    cache: dict[str, str] = {}

    def uri(match: re.Match) -> str:
        url = match.group(2)
        if url not in cache:
            try:
                data = (page_dir / url).read_bytes()
            except OSError:
                return match.group(0)
            mime = "image/webp" if url.endswith(".webp") else "image/png"
            cache[url] = f"data:{mime};base64," + base64.b64encode(data).decode("ascii")
        return f'{match.group(1)}{cache[url]}"'

    return _LOCAL_URL.sub(uri, page)


def build_html(views: list[RunView], out_path: Path, *, baseline: Baseline | None = None, title: str | None = None,
               generated: str | None = None, single_file: bool = False) -> Path:
    """Write the review page for `views` to `out_path` (atomically) with its images beside it; return it.

    `baseline` defaults to the recorded one (load_baseline); `generated` is the creation time shown under the
    title; `single_file` also writes `review.html` beside it with every image inlined as a data URI (one file
    to mail). Contact sheets (view.sheets) must already be inside the page's folder.
    """
    out_path = Path(out_path)
    page = _page(views, out_path.parent, baseline=baseline, title=title, generated=generated)
    atomic_write_text(out_path, page)
    written = [out_path]
    if single_file:
        atomic_write_text(single_file_path(out_path), _inline(page, out_path.parent))
        written.append(single_file_path(out_path))
    for path in written:  # readable like the images beside it (the atomic temp file is owner-only)
        path.chmod(0o644)
    return out_path


def single_file_path(page: Path) -> Path:
    """Where `--single-file` writes the inlined page: review.html beside index.html."""
    return Path(page).with_name("review.html")


def _dataset(view: RunView) -> dict:
    """Where the view's training images are: the run's dataset record, else the folder --training named."""
    if view.run is not None:
        return view.run.dataset
    training = view.report.training
    return {"source": training.source} if training is not None and training.source else {}


def _page(views: list[RunView], page_dir: Path, *, baseline: Baseline | None, title: str | None,
          generated: str | None) -> str:
    """The page's HTML, its images written below `page_dir`."""
    baseline = baseline or load_baseline()
    label_views(views)
    assets = build_assets([(v.key, v.run_dir, v.report, _dataset(v), v.method) for v in views], page_dir)
    for view in views:
        view.assets = assets[view.key]
    simulated = any(v.simulated for v in views)
    title = title or ("Review: " + ", ".join(v.label for v in views))
    body = []
    if simulated:
        sims = ", ".join(v.label for v in views if v.simulated)
        body.append(f'<div class="sim-banner">SIMULATED — not real training. The samples of {escape(sims)} '
                    "were made by bespoke's simulator from generated punks; no model was trained. "
                    "The simulator ignores the prompts: it draws a generated punk for each sample, so a sample "
                    "need not look like its prompt (\u201cred hair\u201d may come out green). "
                    "The configs and launch commands are real.</div>")
    body.append("<main>")
    body.append(f"<h1>{escape(title)}</h1>")
    if generated:
        body.append(f'<p class="muted">Generated {escape(generated)} by bespoke review.</p>')
    body.append('<h2>Which epoch, which run</h2><div class="card">' + summary_table(views, baseline) + "</div>")
    if any(e.epoch is not None for v in views for e in v.report.epochs):
        body.append("<h2>Per epoch</h2>" + charts_html(views, baseline))
    else:  # a folder of images that are no sd-scripts samples: nothing to plot against epochs
        body.append('<p class="muted">No per-epoch charts: the file names carry no epoch (sd-scripts names its '
                    "samples <code>&lt;name&gt;_e000008_00_&lt;time&gt;_&lt;seed&gt;.png</code>).</p>")
    top, _ = best_of_runs(views)
    for i, view in enumerate(views):  # one grid unfolded: the best run's, else the first
        body += _run_section(view, page_dir, view.run_id == top if top is not None else i == 0)
    body.append("</main>")
    body.append('<div id="lightbox" role="dialog" aria-label="enlarged image"><img alt=""><p></p></div>')
    body.append(COMPARE)
    return (
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
        "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
        f"<title>{escape(title)}</title><style>{CSS}</style></head>\n"
        f"<body data-simulated=\"{str(simulated).lower()}\">\n" + "\n".join(body)
        + f"\n<script>{JS}</script>\n</body></html>\n"
    )


def _run_section(view: RunView, page_dir: Path, open_grid: bool) -> list[str]:
    """One run's part of the page: heading, best epoch and tables, settings, errors, and the samples grid
    (unfolded when `open_grid`)."""
    tag = ' <span class="sim-tag">SIMULATED</span>' if view.simulated else ""
    ident = f' <span class="muted">({escape(view.run_id)})</span>' if view.label != view.run_id else ""
    out = [f'<h2 id="run-{escape(view.key)}">{escape(view.label)}{ident}{tag}</h2>',
           '<div class="card">' + best_html(view) + epoch_table(view) + methods_html(view) + "</div>"]
    if not view.plain:
        out.append('<details class="card"><summary>Run settings</summary>' + settings_html(view, page_dir)
                   + "</details>")
    errors = view.report.errors
    if errors:
        hint = ""
        if any("not square" in e.error for e in errors):
            hint = ('<p class="muted">bespoke finds the 24-cell grid on a square picture and does not guess which '
                    "part of a wider or taller image is the portrait: crop these to the square art and review "
                    "again.</p>")
        out.append('<div class="card"><h3>Samples that could not be processed</h3><ul>' + "".join(
            f"<li><code>{escape(Path(e.file).name)}</code>: {escape(e.error)}</li>"
            for e in errors) + "</ul>" + hint + "</div>")
    shown = " open" if open_grid else ""
    out.append(f'<details class="run-samples"{shown}><summary>Samples and {escape(view.method or "no")} candidates '
               f"of {escape(view.label)} ({len(view.report.samples)}; {CAND_PX} px; click one to compare it with its "
               "sample and the nearest training punk)</summary>"
               '<label class="toggle"><input type="checkbox" class="show-samples"> show each sample beside its '
               "candidate</label>")
    out.append(samples_html(view) + "</details>")
    return out
