"""Find the 24-cell pixel grid a sample was drawn on: cell size and phase per axis, and a confidence.

Diffusion samples are not exact NEAREST stretches: the grid is blurry, noisy, may be shifted by a few
pixels and its cells are not all the same width. Per axis we build an edge-energy profile: rows averaged
in blocks (Pillow's reduce: noise falls, vertical edges stay), then at every column boundary the step
between the mean of a few pixels on its right and on its left (blurred edges are ramps), summed over
channels, with the image's noise floor (3x the median step) removed. Every candidate grid -- pitch `w`
(non-integer, within 8 % of the layout's R/24, weighted by a prior on that pitch) and phase -- is scored
by the mean profile on its predicted edges (a comb filter: bespoke.pixels.comb). The best comb is refined
finely, then edge by edge: an edge moves to a local peak within a fifth of a cell, so a grid that drifts
a pixel is followed.
Confidence is 1 - median/best of that comb slid over all phases on the profile with its noise floor kept:
near 1 for a sharp grid, near 0 for noise or a plain image; below MIN_CONFIDENCE the layout prior is used
and the source says "prior".
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from functools import lru_cache
from typing import Any

import numpy as np
from numpy.typing import NDArray
from PIL import Image

from bespoke.dataset.layout import GRID, Layout, layout_for
from bespoke.pixels.comb import Profile, coarse_winners, comb_scores, comb_teeth, fine_search

MIN_CONFIDENCE = 0.05
SLIDE = np.arange(32)  # the confidence comb's phases, in 32nds of a cell
BOX = 0  # width of the step's pixel windows; 0 = a quarter of the nominal cell


@dataclass(frozen=True)
class Grid:
    """Cell edges per axis (GRID + 1 floats each, may lie outside the image for a shifted grid)."""

    xs: tuple[float, ...]
    ys: tuple[float, ...]
    confidence: float
    source: str  # "detected" | "prior"

    @property
    def cell_w(self) -> float:
        """Mean cell width in sample pixels."""
        return (self.xs[-1] - self.xs[0]) / GRID

    @property
    def cell_h(self) -> float:
        """Mean cell height in sample pixels."""
        return (self.ys[-1] - self.ys[0]) / GRID

    def to_json(self) -> dict[str, Any]:
        """The report's "grid" entry: cell size and phase (px, rounded), cell counts, confidence, source."""
        return {
            "cell_w": round(self.cell_w, 3), "cell_h": round(self.cell_h, 3),
            "phase_x": round(self.xs[0], 2), "phase_y": round(self.ys[0], 2),
            "cells_x": GRID, "cells_y": GRID,
            "confidence": round(float(self.confidence), 3), "source": self.source,
        }


def _edge_steps(lines: NDArray[np.uint8], box: int, axis: int) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """At every boundary 1..N-1 between the N pixels along `axis` (0 or 1) of `lines` (RGB pixels already
    averaged in blocks across `axis`: noise falls, edges across it stay), on each line: |mean of `box` px
    after - mean of `box` px before| summed over channels (blurred edges are ramps) with the noise floor
    removed, and as it is. Both shaped as `lines` without its channels, `axis` one shorter."""
    n = lines.shape[axis]
    # the steps are exact integers (so the order they are summed in changes nothing), under 3 * 255 * box:
    # int16 holds them for any box up to 42 (a 4000 px sample)
    levels = np.int16 if 3 * 255 * box < 2 ** 15 else np.int32
    # edge-padded along `axis`: padded j is pixel j - box
    shape = list(lines.shape)
    shape[axis] += 2 * box
    padded = np.empty(shape, levels)
    padded[_along(axis, box, box + n)] = lines
    padded[_along(axis, 0, box)] = padded[_along(axis, box, box + 1)]
    padded[_along(axis, box + n, None)] = padded[_along(axis, box + n - 1, box + n)]
    # window[j]: the sum of padded j .. j + box - 1, i.e. pixels j - box .. j - 1
    window = _window_sums(padded, box, n + box, axis)
    # boundary t (1..N-1) lies between pixels t - 1 and t: after = window[t + box], before = window[t]
    step = window[_along(axis, 1 + box, n + box)] - window[_along(axis, 1, n)]
    np.abs(step, out=step)
    total = step[..., 0] + step[..., 1]
    total += step[..., 2]
    diff = total * (1.0 / box)
    # most of an image is flat: the median step is the noise level; only steps well above it count
    floor = 3.0 * _median_rows(total[_along(axis, None, None, 3)].reshape(1, -1), 1.0 / box)[0] + 1.0
    above = diff - floor
    np.maximum(above, 0.0, out=above)
    return above, diff


