"""Fewer colours without repainting: merge what is one colour drawn with noise, snap to a palette only
within the tolerance.

A diffusion model draws one intended colour as a spread of near-identical cell colours (noise, JPEG, soft
light). `reduce_colours` merges them and nothing else: every cell keeps a colour within `tolerance` (CIE76
delta E, TOLERANCE by default) of the colour the model drew for it -- the cell's own colour before any
reduction -- so a feature (a 1-cell eye highlight, a gem, a lip) survives whatever its size, and no global
shift can happen. How:

1. Cover: the fewest colours such that every drawn colour lies within the tolerance of one of them (greedy
   set cover weighted by how many cells have each colour; the candidates are the drawn colours, and with a
   palette also the palette colours within the tolerance of some cell, preferred when they cover at least
   PALETTE_PREFERENCE of what the best drawn colour covers). Some colours are kept as they are, before the
   greedy step: when the image is flat pixel art (FLAT_SHARE of its cells drawn in colours repeated exactly
   on FLAT_REPEAT cells or more: no noise), every repeated colour and every palette colour -- two
   near-identical colours drawn flat are two colours the model meant; in a noisy image, a palette colour
   drawn exactly on FLAT_REPEAT cells or more.
2. Assign: each cell takes the nearest chosen colour (never farther than the one that covered it).
3. Settle: a cluster of drawn colours moves to its cells' mean (the noise averaged out) when every cell
   stays within the tolerance, and then to the nearest palette colour when every cell is within the
   tolerance of that one too; otherwise it keeps the merged colour, which counts as off-palette.

The result is faithful by construction; `moved_cells` counts what a candidate moved beyond the tolerance
(0 here, and what the report checks for every method).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import NDArray

from bespoke.pixels.colour import BoxIndex, lab_to_rgb, nearest_within, rgb_to_lab, sq_distances

TOLERANCE = 5.0  # delta E: a cell may move this far from the colour the model drew (a near match to the eye)
PALETTE_PREFERENCE = 0.8  # a palette colour covering >= 80 % of the best drawn colour's cells wins the step
FLAT_REPEAT = 3  # a colour drawn exactly on this many cells or more ...
FLAT_SHARE = 0.9  # ... covering this share of the cells: the image is flat pixel art, there is no noise to merge


def _cover(within: NDArray[np.bool_], counts: NDArray[np.float64], bonus: NDArray[np.float64],
           fixed: NDArray[np.intp]) -> list[int]:
    """Greedy weighted set cover: the `fixed` rows, then rows of `within` (candidates x distinct colours)
    until every column is covered; a row's gain is the count of cells it would newly cover, times `bonus`."""
    uncovered = ~within[fixed].any(axis=0) if len(fixed) else np.ones(within.shape[1], dtype=bool)
    weights = within.astype(np.float64)  # once: a bool matrix in a product is converted at every step
    gain = weights[:, uncovered] @ counts[uncovered]
    chosen: list[int] = [int(i) for i in fixed]
    while uncovered.any():
        best = int(np.argmax(gain * bonus))
        newly = within[best] & uncovered
        if not newly.any():  # cannot happen (every colour covers itself); guards an endless loop
            break
        chosen.append(best)
        uncovered &= ~newly
        gain -= weights[:, newly] @ counts[newly]
    return chosen


def _member_max(lab: NDArray[np.float64], label: NDArray[np.intp], targets: NDArray[Any]) -> NDArray[np.float64]:
    """For each cluster, the largest squared distance of its colours (`lab`, cluster `label`) to its target."""
    worst = np.zeros(len(targets))
    np.maximum.at(worst, label, ((lab - targets[label]) ** 2).sum(axis=1))
    return worst


