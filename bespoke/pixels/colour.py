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


def _linear(c: NDArray[np.float64]) -> NDArray[np.float64]:
    """sRGB (0-1) to linear light, elementwise."""
    return np.where(c <= 0.04045, c / 12.92, ((c + 0.055) / 1.055) ** 2.4)


# every 8-bit level's linear light: the same elementwise arithmetic as _linear on the level / 255, so a uint8
# lookup gives the very same floats without a power per channel per pixel
_LINEAR_OF_LEVEL = _linear(np.arange(256, dtype=np.float64) / 255.0)
_M_INV = np.linalg.inv(_M)


def rgb_to_lab(rgb: ArrayLike) -> NDArray[np.float64]:
    """sRGB (0-255, ...x3) to CIELAB (L* a* b*, float64, D65): Euclidean distances there are CIE76 delta E."""
    if isinstance(rgb, np.ndarray) and rgb.dtype == np.uint8:
        c = _LINEAR_OF_LEVEL[rgb]
    else:
        c = _linear(np.asarray(rgb, dtype=np.float64) / 255.0)
    xyz = c @ _M.T  # as it is: BLAS rounds a row differently with the row count, every caller's results with it
    xyz /= _WHITE
    f = np.cbrt(xyz)
    dark = xyz <= 216 / 24389  # the linear segment: only the darkest colours (few), computed for them alone
    if dark.any():
        f[dark] = (24389 / 27 * xyz[dark] + 16) / 116
    lab = np.empty_like(f)  # channel by channel into one array: cheaper than np.stack of the three
    fy = f[..., 1]
    lab[..., 0] = 116 * fy - 16
    lab[..., 1] = 500 * (f[..., 0] - fy)
    lab[..., 2] = 200 * (fy - f[..., 2])
    return lab


def lab_to_rgb(lab: ArrayLike) -> NDArray[np.uint8]:
    """CIELAB (D65, ...x3) back to sRGB uint8 (rounded, clipped to the gamut)."""
    lab = np.asarray(lab, dtype=np.float64)
    fy = (lab[..., 0] + 16) / 116
    f = np.empty_like(lab)  # f_x, f_y, f_z channel by channel: cheaper than np.stack of the three
    f[..., 0] = fy + lab[..., 1] / 500
    f[..., 1] = fy
    f[..., 2] = fy - lab[..., 2] / 200
    cube = f**3
    dark = f <= 6 / 29  # each piecewise curve's linear segment computed only where it applies
    if dark.any():
        cube[dark] = (116 * f[dark] - 16) / (24389 / 27)
    c = (cube * _WHITE) @ _M_INV.T
    np.maximum(c, 0.0, out=c)  # clipped to the gamut
    np.minimum(c, 1.0, out=c)
    dark = c <= 0.0031308
    gamma = 1.055 * c ** (1 / 2.4) - 0.055
    if dark.any():
        gamma[dark] = 12.92 * c[dark]
    c = gamma
    # c is within [0, 1] here (1.055 - 0.055 rounds to 1): the levels are within 0-255 without a clip
    return np.rint(c * 255.0).astype(np.uint8)


def unique_rgb(rgb: ArrayLike) -> tuple[NDArray[np.uint8], NDArray[np.intp], NDArray[np.intp]]:
    """np.unique(rgb.reshape(-1, 3), axis=0, return_inverse=True, return_counts=True) of uint8 RGB, the same
    colours in the same (lexicographic) order: (colours, inverse, counts). Each colour packed in one int and
    the rest from one argsort: numpy's unique along an axis sorts rows as opaque records, several times
    slower, and np.unique's own bookkeeping costs more than the sort on a 24x24 picture."""
    flat = np.asarray(rgb).reshape(-1, 3)
    codes = flat[:, 0].astype(np.int32)
    codes <<= 8
    codes |= flat[:, 1]
    codes <<= 8
    codes |= flat[:, 2]
    order = np.argsort(codes)
    ordered = codes[order]
    starts = np.concatenate(([True], ordered[1:] != ordered[:-1]))
    inverse = np.empty(len(codes), dtype=np.intp)
    inverse[order] = np.cumsum(starts) - 1
    return flat[order[np.flatnonzero(starts)]].astype(np.uint8, copy=False), inverse, np.bincount(inverse)


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
_TABLE_CUBES = 1 << 22  # a BoxTable's grid is at most this many cubes (32 MB of starts), else no table
_TABLE_CHUNK = 1024  # colours placed in the table at a time (bounds the build's temporaries to ~10 MB)


