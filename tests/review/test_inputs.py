"""Every input people have, through `process` and `review`: a folder of 24 px pictures, an sd-scripts
output_dir, any resolution whose cells are 2 px or more, a read-only folder, a drawing that is not pixel art,
a prompt per image; a copy caught on a new background a cell off; and the same score whatever the flags."""

from __future__ import annotations

import json
import stat

import numpy as np
import pytest
from PIL import Image

from bespoke.dataset.layout import layout_for
from bespoke.dataset.report import SCHEMA_VERSION
from bespoke.dataset.synthetic import make_punk, write_dataset
from bespoke.demo.degrade import degrade
from bespoke.errors import ProcessError
from bespoke.pixels.figure import background_mask
from bespoke.pixels.merge import reduce_colours
from bespoke.review.build import review_runs
from bespoke.review.process import process_path
from bespoke.review.request import ProcessOptions as Options

TERMS = {"composition", "clean_cells", "feature_contrast", "few_colours", "adherence", "pixel_art", "new"}


@pytest.fixture(scope="module")
def training(tmp_path_factory):
    """30 synthetic punks with their captions, as a user's training folder."""
    folder = tmp_path_factory.mktemp("punks")
    write_dataset(folder, count=30)
    return folder


def _stretch(pixels: np.ndarray, size: int = 512) -> Image.Image:
    return Image.fromarray(pixels).resize((size, size), Image.Resampling.NEAREST)


def _listing(folder):
    return sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*"))


def test_a_folder_of_24px_pictures_scores_each_as_its_own_candidate(tmp_path, training):
    folder = tmp_path / "eval_24px"
    folder.mkdir()
    for epoch in (1, 2):
        for name, seed in (("cash_lad", 500), ("green_lady", 501)):
            punk = make_punk(seed + 10 * epoch).pixels
            rng = np.random.default_rng(epoch)
            noisy = np.clip(punk.astype(int) + rng.integers(-3, 4, punk.shape), 0, 255).astype(np.uint8)
            prefix = "final_" if epoch == 2 else ""
            Image.fromarray(noisy).save(folder / f"{prefix}e{epoch:02d}_{name}.png")
    (folder / "e01_cash_lad.txt").write_text("pixel art, 24x24, portrait of bespoke punk lad, lime green hair\n")
    report = process_path(folder, Options(training=str(training), workers=1)).report
    assert not report.errors and len(report.samples) == 4
    assert [r.epoch for r in report.epochs] == [1, 2]
    by_name = {s.name: s for s in report.samples}
    first = by_name["e01_cash_lad"]
    assert first.grid.source == "native" and first.degenerate is None and first.label == "cash_lad"
    assert by_name["final_e02_cash_lad"].epoch == 2 and by_name["final_e02_cash_lad"].label == "cash_lad"
    with Image.open(folder / "e01_cash_lad.png") as img:
        pixels = np.asarray(img.convert("RGB"))
    with Image.open(folder / first.candidates["grid"].file) as img:
        assert (np.asarray(img) == reduce_colours(pixels)).all()  # the picture itself, its noise merged
    assert first.prompt == "pixel art, 24x24, portrait of bespoke punk lad, lime green hair"
    assert first.scoring.terms["pixel_art"] is None  # no larger sample to fit a grid to
    assert {t for t, v in first.scoring.terms.items() if v is not None} == TERMS - {"pixel_art"}
    assert by_name["e01_green_lady"].prompt is None and by_name["e01_green_lady"].scoring.terms["adherence"] is None
    assert report.prompts and report.prompts[0].prompt == first.prompt
    assert len(first.scoring.tags) == len(report.prompts[0].tags)
    assert report.best is not None and report.weights and "pixel_art" not in report.weights


def _output_dir(root, epochs=(1, 2, 3)):
    """An sd-scripts output_dir: checkpoints, sample/ with sd-scripts names, and the prompt file beside."""
    root.mkdir()
    (root / "sample").mkdir()
    (root / "prompts.txt").write_text("# the run's prompts\npixel art, 24x24, portrait of bespoke punk lad --d 7\n"
                                      "pixel art, 24x24, portrait of bespoke punk lady --d 8\n")
    for epoch in epochs:
        (root / (f"mylora-{epoch:06d}.safetensors" if epoch < epochs[-1] else "mylora.safetensors")).write_bytes(b"")
        for p in (0, 1):
            image = degrade(make_punk(700 + 10 * epoch + p).pixels, "soft", seed=epoch)[0]
            image.save(root / "sample" / f"mylora_e{epoch:06d}_{p:02d}_20251110000000_{7 + p}.png")
    return root


