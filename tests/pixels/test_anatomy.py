"""anatomy's written-out helpers give what numpy's general forms give.

Floats are compared to within rounding, not bit for bit: on numpy 2.4 they are the same floats (same2's records
are), but the order numpy adds a few values in is numpy's detail, which a release may change."""

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


def close(got: float | None, want: float | None, scale: float = 1.0) -> bool:
    """Equal to within a few ulps of `scale` (the size of what was added)."""
    if got is None or want is None:
        return got is want
    return abs(got - want) <= 1e-13 * max(abs(scale), abs(want), 1e-300)


def test_sq_delta_is_numpys_sum_of_squares():
    rng = np.random.default_rng(0)
    a = rng.normal(size=(20000, 3)) * rng.choice([1e-3, 1.0, 100.0, 1e4], size=(20000, 3))
    b = rng.normal(size=(20000, 3)) * 50
    expected = ((a - b) ** 2).sum(axis=-1)
    got = [sq_delta(x, y) for x, y in zip(a.tolist(), b.tolist(), strict=True)]
    assert all(close(g, w) for g, w in zip(got, expected.tolist(), strict=True))


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
        assert close(most_unlike(anatomy, mask, colour), float(roots.max()) if cells else 0.0)
        assert close(nearest(anatomy, mask, colour), float(roots.min()) if cells else None)


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
            assert close(mean_of(values), float(np.mean(values)), scale=float(np.mean(np.abs(values))))
