"""Synthetic 24x24 punks made from a seed: the project's own data for the demo, tests and benchmarks.

They imitate the real Bespoke Punks closely enough to exercise everything around the trainer: a solid
or patterned background, a head with shaded skin, hair, eyes, mouth, optional accessories, 20-60 colours,
and a caption in the user's style ("pixel art, 24x24, portrait of bespoke punk lad, ...").
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from bespoke.dataset.layout import GRID

RGB = tuple[int, int, int]

SKINS: dict[str, RGB] = {
    "light skin": (236, 196, 166),
    "medium male skin tone": (196, 140, 100),
    "dark skin": (120, 78, 52),
    "pale green skin tone": (170, 214, 160),
    "golden skin": (222, 176, 92),
}
HAIRS: dict[str, RGB] = {
    "brown hair": (104, 62, 30),
    "black hair": (28, 24, 26),
    "blonde hair": (234, 204, 96),
    "red hair": (186, 60, 34),
    "lime green hair": (150, 214, 40),
    "purple hair": (124, 60, 170),
}
EYES: dict[str, RGB] = {"brown eyes": (90, 50, 24), "blue eyes": (50, 110, 210), "green eyes": (40, 150, 70), "dark eyes": (20, 20, 30)}
BACKGROUNDS: dict[str, RGB] = {
    "blue solid background": (72, 130, 220),
    "bright green background": (80, 200, 90),
    "gray solid background": (150, 150, 156),
    "pink background": (240, 160, 190),
    "orange background": (240, 150, 60),
    "purple background": (130, 100, 200),
}
SHIRTS: dict[str, RGB] = {"blue jacket": (40, 70, 160), "medium grey shirt": (120, 120, 126), "red shirt": (190, 40, 50), "white shirt": (240, 240, 236)}


@dataclass(frozen=True)
class Punk:
    """One synthetic punk: its 24x24 RGB pixels (uint8 array) and its caption."""

    pixels: np.ndarray
    caption: str
    name: str

    def image(self) -> Image.Image:
        """The pixels as a Pillow RGB image."""
        return Image.fromarray(self.pixels, "RGB")


@dataclass(frozen=True)
class _Head:
    """Where the head sits: rows top..bottom-1, columns left..right-1, hair rows from top-1."""

    top: int
    bottom: int
    left: int
    right: int
    hair_height: int

    @property
    def eye_row(self) -> int:
        """The row of the eyes, just below the hair."""
        return self.top + self.hair_height + 3


def _shade(color: RGB, amount: float) -> RGB:
    r, g, b = (int(np.clip(c * amount, 0, 255)) for c in color)
    return r, g, b


def _mix(a: RGB, b: RGB, t: float) -> RGB:
    red, green, blue = (int(round(x * (1 - t) + y * t)) for x, y in zip(a, b, strict=True))
    return red, green, blue


def _random_rgb(rng: np.random.Generator, low: int, high: int) -> RGB:
    r, g, b = (int(v) for v in rng.integers(low, high, 3))
    return r, g, b


def _pick(rng: np.random.Generator, table: dict[str, RGB]) -> tuple[str, RGB]:
    return list(table.items())[rng.integers(len(table))]


def _paint_background(px: np.ndarray, rng: np.random.Generator, name: str, colour: RGB) -> str:
    """A solid or patterned background; returns its caption tag."""
    pattern = rng.integers(4)
    px[:] = colour
    if pattern == 1:  # checkered brick
        brick = _shade(colour, 0.8)
        for y in range(GRID):
            for x in range(GRID):
                if (x // 3 + (y // 2) % 2) % 2 == 0 and y % 2 == 0:
                    px[y, x] = brick
        return "checkered brick background"
    if pattern == 2:  # split
        px[:, GRID // 2:] = _shade(colour, 0.7)
        return "split background"
    if pattern == 3:  # stepped bands (several flat colours, not a gradient)
        for band in range(4):
            px[band * 6:(band + 1) * 6] = _shade(colour, 1.0 - 0.07 * band)
    return name


def _paint_shirt(px: np.ndarray, shirt: RGB) -> None:
    """Shoulders in the shirt colour, with a lighter collar."""
    for y in range(20, GRID):
        half = 6 + (y - 20)
        px[y, 12 - half:12 + half] = shirt
    px[20, 9:15] = _shade(shirt, 1.2)


def _paint_head(px: np.ndarray, skin: RGB, head: _Head) -> None:
    """The head with three skin shades and an outline, and the neck."""
    top, bottom, left, right = head.top, head.bottom, head.left, head.right
    outline = _shade(skin, 0.45)
    shadow, light = _shade(skin, 0.82), _shade(skin, 1.08)
    for y in range(top, bottom):
        inset = 1 if y in (top, bottom - 1) else 0
        px[y, left + inset:right - inset] = skin
        px[y, left + inset] = outline
        px[y, right - inset - 1] = outline
        px[y, right - inset - 2] = shadow
    px[top, left + 1:right - 1] = outline
    px[bottom - 1, left + 2:right - 2] = outline
    px[top + 2:top + 5, left + 2] = light
    px[19:21, 11:14] = shadow  # neck


def _paint_hair(px: np.ndarray, hair: RGB, head: _Head, lady: bool) -> None:
    """Hair in two or three shades; a lady's falls down both sides of the face."""
    top, bottom, left, right = head.top, head.bottom, head.left, head.right
    hair_dark, hair_light = _shade(hair, 0.7), _shade(hair, 1.25)
    px[top - 1:top + head.hair_height, left - 1:right + 1] = hair
    px[top - 1, left:right] = hair_dark
    px[top, left + 2:left + 5] = hair_light
    if lady:
        px[top + head.hair_height:bottom - 2, left - 1] = hair
        px[top + head.hair_height:bottom - 2, right] = hair_dark


