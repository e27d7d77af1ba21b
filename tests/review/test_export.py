"""`bespoke export`: PNG x1 and xS, GIMP/hex palettes, a sprite sheet and a manifest; bad input refused."""

from __future__ import annotations

import json

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image
from review_fixtures import fake_process, simulated_run

from bespoke.cli import main
from bespoke.errors import UsageError
from bespoke.review.export import ExportOptions, export_run, gpl_text, hex_text, palette_of
from bespoke.review.report import write_report
from bespoke.run.paths import RunPaths


@pytest.fixture
def run(tmp_path):
    return simulated_run(tmp_path / "outputs", "64-exp-11111111", resolution=64, prompts=3, epochs=3)


def test_export_of_the_best_epoch(run):
    report = json.loads((RunPaths(run).report_dir / "report.json").read_text())
    best = report["best"]["epoch"]
    result = export_run(run, options=ExportOptions(scale=8))
    out = result.out_dir
    assert out == run / "export" / f"e{best:03d}_grid"
    manifest = json.loads((out / "manifest.json").read_text())
    samples = {s["file"].split("/")[-1]: s for s in report["samples"] if s["epoch"] == best}
    assert len(manifest["images"]) == len(samples) == 3
    pixels = []
    for entry in manifest["images"]:
        sample = samples[entry["sample"]]
        assert entry["prompt"] == sample["prompt"] and entry["seed"] == sample["seed"]
        cand = np.asarray(Image.open(run / sample["candidates"]["grid"]["file"]).convert("RGB"))
        small = np.asarray(Image.open(out / entry["png"]).convert("RGB"))
        big = np.asarray(Image.open(out / entry["png_x8"]).convert("RGB"))
        assert small.shape == (24, 24, 3) and (small == cand).all()  # x1 is the candidate, exactly
        assert big.shape == (192, 192, 3) and (big[::8, ::8] == cand).all() and (big[7::8, 7::8] == cand).all()
        sheet = np.asarray(Image.open(out / "sheet.png").convert("RGB"))
        f = entry["frame"]
        assert (sheet[f["y"]:f["y"] + 24, f["x"]:f["x"] + 24] == cand).all()
        pixels.append(cand)
    colours = {tuple(int(v) for v in c) for img in pixels for c in img.reshape(-1, 3)}
    hex_lines = (out / "palette.hex").read_text().split()
    assert len(hex_lines) == manifest["palette_colours"] < len(colours) == manifest["image_colours"]
    from bespoke.pixels.colour import delta_e

    palette = np.array([[int(h[i:i + 2], 16) for i in (0, 2, 4)] for h in hex_lines])
    assert delta_e(np.array(sorted(colours))[:, None, :], palette[None]).min(axis=1).max() <= 5.0
    gpl = (out / "palette.gpl").read_text().splitlines()
    assert gpl[0] == "GIMP Palette" and len(gpl) == 5 + len(hex_lines)
    assert Image.open(out / "sheet_x8.png").size == tuple(8 * s for s in Image.open(out / "sheet.png").size)


def test_palette_most_used_first():
    img = np.zeros((2, 2, 3), dtype=np.uint8)
    img[0, 0] = (255, 0, 0)
    palette = palette_of([img])
    assert palette == [((0, 0, 0), 3), ((255, 0, 0), 1)]
    assert hex_text(palette) == "000000\nff0000\n"
    assert gpl_text(palette, "x").splitlines()[4] == "  0   0   0\t#000000 (3 px)"


def test_degenerate_samples_are_left_out_and_named(run):
    report = fake_process(run)
    target = next(s for s in report.samples if s.epoch == 2)
    target.degenerate = "nan-black"
    write_report(RunPaths(run).report_dir, report)
    result = export_run(run, epoch=2, process=False)
    assert len(result.manifest["images"]) == 2
    assert result.manifest["left_out"] == [{"sample": target.file, "reason": "degenerate (nan-black)"}]


def test_bad_input(run, tmp_path):
    with pytest.raises(UsageError, match="--epoch 9: .* has samples of epochs 1, 2, 3"):
        export_run(run, epoch=9)
    with pytest.raises(UsageError, match="--scale 0"):
        export_run(run, options=ExportOptions(scale=0))
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "mine.txt").write_text("keep me")
    with pytest.raises(UsageError, match="not empty and not a bespoke export"):
        export_run(run, options=ExportOptions(out_dir=busy))
    assert [p.name for p in busy.iterdir()] == ["mine.txt"]


