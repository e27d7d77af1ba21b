"""The shown candidate never adds noise: the palette step merges whole colours of the faithful reduction, never
splits one, never moves a flat region visibly, never has more colours; on constructed cells and the user's samples."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from bespoke.dataset.synthetic import make_punk
from bespoke.pixels import merge
from bespoke.pixels import palette as pal
from bespoke.pixels.colour import box_index, delta_e, rgb_to_lab, sq_distances, unique_rgb
from bespoke.pixels.downscale import cell_colors, extract
from bespoke.pixels.grid import find_grid
from bespoke.pixels.merge import INVISIBLE, TOLERANCE, cell_moves, reduce_colours, snap_to_palette

PUNKS = [make_punk(300 + i).pixels for i in range(6)]


def _noisy(truth: np.ndarray, seed: int, spread: float = 2.5) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.clip(truth + rng.normal(0, spread, truth.shape), 0, 255).astype(np.uint8)


def _near_palette(colours: np.ndarray, seed: int, reach: int = 6, per: int = 30) -> np.ndarray:
    """Every colour and `per` colours within `reach` RGB levels of it: a palette with a neighbour near any noise."""
    rng = np.random.default_rng(seed)
    near = colours.astype(int)[:, None, :] + rng.integers(-reach, reach + 1, size=(len(colours), per, 3))
    return np.unique(np.clip(np.concatenate([colours.astype(int), near.reshape(-1, 3)]), 0, 255).astype(np.uint8),
                     axis=0)


def _codes(picture: np.ndarray) -> np.ndarray:
    flat = picture.reshape(-1, 3).astype(np.int64)
    return flat[:, 0] << 16 | flat[:, 1] << 8 | flat[:, 2]


def assert_adds_no_noise(cells: np.ndarray, grid: np.ndarray, shown: np.ndarray) -> None:
    """Every colour of `grid` is one colour in `shown`; no more colours; a colour on two or more cells moved at
    most INVISIBLE; every cell within the tolerance of the colour drawn."""
    g, s = _codes(grid), _codes(shown)
    colours, counts = np.unique(g, return_counts=True)
    for colour, count in zip(colours, counts, strict=True):
        taken = np.unique(s[g == colour])
        assert len(taken) == 1, f"grid colour {colour:06x} split into {len(taken)}"
        if count >= 2 and taken[0] != colour:
            rgb = [[colour >> 16, colour >> 8 & 255, colour & 255], [taken[0] >> 16, taken[0] >> 8 & 255, taken[0] & 255]]
            assert delta_e(rgb[0], rgb[1]) <= INVISIBLE + 1e-6
    assert len(np.unique(s)) <= len(colours)
    assert cell_moves(cells, shown).max() <= TOLERANCE + 1e-6


@pytest.mark.parametrize("seed", range(4))
def test_a_palette_near_every_noise_colour_adds_no_noise(seed):
    """The old snap's failure: a big palette has a colour near any noisy cell, and snapping cell by cell split
    flat regions into blotches and halos. Merging whole colours cannot."""
    truth = PUNKS[seed]
    cells = _noisy(truth, seed)
    palette = _near_palette(np.unique(truth.reshape(-1, 3), axis=0), seed)
    grid = reduce_colours(cells)
    shown = snap_to_palette(grid, cells, palette)
    assert_adds_no_noise(cells, grid, shown)


def test_a_flat_region_is_not_moved_as_a_whole():
    """A background drawn in one colour near (delta E ~3) but not on a palette colour stays as drawn."""
    cells = np.zeros((24, 24, 3), np.uint8)
    cells[:] = (120, 160, 200)
    cells[8:16, 8:16] = (200, 80, 60)
    palette = np.array([[124, 164, 196], [200, 80, 60]], np.uint8)
    assert 2 < delta_e([120, 160, 200], [124, 164, 196]) < TOLERANCE
    grid = reduce_colours(cells)
    shown = snap_to_palette(grid, cells, palette)
    assert np.array_equal(shown, cells)


def test_specks_merge_into_one_palette_colour():
    """Two one-cell colours both within the tolerance of one palette colour become it (one colour fewer); a third
    that would have to move beyond the tolerance keeps its colour, and so does a feature far from the palette."""
    rng = np.random.default_rng(0)
    cells = np.clip(np.array([40, 90, 150]) + rng.normal(0, 1.0, (24, 24, 3)), 0, 255).astype(np.uint8)
    red = (200, 60, 60)
    cells[3, 3], cells[3, 20] = (207, 58, 61), (193, 62, 59)  # two specks 6.7 apart, each 3.3 from the palette red
    cells[20, 3] = (255, 0, 255)  # a 1-cell feature no palette colour is near
    cells[20, 20] = (226, 60, 60)  # a red speck beyond the tolerance of the palette red
    assert delta_e(cells[3, 3], cells[3, 20]) > TOLERANCE and delta_e(cells[20, 20], red) > TOLERANCE
    palette = np.array([red, [0, 0, 0]], np.uint8)
    grid = reduce_colours(cells)
    shown = snap_to_palette(grid, cells, palette)
    assert_adds_no_noise(cells, grid, shown)
    assert tuple(shown[3, 3]) == tuple(shown[3, 20]) == red
    assert tuple(shown[20, 3]) == (255, 0, 255) and tuple(shown[20, 20]) == tuple(grid[20, 20])
    assert len(np.unique(_codes(shown))) == len(np.unique(_codes(grid))) - 1


def test_a_colour_on_the_palette_stays():
    """A colour drawn exactly on the palette is the training colour: it never moves to a neighbour."""
    cells = np.zeros((24, 24, 3), np.uint8)
    cells[:] = (100, 100, 100)
    cells[5, 5] = (103, 101, 100)
    palette = np.array([[100, 100, 100], [102, 101, 100], [103, 101, 100]], np.uint8)
    shown = snap_to_palette(reduce_colours(cells), cells, palette)
    assert np.array_equal(shown, cells)


def test_flat_pixel_art_comes_back_exactly():
    """An exact stretch of pixel art has no noise: every colour, every 1-cell detail, exactly."""
    for truth in PUNKS:
        assert np.array_equal(reduce_colours(truth), truth)
        palette = np.unique(truth.reshape(-1, 3), axis=0)
        assert np.array_equal(snap_to_palette(truth, truth, palette), truth)


def test_never_more_colours_than_grid_on_random_cells():
    rng = np.random.default_rng(5)
    palette = pal.Palette("dataset", colors=rng.integers(0, 256, size=(4000, 3)).astype(np.uint8))
    for _ in range(4):
        cells = np.clip(rng.normal(128, 60, size=(24, 24, 3)), 0, 255).astype(np.uint8)
        cells[:10] = np.clip(rng.integers(0, 256, size=3) + rng.normal(0, 3, (10, 24, 3)), 0, 255)
        grid = reduce_colours(cells)
        shown = snap_to_palette(grid, cells, palette.colors, palette.lab, TOLERANCE, palette.index(TOLERANCE))
        assert_adds_no_noise(cells, grid, shown)


def test_real_samples_shown_candidate_adds_no_noise(shared_dir):
    """On every real sample (512 px and the user's 24 px images): the shown candidate against grid."""
    punks = shared_dir / "bespoke_punks"
    paths = [p for folder in ("samples", "runs/keep_tokens_3/sample", "baseline/caption_fix_eval_24px")
             for p in sorted((shared_dir / folder).glob("*.png"))]
    if not punks.is_dir() or not paths:
        pytest.skip("shared dataset or samples absent")
    palette = pal.Palette("dataset", colors=pal.palette_from_folder(punks))
    for path in paths:
        with Image.open(path) as img:
            arr = np.asarray(img.convert("RGB"))
        found = find_grid(arr)
        cells = cell_colors(arr, found)
        grid = extract(arr, found, raw=cells)[0]
        shown = extract(arr, found, palette=palette, raw=cells)[0]
        assert_adds_no_noise(cells, grid, shown)
        assert np.abs(rgb_to_lab(shown).mean(axis=(0, 1)) - rgb_to_lab(grid).mean(axis=(0, 1))).max() < 1.0, path.name


def _reduce_on_the_full_matrix(cells: np.ndarray, tolerance: float) -> np.ndarray:
    """reduce_colours as first written: the full float32 distance matrix, the greedy cover in colour order
    (first of equal gains), each colour to its nearest chosen one. The tiled, L*-sorted reduction must equal it."""
    colours, inverse, counts = unique_rgb(cells)
    if merge.is_flat(counts):
        return cells
    lab = rgb_to_lab(colours)
    d2 = sq_distances(lab.astype(np.float32), lab.astype(np.float32))
    within = d2 <= tolerance * tolerance
    uncovered = np.ones(len(colours), dtype=bool)
    chosen = []
    while uncovered.any():
        best = int(np.argmax(within[:, uncovered] @ counts[uncovered]))
        chosen.append(best)
        uncovered &= ~within[best]
    label = d2[chosen].argmin(axis=0)
    rgb = merge._settle(lab, counts.astype(np.float64), label, colours[chosen], tolerance)
    return rgb[label][inverse].reshape(cells.shape)


def test_the_tiled_reduction_equals_the_full_matrix_one():
    """Edges of the tiled reduction: several tiles of colours, equal gains everywhere (each colour once, so the
    tie-break by colour index decides), tolerances at exactly a pair's float32 distance, a cluster wider in L*
    than the tolerance."""
    rng = np.random.default_rng(7)
    cases = [np.clip(truth + rng.normal(0, 4.0, truth.shape), 0, 255).astype(np.uint8) for truth in PUNKS[:3]]
    cases.append(rng.integers(0, 256, (24, 24, 3)).astype(np.uint8))  # 576 colours, once each: all gains tie
    cases.append(np.clip(rng.normal(128, 6, (24, 24, 3)), 0, 255).astype(np.uint8))  # one wide cloud of noise
    cases.append(rng.integers(100, 104, (24, 24, 3)).astype(np.uint8))  # 64 colours, many ties, a single tile
    for cells in cases:
        lab32 = rgb_to_lab(unique_rgb(cells)[0]).astype(np.float32)
        pairs = np.sqrt(sq_distances(lab32[:40], lab32[40:80]).ravel())
        for tolerance in (TOLERANCE, 2.0, 12.0, *[float(d) for d in pairs[pairs < 15][:4]]):
            assert np.array_equal(reduce_colours(cells, tolerance), _reduce_on_the_full_matrix(cells, tolerance))


def test_snap_options_measure_the_cells_where_they_matter_as_the_full_matrix_would():
    """allowed from the pairs a colour may take (moved at most INVISIBLE, or on one cell) equals the test on
    every colour x palette option pair: every drawn cell within the tolerance of the option."""
    rng = np.random.default_rng(11)
    for truth in PUNKS[:3]:
        cells = np.clip(truth + rng.normal(0, 2.0, truth.shape), 0, 255).astype(np.uint8)
        reduced = reduce_colours(cells)
        palette = _near_palette(np.unique(truth.reshape(-1, 3), axis=0), 3, reach=3)
        palette_lab = rgb_to_lab(palette)
        colours, inverse, counts = unique_rgb(reduced)
        options, allowed = merge._snap_options((colours, inverse, counts), cells, palette, palette_lab, TOLERANCE, None)
        option_lab = palette_lab[options].astype(np.float32)
        cell_d2 = sq_distances(rgb_to_lab(cells.reshape(-1, 3)).astype(np.float32), option_lab)
        worst = np.stack([cell_d2[inverse == c].max(axis=0) for c in range(len(colours))])
        move = sq_distances(rgb_to_lab(colours).astype(np.float32), option_lab)
        want = (worst <= TOLERANCE ** 2) & ((move <= INVISIBLE ** 2) | (counts == 1)[:, None])
        codes, option_codes = _codes(colours), _codes(palette[options])
        same = codes[:, None] == option_codes[None, :]
        want &= np.where(same.any(axis=1)[:, None], same, True)
        assert want.any() and (counts == 1).any() and np.array_equal(allowed, want)


def _cover_one_at_a_time(within: np.ndarray, counts: np.ndarray, index: np.ndarray) -> list[int]:
    """The greedy cover picked one row at a time: the highest gain, of equal gains the lowest colour index."""
    uncovered = np.ones(len(counts), dtype=bool)
    chosen = []
    while uncovered.any():
        gains = within[:, uncovered] @ counts[uncovered]
        best = max(range(len(counts)), key=lambda r: (gains[r], -index[r]))
        chosen.append(best)
        uncovered &= ~within[best]
    return chosen


def test_the_cover_in_rounds_picks_what_one_at_a_time_picks():
    """merge._cover takes every local maximum of a round at once: the same rows in the same order as the greedy
    one pick at a time, on chains (each row's pick lowers the next one's gain), equal gains everywhere,
    separate clusters, heavy colours, and random neighbourhoods."""
    rng = np.random.default_rng(5)
    cases = []
    for n, spread, radius in ((40, 1.0, 0.08), (120, 1.0, 0.15), (200, 0.3, 0.05), (60, 1.0, 2.0)):
        points = rng.random((n, 2)) * spread
        cases.append(((points[:, None] - points[None]) ** 2).sum(-1) <= radius ** 2)
    chain = np.abs(np.arange(30)[:, None] - np.arange(30)[None]) <= 1
    cases += [chain, np.eye(25, dtype=bool), np.kron(np.eye(4, dtype=bool), np.ones((6, 6), dtype=bool))]
    for within in cases:
        n = len(within)
        for counts in (np.ones(n), rng.integers(1, 6, n).astype(np.float64), np.arange(n, 0, -1.0)):
            index = rng.permutation(n)
            assert merge._cover(within, counts, index).tolist() == _cover_one_at_a_time(within, counts, index)


def test_the_snaps_early_exit_is_taken_only_where_the_general_path_changes_nothing(monkeypatch):
    """merge._none_shared (no palette colour can take two colours) says so only where the snap's general path
    returns the reduction unchanged; on noisy punks against palettes from a hair to the tolerance away, the
    reduction's own colours, single-cell colours and palettes holding the reduction (both answers seen)."""
    rng = np.random.default_rng(21)
    cases = []
    for n, truth in enumerate(PUNKS):
        for spread, reach, per in ((1.0, 1, 2), (2.0, 2, 4), (2.5, 4, 8), (4.0, 8, 30)):
            cells = _noisy(truth, 100 * n + reach, spread)
            reduced = reduce_colours(cells)
            specks = np.clip(reduced.reshape(-1, 3)[rng.choice(576, 8)].astype(int)
                             + rng.integers(-3, 4, (8, 3)), 0, 255).astype(np.uint8)
            colours = unique_rgb(reduced)[0]
            lab = rgb_to_lab(colours)
            nearest = np.argsort(sq_distances(lab, lab), axis=1)[:, 1]  # each colour's nearest other one
            between = ((colours.astype(int) + colours[nearest]) // 2).astype(np.uint8)  # two may become it
            for palette in (_near_palette(colours, n + reach, reach, per), between, between[::3],
                            _near_palette(unique_rgb(cells)[0][::7], n, reach, 1), np.concatenate([specks, specks])):
                cases.append((reduced, cells, np.unique(palette, axis=0)))
    answers = []
    for reduced, cells, palette in cases:
        palette_lab = rgb_to_lab(palette)
        index = box_index(palette_lab, TOLERANCE)
        early = merge._none_shared(unique_rgb(reduced), cells, palette_lab, TOLERANCE, index)
        with monkeypatch.context() as patch:
            patch.setattr(merge, "_none_shared", lambda *args: False)
            general = snap_to_palette(reduced, cells, palette, palette_lab, TOLERANCE, index)
        if early:
            assert np.array_equal(general, reduced)
            assert np.array_equal(snap_to_palette(reduced, cells, palette, palette_lab, TOLERANCE, index), general)
        answers.append((early, np.array_equal(general, reduced)))
    assert (True, True) in answers and (False, False) in answers
