"""The colour metrics every report uses (DESIGN.md "Metrics").

`colors_nearest` is the user's historical metric and must stay Pillow's own NEAREST: it reproduces the
70 recorded counts of the CAPTION_FIX evaluation exactly (tests/pixels/test_metrics.py).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray
from PIL import Image

from bespoke.dataset.layout import GRID

CLEAN_MAX_COLORS = 50
CLEAN_MIN_COVERAGE = 0.70


def _codes(arr: ArrayLike) -> NDArray[np.integer[Any]]:
    """One uint32 per pixel (0xRRGGBB) of an ...x3 (or ...x4, alpha ignored) array."""
    a = np.asarray(arr)
    flat = a.reshape(-1, a.shape[-1])
    if a.dtype != np.uint8:
        flat = flat[:, :3].astype(np.uint32)
    codes = flat[:, 0].astype(np.uint32)
    codes <<= 8
    codes |= flat[:, 1]
    codes <<= 8
    codes |= flat[:, 2]
    return codes


def _counts(codes: NDArray[np.integer[Any]]) -> NDArray[np.intp]:
    """How many times each distinct code occurs (in code order): np.unique(codes, return_counts=True)[1]
    from a plain sort, without np.unique's bookkeeping (these arrays are a few hundred codes)."""
    ordered = np.sort(codes)
    starts = np.flatnonzero(np.concatenate(([True], ordered[1:] != ordered[:-1], [True])))
    return np.diff(starts)


def unique_colors(arr: NDArray[Any]) -> int:
    """Number of distinct RGB triplets in an HxWx3 (or Nx3) array."""
    return int(len(np.unique(_codes(arr))))


def nearest24(img: Image.Image) -> NDArray[np.uint8]:
    """The historical 24 px image: Pillow NEAREST of the RGB sample, as a 24x24x3 uint8 array."""
    rgb = img if img.mode == "RGB" else img.convert("RGB")  # convert would copy an RGB image
    return np.asarray(rgb.resize((GRID, GRID), Image.Resampling.NEAREST))


def colors_nearest(img: Image.Image) -> int:
    """Unique RGB colours of `img.convert("RGB").resize((24, 24), Image.NEAREST)`."""
    return unique_colors(nearest24(img))


def top10_coverage(arr24: NDArray[Any]) -> float:
    """Share (0-1) of the pixels covered by the 10 most frequent colours."""
    codes = _codes(arr24)
    _, counts = np.unique(codes, return_counts=True)
    return float(np.sort(counts)[::-1][:10].sum() / len(codes))


def color_stats(arr24: NDArray[Any]) -> tuple[int, float]:
    """(unique_colors, top10_coverage) with one pass over the pixels."""
    codes = _codes(arr24)
    counts = _counts(codes)
    return int(len(counts)), float(np.sort(counts)[::-1][:10].sum() / len(codes))


def is_clean(colors: int, coverage: float) -> bool:
    """The user's coded definition: at most 50 colours and the top 10 cover at least 70 %."""
    return colors <= CLEAN_MAX_COLORS and coverage >= CLEAN_MIN_COVERAGE


def palette_codes(palette: NDArray[Any]) -> NDArray[np.integer[Any]]:
    """A palette (Nx3) as sorted 0xRRGGBB codes: what off_palette looks colours up in."""
    return np.unique(_codes(palette))


def off_palette(arr24: NDArray[Any], palette: NDArray[Any] | None,
                codes: NDArray[np.integer[Any]] | None = None) -> float | None:
    """Share (0-1) of pixels whose RGB colour is not exactly in `palette` (Nx3); None without a palette.
    `codes` are palette_codes(palette) when already computed (a big palette, many candidates)."""
    if palette is None:
        return None
    table = palette_codes(palette) if codes is None else codes
    pixels = np.sort(_codes(arr24))  # sorted, the binary searches walk the table in order: faster
    at = np.minimum(np.searchsorted(table, pixels), len(table) - 1)
    return float(1.0 - np.count_nonzero(table[at] == pixels) / len(pixels))  # the very float of .mean()


def background_uniform(arr24: NDArray[Any], share: float = 0.9) -> bool:
    """True when the border -- top row, left and right columns; not the bottom row, where the shoulders
    are -- is one colour: the most common border colour covers at least `share` of those pixels."""
    border = np.concatenate([arr24[0], arr24[1:, 0], arr24[1:, -1]])
    return bool(_counts(_codes(border)).max() / len(border) >= share)