class BoxTable(NamedTuple):
    """For every cube of side `side` (half the search radius) of a grid around some colours, the colours that
    may lie within the radius of a point in that cube and in the 27 radius-cubes around the point's: the
    `members` rows starts[i]:starts[i + 1], in BoxIndex.order's order. A cube's flat index is (its integer
    coordinates - origin) @ strides; index `empty` (past the grid) has no members."""

    side: float
    origin: NDArray[np.float64]
    extent: NDArray[np.float64]
    strides: NDArray[np.float64]
    starts: NDArray[np.intp]
    members: NDArray[np.intp]
    empty: int


class BoxIndex(NamedTuple):
    """Colours bucketed in cubes of `size` (CIELAB): their order by cube key, and the sorted keys; with a
    BoxTable when built by box_index (searches then look up one cube per point, not 27)."""

    size: float
    order: NDArray[np.intp]
    keys: NDArray[np.int64]
    table: BoxTable | None = None


def _box_keys(boxes: NDArray[np.int64]) -> NDArray[np.int64]:
    b = boxes + _BOX_OFFSET
    return (b[..., 0] * _BOX_SPAN + b[..., 1]) * _BOX_SPAN + b[..., 2]


def _sorted_boxes(others: NDArray[np.float64], size: float) -> BoxIndex:
    keys = _box_keys(np.floor(others / size).astype(np.int64))
    order = np.argsort(keys, kind="stable")
    return BoxIndex(float(size), order, keys[order])


def box_index(others: NDArray[np.float64], size: float) -> BoxIndex:
    """A BoxIndex of `others` (Mx3 CIELAB) for searches within `size`."""
    index = _sorted_boxes(others, size)
    return index._replace(table=_box_table(np.asarray(others, dtype=np.float64), float(size), index.order))


def _table_cubes(others: NDArray[np.float64], size: float, side: float,
                 origin: NDArray[np.float64], strides: NDArray[np.float64]) -> tuple[NDArray[np.intp], NDArray[np.intp]]:
    """(colour, flat cube) of every cube within `size` of a colour (a margin wide) whose radius-cube is among
    the 27 around the colour's: a point's radius-cube is floor(point / size) = floor(point / side) // 2
    exactly (side = size / 2: the division by it is the division by size times two, rounding included)."""
    cube = np.floor(others / side)[:, :, None] + np.arange(-3, 4)  # M x 3 x 7: every cube a point may be in
    in_reach = np.abs(np.floor_divide(cube, 2) - np.floor(others / size)[:, :, None]) <= 1
    gap = np.maximum(np.maximum(cube * side - others[:, :, None], others[:, :, None] - (cube + 1) * side), 0)
    gap2 = np.where(in_reach, gap * gap, np.inf)
    reach = gap2[:, 0, :, None, None] + gap2[:, 1, None, :, None] + gap2[:, 2, None, None, :]
    colour, i, j, k = np.nonzero(reach <= (size * (1 + 1e-4) + 1e-6) ** 2)
    flat = ((cube[colour, 0, i] - origin[0]) * strides[0] + (cube[colour, 1, j] - origin[1]) * strides[1]
            + (cube[colour, 2, k] - origin[2]))
    return colour, flat.astype(np.intp)


