"""Contact sheets: one PNG per run (split when large), epochs as rows x prompts as columns.

Each cell shows the sample scaled down beside its 24 px candidate scaled up with NEAREST (pixels stay
square), with `colors_nearest` of the sample and the candidate's colour count under them. The best
epoch's row is highlighted; simulated runs carry a red SIMULATED banner. Sized to open on a laptop.
"""

from __future__ import annotations

import io
import math
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

from bespoke.fsutil import atomic_write_bytes

THUMB = 120  # sample thumbnail, px
SCALE = 4  # candidate magnification (24 px -> 96 px)
PAD = 6
GAP = 4
TEXT_H = 34
LABEL_W = 74
TITLE_H = 34
BANNER_H = 26
COLHEAD_H = 34
MAX_WIDTH = 2000
MAX_ROWS = 14

BG = (250, 250, 248)
ROW_ALT = (241, 242, 244)
HIGHLIGHT = (255, 236, 150)
HIGHLIGHT_BAR = (226, 140, 0)
INK = (30, 32, 36)
MUTED = (110, 114, 120)
CLEAN = (20, 130, 60)
BANNER = (200, 30, 40)
MISSING = (200, 200, 204)


@dataclass(frozen=True)
class Row:
    """One sheet row: its label ('e8', 'step 120', '?') and the epoch it stands for (None if not an epoch)."""

    key: tuple
    label: str
    epoch: int | None


@dataclass
class ContactSheet:
    """One written sheet and where things are on it (for tests and for the HTML report)."""

    path: Path
    size: tuple[int, int]
    rows: list[Row]
    columns: list[int]
    row_boxes: dict = field(default_factory=dict)  # row label -> (y0, y1)
    best_label: str | None = None


def _font(size: int):
    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow < 10.1: bitmap font, one size
        return ImageFont.load_default()


def row_key(sample: dict) -> Row:
    """Where a sample goes vertically: its epoch, else its step, else an 'unknown' row."""
    if sample.get("epoch") is not None:
        return Row((0, int(sample["epoch"])), f"e{int(sample['epoch'])}", int(sample["epoch"]))
    if sample.get("step") is not None:
        return Row((1, int(sample["step"])), f"step {int(sample['step'])}", None)
    return Row((2, 0), "?", None)


def arrange(samples: list[dict]) -> tuple[list[Row], list[int], dict]:
    """Rows (sorted), columns (prompt indexes) and {(row key, column): sample}; the last file wins a tie."""
    rows: dict[tuple, Row] = {}
    grid: dict[tuple, dict] = {}
    unknown_col = 0
    for sample in sorted(samples, key=lambda s: s.get("file", "")):
        row = row_key(sample)
        rows.setdefault(row.key, row)
        col = sample.get("prompt_index")
        if col is None:
            col, unknown_col = 1000 + unknown_col, unknown_col + 1
        grid[(row.key, int(col))] = sample
    columns = sorted({col for _, col in grid})
    return [rows[k] for k in sorted(rows)], columns, grid


def pick_method(report: dict, method: str | None = None) -> str | None:
    """The candidate method to show: the requested one, else the report's best, else grid, else the first."""
    methods = list(report.get("methods") or [])
    if method:
        return method
    best = report.get("best") or {}
    if best.get("method") in methods:
        return best["method"]
    if "grid" in methods:
        return "grid"
    return methods[0] if methods else None


def prompt_label(sample: dict | None, column: int) -> str:
    """A short column title: the prompt without the shared caption prefix."""
    if column >= 1000:
        return "(no prompt index)"
    text = (sample or {}).get("prompt") or ""
    for prefix in ("pixel art, 24x24, portrait of bespoke punk ", "pixel art, 24x24, "):
        if text.startswith(prefix):
            text = text[len(prefix):]
            break
    return f"#{column} {text}".strip()


def _fit(draw: ImageDraw.ImageDraw, text: str, font, width: int) -> str:
    if draw.textlength(text, font=font) <= width:
        return text
    while text and draw.textlength(text + "...", font=font) > width:
        text = text[:-1]
    return text + "..."


def _load(path: Path, size: tuple[int, int], resample) -> Image.Image | None:
    try:
        with Image.open(path) as img:
            img = img.convert("RGB")
            if resample == Image.NEAREST:
                return img.resize(size, Image.NEAREST)
            img.thumbnail(size, Image.BOX, reducing_gap=2.0)
            return img
    except (OSError, ValueError):
        return None