def _settle(lab: NDArray[np.float64], counts: NDArray[np.float64], label: NDArray[np.intp],
            centres: NDArray[np.float64], tolerance: float,
            palette_lab: NDArray[np.float64] | None) -> tuple[NDArray[np.float64], NDArray[np.intp], NDArray[np.bool_]]:
    """Where each cluster of drawn colours ends (all clusters at once): (CIELAB targets, palette index or -1,
    whether the target is the cells' mean). A cluster moves to its cells' mean when every cell stays within
    the tolerance (else it keeps its centre, a drawn colour), then to the nearest of the palette colours
    near that when every cell is within the tolerance of it."""
    limit = tolerance * tolerance
    k = len(centres)
    total = np.bincount(label, weights=counts, minlength=k)
    sums = np.stack([np.bincount(label, weights=counts * lab[:, c], minlength=k) for c in range(3)], axis=1)
    means = rgb_to_lab(lab_to_rgb(sums / np.maximum(total, 1e-9)[:, None]))  # as it will be, in 8 bits
    fits = _member_max(lab, label, means) <= limit
    targets = np.where(fits[:, None], means, centres)
    snapped = np.full(k, -1, dtype=np.intp)
    if palette_lab is not None and len(palette_lab):
        d2 = sq_distances(targets, palette_lab)
        for rank in np.argsort(d2, axis=1)[:, :4].T:  # the 4 nearest palette colours, nearest first
            ok = (snapped < 0) & (d2[np.arange(k), rank] <= limit)
            ok &= _member_max(lab, label, palette_lab[rank]) <= limit
            snapped[ok] = rank[ok]
    return targets, snapped, fits


def reduce_colours(cells: NDArray[np.uint8], tolerance: float = TOLERANCE, palette: NDArray[np.uint8] | None = None,
                   palette_lab: NDArray[np.float64] | None = None,
                   palette_index: BoxIndex | None = None) -> NDArray[np.uint8]:
    """The faithful reduction of a candidate's cell colours (...x3 uint8 RGB, the colours the model drew);
    returns uint8 RGB of the same shape, every cell within `tolerance` delta E of its own colour.

    `palette` (Nx3 uint8 RGB, with its CIELAB in `palette_lab` and its colour.box_index at `tolerance` in
    `palette_index` when already computed) is snapped to only within the tolerance; the palette colours that may be chosen are
    the nearest one of each drawn colour. `tolerance` <= 0 returns `cells` itself."""
    if tolerance <= 0:
        return cells
    colours, inverse, counts = np.unique(cells.reshape(-1, 3), axis=0, return_inverse=True, return_counts=True)
    inverse = inverse.reshape(-1)
    lab = rgb_to_lab(colours)
    limit = tolerance * tolerance
    cand, bonus, pal_lab, pal_rgb = lab, np.ones(len(colours)), None, None
    if palette is not None and len(palette):
        pal_lab = rgb_to_lab(palette) if palette_lab is None else palette_lab
        nearest = nearest_within(lab, pal_lab, tolerance, palette_index)
        near = np.unique(nearest[nearest >= 0])
        pal_lab, pal_rgb = pal_lab[near], palette[near]
        cand = np.concatenate([lab, pal_lab])
        bonus = np.concatenate([bonus, np.full(len(near), 1.0 / PALETTE_PREFERENCE)])
    d2 = sq_distances(cand.astype(np.float32), lab.astype(np.float32))  # float32: half the memory traffic
    fixed = _fixed(colours, counts, pal_rgb)
    chosen = np.array(_cover(d2 <= limit, counts.astype(np.float64), bonus, fixed), dtype=np.intp)
    label = d2[chosen].argmin(axis=0)
    from_palette = chosen >= len(colours)  # a palette colour covered these cells: exactly that colour
    out = np.empty_like(colours)
    drawn = np.flatnonzero(~from_palette)
    if len(drawn):
        members = np.isin(label, drawn)
        remap = np.full(len(chosen), -1, dtype=np.intp)
        remap[drawn] = np.arange(len(drawn))
        sub = remap[label[members]]
        centres = lab[chosen[drawn]].astype(np.float64)
        targets, snapped, fits = _settle(lab[members], counts[members].astype(np.float64), sub, centres,
                                         tolerance, pal_lab)
        rgb = np.where(fits[:, None], lab_to_rgb(targets), colours[chosen[drawn]])
        if pal_rgb is not None:
            rgb[snapped >= 0] = pal_rgb[snapped[snapped >= 0]]
        out[members] = rgb[sub]
    if from_palette.any():
        assert pal_rgb is not None
        on = from_palette[label]
        out[on] = pal_rgb[chosen[label[on]] - len(colours)]
    return out[inverse].reshape(cells.shape)


