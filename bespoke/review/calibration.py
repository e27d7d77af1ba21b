"""The score against the eye: how often the best-epoch score orders two voted candidates as the voter did,
and the term weights that make it agree more (`bespoke vote --calibrate`).

A *comparison* is one vote between two candidates with the score's terms of each sample (0-1, bespoke.review.
selection, `new` among them) and the outcome for the first: 1 (preferred), 0 (the other preferred) or 0.5 ("same"). "Neither
usable" says nothing about which is better and is left out.

Agreement: the share of decisive votes (not "same") in which the score under some weights
(selection.weighted_total) puts the preferred candidate higher; a score tie counts half. Its 95 % interval is Wilson's.

Calibration models a vote as P(first preferred) = sigma(k * (s(first) - s(second))), s the weighted mean of
the terms times `new`, k how sharply the voter follows the score. s is linear in w / sum(w) over the features
term * new, so with beta = k * w / sum(w) this is a logistic regression on the features' differences without
intercept ("same" is an outcome of 0.5). The defaults give
beta0 = k0 * w0 / sum(w0), k0 fitted alone; the fit maximises the likelihood minus a pull toward beta0 as
strong as PRIOR_VOTES of these votes (per term lambda/2 (beta - beta0)^2, lambda = PRIOR_VOTES * mean(p0 (1 -
p0) d^2): the information a vote at a term difference d carries, p0 its chance at beta0). A vote the defaults
already call for sure (a copy, `new` 0, against a new punk: every term's difference large, p0 near 1) carries
none and does not stiffen the pull, as the mean d^2 alone would (on the demo's votes, several times over). So
20 votes move the weights less than half way to what they say, 300 nearly all the way. The weights are beta / sum(beta) * sum(w0) (the
defaults' total), a negative one set to 0 (a term the voter does not reward gets no weight; the score stays
a mean of 0-1 terms). Their agreement is measured by 5-fold cross-validation (each fold's votes scored by
weights fitted without them), never on the votes they were fitted to.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from bespoke.review.ranking import wilson
from bespoke.review.selection import weighted_total

PRIOR_VOTES = 30  # the stated defaults count as much as this many votes
FOLDS = 5
MIN_VOTES = 10
NEWTON_STEPS = 50


@dataclass(frozen=True)
class Comparison:
    """One vote between two candidates: each one's terms and the outcome for `first` (1, 0 or 0.5)."""

    first: Mapping[str, float | None]
    second: Mapping[str, float | None]
    outcome: float


@dataclass(frozen=True)
class Agreement:
    """How often the score ordered the voted candidates as the voter did: `share` of `votes` decisive votes
    (score ties half), with its 95 % interval."""

    share: float
    low: float
    high: float
    votes: int

    def text(self) -> str:
        return (f"{100 * self.share:.0f} % of {self.votes} vote{'s' if self.votes != 1 else ''} "
                f"(95 % interval {100 * self.low:.0f}–{100 * self.high:.0f} %)")


def shared_terms(comparisons: Sequence[Comparison], weights: Mapping[str, float]) -> tuple[str, ...]:
    """The weighted terms measured on both sides of every comparison (a term missing anywhere is left out,
    as the score leaves out a term a run cannot measure)."""
    return tuple(t for t in weights if all(c.first.get(t) is not None and c.second.get(t) is not None
                                           for c in comparisons))


def _differences(comparisons: Sequence[Comparison], terms: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """(feature differences first - second, votes x terms, a feature being term * new; outcomes)."""
    diff = np.array([[_feature(c.first, t) - _feature(c.second, t) for t in terms]
                     for c in comparisons]).reshape(len(comparisons), len(terms))
    return diff, np.array([c.outcome for c in comparisons], dtype=float)


def _feature(terms: Mapping[str, float | None], term: str) -> float:
    new = terms.get("new")
    return float(terms[term] or 0.0) * (1.0 if new is None else float(new))


def agreement(comparisons: Sequence[Comparison], weights: Mapping[str, float]) -> Agreement | None:
    """The agreement of the score under `weights` with the decisive votes; None without any."""
    decisive = [c for c in comparisons if c.outcome in (0.0, 1.0)]
    terms = shared_terms(decisive, weights)
    if not decisive or not terms:
        return None
    margin = np.array([weighted_total(c.first, terms, weights) - weighted_total(c.second, terms, weights)
                       for c in decisive])
    return _agreement_of(margin, np.array([c.outcome for c in decisive], dtype=float))


def _agreement_of(margin: np.ndarray, outcome: np.ndarray) -> Agreement:
    """Agreement of score margins (first - second) with decisive outcomes (ties of the score half)."""
    hits = float(np.sum(np.where(np.abs(margin) < 1e-12, 0.5, (margin > 0) == (outcome > 0.5))))
    low, high = wilson(hits, len(outcome))
    return Agreement(hits / len(outcome), low, high, len(outcome))


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * x))  # no overflow at any margin


