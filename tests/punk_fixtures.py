"""Constructed 24 px punks on the user's template (bespoke.pixels.anatomy): a head and shoulders on a
background, eyes at rows 11-12, the mouth at row 17. Tests change one thing about them (a stray pixel, a body,
a frame, the background colour) and check the term that should see it."""

from __future__ import annotations

import numpy as np

SKIN = (236, 190, 160)
OUTLINE = (20, 20, 20)
HAIR = (110, 62, 30)
LIPS = (200, 60, 70)
SHIRT = (60, 90, 170)
GREEN = (40, 220, 60)
BLUE = (60, 110, 230)
GREY = (150, 150, 156)


def punk(background=GREY, hair=HAIR, skin=SKIN, shirt=SHIRT, eyes=OUTLINE, shift: int = 0) -> np.ndarray:
    """A 24x24x3 uint8 punk; `shift` moves the whole figure that many cells to the right."""
    px = np.empty((24, 24, 3), dtype=np.uint8)
    px[:] = background
    px[4:9, 7:17] = hair  # hair on top
    px[9:20, 7] = OUTLINE  # the face's outline
    px[9:20, 16] = OUTLINE
    px[19, 8:16] = OUTLINE
    px[8:19, 8:16] = skin
    px[4, 7:17] = OUTLINE
    px[4:9, 6] = OUTLINE
    px[4:9, 17] = OUTLINE
    px[11, 9:11] = (250, 250, 250)  # eye whites above the pupils
    px[11, 14:16] = (250, 250, 250)
    px[12, 9:11] = eyes
    px[12, 14:16] = eyes
    px[15, 12] = (200, 150, 120)  # the nose
    px[17, 11:14] = LIPS
    px[20:22, 10:14] = skin  # the neck
    px[22:24, 5:19] = shirt  # the shoulders
    px[21, 7:17] = shirt
    if shift:
        moved = np.empty_like(px)
        moved[:] = background
        moved[:, shift:] = px[:, :24 - shift]
        px = moved
    return px


def figure_of(background=GREY, **kwargs) -> np.ndarray:
    """Where punk() painted the figure: every cell not in the background colour."""
    return (punk(background, **kwargs) != np.array(background, dtype=np.uint8)).any(axis=-1)


def body(background=GREY) -> np.ndarray:
    """A full body: the head at half size on top, a torso and legs below (what "full body, character
    sprite" gives)."""
    px = np.empty((24, 24, 3), dtype=np.uint8)
    px[:] = background
    head = punk(background)[::2, ::2]  # 12x12
    px[0:12, 6:18] = head
    px[12:20, 8:16] = SHIRT
    px[20:24, 9:11] = (40, 40, 60)
    px[20:24, 13:15] = (40, 40, 60)
    return px


def framed(background=GREY) -> np.ndarray:
    """The punk inside a picture frame two cells wide (a framed portrait)."""
    px = punk(background).copy()
    px[:2], px[-2:], px[:, :2], px[:, -2:] = (90, 60, 30), (90, 60, 30), (90, 60, 30), (90, 60, 30)
    return px


def variants(n: int = 24) -> list[np.ndarray]:
    """n template punks in different colours (a training set for the silhouette)."""
    rng = np.random.default_rng(0)
    out = []
    for _ in range(n):
        bg, hair, shirt = (tuple(int(v) for v in rng.integers(40, 220, 3)) for _ in range(3))
        out.append(punk(bg, hair=hair, shirt=shirt))
    return out
