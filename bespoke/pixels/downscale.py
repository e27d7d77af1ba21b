"""Sample -> 24x24 candidates: Pillow's resamplers for comparison, and `grid`, the pixel-art extraction.

`grid` finds the sample's cell grid (bespoke.pixels.grid) and takes each cell's colour from its interior:
the outer `BORDER` of the cell on each side is ignored (neighbours bleed into it through blur, JPEG and
the model's soft edges), the rest is sampled on a regular lattice and reduced with a per-channel median
(robust to noise; with one majority colour it returns that colour). Then near-duplicate colours are merged.
`grid-palette` adds a palette: the cells snap to a fixed palette (the dataset's, or a folder's;
bespoke.pixels.palette.snap picks a per-image sub-palette from the merged clusters, so it never has more
colours than `grid`, even with the thousands of colours of a real dataset), or the merged colours are
reduced to k.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike, NDArray
from PIL import Image

from bespoke.dataset.layout import GRID
from bespoke.pixels import palette as pal
from bespoke.pixels.grid import Grid

PIL_METHODS = {"nearest": Image.Resampling.NEAREST, "box": Image.Resampling.BOX,
               "bilinear": Image.Resampling.BILINEAR, "lanczos": Image.Resampling.LANCZOS}
GRID_METHODS = ("grid", "grid-palette")
DEFAULT_METHODS = ("nearest", "box", "bilinear", "lanczos", "grid")
ALL_METHODS = tuple(PIL_METHODS) + GRID_METHODS
BORDER = 0.3
SAMPLES_PER_AXIS = 8


def pil_downscale(img: Image.Image, method: str) -> NDArray[np.uint8]:
    """Pillow's resize of `img` to 24x24 with `method` (nearest, box, bilinear, lanczos), as an array of
    `img`'s mode (24x24x3 uint8 RGB for an RGB image)."""
    return np.asarray(img.resize((GRID, GRID), PIL_METHODS[method]))


def _lattice(edges: ArrayLike, size: int, n: int = SAMPLES_PER_AXIS) -> NDArray[np.intp]:
    """GRIDxn pixel indices inside each cell's interior (clipped to the image for cells partly outside)."""
    e = np.asarray(edges, dtype=np.float64)
    a, b = e[:-1], e[1:]
    lo = np.clip(a + (b - a) * BORDER, 0, size - 1)
    hi = np.clip(b - (b - a) * BORDER, 0, size - 1)
    hi = np.maximum(hi, lo)
    t = (np.arange(n) + 0.5) / n
    return np.clip(np.floor(lo[:, None] + (hi - lo)[:, None] * t[None, :]), 0, size - 1).astype(np.intp)


def cell_colors(arr: NDArray[np.uint8], grid: Grid) -> NDArray[np.uint8]:
    """Each cell's colour: per-channel median of its interior lattice. Returns 24x24x3 uint8 RGB."""
    h, w = arr.shape[:2]
    ry, rx = _lattice(grid.ys, h), _lattice(grid.xs, w)
    # (24, n, 24, n, 3) gathered at once
    block = arr[ry[:, :, None, None], rx[None, None, :, :]]
    block = block.transpose(0, 2, 1, 3, 4).reshape(GRID, GRID, -1, 3)
    # median of an even count = mean of the two middle values; np.partition on uint8 is much cheaper
    # than np.median (which works in float64)
    n = block.shape[2]
    lo, hi = (n - 1) // 2, n // 2
    part = np.partition(block, (lo, hi), axis=2)
    mid = part[:, :, lo].astype(np.uint16) + part[:, :, hi]
    return ((mid + 1) // 2).astype(np.uint8)


def extract(arr: NDArray[np.uint8], grid: Grid, *, merge: float | None = None, palette: pal.Palette | None = None,
            raw: NDArray[np.uint8] | None = None) -> tuple[NDArray[np.uint8], NDArray[np.uint8]]:
    """`grid` (palette None) or `grid-palette` candidate of an HxWx3 uint8 sample; returns (candidate, raw
    cell colours), both 24x24x3 uint8 RGB.

    `merge` is the merge_near threshold (CIE76 delta E, DEFAULT_MERGE when None); `raw` are the sample's
    cell colours when already computed (cell_colors)."""
    cells = cell_colors(arr, grid) if raw is None else raw
    out = pal.merge_near(cells, pal.DEFAULT_MERGE if merge is None else merge)
    if palette is not None:
        out = _apply_palette(cells, out, palette)
    return out, cells


def _apply_palette(cells: NDArray[np.uint8], merged: NDArray[np.uint8], palette: pal.Palette) -> NDArray[np.uint8]:
    """The `grid-palette` step on the merged candidate: reduce to k colours, or snap to the fixed colours."""
    if palette.mode == "k":
        if palette.k is None:
            raise ValueError("a 'k' palette needs k")
        return pal.kmeans_colors(merged, int(palette.k))
    if palette.colors is None:
        raise ValueError(f"a {palette.mode!r} palette needs colors")
    return pal.snap(cells, palette.colors, merged)


def moved(raw: NDArray[np.uint8], out: NDArray[np.uint8]) -> tuple[int, float]:
    """How many of the 576 pixels a palette step changed, and their mean RGB distance moved (0-255 levels,
    Euclidean; 0 if none)."""
    d = np.sqrt(((raw.astype(np.float64) - out.astype(np.float64)) ** 2).sum(axis=2))
    changed = d > 0
    return int(changed.sum()), float(d[changed].mean()) if changed.any() else 0.0
