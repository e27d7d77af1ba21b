"""The three spellings of a colour in preparation: RGB tuples, '#rrggbb' (reports) and packed 0xRRGGBB ints (sets)."""

from __future__ import annotations

import numpy as np

RGB = tuple[int, int, int]


def hex_colour(rgb: tuple[int, int, int] | np.ndarray) -> str:
    """'#rrggbb' for an RGB triple (Python or numpy ints)."""
    return "#{:02x}{:02x}{:02x}".format(*(int(v) for v in rgb))


def rgb_from_hex(text: str) -> RGB:
    """The RGB triple of a '#rrggbb' string."""
    return int(text[1:3], 16), int(text[3:5], 16), int(text[5:7], 16)


def pack(rgb: RGB) -> int:
    """An RGB triple as one 0xRRGGBB int."""
    r, g, b = rgb
    return (r << 16) | (g << 8) | b


def packed_colours(rgb: np.ndarray) -> set[int]:
    """The distinct colours of an ...x3 uint8 array, packed as 0xRRGGBB ints."""
    flat = rgb.reshape(-1, 3).astype(np.uint32)
    return set(np.unique((flat[:, 0] << 16) | (flat[:, 1] << 8) | flat[:, 2]).tolist())


def packed_to_hex(packed: int) -> str:
    """'#rrggbb' for a packed 0xRRGGBB int."""
    return f"#{packed:06x}"
