"""Contact sheets: sample | grid | shown panels, geometry, the best-epoch highlight, the SIMULATED banner,
splitting wide sweeps."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
from PIL import Image
from review_fixtures import fake_process, simulated_run

from bespoke.review import sheet_cells as cells
from bespoke.review import sheets
from bespoke.review.process import process_path
from bespoke.review.report import load_report
from bespoke.review.request import ProcessOptions
from bespoke.review.sheets import SheetOptions
from bespoke.run.paths import RunPaths


@pytest.fixture
def processed_run(tmp_path):
    run = simulated_run(tmp_path, "64-sheet", resolution=64, prompts=3, epochs=4, process=False)
    report = fake_process(run, best_epoch=3)
    return run, report


def test_sheet_geometry_and_best_row_highlight(processed_run):
    run, report = processed_run
    written = sheets.build_contact_sheets(run, report)
    assert len(written) == 1
    sheet = written[0]
    assert sheet.path == RunPaths(run).report_dir / "sheets" / "contact_grid.png"
    with Image.open(sheet.path) as img:
        img = img.convert("RGB")
        cell_w = 2 * cells.PAD + cells.THUMB + cells.GAP + 24 * cells.SCALE  # sample | grid (shown)
        cell_h = 2 * cells.PAD + cells.PANEL_LABEL_H + cells.THUMB + cells.TEXT_H
        head = sheets.TITLE_H + sheets.BANNER_H + sheets.COLHEAD_H
        assert img.size == sheet.size == (sheets.LABEL_W + 3 * cell_w, head + 4 * cell_h)
        assert img.width <= sheets.MAX_WIDTH
        assert [r.label for r in sheet.rows] == ["e1", "e2", "e3", "e4"]
        assert sheet.best_label == "e3"
        for label, (y0, y1) in sheet.row_boxes.items():
            middle = (y0 + y1) // 2
            bar = img.getpixel((2, middle))
            background = img.getpixel((sheets.LABEL_W - 4, y1 - 3))  # label column, below the text
            if label == "e3":
                assert bar == sheets.HIGHLIGHT_BAR and background == sheets.HIGHLIGHT
            else:
                assert sheets.HIGHLIGHT not in (bar, background) and bar != sheets.HIGHLIGHT_BAR
        # the candidate is pasted NEAREST at x SCALE: a 4x4 block of one colour at its top-left cell
        y0 = sheet.row_boxes["e1"][0] + cells.PAD + cells.PANEL_LABEL_H
        x0 = sheets.LABEL_W + cells.PAD + cells.THUMB + cells.GAP
        block = {img.getpixel((x0 + dx, y0 + dy)) for dx in range(cells.SCALE) for dy in range(cells.SCALE)}
        assert len(block) == 1


def test_simulated_banner_only_on_simulated_runs(processed_run):
    run, report = processed_run
    sim = sheets.build_contact_sheets(run, report, SheetOptions(out_dir=run / "a"))[0]
    real = sheets.build_contact_sheets(run, report, SheetOptions(out_dir=run / "b", simulated=False))[0]
    with Image.open(sim.path) as a, Image.open(real.path) as b:
        assert a.convert("RGB").getpixel((a.width - 3, sheets.TITLE_H + 3)) == sheets.BANNER
        assert b.convert("RGB").getpixel((b.width - 3, sheets.TITLE_H + 3)) != sheets.BANNER
        assert a.height == b.height + sheets.BANNER_H


def test_wide_sweeps_split_into_balanced_sheets_that_fit_a_laptop(tmp_path):
    run = simulated_run(tmp_path, "64-wide", resolution=64, prompts=10, epochs=2)
    report = load_report(run)
    cell_w = cells.cell_width("grid")
    five, four = sheets.LABEL_W + 5 * cell_w + 20, sheets.LABEL_W + 4 * cell_w + 20
    written = sheets.build_contact_sheets(run, report, SheetOptions(max_width=five))  # room for 5 cells
    assert [len(s.columns) for s in written] == [5, 5]
    assert all(s.size[0] <= five for s in written)
    assert sorted(c for s in written for c in s.columns) == list(range(10))
    assert [s.path.name for s in written] == ["contact_grid_part1.png", "contact_grid_part2.png"]
    narrow = sheets.build_contact_sheets(run, report, SheetOptions(max_width=four, out_dir=run / "narrow"))
    assert [len(s.columns) for s in narrow] == [4, 3, 3]


def test_missing_or_broken_images_become_placeholders(processed_run):
    run, report = processed_run
    first = report.samples[0]
    (run / first.candidates["grid"].file).unlink()
    (run / report.samples[1].file).write_bytes(b"not a png")
    written = sheets.build_contact_sheets(run, report)
    assert written[0].path.is_file()


def test_pick_method_prefers_request_then_best_then_the_pages_candidate(processed_run):
    _, report = processed_run
    report = replace(report, methods=["nearest", "grid", "grid-palette"],
                     best=replace(report.best, method="grid-palette"))
    assert sheets.pick_method(report, "nearest") == "nearest"
    assert sheets.pick_method(report) == "grid-palette"
    assert sheets.pick_method(replace(report, methods=["nearest", "grid"], best=None)) == "grid"
    # a folder without epochs shows what its page shows: grid-palette when it was computed
    assert sheets.pick_method(replace(report, methods=["nearest", "grid", "grid-palette"], best=None)) == "grid-palette"
    assert sheets.pick_method(replace(report, methods=[], best=None)) is None


def test_rows_follow_epochs_then_steps(processed_run):
    _, report = processed_run
    model = report.samples[0]
    samples = [replace(model, file="b", epoch=None, step=40, prompt_index=0),
               replace(model, file="a", epoch=2, step=None, prompt_index=1),
               replace(model, file="c", epoch=10, step=None, prompt_index=0)]
    rows, columns, grid = sheets.arrange(samples)
    assert [r.label for r in rows] == ["e2", "e10", "step 40"]
    assert columns == [0, 1]


def _panel(img: Image.Image, sheet, row: str, column: int, panel: int) -> Image.Image:
    """The picture square of panel `panel` (0 sample, 1 grid, 2 shown) of a cell."""
    x = sheets.LABEL_W + column * cells.cell_width(sheet.path.stem.removeprefix("contact_"))
    x += cells.PAD + panel * (cells.THUMB + cells.GAP)
    y = sheet.row_boxes[row][0] + cells.PAD + cells.PANEL_LABEL_H
    return img.crop((x, y, x + cells.THUMB, y + cells.THUMB))


def _cells_of(panel: Image.Image) -> np.ndarray:
    """A 96 px panel read back as 24x24 cells; each 4x4 block must be one colour (NEAREST, no smoothing)."""
    blocks = np.asarray(panel).reshape(24, cells.SCALE, 24, cells.SCALE, 3)
    assert (blocks == blocks[:, :1, :, :1]).all(), "a cell is not one colour: smoothed or misplaced"
    return blocks[:, 0, :, 0]


def _file_cells(path) -> np.ndarray:
    with Image.open(path) as img:
        return np.asarray(img.convert("RGB"))


def test_a_processed_run_shows_sample_then_grid_then_the_shown_candidate(tmp_path):
    run = simulated_run(tmp_path, "128-panels", resolution=128, prompts=2, epochs=2, process=False)
    report = process_path(run, ProcessOptions(methods="grid,grid-palette", palette="k:8", workers=1)).report
    first, second = sorted(report.samples, key=lambda s: s.file)[:2]  # e1, prompts 0 and 1
    assert (first.epoch, first.prompt_index, second.prompt_index) == (1, 0, 1)
    shown_file = run / first.candidates["grid-palette"].file
    with Image.open(shown_file) as img:  # a shown candidate unlike grid, so the panels cannot be confused
        Image.eval(img.convert("RGB"), lambda v: 255 - v).save(shown_file)
    second_shown = run / second.candidates["grid-palette"].file  # the second: exactly grid's pixels
    second_shown.write_bytes((run / second.candidates["grid"].file).read_bytes())
    sheet = sheets.build_contact_sheets(run, report, SheetOptions(method="grid-palette"))[0]
    assert sheet.size[0] == sheets.LABEL_W + 2 * cells.cell_width("grid-palette")
    with Image.open(sheet.path) as img, Image.open(run / first.file) as raw:
        img = img.convert("RGB")
        expected = raw.convert("RGB").resize((cells.THUMB, cells.THUMB), Image.Resampling.BOX)
        sample = _panel(img, sheet, "e1", 0, 0)
        assert np.abs(np.asarray(sample, float) - np.asarray(expected, float)).mean() < 2  # the sample, shrunk
        grid = _file_cells(run / first.candidates["grid"].file)
        assert np.array_equal(_cells_of(_panel(img, sheet, "e1", 0, 1)), grid)
        assert np.array_equal(_cells_of(_panel(img, sheet, "e1", 0, 2)), _file_cells(shown_file))
        assert not np.array_equal(grid, _file_cells(shown_file))
        assert np.array_equal(_cells_of(_panel(img, sheet, "e1", 1, 1)),
                              _file_cells(run / second.candidates["grid"].file))
        same = _panel(img, sheet, "e1", 1, 2)  # the same pixels as grid: said, not shown twice
        assert same.getpixel((2, 2)) == cells.SAME and max(same.getcolors(1 << 16))[1] == cells.SAME


def test_when_grid_is_shown_a_cell_has_two_panels_and_says_so(tmp_path):
    run = simulated_run(tmp_path, "128-grid", resolution=128, prompts=3, epochs=1, process=False)
    report = process_path(run, ProcessOptions(methods="grid", workers=1)).report
    sheet = sheets.build_contact_sheets(run, report, SheetOptions(method="grid"))[0]
    assert sheet.size[0] == sheets.LABEL_W + 3 * cells.cell_width("grid")
    assert cells.cell_width("grid") + cells.CAND_PX + cells.GAP == cells.cell_width("grid-palette")
    assert cells.panel_methods("grid") == ("grid",) and cells.panel_methods("nearest") == ("grid", "nearest")
    with Image.open(sheet.path) as img:
        img = img.convert("RGB")
        x = sheets.LABEL_W + cells.PAD + cells.THUMB + cells.GAP
        y = sheet.row_boxes["e1"][0] + cells.PAD
        heading = img.crop((x, y, x + cells.CAND_PX, y + cells.PANEL_LABEL_H))
        assert cells.SHOWN in {c for _, c in heading.getcolors(1 << 16)}  # "shown" under "grid"


def test_a_24px_picture_is_enlarged_crisply_and_its_grid_not_shown_twice(tmp_path):
    folder = tmp_path / "native"
    folder.mkdir()
    picture = np.full((24, 24, 3), (90, 130, 160), np.uint8)  # a blue background
    picture[6:20, 7:17] = (180, 120, 90)  # a face
    picture[10, 9] = picture[10, 14] = (20, 20, 20)  # eyes: one cell each
    Image.fromarray(picture, "RGB").save(folder / "e01_lad.png")
    report = process_path(folder, ProcessOptions(methods="grid", workers=1)).report
    sheet = sheets.build_contact_sheets(folder, report, SheetOptions(method="grid", out_dir=tmp_path / "s"))[0]
    with Image.open(sheet.path) as img:
        img = img.convert("RGB")
        row = sheet.rows[0].label
        assert np.array_equal(_cells_of(_panel(img, sheet, row, 0, 0)), picture)  # NEAREST x4, no smoothing
        assert _panel(img, sheet, row, 0, 1).getpixel((2, 2)) == cells.SAME
