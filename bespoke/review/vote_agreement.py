"""The score against the eye, for one run: does the best-epoch score order the voted epochs as the votes do?

The score scores each sample (bespoke.review.selection.sample_score: the weighted mean of its recorded terms
times `new`) and an epoch by the mean of its samples' scores, so a vote between two candidates agrees when the
score puts the preferred candidate's sample higher (bespoke.review.calibration for the share, its interval and
the rules). Only votes between two epochs of the same run count, "same" and "neither usable" are left out. A
*disagreement* is a pair of epochs whose direct votes favour the epoch the score ranks lower; it is *sure* when
the ranking of all the run's votes (bespoke.review.ranking) puts the chance that the preferred epoch is better
clear of 50 % at 95 %.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from itertools import combinations

from bespoke.review.calibration import Agreement, Comparison, agreement, shared_terms
from bespoke.review.ranking import Game, HeadToHead, fit, head_to_head, head_to_head_text
from bespoke.review.records import ProcessReport
from bespoke.review.selection import WEIGHTS, used_terms, weighted_total
from bespoke.review.votes import Vote

OUTCOME = {"a": 1.0, "b": 0.0, "same": 0.5}


@dataclass(frozen=True)
class RunTerms:
    """A run's recorded terms as the score reads them: per sample file its epoch and terms (None: degenerate,
    it scores 0), and the terms measured on every sample (selection.used_terms)."""

    samples: Mapping[str, tuple[int, Mapping[str, float | None] | None]]
    used: tuple[str, ...]

    def epochs(self) -> set[int]:
        return {epoch for epoch, _ in self.samples.values()}

    def epoch_score(self, epoch: int, weights: Mapping[str, float]) -> float:
        """The epoch's score under `weights`: the mean of its samples' (selection.weighted_total)."""
        scores = [0.0 if terms is None else weighted_total(terms, self.used, weights)
                  for e, terms in self.samples.values() if e == epoch]
        return sum(scores) / len(scores) if scores else 0.0


def epoch_terms(report: ProcessReport) -> RunTerms:
    """The terms of the report's samples of trained epochs (epoch 0 is never scored)."""
    return RunTerms({s.file: (s.epoch, None if s.degenerate is not None else dict(s.scoring.terms))
                     for s in report.samples if s.epoch is not None and s.epoch >= 1},
                    used_terms(report.samples))


def comparisons(votes: Sequence[Vote], run_id: str, run: RunTerms) -> list[Comparison]:
    """The votes between two scored epochs of `run_id` as comparisons of the voted samples' terms (the used
    terms and `new`; "neither" and degenerate samples left out)."""
    out = []
    for vote in votes:
        if vote.a.run != run_id or vote.b.run != run_id or vote.answer not in OUTCOME or vote.a.epoch == vote.b.epoch:
            continue
        first, second = run.samples.get(vote.a.sample), run.samples.get(vote.b.sample)
        if first is not None and second is not None and first[1] is not None and second[1] is not None:
            out.append(Comparison(_measured(first[1], run.used), _measured(second[1], run.used),
                                  OUTCOME[vote.answer]))
    return out


def _measured(terms: Mapping[str, float | None], used: Sequence[str]) -> dict[str, float | None]:
    return {t: terms.get(t) for t in (*used, "new") if t in terms}


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


def check_score(terms: RunTerms, run_id: str, votes: Sequence[Vote],
                weights: Mapping[str, float] | None = None) -> ScoreCheck:
    """How the run's score (its samples' `terms`, epoch_terms; default weights: selection.WEIGHTS) agrees with
    its votes, and where it does not."""
    weights = dict(weights or WEIGHTS)
    found = comparisons(votes, run_id, terms)
    used = {t: weights[t] for t in shared_terms(found, weights)} if found else weights
    games = _games(votes, run_id)
    disagreements: list[Disagreement] = []
    scored = terms.epochs()
    epochs = sorted({e for v in votes if v.a.run == run_id and v.b.run == run_id
                     for e in (v.a.epoch, v.b.epoch) if e in scored})
    ranked = fit(epochs, [g for g in games if g.first in scored and g.second in scored]) if epochs else None
    for x, y in combinations(epochs, 2):
        h = head_to_head(games, x, y)
        if h is None or h.share == 0.5:
            continue
        better, worse = (x, y) if h.share > 0.5 else (y, x)
        h = head_to_head(games, better, worse)  # the preferred epoch first
        scores = (terms.epoch_score(better, used), terms.epoch_score(worse, used))
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
