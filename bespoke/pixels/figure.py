"""Figure and background of a 24 px portrait: which cells are the punk, which are what it stands on.

A punk stands on a background that shows along the top and the two sides (the shoulders fill the bottom rows,
big hair or a hat may touch the top). The background is found per image, so a flat, split, striped, gradient
or checkered background is all one to the rest of bespoke (novelty compares figures, composition measures
the silhouette):

1. Seeds: the top row and the upper part of the left and right columns (SIDE_ROWS), in order along that path.
2. Background colours: the seed cells grouped greedily within COLOUR_TOLERANCE (CIE76 delta E). A group is
   background when it covers at least MIN_SHARE of the seeds and shows on a side column, or runs down a side
   column for SIDE_RUN cells, or shows on both side columns (a horizontal stripe), or -- seen on the top row
   only -- covers MIN_SHARE and lies within BAND_TOLERANCE of a background neighbour there (a gradient's band):
   hair or a hat touching the top shows in the middle of the top row only, and stands apart.
3. Background cells: cells within COLOUR_TOLERANCE of some seed cell of those groups, connected to a seed of
   them through such cells (4-neighbours), each step within STEP_TOLERANCE -- a gradient flows (while it
   stays within COLOUR_TOLERANCE of a colour seen at the edge), an outline stops it -- or between two
   background colours that meet along the seed path: a checkered or striped background's bricks meet at the
   edge too, so the fill may cross between them anywhere, if they are at most MEET_TOLERANCE apart (a black
   and white split background never lets the fill into a white face).

Everything else is the figure. Written by hand: the fill is the connected components of 576 cells
(`components`, a few vectorised passes), and scipy.ndimage would be a large dependency for it.
"""

from __future__ import annotations

import functools
from collections.abc import Hashable

import numpy as np
from numpy.typing import NDArray

from bespoke.pixels.colour import rgb_to_lab, sq_distances

SIDE_ROWS = 0.6  # the left and right columns seed the background down to this share of the height
COLOUR_TOLERANCE = 12.0  # delta E: a background cell is this close to a background colour seen at the edge
STEP_TOLERANCE = 10.0  # delta E between neighbouring background cells (a gradient's step)
MIN_SHARE = 0.1  # a colour group with this share of the edge seeds is background ...
SIDE_RUN = 3  # ... and so is one running this many cells down a side column
BOTH_SIDES = 2  # ... or showing on this many cells of each side column
BAND_TOLERANCE = 20.0  # delta E: a top-row colour this close to a background neighbour is a band of it
MEET_TOLERANCE = 40.0  # delta E: two background colours this close that meet at the edge may meet anywhere


@functools.lru_cache(maxsize=8)
def _seed_path(size: int) -> tuple[NDArray[np.intp], NDArray[np.intp], int]:
    """(rows, columns, side) of the seeds in path order: the left column bottom-up, the top row, the right
    column top-down; side is the number of seeds on each side column (the first and the last ones)."""
    side = max(1, int(round(size * SIDE_ROWS)))
    down = np.arange(side)
    rows = np.concatenate([down[::-1], np.zeros(size - 2, dtype=np.intp), down])
    cols = np.concatenate([np.zeros(side, dtype=np.intp), np.arange(1, size - 1), np.full(side, size - 1)])
    for shared in (rows, cols):  # cached: every caller sees the same arrays
        shared.flags.writeable = False
    return rows, cols, side


def _distinct(colours: list[Hashable]) -> tuple[list[int], NDArray[np.intp]]:
    """(the index of the first of each distinct colour, in order; each one's colour among them)."""
    position: dict[Hashable, int] = {}
    first: list[int] = []
    inverse = []
    for index, colour in enumerate(colours):
        at = position.setdefault(colour, len(first))
        if at == len(first):
            first.append(index)
        inverse.append(at)
    return first, np.array(inverse, dtype=np.intp)


def _groups(lab: NDArray[np.float64], ids: NDArray[np.intp] | None = None) -> tuple[NDArray[np.intp], list[int]]:
    """Greedy grouping of seed colours: each unassigned seed with the most neighbours within the tolerance
    starts a group of all unassigned seeds within it; returns a group index per seed, and the first seed of
    each distinct colour. `ids`: each seed's RGB colour among the picture's, when known (the same colours:
    one RGB colour is one CIELAB colour, and two of them are never one).
    Done on the distinct colours, each counting its seeds: the seeds of a colour count alike, so the first
    seed with the most is the first seed of the first colour with the most, and a colour's seeds join one
    group together."""
    first, inverse = _distinct([tuple(colour) for colour in lab.tolist()] if ids is None else ids.tolist())
    seeds = np.bincount(inverse)
    near = sq_distances(lab[first], lab[first]) <= COLOUR_TOLERANCE ** 2
    if near.all():  # the first colour gathers every seed: one group
        return np.zeros(len(lab), dtype=np.intp), first
    group = np.full(len(first), -1, dtype=np.intp)
    index = 0
    while (group < 0).any():
        free = group < 0
        counts = (near & free[None, :]) @ seeds * free
        centre = int(np.argmax(counts))
        group[free & near[centre]] = index
        index += 1
    return group[inverse], first


