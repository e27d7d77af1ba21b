"""The loop inside a run, with the fake trainer through the real `accelerate launch`: each epoch measured into
run.json, judged (here by a scripted double of bespoke.run.judge.EpochJudge), a stop rule or the budget ending
the run at a clean point (`stopped-early`, resumable with --continue), and the validation loss read from the
event file. The real pipeline judge is tested end to end in tests/pipeline/test_live.py."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from loop_fixtures import PEAK, ScriptedJudge, loop_run, slow_steps
from manifest_helpers import manifest_of

from bespoke.errors import UsageError
from bespoke.run import events
from bespoke.run.cost import Budget, Price
from bespoke.run.events import EpochFinished
from bespoke.run.loop import SCORE_WAIT_SECONDS, LoopOptions, StopRequest
from bespoke.run.paths import RunPaths
from bespoke.run.stop_rules import StopRule
from bespoke.run.train import TrainOptions, train_run
from bespoke.settings import load_settings


def _train(run: Path, loop: LoopOptions, past_stop: bool = False) -> list[events.TrainEvent]:
    told: list[events.TrainEvent] = []
    train_run(load_settings(), run, TrainOptions(preflight=False, loop=loop, past_stop=past_stop), told.append)
    return told


@pytest.fixture
def slow_fake(fake, monkeypatch):
    slow_steps(monkeypatch)
    return fake


@pytest.mark.slow
def test_a_run_that_peaks_at_epoch_5_of_10_stops_after_5_plus_n_with_5_the_best(slow_fake, isolated_project):
    run = loop_run(isolated_project, epochs=10)
    judge = ScriptedJudge(PEAK)
    told = _train(run, LoopOptions(judge=judge, stop_when=StopRule("peaked", 2)))
    manifest = manifest_of(run)
    assert manifest["status"] == "stopped-early" and manifest["epochs_done"] == 7
    early = manifest["early_stop"]
    assert early["rule"] == "peaked:2" and early["best_epoch"] == 5 and early["after_epoch"] == 7
    assert "no epoch scored above epoch 5's interval 0.680-0.720" in early["reason"]
    assert manifest["attempt"]["reason"] == early["reason"] and manifest["attempt"]["signal"] is None
    # the loop's stop went the supervisor's own way (bespoke.run.stopping): the trainer got SIGINT and unwound
    stop = manifest["attempt"]["stop"]
    assert stop["asked_by"] == "stop request" and stop["ended"] == "graceful", stop
    assert stop["sent"][0]["signal"] == "SIGINT" and stop["sent"][0]["role"] == "trainer"
    assert manifest["attempt"]["trainer_end"]["signal"] == "SIGINT", manifest["attempt"]["trainer_end"]
    log = {r["epoch"]: r for r in manifest["epoch_log"]}
    assert [log[e]["score"] for e in range(1, 8)] == [PEAK[e] for e in range(1, 8)]
    assert log[5]["score_low"] == pytest.approx(0.68) and all(log[e]["seconds"] > 0 for e in range(2, 8))
    # the stop was asked for after epoch 7's checkpoint, state and samples: nothing cut, epoch 7 resumable
    model = RunPaths(run).model_dir
    assert (model / "loop-000007-state" / "random_states_0.pkl").is_file() and not (model / "loop.safetensors").exists()
    kinds = [type(e).__name__ for e in told]
    stopping = next(e for e in told if isinstance(e, events.Stopping))
    assert stopping.reason == early["reason"] and kinds.index("Stopping") > kinds.index("StateSaved")
    scored = [e for e in told if isinstance(e, events.EpochScored)]
    assert [e.epoch for e in scored] == list(range(1, 8)) and scored[-1].best_epoch == 5
    finished = told[-1]
    assert isinstance(finished, events.Finished) and finished.result.status == "stopped-early"
    assert finished.result.early_stop is not None and finished.result.early_stop.best_epoch == 5
    # told after run.json said it: each EpochMeasured comes after its EpochFinished
    for measured in (e for e in told if isinstance(e, events.EpochMeasured)):
        assert any(isinstance(e, EpochFinished) and e.epoch == measured.record.epoch
                   for e in told[:told.index(measured)])

    # a stopped-early run is done: the same command skips it; --continue trains on from epoch 7's state
    again = _train(run, LoopOptions(judge=ScriptedJudge(PEAK), stop_when=StopRule("peaked", 2)))
    assert len(again) == 1 and again[0].result.skipped and "--continue" in (again[0].result.reason or "")
    onwards = ScriptedJudge(PEAK)
    _train(run, LoopOptions(judge=onwards, stop_when=StopRule("peaked", 2)), past_stop=True)
    manifest = manifest_of(run)
    # two more epochs without a better score after the resume at 7: stopped again after 9, best still 5
    assert manifest["status"] == "stopped-early" and manifest["epochs_done"] == 9
    assert manifest["attempt"]["resumed_from"] == "loop-000007-state" and onwards.submitted[:2] == [8, 9]
    assert manifest["early_stop"]["best_epoch"] == 5 and manifest["early_stop"]["after_epoch"] == 9


@pytest.mark.slow
def test_the_validation_loss_is_read_into_run_json_and_stops_a_run_where_it_rose(slow_fake, isolated_project,
                                                                                monkeypatch):
    monkeypatch.setenv("FAKE_TRAINER_VAL_LOWEST_AT", "3")
    run = loop_run(isolated_project, epochs=8, held_out=True)
    told = _train(run, LoopOptions(stop_when=StopRule("val-loss", 2)))
    manifest = manifest_of(run)
    assert manifest["status"] == "stopped-early" and manifest["epochs_done"] == 5
    assert manifest["early_stop"]["best_epoch"] == 3 and "validation loss" in manifest["early_stop"]["reason"]
    log = {r["epoch"]: r for r in manifest["epoch_log"]}
    # the fake's held-out loss (the event file, as the real trainer writes it): 0.08 + 0.01 (epoch - 3)^2
    assert [log[e]["validation_loss"] for e in range(1, 6)] == pytest.approx([0.12, 0.09, 0.08, 0.09, 0.12])
    assert all(log[e]["train_loss"] is not None for e in range(1, 6))
    assert "num validation images * repeats / 検証画像の数×繰り返し回数: 2" in RunPaths(run).train_log.read_text()
    measured = [e.record for e in told if isinstance(e, events.EpochMeasured)]
    assert [r.validation_loss for r in measured] == pytest.approx([0.12, 0.09, 0.08, 0.09, 0.12])


@pytest.mark.slow
def test_a_budget_stops_the_run_before_the_next_epoch_would_pass_it(slow_fake, isolated_project):
    run = loop_run(isolated_project, epochs=10)
    price = Price(360.0)  # a tenth of a dollar a second: an epoch of the fake costs about $0.10
    budget = Budget(0.75)
    _train(run, LoopOptions(budget=budget, price=price))
    manifest = manifest_of(run)
    assert manifest["status"] == "stopped-early" and manifest["early_stop"]["rule"] == "budget $0.75"
    done = manifest["epochs_done"]
    assert 1 <= done < 10
    log = [r for r in manifest["epoch_log"] if r["epoch"] <= done]
    spent = sum(r["cost_usd"] for r in log)
    spent_said, limit, next_said = (float(x) for x in re.findall(r"\$([0-9.]+)", manifest["early_stop"]["reason"]))
    assert limit == 0.75 and spent_said + next_said > limit and spent_said == pytest.approx(spent, abs=0.01)
    # every epoch's cost is its time at the price; the run's is the attempt's whole time
    assert all(r["cost_usd"] == pytest.approx(r["seconds"] / 10, abs=1e-3) for r in log)
    assert manifest["cost_usd"] == pytest.approx(manifest["attempt"]["duration_s"] / 10, abs=1e-3)
    assert manifest["gpu_price_per_hour"] == 360.0 and budget.spent == pytest.approx(manifest["cost_usd"], abs=1e-3)


def test_a_rule_the_run_cannot_measure_is_refused_before_anything_changes(fake, isolated_project):
    run = loop_run(isolated_project, epochs=2)
    before = (run / "run.json").read_text()
    with pytest.raises(UsageError, match="holds no designs out for validation"):
        _train(run, LoopOptions(stop_when=StopRule("val-loss", 2)))
    with pytest.raises(UsageError, match="live scoring is off"):
        _train(run, LoopOptions(stop_when=StopRule("peaked", 2)))
    assert (run / "run.json").read_text() == before and not RunPaths(run).model_dir.exists()


@pytest.mark.slow
def test_no_stop_after_the_last_epoch_and_the_judge_is_waited_for_at_the_end(slow_fake, isolated_project):
    run = loop_run(isolated_project, epochs=3)
    judge = ScriptedJudge({1: 0.9, 2: 0.5, 3: 0.4})
    _train(run, LoopOptions(judge=judge, stop_when=StopRule("peaked", 2)))
    manifest = manifest_of(run)
    # peaked:2 would stop after epoch 3, the last: the run finishes instead (its final file is written)
    assert manifest["status"] == "finished" and manifest["early_stop"] is None
    assert judge.closed == SCORE_WAIT_SECONDS  # not stopped by a signal: the last scores are waited for
    assert [r["score"] for r in manifest["epoch_log"]] == [0.9, 0.5, 0.4] and judge.submitted == [1, 2, 3]


@pytest.mark.slow
def test_a_caller_prunes_a_run_from_its_observer_and_it_stops_after_that_epoch(slow_fake, isolated_project):
    """A tuner's "prune now": told epoch 3's score (EpochScored), it asks for a stop; the run stops as a rule
    stops it (epoch 3's checkpoint and state whole), stopped-early with the caller's rule and reason."""
    run = loop_run(isolated_project, epochs=10)
    prune = StopRequest()
    told: list[events.TrainEvent] = []

    def tuner(event: events.TrainEvent) -> None:
        told.append(event)
        if isinstance(event, events.EpochScored) and event.epoch == 3:
            prune.request("trial 7: epoch 3 scored 0.50, below the median of the others (0.61)", rule="pruned")
            prune.request("a second request", rule="ignored")  # the first counts

    options = TrainOptions(preflight=False, loop=LoopOptions(judge=ScriptedJudge(PEAK), stop_request=prune))
    train_run(load_settings(), run, options, tuner)
    manifest = manifest_of(run)
    assert manifest["status"] == "stopped-early", manifest["attempt"]
    early = manifest["early_stop"]
    assert early["rule"] == "pruned" and early["reason"].startswith("trial 7: epoch 3 scored 0.50")
    # told at epoch 3's score: the stop lands at the next clean point, at most the epoch then under way later
    assert early["after_epoch"] == manifest["epochs_done"] in (3, 4) and early["best_epoch"] == 3
    assert (RunPaths(run).model_dir / f"loop-{early['after_epoch']:06d}-state" / "random_states_0.pkl").is_file()
    assert [e.reason for e in told if isinstance(e, events.Stopping)] == [early["reason"]]


def test_a_stop_requested_before_any_epoch_waits_for_one():
    from bespoke.run.loop import EpochLoop
    from bespoke.run.manifest import EpochRecord, RunManifest

    prune = StopRequest()
    prune.request("not wanted", rule="pruned")
    manifest = RunManifest(id="r", status="running", num_epochs=10)
    loop = EpochLoop(RunPaths(Path("/nowhere")), manifest, LoopOptions(stop_request=prune), saves_state=True)
    assert not loop.tick(clean=True) and not loop.stop.is_set()  # no epoch complete: nothing to stop after
    manifest.epoch_log.append(EpochRecord(1, seconds=2.0))
    loop.tick(clean=False)
    assert loop.decision is not None and loop.decision.after_epoch == 1 and not loop.stop.is_set()  # not clean
    loop.tick(clean=True)
    assert not loop.stop.is_set()  # epoch 1's state is not saved yet
    loop.state_saved(1)
    loop.tick(clean=True)
    assert loop.stop.is_set() and loop.early_stop(1) is not None and loop.early_stop(1).rule == "pruned"
