"""Figure and background of a 24 px portrait: which cells are the punk, which are what it stands on.

A punk stands on a background that shows along the top and the two sides (the shoulders fill the bottom rows,
big hair or a hat may touch the top). The background is found per image, so a flat, split, gradient or
checkered background is all one to the rest of bespoke (novelty compares figures, composition measures the
silhouette):

1. Seeds: the top row and the upper part of the left and right columns (SIDE_ROWS).
2. Background colours: the seed cells grouped greedily within COLOUR_TOLERANCE (CIE76 delta E); a group
   covering at least MIN_SHARE of the seeds is background (a hat brim touching the top is one small group,
   a gradient a few big ones).
3. Background cells: cells within COLOUR_TOLERANCE of some seed cell of those groups, connected to a seed of
   them through such cells (4-neighbours), each step within STEP_TOLERANCE: a gradient flows, an outline stops it.

Everything else is the figure. Written by hand: the flood fill on 576 cells is a few vectorised dilations, and
scipy.ndimage would be a large dependency for it.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from bespoke.pixels.colour import rgb_to_lab, sq_distances

SIDE_ROWS = 0.6  # the left and right columns seed the background down to this share of the height
COLOUR_TOLERANCE = 12.0  # delta E: a background cell is this close to a background colour seen at the edge
STEP_TOLERANCE = 10.0  # delta E between neighbouring background cells (a gradient's step)
MIN_SHARE = 0.1  # a colour group needs this share of the edge seeds to be background


def _seeds(size: int) -> NDArray[np.bool_]:
    seeds = np.zeros((size, size), dtype=bool)
    seeds[0, :] = True
    side = max(1, int(round(size * SIDE_ROWS)))
    seeds[:side, 0] = True
    seeds[:side, -1] = True
    return seeds


def _groups(lab: NDArray[np.float64]) -> NDArray[np.intp]:
    """Greedy grouping of seed colours: each unassigned seed with the most neighbours within the tolerance
    starts a group of all unassigned seeds within it; returns a group index per seed."""
    near = sq_distances(lab, lab) <= COLOUR_TOLERANCE ** 2
    group = np.full(len(lab), -1, dtype=np.intp)
    index = 0
    while (group < 0).any():
        free = group < 0
        counts = (near & free[None, :]).sum(axis=1) * free
        centre = int(np.argmax(counts))
        group[free & near[centre]] = index
        index += 1
    return group


def background_mask(cells: NDArray[np.uint8]) -> NDArray[np.bool_]:
    """True where a cell of the 24x24 (any NxN) RGB picture is background (see the module docstring)."""
    size = cells.shape[0]
    lab = rgb_to_lab(cells.reshape(-1, 3)).reshape(size, size, 3)
    seeds = _seeds(size)
    seed_lab = lab[seeds]
    group = _groups(seed_lab)
    shares = np.bincount(group) / len(group)
    kept = shares[group] >= MIN_SHARE
    if not kept.any():
        return np.zeros((size, size), dtype=bool)
    reference = seed_lab[kept]
    like = (sq_distances(lab.reshape(-1, 3), reference).min(axis=1) <= COLOUR_TOLERANCE ** 2).reshape(size, size)
    region = np.zeros((size, size), dtype=bool)
    region[seeds] = kept
    region &= like
    step = STEP_TOLERANCE ** 2
    # which neighbour pairs a fill may cross: (down, right) differences, each used both ways
    down = ((lab[1:] - lab[:-1]) ** 2).sum(axis=-1) <= step
    right = ((lab[:, 1:] - lab[:, :-1]) ** 2).sum(axis=-1) <= step
    while True:
        grown = region.copy()
        grown[1:] |= region[:-1] & down
        grown[:-1] |= region[1:] & down
        grown[:, 1:] |= region[:, :-1] & right
        grown[:, :-1] |= region[:, 1:] & right
        grown &= like
        if (grown == region).all():
            return region
        region = grown


def figure_mask(cells: NDArray[np.uint8]) -> NDArray[np.bool_]:
    """True where a cell is the figure: everything that is not background."""
    return ~background_mask(cells)
