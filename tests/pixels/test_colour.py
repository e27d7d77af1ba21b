"""CIELAB conversion and delta E (reference values from the CIE definitions, D65)."""

from __future__ import annotations

import numpy as np
import pytest

from bespoke.dataset.synthetic import make_punk
from bespoke.pixels.colour import (
    box_index,
    delta_e,
    lab_to_rgb,
    nearest_within,
    others_within,
    pairs_within,
    rgb_to_lab,
    unique_rgb,
)


def test_reference_values():
    assert rgb_to_lab([255, 255, 255]) == pytest.approx([100.0, 0.0, 0.0], abs=0.01)
    assert rgb_to_lab([0, 0, 0]) == pytest.approx([0.0, 0.0, 0.0], abs=0.01)
    assert rgb_to_lab([255, 0, 0]) == pytest.approx([53.24, 80.09, 67.20], abs=0.05)
    assert float(delta_e([0, 0, 0], [255, 255, 255])) == pytest.approx(100.0, abs=0.01)


def test_round_trip_every_level():
    rng = np.random.default_rng(0)
    rgb = rng.integers(0, 256, size=(5000, 3)).astype(np.uint8)
    assert np.array_equal(lab_to_rgb(rgb_to_lab(rgb)), rgb)


def test_nearest_within_matches_brute_force():
    rng = np.random.default_rng(1)
    points = rgb_to_lab(rng.integers(0, 256, size=(300, 3)))
    others = rgb_to_lab(rng.integers(0, 256, size=(4000, 3)))
    d = np.sqrt(((points[:, None] - others[None]) ** 2).sum(-1))
    expected = np.where(d.min(axis=1) <= 5.0, d.argmin(axis=1), -1)
    assert nearest_within(points, others, 5.0).tolist() == expected.tolist()
    assert (expected >= 0).sum() > 50  # the case is not trivially empty
    assert nearest_within(points[:0], others, 5.0).tolist() == []


def _same_pairs(points, others, radius):
    """pairs_within through box_index's table == through the sorted keys alone == brute force."""
    index = box_index(others, radius)
    assert index.table is not None
    with_table = pairs_within(points, others, radius, index)
    keys_only = pairs_within(points, others, radius, index._replace(table=None))
    for a, b in zip(with_table, keys_only, strict=True):
        assert a.dtype == b.dtype and np.array_equal(a, b)
    d2 = ((points[:, None].astype(np.float64) - others[None]) ** 2).sum(-1)
    assert sorted(zip(*np.nonzero(d2 <= radius * radius), strict=True)) == \
        sorted(zip(with_table[0].tolist(), with_table[1].tolist(), strict=True))
    assert np.array_equal(nearest_within(points, others, radius, index),
                          nearest_within(points, others, radius, index._replace(table=None)))
    return len(with_table[0])


def test_pairs_within_table_agrees_with_the_keys_on_cube_edges_and_outside():
    # a lattice of side radius / 2: every point on a cube boundary, exact ties, pairs at exactly the radius
    lattice = np.stack(np.meshgrid(*[np.arange(-10, 10.1, 2.5)] * 3), -1).reshape(-1, 3)
    assert _same_pairs(lattice, lattice, 5.0) > len(lattice)
    assert _same_pairs(lattice + 1e-12, np.concatenate([lattice, lattice]), 5.0) > len(lattice)
    rng = np.random.default_rng(4)
    others = rgb_to_lab(rng.integers(0, 256, size=(2500, 3)))  # more than one chunk of the table's build
    points = np.concatenate([rgb_to_lab(rng.integers(0, 256, size=(300, 3))), [[500.0, 0, 0], [-1e6, 1e6, 0]]])
    for radius in (2.5, 5.0, 10.0):
        assert _same_pairs(points, others, radius) > 50
    assert _same_pairs(points.astype(np.float32), others, 5.0) > 50
    assert _same_pairs(points[:0], others, 5.0) == 0


def test_unique_rgb_is_numpys_unique_of_rows():
    rng = np.random.default_rng(3)
    cells = rng.integers(0, 256, (24, 24, 3)).astype(np.uint8)
    cells[:12] = cells[12:]  # repeats
    cells[0, :4] = [[255, 0, 0], [0, 255, 0], [0, 0, 255], [255, 255, 255]]  # each channel's extreme
    colours, inverse, counts = unique_rgb(cells)
    want, want_inverse, want_counts = np.unique(cells.reshape(-1, 3), axis=0, return_inverse=True,
                                                return_counts=True)
    assert colours.dtype == np.uint8 and np.array_equal(colours, want)
    assert np.array_equal(inverse, want_inverse.reshape(-1)) and np.array_equal(counts, want_counts)
    assert np.array_equal(colours[inverse].reshape(cells.shape), cells)


def test_others_within_finds_every_pair_a_brute_force_finds_up_to_one_and_a_half_cubes():
    """others_within with an index of cubes of `size` finds the pairs within radii up to 1.5 x size, per point,
    on colours placed on cube edges and at exactly the radius along one axis (where cubes' rounding bites)."""
    rng = np.random.default_rng(4)
    size = 5.0
    others = np.concatenate([rng.uniform(-40, 90, (600, 3)), np.round(rng.uniform(-8, 8, (200, 3))) * size])
    points = np.concatenate([rng.uniform(-40, 90, (60, 3)), others[600:640], others[600:620] + [size, 0, 0],
                             others[620:640] - [0, 0, 1.5 * size]])
    index = box_index(others, size)
    for radius in (1.0, size, size * (1 + 1e-3), 1.5 * size, rng.uniform(0.5, 1.5 * size, len(points))):
        radii = np.broadcast_to(radius, (len(points),))
        d2 = ((points[:, None, :] - others[None, :, :]) ** 2).sum(axis=-1)
        want = np.sort(np.nonzero(d2 <= radii[:, None] ** 2)[1])
        assert len(want) >= 40 and np.array_equal(np.sort(others_within(points, others, radius, index)), want)
    with pytest.raises(ValueError):
        others_within(points, others, 1.6 * size, index)


def test_unique_rgb_is_numpys_unique_of_the_rows():
    rng = np.random.default_rng(5)
    for candidate in (make_punk(3).pixels, rng.integers(0, 256, (24, 24, 3), dtype=np.uint8),
                      np.full((24, 24, 3), 255, np.uint8), rng.integers(0, 2, (24, 24, 3), dtype=np.uint8) * 255):
        colours, inverse, counts = unique_rgb(candidate)
        expected = np.unique(candidate.reshape(-1, 3), axis=0, return_inverse=True, return_counts=True)
        assert colours.dtype == np.uint8
        for got, want in zip((colours, inverse, counts), expected, strict=True):
            assert np.array_equal(got, want.reshape(got.shape))
