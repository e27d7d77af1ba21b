"""Is a candidate a new design or a copy of a training image? The nearest training figure at 24 px, and diversity.

A punk is its figure; the background it stands on is what a LoRA varies most freely (the user's set holds
background-only twins: lad_102_bunya / bunya2, lady_006_pepper / pepperabstract). So a candidate is compared
with each training image's *figure* (bespoke.pixels.figure, found once per training image, where the pixel art
is clean), allowing the figure to sit up to SHIFT cells off on each axis:

    share = max over shifts of (figure cells of the training image whose colour the candidate has within
            MATCH_TOLERANCE delta E at the same place) / (figure cells that stay in the frame at that shift)

The candidate's own background is never looked at, so a figure copied onto any background -- flat, split,
gradient, striped -- keeps its share, and the candidate's figure is not needed (finding it on a sample is the
harder side). The nearest training image is the one with the highest share; at NEAR_COPY or above the
candidate is a near copy.

Why MATCH_TOLERANCE = 10 (wider than the candidates' 5): a copy comes back through the model's tint and noise;
the user's punks copied onto a new background, moved a cell and put through SD-like damage match their own
figure on 0.93-1.0 of its cells at 10 (p5 0.98), 0.89-1.0 at 8, while different designs gain nothing from
the wider tolerance (they differ by whole features, not shades).
Why NEAR_COPY = 0.95 (benchmarks/bench_novelty.py, each of the user's 203 punks against the others):
background-only twins found by their figures (one's figure in the other cell for cell: lad_102_bunya /
bunya2, lady_009_bluesilk / bluesilkabstract, ...) share 0.99-1.0; different designs (names and captions
differ beyond the background) share 0.09 in the median and at most 0.934 -- the user's own variants of one
lady (lady_022_gold / lady_023_silver: another bow and earrings; boisenberry / bayleaf: a cigarette), each
an edit of under a tenth of the figure. Copies (each punk on a new background, moved up to two cells, on a
gradient, through SD-like damage): 99-100 % flagged. Glued halves of two punks: 0.46-0.82, none; the real
samples' shown candidates: 0.08-0.69, none.

Cost: the training figures are kept as one list of cells (place in the frame, index of a distinct figure
colour); a candidate's colours are matched with those few thousand colours once, through lists built once per
training set (ColourLists: colour.pairs_within's pairs, looking at half the colours), an upper bound per
training image (of each figure colour, at most as many cells as the candidate has in matching colours,
wherever) orders the images, and the shifted comparison runs while a bound can beat the best share found --
so a share of RESOLVED or more is exact; below it the search stops after the first FIRST images (0.06 low at
most, 0.002 on average, on the real samples and generated punks). About 0.55 ms CPU per candidate against the
user's 203 punks (0.9 ms before the lists and the one-step first FIRST; the unshifted whole-picture
comparison it replaced took 0.37).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
from numpy.typing import NDArray
from PIL import Image

from bespoke.dataset.layout import GRID
from bespoke.pixels.colour import pairs_within, rgb_to_lab, unique_rgb
from bespoke.pixels.figure import figure_mask

NEAR_COPY = 0.95  # share of a training figure the candidate reproduces: at or above, a near copy
MATCH_TOLERANCE = 10.0  # delta E within which a candidate's cell matches the training figure's cell
SHIFT = 2  # cells: the figure may sit this far off on each axis
IMAGE_SUFFIXES = (".png", ".gif", ".bmp", ".webp")
BATCH = 8  # training images compared per step of the search
RESOLVED = 0.5  # shares from here up are exact; below, the search stops after FIRST images ...
FIRST = 16  # ... (training images compared at least)

SIDE = GRID + 2 * SHIFT  # the candidate's cells padded by SHIFT on every side (padding matches nothing)
_SHIFTS = sorted(((dy, dx) for dy in range(-SHIFT, SHIFT + 1) for dx in range(-SHIFT, SHIFT + 1)),
                 key=lambda s: (abs(s[0]) + abs(s[1]), s))  # no shift first: it wins ties
OFFSETS = np.array([dy * SIDE + dx for dy, dx in _SHIFTS], dtype=np.intp)
_INNER = ((np.arange(GRID)[:, None] + SHIFT) * SIDE + np.arange(GRID)[None, :] + SHIFT).ravel()
_SHIFTED = OFFSETS[:, None] + _INNER[None, :]  # at each shift, the padded position of each cell of the frame
_ROUNDING = 1e-6  # delta E: what the half-cube lists take in beyond the tolerance, for rounding


class ColourLists(NamedTuple):
    """Colours (CIELAB) listed by half-cube: space cut in cubes of side `radius` as colour.box_index cuts it,
    each cube in 2x2x2 half-cubes. A half-cube's list holds the colours within `radius` of it that lie in
    the 27 cubes around its cube -- every colour colour.pairs_within looks at for a point there that can
    be within `radius` of it, and no other: the exact check on a list finds pairs_within's pairs, from about
    half as many colours as its 27 cubes hold. The grid ends in a layer of empty half-cubes (points beyond
    it are clipped onto it)."""

    radius: float
    origin: NDArray[np.int64]  # half-cube coordinates (floor(lab / (radius / 2))) of the grid's first corner
    shape: NDArray[np.int64]  # half-cubes per axis
    strides: NDArray[np.int64]  # half-cube coordinates -> its index, flat
    starts: NDArray[np.intp]  # half-cube h's colours are members[starts[h]:starts[h + 1]]
    members: NDArray[np.intp]
    colours: NDArray[np.float64]  # M x 3


def colour_lists(colours: NDArray[np.float64], radius: float) -> ColourLists:
    """The ColourLists of `colours` (M x 3 CIELAB) for searches within `radius`."""
    if not len(colours):
        return ColourLists(radius, np.zeros(3, np.int64), np.ones(3, np.int64), np.zeros(3, np.int64),
                           np.zeros(2, np.intp), np.zeros(0, np.intp), np.zeros((0, 3)))
    # floor(x / (r / 2)) // 2 is floor(x / r) exactly (halving is exact in binary): the cubes of box_index
    cubes = np.floor(colours / (radius / 2)).astype(np.int64) >> 1
    origin = 2 * (cubes.min(axis=0) - 1) - 1
    shape = 2 * (cubes.max(axis=0) + 2) + 1 - origin
    halves = 2 * cubes[:, :, None] + np.arange(-2, 4)  # M x 3 x 6: per axis, the half-cubes of the 3 cubes
    low = halves * (radius / 2)
    gap = np.maximum(low - colours[:, :, None], 0) + np.maximum(colours[:, :, None] - (low + radius / 2), 0)
    gap *= gap
    near = gap[:, 0, :, None, None] + gap[:, 1, None, :, None] + gap[:, 2, None, None, :] <= (
        radius + _ROUNDING) ** 2
    colour, i, j, k = np.nonzero(near)
    at = halves - origin[None, :, None]
    key = (at[colour, 0, i] * shape[1] + at[colour, 1, j]) * shape[2] + at[colour, 2, k]
    order = np.argsort(key, kind="stable")
    starts = np.searchsorted(key[order], np.arange(int(np.prod(shape)) + 1)).astype(np.intp)
    strides = np.array([shape[1] * shape[2], shape[2], 1], dtype=np.int64)
    return ColourLists(float(radius), origin, shape, strides, starts, colour[order].astype(np.intp), colours)


def colour_pairs(points: NDArray[np.float64], lists: ColourLists) -> tuple[NDArray[np.intp], NDArray[np.intp]]:
    """colour.pairs_within(points, the listed colours, lists.radius)'s (point, colour) pairs, in another
    order: each point against the list of its half-cube."""
    half = np.floor(points / (lists.radius / 2)).astype(np.int64) - lists.origin
    np.maximum(half, 0, out=half)
    np.minimum(half, lists.shape - 1, out=half)
    where = half @ lists.strides
    lo = lists.starts[where]
    lengths = lists.starts[where + 1] - lo
    at = np.arange(int(lengths.sum())) + (lo - lengths.cumsum() + lengths).repeat(lengths)
    theirs = lists.members[at]
    mine = np.arange(len(points)).repeat(lengths)
    diff = points.take(mine, axis=0)
    diff -= lists.colours.take(theirs, axis=0)
    diff *= diff
    d2 = diff[:, 0] + diff[:, 1]  # summed channel by channel, as pairs_within sums: the same floats
    d2 += diff[:, 2]
    near = d2 <= lists.radius * lists.radius
    return mine[near], theirs[near]


@dataclass(frozen=True)
class TrainingSet:
    """The training images at 24 px (names, RGB) and their figures as one list of cells, grouped by image:
    each cell's place in the frame (y * GRID + x) and the index of its colour among `colours` (the figures'
    distinct colours, CIELAB); per image the figure cells in the frame at each shift (0 counted as 1: what a
    share divides by) and the fewest of them, and its (colour, count) entries."""

    names: tuple[str, ...]
    pictures: NDArray[np.uint8]  # N x 24 x 24 x 3
    colours: NDArray[np.float64]  # M x 3
    cell_place: NDArray[np.intp]
    cell_colour: NDArray[np.intp]
    starts: NDArray[np.intp]  # N + 1: image i's cells are starts[i]:starts[i + 1]
    in_frame: NDArray[np.float64]  # N x len(OFFSETS), at least 1
    fewest_in_frame: NDArray[np.float64]  # N, at least 1
    entry_image: NDArray[np.intp]  # E entries: image, colour, cells of that colour in its figure
    entry_colour: NDArray[np.intp]
    entry_count: NDArray[np.float64]
    lists: ColourLists  # of `colours`, for searches within MATCH_TOLERANCE

    @classmethod
    def from_arrays(cls, names: Sequence[str], images: Sequence[NDArray[np.uint8]]) -> TrainingSet:
        """From 24x24x3 uint8 RGB arrays and their names."""
        pictures = np.zeros((len(images), GRID, GRID, 3), dtype=np.uint8)
        for i, image in enumerate(images):
            pictures[i] = np.asarray(image)[..., :3]
        masks = np.stack([figure_mask(p) for p in pictures]) if len(images) else np.zeros((0, GRID, GRID), bool)
        image_of, y, x = np.nonzero(masks)
        rgb = pictures[image_of, y, x]
        distinct, colour = np.unique(rgb, axis=0, return_inverse=True) if len(rgb) else (rgb, np.zeros(0, np.intp))
        colour = colour.reshape(-1)
        starts = np.searchsorted(image_of, np.arange(len(images) + 1))
        in_frame = np.zeros((len(images), len(OFFSETS)))
        for s, (dy, dx) in enumerate(_SHIFTS):
            inside = (y + dy >= 0) & (y + dy < GRID) & (x + dx >= 0) & (x + dx < GRID)
            in_frame[:, s] = np.bincount(image_of[inside], minlength=len(images))
        pairs, counts = np.unique(np.stack([image_of, colour], axis=1), axis=0, return_counts=True)
        pairs = pairs.reshape(-1, 2).astype(np.intp)
        lab = rgb_to_lab(distinct)
        return cls(tuple(names), pictures, lab, (y * GRID + x).astype(np.intp), colour.astype(np.intp),
                   starts.astype(np.intp), np.maximum(in_frame, 1.0), np.maximum(in_frame.min(axis=1), 1.0),
                   pairs[:, 0].copy(), pairs[:, 1].copy(), counts.astype(np.float64),
                   colour_lists(lab, MATCH_TOLERANCE))

    def __len__(self) -> int:
        return len(self.names)

    def rgb(self, index: int) -> NDArray[np.uint8]:
        """Training image `index` as 24x24x3 uint8 RGB."""
        return self.pictures[index]


def grid_images(folder: Path) -> list[tuple[Path, NDArray[np.uint8]]]:
    """The 24x24 images of a folder as RGB arrays, by name (other sizes and unreadable files are skipped)."""
    found = []
    for path in sorted(Path(folder).iterdir()):
        if path.suffix.lower() not in IMAGE_SUFFIXES:
            continue
        try:
            with Image.open(path) as img:
                if img.size == (GRID, GRID):
                    found.append((path, np.asarray(img.convert("RGB"))))
        except OSError:
            continue
    return found


def read_folder(folder: Path) -> TrainingSet:
    """The 24x24 images of a folder (e.g. the user's punks; other sizes and unreadable files are skipped)."""
    found = grid_images(folder)
    return TrainingSet.from_arrays([path.name for path, _ in found], [image for _, image in found])


def read_prepared(folder: Path, names: Sequence[str], edges: Sequence[float]) -> TrainingSet:
    """The training images of a prepared dataset (R px, exact colours) read back at 24 px: each cell's
    centre pixel on the layout's cell `edges`. Missing or unreadable images are skipped."""
    e = np.asarray(edges, dtype=np.float64)
    centres = np.floor((e[:-1] + e[1:]) / 2).astype(np.intp)
    kept, images = [], []
    for name in names:
        path = Path(folder) / f"{name}.png"
        try:
            with Image.open(path) as img:
                arr = np.asarray(img.convert("RGB"))
        except OSError:
            continue
        if arr.shape[0] <= centres.max() or arr.shape[1] <= centres.max():
            continue
        images.append(arr[centres][:, centres])
        kept.append(name)
    return TrainingSet.from_arrays(kept, images)


@dataclass(frozen=True)
class _Probe:
    """A candidate ready to compare: whether each of its colours matches each training figure colour, flat
    (colour * M + training colour; one more colour, matching nothing, for the padding), at each shift the
    start of the row of the candidate's colour for every cell of the frame, how many of its cells match each
    training figure colour, and whether any does."""

    matches: NDArray[np.bool_]
    shifted_rows: NDArray[np.intp]  # len(OFFSETS) x GRID * GRID
    cells_per_colour: NDArray[np.float64]
    present: NDArray[np.bool_]


def _probe(candidate: NDArray[np.uint8], training: TrainingSet, tolerance: float) -> _Probe:
    colours, inverse, counts = unique_rgb(candidate)
    lab = rgb_to_lab(colours)  # uint8: colour.py's lookup of each level, the floats of the int path
    if tolerance == training.lists.radius:
        mine, theirs = colour_pairs(lab, training.lists)
    else:
        mine, theirs, _ = pairs_within(lab, training.colours, tolerance)
    m = len(training.colours)
    matches = np.zeros((len(colours) + 1) * m, dtype=bool)
    matches[mine * m + theirs] = True
    rows = np.full(SIDE * SIDE, len(colours) * m, dtype=np.intp)
    rows[_INNER] = inverse * m
    cells_per_colour = np.bincount(theirs, weights=counts[mine], minlength=m).astype(np.float64, copy=False)
    return _Probe(matches, rows.take(_SHIFTED), cells_per_colour, cells_per_colour > 0)


def _bounds(probe: _Probe, training: TrainingSet) -> NDArray[np.float64]:
    """Per training image, an upper bound of its share at any shift: of each figure colour, no more cells can
    match than the candidate has cells matching that colour."""
    most = np.bincount(training.entry_image, minlength=len(training),
                       weights=np.minimum(training.entry_count, probe.cells_per_colour[training.entry_colour]))
    return np.minimum(most / training.fewest_in_frame, 1.0)


def _compare(probe: _Probe, training: TrainingSet, images: NDArray[np.intp]) -> NDArray[np.float64]:
    """The share of each of `images` (training indices) at every shift: len(images) x len(OFFSETS). Only the
    figure cells whose colour the candidate has somewhere are looked up (the others match nowhere)."""
    lo = training.starts[images]
    sizes = training.starts[images + 1] - lo
    cells = (lo - sizes.cumsum() + sizes).repeat(sizes) + np.arange(int(sizes.sum()))
    owner = np.arange(len(images)).repeat(sizes)
    colour = training.cell_colour[cells]
    keep = probe.present[colour]
    cells, owner, colour = cells[keep], owner[keep], colour[keep]
    sums = np.zeros((len(images), len(OFFSETS)))
    if len(cells):
        # shifts x cells, each row contiguous: the sums run along rows (a figure has under 2 ** 15 cells)
        at = probe.shifted_rows.take(training.cell_place[cells], axis=1)
        at += colour
        hit = probe.matches.take(at).view(np.uint8)
        first = np.concatenate(([0], np.flatnonzero(owner[1:] != owner[:-1]) + 1))
        sums[owner[first]] = np.add.reduceat(hit, first, axis=1, dtype=np.int16).T
    return sums / training.in_frame.take(images, axis=0)


def shares(candidate: NDArray[np.uint8], training: TrainingSet,
           tolerance: float = MATCH_TOLERANCE) -> NDArray[np.float64]:
    """For each training image, the share (0-1) of its figure the candidate reproduces (module docstring)."""
    if not len(training):
        return np.zeros(0)
    return _compare(_probe(candidate, training, tolerance), training, np.arange(len(training))).max(axis=1)


def nearest(candidate: NDArray[np.uint8], training: TrainingSet,
            tolerance: float = MATCH_TOLERANCE) -> tuple[int, float, tuple[int, int]]:
    """(training index, share, (dy, dx)) of the training figure the candidate reproduces most. The images are
    compared in the order of their bound, BATCH at a time (the first FIRST in one step), until none left can
    beat the best share found; a share of RESOLVED or more is therefore exact (shares().max()), and below it
    the search stops after the first FIRST images."""
    probe = _probe(candidate, training, tolerance)
    bound = _bounds(probe, training)
    order = (-bound).argsort(kind="stable")
    # the first FIRST are compared in one call and read at once: the first of the highest shares there is what
    # the steps of BATCH read (a step they would not reach holds no higher share: its bounds are no higher)
    found = _compare(probe, training, order[:FIRST])
    row, best_shift = divmod(int(found.argmax()), len(OFFSETS))
    best, best_share = int(order[row]), float(found[row, best_shift])
    at, size = len(found), BATCH
    while at < len(order):
        if bound[order[at]] <= best_share or bound[order[at]] < RESOLVED:  # past FIRST: exact shares only
            break
        if len(found) < min(at + size, len(order)):  # past FIRST: the steps whose head can still win, at once
            heads = int(np.count_nonzero((bound >= RESOLVED) & (bound > best_share)))
            until = at + BATCH * max(-(-(heads - at) // BATCH), 1)
            found = np.concatenate([found, _compare(probe, training, order[len(found):until])])
        step = found[at:at + size]
        row, shift = divmod(int(np.argmax(step)), len(OFFSETS))
        if step[row, shift] > best_share:
            best, best_share, best_shift = int(order[at + row]), float(step[row, shift]), int(shift)
        at += size
    return best, max(best_share, 0.0), _SHIFTS[best_shift]


def novelty(candidate: NDArray[np.uint8], training: TrainingSet, tolerance: float = MATCH_TOLERANCE,
            threshold: float = NEAR_COPY) -> dict[str, Any] | None:
    """{"nearest": training file name, "share": 0-1, "near_copy": bool, "shift": [dy, dx]}; None without
    training images."""
    if not len(training):
        return None
    index, share, shift = nearest(candidate, training, tolerance)
    return {"nearest": training.names[index], "share": round(share, 4), "near_copy": bool(share >= threshold),
            "shift": [int(shift[0]), int(shift[1])]}


def distinct_designs(candidates: Sequence[NDArray[np.uint8]], tolerance: float = MATCH_TOLERANCE,
                     threshold: float = NEAR_COPY) -> int:
    """How many different designs the candidates are: a candidate is the design of an earlier one when it
    reproduces that one's figure on at least `threshold` of its cells (the near-copy rule); greedy, in order."""
    if not candidates:
        return 0
    group = TrainingSet.from_arrays([str(i) for i in range(len(candidates))], list(candidates))
    leaders: list[int] = []
    for i, candidate in enumerate(candidates):
        if leaders:
            found = _compare(_probe(candidate, group, tolerance), group, np.array(leaders, dtype=np.intp))
            if found.max() >= threshold:
                continue
        leaders.append(i)
    return len(leaders)