def _logistic(diff: np.ndarray, outcome: np.ndarray, prior: np.ndarray, lam: np.ndarray) -> np.ndarray:
    """beta maximising sum(y log sigma(d.beta) + (1 - y) log sigma(-d.beta)) - sum(lam/2 (beta - prior)^2)
    (Newton's method: the objective is concave)."""
    beta = prior.copy()
    for _ in range(NEWTON_STEPS):
        p = _sigmoid(diff @ beta)
        gradient = diff.T @ (outcome - p) - lam * (beta - prior)
        hessian = (diff * (p * (1 - p))[:, None]).T @ diff + np.diag(lam)
        step = np.linalg.solve(hessian, gradient)
        beta = beta + step
        if np.max(np.abs(step)) < 1e-10:
            break
    return beta


def _scale(diff: np.ndarray, outcome: np.ndarray, direction: np.ndarray) -> float:
    """k0: how sharply the votes follow the score at the default weights (a one-term logistic fit, >= 0)."""
    z = (diff @ direction)[:, None]
    return max(0.0, float(_logistic(z, outcome, np.zeros(1), np.full(1, 1e-6))[0]))


def _log_likelihood(diff: np.ndarray, outcome: np.ndarray, beta: np.ndarray) -> float:
    margin = diff @ beta
    return float(-(outcome * np.logaddexp(0, -margin) + (1 - outcome) * np.logaddexp(0, margin)).sum())


def _fit(diff: np.ndarray, outcome: np.ndarray, direction: np.ndarray) -> np.ndarray:
    """beta for these votes, pulled toward the defaults as hard as PRIOR_VOTES votes would pull."""
    prior = _scale(diff, outcome, direction) * direction
    p = _sigmoid(diff @ prior)
    lam = PRIOR_VOTES * np.maximum(((p * (1 - p))[:, None] * diff ** 2).mean(axis=0), 1e-6)
    return _logistic(diff, outcome, prior, lam)


def _folds(n: int, seed: int) -> list[np.ndarray]:
    order = np.random.default_rng(seed).permutation(n)
    return [order[i::FOLDS] for i in range(min(FOLDS, n))]


@dataclass(frozen=True)
class Calibration:
    """The weights fitted to the votes beside the defaults, and the agreement of each (the calibrated one
    measured on held-out votes)."""

    terms: tuple[str, ...]
    defaults: dict[str, float]
    weights: dict[str, float]
    votes: int
    before: Agreement | None
    after: Agreement | None


def _weights_of(beta: np.ndarray, terms: Sequence[str], total: float) -> dict[str, float] | None:
    kept = np.clip(beta, 0.0, None)
    if kept.sum() <= 0:
        return None
    return {t: round(float(v) * total / float(kept.sum()), 4) for t, v in zip(terms, kept, strict=True)}


def calibrate(comparisons: Sequence[Comparison], defaults: Mapping[str, float], seed: int = 0) -> Calibration:
    """Weights for the terms measured on every voted candidate, fitted to the votes (see the module doc)."""
    usable = [c for c in comparisons if c.outcome in (0.0, 0.5, 1.0)]
    terms = shared_terms(usable, defaults)
    base = {t: float(defaults[t]) for t in terms}
    before = agreement(usable, base)
    if len(usable) < MIN_VOTES or not terms:
        return Calibration(terms, base, dict(base), len(usable), before, None)
    diff, outcome = _differences(usable, terms)
    w0 = np.array([base[t] for t in terms])
    direction = w0 / w0.sum()
    weights = _weights_of(_fit(diff, outcome, direction), terms, float(w0.sum())) or dict(base)
    margins = np.zeros(len(usable))
    for fold in _folds(len(usable), seed):
        train = np.setdiff1d(np.arange(len(usable)), fold)
        held = _weights_of(_fit(diff[train], outcome[train], direction), terms, float(w0.sum())) or base
        margins[fold] = diff[fold] @ np.array([held[t] for t in terms])
    decisive = np.isin(outcome, (0.0, 1.0))
    after = _agreement_of(margins[decisive], outcome[decisive]) if decisive.any() else None
    return Calibration(terms, base, weights, len(usable), before, after)
