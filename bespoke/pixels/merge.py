"""Fewer colours without repainting: merge what is one colour drawn with noise; snap to a palette only
where that merges colours.

A diffusion model draws one intended colour as a spread of near-identical cell colours (noise, JPEG, soft
light). `reduce_colours` merges them and nothing else: every cell keeps a colour within `tolerance` (CIE76
delta E, TOLERANCE by default) of the colour the model drew for it -- the cell's own colour before any
reduction -- so a feature (a 1-cell eye highlight, a gem, a lip) survives whatever its size, and no global
shift can happen. How:

1. Flat pixel art (FLAT_SHARE of its cells drawn in colours repeated exactly on FLAT_REPEAT cells or more)
   has no noise: it is returned as it is.
2. Cover: the fewest drawn colours such that every drawn colour lies within the tolerance of one of them
   (greedy set cover weighted by how many cells have each colour).
3. Assign and settle: each drawn colour joins the nearest chosen one; a cluster moves to its cells' mean
   (the noise averaged out) when every cell stays within the tolerance, else keeps the chosen colour.

`snap_to_palette` then works on that result, one colour at a time, never on single cells: a region drawn in
one colour keeps one colour (it is never split), and a colour changes only when two or more of them become
the same palette colour (the candidate never has more colours than the reduction, and a palette colour
drawn off by a hair alone does not move the picture). A colour on two or more cells may move at most
INVISIBLE (a flat region is never moved as a whole by a difference an eye could see); a single cell may move
as far as the tolerance. Every cell stays within the tolerance of the colour the model drew.

Both are faithful by construction; `moved_cells` counts what a candidate moved beyond the tolerance (0 here,
and what the report checks for every method).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import NDArray

from bespoke.pixels.colour import (
    BoxIndex,
    lab_to_rgb,
    nearest_within,
    others_within,
    rgb_to_lab,
    sq_distances,
    unique_rgb,
)

TOLERANCE = 5.0  # delta E: a cell may move this far from the colour the model drew (a near match to the eye)
INVISIBLE = 1.0  # delta E: a colour on two or more cells moves at most this far when it merges into a palette colour
FLAT_REPEAT = 3  # a colour drawn exactly on this many cells or more ...
FLAT_SHARE = 0.9  # ... covering this share of the cells: the image is flat pixel art, there is no noise to merge


_BLOCK = 64  # colours per band tile: a tile of distances stays in the cache


def _within(lab32: NDArray[np.float32], tolerance: float) -> tuple[NDArray[np.intp], NDArray[np.bool_]]:
    """(order, within): the colours (`lab32`, float32 CIELAB) sorted by L*, and which pairs of them, in that
    order, are within `tolerance` -- the same float32 test as on the full sq_distances matrix, measured only in
    tiles along the diagonal: sorted by L*, a colour is never within the tolerance of one whose L* differs
    by more, so each block of rows needs the columns up to its last row's L* plus the tolerance (and a margin).
    Drawn colours spread over the whole L* range: a fraction of the full matrix, in cache-sized pieces."""
    n = len(lab32)
    order = np.argsort(lab32[:, 0], kind="stable")
    ranked = np.take(lab32, order, axis=0).T.copy()  # channel by channel, each contiguous
    stop = np.searchsorted(ranked[0], ranked[0].astype(np.float64) + (tolerance * (1 + 1e-4) + 1e-4), side="right")
    within = np.zeros((n, n), dtype=bool)
    for lo in range(0, n, _BLOCK):
        hi, end = min(lo + _BLOCK, n), int(stop[min(lo + _BLOCK, n) - 1])
        d2 = ranked[0][lo:hi, None] - ranked[0][lo:end]
        d2 *= d2
        for c in (1, 2):  # sq_distances' order of operations, so the very same float32 sums
            diff = ranked[c][lo:hi, None] - ranked[c][lo:end]
            diff *= diff
            d2 += diff
        near = d2 <= tolerance * tolerance
        within[lo:hi, lo:end] = near
        # the mirror: no earlier tile wrote these columns, and the shared diagonal block is symmetric
        within[lo:end, lo:hi] = near.T
    return order, within


def _local_maxima(by_column: NDArray[np.bool_], key: NDArray[np.float64],
                  symmetric: bool) -> NDArray[np.intp]:
    """The rows (columns of `by_column`: which of them covers which column) whose `key` is the highest of all
    rows sharing a column with them. `symmetric`: by_column is `within` itself (column j is row j)."""
    # keys are distinct: ranks 1..n order them exactly, in the smallest integers (a bool times a uint8 rank,
    # by_column seen as bytes, needs no cast)
    rank = np.empty(len(key), dtype=np.min_scalar_type(len(key)))
    rank[np.argsort(key)] = np.arange(1, len(key) + 1)
    by_column = by_column.view(np.uint8)
    best = (by_column * rank).max(axis=1)  # per column: the highest rank of a row covering it
    if symmetric:  # a row covers its own colour: only a row ranked highest there can be highest everywhere
        rows = np.flatnonzero(best == rank)
        return rows[(by_column[rows] * best).max(axis=1) == rank[rows]]
    return np.flatnonzero((by_column * best[:, None]).max(axis=0) == rank)


def _cover(within: NDArray[np.bool_], counts: NDArray[np.float64], index: NDArray[np.intp]) -> NDArray[np.intp]:
    """Greedy weighted set cover: rows of `within` (distinct colours x distinct colours, symmetric) until every
    column is covered; a row's gain is the count of cells it would newly cover; of equal gains, the row of
    the lowest colour `index` first. The chosen rows, in the order the greedy picks them.

    In rounds, not one row at a time: a row whose key (gain, then index) is the highest of every row sharing
    an uncovered column with it is picked by the greedy with that key -- only a pick sharing a column can
    lower it, and such a row has a lower key, which only falls -- and those rows share no column, so a round
    takes all of them at once; the greedy's picks are those of the rounds, in falling key order."""
    n = len(counts)
    exact = np.float32 if counts.sum() < 1 << 24 else np.float64  # sums of whole counts, exact below 2**24
    weights = counts.astype(exact)
    gains: NDArray[np.floating[Any]] = within.astype(exact) @ weights  # a bool operand would cast to float64
    uncovered = np.ones(n, dtype=bool)
    live, by_column = np.arange(n), within  # the rows still gaining; which of them covers which uncovered colour
    picked: list[NDArray[np.intp]] = []
    keys: list[NDArray[np.float64]] = []
    while True:
        # one number per row, exact in float64 (integers): its gain, then the lower colour index the higher
        key = gains.astype(np.float64) * n + (n - 1 - index[live])
        winners = _local_maxima(by_column, key, symmetric=len(picked) == 0)
        picked.append(live[winners])
        keys.append(key[winners])
        uncovered &= ~np.take(within, live[winners], axis=0).any(axis=0)
        columns = np.flatnonzero(uncovered)
        if not len(columns):
            break
        by_column = np.take(within, columns, axis=0)
        live = np.flatnonzero(by_column.any(axis=0))  # by symmetry: the rows covering an uncovered colour
        by_column = by_column[:, live]
        gains = weights[columns] @ by_column.astype(exact)
    return np.concatenate(picked)[np.argsort(-np.concatenate(keys))]


