"""Grid extraction and the faithful candidates on degraded generated punks and the user's samples (not timing)."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from bespoke.dataset.layout import layout_for
from bespoke.dataset.synthetic import make_punk
from bespoke.demo.degrade import degrade, stretch_nearest
from bespoke.errors import UsageError
from bespoke.pixels import palette as pal
from bespoke.pixels.downscale import _lattice, cell_colors, extract, pil_downscale
from bespoke.pixels.grid import Grid, find_grid
from bespoke.pixels.merge import TOLERANCE, cell_moves, moved_stats
from bespoke.pixels.metrics import off_palette

PUNKS = [make_punk(100 + i).pixels for i in range(6)]
PALETTE = pal.Palette("dataset", colors=np.unique(np.concatenate([p.reshape(-1, 3) for p in PUNKS]), axis=0))


def _dist(a, b):
    return np.sqrt(((a.astype(float) - b.astype(float)) ** 2).sum(axis=2))


def _ncolors(arr):
    return len(np.unique(arr.reshape(-1, 3), axis=0))


def test_exact_stretch_is_recovered_exactly():
    for truth in PUNKS[:3]:
        image, _ = degrade(truth, "nearest")
        grid = find_grid(np.asarray(image))
        assert grid.source == "detected" and grid.confidence > 0.5
        # flat pixel art has no noise to merge: every colour stays, with the palette or without
        plain, raw = extract(np.asarray(image), grid)
        snapped, _ = extract(np.asarray(image), grid, palette=PALETTE, raw=raw)
        assert np.array_equal(raw, truth) and np.array_equal(plain, truth) and np.array_equal(snapped, truth)
        assert np.array_equal(extract(np.asarray(image), grid, tolerance=0)[0], truth)


def test_shifted_jpeg_is_faithful_and_has_few_colours():
    rows = []
    for i, truth in enumerate(PUNKS):
        image, _ = degrade(truth, "shifted", seed=7 + i)
        arr = np.asarray(image)
        grid = find_grid(arr)
        plain, cells = extract(arr, grid)
        snapped, _ = extract(arr, grid, palette=PALETTE, raw=cells)
        for cand in (plain, snapped):
            assert moved_stats(cells, cand)["moved_beyond"] == 0
        near = pil_downscale(image, "nearest")
        rows.append(((_dist(plain, truth) <= 10).mean(), _ncolors(plain) / _ncolors(truth), _ncolors(near)))
    within, ratio, near_colours = np.mean(rows, axis=0)
    assert within >= 0.90 and ratio <= 1.3 and near_colours > 300


def test_shift_is_found():
    truth = PUNKS[0]
    image, (dx, dy) = degrade(truth, "shifted", seed=3)
    grid = find_grid(np.asarray(image))
    assert abs(grid.xs[0] - dx) <= 2 and abs(grid.ys[0] - dy) <= 2
    assert grid.cell_w == pytest.approx(512 / 24, rel=0.02)


def test_pad_layout_prior_and_flat_image():
    layout = layout_for("pad", 512)
    flat = np.full((512, 512, 3), 77, np.uint8)
    grid = find_grid(flat, layout)
    assert grid.source == "prior" and grid.xs[0] == layout.edges[0]
    out, _ = extract(flat, grid)
    assert out.shape == (24, 24, 3) and (out == 77).all()
    # prior edges are scaled when the sample is not at the training resolution
    grid = find_grid(np.full((256, 256, 3), 5, np.uint8), layout)
    assert grid.xs[-1] == pytest.approx(layout.edges[-1] / 2)


def _noisy_punk(truth, seed, spread=3.0):
    """The truth with per-cell noise (what the grid extraction hands the palette step)."""
    rng = np.random.default_rng(seed)
    return np.clip(truth + rng.normal(0, spread, truth.shape), 0, 255).astype(np.uint8)


def test_one_cell_feature_far_from_the_palette_survives():
    truth = PUNKS[0].copy()
    truth[10, 9] = (255, 0, 255)  # a 1-cell magenta eye highlight: no palette colour is anywhere near
    truth[10, 14] = (0, 255, 40)  # and a green one on the other eye
    cells = _noisy_punk(truth, 1)
    for palette in (None, PALETTE):
        out, _ = extract(stretch_array(cells), find_grid(stretch_array(cells)), palette=palette)
        assert cell_moves(cells, out).max() <= TOLERANCE + 1e-6
        for y, x in ((10, 9), (10, 14)):
            assert _dist(out[y:y + 1, x:x + 1], truth[y:y + 1, x:x + 1]).max() < 12
    assert off_palette(out, PALETTE.colors) >= 2 / 576  # kept, and counted as off-palette


def stretch_array(cells):
    return np.asarray(stretch_nearest(cells))


def test_global_cast_is_kept_not_repainted():
    truth = PUNKS[1]
    cast = np.array([14, -10, 12])  # SD tinted the whole picture
    cells = np.clip(truth.astype(int) + cast, 0, 255).astype(np.uint8)
    out = extract(stretch_array(cells), find_grid(stretch_array(cells)), palette=PALETTE)[0]
    assert moved_stats(cells, out)["moved_beyond"] == 0
    # the picture keeps its colours: the mean colour moved by less than a level or two, not by the cast
    assert np.abs(out.reshape(-1, 3).mean(0) - cells.reshape(-1, 3).mean(0)).max() < 2
    assert off_palette(out, PALETTE.colors) > 0.5  # and the report says it is off the training palette


@pytest.mark.parametrize("tolerance", [2.0, TOLERANCE, 12.0])
def test_never_moves_beyond_the_tolerance_on_random_cells(tolerance):
    rng = np.random.default_rng(int(tolerance))
    palette = pal.Palette("dataset", colors=rng.integers(0, 256, size=(4000, 3)).astype(np.uint8))
    for _ in range(3):
        cells = np.clip(rng.normal(128, 60, size=(24, 24, 3)), 0, 255).astype(np.uint8)
        cells[:8] = np.clip(rng.integers(0, 256, size=3) + rng.normal(0, 3, (8, 24, 3)), 0, 255)
        for p in (None, palette):
            out = extract(stretch_array(cells), find_grid(stretch_array(cells)), tolerance=tolerance, palette=p,
                          raw=cells)[0]
            assert cell_moves(cells, out).max() <= tolerance + 1e-6
            assert _ncolors(out) <= _ncolors(cells)


def test_big_palette_does_not_scatter_noise():
    base = PALETTE.colors.astype(int)
    rng = np.random.default_rng(0)
    near = base[:, None, :] + rng.integers(-6, 7, size=(len(base), 30, 3))
    big = pal.Palette("dataset", colors=np.unique(np.clip(np.concatenate([base, near.reshape(-1, 3)]), 0, 255)
                                                  .astype(np.uint8), axis=0))
    assert len(big.colors) > 2000
    for i, truth in enumerate(PUNKS):
        cells = _noisy_punk(truth, 10 + i, spread=1.5)
        grid = find_grid(stretch_array(cells))
        out = extract(stretch_array(cells), grid, palette=big, raw=cells)[0]
        assert moved_stats(cells, out)["moved_beyond"] == 0
        # noise does not scatter over the palette's neighbours: never more colours than grid's
        assert _ncolors(out) <= _ncolors(extract(stretch_array(cells), grid, raw=cells)[0]) <= _ncolors(truth) + 3


def test_kmeans_is_an_explicit_request():
    arr = np.zeros((24, 24, 3), np.uint8)
    arr[:, 12:] = (200, 50, 50)
    arr[5, 5] = (0, 255, 0)
    reduced = pal.kmeans_colors(arr, 2)
    assert _ncolors(reduced) == 2
    out, _ = extract(stretch_array(arr), find_grid(stretch_array(arr)), palette=pal.Palette("k", k=2), raw=arr)
    assert _ncolors(out) == 2 and moved_stats(arr, out)["moved_beyond"] == 1  # the green cell, reported


@pytest.mark.parametrize("spec,message", [("k:1", "k must be"), ("k:x", "k must be"), ("nowhere", "not 'dataset'")])
def test_palette_spec_errors(spec, message):
    with pytest.raises(UsageError, match=message):
        pal.parse_spec(spec)


def test_real_samples_are_faithful_with_few_colours(shared_dir):
    punks, samples = shared_dir / "bespoke_punks", sorted((shared_dir / "samples").glob("*.png"))
    if not punks.is_dir() or not samples:
        pytest.skip("shared dataset or samples absent")
    real = pal.Palette("dataset", colors=pal.palette_from_folder(punks))
    counts = []
    for path in samples:
        with Image.open(path) as img:
            arr = np.asarray(img.convert("RGB"))
        grid = find_grid(arr)
        raw = cell_colors(arr, grid)
        plain, _ = extract(arr, grid, raw=raw)
        snapped, _ = extract(arr, grid, palette=real, raw=raw)
        for out in (plain, snapped):
            assert moved_stats(raw, out)["moved_beyond"] == 0, path.name
        counts.append(_ncolors(snapped))
    assert np.median(counts) <= 30


def test_cell_colours_are_each_cells_lattice_median_rounded_half_up():
    # noise, so every cell's samples differ; a grid shifted partly off the image and cells of uneven width
    rng = np.random.default_rng(3)
    arr = rng.integers(0, 256, (200, 200, 3), dtype=np.uint8)
    xs = tuple(-4.0 + 8.6 * i + (1.5 if i % 5 == 0 else 0.0) for i in range(25))
    grid = Grid(xs, tuple(3.0 + 8.2 * i for i in range(25)), 1.0, "detected")
    ry, rx = _lattice(grid.ys, 200), _lattice(grid.xs, 200)
    expected = np.empty((24, 24, 3), np.uint8)
    for y in range(24):
        for x in range(24):
            samples = arr[np.ix_(ry[y], rx[x])].reshape(-1, 3).astype(np.float64)
            expected[y, x] = np.floor(np.median(samples, axis=0) + 0.5)
    assert np.array_equal(cell_colors(arr, grid), expected)
