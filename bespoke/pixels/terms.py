"""The terms of the best-epoch score that look at one 24 px picture the way the user does, each 0-1.

Pure functions of a 24x24 RGB candidate (and, where the training set says what is normal, of the training
prior, bespoke.pixels.prior): they work on whatever candidate a user is shown.

- `composition`: does the figure stand where the training punks stand? Each cell votes figure or background
  as most training punks do there, weighted by how sure they are (|2p - 1|, p = the share of punks whose cell
  is figure): 1 = agrees everywhere the punks agree, 0 = no better than chance. A body (small head, torso
  below), a frame round the picture or a figure moved off the centre disagree where every punk agrees.
- `clean_cells`: the share of cells that are not specks: a speck is a region (cells joined within delta E 10,
  bespoke.pixels.anatomy.regions) of at most SPECK_CELLS cells outside the eyes, nose and mouth -- a stray
  pixel whose colour belongs to no neighbour, or a bleed: a few cells of hair colour in the face, skin where
  the outline should be.
- `feature_contrast`: how far the eyes and mouth stand from the skin, and the hair from the skin, the
  background and the eyes (delta E, each as 1 - exp(-dE / CONTRAST_SCALE)), averaged: the user's "eyes and
  hair too similarly coloured", "features blend together". No face found: 0.
- `few_colours`: 1 / (1 + (colours / TARGET_COLOURS) ** COLOUR_SLOPE) of the colours the eye tells apart
  (the candidate merged within merge.TOLERANCE): 0.5 at the training punks' median (23), 0.05 at their most
  (116), 0.85 at their fewest (9); smooth, so it never saturates.
- `pixel_art`: exp(-grid_error / GRID_ERROR_SCALE): the sample really is blocky pixel art on its grid (only
  for a sample larger than its candidate).
- `new`: 1 / (1 + exp((share - NEW_CENTRE) / NEW_WIDTH)) of the share of the nearest training figure the
  candidate reproduces (bespoke.pixels.novelty): 0.99 or more up to 0.69 (the most any real sample's candidate
  reproduces), 0.5 at 0.82, 0.02 at the near-copy threshold (0.95) and below: a copy scores nothing whatever
  its quality, a new design loses nothing.
- `adherence`: bespoke.pixels.adherence (the prompt's colours and items, learned from the training punks).

`candidate_terms` measures them all on one candidate.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from bespoke.pixels.adherence import TagModel, adherence, tag_scores
from bespoke.pixels.anatomy import MOUTH, Anatomy, mean_of, most_unlike, read, regions, sq_delta
from bespoke.pixels.merge import TOLERANCE, is_flat, reduce_colours
from bespoke.pixels.metrics import unique_colors
from bespoke.pixels.prior import Reference, TrainingPrior

SPECK_CELLS = 3  # a region this small outside the features is a stray pixel or a bleed
NOSE = ((15, 12),)
CONTRAST_SCALE = 20.0  # delta E at which a feature is 63 % distinct (1 - 1/e)
TARGET_COLOURS = 23  # the median of the user's 203 training punks
COLOUR_SLOPE = math.log(19) / math.log(116 / 23)  # 0.05 at 116 colours, the punks' most
GRID_ERROR_SCALE = 8.0  # grid_error (0-255): real LoRA samples 2-6, an untrained model's gradients 9+
# `new` falls between what real samples reproduce of their nearest training figure (at most 0.69 on the user's
# runs and samples) and the near-copy threshold (0.95; the user's own edits of one design reach 0.934): its
# centre halfway, its width so that 0.69 keeps 0.99 and 0.95 is left 0.013
NEW_CENTRE = 0.82
NEW_WIDTH = 0.03


def composition(figure: NDArray[np.bool_], silhouette: NDArray[np.float64]) -> float:
    """Agreement (0-1, 0 = chance) of a figure mask with the training punks' `silhouette` (the share of punks
    whose cell is figure, same shape), weighted by how sure the punks are in each cell."""
    weight = np.abs(2.0 * silhouette - 1.0)
    agree = float((weight * (figure == (silhouette > 0.5))).sum() / max(float(weight.sum()), 1e-9))
    return max(0.0, 2.0 * agree - 1.0)


def _feature_cells(anatomy: Anatomy) -> NDArray[np.bool_]:
    features = anatomy.eyes[0] | anatomy.eyes[1] | anatomy.mouth
    rows, cols = np.nonzero(anatomy.mouth)
    if len(rows):  # the nose sits where the template puts it, moved like the mouth
        row, col = NOSE[0][0] + int(rows[0]) - MOUTH[0][0], NOSE[0][1] + int(cols[0]) - MOUTH[0][1]
        if 0 <= row < features.shape[0] and 0 <= col < features.shape[1]:
            features[row, col] = True
    return features


def specks(anatomy: Anatomy) -> NDArray[np.bool_]:
    """The cells of regions of at most SPECK_CELLS cells outside the eyes, nose and mouth."""
    labels = regions(anatomy.lab) if anatomy.regions is None else anatomy.regions
    sizes = np.bincount(labels.ravel(), minlength=labels.size)[labels]
    return (sizes <= SPECK_CELLS) & ~_feature_cells(anatomy)


def clean_cells(anatomy: Anatomy) -> float:
    """The share of cells that are not specks (see `specks`)."""
    speck = specks(anatomy)
    return 1.0 - np.count_nonzero(speck) / speck.size  # the mean of a mask: its exact count over its size


def _distinct(delta_e: float) -> float:
    return 1.0 - math.exp(-delta_e / CONTRAST_SCALE)


def _delta(a: NDArray[np.float64], b: NDArray[np.float64]) -> float:
    return math.sqrt(sq_delta(a.tolist(), b.tolist()))


def feature_contrast(anatomy: Anatomy) -> float:
    """Mean distinctness of the eyes and mouth against the skin, and of the hair against the skin, the
    background and the eyes (module docstring); 0 without a face."""
    skin = anatomy.skin_colour
    if skin is None:
        return 0.0
    parts = [_distinct(most_unlike(anatomy, eye, skin)) for eye in anatomy.eyes]
    parts.append(_distinct(most_unlike(anatomy, anatomy.mouth, skin)))
    hair = anatomy.hair_colour
    if hair is not None:
        parts.append(_distinct(_delta(hair, skin)))
        if anatomy.background_colour is not None:
            parts.append(_distinct(_delta(hair, anatomy.background_colour)))
        skin_lab, hair_lab = skin.tolist(), hair.tolist()
        for eye in anatomy.eyes:
            cells = anatomy.lab[eye].tolist()
            if cells:  # max keeps the first of equal keys, as argmax does
                pupil = max(cells, key=lambda cell: sq_delta(cell, skin_lab))
                parts.append(_distinct(math.sqrt(sq_delta(pupil, hair_lab))))
    return mean_of(parts)


def distinct_colours(cells: NDArray[np.uint8]) -> int:
    """Colours the eye tells apart: those left after merging what is within merge.TOLERANCE."""
    return unique_colors(reduce_colours(np.ascontiguousarray(cells, dtype=np.uint8), TOLERANCE))


def _counted_colours(candidate: NDArray[np.uint8], anatomy: Anatomy) -> int:
    """distinct_colours(candidate), from the colours `read` counted when it kept them: flat pixel art is what
    reduce_colours leaves as it is, so its colours are its distinct RGB colours."""
    if anatomy.colours is not None and is_flat(anatomy.colours[2]):
        return len(anatomy.colours[2])
    return distinct_colours(candidate)


def few_colours(colours: int) -> float:
    """1 / (1 + (colours / TARGET_COLOURS) ** COLOUR_SLOPE)."""
    return 1.0 / (1.0 + (max(1, colours) / TARGET_COLOURS) ** COLOUR_SLOPE)


def pixel_art(grid_error: float) -> float:
    """exp(-grid_error / GRID_ERROR_SCALE)."""
    return math.exp(-grid_error / GRID_ERROR_SCALE)


def new(share: float) -> float:
    """1 / (1 + exp((share - NEW_CENTRE) / NEW_WIDTH)) of the nearest training figure's share."""
    return 1.0 / (1.0 + math.exp((share - NEW_CENTRE) / NEW_WIDTH))


