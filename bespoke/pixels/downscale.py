"""Sample -> 24x24 candidates: Pillow's resamplers for comparison, and `grid`, the pixel-art extraction.

`grid` finds the sample's cell grid (bespoke.pixels.grid) and takes each cell's colour from its interior:
the outer `BORDER` of the cell on each side is ignored (neighbours bleed into it through blur, JPEG and
the model's soft edges), the rest is sampled on a regular lattice and reduced with a per-channel median
(robust to noise; with one majority colour it returns that colour): the colour the model drew for that
cell. Then bespoke.pixels.merge reduces the colours without moving any cell farther than the tolerance.
`grid-palette` is that result with colours merged into a fixed palette's (the dataset's, or a folder's) where
two or more become one palette colour -- never splitting a colour, never moving a flat region visibly -- or,
an explicit request, reduced to k colours.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike, NDArray
from PIL import Image

from bespoke.dataset.layout import GRID
from bespoke.pixels import palette as pal
from bespoke.pixels.grid import Grid
from bespoke.pixels.merge import TOLERANCE, reduce_colours, snap_to_palette

PIL_METHODS = {"nearest": Image.Resampling.NEAREST, "box": Image.Resampling.BOX,
               "bilinear": Image.Resampling.BILINEAR, "lanczos": Image.Resampling.LANCZOS}
BORDER = 0.3
SAMPLES_PER_AXIS = 8


def pil_downscale(img: Image.Image, method: str) -> NDArray[np.uint8]:
    """Pillow's resize of `img` to 24x24 with `method` (nearest, box, bilinear, lanczos), as an array of
    `img`'s mode (24x24x3 uint8 RGB for an RGB image)."""
    return np.asarray(img.resize((GRID, GRID), PIL_METHODS[method]))


def _lattice(edges: ArrayLike, size: ArrayLike, n: int = SAMPLES_PER_AXIS) -> NDArray[np.intp]:
    """GRIDxn pixel indices inside each cell's interior (clipped to the image for cells partly outside).
    `edges` may stack several axes (... x GRID + 1), `size` then each one's length (... x 1)."""
    e = np.asarray(edges, dtype=np.float64)
    last = np.asarray(size, dtype=np.float64) - 1
    a, b = e[..., :-1], e[..., 1:]
    inset = (b - a) * BORDER
    # minimum(maximum()) is np.clip's result, without its Python wrapper
    lo = np.minimum(np.maximum(a + inset, 0), last)
    hi = np.minimum(np.maximum(b - inset, 0), last)
    hi = np.maximum(hi, lo)
    t = (np.arange(n) + 0.5) / n
    at = np.floor(lo[..., None] + (hi - lo)[..., None] * t)
    return np.minimum(np.maximum(at, 0), last[..., None]).astype(np.intp)


def cell_colors(arr: NDArray[np.uint8], grid: Grid) -> NDArray[np.uint8]:
    """Each cell's colour: per-channel median of its interior lattice. Returns 24x24x3 uint8 RGB."""
    h, w = arr.shape[:2]
    ry, rx = _lattice((grid.ys, grid.xs), ((h,), (w,)))  # both axes in one pass
    n = ry.shape[1]
    # rows gathered whole (np.take: contiguous), then of each sampled pixel its 3 bytes, laid out per cell
    # column as channel-major runs of that cell's n samples: the copy that puts each cell's samples of one
    # channel last then moves runs of n bytes, not single bytes (a median ignores the samples' order)
    rows = np.take(arr, ry.ravel(), axis=0).reshape(GRID * n, w * 3)
    channel_runs = (rx[:, None, :] * 3 + np.arange(3)[None, :, None]).ravel()
    picked = np.take(rows, channel_runs, axis=1).reshape(GRID, n, GRID, 3, n)
    block = picked.transpose(0, 2, 3, 1, 4).astype(np.int32, order="C").reshape(GRID, GRID, 3, n * n)
    # median of an even count = mean of the two middle values, rounded half up; numpy sorts short int32 rows
    # with SIMD on AVX2, AVX-512 and NEON alike (int16 only on AVX-512), several times faster than its radix
    # sort of uint8 or np.partition
    k = n * n
    block.sort(axis=3)
    mid = block[..., (k - 1) // 2] + block[..., k // 2]
    mid += 1
    mid //= 2
    return mid.astype(np.uint8)


def extract(arr: NDArray[np.uint8], grid: Grid, *, tolerance: float | None = None,
            palette: pal.Palette | None = None, raw: NDArray[np.uint8] | None = None,
            reduced: NDArray[np.uint8] | None = None) -> tuple[NDArray[np.uint8], NDArray[np.uint8]]:
    """`grid` (palette None) or `grid-palette` candidate of an HxWx3 uint8 sample; returns (candidate, raw
    cell colours), both 24x24x3 uint8 RGB.

    `tolerance` is how far (CIE76 delta E, merge.TOLERANCE when None; 0 = no reduction) a cell may move from
    the colour the model drew; `raw` are the sample's cell colours when already computed (cell_colors), and
    `reduced` their reduce_colours at this tolerance (the `grid` candidate: every palette step starts from it)."""
    cells = cell_colors(arr, grid) if raw is None else raw
    tol = TOLERANCE if tolerance is None else float(tolerance)
    reduced = reduce_colours(cells, tol) if reduced is None else reduced
    if palette is None:
        return reduced, cells
    if palette.mode == "k":
        if palette.k is None:
            raise ValueError("a 'k' palette needs k")
        return pal.kmeans_colors(reduced, int(palette.k)), cells
    if palette.colors is None:
        raise ValueError(f"a {palette.mode!r} palette needs colors")
    return snap_to_palette(reduced, cells, palette.colors, palette.lab, tol, palette.index(tol)), cells

