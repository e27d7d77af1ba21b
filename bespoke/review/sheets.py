"""Contact sheets: one PNG per run (split when large), epochs as rows x prompts as columns.

Each cell shows, left to right and labelled, the sample | its `grid` candidate (the cells as the model drew
them) | the candidate the review shows (bespoke.review.sheet_cells), with `colors_nearest` of the sample and
each candidate's colour count under them. The best epoch's row is highlighted; simulated runs carry a red
SIMULATED banner. Sized to open on a laptop.
"""

from __future__ import annotations

import io
import math
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from PIL import Image, ImageDraw

from bespoke.cpus import available_cpus
from bespoke.fsutil import atomic_write_bytes
from bespoke.review.records import EpochRow, ProcessReport, Sample
from bespoke.review.selection import display_method
from bespoke.review.sheet_cells import (
    CAND_PX,
    CELL_H,
    INK,
    MUTED,
    PAD,
    THUMB,
    Fonts,
    cell_width,
    draw_cell,
    fit,
    load_panel,
    panel_methods,
)

LABEL_W = 74
TITLE_H = 34
BANNER_H = 26
COLHEAD_H = 34
MAX_WIDTH = 2000
MAX_ROWS = 14
MIN_SHEET_W = 560  # room for the title and the SIMULATED banner text

BG = (250, 250, 248)
ROW_ALT = (241, 242, 244)
HIGHLIGHT = (255, 236, 150)
HIGHLIGHT_BAR = (226, 140, 0)
BANNER = (200, 30, 40)

GridKey = tuple[tuple[int, int], int]  # (row key, column)


@dataclass(frozen=True)
class Row:
    """One sheet row: its sort key, its label ('e8', 'step 120', 'all' for samples without either) and its
    epoch (None if not an epoch)."""

    key: tuple[int, int]
    label: str
    epoch: int | None


@dataclass
class ContactSheet:
    """One written sheet and where things are on it (for tests and for the HTML report).

    `row_boxes` maps each row label to its (y0, y1) on the image; `best_label` is the best epoch's row label
    when that row is on this sheet.
    """

    path: Path
    size: tuple[int, int]
    rows: list[Row]
    columns: list[int]
    row_boxes: dict[str, tuple[int, int]] = field(default_factory=dict)
    best_label: str | None = None


@dataclass(frozen=True)
class _RunSheets:
    """What every sheet (part) of one run shares: the run's grid, its decoded images and its numbers."""

    run_id: str
    method: str | None
    simulated: bool
    best: int | None
    rows: list[Row]
    grid: dict[GridKey, Sample]
    images: dict[str, Image.Image | None]
    epoch_stats: dict[int | None, EpochRow]
    fonts: Fonts
    parts: int
    cell_w: int


def row_key(sample: Sample) -> Row:
    """Where a sample goes vertically: its epoch, else its step, else one row for all the rest ('all')."""
    if sample.epoch is not None:
        return Row((0, sample.epoch), f"e{sample.epoch}", sample.epoch)
    if sample.step is not None:
        return Row((1, sample.step), f"step {sample.step}", None)
    return Row((2, 0), "all", None)  # a folder's samples without an epoch: one set


def arrange(samples: list[Sample]) -> tuple[list[Row], list[int], dict[GridKey, Sample]]:
    """Rows (sorted), columns (prompt indexes) and {(row key, column): sample}; the last file wins a tie.

    Samples without a prompt index share a column with the samples of their label (e01_cash_lad and
    e02_cash_lad: one column), numbered from 1000; a sample with neither gets a column of its own.
    """
    rows: dict[tuple[int, int], Row] = {}
    grid: dict[GridKey, Sample] = {}
    labels = {label: 1000 + i for i, label in enumerate(sorted({s.label for s in samples
                                                                if s.prompt_index is None and s.label}))}
    unknown_col = len(labels)
    for sample in sorted(samples, key=lambda s: s.file):
        row = row_key(sample)
        rows.setdefault(row.key, row)
        col = sample.prompt_index
        if col is None and sample.label in labels:
            col = labels[sample.label]
        elif col is None:
            col, unknown_col = 1000 + unknown_col, unknown_col + 1
        grid[(row.key, col)] = sample
    columns = sorted({col for _, col in grid})
    return [rows[k] for k in sorted(rows)], columns, grid


