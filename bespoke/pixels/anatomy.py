"""Where the face, eyes, mouth and hair of a 24 px punk are, and what colour each is drawn in.

The user's punks are drawn on one template (measured on the 203 training punks: the face is the skin-coloured
region around rows 12-16, columns 9-14; the eyes are two 2x2 blocks at rows 11-12, columns 9-10 and 14-15; the
mouth is row 17, columns 11-13), so a picture is read against it, allowing the whole face to sit up to
MAX_SHIFT cells off:

- regions: cells joined to a 4-neighbour within REGION_TOLERANCE (CIE76 delta E) -- one colour as the eye
  sees it, whatever noise a 512 px sample leaves in its cells;
- skin: the region covering most of the face window among the figure's cells (bespoke.pixels.figure), and its
  colour (the median of its cells);
- eyes and mouth: the template's cells, moved by the offset (up to MAX_SHIFT each way) at which the picture
  best matches the template -- eyes and mouth not skin, the cells between and around them skin; each
  feature's colour is its cell most unlike the skin (a pupil, a lens, a lip);
- hair: the figure's cells above the eyes that are not skin; its colour is its biggest region's (a hat counts
  as hair here: it is what frames the face).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from bespoke.pixels.colour import rgb_to_lab
from bespoke.pixels.figure import components, lab_background_mask, neighbour_distances

REGION_TOLERANCE = 10.0  # delta E between neighbouring cells of one region
FACE_WINDOW = (slice(12, 17), slice(9, 15))  # rows, columns the skin covers on (almost) every training punk
EYES = (((11, 9), (11, 10), (12, 9), (12, 10)), ((11, 14), (11, 15), (12, 14), (12, 15)))
MOUTH = ((17, 11), (17, 12), (17, 13))
# skin on the template: between the eyes, the cheeks below them, above and below the mouth
SKIN_CELLS = tuple((r, c) for r in (11, 12) for c in (11, 12, 13)) + tuple((r, c) for r in (13, 14)
                                                                       for c in range(9, 16)) \
    + tuple((r, c) for r in (16, 18) for c in (11, 12, 13))
EYE_ROW = 11  # hair is what the figure has above this row (moved with the face)
MAX_SHIFT = 2  # cells the face may sit off the template
MIN_SKIN = 12  # cells: a smaller skin region is no face
FEW_CELLS = 16  # a mask of at most this many cells is measured in Python (an eye, the mouth)
PAIRWISE_FROM = 8  # numpy's sum adds this many values or more in several partial sums
_CODE_WEIGHTS = np.array([1 << 16, 1 << 8, 1], dtype=np.int32)  # an RGB colour packed in one int


def regions(lab: NDArray[np.float64], tolerance: float = REGION_TOLERANCE,
            distances: tuple[NDArray[np.float64], NDArray[np.float64]] | None = None) -> NDArray[np.intp]:
    """A region label per cell of an NxNx3 CIELAB picture: 4-neighbours within `tolerance` share a label
    (the smallest flat index of the region). `distances`: neighbour_distances(lab), when already measured."""
    right_d2, down_d2 = neighbour_distances(lab) if distances is None else distances
    limit = tolerance * tolerance
    return components(right_d2 <= limit, down_d2 <= limit)


@dataclass(frozen=True)
class Anatomy:
    """A punk read against the template: masks are NxN bool, colours CIELAB (3 floats) or None when absent."""

    lab: NDArray[np.float64]  # the picture in CIELAB (NxNx3)
    background: NDArray[np.bool_]
    background_colour: NDArray[np.float64] | None
    skin: NDArray[np.bool_]
    skin_colour: NDArray[np.float64] | None
    eyes: tuple[NDArray[np.bool_], NDArray[np.bool_]]  # left, right
    mouth: NDArray[np.bool_]
    hair: NDArray[np.bool_]
    hair_colour: NDArray[np.float64] | None
    regions: NDArray[np.intp] | None = None  # `regions(lab)`, when read kept them
    # (the first flat cell of each distinct RGB colour, each cell's colour among them, the cells of each),
    # when read kept them
    colours: tuple[NDArray[np.intp], NDArray[np.intp], NDArray[np.intp]] | None = None


def _template(cells: tuple[tuple[int, int], ...], shift: tuple[int, int], size: int) -> NDArray[np.bool_]:
    mask = np.zeros((size, size), dtype=bool)
    for row, col in cells:
        r, c = row + shift[0], col + shift[1]
        if 0 <= r < size and 0 <= c < size:
            mask[r, c] = True
    return mask


def _biggest_colour(lab: NDArray[np.float64], labels: NDArray[np.intp],
                    mask: NDArray[np.bool_]) -> NDArray[np.float64] | None:
    """The median colour of the biggest region inside `mask` (None for an empty mask)."""
    inside = labels[mask]
    if not len(inside):
        return None
    # a region label is a flat index: bincount's argmax is np.unique's (the smallest label of the most cells);
    # its cells inside the mask, in the mask's (row-major) order: one gather of those cells alone
    return median_colour(lab[(labels == int(np.argmax(np.bincount(inside)))) & mask])


def median_colour(colours: NDArray[np.float64]) -> NDArray[np.float64]:
    """np.median(colours, axis=0) of Mx3 CIELAB colours (M >= 1), the same floats: the mean of the middle one
    or two of each sorted channel (np.mean's sum and division, written out), without np.median's or np.mean's
    general machinery (several times slower here)."""
    ordered = np.sort(colours, axis=0)
    count = len(ordered)
    if count % 2:
        return ordered[count // 2]
    return (ordered[count // 2 - 1] + ordered[count // 2]) / 2


@functools.lru_cache(maxsize=64)
def _face(shift: tuple[int, int], size: int) -> tuple[NDArray[np.bool_], NDArray[np.bool_], NDArray[np.bool_]]:
    """The template's left eye, right eye and mouth moved by `shift` (built once; read-only, shared)."""
    masks = (_template(EYES[0], shift, size), _template(EYES[1], shift, size), _template(MOUTH, shift, size))
    for mask in masks:
        mask.flags.writeable = False
    return masks


@functools.lru_cache(maxsize=8)
def _face_window(size: int) -> NDArray[np.bool_]:
    window = np.zeros((size, size), dtype=bool)
    window[FACE_WINDOW] = True
    window.flags.writeable = False
    return window


def _skin(labels: NDArray[np.intp], figure: NDArray[np.bool_]) -> NDArray[np.bool_]:
    size = labels.shape[0]
    inside = labels[_face_window(size) & figure]
    if not len(inside):
        return np.zeros((size, size), dtype=bool)
    skin = labels == int(np.argmax(np.bincount(inside)))  # as in _biggest_colour
    return skin if np.count_nonzero(skin) >= MIN_SKIN else np.zeros((size, size), dtype=bool)


_STEPS = sorted(((dy, dx) for dy in range(-MAX_SHIFT, MAX_SHIFT + 1) for dx in range(-MAX_SHIFT, MAX_SHIFT + 1)),
                key=lambda s: abs(s[0]) + abs(s[1]))  # the smallest move first: it wins ties
@functools.lru_cache(maxsize=8)
def _step_scores(size: int) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Per step of _STEPS, with off = the template's eye and mouth cells and on = its skin cells (flat):
    (the count of off cells, on - off per cell), so that a skin mask's matches are count + (on - off) . skin
    (built once)."""
    off = np.stack([_template(EYES[0] + EYES[1] + MOUTH, s, size) for s in _STEPS]).reshape(len(_STEPS), -1)
    on = np.stack([_template(SKIN_CELLS, s, size) for s in _STEPS]).reshape(len(_STEPS), -1)
    return off.sum(axis=1).astype(np.float64), on.astype(np.float64) - off


def _shift(skin: NDArray[np.bool_]) -> tuple[int, int]:
    """The offset at which the most template cells match: eyes and mouth off the skin, SKIN_CELLS on it
    (ties: the smallest move). Small integers, exact in float64: one matrix-vector product."""
    off_count, change = _step_scores(skin.shape[0])
    scores = off_count + change @ skin.ravel().astype(np.float64)
    return _STEPS[int(np.argmax(scores))]


def _distinct_colours(cells: NDArray[np.uint8]) -> tuple[NDArray[np.intp], NDArray[np.intp], NDArray[np.intp]]:
    """(the first flat cell of each distinct RGB colour, each cell's colour among them, the cells of each):
    np.unique(codes, return_index=True, return_inverse=True, return_counts=True) of each cell's colour packed
    in one int, written out (np.unique's wrapper costs more than its few steps on 576 cells)."""
    codes = cells.reshape(-1, 3).astype(np.int32) @ _CODE_WEIGHTS
    order = np.argsort(codes, kind="stable")  # np.unique's for return_index: the first cell of a colour first
    ordered = codes[order]
    edges = np.ones(len(codes) + 1, dtype=bool)  # where a colour starts in `ordered`, and its end
    np.not_equal(ordered[1:], ordered[:-1], out=edges[1:-1])
    bounds = np.flatnonzero(edges)
    counts = bounds[1:] - bounds[:-1]
    inverse = np.empty(len(codes), dtype=np.intp)
    inverse[order] = np.repeat(np.arange(len(counts)), counts)
    return order[bounds[:-1]], inverse, counts


def read(cells: NDArray[np.uint8]) -> Anatomy:
    """Read a 24x24 RGB picture against the template (module docstring)."""
    size = cells.shape[0]
    lab = rgb_to_lab(cells.reshape(-1, 3)).reshape(size, size, 3)
    distances = neighbour_distances(lab)
    labels = regions(lab, distances=distances)
    colours = _distinct_colours(cells)
    background = lab_background_mask(lab, distances, colours[:2])
    figure = ~background
    skin = _skin(labels, figure)
    has_skin = bool(skin.any())
    shift = _shift(skin) if has_skin else (0, 0)
    left_eye, right_eye, mouth = _face(shift, size)
    eyes = (left_eye, right_eye)
    hair = figure & ~skin
    hair[max(0, EYE_ROW + shift[0]):] = False  # hair is above the eyes
    return Anatomy(lab=lab, background=background, background_colour=_biggest_colour(lab, labels, background),
                   skin=skin, skin_colour=median_colour(lab[skin]) if has_skin else None,
                   eyes=eyes, mouth=mouth, hair=hair, hair_colour=_biggest_colour(lab, labels, hair), regions=labels,
                   colours=colours)


def sq_delta(a: Sequence[float], b: Sequence[float]) -> float:
    """The squared delta E between two CIELAB colours (3 floats each): bit for bit numpy's
    ((a - b) ** 2).sum(axis=-1), which adds the three squares in this order, without numpy's cost per call."""
    d0, d1, d2 = a[0] - b[0], a[1] - b[1], a[2] - b[2]
    return d0 * d0 + d1 * d1 + d2 * d2


def mean_of(values: Sequence[float]) -> float:
    """float(np.mean(values)) of one or more floats, the same float: numpy adds fewer than PAIRWISE_FROM
    values in order (its pairwise sum splits only longer ones) and divides by the count; in Python for a
    few, without numpy's cost per call."""
    if len(values) >= PAIRWISE_FROM:
        return float(np.mean(values))
    total = values[0]
    for value in values[1:]:
        total += value
    return total / len(values)


def _sq_deltas(anatomy: Anatomy, mask: NDArray[np.bool_],
               colour: NDArray[np.float64]) -> NDArray[np.float64] | list[float]:
    """The squared delta E of each cell in `mask` to `colour`: in Python for a feature's few cells (numpy's
    cost per call is more than the sums), the same floats as numpy's for a large mask."""
    cells = anatomy.lab[mask]
    if len(cells) > FEW_CELLS:
        return ((cells - colour) ** 2).sum(axis=-1)
    reference = colour.tolist()
    return [sq_delta(cell, reference) for cell in cells.tolist()]


def most_unlike(anatomy: Anatomy, mask: NDArray[np.bool_], colour: NDArray[np.float64]) -> float:
    """The largest delta E between a cell in `mask` and `colour` (0 for an empty mask): how far the most
    distinct cell of a feature stands from what surrounds it."""
    squares = _sq_deltas(anatomy, mask, colour)
    # a square root is monotonic: the root of the largest square is the largest root
    return math.sqrt(max(squares)) if len(squares) else 0.0


def nearest(anatomy: Anatomy, mask: NDArray[np.bool_], colour: NDArray[np.float64]) -> float | None:
    """The smallest delta E between a cell in `mask` and `colour` (None for an empty mask)."""
    squares = _sq_deltas(anatomy, mask, colour)
    return math.sqrt(min(squares)) if len(squares) else None
