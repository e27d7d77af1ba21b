"""A simulated voter with known preferences votes on the demo's real candidates through the vote session (the
pairs and sides the page would show): the ranking recovers their hidden ranking within its intervals, and
--calibrate moves the score's agreement with them up, measured on votes the fit never saw.

A voter judges by a hidden weighting of the score's own terms that is not the default (a copy still scores 0,
as `new` multiplies every weighting), and prefers the left candidate with probability sigma(SHARPNESS *
(hidden(left) - hidden(right))): votes drawn from a hidden true ranking, with Bradley-Terry noise. For the
ranking the voter (LOOKS) judges a candidate by its epoch's hidden score (the truth is an epoch ranking); for
calibration the voter (FEATURES) judges the candidate's own sample (the score scores samples)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from bespoke.review.calibration import agreement
from bespoke.review.selection import WEIGHTS, weighted_total
from bespoke.review.vote_agreement import comparisons, epoch_terms
from bespoke.review.votes import read_votes, votes_of
from bespoke.review.voting import (
    VoteRequest,
    calibrate_votes,
    gather_votes,
    load_sources,
    open_session,
    rankings,
    votes_path,
)

pytestmark = pytest.mark.slow  # the demo's four runs, eight epochs each

LOOKS = {"composition": 1.0, "clean_cells": 1.0, "feature_contrast": 1.0, "few_colours": 3.0, "adherence": 0.0,
         "pixel_art": 1.0, "varied": 0.0}  # looks only: colours counted three times, no adherence or varied
# FEATURES, feature_contrast alone: on the demo's voted pairs the terms move together (a copy, `new` 0, drops every
# one at once; few_colours and pixel_art correlate 0.9), so a voter who only re-weighs the picture terms orders
# 97 % of the pairs as the defaults do -- LOOKS agreed ~79 % with its own votes and the defaults ~79 % too,
# so calibrating to it could show nothing. feature_contrast is the widest-spread picture term among the non-copies
# and hardly follows the others (r 0.1-0.4): this voter orders ~29 % of the pairs otherwise.
FEATURES = {"composition": 0.0, "clean_cells": 0.0, "feature_contrast": 1.0, "few_colours": 0.0, "adherence": 0.0,
            "pixel_art": 0.0, "varied": 0.0}
SHARPNESS = 12.0


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    from bespoke.demo.demo import run_demo
    from bespoke.settings import load_settings

    root = tmp_path_factory.mktemp("simulated-voter")
    settings = load_settings().with_overrides(outputs_dir=root / "outputs", datasets_dir=root / "datasets",
                                              cache_dir=root / "cache")
    return run_demo(settings, root / "demo", epochs=8, prompts=4)


def _hidden(report, taste=LOOKS) -> dict[int, float]:
    run = epoch_terms(report)
    return {e: run.epoch_score(e, taste) for e in run.epochs()}


def _by_sample(report, taste) -> dict[str, float]:
    run = epoch_terms(report)
    return {f: 0.0 if terms is None else weighted_total(terms, run.used, taste) for f, (_, terms) in run.samples.items()}


def _vote(run_dir, voter: str, count: int, seed: int, per_sample: dict[str, float] | None = None) -> None:
    """`count` answers of the simulated voter on the pairs the page would show, in the run's votes file: by
    LOOKS of the epoch, or by the `per_sample` weighting of each candidate's sample."""
    session = open_session(VoteRequest((run_dir,), voter=voter), seed=seed)
    report = next(iter(session.sources.values())).report
    epochs, samples = _hidden(report), _by_sample(report, per_sample or LOOKS)
    hidden = (lambda item: samples[item.sample]) if per_sample else (lambda item: epochs[item.epoch])
    rng = np.random.default_rng(seed)
    for _ in range(count):
        shown = session.next("simulated")
        placed = session._shown[shown["token"]]
        margin = SHARPNESS * (hidden(placed.left) - hidden(placed.right))
        session.answer(shown["token"], "left" if rng.random() < 1 / (1 + math.exp(-margin)) else "right")


def test_the_ranking_recovers_the_hidden_ranking_within_its_intervals(demo):
    run_dir = demo.runs[0].run_dir
    _vote(run_dir, "sim-rank", 400, seed=1)
    [source] = load_sources(VoteRequest((run_dir,)))
    [ranking] = rankings([source], read_votes(votes_path((run_dir,))), voter="sim-rank")
    hidden = _hidden(source.report)
    truth = max(hidden, key=hidden.get)
    assert ranking.rows[0].player == truth
    result = ranking.fit
    inside = []
    for epoch in hidden:
        if epoch != truth:
            _, low, high = result.difference(epoch, truth)
            inside.append(low <= SHARPNESS * (hidden[epoch] - hidden[truth]) <= high)
    assert sum(inside) >= len(inside) - 1, inside  # 95 % intervals: at most one of seven may miss
    order = [row.player for row in ranking.rows]
    truth_order = sorted(hidden, key=hidden.get, reverse=True)
    assert order[:2] == truth_order[:2]  # further down the demo's epochs are a hair apart (their intervals above)


def test_calibrate_moves_the_scores_agreement_with_the_voter_up(demo):
    runs = [r.run_dir for r in demo.runs]
    for i, run_dir in enumerate(runs):
        _vote(run_dir, "sim-cal", 150, seed=10 + i, per_sample=FEATURES)
    request = VoteRequest(tuple(runs))
    sources = load_sources(request)
    result = calibrate_votes(sources, gather_votes(request), voter="sim-cal")  # each run's own votes file
    assert result.before is not None and result.after is not None
    share = {t: w / sum(result.weights.values()) for t, w in result.weights.items()}
    assert max(share, key=share.get) == "feature_contrast"
    assert share["feature_contrast"] > 2 * WEIGHTS["feature_contrast"] / sum(WEIGHTS[t] for t in result.terms)
    assert result.after.share > result.before.high  # held out: each vote scored by weights fitted without it
    for i, run_dir in enumerate(runs):  # fresh votes from the same voter, never seen by the fit
        _vote(run_dir, "sim-fresh", 150, seed=100 + i, per_sample=FEATURES)
    fresh = [c for s in sources for c in comparisons(
        votes_of(read_votes(votes_path((s.folder,))).records, "sim-fresh"), s.run_id, epoch_terms(s.report))]
    default, calibrated = agreement(fresh, WEIGHTS), agreement(fresh, result.weights)
    ceiling = agreement(fresh, {t: FEATURES[t] for t in result.terms})  # the voter's own weights: the most any can
    assert default is not None and calibrated is not None and ceiling is not None
    assert ceiling.share > default.high  # the votes can tell this voter from the defaults at all
    assert calibrated.share > default.high
    print(f"\nsimulated voter: defaults {result.before.text()}; calibrated (5-fold) {result.after.text()}; "
          f"fresh votes: defaults {default.text()}, calibrated {calibrated.text()}, the voter's own weights "
          f"(ceiling) {ceiling.text()}; weights {result.weights}")