def pick_method(report: ProcessReport, method: str | None = None) -> str | None:
    """The candidate method to show: the requested one, else the report's best, else the one the page shows."""
    methods = report.methods
    if method:
        return method
    if report.best is not None and report.best.method in methods:
        return report.best.method
    return display_method(methods)


def prompt_label(sample: Sample | None, column: int) -> str:
    """A short column title: the prompt without the shared caption prefix."""
    if column >= 1000:  # a file that is no sd-scripts sample: its label (else its own name) says what it is
        return ((sample.label or sample.name) if sample is not None else "") or "(no prompt index)"
    text = (sample.prompt if sample is not None else None) or ""
    for prefix in ("pixel art, 24x24, portrait of bespoke punk ", "pixel art, 24x24, "):
        if text.startswith(prefix):
            text = text[len(prefix):]
            break
    return f"#{column} {text}".strip()


def best_epoch(report: ProcessReport) -> int | None:
    """The report's best epoch, None when it has none."""
    return report.best.epoch if report.best is not None else None


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


@dataclass(frozen=True)
class SheetOptions:
    """How to draw one run's sheets: `out_dir` (default `<run>/report/sheets/`), `method` (default
    pick_method), `run_id` and `simulated` (default: the report's), and the size at which a sheet is split
    (`max_width` px, `max_rows` rows)."""

    out_dir: Path | None = None
    method: str | None = None
    run_id: str | None = None
    simulated: bool | None = None
    max_width: int = MAX_WIDTH
    max_rows: int = MAX_ROWS


