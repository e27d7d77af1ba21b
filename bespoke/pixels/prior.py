"""What the training punks say is normal, built once from their 24 px images and captions.

- `silhouette`: per cell, the share of training punks whose cell is figure (bespoke.pixels.figure): what
  `composition` compares a candidate's figure with.
- colour bins: BINS colours of the training set (k-means in CIELAB, bespoke.pixels.palette), and per training
  punk and cell which bins it shows at that cell or a neighbour (a 3x3 maximum: a feature drawn a cell off is
  still that feature). A cell's colour belongs to the bins softly (a Gaussian of delta E, BIN_SIGMA) and to
  "none of them" when it is far from all (FAR): a colour the punks never use is no evidence for any phrase.
- tags: each punk's caption split into tags of key words (bespoke.pixels.adherence reads prompts the same
  way): which punks carry a phrase, and so where and in which colours they differ from those that do not.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from bespoke.dataset.layout import GRID
from bespoke.pixels.colour import rgb_to_lab, sq_distances
from bespoke.pixels.figure import figure_mask
from bespoke.pixels.novelty import grid_images
from bespoke.pixels.palette import kmeans_colors
from bespoke.pixels.phrases import caption_tags

BINS = 32  # colour bins of the training set
BIN_SIGMA = 10.0  # delta E: how softly a colour belongs to the bins near it
FAR = 25.0  # delta E: a colour this far from every bin belongs to "none" as much as to its nearest bin


@dataclass(frozen=True)
class Reference:
    """What measuring a candidate needs of the prior: the silhouette and the colour bins (kilobytes, where the
    whole prior is tens of megabytes: this is what `process` sends each worker)."""

    silhouette: NDArray[np.float64]
    bins: NDArray[np.float64]


@dataclass(frozen=True)
class TrainingPrior:
    """The training punks' silhouette, colour bins per cell, and caption tags (see the module docstring)."""

    names: tuple[str, ...]
    silhouette: NDArray[np.float64]  # GRID x GRID, share of punks whose cell is figure
    bins: NDArray[np.float64]  # BINS x 3 CIELAB
    own: NDArray[np.float32]  # N x cells x (BINS + 1): each punk's cells in the bins (the last is "none")
    around: NDArray[np.float32]  # N x cells x (BINS + 1): the bins each punk shows at or next to each cell
    tags: tuple[tuple[frozenset[str], ...], ...]  # per punk, the key words of each caption tag

    @classmethod
    def build(cls, names: Sequence[str], images: Sequence[NDArray[np.uint8]],
              captions: Sequence[str]) -> TrainingPrior:
        """From 24x24x3 uint8 RGB images, their names and their caption texts ("" for none)."""
        if not images:
            raise ValueError("a training prior needs at least one training image")
        stack = np.stack([np.asarray(i, dtype=np.uint8)[..., :3] for i in images])
        silhouette = np.mean([figure_mask(i) for i in stack], axis=0)
        quantised = kmeans_colors(stack.reshape(-1, 1, 3), BINS)
        bins = rgb_to_lab(np.unique(quantised.reshape(-1, 3), axis=0))
        own = np.stack([soft_bins(rgb_to_lab(i.reshape(-1, 3)), bins) for i in stack])
        around = _neighbourhood_max(own.reshape(len(stack), GRID, GRID, -1)).reshape(own.shape)
        return cls(tuple(names), silhouette, bins, own, around, tuple(caption_tags(c) for c in captions))

    def __len__(self) -> int:
        return len(self.names)

    @property
    def reference(self) -> Reference:
        """The silhouette and bins, alone."""
        return Reference(self.silhouette, self.bins)


def soft_bins(lab: NDArray[np.float64], bins: NDArray[np.float64]) -> NDArray[np.float32]:
    """cells x (bins + 1): how much each colour (cells x 3 CIELAB) belongs to each bin and to "none"."""
    weights = np.exp(-sq_distances(lab, bins) / (2 * BIN_SIGMA ** 2))
    none = np.full((len(lab), 1), np.exp(-FAR ** 2 / (2 * BIN_SIGMA ** 2)))
    weights = np.concatenate([weights, none], axis=1)
    return (weights / weights.sum(axis=1, keepdims=True)).astype(np.float32)


def _neighbourhood_max(maps: NDArray[np.float32]) -> NDArray[np.float32]:
    """N x H x W x K: the maximum over each cell's 3x3 neighbourhood (edges padded with themselves)."""
    padded = np.pad(maps, ((0, 0), (1, 1), (1, 1), (0, 0)), mode="edge")
    h, w = maps.shape[1:3]
    out = maps.copy()
    for dy in (0, 1, 2):
        for dx in (0, 1, 2):
            np.maximum(out, padded[:, dy:dy + h, dx:dx + w], out=out)
    return out


def read_training(folder: Path) -> TrainingPrior | None:
    """The prior of a folder of 24x24 training images, each with its caption beside it (`<stem>.txt`, UTF-8;
    a missing caption counts as none); None when the folder holds no 24x24 image."""
    found = grid_images(folder)
    if not found:
        return None
    captions = [caption.read_text(encoding="utf-8", errors="replace") if caption.is_file() else ""
                for caption in (path.with_suffix(".txt") for path, _ in found)]
    return TrainingPrior.build([path.name for path, _ in found], [image for _, image in found], captions)