def _background_groups(group: NDArray[np.intp], side: int, lab: NDArray[np.float64]) -> NDArray[np.bool_]:
    """Which seed groups are background colours (module docstring, step 2); `side`: the seeds on each side
    column, the first and the last ones of the path."""
    count = int(group.max()) + 1
    if count == 1:  # one group: all the seeds (a share of 1), on both side columns
        return np.ones(1, dtype=bool)
    big = np.bincount(group, minlength=count) / len(group) >= MIN_SHARE
    left, right = group[:side], group[len(group) - side:]
    on_left, on_right = np.bincount(left, minlength=count), np.bincount(right, minlength=count)
    kept = big & ((on_left > 0) | (on_right > 0))
    kept |= (on_left >= BOTH_SIDES) & (on_right >= BOTH_SIDES)
    starts = len(left) - SIDE_RUN + 1
    for column in (left, right) if starts > 0 else ():  # SIDE_RUN seeds of one group in a row
        run = np.ones(starts, dtype=bool)
        for step in range(1, SIDE_RUN):
            run &= column[step:step + starts] == column[:starts]
        kept[column[:starts][run]] = True
    # a big colour seen only on the top row is background when it steps smoothly from one that is (the bands
    # of a gradient); a hat or hair stands apart from the background it touches
    close = ((lab[1:] - lab[:-1]) ** 2).sum(axis=-1) <= BAND_TOLERANCE ** 2
    a, b = group[:-1][close], group[1:][close]
    while True:
        grown = kept.copy()
        grown[a[kept[b] & big[a]]] = True
        grown[b[kept[a] & big[b]]] = True
        if (grown == kept).all():
            return kept
        kept = grown


def _meeting(group: NDArray[np.intp], kept: NDArray[np.bool_], lab: NDArray[np.float64]) -> NDArray[np.bool_]:
    """(groups + 1) x (groups + 1): the pairs of different background colours that meet along the seed path
    (neighbouring seeds) and are at most MEET_TOLERANCE apart; the last row and column, no group, meet none."""
    count = len(kept)
    meet = np.zeros((count + 1, count + 1), dtype=bool)
    a, b = group[:-1], group[1:]
    both = kept[a] & kept[b] & (a != b) & (((lab[:-1] - lab[1:]) ** 2).sum(axis=-1) <= MEET_TOLERANCE ** 2)
    meet[a[both], b[both]] = True
    meet[b[both], a[both]] = True
    return meet


def _runs(right: NDArray[np.bool_], down: NDArray[np.bool_]) -> tuple[NDArray[np.intp], NDArray[np.intp],
                                                                      NDArray[np.intp], NDArray[np.intp]]:
    """(where each row run starts, the row run of each cell) in row-major order of an NxN grid whose cells join
    their right neighbour where `right` (Nx(N-1)), then the same of its column runs in column-major order
    (cells joining the one below where `down`, (N-1)xN): a run is a row's (column's) stretch of joined cells.
    Both at once: half the numpy calls."""
    size = down.shape[1]
    starts = np.ones((2, size, size), dtype=bool)
    np.logical_not(right, out=starts[0, :, 1:])
    np.logical_not(down.T, out=starts[1, :, 1:])
    flat = starts.reshape(2, -1)
    runs = np.cumsum(flat, axis=1) - 1
    return np.flatnonzero(flat[0]), runs[0], np.flatnonzero(flat[1]), runs[1]


@functools.lru_cache(maxsize=8)
def _column_order(size: int) -> tuple[NDArray[np.intp], NDArray[np.intp]]:
    """(the flat index of each position in column-major order, the column-major position of each flat index)."""
    by_column = np.arange(size * size).reshape(size, size).T.ravel()
    position = np.argsort(by_column)
    for shared in (by_column, position):  # cached: every caller sees the same arrays
        shared.flags.writeable = False
    return by_column, position


