"""Comb filters on an edge-energy profile (bespoke.pixels.grid): where the teeth of a family of combs (pitch,
phase) fall, the mean profile on them, and the coarse and fine searches for the grid's pitch and phase.

A comb's teeth interpolate the profile linearly between pixel boundaries; a comb is scored by the mean on its
teeth over the whole axis, weighted by a prior on its pitch (the layout fixes the pitch far better than a few
face edges can). The teeth depend on the axis length and the combs only, so the searches are kept per layout
and sample size.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from numpy.typing import NDArray

Profile = NDArray[np.float64]  # edge energy at each pixel boundary along one axis

PITCH_SIGMA = 0.02  # how far (relative) a detected pitch may stray from the layout's before it must earn it


@dataclass(frozen=True)
class Teeth:
    """Where the teeth of a family of combs (pitches[p], phases[p, f]) fall on a profile: tooth k of comb
    (p, f) interpolates profile[lo] and profile[hi] with weights w_lo and w_hi, both 0 for a tooth outside
    the axis. It depends on the axis length and the combs only, not on the sample."""

    lo: NDArray[np.intp]
    hi: NDArray[np.intp]
    w_lo: NDArray[np.float64]
    w_hi: NDArray[np.float64]
    expected: NDArray[np.float64]  # (P, 1): the number of teeth each pitch is expected to have


def comb_teeth(length: int, pitches: NDArray[np.float64], phases: NDArray[np.float64]) -> Teeth:
    """The teeth of every comb (pitches[p], phases[p or 0, f]) on a profile of `length` entries."""
    n = length + 1  # boundaries live at 1..n-1
    k = np.arange(-1, int(n / pitches.min()) + 2)
    pos = phases[:, :, None] + pitches[:, None, None] * k[None, None, :]  # (P, F, K)
    # teeth fall between pixel boundaries: interpolate the profile linearly (boundary t is index t - 1)
    inside = np.minimum(np.maximum(pos, 1), n - 1)
    valid = inside == pos
    t = inside - 1
    lo = t.astype(np.intp)  # t >= 0: truncation is the floor
    hi = np.minimum(lo + 1, length - 1)
    frac = t - lo
    # a weight of 0 outside the axis gives that tooth 0, as masking its interpolated value did
    # divide by the expected number of teeth, not the count inside the image: a coarser comb would
    # otherwise win just by dropping a weak tooth off the end
    return Teeth(lo, hi, (1 - frac) * valid, frac * valid, ((n - 1) / pitches)[:, None])


def comb_scores(profile: Profile, teeth: Teeth) -> NDArray[np.float64]:
    """Mean profile on the teeth of every comb over the whole axis; `profile` may stack several axes of one
    length (leading dimensions), each scored alike."""
    values, part = _scratch(profile.shape[:-1] + teeth.lo.shape)
    # mode "clip" (every index is in range) lets take write into `out` without an extra buffered copy
    profile.take(teeth.lo, axis=-1, out=values, mode="clip")
    values *= teeth.w_lo
    profile.take(teeth.hi, axis=-1, out=part, mode="clip")
    part *= teeth.w_hi
    values += part
    return values.sum(axis=-1) / teeth.expected


_SCRATCH = threading.local()


def _scratch(shape: tuple[int, ...]) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Two float64 work arrays of `shape`, kept per thread: a fresh ~0.5 MB pair per comb search costs page
    faults whenever malloc has handed the last pair back to the system."""
    pool: dict[tuple[int, ...], tuple[NDArray[np.float64], NDArray[np.float64]]]
    pool = _SCRATCH.__dict__.setdefault("pool", {})
    if shape not in pool:
        if len(pool) >= 32:
            pool.clear()
        pool[shape] = (np.empty(shape), np.empty(shape))
    return pool[shape]


def _pitch_prior(pitches: NDArray[np.float64], nominal: float) -> NDArray[np.float64]:
    """Gaussian weight (0-1) of each pitch's relative deviation from `nominal` (sigma PITCH_SIGMA)."""
    return np.exp(-0.5 * ((pitches / nominal - 1.0) / PITCH_SIGMA) ** 2)


@dataclass(frozen=True)
class Search:
    """A comb search on an axis: combs (pitches[p], phases[p, f]), their teeth and the pitch prior."""

    pitches: NDArray[np.float64]
    phases: NDArray[np.float64]
    teeth: Teeth
    prior: NDArray[np.float64]  # (P, 1): _pitch_prior of each pitch


FINE_PITCH = np.linspace(-0.0025, 0.0025, 11)  # relative to the nominal cell
FINE_PHASE = np.linspace(-0.5, 0.5, 11)  # px


@lru_cache(maxsize=16)
def coarse_search(nominal: float, length: int) -> Search:
    """Every pitch within 8 % of the `nominal` cell, 24 phases each, on a profile of `length` entries (one
    search per layout and sample size: a job's samples share it)."""
    pitches = np.arange(nominal * 0.92, nominal * 1.08, max(nominal * 0.004, 0.01))
    phases = pitches[:, None] * (np.arange(24) / 24)[None, :]
    return Search(pitches, phases, comb_teeth(length, pitches, phases), _pitch_prior(pitches, nominal)[:, None])


@lru_cache(maxsize=64)
def fine_search(nominal: float, length: int, best_p: int, best_f: int) -> Search:
    """The fine search around the coarse winner (best_p, best_f): a job's samples win at a few dozen of
    them, so it is kept too (~110 kB each)."""
    coarse = coarse_search(nominal, length)
    pitches = coarse.pitches[best_p] + FINE_PITCH * nominal
    phases = (coarse.phases[best_p, best_f] + FINE_PHASE)[None, :]
    return Search(pitches, np.broadcast_to(phases, (len(pitches), phases.shape[1])),
                   comb_teeth(length, pitches, phases), _pitch_prior(pitches, nominal)[:, None])


def coarse_winners(smooth: NDArray[np.float64], nominal: float) -> list[tuple[int, int]]:
    """The best coarse comb (pitch index, phase index) of each profile stacked in `smooth` (A x length)."""
    search = coarse_search(nominal, smooth.shape[1])
    # the layout fixes the pitch far better than a few face edges can: deviations must earn their way
    scores = comb_scores(smooth, search.teeth) * search.prior
    best = scores.reshape(len(smooth), -1).argmax(axis=1).tolist()
    return [divmod(i, scores.shape[2]) for i in best]
