"""The score against the eye, for one run: does the best-epoch score order the voted epochs as the votes do?

The score ranks epochs (bespoke.review.selection: a weighted mean of the epoch's terms, as the report
records them), so a vote between candidates of epochs x and y agrees when the score puts the preferred
epoch higher (bespoke.review.calibration for the share, its interval and the rules). Only votes between two
epochs of the same run count, "same" and "neither usable" are left out. A *disagreement* is a pair of
epochs whose direct votes favour the epoch the score ranks lower; it is *sure* when the ranking of all the
run's votes (bespoke.review.ranking) puts the chance that the preferred epoch is better clear of 50 % at 95 %.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from itertools import combinations

from bespoke.review.calibration import Agreement, Comparison, agreement, shared_terms
from bespoke.review.ranking import Game, HeadToHead, fit, head_to_head, head_to_head_text
from bespoke.review.records import ProcessReport
from bespoke.review.selection import WEIGHTS
from bespoke.review.votes import Vote

OUTCOME = {"a": 1.0, "b": 0.0, "same": 0.5}


def epoch_terms(report: ProcessReport) -> dict[int, dict[str, float]]:
    """{epoch: the score's terms} of the report's trained epochs."""
    return {row.epoch: {k: float(v) for k, v in row.score.terms.items() if v is not None}
            for row in report.epochs if row.epoch is not None and row.epoch >= 1 and row.score.terms}


def comparisons(votes: Sequence[Vote], run_id: str, terms: Mapping[int, Mapping[str, float]]) -> list[Comparison]:
    """The votes between two scored epochs of `run_id` as comparisons of their terms ("neither" left out)."""
    out = []
    for vote in votes:
        if vote.a.run != run_id or vote.b.run != run_id or vote.answer not in OUTCOME:
            continue
        if vote.a.epoch in terms and vote.b.epoch in terms and vote.a.epoch != vote.b.epoch:
            out.append(Comparison(terms[vote.a.epoch], terms[vote.b.epoch], OUTCOME[vote.answer]))
    return out


def score_of(terms: Mapping[str, float], weights: Mapping[str, float]) -> float:
    """The weighted mean of the terms present (the score's rule)."""
    used = [t for t in weights if t in terms]
    return sum(weights[t] * terms[t] for t in used) / sum(weights[t] for t in used) if used else 0.0


@dataclass(frozen=True)
class Disagreement:
    """Two epochs the votes order one way (`votes`: the direct votes, the preferred epoch first) and the score
    the other (`scores`: each one's score under the weights checked); `sure`: the ranking is 95 % sure."""

    votes: HeadToHead
    scores: tuple[float, float]
    sure: bool


@dataclass(frozen=True)
class ScoreCheck:
    """The score under `weights` against one run's votes."""

    weights: dict[str, float]
    agreement: Agreement | None
    disagreements: list[Disagreement] = field(default_factory=list)


def _games(votes: Sequence[Vote], run_id: str) -> list[Game]:
    """The run's votes as games between its epochs (players are epoch numbers)."""
    return [Game(v.a.epoch, v.b.epoch, OUTCOME.get(v.answer)) for v in votes
            if v.a.run == run_id and v.b.run == run_id and v.a.epoch != v.b.epoch]


def check_score(terms: Mapping[int, Mapping[str, float]], run_id: str, votes: Sequence[Vote],
                weights: Mapping[str, float] | None = None) -> ScoreCheck:
    """How the run's score (its epochs' `terms`, bespoke.review.vote_agreement.epoch_terms; default weights:
    selection.WEIGHTS) agrees with its votes, and where it does not."""
    weights = dict(weights or WEIGHTS)
    found = comparisons(votes, run_id, terms)
    used = {t: weights[t] for t in shared_terms(found, weights)} if found else weights
    games = _games(votes, run_id)
    disagreements: list[Disagreement] = []
    epochs = sorted({e for v in votes if v.a.run == run_id and v.b.run == run_id
                     for e in (v.a.epoch, v.b.epoch) if e in terms})
    ranked = fit(epochs, [g for g in games if g.first in terms and g.second in terms]) if epochs else None
    for x, y in combinations(epochs, 2):
        h = head_to_head(games, x, y)
        if h is None or h.share == 0.5:
            continue
        better, worse = (x, y) if h.share > 0.5 else (y, x)
        h = head_to_head(games, better, worse)  # the preferred epoch first
        scores = (score_of(terms[better], used), score_of(terms[worse], used))
        if h is not None and ranked is not None and scores[0] < scores[1]:
            disagreements.append(Disagreement(h, scores, ranked.beats(better, worse)[1] > 0.5))
    disagreements.sort(key=lambda d: (not d.sure, -d.votes.votes))
    return ScoreCheck(used, agreement(found, used), disagreements)


def check_lines(check: ScoreCheck) -> list[str]:
    """The check in words: the agreement, then each disagreement (sure ones first)."""
    if check.agreement is None:
        return ["the score against the votes: no decisive votes between two of this run's epochs yet"]
    lines = [f"the score against the votes: it agrees with {check.agreement.text()}"]
    for d in check.disagreements:
        sure = " (the votes are 95 % sure)" if d.sure else ""
        lines.append(f"  disagree: {head_to_head_text(d.votes, _epoch)}; the score has epoch {d.votes.second} "
                     f"{d.scores[1]:.3f} over epoch {d.votes.first} {d.scores[0]:.3f}{sure}")
    return lines


def _epoch(epoch: object) -> str:
    return f"epoch {epoch}"
