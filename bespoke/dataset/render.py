"""One validated 24x24 source -> its exact R x R RGB training image, proven and encoded as PNG.

Alpha policy (reported per image):
- a pixel with alpha >= 128 keeps its own RGB (semi-transparent pixels are snapped, not blended: blending
  would invent colours the artist never drew); alpha < 128 becomes the background colour.
- background `auto` (the default) is, per image, the most common opaque colour on the 1 px border when
  opaque pixels cover at least half of that border (the punk's own painted background continues into
  the hole: no colour the artist did not use), else white (a sprite on a transparent background).
  `--background COLOR` sets one colour for every image instead.
- images whose alpha is 255 everywhere are not composited at all (10 of the user's 203 are RGBA like that).
"""

from __future__ import annotations

import io
from collections import Counter
from typing import Any

import numpy as np
from PIL import Image

from bespoke.dataset.colours import RGB, hex_colour, pack, packed_colours, packed_to_hex, rgb_from_hex
from bespoke.dataset.layout import Layout
from bespoke.dataset.options import AUTO_BACKGROUND
from bespoke.dataset.sources import SourceImage

FALLBACK_BACKGROUND = (255, 255, 255)
ALPHA_THRESHOLD = 128


class PrepareInvariantError(RuntimeError):
    """A prepared image is not what the layout says or has a colour the source did not have (a bespoke bug)."""


def _most_common(pixels: np.ndarray) -> RGB:
    """Most common RGB among `pixels` (N x 3); ties go to the smallest colour so the choice is deterministic."""
    if not len(pixels):
        raise ValueError("no pixels to choose a colour from")
    counts = Counter((r, g, b) for r, g, b in pixels.tolist())
    best = max(counts.values())
    return min(colour for colour, n in counts.items() if n == best)


def _ring(array: np.ndarray) -> np.ndarray:
    """The 1 px border of an HxWxC array as an N x C array (each pixel once)."""
    return np.concatenate([array[0, :], array[-1, :], array[1:-1, 0], array[1:-1, -1]])


def composite(image: SourceImage, background: str) -> tuple[np.ndarray, dict[str, Any]]:
    """The source as 24x24 RGB with the alpha policy applied, and what was done (for the report)."""
    rgba = image.rgba
    alpha = rgba[..., 3]
    keep = alpha >= ALPHA_THRESHOLD
    rgb = rgba[..., :3].copy()
    info: dict[str, Any] = {
        "transparent_pixels": image.transparent_pixels,
        "semi_transparent_pixels": image.semi_transparent_pixels,
        "composited": False,
        "background": None,
        "background_source": None,
    }
    if keep.all():
        return rgb, info
    colour: RGB
    if background == AUTO_BACKGROUND:
        ring_rgb, ring_keep = _ring(rgba[..., :3]), _ring(keep)
        if ring_keep.sum() * 2 >= len(ring_keep):
            colour, origin = _most_common(ring_rgb[ring_keep]), "border"
        else:
            colour, origin = FALLBACK_BACKGROUND, "fallback-white"
    else:
        colour, origin = rgb_from_hex(background), "flag"
    rgb[~keep] = colour
    info.update(composited=True, background=hex_colour(colour), background_source=origin)
    return rgb, info


def source_colours(image: SourceImage, info: dict[str, Any]) -> set[int]:
    """Colours the source really has: RGB of pixels that stay (alpha >= threshold) + the background if used."""
    rgba = image.rgba
    kept = rgba[..., :3][rgba[..., 3] >= ALPHA_THRESHOLD]
    colours = packed_colours(kept) if len(kept) else set()
    if info["composited"]:
        colours.add(pack(rgb_from_hex(info["background"])))
    return colours


def border_colour(rgb: np.ndarray) -> RGB:
    """The most common colour on the 1 px border (the pad layout's margin colour)."""
    return _most_common(_ring(rgb))


def upscale(rgb: np.ndarray, layout: Layout) -> np.ndarray:
    """The R x R RGB training image for a 24x24 RGB source, built with Pillow NEAREST or from the pad edges."""
    resolution = layout.resolution
    sizes = np.array(layout.cell_sizes)
    blocks = np.repeat(np.repeat(rgb, sizes, axis=0), sizes, axis=1)
    if layout.name == "stretch":
        resized = Image.fromarray(rgb, "RGB").resize((resolution, resolution), Image.Resampling.NEAREST)
        out = np.asarray(resized)
        if out.shape != blocks.shape or not np.array_equal(out, blocks):
            raise PrepareInvariantError(f"Pillow NEAREST disagrees with the stretch layout edges at {resolution} px")
        return out
    out = np.empty((resolution, resolution, 3), np.uint8)
    out[:] = border_colour(rgb)
    start, end = layout.edges[0], layout.edges[-1]
    out[start:end, start:end] = blocks
    return out


def check_prepared(out: np.ndarray, rgb: np.ndarray, layout: Layout, allowed: set[int], name: str) -> None:
    """Bug guard: every cell of `out` is the source pixel, and no colour is outside `allowed`."""
    edges = np.array(layout.edges)
    # every pixel of cell (i, j) must equal source pixel (i, j): compare first and last row/col of each cell
    for picks in (edges[:-1], edges[1:] - 1):
        if not np.array_equal(out[np.ix_(picks, picks)], rgb):
            raise PrepareInvariantError(f"{name}: prepared cells do not match the {layout.describe()} geometry")
    extra = packed_colours(out) - allowed
    if extra:
        sample = ", ".join(packed_to_hex(c) for c in sorted(extra)[:5])
        raise PrepareInvariantError(f"{name}: {len(extra)} colours the source does not have ({sample})")


def encode_png(out: np.ndarray) -> bytes:
    """The PNG bytes of an RGB image, proven to decode back to exactly `out`."""
    buffer = io.BytesIO()
    Image.fromarray(out, "RGB").save(buffer, "PNG")
    data = buffer.getvalue()
    # read back what sd-scripts will read: PNG is lossless, but this is the proof, not an assumption
    with Image.open(io.BytesIO(data)) as check:
        if check.mode != "RGB" or not np.array_equal(np.asarray(check), out):
            raise PrepareInvariantError("the encoded PNG does not decode to the prepared pixels")
    return data
