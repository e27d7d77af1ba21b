"""The score against the eye: agreement with the votes, and weights calibrated to a simulated voter whose
hidden weights differ from the defaults (it moves the agreement on votes it never saw up)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from bespoke.review.calibration import MIN_VOTES, Comparison, agreement, calibrate
from bespoke.review.selection import WEIGHTS

DEFAULTS = {t: WEIGHTS[t] for t in ("composition", "clean_cells", "few_colours", "pixel_art")}
HIDDEN = {"composition": 0.0, "clean_cells": 1.0, "few_colours": 3.0, "pixel_art": 0.2}  # this voter looks at colours


def _candidate(rng) -> dict:
    """A sample's terms; `new` (0 for a copy of a training punk) multiplies the score, as selection's does."""
    return {"composition": rng.uniform(0.5, 1.0), "clean_cells": rng.uniform(0.6, 1.0),
            "few_colours": rng.uniform(0.2, 1.0), "pixel_art": rng.uniform(0.3, 1.0),
            "new": float(rng.random() > 0.1)}


def _score(weights, terms) -> float:
    return terms["new"] * sum(w * terms[t] for t, w in weights.items()) / sum(weights.values())


def simulated_votes(count: int, rng, sharpness: float = 8.0) -> list[Comparison]:
    """A voter who prefers the candidate the HIDDEN score rates higher, with Bradley-Terry noise."""
    votes = []
    for _ in range(count):
        a, b = _candidate(rng), _candidate(rng)
        p = 1.0 / (1.0 + math.exp(-sharpness * (_score(HIDDEN, a) - _score(HIDDEN, b))))
        votes.append(Comparison(a, b, 1.0 if rng.random() < p else 0.0))
    return votes


def test_agreement_counts_the_votes_the_score_orders_the_same_way():
    hi, lo = {"pixel_art": 0.9}, {"pixel_art": 0.4}
    votes = [Comparison(hi, lo, 1.0)] * 3 + [Comparison(hi, lo, 0.0)] + [Comparison(hi, hi, 1.0)] \
        + [Comparison(hi, lo, 0.5), Comparison(hi, lo, 0.5)]  # "same" votes are not decisive: left out
    result = agreement(votes, {"pixel_art": 1.0})
    assert result is not None and result.votes == 5 and result.share == pytest.approx(3.5 / 5)
    assert result.low < 0.7 < result.high and result.text().startswith("70 % of 5 votes (95 % interval")
    assert agreement([Comparison(hi, lo, 0.5)], {"pixel_art": 1.0}) is None


def test_calibration_moves_the_agreement_with_the_voter_up_on_votes_it_never_saw():
    rng = np.random.default_rng(0)
    votes = simulated_votes(300, rng)
    result = calibrate(votes, DEFAULTS)
    assert result.terms == tuple(DEFAULTS) and result.defaults == DEFAULTS
    assert sum(result.weights.values()) == pytest.approx(sum(DEFAULTS.values()), abs=1e-3)
    assert max(result.weights, key=result.weights.get) == "few_colours" and result.weights["composition"] < 0.3
    assert result.before is not None and result.after is not None
    assert result.after.share > result.before.share + 0.05  # cross-validated: held-out votes only
    fresh = simulated_votes(3000, rng)
    default_fresh, calibrated_fresh = agreement(fresh, DEFAULTS), agreement(fresh, result.weights)
    hidden_fresh = agreement(fresh, HIDDEN)
    assert default_fresh and calibrated_fresh and hidden_fresh
    assert calibrated_fresh.share > default_fresh.high  # up, beyond the interval of the defaults
    assert calibrated_fresh.share > hidden_fresh.share - 0.03  # nearly as good as the voter's own weights


def test_few_votes_keep_the_weights_near_the_defaults():
    rng = np.random.default_rng(1)
    distance = lambda w: sum(abs(w[t] - DEFAULTS[t]) for t in DEFAULTS)  # noqa: E731
    few = calibrate(simulated_votes(20, rng), DEFAULTS)
    many = calibrate(simulated_votes(2000, rng), DEFAULTS)
    assert distance(few.weights) < distance(many.weights)
    none = calibrate(simulated_votes(MIN_VOTES - 1, rng), DEFAULTS)
    assert none.weights == DEFAULTS and none.after is None


def test_a_term_missing_on_a_candidate_is_left_out():
    rng = np.random.default_rng(2)
    votes = simulated_votes(60, rng)
    votes[0] = Comparison({**votes[0].first, "composition": None}, votes[0].second, votes[0].outcome)
    result = calibrate(votes, DEFAULTS)
    assert "composition" not in result.terms and set(result.weights) == {"clean_cells", "few_colours", "pixel_art"}


def _shares(weights) -> dict[str, float]:
    return {t: w / sum(weights.values()) for t, w in weights.items()}


@pytest.mark.parametrize("seed", [3, 4])
def test_the_fit_recovers_the_voters_weights_from_votes_drawn_from_its_model(seed):
    result = calibrate(simulated_votes(3000, np.random.default_rng(seed)), DEFAULTS)
    fitted, truth = _shares(result.weights), _shares(HIDDEN)
    assert all(abs(fitted[t] - truth[t]) < 0.05 for t in HIDDEN), (fitted, truth)


def _copies(count: int, rng) -> list[Comparison]:
    """Votes against a copy of a training punk (`new` 0: every term's feature drops at once) that the voter
    never hesitates over: they say nothing about which term the voter weighs."""
    out = []
    for _ in range(count):
        original, copy = _candidate(rng), _candidate(rng)
        original["new"], copy["new"] = 1.0, 0.0
        out.append(Comparison(original, copy, 1.0))
    return out


@pytest.mark.parametrize("seed", [6, 7])
def test_votes_that_say_nothing_about_the_weights_do_not_pull_them_back_to_the_defaults(seed):
    """The pull toward the defaults is as strong as PRIOR_VOTES votes *of the information these votes carry*:
    votes against copies are certain (no information at the defaults' fit), so adding them must not make the
    prior stronger (scaled by the mean squared difference alone, it did: the move from the defaults shrank by a
    third with as many copies as votes)."""
    rng = np.random.default_rng(seed)
    votes = simulated_votes(300, rng)
    moved = lambda w: sum(abs(_shares(w)[t] - _shares(DEFAULTS)[t]) for t in DEFAULTS)  # noqa: E731
    alone, with_copies = calibrate(votes, DEFAULTS), calibrate(votes + _copies(300, rng), DEFAULTS)
    assert moved(with_copies.weights) > 0.8 * moved(alone.weights)
