"""CIELAB and CIE76 delta E: the one place bespoke measures how different two colours look.

Every tolerance in bespoke (merging, palette snapping, how far a candidate moved a cell, novelty) is a
delta E in CIELAB (D65): about 1 is the smallest difference an eye sees side by side, 5 is a near match.
Written out (a dozen lines of numpy) rather than pulled from scikit-image/colour-science: bespoke needs only
this conversion, vectorised over a few hundred colours, and those libraries are large dependencies.
"""

from __future__ import annotations

from typing import Any, NamedTuple

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


def unique_rgb(rgb: ArrayLike) -> tuple[NDArray[np.uint8], NDArray[np.intp], NDArray[np.intp]]:
    """np.unique(rgb.reshape(-1, 3), axis=0, return_inverse=True, return_counts=True) of uint8 RGB, the same
    colours in the same (lexicographic) order: (colours, inverse, counts). Each colour packed in one int
    first: numpy's unique along an axis sorts rows as opaque records, several times slower."""
    flat = np.asarray(rgb).reshape(-1, 3)
    codes = (flat[:, 0].astype(np.int32) << 16) | (flat[:, 1].astype(np.int32) << 8) | flat[:, 2]
    packed, inverse, counts = np.unique(codes, return_inverse=True, return_counts=True)
    colours = np.stack([packed >> 16, (packed >> 8) & 255, packed & 255], axis=1).astype(np.uint8)
    return colours, inverse.reshape(-1), counts


def delta_e(a: ArrayLike, b: ArrayLike) -> NDArray[np.float64]:
    """CIE76 delta E between RGB colours `a` and `b` (0-255, broadcastable ...x3), elementwise."""
    return np.sqrt(((rgb_to_lab(a) - rgb_to_lab(b)) ** 2).sum(axis=-1))


def sq_distances(a: NDArray[Any], b: NDArray[Any]) -> NDArray[Any]:
    """Squared Euclidean distances between the rows of `a` (Nx3) and `b` (Mx3): NxM, float64 (float32 when
    both are float32).

    Per channel, without a matrix product: a BLAS call on these small matrices costs more than the sums
    (and its threads spin when the machine is busy), and no NxMx3 intermediate is built."""
    dtype = np.float32 if np.asarray(a).dtype == np.float32 and np.asarray(b).dtype == np.float32 else np.float64
    a = np.asarray(a, dtype=dtype)
    b = np.asarray(b, dtype=dtype)
    d2 = np.subtract.outer(a[:, 0], b[:, 0])
    d2 *= d2
    for c in (1, 2):
        diff = np.subtract.outer(a[:, c], b[:, c])
        diff *= diff
        d2 += diff
    return d2


_BOX_OFFSET, _BOX_SPAN = 1 << 12, 1 << 13  # box coordinates shifted positive, packed into one int64 key


class BoxIndex(NamedTuple):
    """Colours bucketed in cubes of `size` (CIELAB): their order by cube key, and the sorted keys."""

    size: float
    order: NDArray[np.intp]
    keys: NDArray[np.int64]


def _box_keys(boxes: NDArray[np.int64]) -> NDArray[np.int64]:
    b = boxes + _BOX_OFFSET
    return (b[..., 0] * _BOX_SPAN + b[..., 1]) * _BOX_SPAN + b[..., 2]


def box_index(others: NDArray[np.float64], size: float) -> BoxIndex:
    """A BoxIndex of `others` (Mx3 CIELAB) for searches within `size`."""
    keys = _box_keys(np.floor(others / size).astype(np.int64))
    order = np.argsort(keys, kind="stable")
    return BoxIndex(float(size), order, keys[order])


_NEIGHBOURS = np.stack(np.meshgrid(*[np.arange(-1, 2)] * 3, indexing="ij"), axis=-1).reshape(-1, 3)


def pairs_within(points: NDArray[np.float64], others: NDArray[np.float64], radius: float,
                 index: BoxIndex | None = None) -> tuple[NDArray[np.intp], NDArray[np.intp], NDArray[np.float64]]:
    """Every pair of a row of `points` (Nx3 CIELAB) and a row of `others` (Mx3) within `radius`: (point index,
    other index, squared distance), grouped by point in order. `index` is box_index(others, radius) when
    already built.

    Only the colours in the 27 cubes of side `radius` around a point are measured: a palette of thousands
    of colours against hundreds of cells costs a few thousand pairs, not a million."""
    n = len(points)
    if not n or not len(others):
        return np.zeros(0, dtype=np.intp), np.zeros(0, dtype=np.intp), np.zeros(0)
    if index is None or index.size != radius:
        index = box_index(others, radius)
    keys = _box_keys(np.floor(points / radius).astype(np.int64)[:, None, :] + _NEIGHBOURS[None])  # N x 27
    lo = np.searchsorted(index.keys, keys.ravel(), side="left")
    lengths = np.searchsorted(index.keys, keys.ravel(), side="right") - lo
    total = int(lengths.sum())
    owner = np.repeat(np.repeat(np.arange(n), len(_NEIGHBOURS)), lengths)  # grouped by point, in order
    starts = np.cumsum(lengths) - lengths
    cand = index.order[np.repeat(lo, lengths) + (np.arange(total) - np.repeat(starts, lengths))]
    d2 = np.zeros(total)
    for c in range(3):  # per channel: no total x 3 temporaries
        diff = points[owner, c] - others[cand, c]
        d2 += diff * diff
    near = d2 <= radius * radius
    return owner[near], cand[near], d2[near]


def nearest_within(points: NDArray[np.float64], others: NDArray[np.float64], radius: float,
                   index: BoxIndex | None = None) -> NDArray[np.intp]:
    """For each row of `points` (Nx3 CIELAB) the index of the nearest row of `others` (Mx3) within `radius`,
    or -1 (the first of equally near ones). `index` is box_index(others, radius) when already built."""
    out = np.full(len(points), -1, dtype=np.intp)
    owner, cand, d2 = pairs_within(points, others, radius, index)
    if not len(owner):
        return out
    seg_start = np.flatnonzero(np.r_[True, owner[1:] != owner[:-1]])
    best = np.minimum.reduceat(d2, seg_start)  # each point's nearest distance (its pairs are contiguous)
    at_best = np.flatnonzero(d2 == np.repeat(best, np.diff(np.append(seg_start, len(owner)))))
    first = np.unique(owner[at_best], return_index=True)[1]  # the first nearest of each point
    out[owner[at_best[first]]] = cand[at_best[first]]
    return out