def _settle(lab: NDArray[np.float64], counts: NDArray[np.float64], label: NDArray[np.intp],
            centres: NDArray[np.uint8], tolerance: float) -> NDArray[np.uint8]:
    """Where each cluster of drawn colours (`lab`, cluster `label`) ends, as uint8 RGB: its cells' mean when
    every cell stays within the tolerance of it, else its centre (`centres`: the drawn colour chosen, RGB)."""
    k = len(centres)
    total = np.bincount(label, weights=counts, minlength=k)
    sums = np.stack([np.bincount(label, weights=counts * lab[:, c], minlength=k) for c in range(3)], axis=1)
    mean_rgb = lab_to_rgb(sums / np.maximum(total, 1e-9)[:, None])  # as it will be, in 8 bits
    far = ((lab - np.take(rgb_to_lab(mean_rgb), label, axis=0)) ** 2).sum(axis=1) > tolerance * tolerance
    fits = np.ones(k, dtype=bool)
    fits[label[far]] = False
    # lab_to_rgb(rgb_to_lab(c)) is c for every 8-bit colour (3.7e-12 from rounding otherwise): no way back
    return np.where(fits[:, None], mean_rgb, centres)


def is_flat(counts: NDArray[np.integer[Any]]) -> bool:
    """Whether colours drawn on `counts` cells each are flat pixel art (no noise): FLAT_SHARE of the cells
    are in colours repeated exactly on FLAT_REPEAT cells or more."""
    return bool(counts[counts >= FLAT_REPEAT].sum() >= FLAT_SHARE * counts.sum())