def _box_table(others: NDArray[np.float64], size: float, order: NDArray[np.intp]) -> BoxTable | None:
    """The BoxTable of `others` for searches within `size`, None where a grid would be too large."""
    side = size / 2
    if not len(others) or not size > 0 or not np.isfinite(others).all():
        return None
    if np.abs(np.floor(others / size)).max() >= _BOX_OFFSET - 2:  # the keys' packing range
        return None
    cubes = np.floor(others / side)
    origin = cubes.min(axis=0) - 3
    extent = cubes.max(axis=0) + 4 - origin
    if float(np.prod(extent)) > _TABLE_CUBES:
        return None
    strides = np.array([extent[1] * extent[2], extent[2], 1.0])
    parts = [_table_cubes(others[lo:lo + _TABLE_CHUNK], size, side, origin, strides)
             for lo in range(0, len(others), _TABLE_CHUNK)]
    colour = np.concatenate([part[0] + n * _TABLE_CHUNK for n, part in enumerate(parts)])
    flat = np.concatenate([part[1] for part in parts])
    rank = np.empty(len(others), dtype=np.int64)
    rank[order] = np.arange(len(others))
    by_cube = np.argsort(flat.astype(np.int64) * len(others) + rank[colour])
    empty = int(np.prod(extent))
    starts = np.zeros(empty + 2, dtype=np.intp)
    np.cumsum(np.bincount(flat, minlength=empty + 1), out=starts[1:])
    return BoxTable(side, origin, extent, strides, starts, colour[by_cube].astype(np.intp), empty)


_NEIGHBOURS = np.stack(np.meshgrid(*[np.arange(-1, 2)] * 3, indexing="ij"), axis=-1).reshape(-1, 3)


def _candidates(points: NDArray[np.float64], index: BoxIndex) -> tuple[NDArray[np.intp], NDArray[np.intp]]:
    """(how many per point, other) of every other in the 27 cubes of side index.size around each point,
    grouped by point, each point's in index.order's order: from the BoxTable when there is one (a subset:
    only those that can be within the radius), else from the sorted keys."""
    table = index.table
    if table is not None:
        cube = np.floor(points / table.side) - table.origin
        inside = ((cube >= 0) & (cube < table.extent)).all(axis=1)
        flat = np.where(inside, cube @ table.strides, table.empty).astype(np.intp)
        lo = table.starts[flat]
        lengths = table.starts[flat + 1] - lo
        members = table.members
    else:
        keys = _box_keys(np.floor(points / index.size).astype(np.int64)[:, None, :] + _NEIGHBOURS[None])  # N x 27
        lo = np.searchsorted(index.keys, keys.ravel(), side="left")
        lengths = np.searchsorted(index.keys, keys.ravel(), side="right") - lo
        members = index.order
    ends = np.cumsum(lengths)
    found = members[np.arange(int(ends[-1])) + np.repeat(lo - (ends - lengths), lengths)]
    return (lengths if table is not None else lengths.reshape(len(points), -1).sum(axis=1)), found


def _candidate_d2(points: NDArray[np.float64], others: NDArray[np.float64],
                  index: BoxIndex) -> tuple[NDArray[np.intp], NDArray[np.intp], NDArray[np.float64]]:
    """(how many per point, other, squared distance) of every candidate pair (_candidates), grouped by point."""
    per_point, cand = _candidates(points, index)
    # rows of both sides at once (np.take: several times faster than fancy indexing on rows of 3); the channels
    # summed in order as a sum from zero would: the very same floats
    diff = np.repeat(points, per_point, axis=0) - np.take(others, cand, axis=0)
    diff *= diff
    d2 = diff[:, 0] + diff[:, 1]
    d2 += diff[:, 2]
    return per_point, cand, d2


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
    per_point, cand, d2 = _candidate_d2(points, others, _index_at(others, radius, index))
    near = d2 <= radius * radius
    return np.repeat(np.arange(n), per_point)[near], cand[near], d2[near]


def _index_at(others: NDArray[np.float64], radius: float, index: BoxIndex | None) -> BoxIndex:
    return index if index is not None and index.size == radius else _sorted_boxes(others, radius)


