"""CIELAB conversion and delta E (reference values from the CIE definitions, D65)."""

from __future__ import annotations

import numpy as np
import pytest

from bespoke.pixels.colour import delta_e, lab_to_rgb, nearest_within, rgb_to_lab


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
