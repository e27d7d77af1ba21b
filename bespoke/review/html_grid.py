"""The review page's samples grid: epochs as rows, prompts as columns; each cell a sample thumbnail beside its
24 px candidate drawn large and pixelated, with its numbers and marks (degenerate sample, near-copy of a
training image, cells moved beyond the tolerance). A click opens the compare view (JS in html.py): sample,
candidate and the nearest training image side by side."""

from __future__ import annotations

from html import escape

from bespoke.review.html_data import RunView
from bespoke.review.sheets import arrange, best_epoch, prompt_label

HEADER_CHARS = 110  # longer prompt labels end at a word boundary with "…" (the full prompt is the tooltip)
DEGENERATE = {"solid": "solid colour", "near-solid": "near-solid", "nan-black": "NaN black", "no-grid": "no grid"}


def header_label(text: str, limit: int = HEADER_CHARS) -> str:
    """`text` cut at the last word boundary before `limit` characters (with "…"), never inside a word."""
    if len(text) <= limit:
        return text
    cut = text[:limit].rsplit(" ", 1)[0].rstrip(",;:")
    return (cut or text[:limit]) + "…"


def _pct(value: object) -> str:
    return f"{100 * value:.0f} %" if isinstance(value, (int, float)) else "?"


def _num(value: object, fmt: str = "{}") -> str:
    if value is None:
        return "—"
    try:
        return fmt.format(value)
    except (TypeError, ValueError):
        return escape(str(value))


def _badges(sample: dict, candidate: dict | None) -> tuple[list[str], list[str]]:
    """(CSS classes of the cell, HTML badges) for what is wrong or notable about a sample and its candidate."""
    classes, badges = [], []
    degenerate = sample.get("degenerate")
    if degenerate:
        classes.append("degenerate")
        badges.append(f'<span class="badge bad" title="degenerate sample: never clean, never best">'
                      f'{escape(DEGENERATE.get(str(degenerate), str(degenerate)))}</span>')
    novelty = (candidate or {}).get("novelty") or {}
    if novelty.get("near_copy"):
        classes.append("near-copy")
        badges.append(f'<span class="badge copy" title="{_pct(novelty.get("share"))} of cells match the training '
                      f'image {escape(str(novelty.get("nearest")))}">near-copy</span>')
    moved = (candidate or {}).get("moved_beyond")
    if isinstance(moved, int) and moved > 0:
        badges.append(f'<span class="badge warn" title="cells moved beyond the colour tolerance">{moved} cells '
                      "moved</span>")
    return classes, badges


def _caption(sample: dict, method: str | None, candidate: dict | None) -> tuple[str, str]:
    """(candidate caption, training-image caption) for the compare view."""
    cap = f"{sample.get('name') or sample.get('file')}"
    if sample.get("seed") is not None:
        cap += f" · seed {sample['seed']}"
    if candidate:
        cap += f" · {method}: {candidate.get('colors')} colours"
        if candidate.get("delta_e_max") is not None:
            cap += f", ΔE max {candidate['delta_e_max']:.1f} / mean {candidate.get('delta_e_mean') or 0:.1f}"
    novelty = (candidate or {}).get("novelty") or {}
    tcap = ""
    if novelty.get("nearest"):
        tcap = (f"nearest training image: {novelty['nearest']} · {_pct(novelty.get('share'))} of cells match"
                + (" · NEAR-COPY" if novelty.get("near_copy") else ""))
    return cap, tcap


def cell_html(view: RunView, sample: dict) -> str:
    """One grid cell: sample thumbnail + candidate (a button that opens the compare view), numbers, marks."""
    method = view.method
    candidate = (sample.get("candidates") or {}).get(method) if method else None
    classes, badges = _badges(sample, candidate)
    cap, tcap = _caption(sample, method, candidate)
    thumb = view.assets.samples.get(sample["file"])
    cand = view.assets.candidates.get(candidate["file"]) if candidate else None
    nearest = ((candidate or {}).get("novelty") or {}).get("nearest")
    train = view.assets.training.get(str(nearest)) if nearest else None
    attrs = f' data-cap="{escape(cap)}" data-tcap="{escape(tcap)}"' + (f' data-t="{train}"' if train else "")
    parts = [f'<div class="cell {" ".join(classes)}"{attrs}>',
             '<button type="button" class="cmp" title="compare sample, candidate and nearest training image">']
    parts.append(f'<img class="thumb" src="{thumb}" alt="sample {escape(sample.get("name") or "")}">'
                 if thumb else '<span class="missing">unreadable sample</span>')
    if candidate and cand:
        parts.append(f'<img class="cand" src="{cand}" alt="{escape(method or "")} candidate">')
    elif method:
        parts.append('<span class="missing">no candidate</span>')
    parts.append("</button>")
    nums = (f'<div class="nums"><span title="raw colours (NEAREST downscale)">raw <b>'
            f'{_num(sample.get("colors_nearest"))}</b></span>')
    if candidate:
        clean = ' <span class="ok">clean</span>' if candidate.get("clean") else ""
        nums += f' · {escape(method or "")} <b>{_num(candidate.get("colors"))}</b> colours{clean}'
        if candidate.get("delta_e_max") is not None:
            nums += f' · ΔE max {_num(candidate.get("delta_e_max"), "{:.1f}")}'
    parts.append(nums + (" " + " ".join(badges) if badges else "") + "</div></div>")
    return "".join(parts)


def samples_html(view: RunView) -> str:
    """The grid of one run: a row per epoch (the best marked), a column per prompt."""
    rows, columns, grid = arrange(view.report.get("samples") or [])
    if not rows:
        return '<p class="muted">No samples.</p>'
    best = best_epoch(view.report)
    out = ['<div class="grid-wrap"><table class="samples"><tr><th>epoch</th>']
    for col in columns:
        sample = next((grid[(r.key, col)] for r in rows if (r.key, col) in grid), None)
        label = prompt_label(sample, col)
        out.append(f'<th title="{escape((sample or {}).get("prompt") or "")}">{escape(header_label(label))}</th>')
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