def others_within(points: NDArray[np.float64], others: NDArray[np.float64], radius: ArrayLike,
                  index: BoxIndex) -> NDArray[np.intp]:
    """The row of `others` (Mx3 CIELAB) of every pair of a row of `points` (Nx3) and a row of `others` within
    `radius` (one, or one per point), in no promised order. `index` is box_index(others, size) for a size
    >= radius / 1.5. Short of the size, each point's cube of the index's table is looked in; else every
    cube of that size a point's radius reaches (at most 4 per axis), so no pair is missed whatever the
    rounding against the cubes."""
    radii = np.broadcast_to(np.asarray(radius, dtype=np.float64), (len(points),))
    if not (radii <= 1.5 * index.size).all():
        raise ValueError(f"others_within: an index of {index.size} cubes cannot search within {radii.max()}")
    if not len(points) or not len(others):
        return np.zeros(0, dtype=np.intp)
    # one table cube per point holds them all, short of its reach (where a quotient's rounding may cross a cube)
    if index.table is not None and (radii <= index.size * (1 - 1e-6)).all():
        per_point, cand, d2 = _candidate_d2(points, others, index)
        return cand[d2 <= np.repeat(radii * radii, per_point)]
    reach = (radii * (1 + 1e-9) + 1e-9)[:, None]  # past the rounding of point - radius: every cube it reaches
    first = np.floor((points - reach) / index.size).astype(np.int64)
    last = np.floor((points + reach) / index.size).astype(np.int64)
    step = np.arange(4)
    b0 = first[:, 0, None, None] + step[:, None]  # N x 4 x 4: the cubes' columns along the third axis
    b1 = first[:, 1, None, None] + step[None, :]
    used = ((b0 <= last[:, 0, None, None]) & (b1 <= last[:, 1, None, None])).ravel()
    column = ((b0 + _BOX_OFFSET) * _BOX_SPAN + (b1 + _BOX_OFFSET)) * _BOX_SPAN + _BOX_OFFSET  # _box_keys' packing
    lo = np.searchsorted(index.keys, (column + first[:, 2, None, None]).ravel(), side="left")
    hi = np.searchsorted(index.keys, (column + last[:, 2, None, None]).ravel(), side="right")
    lengths = np.where(used, hi - lo, 0)
    ends = np.cumsum(lengths)
    if not ends[-1]:
        return np.zeros(0, dtype=np.intp)
    found = index.order[np.arange(int(ends[-1])) + np.repeat(lo - (ends - lengths), lengths)]
    point = np.repeat(np.arange(len(points)), lengths.reshape(len(points), -1).sum(axis=1))
    diff = np.take(points, point, axis=0) - np.take(others, found, axis=0)
    diff *= diff
    d2 = diff[:, 0] + diff[:, 1]
    d2 += diff[:, 2]
    return found[d2 <= np.take(radii * radii, point)]


def nearest_within(points: NDArray[np.float64], others: NDArray[np.float64], radius: float,
                   index: BoxIndex | None = None) -> NDArray[np.intp]:
    """For each row of `points` (Nx3 CIELAB) the index of the nearest row of `others` (Mx3) within `radius`,
    or -1 (the first of equally near ones). `index` is box_index(others, radius) when already built."""
    out = np.full(len(points), -1, dtype=np.intp)
    if not len(points) or not len(others):
        return out
    per_point, cand, d2 = _candidate_d2(points, others, _index_at(others, radius, index))
    # the nearest of all candidates, when within the radius, is the nearest of those within it
    has = np.flatnonzero(per_point)
    if not len(has):
        return out
    starts = (np.cumsum(per_point) - per_point)[has]
    best = np.minimum.reduceat(d2, starts)  # each point's nearest distance (its pairs are contiguous)
    at_best = np.where(d2 == np.repeat(best, per_point[has]), np.arange(len(d2)), len(d2))
    first = np.minimum.reduceat(at_best, starts)  # the first nearest of each point
    near = best <= radius * radius
    out[has[near]] = cand[first[near]]
    return out
