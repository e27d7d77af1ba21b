"""A ranking from the user's votes, with its confidence: a Bradley-Terry fit and the words for it.

The model: every player i (a run's epoch, or a run) has a strength theta_i and beats j with probability
sigma(theta_i - theta_j). The rules that turn votes into games:

- a preferred candidate wins one game against the other;
- "same" is half a win for each (the usual rule for ties in a Bradley-Terry fit);
- "neither usable" counts against both: each loses one game to the *usable bar*, a reference player of
  strength 0;
- every player also plays the usable bar one virtual win and one virtual loss (a weak prior, worth two votes):
  it keeps the fit finite when a player never lost or never won, and fixes the scale (the bar is 0). Read
  strengths as differences between players; only "neither usable" votes move a player against the bar itself.

The fit is the maximum of that likelihood, found by Newton's method (the log-likelihood is concave, and the
prior makes it strictly so: 5-10 steps, each halved when it would overshoot; the MM iteration of Hunter 2004
needs hundreds here). The interval of each strength and of each difference comes from the Fisher information
(the inverse of the negative Hessian at the fit, which Newton computes anyway), and the chance that i beats
j is sigma of the difference, its 95 % interval sigma of the difference's interval.

Written with numpy rather than taken from a library: the fit is twenty lines, the libraries that fit
Bradley-Terry (choix; statsmodels through a logit on a design matrix) give neither the usable bar nor the
half-win ties as stated here, choix no intervals, and this keeps bespoke's dependencies to numpy and Pillow.

Head-to-head figures ("epoch 8 over epoch 5: 78 % of 23 votes") are the direct votes between the two, with
their Wilson score interval (ties count half to each side).
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Iterable, Sequence
from dataclasses import dataclass

import numpy as np

Z95 = 1.959964
MAX_ITERATIONS = 100
TOLERANCE = 1e-9


@dataclass(frozen=True)
class Game:
    """The outcome of one vote between two players: `score` is what `first` won (1, 0.5 for a tie, 0), or None
    when neither was usable (both lose to the usable bar)."""

    first: Hashable
    second: Hashable
    score: float | None


@dataclass(frozen=True)
class Fit:
    """A Bradley-Terry fit: `players` in input order, their strengths `theta` and the covariance `cov`."""

    players: tuple[Hashable, ...]
    theta: np.ndarray
    cov: np.ndarray
    votes: int
    iterations: int

    def index(self, player: Hashable) -> int:
        return self.players.index(player)

    def strength(self, player: Hashable) -> tuple[float, float, float]:
        """(theta, low, high): the strength with its 95 % interval."""
        i = self.index(player)
        half = Z95 * math.sqrt(max(self.cov[i, i], 0.0))
        return float(self.theta[i]), float(self.theta[i] - half), float(self.theta[i] + half)

    def difference(self, first: Hashable, second: Hashable) -> tuple[float, float, float]:
        """(theta_first - theta_second, low, high) with its 95 % interval."""
        i, j = self.index(first), self.index(second)
        var = self.cov[i, i] + self.cov[j, j] - 2 * self.cov[i, j]
        diff = float(self.theta[i] - self.theta[j])
        half = Z95 * math.sqrt(max(float(var), 0.0))
        return diff, diff - half, diff + half

    def beats(self, first: Hashable, second: Hashable) -> tuple[float, float, float]:
        """(P(first beats second), low, high): the model's chance with its 95 % interval."""
        return tuple(_sigmoid(d) for d in self.difference(first, second))  # type: ignore[return-value]

    def order(self) -> list[Hashable]:
        """The players, strongest first."""
        return [self.players[i] for i in np.argsort(-self.theta, kind="stable")]


def _sigmoid(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-x))


def _tables(players: Sequence[Hashable], games: Iterable[Game]) -> tuple[np.ndarray, np.ndarray, int]:
    """(wins[i, j] between players, losses to the usable bar per player, votes used)."""
    where = {p: i for i, p in enumerate(players)}
    wins = np.zeros((len(players), len(players)))
    bar_losses = np.zeros(len(players))
    count = 0
    for game in games:
        i, j = where[game.first], where[game.second]
        count += 1
        if game.score is None:
            bar_losses[[i, j]] += 1.0
        else:
            wins[i, j] += game.score
            wins[j, i] += 1.0 - game.score
    return wins, bar_losses, count


def _log_likelihood(theta: np.ndarray, wins: np.ndarray, bar_wins: np.ndarray, bar_lost: np.ndarray) -> float:
    log_p = -np.logaddexp(0.0, -(theta[:, None] - theta[None, :]))  # log sigma(theta_i - theta_j)
    return float((wins * log_p).sum() - (bar_wins * np.logaddexp(0.0, -theta)).sum()
                 - (bar_lost * np.logaddexp(0.0, theta)).sum())