def test_an_sd_scripts_output_dir_is_processed_and_reviewed_like_a_run(tmp_path):
    root = _output_dir(tmp_path / "output_dir")
    before = _listing(root / "sample")
    report = process_path(root, Options(workers=1)).report
    assert [r.epoch for r in report.epochs] == [1, 2, 3] and len(report.samples) == 6
    assert {(s.prompt_index, s.seed) for s in report.samples} == {(0, 7), (1, 8)}
    assert report.samples[0].prompt == "pixel art, 24x24, portrait of bespoke punk lad"
    assert _listing(root / "sample") == before  # nothing among the samples
    assert (root / "bespoke_process" / "report" / "report.json").is_file()
    result = review_runs([root])
    assert result.html == root / "bespoke_process" / "report" / "index.html" and result.html.is_file()
    assert result.views[0].report.best is not None


@pytest.mark.parametrize("size", [48, 64, 100, 128, 256])
def test_any_resolution_whose_cells_are_2px_or_more(tmp_path, size):
    folder = tmp_path / f"at_{size}"
    folder.mkdir()
    punk = make_punk(42).pixels
    _stretch(punk, size).save(folder / "punk.png")
    sample = process_path(folder, Options(methods="grid", workers=1)).report.samples[0]
    assert sample.grid.source == "detected" and sample.degenerate is None
    with Image.open(folder / sample.candidates["grid"].file) as img:
        assert (np.asarray(img) == punk).all()  # exactly the picture the sample was drawn from


def test_cells_under_2px_are_one_line_naming_the_file(tmp_path):
    folder = tmp_path / "small"
    folder.mkdir()
    _stretch(make_punk(1).pixels, 30).save(folder / "thirty.png")
    _stretch(make_punk(2).pixels, 24).save(folder / "native.png")
    report = process_path(folder, Options(workers=1)).report
    assert [e.file for e in report.errors] == ["thirty.png"]
    assert "cells of 1.25 px, under 2" in report.errors[0].error and "\n" not in report.errors[0].error
    assert [s.name for s in report.samples] == ["native"]


def test_a_read_only_folder_needs_out_and_says_where(tmp_path):
    folder = tmp_path / "theirs"
    folder.mkdir()
    for i in range(2):
        degrade(make_punk(800 + i).pixels, "soft", seed=i)[0].save(folder / f"e{i + 1}_a.png")
    folder.chmod(stat.S_IRUSR | stat.S_IXUSR | stat.S_IRGRP | stat.S_IXGRP)
    try:
        before = _listing(folder)
        with pytest.raises(ProcessError) as error:
            process_path(folder, Options(workers=1))
        message = str(error.value)
        assert f"{folder}: read-only" in message and "--out" in message and str(folder / "bespoke_process") in message
        assert _listing(folder) == before  # nothing written
        out = tmp_path / "results"
        report = process_path(folder, Options(workers=1, out=str(out))).report
        assert (out / "report" / "report.json").is_file() and len(report.samples) == 2
        assert all((out / "candidates" / "grid").glob("*.png"))
        reviewed = review_runs([folder], out_dir=tmp_path / "page")  # review --out: the results go there too
        assert reviewed.html == tmp_path / "page" / "index.html" and (tmp_path / "page" / "report").is_dir()
        again = review_runs([out])  # the results folder is reviewed as the samples it was made from
        assert again.views[0].run_dir == folder and again.processed == [] and again.html == out / "index.html"
        assert _listing(folder) == before
        with pytest.raises(ProcessError, match="--out .*: cannot write there"):
            process_path(folder, Options(workers=1, out=str(folder / "inside"), force=True))
    finally:
        folder.chmod(stat.S_IRWXU)


def _lines_drawing() -> Image.Image:
    """A punk drawn over with lines 1 px wide every 6 px: lines thinner than a cell, no 24-cell picture."""
    arr = np.asarray(_stretch(make_punk(3).pixels)).copy()
    arr[::6] //= 3
    arr[:, ::6] //= 3
    return Image.fromarray(arr)


def test_a_drawing_in_lines_thinner_than_a_cell_is_flagged_and_never_scores(tmp_path):
    folder = tmp_path / "mixed"
    folder.mkdir()
    _lines_drawing().save(folder / "e1_lines.png")
    degrade(make_punk(901).pixels, "soft", seed=1)[0].save(folder / "e2_punk.png")
    report = process_path(folder, Options(workers=1)).report
    lines, punk = report.samples
    assert lines.grid.source == "detected" and lines.degenerate == "not-pixel-art" and not lines.clean
    assert lines.scoring.score == 0 and punk.degenerate is None and punk.scoring.score > 0
    assert report.best is not None and report.best.epoch == 2


