"""Is a candidate a new design or a copy of a training image? Nearest training image at 24 px, and diversity.

A candidate's match with a training image is the share of its 576 cells within MATCH_TOLERANCE (CIE76 delta E)
of the same cell of that image; the nearest training image is the one with the highest share, and the
candidate is a near copy when that share reaches NEAR_COPY.

Why MATCH_TOLERANCE = 8 (wider than the candidates' 5): a copy comes back through the model's tint and noise.
Generated punks degraded like SD samples (bespoke.demo.degrade "soft": a cast of up to 4 levels per channel,
jitter, noise) and extracted match their own original on 0.80-0.99 of their cells at 5 but 0.95-1.0 at 8.

Why NEAR_COPY = 0.80 (measured at MATCH_TOLERANCE on the user's data, benchmarks/bench_novelty.py): each of the
203 training punks matches its nearest *other* punk on 0.39 of its cells in the median; between different
designs the highest match is 0.75 (lad_017_ink / lad_015_jackson: punks share backgrounds, skin and
outlines), while the variants of one design (lad_054_sterling / sterlingglasses, lad_026-028 chromiumabstract
in three colours, lad_023_x-2/-3/-4) match on up to 0.99. The user's 7 real samples match their nearest
training punk on 0.11-0.66. So 0.80 is above every pair of distinct designs and every real sample, and below
the close variants: a candidate that differs from a training punk in less than a fifth of its cells is one
the model returned, not made.

Cost: the training set is kept in CIELAB (float32, one plane per channel); one candidate against 203 images is
three vectorised passes, about a quarter of a millisecond.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray
from PIL import Image

from bespoke.dataset.layout import GRID
from bespoke.pixels.colour import lab_to_rgb, rgb_to_lab

NEAR_COPY = 0.80  # share of cells matching one training image: at or above, a near copy
MATCH_TOLERANCE = 8.0  # delta E within which a candidate's cell matches the training image's cell
IMAGE_SUFFIXES = (".png", ".gif", ".bmp", ".webp")


@dataclass(frozen=True)
class TrainingSet:
    """The training images at 24 px: their names (file names) and CIELAB cells, one plane per channel
    (float32, 3 x N x 576: each channel's pass runs over contiguous memory)."""

    names: tuple[str, ...]
    planes: NDArray[np.float32]

    @classmethod
    def from_arrays(cls, names: Sequence[str], images: Sequence[NDArray[np.uint8]]) -> TrainingSet:
        """From 24x24x3 uint8 RGB arrays and their names."""
        if not images:
            return cls((), np.zeros((3, 0, GRID * GRID), dtype=np.float32))
        lab = rgb_to_lab(np.stack([np.asarray(i)[..., :3].reshape(-1, 3) for i in images])).astype(np.float32)
        return cls(tuple(names), np.ascontiguousarray(lab.transpose(2, 0, 1)))

    def __len__(self) -> int:
        return len(self.names)

    def rgb(self, index: int) -> NDArray[np.uint8]:
        """Training image `index` as 24x24x3 uint8 RGB (CIELAB back to 8 bits: exact for 8-bit input)."""
        return lab_to_rgb(self.planes[:, index].T.astype(np.float64)).reshape(GRID, GRID, 3)


def read_folder(folder: Path) -> TrainingSet:
    """The 24x24 images of a folder (e.g. the user's punks; other sizes and unreadable files are skipped)."""
    names, images = [], []
    for path in sorted(Path(folder).iterdir()):
        if path.suffix.lower() not in IMAGE_SUFFIXES:
            continue
        try:
            with Image.open(path) as img:
                if img.size != (GRID, GRID):
                    continue
                images.append(np.asarray(img.convert("RGB")))
        except OSError:
            continue
        names.append(path.name)
    return TrainingSet.from_arrays(names, images)


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


def shares(candidate: NDArray[np.uint8], training: TrainingSet,
           tolerance: float = MATCH_TOLERANCE) -> NDArray[np.float64]:
    """For each training image, the share (0-1) of the candidate's cells within `tolerance` of its cell."""
    lab = rgb_to_lab(np.asarray(candidate).reshape(-1, 3)).astype(np.float32)
    planes = training.planes
    d2 = np.empty(planes.shape[1:], dtype=np.float32)
    tmp = np.empty_like(d2)
    np.subtract(planes[0], lab[:, 0], out=d2)
    np.square(d2, out=d2)
    for channel in (1, 2):  # in place: no N x 576 x 3 temporaries
        np.subtract(planes[channel], lab[:, channel], out=tmp)
        np.square(tmp, out=tmp)
        d2 += tmp
    return np.count_nonzero(d2 <= tolerance * tolerance, axis=1) / planes.shape[2]


def novelty(candidate: NDArray[np.uint8], training: TrainingSet, tolerance: float = MATCH_TOLERANCE,
            threshold: float = NEAR_COPY) -> dict[str, Any] | None:
    """{"nearest": training file name, "share": 0-1, "near_copy": bool}; None without training images."""
    if not len(training):
        return None
    s = shares(candidate, training, tolerance)
    best = int(np.argmax(s))
    return {"nearest": training.names[best], "share": round(float(s[best]), 4),
            "near_copy": bool(s[best] >= threshold)}


def distinct_designs(candidates: Sequence[NDArray[np.uint8]], tolerance: float = MATCH_TOLERANCE,
                     threshold: float = NEAR_COPY) -> int:
    """How many different designs the candidates are: two candidates are one design when they match on at
    least `threshold` of their cells (the near-copy rule between candidates); greedy, in order."""
    if not candidates:
        return 0
    group = TrainingSet.from_arrays([str(i) for i in range(len(candidates))], list(candidates))
    leaders: list[int] = []
    for i in range(len(candidates)):
        if leaders:
            sub = TrainingSet(tuple(group.names[j] for j in leaders), group.planes[:, leaders])
            if shares(candidates[i], sub, tolerance).max() >= threshold:
                continue
        leaders.append(i)
    return len(leaders)