def build_contact_sheets(run_dir: Path, report: ProcessReport,
                         options: SheetOptions | None = None) -> list[ContactSheet]:
    """Write the contact sheet(s) of one processed run (paths in `report` are relative to `run_dir`).

    A run wider or longer than the options allow is split into balanced parts. Returns the sheets written,
    in reading order.
    """
    options = options or SheetOptions()
    run_dir = Path(run_dir)
    out_dir = Path(options.out_dir) if options.out_dir else run_dir / "report" / "sheets"
    method = pick_method(report, options.method)
    rows, columns, grid = arrange(report.samples)
    cell_w = cell_width(method)
    col_chunks = _chunks(columns, max(1, (options.max_width - LABEL_W) // cell_w))
    row_chunks = _chunks(rows, options.max_rows)
    run = _RunSheets(
        run_id=options.run_id or report.run_id or run_dir.name,
        method=method,
        simulated=report.simulated if options.simulated is None else options.simulated,
        best=best_epoch(report),
        rows=rows,
        grid=grid,
        images=_preload(run_dir, list(grid.values()), method),
        epoch_stats={e.epoch: e for e in report.epochs},
        fonts=Fonts.load(),
        parts=len(col_chunks) * len(row_chunks),
        cell_w=cell_w,
    )
    sheets = []
    for r_index, row_chunk in enumerate(row_chunks):
        for c_index, col_chunk in enumerate(col_chunks):
            part = r_index * len(col_chunks) + c_index + 1
            sheets.append(_write_sheet(run, out_dir, part, row_chunk, col_chunk))
    return sheets


def _preload(run_dir: Path, samples: list[Sample], method: str | None) -> dict[str, Image.Image | None]:
    """Every panel of every sample (the sample, its grid and shown candidates) at its size on the sheet,
    decoded on the CPUs this process may use (Pillow releases the GIL)."""
    files = []
    for sample in samples:
        files.append((sample.file, THUMB))
        files.extend((c.file, CAND_PX) for m in panel_methods(method) if (c := sample.candidates.get(m)))
    with ThreadPoolExecutor(max_workers=min(4, available_cpus())) as pool:
        loaded = pool.map(lambda job: load_panel(run_dir / job[0], (job[1], job[1])), files)
        return {file: image for (file, _), image in zip(files, loaded, strict=True)}


def _write_sheet(run: _RunSheets, out_dir: Path, part: int, rows: list[Row], columns: list[int]) -> ContactSheet:
    """Draw and write one part: `rows` x `columns` of the run's grid."""
    sheet, boxes = _draw_sheet(run, part, rows, columns)
    name = f"contact_{run.method or 'samples'}" + (f"_part{part}" if run.parts > 1 else "") + ".png"
    path = out_dir / name
    buffer = io.BytesIO()
    sheet.save(buffer, "PNG", compress_level=3)
    atomic_write_bytes(path, buffer.getvalue())
    best_label = next((r.label for r in rows if run.best is not None and r.epoch == run.best), None)
    return ContactSheet(path, sheet.size, list(rows), list(columns), boxes, best_label)


def _draw_sheet(run: _RunSheets, part: int, rows: list[Row],
                columns: list[int]) -> tuple[Image.Image, dict[str, tuple[int, int]]]:
    """One part's image and each row's (y0, y1) on it."""
    top = TITLE_H + (BANNER_H if run.simulated else 0) + COLHEAD_H
    width = LABEL_W + run.cell_w * len(columns)
    sheet = Image.new("RGB", (max(width, MIN_SHEET_W), top + CELL_H * len(rows)), BG)
    draw = ImageDraw.Draw(sheet)
    _draw_title(draw, run, part, sheet.width)
    y = TITLE_H
    if run.simulated:
        draw.rectangle((0, y, sheet.width, y + BANNER_H - 1), fill=BANNER)
        draw.text((PAD, y + 5), "SIMULATED - not real training: samples made by bespoke.simulator, no model",
                  fill=(255, 255, 255), font=run.fonts.label)
        y += BANNER_H
    for i, col in enumerate(columns):
        sample = next((run.grid[(row.key, col)] for row in run.rows if (row.key, col) in run.grid), None)
        draw.text((LABEL_W + i * run.cell_w + PAD, y + 10),
                  fit(draw, prompt_label(sample, col), run.fonts.text, run.cell_w - 2 * PAD),
                  fill=INK, font=run.fonts.text)
    boxes = {}
    for j, row in enumerate(rows):
        y0 = top + j * CELL_H
        _draw_row(sheet, draw, run, row, j, y0, columns)
        boxes[row.label] = (y0, y0 + CELL_H)
    return sheet, boxes


def _draw_title(draw: ImageDraw.ImageDraw, run: _RunSheets, part: int, width: int) -> None:
    title = f"{run.run_id}  ·  candidates: {run.method or 'none'}"
    if run.best is not None:
        title += f"  ·  best epoch {run.best}"
    if run.parts > 1:
        title += f"  ·  part {part}/{run.parts}"
    draw.text((PAD, 9), fit(draw, title, run.fonts.title, width - 2 * PAD), fill=INK, font=run.fonts.title)


def _draw_row(sheet: Image.Image, draw: ImageDraw.ImageDraw, run: _RunSheets, row: Row, index: int, y0: int,
              columns: list[int]) -> None:
    """One row: its band (alternating; highlighted with a bar when it is the best epoch), label and cells."""
    is_best = run.best is not None and row.epoch == run.best
    fill = HIGHLIGHT if is_best else (ROW_ALT if index % 2 else BG)
    draw.rectangle((0, y0, sheet.width, y0 + CELL_H - 1), fill=fill)
    if is_best:
        draw.rectangle((0, y0, 5, y0 + CELL_H - 1), fill=HIGHLIGHT_BAR)
    _draw_row_label(draw, run, row, y0, is_best)
    for i, col in enumerate(columns):
        sample = run.grid.get((row.key, col))
        if sample is not None:
            draw_cell(sheet, sample, (LABEL_W + i * run.cell_w, y0), run.method, (run.images, run.fonts))


def _draw_row_label(draw: ImageDraw.ImageDraw, run: _RunSheets, row: Row, y0: int, is_best: bool) -> None:
    """The label column: row label, the epoch's mean colours and % clean, and BEST."""
    fonts = run.fonts
    draw.text((12, y0 + PAD + 4), row.label, fill=INK, font=fonts.title)
    stats = run.epoch_stats.get(row.epoch) if row.epoch is not None else None
    if stats is not None:
        if stats.colors_nearest_mean is not None:
            draw.text((12, y0 + PAD + 28), f"mean {stats.colors_nearest_mean:.0f}", fill=MUTED, font=fonts.small)
        m_stats = stats.methods.get(run.method) if run.method else None
        if m_stats is not None and m_stats.clean_pct is not None:
            draw.text((12, y0 + PAD + 44), f"{m_stats.clean_pct:.0f}% clean", fill=MUTED, font=fonts.small)
    if is_best:
        draw.text((12, y0 + PAD + 64), "BEST", fill=HIGHLIGHT_BAR, font=fonts.label)