@dataclass(frozen=True)
class CandidateTerms:
    """Every term of one candidate (0-1; None where it cannot be measured) and its prompt's tags' scores."""

    composition: float | None  # None without a training prior
    clean_cells: float
    feature_contrast: float
    few_colours: float
    adherence: float | None  # None without a prompt with a measured tag
    pixel_art: float | None  # None for a picture that is its own candidate (a 24 px image)
    new: float | None  # None without training images
    tags: tuple[float | None, ...] = ()  # per tag of the prompt (adherence.prompt_models order)
    colours: int = 0  # the colours few_colours counted

    def as_dict(self) -> dict[str, float | None]:
        """The terms by name (tags and colours left out)."""
        return {"composition": self.composition, "clean_cells": self.clean_cells,
                "feature_contrast": self.feature_contrast, "few_colours": self.few_colours,
                "adherence": self.adherence, "pixel_art": self.pixel_art, "new": self.new}


@dataclass(frozen=True)
class Context:
    """What a candidate is measured against: the training prior (or its Reference, all a candidate needs of
    it), its prompt's tag models, and what the sample's processing measured (grid_error of the candidate drawn
    back on the sample, novelty share)."""

    prior: TrainingPrior | Reference | None = None
    tags: tuple[TagModel, ...] = ()
    grid_error: float | None = None
    novelty_share: float | None = None


def candidate_terms(candidate: NDArray[np.uint8], context: Context = Context()) -> CandidateTerms:
    """All terms of a 24x24 RGB candidate (module docstring)."""
    anatomy = read(candidate)
    prior = context.prior
    scores = tuple(tag_scores(anatomy, context.tags, prior)) if context.tags else ()
    colours = _counted_colours(candidate, anatomy)
    return CandidateTerms(
        composition=None if prior is None else composition(~anatomy.background, prior.silhouette),
        clean_cells=clean_cells(anatomy), feature_contrast=feature_contrast(anatomy),
        few_colours=few_colours(colours), adherence=adherence(scores),
        pixel_art=None if context.grid_error is None else pixel_art(context.grid_error),
        new=None if context.novelty_share is None else new(context.novelty_share),
        tags=scores, colours=colours)