def _information(theta: np.ndarray, wins: np.ndarray, bar_games: np.ndarray) -> np.ndarray:
    """The Fisher information of the strengths (the negative Hessian of the log-likelihood; the bar's
    strength is fixed at 0)."""
    games = wins + wins.T
    p = 1.0 / (1.0 + np.exp(-(theta[:, None] - theta[None, :])))
    weight = games * p * p.T
    pb = 1.0 / (1.0 + np.exp(-theta))
    return -weight + np.diag(weight.sum(axis=1) + bar_games * pb * (1.0 - pb))


def fit(players: Sequence[Hashable], games: Iterable[Game]) -> Fit:
    """The Bradley-Terry fit of `games` among `players` (see the module doc for the rules)."""
    players = tuple(dict.fromkeys(players))
    wins, bar_losses, count = _tables(players, games)
    bar_wins, bar_lost = np.ones(len(players)), 1.0 + bar_losses  # the prior, and "neither" votes
    theta = np.zeros(len(players))
    now = _log_likelihood(theta, wins, bar_wins, bar_lost)
    iterations = 0
    for iterations in range(1, MAX_ITERATIONS + 1):  # noqa: B007 -- the count is reported
        p = 1.0 / (1.0 + np.exp(-(theta[:, None] - theta[None, :])))
        pb = 1.0 / (1.0 + np.exp(-theta))
        gradient = (wins - (wins + wins.T) * p).sum(axis=1) + bar_wins - (bar_wins + bar_lost) * pb
        step = np.linalg.solve(_information(theta, wins, bar_wins + bar_lost), gradient)
        while True:  # halve a step that overshoots (the likelihood is concave: a short enough one gains)
            new = _log_likelihood(theta + step, wins, bar_wins, bar_lost)
            if new >= now - 1e-12 or np.max(np.abs(step)) < TOLERANCE:
                break
            step = step / 2
        theta, now = theta + step, new
        if np.max(np.abs(step)) < TOLERANCE:
            break
    cov = np.linalg.inv(_information(theta, wins, bar_wins + bar_lost))
    return Fit(players, theta, cov, count, iterations)


def wilson(successes: float, n: float) -> tuple[float, float]:
    """The 95 % Wilson score interval of a share `successes / n` (n > 0)."""
    share = successes / n
    centre = (share + Z95 ** 2 / (2 * n)) / (1 + Z95 ** 2 / n)
    half = Z95 * math.sqrt(share * (1 - share) / n + Z95 ** 2 / (4 * n * n)) / (1 + Z95 ** 2 / n)
    return max(0.0, centre - half), min(1.0, centre + half)


@dataclass(frozen=True)
class HeadToHead:
    """The direct votes between two players: `share` of them for `first` (ties half), with its interval;
    `neither` votes are counted apart (they favour neither side)."""

    first: Hashable
    second: Hashable
    votes: int
    share: float
    low: float
    high: float
    neither: int


def head_to_head(games: Iterable[Game], first: Hashable, second: Hashable) -> HeadToHead | None:
    """The direct votes between `first` and `second`, or None when there are no decisive or tied ones."""
    score, n, neither = 0.0, 0, 0
    for game in games:
        if {game.first, game.second} != {first, second}:
            continue
        if game.score is None:
            neither += 1
            continue
        n += 1
        score += game.score if game.first == first else 1.0 - game.score
    if n == 0:
        return None
    low, high = wilson(score, n)
    return HeadToHead(first, second, n, score / n, low, high, neither)


def percent(x: float) -> str:
    return f"{100 * x:.0f} %"


def head_to_head_text(h: HeadToHead, name) -> str:
    """'epoch 8 over epoch 5: 78 % of 23 votes, 95 % interval 58-90 %' (the side the votes favour first)."""
    if h.share < 0.5:
        h = HeadToHead(h.second, h.first, h.votes, 1 - h.share, 1 - h.high, 1 - h.low, h.neither)
    verb = "over" if h.share > 0.5 else "level with"
    neither = f"; {h.neither} neither usable" if h.neither else ""
    return (f"{name(h.first)} {verb} {name(h.second)}: {percent(h.share)} of {h.votes} vote"
            f"{'s' if h.votes != 1 else ''}, 95 % interval {percent(h.low)}–{percent(h.high)}{neither}")


def verdict(result: Fit, name) -> str:
    """The recommendation in words: the leader, and whether the votes separate it from every other player at
    95 % (the chance it beats each one has an interval above 50 %)."""
    order = result.order()
    if len(order) < 2 or result.votes == 0:
        return "not enough votes for a ranking yet"
    leader = order[0]
    close = [(p, result.beats(leader, p)) for p in order[1:]]
    open_ = [(p, b) for p, b in close if b[1] <= 0.5]
    if not open_:
        return f"use {name(leader)} (95 % confidence over every other one voted on)"
    parts = ", ".join(f"{name(p)} ({percent(b[0])} chance {name(leader)} is better, 95 % interval "
                      f"{percent(b[1])}–{percent(b[2])})" for p, b in open_)
    return f"{name(leader)} leads, but the votes do not yet separate it from {parts}: vote more on those pairs"
