"""The stop rules of `train --stop-when` decided from run.json's epoch records, and the price and budget."""

from __future__ import annotations

import pytest

from bespoke.errors import UsageError
from bespoke.run.cost import Budget, Price, check_budget, check_price, usd
from bespoke.run.manifest import EpochRecord
from bespoke.run.stop_rules import StopRule, best_scored, decide, parse_stop_rule


def scored(*scores: float, width: float | None = None) -> list[EpochRecord]:
    """Epochs 1..n with these scores (and an interval of +-width when given)."""
    return [EpochRecord(i, score=s, score_low=None if width is None else s - width,
                        score_high=None if width is None else s + width) for i, s in enumerate(scores, 1)]


@pytest.mark.parametrize("text, rule", [("peaked", StopRule("peaked", 2)), ("peaked:3", StopRule("peaked", 3)),
                                        ("val-loss:1", StopRule("val-loss", 1)), ("off", None), (None, None)])
def test_rules_parse(text, rule):
    assert parse_stop_rule(text) == rule


@pytest.mark.parametrize("text, words", [("peak", r"choose peaked\[:N\]"), ("peaked:0", "at least 1"),
                                         ("val-loss:x", "whole number")])
def test_bad_rules_are_one_line_errors(text, words):
    with pytest.raises(UsageError, match=words) as info:
        parse_stop_rule(text)
    assert "\n" not in str(info.value)


def test_a_run_that_peaks_at_5_stops_two_epochs_later_with_5_the_best():
    curve = [0.30, 0.40, 0.50, 0.60, 0.70, 0.66, 0.62, 0.58, 0.55, 0.50]
    rule = StopRule("peaked", 2)
    for epochs in range(1, 7):  # up to epoch 6 nothing says stop
        assert decide(rule, scored(*curve[:epochs])) is None
    decision = decide(rule, scored(*curve[:7]))
    assert decision is not None and decision.after_epoch == 7 and decision.best_epoch == 5
    assert "epoch 5" in decision.reason and "best epoch 5 (0.700)" in decision.reason


def test_a_score_inside_the_best_epochs_interval_is_not_better():
    # epoch 3 is higher than 2, but within 2's interval: 2 stays the epoch to beat, the run stops after 4
    records = scored(0.40, 0.60, 0.62, 0.55, width=0.05)
    decision = decide(StopRule("peaked", 2), records)
    assert decision is not None and decision.after_epoch == 4 and "epoch 2's interval 0.550-0.650" in decision.reason
    assert decision.best_epoch == 3  # the best is the highest score, the epoch to beat the last clear step up
    # a score above the interval is a clear step: the count starts again from there
    assert decide(StopRule("peaked", 2), scored(0.40, 0.60, 0.70, 0.65, width=0.05)) is None


def test_an_epoch_not_yet_judged_holds_the_decision_and_one_that_failed_counts_as_not_better():
    records = scored(0.5, 0.6, 0.55, 0.54)
    records[2].score = None  # epoch 3 not judged yet: only epochs 1-2 count
    assert decide(StopRule("peaked", 2), records) is None
    records[2].score_error = "no readable sample"
    decision = decide(StopRule("peaked", 2), records)
    assert decision is not None and decision.after_epoch == 4 and decision.best_epoch == 2


def test_a_run_continued_past_a_stop_counts_again_from_there():
    records = scored(0.5, 0.7, 0.6, 0.6)
    assert decide(StopRule("peaked", 2), records) is not None
    assert decide(StopRule("peaked", 2), records, floor=4) is None
    assert decide(StopRule("peaked", 2), records + scored(0.6, 0.6, 0.6)[:2], floor=4) is None
    more = records + [EpochRecord(5, score=0.6), EpochRecord(6, score=0.6)]
    decision = decide(StopRule("peaked", 2), more, floor=4)
    assert decision is not None and decision.after_epoch == 6 and decision.best_epoch == 2


def test_validation_loss_that_has_not_gone_lower_for_n_epochs():
    losses = [0.20, 0.15, 0.12, 0.13, 0.125, 0.14]
    records = [EpochRecord(i, validation_loss=v) for i, v in enumerate(losses, 1)]
    rule = StopRule("val-loss", 2)
    assert decide(rule, records[:4]) is None
    decision = decide(rule, records[:5])
    assert decision is not None and decision.after_epoch == 5 and decision.best_epoch == 3
    assert "0.1200" in decision.reason and decision.rule == "val-loss:2"


def test_best_scored_prefers_the_earlier_of_a_tie():
    best = best_scored(scored(0.5, 0.7, 0.7))
    assert best is not None and best.epoch == 2
    assert best_scored([EpochRecord(1)]) is None


def test_price_budget_and_their_checks():
    assert Price(3.6, gpus=2).of(1800) == 3.6 and Price(1.0).of(-5) == 0
    budget = Budget(5.0)
    budget.charge(4.0)
    assert budget.would_pass(1.5) and not budget.would_pass(1.0) and not budget.exhausted
    budget.charge(1.0)
    assert budget.exhausted
    assert check_price(None) is None and check_price(2) == 2.0
    for bad in (-1, float("nan"), True):
        with pytest.raises(UsageError, match="--gpu-price"):
            check_price(bad)
    with pytest.raises(UsageError, match="needs a price"):
        check_budget(5, None)
    with pytest.raises(UsageError, match="more than 0"):
        check_budget(0, 1.0)
    assert usd(1.234) == "$1.23" and usd(0.004) == "$0.004" and usd(None) == "-"