def _paint_texture(px: np.ndarray, rng: np.random.Generator, hair: RGB, shirt: RGB, head: _Head) -> None:
    """Hair strands and shirt folds in their own tones, as hand-shaded punks have."""
    strand_tones = [_shade(hair, f) for f in (0.55, 0.85, 1.1, 1.4)]
    for _ in range(int(rng.integers(4, 10))):
        x = int(rng.integers(head.left, head.right))
        y = int(rng.integers(head.top - 1, head.top + head.hair_height))
        px[y, x] = strand_tones[int(rng.integers(len(strand_tones)))]
    for y in range(21, GRID):
        px[y, 6 + (y - 20)] = _shade(shirt, 0.75)
        px[y, 17 - (y - 20)] = _shade(shirt, 0.6)


def _paint_face(px: np.ndarray, skin: RGB, eye: RGB, hair: RGB, head: _Head, lady: bool) -> None:
    """Eyes, brows, nose, mouth and blush."""
    left, right, ey = head.left, head.right, head.eye_row
    for ex in (left + 2, right - 4):
        px[ey, ex] = (250, 250, 250)
        px[ey, ex + 1] = eye
        px[ey - 1, ex:ex + 2] = _shade(hair, 0.7)
    px[ey + 2, 12] = _shade(skin, 0.82)
    lips = _mix(skin, (170, 40, 60), 0.6 if lady else 0.35)
    px[ey + 4, 11:14] = lips
    px[ey + 4, 12] = _shade(lips, 0.8)
    blush = _mix(skin, (230, 90, 100), 0.35)
    px[ey + 2, left + 1] = blush
    px[ey + 2, right - 3] = blush


def _paint_accessories(px: np.ndarray, rng: np.random.Generator, skin: RGB, head: _Head) -> list[str]:
    """Shades, earrings, a cap and freckles, each by chance; returns their caption tags."""
    top, bottom, left, right, ey = head.top, head.bottom, head.left, head.right, head.eye_row
    tags = []
    if rng.random() < 0.35:
        px[ey, left + 1:right - 1] = (10, 10, 12)
        px[ey, left + 3] = (255, 255, 255)
        px[ey, right - 3] = (255, 255, 255)
        tags.append("wearing black stunner shades with white reflection")
    if rng.random() < 0.35:
        gold = (240, 196, 40)
        px[ey + 3, left - 1] = gold
        px[ey + 3, right] = gold
        tags.append("wearing golden earrings")
    if rng.random() < 0.3:
        cap = _random_rgb(rng, 20, 240)
        px[top - 2:top + 1, left - 1:right + 1] = cap
        px[top, right:right + 3] = _shade(cap, 0.75)
        tags.append("wearing cap")
    if rng.random() < 0.25:  # a few freckles / noise pixels in distinct tones: more colours, like hand edits
        for _ in range(int(rng.integers(3, 9))):
            y, x = int(rng.integers(top + 3, bottom - 2)), int(rng.integers(left + 2, right - 3))
            px[y, x] = _mix(skin, _random_rgb(rng, 0, 255), 0.3)
        tags.append("freckles")
    return tags


def make_punk(seed: int) -> Punk:
    """A deterministic punk for `seed`."""
    # every draw from `rng` happens in a fixed order: reordering them changes every punk
    rng = np.random.default_rng(seed)
    lady = bool(rng.integers(2))
    skin_name, skin = _pick(rng, SKINS)
    hair_name, hair = _pick(rng, HAIRS)
    eye_name, eye = _pick(rng, EYES)
    bg_name, bg = _pick(rng, BACKGROUNDS)
    shirt_name, shirt = _pick(rng, SHIRTS)
    tags = [hair_name, eye_name, skin_name]

    px = np.zeros((GRID, GRID, 3), np.uint8)
    tags.append(_paint_background(px, rng, bg_name, bg))
    head = _Head(top=5, bottom=19, left=7 + int(lady), right=17 - int(lady), hair_height=int(rng.integers(2, 5)))
    _paint_shirt(px, shirt)
    tags.append(f"wearing {shirt_name}")
    _paint_head(px, skin, head)
    _paint_hair(px, hair, head, lady)
    _paint_texture(px, rng, hair, shirt, head)
    _paint_face(px, skin, eye, hair, head, lady)
    tags += _paint_accessories(px, rng, skin, head)

    kind = "lady" if lady else "lad"
    caption = f"pixel art, 24x24, portrait of bespoke punk {kind}, " + ", ".join(tags)
    return Punk(pixels=px, caption=caption, name=f"{kind}_{seed:03d}_synthetic")


def count_colors(pixels: np.ndarray) -> int:
    """The number of distinct colours in an HxWxC pixel array."""
    flat = pixels.reshape(-1, pixels.shape[-1])
    return len(np.unique(flat, axis=0))


def write_dataset(folder: Path, count: int = 24, seed: int = 0) -> list[Path]:
    """Write `count` punks as `<name>.png` + `<name>.txt` into `folder`; returns the PNG paths."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for index in range(count):
        punk = make_punk(seed * 10_000 + index)
        png = folder / f"{punk.name}.png"
        punk.image().save(png)
        (folder / f"{punk.name}.txt").write_text(punk.caption, encoding="utf-8")
        paths.append(png)
    return paths
