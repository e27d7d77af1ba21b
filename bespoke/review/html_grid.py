"""The review page's samples grid: epochs as rows, prompts as columns; each cell the 24 px candidate drawn large
and pixelated (its sample thumbnail beside it when the page's toggle asks), with its words and marks (degenerate
sample, near-copy of a training image, cells moved beyond the tolerance; the figures in tooltips). A click
opens the compare view (JS in html.py): sample, candidate and the nearest training image side by side."""

from __future__ import annotations

from html import escape

from bespoke.review.html_data import RunView, colour_change
from bespoke.review.records import Candidate, Sample
from bespoke.review.sheets import arrange, best_epoch, prompt_label

HEADER_CHARS = 64  # longer prompt labels end at a word boundary with "…" (the full prompt is the tooltip)
DEGENERATE = {"solid": "solid colour", "near-solid": "near-solid", "nan-black": "NaN black", "no-grid": "no grid",
              "not-pixel-art": "not pixel art"}


def header_label(text: str, limit: int = HEADER_CHARS) -> str:
    """`text` cut at the last word boundary before `limit` characters (with "…"), never inside a word."""
    if len(text) <= limit:
        return text
    cut = text[:limit].rsplit(" ", 1)[0].rstrip(",;:")
    return (cut or text[:limit]) + "…"


def _pct(value: float) -> str:
    return f"{100 * value:.0f} %"


def _badges(sample: Sample, candidate: Candidate | None) -> tuple[list[str], list[str]]:
    """(CSS classes of the cell, HTML badges) for what is wrong or notable about a sample and its candidate."""
    classes, badges = [], []
    if sample.degenerate:
        classes.append("degenerate")
        badges.append(f'<span class="badge bad" title="degenerate sample: never clean, never best">'
                      f'{escape(DEGENERATE.get(sample.degenerate, sample.degenerate))}</span>')
    novelty = candidate.novelty if candidate is not None else None
    if novelty is not None and novelty.near_copy:
        classes.append("near-copy")
        badges.append(f'<span class="badge copy" title="reproduces {_pct(novelty.share)} of the training punk '
                      f'{escape(novelty.nearest)}\'s figure">near-copy</span>')
    if candidate is not None and candidate.moved_beyond > 0:
        badges.append(f'<span class="badge warn" title="cells moved beyond the colour tolerance">'
                      f"{candidate.moved_beyond} cells moved</span>")
    return classes, badges


def _caption(sample: Sample, method: str | None, candidate: Candidate | None) -> tuple[str, str]:
    """(candidate caption, training-image caption) for the compare view."""
    cap = sample.name or sample.file
    if sample.seed is not None:
        cap += f" · seed {sample.seed}"
    if candidate is not None:
        cap += (f" · {method}: {candidate.colors} colours, {colour_change(candidate.delta_e_max)} (largest colour "
                f"change ΔE {candidate.delta_e_max:.1f}, mean {candidate.delta_e_mean:.1f})")
    novelty = candidate.novelty if candidate is not None else None
    tcap = ""
    if novelty is not None and novelty.nearest:
        moved = f", shifted {novelty.shift[0]:+d} rows, {novelty.shift[1]:+d} columns" if novelty.shift and any(
            novelty.shift) else ""
        tcap = (f"nearest training punk: {novelty.nearest} · the candidate reproduces {_pct(novelty.share)} of its "
                f"figure{moved}" + (" · NEAR-COPY" if novelty.near_copy else ""))
    return cap, tcap


def _numbers(sample: Sample, method: str | None, candidate: Candidate | None) -> str:
    """The words under a cell: the candidate's colours, few colours, how far it moved the colours (the figures
    in titles); the raw sample's colours without a candidate."""
    if candidate is None:
        return (f'<div class="nums"><span title="raw colours (NEAREST downscale)">raw <b>{sample.colors_nearest}'
                "</b> colours</span>")
    clean = (' · <span class="ok" title="clean: at most 50 colours, the 10 most used covering 70 % of it">'
             "few colours</span>") if candidate.clean else ""
    moved = (f"largest colour change ΔE {candidate.delta_e_max:.1f} (mean {candidate.delta_e_mean:.1f}) from "
             "what the model drew; 1 is invisible, 2.3 just noticeable side by side")
    return (f'<div class="nums"><span title="{escape(method or "")} candidate; the raw sample (NEAREST downscale) '
            f'has {sample.colors_nearest}"><b>{candidate.colors}</b> colours</span>{clean}'
            f' · <span title="{escape(moved)}">{colour_change(candidate.delta_e_max)}</span>')


def cell_html(view: RunView, sample: Sample) -> str:
    """One grid cell: sample thumbnail + candidate (a button that opens the compare view), numbers, marks."""
    method = view.method
    candidate = sample.candidates.get(method) if method else None
    classes, badges = _badges(sample, candidate)
    cap, tcap = _caption(sample, method, candidate)
    thumb = view.assets.samples.get(sample.file)
    cand = view.assets.candidates.get(candidate.file) if candidate is not None else None
    nearest = candidate.novelty.nearest if candidate is not None and candidate.novelty is not None else None
    train = view.assets.training.get(nearest) if nearest else None
    attrs = f' data-cap="{escape(cap)}" data-tcap="{escape(tcap)}"' + (f' data-t="{train}"' if train else "")
    shift = candidate.novelty.shift if candidate is not None and candidate.novelty is not None else None
    if train and shift:
        attrs += f' data-shift="{int(shift[0])} {int(shift[1])}"'
    parts = [f'<div class="cell {" ".join(classes)}"{attrs}>',
             '<button type="button" class="cmp" title="compare sample, candidate and nearest training image">']
    parts.append(f'<img class="thumb" src="{thumb}" alt="sample {escape(sample.name)}">'
                 if thumb else '<span class="missing">unreadable sample</span>')
    if candidate is not None and cand:
        parts.append(f'<img class="cand" src="{cand}" alt="{escape(method or "")} candidate">')
    elif method:
        parts.append('<span class="missing">no candidate</span>')
    parts.append("</button>")
    nums = _numbers(sample, method, candidate)
    parts.append(nums + (" " + " ".join(badges) if badges else "") + "</div></div>")
    return "".join(parts)


def samples_html(view: RunView) -> str:
    """The grid of one run: a row per epoch (the best marked), a column per prompt."""
    rows, columns, grid = arrange(view.report.samples)
    if not rows:
        return '<p class="muted">No samples.</p>'
    best = best_epoch(view.report)
    out = ['<div class="grid-wrap"><table class="samples"><tr><th>epoch</th>']
    for col in columns:
        sample = next((grid[(r.key, col)] for r in rows if (r.key, col) in grid), None)
        label = prompt_label(sample, col)
        prompt = (sample.prompt if sample is not None else None) or ""
        out.append(f'<th title="{escape(prompt)}">{escape(header_label(label))}</th>')
    out.append("</tr>")
    for row in rows:
        cls = ' class="best-row"' if best is not None and row.epoch == best else ""
        out.append(f'<tr{cls}><td class="ep"><b>{escape(row.label)}</b>{"<br>★ best" if cls else ""}</td>')
        for col in columns:
            sample = grid.get((row.key, col))
            out.append("<td>" + (cell_html(view, sample) if sample else "") + "</td>")
        out.append("</tr>")
    out.append("</table></div>")
    return "\n".join(out)