def _along(axis: int, start: int | None, stop: int | None, step: int | None = None) -> tuple[slice, ...]:
    """The index of start:stop:step along `axis` (>= 0), every entry of the axes before it."""
    return (slice(None),) * axis + (slice(start, stop, step),)


def _window_sums(values: NDArray[np.integer[Any]], width: int, count: int,
                 axis: int = -2) -> NDArray[np.integer[Any]]:
    """values[j:j + width] along `axis` summed, for j < count (count + width - 1 <= its length): by
    doubling, sums over 1, 2, 4, ... entries, one add each, and `width` made of those in binary."""
    axis %= values.ndim
    total: NDArray[np.integer[Any]] | None = None
    span, size, start = values, 1, 0  # span[j] sums `size` entries from j
    while True:
        if width & 1:
            part = span[_along(axis, start, start + count)]
            total = part if total is None else total + part  # (a view of `values` is never written)
            start += size
        width >>= 1
        if not width:
            assert total is not None
            return total
        span = span[_along(axis, None, -size)] + span[_along(axis, size, None)]
        size *= 2


def _median_rows(totals: NDArray[np.integer[Any]], scale: float) -> NDArray[np.float64]:
    """np.median of each row of `totals * scale` (scale > 0 keeps the order; a selection among small
    integers is far cheaper than np.median's partition of floats): the middle value or the mean of the two
    middle ones, computed as np.median computes it."""
    # int32: numpy selects with SIMD on AVX2 as on AVX-512 (int16 only on AVX-512); one kth, as numpy's
    # SIMD path takes one: the value below it is the largest of those left of it
    part = np.partition(totals.astype(np.int32), totals.shape[1] // 2, axis=1)
    half = part.shape[1] // 2
    upper = part[:, half].astype(np.float64) * scale
    if part.shape[1] % 2:
        return upper
    return (part[:, :half].max(axis=1).astype(np.float64) * scale + upper) / 2


def _row_sums(above: NDArray[np.float64], diff: NDArray[np.float64], box: int,
              lines_axis: int) -> tuple[Profile, Profile]:
    """The profile and the raw profile of one axis: its steps summed over its lines (`lines_axis`). The x
    lines run across memory (numpy adds them line by line), the y lines along it (numpy's pairwise sum):
    the float roundings the profiles have always had."""
    profile, raw = above.sum(axis=lines_axis), diff.sum(axis=lines_axis)
    for p in (profile, raw):  # near the border the padding, not the image, makes the step
        p[:box] = 0.0
        p[len(p) - box:] = 0.0
    return profile, raw


@lru_cache(maxsize=8)
def _block_means(block: int) -> NDArray[np.uint8]:
    """What Pillow's reduce((1, block)) makes of every sum 0..255 * block of `block` levels, read from
    Pillow itself: its fixed-point rounding is not (sum + block // 2) // block for every block."""
    sums = np.arange(255 * block + 1)
    levels = np.clip(sums[None, :] - 255 * np.arange(block)[:, None], 0, 255).astype(np.uint8)
    image = Image.fromarray(np.repeat(levels[:, :, None], 3, axis=2), "RGB")
    return np.asarray(image.reduce((1, block)))[0, :, 0].copy()


def _row_blocks(arr: NDArray[np.uint8], image: Image.Image, block: int) -> NDArray[np.uint8]:
    """np.asarray(image.reduce((1, block))) (`arr` is `image`): numpy's sum of the rows of each block and
    Pillow's rounding of it from _block_means cost half of Pillow's reduce; Pillow's own when `block` does
    not divide the height (its last block is partial)."""
    h, w = arr.shape[:2]
    if h % block or 255 * block >= 2 ** 16:  # (uint16 holds the sums of up to 257 rows)
        return np.asarray(image.reduce((1, block)))
    sums = arr.reshape(h // block, block, w * 3).sum(axis=1, dtype=np.uint16)
    if _rounds_half_up(block):  # a shift costs a third of the table look-up (which widens the sums to intp)
        sums += block // 2
        sums >>= block.bit_length() - 1
        return sums.astype(np.uint8).reshape(h // block, w, 3)
    return np.take(_block_means(block), sums).reshape(h // block, w, 3)


@lru_cache(maxsize=8)
def _rounds_half_up(block: int) -> bool:
    """Whether `block` is a power of two for which Pillow's mean of every sum is (sum + block // 2) >> log2
    (block): checked against _block_means over all sums."""
    if block & (block - 1):
        return False
    sums = np.arange(255 * block + 1)
    return bool(np.array_equal(_block_means(block), (sums + block // 2) >> (block.bit_length() - 1)))


def _profiles(arr: NDArray[np.uint8], box: int | None = None,
              image: Image.Image | None = None) -> tuple[tuple[Profile, Profile], tuple[Profile, Profile]]:
    """((x profile, x raw profile), (y profile, y raw profile)); raw keeps the noise floor. `image`: `arr` as
    an RGB Pillow image, when there is one."""
    h, w = arr.shape[:2]
    block = max(1, h // 32)
    if box is None:
        box = BOX if BOX else max(1, round(w / GRID / 4))
    if image is None:
        image = Image.fromarray(np.ascontiguousarray(arr), "RGB")
    # rows in blocks for the x profile (its lines: axis 0, steps along 1), columns for the y profile (Pillow's
    # reduce averages them in C; its lines: axis 1, steps along 0)
    rows = _row_blocks(arr, image, block)
    cols = np.asarray(image.reduce((block, 1)))
    above_x, diff_x = _edge_steps(rows, box, 1)
    above_y, diff_y = _edge_steps(cols, box, 0)
    return _row_sums(above_x, diff_x, box, 0), _row_sums(above_y, diff_y, box, 1)


def profiles(arr: NDArray[np.uint8], box: int | None = None) -> tuple[Profile, Profile]:
    """Edge-energy profiles along x and y of an HxWx3 uint8 sample (float64, W-1 and H-1 entries); entry i
    is the boundary at pixel i + 1, in RGB levels summed over channels and rows, the noise floor removed.
    `box` is the step's window in px (a quarter of the nominal cell when None)."""
    (px, _), (py, _) = _profiles(arr, box)
    return px, py


def _detect_axis(profile: Profile, size: int, nominal: float,
                 coarse: tuple[int, int]) -> tuple[NDArray[np.floating[Any]], tuple[float, float]]:
    """Best 25 edges along one axis of `size` px (cell `nominal` px) and the comb they came from (phase,
    pitch), the coarse search having found `coarse`."""
    smooth = profile
    # the coarse search steps 0.4 % in pitch and 1/24 cell in phase: refine around its winner
    search = fine_search(nominal, len(smooth), *coarse)
    fine = comb_scores(smooth, search.teeth) * search.prior
    i, j = divmod(int(fine.argmax()), fine.shape[1])
    pitch, phase = float(search.pitches[i]), float(search.phases[i, j])
    # choose which 24 consecutive cells: the span centred on the image
    n = round((size / 2 - GRID * pitch / 2 - phase) / pitch)
    edges = phase + pitch * (n + np.arange(GRID + 1))
    return _refine(edges, smooth, pitch), (phase, pitch)


def _median(values: NDArray[np.float64]) -> float:
    """np.median of a 1-d array, without its overhead: the middle value, or the two middle ones summed and
    halved (as np.median's mean of them does)."""
    half = len(values) // 2
    part = np.partition(values, half)  # one kth: numpy's SIMD selection (two fall back to introselect)
    if len(values) % 2:
        return float(part[half])
    return (float(part[:half].max()) + float(part[half])) / 2


def _confidences(raw: tuple[Profile, Profile], combs: tuple[tuple[float, float], tuple[float, float]]) -> float:
    """The lower of the axes' confidences: 1 - median/best of each axis' comb (phase, pitch) slid over all
    phases, on the profile that keeps the noise floor (`raw`): a sharp grid has nothing between its edges
    (near 1), noise or a plain image is the same at every phase (near 0), a blurry grid is in between."""
    (phase_x, pitch_x), (phase_y, pitch_y) = combs
    length = len(raw[0])
    # one family of two combs when the axes have one length and the combs as many teeth (the count follows
    # the smaller pitch): each comb's products and sums are then those it has alone
    if len(raw[1]) != length or int((length + 1) / pitch_x) != int((length + 1) / pitch_y):
        return min(_contrast(_slid_scores(raw[0], phase_x, pitch_x)[0]),
                   _contrast(_slid_scores(raw[1], phase_y, pitch_y)[0]))
    scores = _slid_scores(np.concatenate(raw), np.array([phase_x, phase_y]), np.array([pitch_x, pitch_y]),
                          length)
    return min(_contrast(scores[0]), _contrast(scores[1]))


def _slid_scores(raw: Profile, phase: Any, pitch: Any, length: int | None = None) -> NDArray[np.float64]:
    """The comb (phase, pitch) -- or one per axis, arrays, when `raw` lays axes of `length` end to end --
    slid over all phases (SLIDE) and scored on `raw`: (A, 32)."""
    phase, pitch = np.atleast_1d(phase), np.atleast_1d(pitch)
    phases = phase[:, None] + pitch[:, None] * SLIDE / 32
    teeth = comb_teeth(length or len(raw), pitch, phases)
    if length is not None:  # each comb reads its own axis
        offsets = (np.arange(len(pitch)) * length)[:, None, None]
        teeth = replace(teeth, lo=teeth.lo + offsets, hi=teeth.hi + offsets)
    return comb_scores(raw, teeth)


def _contrast(scores: NDArray[np.float64]) -> float:
    """1 - median/best of a slid comb's scores (its found phase first), within 0..1."""
    best = float(scores[0])
    if best <= 0:
        return 0.0
    return min(max(1.0 - _median(scores) / best, 0.0), 1.0)


def _refine(edges: NDArray[np.floating[Any]], smooth: Profile, pitch: float) -> NDArray[np.floating[Any]]:
    """Move each inner edge to a clear local profile peak within pitch/5 (SD grids drift a little)."""
    n = len(smooth) + 1
    radius = max(1, int(pitch / 5))
    baseline = _median(smooth)
    spread = _median(np.abs(smooth - baseline)) + 1e-9
    # every edge's window [lo, hi] of boundaries at once: boundary t is bounded[t], and the -inf on either
    # side of the profile stands for every position outside the axis, which never wins the argmax
    bounded = np.concatenate(([-np.inf], smooth, [-np.inf]))
    start = np.rint(edges).astype(np.int64) - radius  # each window's first boundary, inside the axis or not
    at = start[:, None] + np.arange(2 * radius + 1)[None, :]
    window = bounded[np.minimum(np.maximum(at, 0), n)]
    j = window.argmax(axis=1)
    # an edge may move only if its window holds two or more boundaries of the axis (1..n-1, n >= 48)
    wide = (start < n - 1) & (start + 2 * radius > 1)
    moved = wide & (window.max(axis=1) > baseline + 6 * spread)
    out = np.where(moved, (start + j).astype(np.float64), edges).tolist()
    original = edges.tolist()
    # keep edges increasing and cells at least half a pitch wide
    for i in range(1, len(out)):
        if out[i] - out[i - 1] < pitch / 2:
            out[i] = original[i]
    return np.array(out)


def prior_edges(size: int, layout: Layout | None) -> NDArray[np.float64]:
    """The layout's GRID + 1 cell edges (px, float64) scaled to a `size` px sample (the stretch layout at
    `size` when no layout is known)."""
    if layout is None:
        return np.array(layout_for("stretch", size).edges, dtype=np.float64)
    return np.array(layout.edges, dtype=np.float64) * (size / layout.resolution)


def _nominal(prior: NDArray[np.float64]) -> float:
    """The mean cell of a layout's edges."""
    return float((prior[-1] - prior[0]) / GRID)


def find_grid(arr: NDArray[np.uint8], layout: Layout | None = None, image: Image.Image | None = None) -> Grid:
    """Detect the grid of an HxWx3 uint8 sample (square, >= 24 px; `image`: the same as an RGB Pillow image,
    when the caller has it); falls back to the layout prior (source "prior") below 48 px or when the
    confidence is under MIN_CONFIDENCE."""
    h, w = arr.shape[:2]
    prior_x, prior_y = prior_edges(w, layout), prior_edges(h, layout)
    if w < 2 * GRID:  # too few pixels per cell to see edges: the prior is all we have
        return Grid(tuple(map(float, prior_x)), tuple(map(float, prior_y)), 0.0, "prior")
    (px, rx), (py, ry) = _profiles(arr, image=image)
    nominal_x, nominal_y = _nominal(prior_x), _nominal(prior_y)
    if len(px) == len(py) and nominal_x == nominal_y:  # a square sample: one coarse search for both axes
        coarse_x, coarse_y = coarse_winners(np.array((px, py)), nominal_x)
    else:
        (coarse_x,), (coarse_y,) = coarse_winners(px[None], nominal_x), coarse_winners(py[None], nominal_y)
    xs, comb_x = _detect_axis(px, w, nominal_x, coarse_x)
    ys, comb_y = _detect_axis(py, h, nominal_y, coarse_y)
    confidence = _confidences((rx, ry), (comb_x, comb_y))
    if confidence < MIN_CONFIDENCE:
        return Grid(tuple(map(float, prior_x)), tuple(map(float, prior_y)), confidence, "prior")
    return Grid(tuple(xs.tolist()), tuple(ys.tolist()), confidence, "detected")