def upsample_index(edges: ArrayLike, size: int) -> NDArray[np.intp]:
    """For each of `size` pixel positions, the index of the cell (by its edges) whose span holds its centre."""
    cell = np.searchsorted(np.asarray(edges, dtype=np.float64), np.arange(size) + 0.5, side="right")
    cell -= 1
    np.maximum(cell, 0, out=cell)  # np.clip's, in two ufunc calls (np.clip's own overhead is larger)
    return np.minimum(cell, GRID - 1, out=cell)


def _lattice(sample: NDArray[np.uint8], step: int) -> NDArray[np.uint8]:
    """sample[::step, ::step] (H x W x 3), contiguous. Copied as 3-byte records: numpy copies (and casts) a
    strided view of 3-byte pixels channel by channel, about twice as slowly."""
    if not sample.flags.c_contiguous or sample.ndim != 3 or sample.shape[-1] != 3 or sample.dtype != np.uint8:
        return np.ascontiguousarray(sample[::step, ::step])
    return sample.view(np.dtype((np.void, 3)))[::step, ::step].copy().view(np.uint8)


def grid_error(sample: NDArray[np.uint8], arr24: NDArray[np.uint8], ix: NDArray[np.intp],
               iy: NDArray[np.intp]) -> float:
    """Mean absolute difference (0-255) between the sample and the candidate drawn back on its grid.

    `ix`/`iy` map the sample's columns/rows to cells (upsample_index). Computed on a lattice of at most
    ~64x64 pixels (every 8th row and column at 512 px): the same mean within a fraction of a level.
    """
    step = max(1, sample.shape[0] // 64)
    cells = (iy[::step] * arr24.shape[1])[:, None] + ix[::step]
    diff = np.subtract(_lattice(sample, step), arr24.reshape(-1, arr24.shape[-1]).take(cells, axis=0),
                       dtype=np.int16)
    np.abs(diff, out=diff)
    return float(diff.sum()) / diff.size  # the integer sum is exact: the same float as diff.mean()


BLACK_MAX = 8  # a NaN sample decodes as black: no pixel brighter than this
SOLID_SPREAD = 12  # a plain image: every channel within this many levels across the whole image
NEAR_SOLID_SHARE = 0.95  # one colour covering this share of the faithful candidate's cells
# grid_error above which a sample is not pixel art: the user's real LoRA samples 1.9-6.3, the demo's blurred and
# JPEG-damaged punks 7.4-12.3, a portrait drawn in lines thinner than a cell (keep_tokens_3 epoch 1) 25.1. The
# grid's confidence cannot tell these apart alone: that portrait's grid is found at 0.42, the blurred punks' at
# 0.04-0.15, the real samples' at 0.88-0.95
NOT_PIXEL_ART = 16.0


def degenerate(sample: NDArray[np.uint8], grid_source: str, candidate: NDArray[np.uint8],
               error: float | None = None) -> str | None:
    """Why a sample is no portrait at all, or None: "nan-black" (all black, what a NaN in the VAE decodes
    to), "solid" (one plain colour), "near-solid" (one colour covers NEAR_SOLID_SHARE of the faithful 24 px
    candidate's cells), "no-grid" (no pixel grid found: noise, a photo, a plain gradient; a 24 px picture,
    grid source "native", is its own grid), "not-pixel-art" (`error`, the candidate's grid_error on the
    sample, above NOT_PIXEL_ART: no 24-cell picture explains it, e.g. lines thinner than a cell)."""
    step = max(1, sample.shape[0] // 64)
    lattice = sample[::step, ::step]
    # channel by channel (a reduction over the pixel axis of an N x 3 array is several times slower), the others
    # only while the first leaves it open: a sample is seldom black or plain, and its first channel mostly says so
    channels = [lattice[..., c] for c in range(3)]
    brightest = int(channels[0].max())
    if brightest <= BLACK_MAX and all(int(c.max()) <= BLACK_MAX for c in channels[1:]):
        return "nan-black"
    if brightest - int(channels[0].min()) <= SOLID_SPREAD and all(
            int(c.max()) - int(c.min()) <= SOLID_SPREAD for c in channels[1:]):
        return "solid"
    counts = _counts(_codes(candidate))
    if counts.max() >= NEAR_SOLID_SHARE * counts.sum():
        return "near-solid"
    if grid_source not in ("detected", "native"):
        return "no-grid"
    if error is not None and error > NOT_PIXEL_ART:
        return "not-pixel-art"
    return None