def reduce_colours(cells: NDArray[np.uint8], tolerance: float = TOLERANCE) -> NDArray[np.uint8]:
    """The faithful reduction of a candidate's cell colours (...x3 uint8 RGB, the colours the model drew);
    returns uint8 RGB of the same shape, every cell within `tolerance` delta E of its own colour. Flat pixel
    art, and `tolerance` <= 0, return `cells` itself."""
    if tolerance <= 0:
        return cells
    colours, inverse, counts = unique_rgb(cells)
    if is_flat(counts):
        return cells
    lab = rgb_to_lab(colours)
    lab32 = lab.astype(np.float32)
    order, within = _within(lab32, tolerance)
    chosen = order[_cover(within, counts[order].astype(np.float64), order)]
    label = sq_distances(lab32, lab32[chosen]).argmin(axis=1)  # the same sums as chosen x colours, transposed
    rgb = _settle(lab, counts.astype(np.float64), label, colours[chosen], tolerance)
    return np.take(rgb, label[inverse], axis=0).reshape(cells.shape)  # np.take: rows of 3, faster than []


def _packed(rgb: NDArray[np.uint8]) -> NDArray[np.int64]:
    c = rgb.astype(np.int64)
    return (c[:, 0] << 16) | (c[:, 1] << 8) | c[:, 2]


def _worst(cell_lab: NDArray[np.float32], starts: NDArray[np.intp], counts: NDArray[np.intp],
           option_lab: NDArray[np.float32], colour: NDArray[np.intp], option: NDArray[np.intp]) -> NDArray[np.float32]:
    """For each pair (colour, option), the largest squared distance of the colour's cells (rows starts[c] to
    starts[c] + counts[c] of `cell_lab`) to the option: the float32 sums sq_distances makes, for these pairs only."""
    sizes = counts[colour]
    first = np.cumsum(sizes) - sizes
    rows = np.arange(int(sizes.sum())) + np.repeat(starts[colour] - first, sizes)
    target = np.repeat(option, sizes)
    diff = np.take(cell_lab, rows, axis=0) - np.take(option_lab, target, axis=0)
    diff *= diff
    d2 = diff[:, 0] + diff[:, 1]  # summed channel by channel in order: the same float32 sums
    d2 += diff[:, 2]
    return np.maximum.reduceat(d2, first)


_Reduction = tuple[NDArray[np.uint8], NDArray[np.intp], NDArray[np.intp]]  # unique_rgb's (colours, inverse, counts)
_SLACK = 1 + 1e-3  # far past the float32 rounding of the snap's squared distances (1e-5 relative)


def _none_shared(reduction: _Reduction, cells: NDArray[np.uint8], palette_lab: NDArray[np.float64],
                 tolerance: float, index: BoxIndex | None) -> bool:
    """Whether no palette colour can take two of the `reduction`'s colours, so the snap changes nothing: a colour
    on two or more cells can only become a palette colour within INVISIBLE of it, one on a single cell one
    within the tolerance of that cell (both tested in float64 with _SLACK: a superset of the snap's float32
    tests); and such a colour is an option only where it is the nearest palette colour of a reduced or drawn
    colour, which is then within the tolerance of it. False when that cannot be told cheaply."""
    if index is None or index.size != tolerance or INVISIBLE > tolerance:
        return False
    colours, inverse, counts = reduction
    several = counts > 1
    alone = np.flatnonzero(~several[inverse])  # the cells of single-cell colours
    takers = np.concatenate([
        others_within(rgb_to_lab(colours[several]), palette_lab, INVISIBLE * _SLACK, index),
        others_within(rgb_to_lab(np.take(cells.reshape(-1, 3), alone, axis=0)), palette_lab,
                      tolerance * _SLACK, index)])
    shared = np.bincount(takers, minlength=len(palette_lab)) >= 2
    if not shared.any():
        return True
    # the very rows whose nearest the snap takes (rgb_to_lab's rounding depends on the row count); a row's
    # nearest does not depend on the other rows
    lab = rgb_to_lab(np.concatenate([colours, unique_rgb(cells)[0]]))
    shared_lab = np.compress(shared, palette_lab, axis=0)
    near = (sq_distances(lab, shared_lab) <= (tolerance * _SLACK) ** 2).any(axis=1)
    nearest = nearest_within(lab[near], palette_lab, tolerance, index)
    return not shared[nearest[nearest >= 0]].any()


