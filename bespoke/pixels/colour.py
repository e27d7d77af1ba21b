"""CIELAB and CIE76 delta E: the one place bespoke measures how different two colours look.

Every tolerance in bespoke (merging, palette snapping, how far a candidate moved a cell, novelty) is a
delta E in CIELAB (D65): about 1 is the smallest difference an eye sees side by side, 5 is a near match.
Written out (a dozen lines of numpy) rather than pulled from scikit-image/colour-science: bespoke needs only
this conversion, vectorised over a few hundred colours, and those libraries are large dependencies.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

_M = np.array([[0.4124564, 0.3575761, 0.1804375],
               [0.2126729, 0.7151522, 0.0721750],
               [0.0193339, 0.1191920, 0.9503041]])
_WHITE = np.array([0.95047, 1.0, 1.08883])


def rgb_to_lab(rgb: ArrayLike) -> NDArray[np.float64]:
    """sRGB (0-255, ...x3) to CIELAB (L* a* b*, float64, D65): Euclidean distances there are CIE76 delta E."""
    c = np.asarray(rgb, dtype=np.float64) / 255.0
    c = np.where(c <= 0.04045, c / 12.92, ((c + 0.055) / 1.055) ** 2.4)
    xyz = c @ _M.T / _WHITE
    f = np.where(xyz > 216 / 24389, np.cbrt(xyz), (24389 / 27 * xyz + 16) / 116)
    return np.stack([116 * f[..., 1] - 16, 500 * (f[..., 0] - f[..., 1]), 200 * (f[..., 1] - f[..., 2])], axis=-1)


def lab_to_rgb(lab: ArrayLike) -> NDArray[np.uint8]:
    """CIELAB (D65, ...x3) back to sRGB uint8 (rounded, clipped to the gamut)."""
    lab = np.asarray(lab, dtype=np.float64)
    fy = (lab[..., 0] + 16) / 116
    f = np.stack([fy + lab[..., 1] / 500, fy, fy - lab[..., 2] / 200], axis=-1)
    xyz = np.where(f > 6 / 29, f**3, (116 * f - 16) / (24389 / 27)) * _WHITE
    c = np.clip(xyz @ np.linalg.inv(_M).T, 0.0, 1.0)
    c = np.where(c <= 0.0031308, 12.92 * c, 1.055 * c ** (1 / 2.4) - 0.055)
    return np.clip(np.rint(c * 255.0), 0, 255).astype(np.uint8)


def delta_e(a: ArrayLike, b: ArrayLike) -> NDArray[np.float64]:
    """CIE76 delta E between RGB colours `a` and `b` (0-255, broadcastable ...x3), elementwise."""
    return np.sqrt(((rgb_to_lab(a) - rgb_to_lab(b)) ** 2).sum(axis=-1))


def sq_distances(a: NDArray[Any], b: NDArray[Any]) -> NDArray[np.float64]:
    """Squared Euclidean distances between the rows of `a` (Nx3) and `b` (Mx3): NxM, never negative; no
    NxMx3 intermediate (a palette of thousands of colours against hundreds of cells)."""
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    d2 = (a * a).sum(1)[:, None] + (b * b).sum(1)[None, :] - 2.0 * a @ b.T
    return np.maximum(d2, 0.0)


def near_indices(points: NDArray[np.float64], others: NDArray[np.float64], radius: float) -> NDArray[np.intp]:
    """Indices of the rows of `others` (Mx3) within `radius` of some row of `points` (Nx3), sorted.

    Prefiltered on a lattice of `radius`-sized boxes (a few dozen boxes hold a candidate's hundreds of
    colours), so a palette of thousands of colours costs boxes x palette, not cells x palette."""
    if not len(points) or not len(others):
        return np.zeros(0, dtype=np.intp)
    boxes = np.unique(np.floor(points / radius), axis=0)
    centres = (boxes + 0.5) * radius
    reach = radius + radius * np.sqrt(3.0) / 2.0  # a point anywhere in its box, plus the radius
    maybe = np.flatnonzero((sq_distances(centres, others) <= reach * reach).any(axis=0))
    if not len(maybe):
        return maybe
    hit = (sq_distances(points, others[maybe]) <= radius * radius).any(axis=0)
    return maybe[hit]