def test_cli_export_twice_replaces_its_own_files(run, tmp_path):
    out = tmp_path / "exp"
    first = CliRunner().invoke(main, ["export", str(run), "--epoch", "1", "--out", str(out), "--scale", "4"])
    assert first.exit_code == 0, first.output
    assert f"export: {out}" in first.stdout
    assert (out / "png_x4").is_dir()
    again = CliRunner().invoke(main, ["export", str(run), "--epoch", "1", "--out", str(out), "--scale", "2",
                                      "--json"])
    assert again.exit_code == 0, again.output
    assert json.loads(again.stdout)["scale"] == 2
    assert not list((out / "png_x4").glob("*.png")) and len(list((out / "png_x2").glob("*.png"))) == 3
    bad = CliRunner().invoke(main, ["export", str(run), "--epoch", "7"])
    assert bad.exit_code == 2 and "--epoch 7" in bad.output


@pytest.fixture
def folder_of_samples(tmp_path):
    """Five 192 px samples whose names carry no epoch, as a user's folder of pictures, reviewed."""
    from bespoke.dataset.synthetic import make_punk

    folder = tmp_path / "my samples"
    folder.mkdir()
    for i in range(5):
        pixels = make_punk(700 + i).pixels
        Image.fromarray(pixels).resize((192, 192), Image.Resampling.NEAREST).save(folder / f"pick_{i}.png")
    reviewed = CliRunner().invoke(main, ["review", str(folder)])
    assert reviewed.exit_code == 0, reviewed.output
    return folder


def test_a_reviewed_folder_exports_its_one_set(folder_of_samples):
    done = CliRunner().invoke(main, ["export", str(folder_of_samples), "--json"])
    assert done.exit_code == 0, done.output
    manifest = json.loads(done.stdout)
    out = folder_of_samples / "bespoke_process" / "export" / f"e000_{manifest['method']}"
    assert manifest["out_dir"] == str(out) and manifest["epoch"] == 0
    assert sorted(e["sample"] for e in manifest["images"]) == [f"pick_{i}.png" for i in range(5)]
    assert len(list((out / "png").glob("*.png"))) == 5
    again = CliRunner().invoke(main, ["export", str(folder_of_samples), "--epoch", "0", "--no-process"])
    assert again.exit_code == 0, again.output
    assert "5 images" in again.stdout
    wrong = CliRunner().invoke(main, ["export", str(folder_of_samples), "--epoch", "3", "--no-process"])
    assert wrong.exit_code == 2
    assert "no epochs" in wrong.output and "--epoch 0" in wrong.output


def test_the_palette_merges_near_identical_colours_across_images():
    from bespoke.pixels.colour import delta_e
    from bespoke.review.export import merged_palette

    rng = np.random.default_rng(3)
    base = {"skin": (219, 177, 138), "hair": (40, 110, 60), "shirt": (30, 60, 170), "bg": (200, 200, 205)}
    images = []
    for _ in range(8):  # eight candidates: the same four colours, each drawn a hair differently per image
        img = np.zeros((24, 24, 3), dtype=np.uint8)
        for i, rgb in enumerate(base.values()):
            img[6 * i:6 * i + 6] = np.clip(np.array(rgb) + rng.integers(-2, 3, 3), 0, 255)
        images.append(img)
    images[0][3, 3] = (255, 255, 255)  # one eye highlight on one pixel: a colour of its own, kept
    exact = palette_of(images)
    merged = merged_palette(images)
    assert len(exact) > 20 and len(merged) == 5
    assert sum(n for _, n in merged) == 8 * 24 * 24
    assert merged[-1] == ((255, 255, 255), 1)
    colours = np.array([c for c, _ in merged])
    for c, _ in exact:  # every colour of the images is a near match (delta E 5) of a palette colour
        assert delta_e(np.array([c]), colours).min() <= 5.0


def test_export_says_how_many_colours_the_palette_has(run):
    done = CliRunner().invoke(main, ["export", str(run), "--epoch", "1", "--json"])
    assert done.exit_code == 0, done.output
    manifest = json.loads(done.stdout)
    out = run / "export" / "e001_grid"
    hex_lines = (out / "palette.hex").read_text().split()
    assert manifest["palette_colours"] == len(hex_lines) <= manifest["image_colours"]
    exact = {tuple(int(v) for v in c) for p in (out / "png").glob("*.png")
             for c in np.asarray(Image.open(p).convert("RGB")).reshape(-1, 3)}
    assert manifest["image_colours"] == len(exact)
    said = CliRunner().invoke(main, ["export", str(run), "--epoch", "1"])
    assert (f"palette of {len(hex_lines)} colours (the {len(exact)} colours of the images, near-identical ones "
            f"merged), sprite sheet {manifest['columns']} columns") in said.stdout
