"""Contact sheets: geometry, the best-epoch highlight, the SIMULATED banner, splitting wide sweeps."""

from __future__ import annotations

from dataclasses import replace

import pytest
from PIL import Image
from review_fixtures import fake_process, simulated_run

from bespoke.review import sheets
from bespoke.review.report import load_report
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
        cell_w = 2 * sheets.PAD + sheets.THUMB + sheets.GAP + 24 * sheets.SCALE
        cell_h = 2 * sheets.PAD + sheets.THUMB + sheets.TEXT_H
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
        y0 = sheet.row_boxes["e1"][0] + sheets.PAD
        x0 = sheets.LABEL_W + sheets.PAD + sheets.THUMB + sheets.GAP
        block = {img.getpixel((x0 + dx, y0 + dy)) for dx in range(sheets.SCALE) for dy in range(sheets.SCALE)}
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
    written = sheets.build_contact_sheets(run, report, SheetOptions(max_width=1300))  # room for 5 cells
    assert [len(s.columns) for s in written] == [5, 5]
    assert all(s.size[0] <= 1300 for s in written)
    assert sorted(c for s in written for c in s.columns) == list(range(10))
    assert [s.path.name for s in written] == ["contact_grid_part1.png", "contact_grid_part2.png"]
    narrow = sheets.build_contact_sheets(run, report, SheetOptions(max_width=1200, out_dir=run / "narrow"))  # 4
    assert [len(s.columns) for s in narrow] == [4, 3, 3]


def test_missing_or_broken_images_become_placeholders(processed_run):
    run, report = processed_run
    first = report.samples[0]
    (run / first.candidates["grid"].file).unlink()
    (run / report.samples[1].file).write_bytes(b"not a png")
    written = sheets.build_contact_sheets(run, report)
    assert written[0].path.is_file()


def test_pick_method_prefers_request_then_best_then_grid(processed_run):
    _, report = processed_run
    report = replace(report, methods=["nearest", "grid", "grid-palette"],
                     best=replace(report.best, method="grid-palette"))
    assert sheets.pick_method(report, "nearest") == "nearest"
    assert sheets.pick_method(report) == "grid-palette"
    assert sheets.pick_method(replace(report, methods=["nearest", "grid"], best=None)) == "grid"
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
