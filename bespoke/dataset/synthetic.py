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

GRID = 24

SKINS = {
    "light skin": (236, 196, 166),
    "medium male skin tone": (196, 140, 100),
    "dark skin": (120, 78, 52),
    "pale green skin tone": (170, 214, 160),
    "golden skin": (222, 176, 92),
}
HAIRS = {
    "brown hair": (104, 62, 30),
    "black hair": (28, 24, 26),
    "blonde hair": (234, 204, 96),
    "red hair": (186, 60, 34),
    "lime green hair": (150, 214, 40),
    "purple hair": (124, 60, 170),
}
EYES = {"brown eyes": (90, 50, 24), "blue eyes": (50, 110, 210), "green eyes": (40, 150, 70), "dark eyes": (20, 20, 30)}
BACKGROUNDS = {
    "blue solid background": (72, 130, 220),
    "bright green background": (80, 200, 90),
    "gray solid background": (150, 150, 156),
    "pink background": (240, 160, 190),
    "orange background": (240, 150, 60),
    "purple background": (130, 100, 200),
}
SHIRTS = {"blue jacket": (40, 70, 160), "medium grey shirt": (120, 120, 126), "red shirt": (190, 40, 50), "white shirt": (240, 240, 236)}


@dataclass(frozen=True)
class Punk:
    """One synthetic punk: its 24x24 RGB pixels (uint8 array) and its caption."""

    pixels: np.ndarray
    caption: str
    name: str

    def image(self) -> Image.Image:
        return Image.fromarray(self.pixels, "RGB")


def _shade(color, amount: float) -> tuple[int, int, int]:
    return tuple(int(np.clip(c * amount, 0, 255)) for c in color)


def _mix(a, b, t: float) -> tuple[int, int, int]:
    return tuple(int(round(x * (1 - t) + y * t)) for x, y in zip(a, b, strict=True))


def make_punk(seed: int) -> Punk:
    """A deterministic punk for `seed`."""
    rng = np.random.default_rng(seed)
    pick = lambda table: list(table.items())[rng.integers(len(table))]  # noqa: E731
    lady = bool(rng.integers(2))
    skin_name, skin = pick(SKINS)
    hair_name, hair = pick(HAIRS)
    eye_name, eye = pick(EYES)
    bg_name, bg = pick(BACKGROUNDS)
    shirt_name, shirt = pick(SHIRTS)
    tags = [hair_name, eye_name, skin_name]

    px = np.zeros((GRID, GRID, 3), np.uint8)
    pattern = rng.integers(4)
    px[:] = bg
    if pattern == 1:  # checkered brick
        brick = _shade(bg, 0.8)
        for y in range(GRID):
            for x in range(GRID):
                if (x // 3 + (y // 2) % 2) % 2 == 0 and y % 2 == 0:
                    px[y, x] = brick
        bg_name = "checkered brick background"
    elif pattern == 2:  # split
        px[:, GRID // 2:] = _shade(bg, 0.7)
        bg_name = "split background"
    elif pattern == 3:  # stepped bands (several flat colours, not a gradient)
        for band in range(4):
            px[band * 6:(band + 1) * 6] = _shade(bg, 1.0 - 0.07 * band)
    tags.append(bg_name)

    # shoulders / shirt
    for y in range(20, GRID):
        half = 6 + (y - 20)
        px[y, 12 - half:12 + half] = shirt
    px[20, 9:15] = _shade(shirt, 1.2)
    tags.append(f"wearing {shirt_name}")

    # head with three skin shades and an outline
    outline = _shade(skin, 0.45)
    shadow, light = _shade(skin, 0.82), _shade(skin, 1.08)
    top, bottom, left, right = 5, 19, 7 + int(lady), 17 - int(lady)
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

    # hair: two or three shades
    hair_dark, hair_light = _shade(hair, 0.7), _shade(hair, 1.25)
    hair_height = int(rng.integers(2, 5))
    px[top - 1:top + hair_height, left - 1:right + 1] = hair
    px[top - 1, left:right] = hair_dark
    px[top, left + 2:left + 5] = hair_light
    if lady:
        px[top + hair_height:bottom - 2, left - 1] = hair
        px[top + hair_height:bottom - 2, right] = hair_dark

    # texture: hair strands, shirt folds and blush in their own tones, as hand-shaded punks have
    strand_tones = [_shade(hair, f) for f in (0.55, 0.85, 1.1, 1.4)]
    for _ in range(int(rng.integers(4, 10))):
        x = int(rng.integers(left, right))
        y = int(rng.integers(top - 1, top + hair_height))
        px[y, x] = strand_tones[int(rng.integers(len(strand_tones)))]
    for y in range(21, GRID):
        px[y, 6 + (y - 20)] = _shade(shirt, 0.75)
        px[y, 17 - (y - 20)] = _shade(shirt, 0.6)
    blush = _mix(skin, (230, 90, 100), 0.35)

    # eyes, brows, nose, mouth
    ey = top + hair_height + 3
    for ex in (left + 2, right - 4):
        px[ey, ex] = (250, 250, 250)
        px[ey, ex + 1] = eye
        px[ey - 1, ex:ex + 2] = hair_dark
    px[ey + 2, 12] = shadow
    lips = _mix(skin, (170, 40, 60), 0.6 if lady else 0.35)
    px[ey + 4, 11:14] = lips
    px[ey + 4, 12] = _shade(lips, 0.8)
    px[ey + 2, left + 1] = blush
    px[ey + 2, right - 3] = blush

    # accessories
    if rng.random() < 0.35:
        frame = (10, 10, 12)
        px[ey, left + 1:right - 1] = frame
        px[ey, left + 3] = (255, 255, 255)
        px[ey, right - 3] = (255, 255, 255)
        tags.append("wearing black stunner shades with white reflection")
    if rng.random() < 0.35:
        gold = (240, 196, 40)
        px[ey + 3, left - 1] = gold
        px[ey + 3, right] = gold
        tags.append("wearing golden earrings")
    if rng.random() < 0.3:
        cap = tuple(int(v) for v in rng.integers(20, 240, 3))
        px[top - 2:top + 1, left - 1:right + 1] = cap
        px[top, right:right + 3] = _shade(cap, 0.75)
        tags.append("wearing cap")
    if rng.random() < 0.25:  # a few freckles / noise pixels in distinct tones: more colours, like hand edits
        for _ in range(int(rng.integers(3, 9))):
            y, x = int(rng.integers(top + 3, bottom - 2)), int(rng.integers(left + 2, right - 3))
            px[y, x] = _mix(skin, tuple(int(v) for v in rng.integers(0, 255, 3)), 0.3)
        tags.append("freckles")

    kind = "lady" if lady else "lad"
    caption = f"pixel art, 24x24, portrait of bespoke punk {kind}, " + ", ".join(tags)
    return Punk(pixels=px, caption=caption, name=f"{kind}_{seed:03d}_synthetic")


def count_colors(pixels: np.ndarray) -> int:
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
