"""Grid extraction and palette steps: correctness on degraded generated punks (not timing)."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from bespoke.dataset.layout import layout_for
from bespoke.dataset.synthetic import make_punk
from bespoke.demo.degrade import degrade
from bespoke.errors import UsageError
from bespoke.pixels import palette as pal
from bespoke.pixels.downscale import cell_colors, extract, pil_downscale
from bespoke.pixels.grid import find_grid
from bespoke.pixels.metrics import off_palette

PUNKS = [make_punk(100 + i).pixels for i in range(6)]
PALETTE = pal.Palette("dataset", colors=np.unique(np.concatenate([p.reshape(-1, 3) for p in PUNKS]), axis=0))


def _dist(a, b):
    return np.sqrt(((a.astype(float) - b.astype(float)) ** 2).sum(axis=2))


def _score(level):
    rows = {"nearest": [], "grid": [], "grid-palette": []}
    for i, truth in enumerate(PUNKS):
        image, _ = degrade(truth, level, seed=7 + i)
        arr = np.asarray(image)
        grid = find_grid(arr)
        out, raw = extract(arr, grid)
        snapped, _ = extract(arr, grid, palette=PALETTE, raw=raw)
        for name, cand in (("nearest", pil_downscale(image, "nearest")), ("grid", out), ("grid-palette", snapped)):
            d = _dist(cand, truth)
            rows[name].append(((d == 0).mean(), d.mean(), (d <= 10).mean(), len(np.unique(cand.reshape(-1, 3), axis=0))))
    return {k: np.mean(v, axis=0) for k, v in rows.items()}


def test_exact_stretch_is_recovered_exactly():
    for truth in PUNKS[:3]:
        image, _ = degrade(truth, "nearest")
        grid = find_grid(np.asarray(image))
        assert grid.source == "detected" and grid.confidence > 0.5
        # without merging every cell colour survives; the palette keeps them all
        out, _ = extract(np.asarray(image), grid, merge=0, palette=PALETTE)
        assert np.array_equal(out, truth)
        # with merging, grid-palette may not bring back a colour grid merged away (never more colours than
        # grid), but it changes nothing else: the cells already are palette colours
        plain, raw = extract(np.asarray(image), grid)
        snapped, _ = extract(np.asarray(image), grid, palette=PALETTE, raw=raw)
        assert np.array_equal(snapped, plain)


def test_shifted_jpeg_meets_targets_and_beats_nearest():
    s = _score("shifted")
    exact, dist, within, colors = s["grid-palette"]
    assert exact >= 0.95 and dist <= 2.0
    assert s["grid"][2] >= 0.90
    assert s["nearest"][0] < 0.02 and s["nearest"][3] > 300
    assert s["grid"][3] < s["nearest"][3] / 5


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


def test_merge_snap_kmeans():
    arr = np.zeros((24, 24, 3), np.uint8)
    arr[:, :12] = (100, 100, 100)
    arr[:, 12:] = (200, 50, 50)
    arr[0, 0] = (101, 100, 100)  # a near duplicate
    merged = pal.merge_near(arr, 4.0)
    assert len(np.unique(merged.reshape(-1, 3), axis=0)) == 2 and tuple(merged[0, 0]) == (100, 100, 100)
    assert np.array_equal(pal.merge_near(arr, 0), arr)
    palette = np.array([[98, 103, 100], [205, 48, 52], [0, 0, 0]], np.uint8)
    snapped = pal.snap(arr, palette)
    assert set(map(tuple, snapped.reshape(-1, 3))) == {(98, 103, 100), (205, 48, 52)}
    noisy = arr.copy()
    noisy[5, 5] = (0, 255, 0)
    reduced = pal.kmeans_colors(noisy, 2)
    assert len(np.unique(reduced.reshape(-1, 3), axis=0)) == 2


@pytest.mark.parametrize("spec,message", [("k:1", "k must be"), ("k:x", "k must be"), ("nowhere", "not 'dataset'")])
def test_palette_spec_errors(spec, message):
    with pytest.raises(UsageError, match=message):
        pal.parse_spec(spec)


def _dense_palette(seed=0, per_colour=30, spread=6):
    """The punks' palette plus `per_colour` random neighbours within +-spread of every colour: thousands of
    colours, near-duplicates everywhere -- like the union palette of a real dataset (4019 colours)."""
    rng = np.random.default_rng(seed)
    base = PALETTE.colors.astype(int)
    near = base[:, None, :] + rng.integers(-spread, spread + 1, size=(len(base), per_colour, 3))
    return np.unique(np.clip(np.concatenate([base, near.reshape(-1, 3)]), 0, 255).astype(np.uint8), axis=0)


def _ncolors(arr):
    return len(np.unique(arr.reshape(-1, 3), axis=0))


@pytest.mark.parametrize("level", ["soft", "shifted"])
def test_big_palette_never_adds_colours(level):
    big = pal.Palette("dataset", colors=_dense_palette())
    assert len(big.colors) > 2000
    plain_counts, snapped_counts, truth_counts = [], [], []
    for i, truth in enumerate(PUNKS):
        image, _ = degrade(truth, level, seed=7 + i)
        arr = np.asarray(image)
        grid = find_grid(arr)
        plain, raw = extract(arr, grid)
        snapped, _ = extract(arr, grid, palette=big, raw=raw)
        assert _ncolors(snapped) <= _ncolors(plain)
        assert off_palette(snapped, big.colors) == 0.0
        assert _dist(snapped, truth).mean() < 6
        plain_counts.append(_ncolors(plain))
        snapped_counts.append(_ncolors(snapped))
        truth_counts.append(_ncolors(truth))
    # noise no longer scatters a drawn colour over its palette neighbours: about the true count, far below grid
    assert np.mean(snapped_counts) <= np.mean(truth_counts) + 3
    assert np.mean(snapped_counts) < 0.7 * np.mean(plain_counts)


@pytest.mark.parametrize("merge", [0.0, 4.0, 12.0])
def test_snap_bound_holds_on_random_cells(merge):
    rng = np.random.default_rng(int(merge))
    palette = rng.integers(0, 256, size=(4000, 3)).astype(np.uint8)
    for _ in range(3):
        cells = np.clip(rng.normal(128, 60, size=(24, 24, 3)), 0, 255).astype(np.uint8)
        cells[:8] = rng.integers(0, 256, size=3)  # a flat area, as in a punk's background
        merged = pal.merge_near(cells, merge)
        snapped = pal.snap(cells, palette, merged)
        assert _ncolors(snapped) <= _ncolors(merged)


def test_far_colours_stay_off_palette():
    cells = np.zeros((24, 24, 3), np.uint8)
    cells[:, :12] = (101, 99, 100)
    cells[:, 12:] = (0, 255, 0)  # nothing green in the palette
    palette = np.array([[100, 100, 100], [96, 104, 100], [255, 0, 0]], np.uint8)
    snapped = pal.snap(cells, palette)
    assert set(map(tuple, snapped.reshape(-1, 3))) == {(100, 100, 100), (0, 255, 0)}
    assert off_palette(snapped, palette) == pytest.approx(0.5)
    # a bound wide enough makes the green cells snap too (to the nearest palette colour there is)
    wide = pal.snap(cells, palette, max_distance=400)
    assert off_palette(wide, palette) == 0.0


def test_real_palette_never_adds_colours_on_shared_samples(shared_dir):
    punks, samples = shared_dir / "bespoke_punks", sorted((shared_dir / "samples").glob("*.png"))
    if not punks.is_dir() or not samples:
        pytest.skip("shared dataset or samples absent")
    real = pal.Palette("dataset", colors=pal.palette_from_folder(punks))
    assert len(real.colors) > 1000
    plain_counts, snapped_counts = [], []
    for path in samples:
        with Image.open(path) as img:
            arr = np.asarray(img.convert("RGB"))
        grid = find_grid(arr)
        raw = cell_colors(arr, grid)
        plain, _ = extract(arr, grid, raw=raw)
        snapped, _ = extract(arr, grid, palette=real, raw=raw)
        assert _ncolors(snapped) <= _ncolors(plain), path.name
        plain_counts.append(_ncolors(plain))
        snapped_counts.append(_ncolors(snapped))
    assert np.mean(snapped_counts) < np.mean(plain_counts)
