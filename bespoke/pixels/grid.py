"""Find the 24-cell pixel grid a sample was drawn on: cell size and phase per axis, and a confidence.

Diffusion samples are not exact NEAREST stretches: the grid is blurry, noisy, may be shifted by a few
pixels and its cells are not all the same width. Per axis we build an edge-energy profile: rows averaged
in blocks (Pillow's reduce: noise falls, vertical edges stay), then at every column boundary the step
between the mean of a few pixels on its right and on its left (blurred edges are ramps), summed over
channels, with the image's noise floor (3x the median step) removed. Every candidate grid -- pitch `w`
(non-integer, within 8 % of the layout's R/24, weighted by a prior on that pitch) and phase -- is scored
by the mean profile on its predicted edges (a comb filter). The best comb is refined finely, then edge by
edge: an edge moves to a local peak within a fifth of a cell, so a grid that drifts a pixel is followed.
Confidence is 1 - median/best of that comb slid over all phases on the profile with its noise floor kept:
near 1 for a sharp grid, near 0 for noise or a plain image; below MIN_CONFIDENCE the layout prior is used
and the source says "prior".
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray
from PIL import Image

from bespoke.dataset.layout import GRID, Layout, layout_for

Profile = NDArray[np.float64]  # edge energy at each pixel boundary along one axis

MIN_CONFIDENCE = 0.05
BOX = 0  # width of the step's pixel windows; 0 = a quarter of the nominal cell
PITCH_SIGMA = 0.02  # how far (relative) a detected pitch may stray from the layout's before it must earn it


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


def _axis_profile(a: NDArray[np.uint8], box: int) -> tuple[Profile, Profile]:
    """Edge energy at every boundary 1..W-1 between the columns of `a` (rows already block-averaged:
    noise falls, vertical edges stay): |mean of `box` px right - mean of `box` px left| summed over
    channels (blurred edges are ramps), the noise floor removed, summed over rows; and the same with the
    noise floor kept."""
    w = a.shape[1]
    # channels first: every reduction below then runs over long contiguous rows
    planes = np.pad(a.transpose(2, 0, 1).astype(np.int32), ((0, 0), (0, 0), (box + 1, box)), mode="edge")
    c = np.cumsum(planes, axis=2)
    # padded index j is column j - box - 1; c[j] sums padded 0..j. Boundary t is between columns t-1 and t:
    # right = c[t + 2 box] - c[t + box], left = c[t + box] - c[t]
    step = c[:, :, 2 * box + 1:2 * box + w] - 2 * c[:, :, box + 1:box + w] + c[:, :, 1:w]
    np.abs(step, out=step)
    diff = (step[0] + step[1] + step[2]) * (1.0 / box)
    # most of an image is flat: the median step is the noise level; only steps well above it count
    floor = 3.0 * float(np.median(diff[:, ::3])) + 1.0
    profile = np.maximum(diff - floor, 0.0).sum(axis=0).astype(np.float64)
    raw = diff.sum(axis=0).astype(np.float64)
    for p in (profile, raw):  # near the border the padding, not the image, makes the step
        p[:box] = 0.0
        p[len(p) - box:] = 0.0
    return profile, raw


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
    # Pillow's reduce averages blocks in C: rows in blocks for the x profile, columns for the y profile
    rows = np.asarray(image.reduce((1, block)))
    cols = np.asarray(image.reduce((block, 1))).transpose(1, 0, 2)
    return _axis_profile(rows, box), _axis_profile(cols, box)


def profiles(arr: NDArray[np.uint8], box: int | None = None) -> tuple[Profile, Profile]:
    """Edge-energy profiles along x and y of an HxWx3 uint8 sample (float64, W-1 and H-1 entries); entry i
    is the boundary at pixel i + 1, in RGB levels summed over channels and rows, the noise floor removed.
    `box` is the step's window in px (a quarter of the nominal cell when None)."""
    (px, _), (py, _) = _profiles(arr, box)
    return px, py


def _comb_scores(profile: Profile, pitches: NDArray[np.float64],
                 phases: NDArray[np.float64]) -> NDArray[np.float64]:
    """Mean profile on the edges of every comb (pitches[p], phases[p, f]) over the whole axis."""
    n = len(profile) + 1  # boundaries live at 1..n-1
    k = np.arange(-1, int(n / pitches.min()) + 2)
    pos = phases[:, :, None] + pitches[:, None, None] * k[None, None, :]  # (P, F, K)
    valid = (pos >= 1) & (pos <= n - 1)
    # teeth fall between pixel boundaries: interpolate the profile linearly (boundary t is index t - 1)
    t = np.clip(pos, 1, n - 1) - 1
    lo = np.floor(t).astype(np.int64)
    hi = np.minimum(lo + 1, len(profile) - 1)
    frac = t - lo
    values = profile[lo] * (1 - frac) + profile[hi] * frac
    # divide by the expected number of teeth, not the count inside the image: a coarser comb would
    # otherwise win just by dropping a weak tooth off the end
    return (values * valid).sum(axis=2) / ((n - 1) / pitches)[:, None]


def _pitch_prior(pitches: NDArray[np.float64], nominal: float) -> NDArray[np.float64]:
    """Gaussian weight (0-1) of each pitch's relative deviation from `nominal` (sigma PITCH_SIGMA)."""
    return np.exp(-0.5 * ((pitches / nominal - 1.0) / PITCH_SIGMA) ** 2)