def _fixed(colours: NDArray[np.uint8], counts: NDArray[np.intp], pal_rgb: NDArray[np.uint8] | None) -> NDArray[np.intp]:
    """Drawn colours kept as they are: in flat pixel art every repeated colour and every palette colour; in
    a noisy image the palette colours drawn exactly on FLAT_REPEAT cells or more (one exact hit among
    thousands of palette colours is noise landing there, not a choice)."""
    repeated = counts >= FLAT_REPEAT
    flat = counts[repeated].sum() >= FLAT_SHARE * counts.sum()
    keep = repeated.copy() if flat else np.zeros(len(colours), dtype=bool)
    if pal_rgb is not None and len(pal_rgb):
        keep |= np.isin(_packed(colours), _packed(pal_rgb)) & (flat | repeated)
    return np.flatnonzero(keep)


def _packed(rgb: NDArray[np.uint8]) -> NDArray[np.int64]:
    c = rgb.astype(np.int64)
    return (c[:, 0] << 16) | (c[:, 1] << 8) | c[:, 2]


CAST_REACH = 16.0  # RGB levels: cells this close to a palette colour say how the picture is tinted
CAST_NEIGHBOURS = 8  # palette colours per cell colour that vote for the cast
CAST_BIN = 2.0  # RGB levels: the vote's histogram bin


def estimate_cast(cells: NDArray[np.uint8], palette: NDArray[np.uint8], rounds: int = 3) -> NDArray[np.float64]:
    """The global colour cast of a candidate against a palette: an RGB offset (3 floats, levels). Every cell
    colour votes with its offsets to its CAST_NEIGHBOURS nearest palette colours (weighted by its cells); the
    offset most cells share wins (a tint moves every colour alike, so its offset collects the big areas'
    votes), then a few rounds of the median offset of the cells within CAST_REACH of their nearest palette
    colour refine it. Only for an explicit cast correction: it moves the whole picture."""
    colours, counts = np.unique(cells.reshape(-1, 3), axis=0, return_counts=True)
    rgb = colours.astype(np.float64)
    pal = palette.astype(np.float64)
    d2 = sq_distances(rgb, pal)
    k = min(CAST_NEIGHBOURS, len(pal))
    near = np.argpartition(d2, k - 1, axis=1)[:, :k]
    offsets = (rgb[:, None, :] - pal[near]).reshape(-1, 3)
    keys, inverse = np.unique(np.rint(offsets / CAST_BIN).astype(np.int64), axis=0, return_inverse=True)
    votes = np.bincount(inverse.reshape(-1), weights=np.repeat(counts, k).astype(np.float64))
    cast = keys[int(np.argmax(votes))] * CAST_BIN
    for _ in range(rounds):
        d2 = sq_distances(rgb - cast, pal)
        nearest = d2.argmin(axis=1)
        close = d2[np.arange(len(rgb)), nearest] <= CAST_REACH**2
        if not close.any():
            break
        step = np.median(np.repeat(rgb[close] - cast - pal[nearest[close]], counts[close], axis=0), axis=0)
        cast = cast + step
        if np.abs(step).max() < 0.25:
            break
    return cast


def remove_cast(cells: NDArray[np.uint8], cast: NDArray[np.float64]) -> NDArray[np.uint8]:
    """`cells` (...x3 uint8 RGB) with an RGB offset `cast` taken out (rounded, clipped)."""
    return np.clip(np.rint(cells.astype(np.float64) - cast), 0, 255).astype(np.uint8)


def cell_moves(cells: NDArray[np.uint8], out: NDArray[np.uint8]) -> NDArray[np.float64]:
    """CIE76 delta E of every cell between the colour the model drew (`cells`) and a candidate (`out`)."""
    return np.sqrt(((rgb_to_lab(cells) - rgb_to_lab(out)) ** 2).sum(axis=-1))


def moved_stats(cells: NDArray[np.uint8], out: NDArray[np.uint8], tolerance: float = TOLERANCE) -> dict[str, float]:
    """{"delta_e_max", "delta_e_mean", "moved_beyond"}: how far `out` moved the cells (delta E) and how many
    moved more than `tolerance` (plus a hair for 8-bit rounding)."""
    d = cell_moves(cells, out)
    return {"delta_e_max": round(float(d.max()), 3), "delta_e_mean": round(float(d.mean()), 3),
            "moved_beyond": int((d > tolerance + 1e-6).sum())}