def _snap_options(reduction: _Reduction, cells: NDArray[np.uint8], palette: NDArray[np.uint8],
                  palette_lab: NDArray[np.float64], tolerance: float,
                  index: BoxIndex | None) -> tuple[NDArray[np.intp], NDArray[np.bool_]]:
    """The palette colours that may be chosen for the `reduction`'s colours (the nearest within the tolerance
    of each reduced and each drawn colour), and which colour may become which of them (colours x options):
    every drawn cell of the colour within the tolerance of it, the colour itself within INVISIBLE (or on
    one cell), and a colour already on the palette only itself."""
    colours, inverse, counts = reduction
    drawn = unique_rgb(cells)[0]
    nearest = nearest_within(rgb_to_lab(np.concatenate([colours, drawn])), palette_lab, tolerance, index)
    options = np.unique(nearest[nearest >= 0])
    if not len(options):
        return options, np.zeros((len(colours), 0), dtype=bool)
    option_lab = np.take(palette_lab, options, axis=0).astype(np.float32)
    order = np.argsort(inverse, kind="stable")  # cells grouped by their reduced colour, in its order
    starts = np.cumsum(counts) - counts
    cell_lab = rgb_to_lab(np.take(cells.reshape(-1, 3), order, axis=0)).astype(np.float32)
    move = sq_distances(rgb_to_lab(colours).astype(np.float32), option_lab)
    # only where the colour may move that far does it matter how far its cells would: measured there alone
    colour, option = np.nonzero((move <= INVISIBLE * INVISIBLE) | (counts == 1)[:, None])
    allowed = np.zeros(move.shape, dtype=bool)
    if len(colour):
        allowed[colour, option] = _worst(cell_lab, starts, counts, option_lab, colour, option) <= tolerance * tolerance
    same = _packed(colours)[:, None] == _packed(palette[options])[None, :]
    allowed &= np.where(same.any(axis=1)[:, None], same, True)
    return options, allowed


def snap_to_palette(reduced: NDArray[np.uint8], cells: NDArray[np.uint8], palette: NDArray[np.uint8],
                    palette_lab: NDArray[np.float64] | None = None, tolerance: float = TOLERANCE,
                    palette_index: BoxIndex | None = None) -> NDArray[np.uint8]:
    """`reduced` (a reduce_colours result of `cells`, ...x3 uint8 RGB) with colours merged into palette colours
    (Nx3 uint8 RGB; its CIELAB in `palette_lab` and its colour.box_index at `tolerance` in `palette_index`
    when already computed) where two or more of them can become the same one (module docstring). Greedy:
    the palette colour that takes the most colours (then the most cells) first."""
    if tolerance <= 0 or not len(palette):
        return reduced
    pal_lab = rgb_to_lab(palette) if palette_lab is None else palette_lab
    reduction = unique_rgb(reduced)
    colours, inverse, counts = reduction
    if _none_shared(reduction, cells, pal_lab, tolerance, palette_index):
        return np.take(colours, inverse, axis=0).reshape(reduced.shape)  # as the general path returns it
    options, allowed = _snap_options(reduction, cells, palette, pal_lab, tolerance, palette_index)
    out = colours.copy()
    free = np.ones(len(colours), dtype=bool)
    while allowed.shape[1]:
        open_ = allowed & free[:, None]
        takers = open_.sum(axis=0)
        if takers.max() < 2:
            break
        cells_taken = counts.astype(np.float64) @ open_
        best = int(np.argmax(takers * (counts.sum() + 1.0) + cells_taken))
        members = open_[:, best]
        out[members] = palette[options[best]]
        free &= ~members
    return np.take(out, inverse, axis=0).reshape(reduced.shape)


def cell_moves(cells: NDArray[np.uint8], out: NDArray[np.uint8],
               cells_lab: NDArray[np.float64] | None = None) -> NDArray[np.float64]:
    """CIE76 delta E of every cell between the colour the model drew (`cells`; its CIELAB `cells_lab` when
    already computed) and a candidate (`out`)."""
    drawn = rgb_to_lab(cells) if cells_lab is None else cells_lab
    return np.sqrt(((drawn - rgb_to_lab(out)) ** 2).sum(axis=-1))


def moved_stats(cells: NDArray[np.uint8], out: NDArray[np.uint8], tolerance: float = TOLERANCE,
                cells_lab: NDArray[np.float64] | None = None) -> dict[str, float]:
    """{"delta_e_max", "delta_e_mean", "moved_beyond"}: how far `out` moved the cells (delta E) and how many
    moved more than `tolerance` (plus a hair for 8-bit rounding). `cells_lab`: rgb_to_lab(cells), when known."""
    d = cell_moves(cells, out, cells_lab)
    return {"delta_e_max": round(float(d.max()), 3), "delta_e_mean": round(float(d.mean()), 3),
            "moved_beyond": int(np.count_nonzero(d > tolerance + 1e-6))}
