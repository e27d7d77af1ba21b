"""anatomy's written-out helpers give numpy's general forms' very floats and indices."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
from punk_fixtures import punk

from bespoke.pixels.anatomy import (
    FEW_CELLS,
    _distinct_colours,
    mean_of,
    median_colour,
    most_unlike,
    nearest,
    read,
    sq_delta,
)


def test_sq_delta_is_numpys_sum_of_squares_bit_for_bit():
    rng = np.random.default_rng(0)
    # wide magnitudes, so that adding the squares in another order rounds differently (a quarter of these)
    a = rng.normal(size=(20000, 3)) * rng.choice([1e-3, 1.0, 100.0, 1e4], size=(20000, 3))
    b = rng.normal(size=(20000, 3)) * 50
    expected = ((a - b) ** 2).sum(axis=-1)
    assert [sq_delta(x, y) for x, y in zip(a.tolist(), b.tolist(), strict=True)] == expected.tolist()


def test_most_unlike_and_nearest_agree_with_numpy_on_few_and_many_cells():
    rng = np.random.default_rng(1)
    anatomy = read(punk())
    lab = rng.normal(size=(24, 24, 3)) * rng.choice([1e-2, 1.0, 1e3], size=(24, 24, 3))
    anatomy = replace(anatomy, lab=lab)
    colour = rng.normal(size=3) * 30
    for cells in (0, 1, 2, FEW_CELLS, FEW_CELLS + 1, 200):  # the Python path, its edge and numpy's
        mask = np.zeros((24, 24), dtype=bool)
        mask.ravel()[rng.choice(576, cells, replace=False)] = True
        roots = np.sqrt(((lab[mask] - colour) ** 2).sum(axis=-1))
        assert most_unlike(anatomy, mask, colour) == (float(roots.max()) if cells else 0.0)
        assert nearest(anatomy, mask, colour) == (float(roots.min()) if cells else None)


def test_distinct_colours_is_np_unique_of_the_packed_colours():
    rng = np.random.default_rng(2)
    for colours in (1, 2, 7, 40, 576):
        palette = rng.integers(0, 256, (colours, 3), dtype=np.uint8)
        palette[:, 1:] = rng.integers(0, 2, (colours, 2))  # colours that differ in one channel only
        cells = palette[rng.integers(0, colours, 576)].reshape(24, 24, 3)
        flat = cells.reshape(-1, 3).astype(np.int64)
        expected = np.unique(flat[:, 0] << 16 | flat[:, 1] << 8 | flat[:, 2], return_index=True,
                             return_inverse=True, return_counts=True)[1:]
        for got, want in zip(_distinct_colours(cells), expected, strict=True):
            assert got.dtype == np.intp and np.array_equal(got, want.reshape(-1))


def test_median_colour_is_np_median():
    rng = np.random.default_rng(3)
    for count in (1, 2, 3, 4, 9, 10):
        colours = rng.normal(size=(count, 3)) * 40
        colours[::2, 0] = 7.0  # ties
        assert np.array_equal(median_colour(colours), np.median(colours, axis=0))


def test_mean_of_is_np_mean():
    rng = np.random.default_rng(4)
    for count in range(1, 13):  # numpy's in-order sums, then its pairwise ones
        for _ in range(500):
            values = (rng.normal(size=count) * rng.choice([1e-8, 1.0, 1e8], size=count)).tolist()
            assert mean_of(values) == float(np.mean(values))
