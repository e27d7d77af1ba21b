"""The ranking from votes: a Bradley-Terry fit that recovers a simulated voter's hidden ranking within its
intervals, the stated rules for "same" and "neither usable", and the words it is said in."""

from __future__ import annotations

import math

import numpy as np
import pytest

from bespoke.review.ranking import Game, fit, head_to_head, head_to_head_text, verdict, wilson

HIDDEN = {1: 0.0, 2: 0.5, 3: 1.1, 4: 1.6, 5: 1.3, 6: 0.7}  # epoch 4 best, 9 and 10 regress: the user's shape


def simulated_games(strengths: dict, votes: int, rng: np.random.Generator) -> list[Game]:
    """A voter who prefers i over j with probability sigma(theta_i - theta_j) (Bradley-Terry noise)."""
    players = sorted(strengths)
    games = []
    for _ in range(votes):
        i, j = rng.choice(len(players), size=2, replace=False)
        a, b = players[i], players[j]
        p = 1.0 / (1.0 + math.exp(-(strengths[a] - strengths[b])))
        games.append(Game(a, b, 1.0 if rng.random() < p else 0.0))
    return games


def test_a_simulated_voter_is_recovered_within_the_intervals():
    rng = np.random.default_rng(7)
    inside = total = 0
    orders_right = 0
    for _ in range(200):
        result = fit(list(HIDDEN), simulated_games(HIDDEN, 400, rng))
        for j in HIDDEN:
            if j == 4:
                continue
            _, low, high = result.difference(4, j)
            inside += low <= HIDDEN[4] - HIDDEN[j] <= high
            total += 1
        orders_right += result.order()[0] == 4
    coverage = inside / total
    assert 0.90 <= coverage <= 0.99, coverage  # a 95 % interval covers the truth about 95 % of the time
    assert orders_right >= 150  # 400 votes find the best of six epochs 0.3 apart most of the time


def test_more_votes_narrow_the_interval_and_the_leader_is_named_with_confidence():
    rng = np.random.default_rng(3)
    few = fit(list(HIDDEN), simulated_games(HIDDEN, 60, rng))
    many = fit(list(HIDDEN), simulated_games(HIDDEN, 3000, rng))
    width = lambda r: r.difference(4, 1)[2] - r.difference(4, 1)[1]  # noqa: E731
    assert width(many) < width(few) / 4
    text = verdict(many, lambda e: f"epoch {e}")
    assert text.startswith("epoch 4 leads") or text.startswith("use epoch 4")
    clear = fit([1, 2], [Game(1, 2, 1.0)] * 40 + [Game(1, 2, 0.0)] * 5)
    assert verdict(clear, lambda e: f"epoch {e}") == "use epoch 1 (95 % confidence over every other one voted on)"
    unclear = fit([1, 2], [Game(1, 2, 1.0)] * 3 + [Game(1, 2, 0.0)] * 2)
    assert "do not yet separate" in verdict(unclear, lambda e: f"epoch {e}")


def test_same_counts_half_a_win_to_each_side():
    two_same = fit([1, 2], [Game(1, 2, 1.0), Game(1, 2, 0.5), Game(1, 2, 0.5)])
    win_and_loss = fit([1, 2], [Game(1, 2, 1.0), Game(1, 2, 1.0), Game(1, 2, 0.0)])
    assert two_same.difference(1, 2)[0] == pytest.approx(win_and_loss.difference(1, 2)[0], abs=1e-8)
    level = fit([1, 2], [Game(1, 2, 0.5)] * 10)
    assert level.difference(1, 2)[0] == pytest.approx(0.0, abs=1e-9)


def test_neither_usable_counts_against_both():
    games = [Game(1, 2, 0.5)] * 6 + [Game(1, 3, 0.5)] * 6 + [Game(2, 3, 0.5)] * 6
    base = fit([1, 2, 3], games)
    rejected = fit([1, 2, 3], games + [Game(1, 2, None)] * 6)
    assert rejected.strength(1)[0] < base.strength(1)[0] and rejected.strength(2)[0] < base.strength(2)[0]
    assert rejected.strength(3)[0] > max(rejected.strength(1)[0], rejected.strength(2)[0])
    assert rejected.difference(1, 2)[0] == pytest.approx(0.0, abs=1e-9)  # it favours neither side


def test_a_player_that_never_lost_stays_finite():
    result = fit([1, 2], [Game(1, 2, 1.0)] * 12)
    theta, low, high = result.strength(1)
    assert math.isfinite(theta) and math.isfinite(high) and low < theta < high
    assert result.beats(1, 2)[0] > 0.9


def test_head_to_head_in_words():
    games = [Game(5, 8, 0.0)] * 18 + [Game(5, 8, 1.0)] * 5 + [Game(5, 8, None)] * 2
    h = head_to_head(games, 5, 8)
    assert h is not None and h.votes == 23 and h.neither == 2
    low, high = wilson(18, 23)
    assert h.share == pytest.approx(5 / 23) and (h.low, h.high) == pytest.approx((1 - high, 1 - low))
    assert head_to_head_text(h, lambda e: f"epoch {e}") == (
        f"epoch 8 over epoch 5: 78 % of 23 votes, 95 % interval {100 * low:.0f} %–{100 * high:.0f} %; "
        "2 neither usable")
    assert head_to_head([Game(1, 2, None)], 1, 2) is None


def test_the_wilson_interval():
    n, z = 23, 1.959964
    assert wilson(0, n) == pytest.approx((0.0, z * z / (n + z * z)))  # its closed form at no successes
    low, high = wilson(18, 23)
    assert low < 18 / 23 < high and 0.55 < low < 0.6 and 0.9 < high < 0.93
    assert wilson(50, 100) == pytest.approx((1 - wilson(50, 100)[1], 1 - wilson(50, 100)[0]))
    assert wilson(500, 1000)[1] - wilson(500, 1000)[0] < (wilson(5, 10)[1] - wilson(5, 10)[0]) / 5