def _prepared_run(root, training, samples: dict[int, list[Image.Image]]):
    """A bespoke run whose prepared dataset (512 px images, captions, palette, layout) is `training`'s punks."""
    from manifest_helpers import write_run_json

    prepared = root / "prepared"
    prepared.mkdir(parents=True)
    layout = layout_for("stretch", 512)
    names = sorted(p.stem for p in training.glob("*.png"))
    colours = set()
    for name in names:
        with Image.open(training / f"{name}.png") as img:
            pixels = np.asarray(img.convert("RGB"))
        colours |= {tuple(int(v) for v in c) for c in pixels.reshape(-1, 3)}
        _stretch(pixels).save(prepared / f"{name}.png")
        (prepared / f"{name}.txt").write_text((training / f"{name}.txt").read_text())
    (prepared / "prepare.json").write_text(json.dumps({
        "schema_version": SCHEMA_VERSION, "palette": ["#" + bytes(c).hex() for c in sorted(colours)],
        "images": [{"name": n} for n in names], "layout": layout.to_json()}))
    run = root / "run"
    write_run_json(run, id="run-512", status="finished", resolution=512,
                   dataset={"prepared_dir": str(prepared), "layout": layout.to_json()})
    (run / "config").mkdir()
    (run / "config" / "prompts.txt").write_text("pixel art, 24x24, portrait of bespoke punk lad, lime green hair\n"
                                                "pixel art, 24x24, portrait of bespoke punk lady, wearing golden "
                                                "earrings\n")
    sample = run / "model" / "sample"
    sample.mkdir(parents=True)
    for epoch, images in samples.items():
        for i, image in enumerate(images):
            image.save(sample / f"lora_e{epoch:06d}_{i % 2:02d}_20261122023155_{1 + i // 2}.png")
    return run


def _copy_on_new_background_moved(pixels: np.ndarray) -> np.ndarray:
    out = pixels.copy()
    out[background_mask(pixels)] = (250, 120, 200)
    return np.roll(out, (1, -1), axis=(0, 1))


def test_a_training_punk_on_a_new_background_a_cell_off_is_a_copy_and_scores_nothing(tmp_path, training):
    names = sorted(p.stem for p in training.glob("*.png"))
    originals = [np.asarray(Image.open(training / f"{n}.png").convert("RGB")) for n in names[:2]]
    copies = [_stretch(_copy_on_new_background_moved(p)) for p in originals]
    new = [degrade(make_punk(950 + i).pixels, "soft", seed=i)[0] for i in range(2)]
    run = _prepared_run(tmp_path, training, {1: copies, 2: new})
    report = process_path(run, Options(workers=1)).report
    rows = {r.epoch: r for r in report.epochs}
    first = [s for s in report.samples if s.epoch == 1]
    assert [s.scoring.novelty.nearest for s in first] == names[:2]
    assert all(s.scoring.novelty.near_copy and s.scoring.novelty.shift == [1, -1] for s in first)
    assert rows[1].near_copy_pct == 100 and rows[1].score.terms["new"] < 0.02 and rows[1].score.total < 0.02
    assert rows[2].near_copy_pct == 0 and rows[2].score.terms["new"] > 0.95
    assert report.best is not None and report.best.epoch == 2


@pytest.mark.slow
def test_the_score_is_the_same_whatever_palette_or_training_flags(tmp_path, training):
    samples = {e: [degrade(make_punk(960 + 10 * e + i).pixels, "shifted", seed=e + i)[0] for i in range(4)]
               for e in (1, 2)}
    run = _prepared_run(tmp_path, training, samples)
    elsewhere = tmp_path / "other_punks"
    write_dataset(elsewhere, count=10, seed=3)
    runs = [process_path(run, Options(workers=1, force=True, **flags)).report
            for flags in ({}, {"palette": "dataset"}, {"palette": "k:8"}, {"training": str(elsewhere)})]
    folder = tmp_path / "plain"
    (run / "model" / "sample").rename(folder)
    for image in folder.glob("*.png"):  # the same prompts, as a .txt beside each image
        image.with_suffix(".txt").write_text("pixel art, 24x24, portrait of bespoke punk lad, lime green hair")
    plain = [process_path(folder, Options(workers=1, force=True, training=str(training), **flags)).report
             for flags in ({}, {"palette": str(training)}, {"palette": "k:8"})]
    for reports in (runs, plain):
        first = reports[0]
        assert first.best is not None and {t for t, v in first.samples[0].scoring.terms.items() if v is not None} \
            >= {"composition", "adherence", "new"}
        for other in reports[1:]:
            assert [s.scoring.to_json() for s in other.samples] == [s.scoring.to_json() for s in first.samples]
            assert [r.score for r in other.epochs] == [r.score for r in first.epochs]
            assert other.best.to_json() | {"method": None} == first.best.to_json() | {"method": None}
