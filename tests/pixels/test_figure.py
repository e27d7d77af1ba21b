"""The figure and its background, found per picture: flat, split, striped, checkered and gradient backgrounds
are all background; what touches the top in the middle (hair, a hat) and a face in a background colour behind
an outline are figure."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image
from punk_fixtures import OUTLINE, figure_of, punk

from bespoke.pixels.colour import rgb_to_lab
from bespoke.pixels.figure import (
    background_mask,
    components,
    figure_mask,
    lab_background_mask,
    neighbour_distances,
)


def _on(background: np.ndarray) -> np.ndarray:
    """The template punk painted over a 24x24x3 background picture."""
    px = background.copy()
    mask = figure_of()
    px[mask] = punk()[mask]
    return px


def test_a_flat_background_is_exactly_what_is_not_the_punk():
    assert (figure_mask(punk()) == figure_of()).all()
    assert (background_mask(punk()) == ~figure_of()).all()


@pytest.mark.parametrize("kind", ["split", "stripes", "checkered", "gradient", "quadrants"])
def test_patterned_backgrounds_are_background(kind):
    ys, xs = np.mgrid[0:24, 0:24]
    bg = np.empty((24, 24, 3), dtype=np.uint8)
    a, b = np.array([200, 90, 70], np.uint8), np.array([160, 60, 50], np.uint8)  # delta E 17: two colours
    if kind == "split":
        pattern = xs >= 12
    elif kind == "stripes":  # horizontal stripes two rows high: each shows on both side columns
        pattern = (ys // 2) % 2 == 0
    elif kind == "checkered":  # bricks 3 wide, 2 high: below the seeded rows they meet only each other
        pattern = ((xs // 3 + ys // 2) % 2) == 0
    elif kind == "quadrants":  # the lower left quarter shows on the left column for only a few seeded rows
        pattern = (ys >= 10) & (xs < 12)
    else:
        pattern = np.zeros((24, 24), dtype=bool)
    bg[:] = a
    bg[pattern] = b
    if kind == "gradient":  # a vertical gradient in steps well under the step tolerance, top to bottom within
        bg[:] = np.stack([90 + ys, 120 + ys // 2, 200 - ys // 2], axis=-1).astype(np.uint8)  # the colour one
    assert (figure_mask(_on(bg)) == figure_of()).all(), kind
    _assert_colours_path_agrees(_on(bg))
    noisy = np.clip(_on(bg).astype(int) + np.random.default_rng(3).integers(-4, 5, (24, 24, 3)), 0, 255)
    _assert_colours_path_agrees(noisy.astype(np.uint8))  # every cell nearly its own colour, some on the edges


def _assert_colours_path_agrees(px: np.ndarray) -> None:
    """Measured once per distinct colour (what anatomy.read passes), the mask is the per-cell one."""
    codes = px.reshape(-1, 3).astype(np.int64) @ np.array([1 << 16, 1 << 8, 1])
    _, first, inverse = np.unique(codes, return_index=True, return_inverse=True)
    lab = rgb_to_lab(px.reshape(-1, 3)).reshape(24, 24, 3)
    whole = lab_background_mask(lab)
    assert (lab_background_mask(lab, neighbour_distances(lab), (first, inverse.reshape(-1))) == whole).all()


def test_hair_or_a_hat_touching_the_top_stays_figure():
    px = punk()
    px[0:5, 9:15] = (220, 40, 40)  # a tall red hat reaching the top row in the middle
    assert figure_mask(px)[0:5, 9:15].all()


def test_a_white_face_on_a_black_and_white_split_background_stays_figure():
    px = np.empty((24, 24, 3), dtype=np.uint8)
    px[:, :12], px[:, 12:] = (255, 255, 255), (0, 0, 0)
    mask = figure_of()
    face = punk(skin=(255, 255, 255))
    px[mask] = face[mask]
    # the face is the background's white and its outline the background's black, but the two background
    # colours are too far apart to be one pattern: the fill may not cross between them inside the picture
    white_face = (face == 255).all(axis=-1) & mask
    white_face[19:] = False  # the neck has no outline: where it touches the white half it is background
    assert white_face.sum() > 50 and figure_mask(px)[white_face].all()


def test_a_frame_makes_the_whole_inside_figure():
    px = punk()
    px[:2], px[-2:], px[:, :2], px[:, -2:] = OUTLINE, OUTLINE, OUTLINE, OUTLINE
    assert figure_mask(px)[2:22, 2:22].all()


def test_components_join_only_the_allowed_neighbours():
    right = np.zeros((3, 2), dtype=bool)
    down = np.zeros((2, 3), dtype=bool)
    right[0, 0] = True  # (0,0)-(0,1)
    down[0, 1] = True  # (0,1)-(1,1)
    labels = components(right, down)
    assert labels[0, 0] == labels[0, 1] == labels[1, 1] == 0
    assert len(np.unique(labels)) == 9 - 2


def _flood_labels(right: np.ndarray, down: np.ndarray) -> np.ndarray:
    """Components by a plain flood fill from each cell in flat order: the smallest flat index labels each."""
    size = down.shape[1]
    labels = np.full((size, size), -1)
    for start in range(size * size):
        if labels.flat[start] >= 0:
            continue
        todo = [divmod(start, size)]
        labels[todo[0]] = start
        while todo:
            r, c = todo.pop()
            for rr, cc, joined in ((r, c + 1, c + 1 < size and right[r, c]), (r, c - 1, c > 0 and right[r, c - 1]),
                                   (r + 1, c, r + 1 < size and down[r, c]), (r - 1, c, r > 0 and down[r - 1, c])):
                if joined and labels[rr, cc] < 0:
                    labels[rr, cc] = start
                    todo.append((rr, cc))
    return labels


@pytest.mark.parametrize("density", [0.3, 0.55, 0.8, 0.95])
def test_components_are_a_flood_fills(density):
    """Row and column runs joined pass by pass: the same labels as a flood fill, on random grids that make
    snakes and combs (many passes) as well as a few big regions, and on 1x1 and 2x2 grids."""
    rng = np.random.default_rng(int(density * 100))
    for size in (1, 2, 5, 24, 24, 24):
        right, down = rng.random((size, size - 1)) < density, rng.random((size - 1, size)) < density
        assert (components(right, down) == _flood_labels(right, down)).all()
    snake_right, snake_down = np.ones((24, 23), dtype=bool), np.zeros((23, 24), dtype=bool)
    snake_down[0::2, -1] = snake_down[1::2, 0] = True  # rows joined at alternating ends: one snake
    assert (components(snake_right, snake_down) == 0).all()
    snake_right[5, 3] = False  # cut where row 5 runs back left: its cells 0-3 and the rows below are cut off
    cut_off = np.zeros((24, 24), dtype=bool)
    cut_off[5, :4] = cut_off[6:] = True
    assert (components(snake_right, snake_down) == np.where(cut_off, 5 * 24, 0)).all()


def test_the_users_punks_have_a_figure_in_the_middle(shared_dir):
    """Every training punk's figure covers the centre of the face and leaves background in the top corners
    (the refined seeds and crossings: bricks, stripes and quadrants no longer count as figure)."""
    folder = shared_dir / "bespoke_punks"
    masks = [figure_mask(np.asarray(Image.open(p).convert("RGB"))) for p in sorted(folder.glob("*.png"))]
    assert len(masks) == 203
    assert all(m[12:17, 10:14].all() for m in masks)
    corners = np.array([m[0, 0] or m[0, -1] for m in masks])
    assert corners.mean() < 0.05
    assert np.median([m.sum() for m in masks]) < 260


def test_neighbour_distances_are_numpys_sums_of_squares():
    rng = np.random.default_rng(7)
    for size in (2, 5, 24):
        # wide magnitudes; within rounding, not bit for bit: the order numpy adds three values in is its detail
        lab = rng.normal(size=(size, size, 3)) * rng.choice([1e-3, 1.0, 1e3], size=(size, size, 3))
        right, down = neighbour_distances(lab)
        np.testing.assert_allclose(right, ((lab[:, 1:] - lab[:, :-1]) ** 2).sum(axis=-1), rtol=1e-13, atol=0)
        np.testing.assert_allclose(down, ((lab[1:] - lab[:-1]) ** 2).sum(axis=-1), rtol=1e-13, atol=0)