def components(right: NDArray[np.bool_], down: NDArray[np.bool_]) -> NDArray[np.intp]:
    """Connected components of an NxN grid whose cells join their right neighbour where `right` (Nx(N-1)) and
    the one below where `down` ((N-1)xN): a label per cell, the smallest flat index of its component.
    Each pass takes the smallest label of every row run, then of every column run (contiguous in row- and
    column-major order: one reduceat each), then jumps each label to its label's label; a few passes."""
    size = down.shape[1]
    row_starts, row_run, column_starts, column_run = _runs(right, down)
    by_column, position = _column_order(size)
    row_run = row_run[by_column]  # the row run of each cell in column-major order: the row step's gather
    column_run = column_run[position]
    labels = np.arange(size * size)
    while True:
        new = np.minimum.reduceat(np.minimum.reduceat(labels, row_starts)[row_run], column_starts)[column_run]
        # labels only fall, and a label's label is no larger: labels the runs leave as they are are final
        # (each component's smallest index), where the jump would leave them too
        if (new == labels).all():
            return labels.reshape(size, size)
        labels = new[new]


def background_mask(cells: NDArray[np.uint8]) -> NDArray[np.bool_]:
    """True where a cell of the 24x24 (any NxN) RGB picture is background (see the module docstring)."""
    size = cells.shape[0]
    return lab_background_mask(rgb_to_lab(cells.reshape(-1, 3)).reshape(size, size, 3))


def neighbour_distances(lab: NDArray[np.float64]) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """(right, down): the squared delta E of each cell of an NxNx3 CIELAB picture to its right neighbour
    (Nx(N-1)) and to the one below ((N-1)xN)."""
    return _squared_norms(lab[:, 1:] - lab[:, :-1]), _squared_norms(lab[1:] - lab[:-1])


def _squared_norms(diff: NDArray[np.float64]) -> NDArray[np.float64]:
    """(diff ** 2).sum(axis=-1) of ...x3 differences (squared in place), the same floats: numpy adds the
    three squares in this order; a channel at a time, as a sum along a short last axis costs several times
    the arithmetic."""
    diff *= diff
    total = diff[..., 0] + diff[..., 1]
    total += diff[..., 2]
    return total


def lab_background_mask(lab: NDArray[np.float64],
                        distances: tuple[NDArray[np.float64], NDArray[np.float64]] | None = None,
                        colours: tuple[NDArray[np.intp], NDArray[np.intp]] | None = None) -> NDArray[np.bool_]:
    """`background_mask` of the picture already in CIELAB (NxNx3); `distances`: its `neighbour_distances`,
    `colours`: (the first flat cell of each distinct colour, each cell's colour among them), when the caller
    has them."""
    size = lab.shape[0]
    right_d2, down_d2 = neighbour_distances(lab) if distances is None else distances
    rows, cols, side = _seed_path(size)
    seed_lab = lab[rows, cols]
    group, first = _groups(seed_lab, None if colours is None else colours[1][rows * size + cols])
    kept = _background_groups(group, side, seed_lab)
    if not kept.any():
        return np.zeros((size, size), dtype=bool)
    seed_kept = kept[group]
    # each colour once, at its first seed in path order: argmin's first nearest seed is always such a one,
    # so the nearest group is the same -- measured against a handful of colours instead of ~40 seeds
    first = [index for index in first if seed_kept[index]]
    # a cell's distances are its colour's: measured once per distinct colour (row by row, the same floats)
    d2 = sq_distances(lab.reshape(-1, 3) if colours is None else lab.reshape(-1, 3)[colours[0]], seed_lab[first])
    within = d2[:, 0] <= COLOUR_TOLERANCE ** 2  # within of one of them: a column at a time, for a handful
    for column in range(1, len(first)):  # is cheaper than the minimum along each short row
        within |= d2[:, column] <= COLOUR_TOLERANCE ** 2
    # which neighbour pairs a fill may cross: (down, right) pairs of background-like cells
    down, right = down_d2 <= STEP_TOLERANCE ** 2, right_d2 <= STEP_TOLERANCE ** 2
    if np.count_nonzero(kept) > 1:  # (with one background colour there are no two to meet)
        # each cell's nearest background group; the no-group index meets nothing
        nearest = np.where(within, group[first][d2.argmin(axis=1)], len(kept))
        nearest = (nearest if colours is None else nearest[colours[1]]).reshape(size, size)
        meet = _meeting(group, kept, seed_lab)
        down |= meet[nearest[1:], nearest[:-1]]
        right |= meet[nearest[:, 1:], nearest[:, :-1]]
    like = (within if colours is None else within[colours[1]]).reshape(size, size)
    down &= like[1:] & like[:-1]
    right &= like[:, 1:] & like[:, :-1]
    component = components(right, down)
    seeded = np.zeros(size * size, dtype=bool)
    seeded[component[rows[seed_kept], cols[seed_kept]]] = True  # a seed is within the tolerance of itself
    return seeded[component] & like


def figure_mask(cells: NDArray[np.uint8]) -> NDArray[np.bool_]:
    """True where a cell is the figure: everything that is not background."""
    return ~background_mask(cells)