def _detect_axis(profile: Profile, raw: Profile, size: int,
                 prior: NDArray[np.float64]) -> tuple[NDArray[np.floating[Any]], float]:
    """Best 25 edges along one axis of `size` px and the comb contrast (confidence)."""
    smooth = profile
    nominal = (prior[-1] - prior[0]) / GRID
    pitches = np.arange(nominal * 0.92, nominal * 1.08, max(nominal * 0.004, 0.01))
    phases = pitches[:, None] * (np.arange(24) / 24)[None, :]
    # the layout fixes the pitch far better than a few face edges can: deviations must earn their way
    scores = _comb_scores(smooth, pitches, phases) * _pitch_prior(pitches, nominal)[:, None]
    best = np.unravel_index(int(np.argmax(scores)), scores.shape)
    # the coarse search steps 0.4 % in pitch and 1/24 cell in phase: refine around its winner
    fine_p = pitches[best[0]] + np.linspace(-0.0025, 0.0025, 11) * nominal
    fine_ph = phases[best] + np.linspace(-0.5, 0.5, 11)
    fine = _comb_scores(smooth, fine_p, np.broadcast_to(fine_ph, (11, 11)).copy())
    fine = fine * _pitch_prior(fine_p, nominal)[:, None]
    i, j = np.unravel_index(int(np.argmax(fine)), fine.shape)
    pitch, phase = float(fine_p[i]), float(fine_ph[j])
    # choose which 24 consecutive cells: the span centred on the image
    n = round((size / 2 - GRID * pitch / 2 - phase) / pitch)
    edges = phase + pitch * (n + np.arange(GRID + 1))
    return _refine(edges, smooth, pitch), _confidence(raw, phase, pitch)


def _confidence(raw: Profile, phase: float, pitch: float) -> float:
    """1 - median/best of the comb at the found pitch slid over all phases, on the profile that keeps
    the noise floor: a sharp grid has nothing between its edges (near 1), noise or a plain image is
    the same at every phase (near 0), a blurry grid is in between."""
    phases = (phase + pitch * np.arange(32) / 32)[None, :]
    scores = _comb_scores(raw, np.array([pitch]), phases)[0]
    best = float(scores[0])
    if best <= 0:
        return 0.0
    return float(np.clip(1.0 - float(np.median(scores)) / best, 0.0, 1.0))


def _refine(edges: NDArray[np.floating[Any]], smooth: Profile, pitch: float) -> NDArray[np.floating[Any]]:
    """Move each inner edge to a clear local profile peak within pitch/5 (SD grids drift a little)."""
    n = len(smooth) + 1
    radius = max(1, int(pitch / 5))
    baseline = float(np.median(smooth))
    spread = float(np.median(np.abs(smooth - baseline))) + 1e-9
    # every edge's window [lo, hi] of boundaries at once; positions outside it never win the argmax
    centre = np.rint(edges).astype(np.int64)
    lo, hi = np.maximum(1, centre - radius), np.minimum(n - 1, centre + radius)
    at = (centre - radius)[:, None] + np.arange(2 * radius + 1)[None, :]
    inside = (at >= lo[:, None]) & (at <= hi[:, None])
    window = np.where(inside, smooth[np.clip(at - 1, 0, len(smooth) - 1)], -np.inf)
    j = np.argmax(window, axis=1)
    peak = window[np.arange(len(edges)), j]
    moved = (hi > lo) & (peak > baseline + 6 * spread)
    out = np.where(moved, (centre - radius + j).astype(np.float64), edges)
    # keep edges increasing and cells at least half a pitch wide
    for i in range(1, len(out)):
        if out[i] - out[i - 1] < pitch / 2:
            out[i] = edges[i]
    return out


def prior_edges(size: int, layout: Layout | None) -> NDArray[np.float64]:
    """The layout's GRID + 1 cell edges (px, float64) scaled to a `size` px sample (the stretch layout at
    `size` when no layout is known)."""
    if layout is None:
        return np.array(layout_for("stretch", size).edges, dtype=np.float64)
    return np.array(layout.edges, dtype=np.float64) * (size / layout.resolution)


def find_grid(arr: NDArray[np.uint8], layout: Layout | None = None, image: Image.Image | None = None) -> Grid:
    """Detect the grid of an HxWx3 uint8 sample (square, >= 24 px; `image`: the same as an RGB Pillow image,
    when the caller has it); falls back to the layout prior (source "prior") below 48 px or when the
    confidence is under MIN_CONFIDENCE."""
    h, w = arr.shape[:2]
    prior_x, prior_y = prior_edges(w, layout), prior_edges(h, layout)
    if w < 2 * GRID:  # too few pixels per cell to see edges: the prior is all we have
        return Grid(tuple(map(float, prior_x)), tuple(map(float, prior_y)), 0.0, "prior")
    (px, rx), (py, ry) = _profiles(arr, image=image)
    xs, cx = _detect_axis(px, rx, w, prior_x)
    ys, cy = _detect_axis(py, ry, h, prior_y)
    confidence = min(cx, cy)
    if confidence < MIN_CONFIDENCE:
        return Grid(tuple(map(float, prior_x)), tuple(map(float, prior_y)), confidence, "prior")
    return Grid(tuple(float(v) for v in xs), tuple(float(v) for v in ys), confidence, "detected")
