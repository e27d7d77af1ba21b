"""Who takes which trial (bespoke.tune.study) and the pruning hook (bespoke.tune.trial.Reporter), on a real
Optuna journal without a trainer: the budget is never asked past, a stopped worker's trial is taken back under
its own number, a changed space is refused, and the pruner's word becomes a stop decision at that epoch."""

from __future__ import annotations

import pytest
from tune_fixtures import space_text

from bespoke.errors import ConfigError
from bespoke.run.manifest import EpochRecord
from bespoke.settings import load_settings
from bespoke.tune.space import parse_space
from bespoke.tune.study import Worker, open_study, spent, take_trial
from bespoke.tune.trial import Reporter


def _study(trials: int = 2, startup: int = 1):
    space = parse_space(space_text(trials=trials, startup=startup), load_settings().project_root / "space.toml")
    return open_study(load_settings(), space)


def test_workers_never_ask_past_the_budget_and_a_stopped_workers_trial_is_taken_back():
    study = _study(trials=2)
    with Worker(study) as first:
        trial, resumed = take_trial(study, first)
        assert trial.number == 0 and not resumed
    # the first worker is gone with its trial RUNNING: the next worker takes that one back, not a new one
    with Worker(study) as second:
        again, resumed = take_trial(study, second)
        assert again.number == 0 and resumed and again.params == trial.params
        study.optuna.tell(again, 0.5)
        other, resumed = take_trial(study, second)
        assert other.number == 1 and not resumed
        # a live worker's trial is not taken: the budget of 2 is asked, nothing more is given
        with Worker(study) as third:
            assert take_trial(study, third) is None
    assert spent(study.space, study.optuna.get_trials()) == "2 of 2 trials asked"


def test_a_study_refuses_to_go_on_under_a_changed_space(isolated_project):
    _study()
    changed = parse_space(space_text(trials=2).replace("high = 1e-2", "high = 1e-1"),
                          isolated_project / "space.toml")
    with pytest.raises(ConfigError, match="differs from the space study 'fake' began with"):
        open_study(load_settings(), changed)


def _record(epoch: int, score: float) -> EpochRecord:
    return EpochRecord(epoch=epoch, score=score)


def test_the_pruner_stops_a_trial_below_the_median_at_the_epoch_it_is_told():
    study = _study(trials=10, startup=1)
    for value in (0.8, 0.7):  # two earlier trials, good at every epoch
        done = study.optuna.ask()
        for epoch in (1, 2, 3):
            done.report(value, epoch)
        study.optuna.tell(done, value)
    trial = study.optuna.ask()
    reporter = Reporter(trial, "score", set())
    decision = reporter([_record(1, 0.2)])
    assert decision is not None and decision.rule == "optuna" and decision.after_epoch == 1
    assert decision.reason == "pruned by optuna at epoch 1" and reporter.pruned_at == 1
    assert study.optuna.get_trials()[-1].intermediate_values == {1: 0.2}


def test_a_good_trial_is_not_pruned_and_nothing_is_reported_twice():
    study = _study(trials=10, startup=1)
    done = study.optuna.ask()
    done.report(0.3, 1)
    study.optuna.tell(done, 0.3)
    trial = study.optuna.ask()
    reporter = Reporter(trial, "score", set())
    assert reporter([_record(1, 0.6)]) is None
    assert reporter([_record(1, 0.6), EpochRecord(epoch=2)]) is None  # epoch 2 not scored yet: nothing new
    assert study.optuna.get_trials()[-1].intermediate_values == {1: 0.6}


def test_a_running_trials_time_counts_against_an_hours_budget_so_workers_do_not_overshoot(monkeypatch):
    import time

    text = space_text(trials=8).replace("[budget]\ntrials = 8", "[budget]\nhours = 0.5")
    study = open_study(load_settings(), parse_space(text, load_settings().project_root / "space.toml"))
    clock = [time.time()]
    monkeypatch.setattr("bespoke.tune.study.time.time", lambda: clock[0])
    with Worker(study) as first, Worker(study) as second:
        running = take_trial(study, first)
        assert running is not None and not running[1]
        clock[0] += 0.2 * 3600  # one trial running for 12 minutes: 0.2 of 0.5 hours
        assert spent(study.space, study.optuna.get_trials()) is None
        assert take_trial(study, second) is not None
        clock[0] += 0.16 * 3600  # two running: 0.36 + 0.16 hours; nothing has ended yet
        assert spent(study.space, study.optuna.get_trials()) == "0.52 of 0.5 GPU-hours spent"
        assert take_trial(study, second) is None
