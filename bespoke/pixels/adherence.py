"""Prompt adherence: does a 24 px candidate show the colours and items its prompt names, as the training punks
that carry those words show them?

Each tag of the prompt (bespoke.pixels.phrases) is measured in up to two ways:

- learned: the training punks that carry the tag (its key words; when fewer than MIN_POSITIVES do, its
  colour words and noun, then its last colour word and noun, then its noun alone) against those that do not.
  Per cell, how likely the candidate's colour is among the carriers' colours at that cell or a neighbour, over
  how likely among the others (a log ratio, with one pseudo-punk of all of them for smoothing), weighted by
  how much the two groups differ at that cell (the carriers' mean log ratio minus the others', each punk left
  out of its own group): "bright green background" weighs the edge cells, "sunglasses" the eye row, "golden
  earrings" the ears. The weighted mean log ratio becomes 0-1 through a logistic placed on the training set
  itself (each punk scored with itself left out): the carriers' median maps to 0.88, the others' to 0.12.
  A tag the training punks do not tell apart (AUC of those scores under MIN_AUC) is not measured -- say so,
  do not guess;
- hex: a tag naming exact colours (#ff66cc) with a noun bespoke can find (background, hair, skin, eyes,
  lips/mouth: bespoke.pixels.anatomy) scores exp(-dE^2 / (2 HEX_SIGMA^2)) of the delta E between the colour
  asked and the colour drawn there (a flat region's own colour; the nearest cell for eyes and lips).

A tag's adherence is the mean of its measures; a candidate's, the mean over its measured tags. Per tag, so
a report can say "fails on blue hair, works on pink".
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from bespoke.dataset.layout import GRID
from bespoke.pixels.anatomy import Anatomy, mean_of, nearest, sq_delta
from bespoke.pixels.colour import rgb_to_lab
from bespoke.pixels.phrases import Phrase, phrases
from bespoke.pixels.prior import Reference, TrainingPrior, soft_bins

MIN_POSITIVES = 4  # training punks that must carry a tag for it to be learned
MIN_NEGATIVES = 10  # ... and punks that must not
MIN_AUC = 0.7  # how well the learned score must tell the carriers from the others on the training set
HEX_SIGMA = 20.0  # delta E: a drawn colour this far from the asked hex scores 0.61
EVIDENCE = math.log(2)  # a cell is evidence for a tag where its colour is twice as likely among the carriers
FOCUS = 0.3  # cells weighing less than this share of the strongest cell are left out
EPSILON = 1e-3  # floor of a likelihood: a colour no punk shows is not infinitely strong evidence
ZONES = (  # where each family of accessories is drawn on the template (bespoke.pixels.anatomy), how many cells
    (frozenset({"glasse", "sunglasse", "shade"}), (slice(10, 14), slice(7, 18)), 10),
    (frozenset({"hat", "cap", "beanie", "crown", "tiara", "bow"}), (slice(0, 9), slice(4, 20)), 12),
    (frozenset({"earring"}), (slice(13, 19), np.r_[5:9, 16:20]), 2),
    (frozenset({"necklace", "chain"}), (slice(19, 24), slice(7, 18)), 4),
)
REGION_NOUNS = {"background": "background", "hair": "hair", "skin": "skin", "eye": "eyes", "lip": "mouth",
                "mouth": "mouth"}


@dataclass(frozen=True)
class Learned:
    """A tag learned from the training punks: which words matched, how many carry them, where they differ."""

    words: tuple[str, ...]
    positives: int
    auc: float
    carriers: NDArray[np.float32]  # cells x bins: how often the carriers show each bin around each cell
    others: NDArray[np.float32]
    weights: NDArray[np.float64]  # cells
    top: int | None  # an accessory: the mean of its zone's `top` strongest cells, not of all of them
    mid: float
    scale: float

    @functools.cached_property
    def active(self) -> tuple[NDArray[np.intp], NDArray[np.float32]]:
        """(cells of weight > 0, the carriers' and the others' bins there stacked: 2 x cells x bins): the only
        cells a score reads."""
        cells = np.flatnonzero(self.weights > 0)
        return cells, np.ascontiguousarray(np.stack([self.carriers[cells], self.others[cells]]))

    @functools.cached_property
    def weight_total(self) -> float:
        """What `_pool` divides a weighted sum by."""
        return max(float(self.weights.sum()), 1e-12)


@dataclass(frozen=True)
class TagModel:
    """How one tag of a prompt is measured; `why` says why it is not, when neither measure applies."""

    phrase: Phrase
    learned: Learned | None
    region: str | None  # the anatomy region its hex colours are looked for in
    why: str | None

    @property
    def measured(self) -> bool:
        """Whether any measure applies."""
        return self.learned is not None or self.region is not None


def _carriers(prior: TrainingPrior, words: Sequence[str]) -> NDArray[np.bool_]:
    wanted = frozenset(words)
    return np.array([any(wanted <= tag for tag in tags) for tags in prior.tags], dtype=bool)


def _word_sets(phrase: Phrase) -> list[tuple[str, ...]]:
    """The key-word sets to try in order (module docstring)."""
    sets = [phrase.words]
    if phrase.noun is not None:
        colours = phrase.colours
        if colours:
            sets.append((*colours, phrase.noun))
            sets.append((colours[-1], phrase.noun))
        sets.append((phrase.noun,))
    unique: list[tuple[str, ...]] = []
    for s in sets:
        if s and s not in unique:
            unique.append(s)
    return unique


def _log_ratio(own: NDArray[np.float32], carriers: NDArray[np.float32],
               others: NDArray[np.float32]) -> NDArray[np.float64]:
    """Per cell of one or more pictures (... x cells x bins), log(likelihood among carriers / among others)."""
    plus = (own * carriers).sum(axis=-1, dtype=np.float64)
    minus = (own * others).sum(axis=-1, dtype=np.float64)
    return np.log((plus + EPSILON) / (minus + EPSILON))


def _auc(positive: NDArray[np.float64], negative: NDArray[np.float64]) -> float:
    """Mann-Whitney: the chance a carrier scores above a non-carrier (ties count half)."""
    above = (positive[:, None] > negative[None, :]).mean()
    ties = (positive[:, None] == negative[None, :]).mean()
    return float(above + 0.5 * ties)


def _ratios(prior: TrainingPrior, carrier: NDArray[np.bool_]) -> tuple[NDArray[np.float64], NDArray[np.float32],
                                                                     NDArray[np.float32]]:
    """(per punk and cell the log ratio with the punk left out of its own group, the carriers' and the others'
    bin frequencies around each cell, each with one pseudo-punk of everyone)."""
    around = prior.around
    n_plus, n_minus = int(carrier.sum()), int((~carrier).sum())
    everyone = around.mean(axis=0)
    sum_plus, sum_minus = around[carrier].sum(axis=0), around[~carrier].sum(axis=0)
    member = carrier[:, None, None]
    loo_plus = (sum_plus[None] - np.where(member, around, 0) + everyone) / (n_plus + 1 - member)
    loo_minus = (sum_minus[None] - np.where(member, 0, around) + everyone) / (n_minus + 1 - ~member)
    ratios = _log_ratio(prior.own, loo_plus.astype(np.float32), loo_minus.astype(np.float32))
    return (ratios, ((sum_plus + everyone) / (n_plus + 1)).astype(np.float32),
            ((sum_minus + everyone) / (n_minus + 1)).astype(np.float32))


def _where(ratios: NDArray[np.float64], carrier: NDArray[np.bool_]) -> NDArray[np.float64]:
    """Per cell, how much the carriers differ from the others there: by how much on average, times how much
    more often a carrier than another punk shows the evidence (what only a few variants of one design share
    weighs little), the faint cells left out (FOCUS: many of them add up)."""
    differ = np.maximum(ratios[carrier].mean(axis=0) - ratios[~carrier].mean(axis=0), 0.0)
    often = np.maximum((ratios[carrier] > EVIDENCE).mean(axis=0) - (ratios[~carrier] > EVIDENCE).mean(axis=0), 0.0)
    weights = differ * often
    weights[weights < FOCUS * weights.max()] = 0.0
    return weights


def _pool(ratios: NDArray[np.float64], weights: NDArray[np.float64], top: int | None) -> NDArray[np.float64]:
    """The score of one or more pictures (... x cells of log ratios): the weighted mean, or for an accessory
    the mean of the `top` largest log ratios inside its zone (an earring is two cells of a 48-cell zone)."""
    if top is None:
        return ratios @ weights / max(float(weights.sum()), 1e-12)
    inside = np.where(weights > 0, ratios, -np.inf)
    return np.sort(inside, axis=-1)[..., -top:].mean(axis=-1)


def _learn(prior: TrainingPrior, words: tuple[str, ...], carrier: NDArray[np.bool_],
           zone: tuple[NDArray[np.float64], int] | None) -> Learned:
    """The tag's model: where the carriers differ, or -- for an accessory, when it tells the carriers from the
    others better on the training set -- the `zone` (cell weights, top) where its family is drawn."""
    ratios, carriers, others = _ratios(prior, carrier)
    options: list[tuple[NDArray[np.float64], int | None]] = [(_where(ratios, carrier), None)]
    if zone is not None:
        options.append(zone)
    tried = []
    for weights, top in options:
        scores = _pool(ratios, weights, top)
        tried.append((_auc(scores[carrier], scores[~carrier]), weights, top, scores))
    auc, weights, top, scores = max(tried, key=lambda t: t[0])
    med_plus, med_minus = float(np.median(scores[carrier])), float(np.median(scores[~carrier]))
    return Learned(words, int(carrier.sum()), auc, carriers, others, weights, top,
                   (med_plus + med_minus) / 2, max((med_plus - med_minus) / 4, 1e-9))


def _zone(noun: str | None) -> tuple[NDArray[np.float64], int] | None:
    """Where an accessory of the noun's family sits (its ZONES rectangle as cell weights) and how many cells
    of it count, or None.
    Learned per cell the differences between wearers and the others of the 203 punks are the wearers'
    backgrounds as much as the accessory (55 punks wear glasses; what sets them apart most is the edge
    columns), so an accessory is looked for where a pixel artist draws it."""
    for family, (rows, cols), top in ZONES:
        if noun in family:
            zone = np.zeros((GRID, GRID))
            zone[rows, cols] = 1.0
            return zone.reshape(-1), top
    return None


def tag_model(prior: TrainingPrior | None, phrase: Phrase) -> TagModel:
    """How `phrase` is measured with this training prior (None: only its hex colours can be)."""
    region = next((REGION_NOUNS[w] for w in phrase.words if w in REGION_NOUNS), None) if phrase.hexes else None
    why = None
    learned = None
    if prior is not None:
        for words in _word_sets(phrase):
            carrier = _carriers(prior, words)
            if MIN_POSITIVES <= carrier.sum() <= len(prior) - MIN_NEGATIVES:
                learned = _learn(prior, words, carrier, _zone(phrase.noun))
                break
        if learned is None:
            why = "too few training punks carry it, or nearly all do"
        elif learned.auc < MIN_AUC:
            why = f"the training punks that carry {' '.join(learned.words)!r} do not look different (AUC {learned.auc:.2f})"
            learned = None
    else:
        why = "no training captions"
    return TagModel(phrase, learned, region, None if region is not None or learned is not None else why)


def prompt_models(prior: TrainingPrior | None, prompt: str) -> tuple[TagModel, ...]:
    """Every tag of `prompt` and how it is measured (built once per prompt of a run)."""
    return tuple(tag_model(prior, p) for p in phrases(prompt))


@dataclass(frozen=True)
class _Stack:
    """The active cells of several learned tags end to end (tag j's are bounds[j]:bounds[j + 1]), their
    carriers' and others' bins stacked as in Learned.active (2 x cells x bins, as float64), and each cell's
    tag."""

    learned: tuple[Learned, ...]
    cells: NDArray[np.intp]
    groups: NDArray[np.float64]
    bounds: tuple[int, ...]
    tag_of: NDArray[np.intp]


_STACKS: dict[tuple[int, ...], _Stack] = {}  # by the ids of its tags: a stack holds them, so no other takes an id


def _stack(learned: tuple[Learned, ...]) -> _Stack:
    key = tuple(id(model) for model in learned)
    if key not in _STACKS:
        if len(_STACKS) >= 64:  # a run has a few prompts; a long-lived process sees more
            _STACKS.clear()
        sizes = [len(model.active[0]) for model in learned]
        _STACKS[key] = _Stack(learned, np.concatenate([model.active[0] for model in learned]),
                              np.concatenate([model.active[1] for model in learned], axis=1, dtype=np.float64),
                              tuple(np.cumsum([0, *sizes]).tolist()), np.arange(len(learned)).repeat(sizes))
    return _STACKS[key]


def _learned_scores(learned: tuple[Learned, ...], bins: tuple[NDArray[np.float32], NDArray[np.intp]]) -> list[float]:
    """Each tag's 0-1 score of a picture whose cells' bins (`soft_bins`) are bins[0][bins[1]]: the products and
    sums of all tags' active cells at once -- each cell's row is multiplied and summed on its own, so these
    are the floats of each tag's alone."""
    stack = _stack(learned)
    colour_bins, colour_of = bins
    # _log_ratio of the active cells: both products in one (each row's sum over the bins is the same sum).
    # The float32 products, made in float64 and rounded: two float32 make an exact float64 product, so its
    # one rounding is the float32 product's -- without float32's slow subnormal bins (far colours' weights)
    cell_bins = colour_bins.astype(np.float64).take(colour_of[stack.cells], axis=0)
    products = np.multiply(cell_bins, stack.groups, out=np.empty(stack.groups.shape, np.float32), casting="same_kind")
    likely = products.sum(axis=-1, dtype=np.float64) + EPSILON
    active = np.log(likely[0] / likely[1])
    # only cells of weight > 0 count: a weighted sum gets 0 from the others (each log ratio is finite); left
    # 0, the product is the one of the whole picture (_pool). A row of `ratios` is one tag's ratios
    ratios = np.zeros((len(learned), len(learned[0].weights)))
    ratios[stack.tag_of, stack.cells] = active
    out = []
    for row, (model, lo, hi) in enumerate(zip(learned, stack.bounds[:-1], stack.bounds[1:], strict=True)):
        if model.top is not None and hi - lo >= model.top:
            # _pool's top: the other cells are -inf there, below the `top` largest of the active ones
            score = float(np.sort(active[lo:hi])[-model.top:].mean())
        elif model.top is None:
            score = float(ratios[row] @ model.weights) / model.weight_total
        else:
            score = float(_pool(ratios[row], model.weights, model.top))
        out.append(1.0 / (1.0 + math.exp(-(score - model.mid) / model.scale)))
    return out


@functools.lru_cache(maxsize=256)
def _hex_lab(code: tuple[int, int, int]) -> NDArray[np.float64]:
    lab = rgb_to_lab(np.array(code, dtype=np.float64))
    lab.flags.writeable = False  # cached: every caller sees the same array
    return lab


def _region_mask(anatomy: Anatomy, region: str) -> NDArray[np.bool_]:
    if region == "eyes":
        return anatomy.eyes[0] | anatomy.eyes[1]
    mask: NDArray[np.bool_] = getattr(anatomy, region)
    return mask


def _hex_score(anatomy: Anatomy, region: str, hexes: Sequence[tuple[int, int, int]]) -> float | None:
    flat = {"background": anatomy.background_colour, "hair": anatomy.hair_colour, "skin": anatomy.skin_colour}
    scores = []
    for code in hexes:
        asked = _hex_lab(code)
        drawn = flat.get(region)
        if drawn is not None and len(hexes) == 1:
            distance: float | None = math.sqrt(sq_delta(drawn.tolist(), asked.tolist()))
        else:
            distance = nearest(anatomy, _region_mask(anatomy, region), asked)
        if distance is not None:
            scores.append(math.exp(-distance ** 2 / (2 * HEX_SIGMA ** 2)))
    return mean_of(scores) if scores else 0.0


def _cell_bins(anatomy: Anatomy, bins: NDArray[np.float64]) -> tuple[NDArray[np.float32], NDArray[np.intp]]:
    """(soft_bins of each distinct colour of the picture, each cell's colour among them): a cell's bins are
    a function of its colour alone, and `soft_bins` works row by row, so these are its rows for every cell."""
    lab = anatomy.lab.reshape(-1, 3)
    if anatomy.colours is None:
        return soft_bins(lab, bins), np.arange(len(lab))
    first, inverse, _ = anatomy.colours
    return soft_bins(lab[first], bins), inverse


def tag_scores(anatomy: Anatomy, models: Sequence[TagModel],
               prior: TrainingPrior | Reference | None) -> list[float | None]:
    """Per tag of the prompt, its adherence 0-1 (None for a tag that is not measured)."""
    learned = tuple(m.learned for m in models if m.learned is not None)
    learned_scores = iter(_learned_scores(learned, _cell_bins(anatomy, prior.bins))
                          if learned and prior is not None else ())
    out: list[float | None] = []
    for model in models:
        parts = []
        if model.learned is not None and prior is not None:
            parts.append(next(learned_scores))
        if model.region is not None:
            hexed = _hex_score(anatomy, model.region, model.phrase.hexes)
            if hexed is not None:
                parts.append(hexed)
        out.append(mean_of(parts) if parts else None)
    return out


def adherence(scores: Sequence[float | None]) -> float | None:
    """A candidate's adherence: the mean of its measured tags' scores (None when no tag is measured)."""
    measured = [s for s in scores if s is not None]
    return mean_of(measured) if measured else None