def _chunks(items: list, limit: int) -> list[list]:
    """Split into the fewest balanced chunks of at most `limit` items."""
    if not items:
        return [[]]
    parts = math.ceil(len(items) / limit)
    base, extra = divmod(len(items), parts)
    chunks, start = [], 0
    for index in range(parts):
        size = base + (1 if index < extra else 0)
        chunks.append(items[start:start + size])
        start += size
    return chunks


def best_epoch(report: dict) -> int | None:
    best = report.get("best") or {}
    return best.get("epoch")


def build_contact_sheets(
    run_dir: Path, report: dict, *, out_dir: Path | None = None, method: str | None = None,
    run_id: str | None = None, simulated: bool | None = None, max_width: int = MAX_WIDTH, max_rows: int = MAX_ROWS,
) -> list[ContactSheet]:
    """Write the contact sheet(s) of one processed run into `out_dir` (default `<run>/report/sheets/`).

    Paths in `report` are relative to `run_dir`. Returns the sheets written, in reading order.
    """
    run_dir = Path(run_dir)
    out_dir = Path(out_dir) if out_dir else run_dir / "report" / "sheets"
    method = pick_method(report, method)
    run_id = run_id or report.get("run_id") or run_dir.name
    simulated = bool(report.get("simulated")) if simulated is None else simulated
    rows, columns, grid = arrange(report.get("samples") or [])
    images = _preload(run_dir, list(grid.values()), method)
    best = best_epoch(report)
    epoch_stats = {e.get("epoch"): e for e in report.get("epochs") or []}
    cand_px = 24 * SCALE
    cell_w = PAD + THUMB + GAP + cand_px + PAD
    cell_h = PAD + max(THUMB, cand_px) + TEXT_H + PAD
    per_sheet_cols = max(1, (max_width - LABEL_W) // cell_w)
    col_chunks = _chunks(columns, per_sheet_cols)
    row_chunks = _chunks(rows, max_rows)
    parts = len(col_chunks) * len(row_chunks)
    title_font, label_font, text_font, small_font = _font(16), _font(15), _font(13), _font(11)
    sheets = []
    for r_index, row_chunk in enumerate(row_chunks):
        for c_index, col_chunk in enumerate(col_chunks):
            part = r_index * len(col_chunks) + c_index + 1
            width = LABEL_W + cell_w * len(col_chunk)
            top = TITLE_H + (BANNER_H if simulated else 0) + COLHEAD_H
            height = top + cell_h * len(row_chunk)
            sheet = Image.new("RGB", (max(width, 560), height), BG)
            draw = ImageDraw.Draw(sheet)
            title = f"{run_id}  ·  candidates: {method or 'none'}"
            if best is not None:
                title += f"  ·  best epoch {best}"
            if parts > 1:
                title += f"  ·  part {part}/{parts}"
            draw.text((PAD, 9), _fit(draw, title, title_font, sheet.width - 2 * PAD), fill=INK, font=title_font)
            y = TITLE_H
            if simulated:
                draw.rectangle((0, y, sheet.width, y + BANNER_H - 1), fill=BANNER)
                draw.text((PAD, y + 5), "SIMULATED - not real training: samples made by bespoke.simulator, no model",
                          fill=(255, 255, 255), font=label_font)
                y += BANNER_H
            for i, col in enumerate(col_chunk):
                x = LABEL_W + i * cell_w
                sample = next((grid[(row.key, col)] for row in rows if (row.key, col) in grid), None)
                draw.text((x + PAD, y + 10), _fit(draw, prompt_label(sample, col), text_font, cell_w - 2 * PAD),
                          fill=INK, font=text_font)
            boxes = {}
            for j, row in enumerate(row_chunk):
                y0 = top + j * cell_h
                is_best = best is not None and row.epoch == best
                fill = HIGHLIGHT if is_best else (ROW_ALT if j % 2 else BG)
                draw.rectangle((0, y0, sheet.width, y0 + cell_h - 1), fill=fill)
                if is_best:
                    draw.rectangle((0, y0, 5, y0 + cell_h - 1), fill=HIGHLIGHT_BAR)
                boxes[row.label] = (y0, y0 + cell_h)
                draw.text((12, y0 + PAD + 4), row.label, fill=INK, font=title_font)
                stats = epoch_stats.get(row.epoch) if row.epoch is not None else None
                if stats:
                    mean = stats.get("colors_nearest_mean")
                    if mean is not None:
                        draw.text((12, y0 + PAD + 28), f"mean {mean:.0f}", fill=MUTED, font=small_font)
                    m_stats = (stats.get("methods") or {}).get(method) or {}
                    if m_stats.get("clean_pct") is not None:
                        draw.text((12, y0 + PAD + 44), f"{m_stats['clean_pct']:.0f}% clean", fill=MUTED,
                                  font=small_font)
                if is_best:
                    draw.text((12, y0 + PAD + 64), "BEST", fill=HIGHLIGHT_BAR, font=label_font)
                for i, col in enumerate(col_chunk):
                    sample = grid.get((row.key, col))
                    if sample is not None:
                        _draw_cell(sheet, draw, images, sample, method, LABEL_W + i * cell_w, y0,
                                   text_font, small_font)
            name = f"contact_{method or 'samples'}" + (f"_part{part}" if parts > 1 else "") + ".png"
            path = out_dir / name
            buffer = io.BytesIO()
            sheet.save(buffer, "PNG", compress_level=3)
            atomic_write_bytes(path, buffer.getvalue())
            best_label = next((r.label for r in row_chunk if best is not None and r.epoch == best), None)
            sheets.append(ContactSheet(path, sheet.size, list(row_chunk), list(col_chunk), boxes, best_label))
    return sheets


def _preload(run_dir: Path, samples: list[dict], method: str | None) -> dict:
    """Thumbnails and scaled candidates of all samples, decoded on all cores (Pillow releases the GIL)."""
    cand_px = 24 * SCALE
    jobs = []
    for sample in samples:
        jobs.append((sample["file"], (THUMB, THUMB), Image.BOX))
        candidate = (sample.get("candidates") or {}).get(method) if method else None
        if candidate:
            jobs.append((candidate["file"], (cand_px, cand_px), Image.NEAREST))
    with ThreadPoolExecutor(max_workers=max(1, min(4, os.cpu_count() or 1))) as pool:
        loaded = pool.map(lambda job: _load(run_dir / job[0], job[1], job[2]), jobs)
        return {job[0]: image for job, image in zip(jobs, loaded, strict=True)}


def _draw_cell(sheet, draw, images: dict, sample: dict, method, x: int, y: int, text_font, small_font) -> None:
    cand_px = 24 * SCALE
    thumb = images.get(sample["file"])
    if thumb is None:
        draw.rectangle((x + PAD, y + PAD, x + PAD + THUMB - 1, y + PAD + THUMB - 1), fill=MISSING)
        draw.text((x + PAD + 6, y + PAD + 50), "unreadable", fill=INK, font=small_font)
    else:
        sheet.paste(thumb, (x + PAD + (THUMB - thumb.width) // 2, y + PAD + (THUMB - thumb.height) // 2))
    cx = x + PAD + THUMB + GAP
    candidate = (sample.get("candidates") or {}).get(method) if method else None
    cand = images.get(candidate["file"]) if candidate else None
    if cand is None:
        draw.rectangle((cx, y + PAD, cx + cand_px - 1, y + PAD + cand_px - 1), fill=MISSING)
        draw.text((cx + 6, y + PAD + 40), "no candidate", fill=INK, font=small_font)
    else:
        sheet.paste(cand, (cx, y + PAD))
    ty = y + PAD + THUMB + 3
    colors = sample.get("colors_nearest")
    draw.text((x + PAD, ty), f"{colors} colours" if colors is not None else "-", fill=INK, font=text_font)
    coverage = sample.get("top10_coverage")
    if coverage is not None:
        draw.text((x + PAD, ty + 16), f"top10 {coverage:.0%}", fill=MUTED, font=small_font)
    if candidate:
        clean = bool(candidate.get("clean"))
        draw.text((cx, ty), f"{method} {candidate.get('colors')}", fill=CLEAN if clean else INK, font=text_font)
        if clean:
            draw.text((cx, ty + 16), "clean", fill=CLEAN, font=small_font)
        elif candidate.get("grid_error") is not None:
            draw.text((cx, ty + 16), f"grid err {candidate['grid_error']:.0f}", fill=MUTED, font=small_font)
