"""The training event channel: what a run tells its observer, in order, with the fake trainer launched through
the real `accelerate launch` — and what the library decides that the commands used to (--no-resume, stale)."""

from __future__ import annotations

from pathlib import Path

import pytest
from manifest_helpers import change_manifest, manifest_of
from test_train import hand_run

from bespoke.errors import RunError
from bespoke.run import events
from bespoke.run.train import TrainOptions, train_run
from bespoke.settings import load_settings


def _train(run: Path, options: TrainOptions = TrainOptions(preflight=False)) -> list[events.TrainEvent]:
    told: list[events.TrainEvent] = []
    train_run(load_settings(), run, options, told.append)
    return told


@pytest.mark.slow
def test_a_run_tells_its_observer_every_epoch_with_its_checkpoint_samples_and_state(fake, isolated_project,
                                                                                    synthetic_dataset):
    run = hand_run(isolated_project, synthetic_dataset, save_state=True, epochs=3)
    told = _train(run)
    kinds = [type(e).__name__ for e in told]
    assert kinds[0] == "Started" and kinds[-1] == "Finished" and kinds.count("Finished") == 1
    started = told[0]
    assert isinstance(started, events.Started) and started.run_id == "hand" and started.attempt == 1
    finished = [e for e in told if isinstance(e, events.EpochFinished)]
    assert [e.epoch for e in finished] == [1, 2, 3]
    assert [e.checkpoint.name for e in finished if e.checkpoint] == ["hand-000001.safetensors",
                                                                    "hand-000002.safetensors", "hand.safetensors"]
    assert all(len(e.samples) == 1 and e.missing_samples == 0 for e in finished)  # one prompt per epoch
    assert all(f"_e{e.epoch:06d}_" in e.samples[0].name for e in finished)
    states = [e for e in told if isinstance(e, events.StateSaved)]
    assert {e.epoch for e in states} >= {1, 2} and all(e.path.name.endswith("-state") for e in states)
    # an epoch is told only once its checkpoint is whole: after the CheckpointWritten of that file
    for epoch_event in finished:
        written = next(i for i, e in enumerate(told) if isinstance(e, events.CheckpointWritten)
                       and e.path == epoch_event.checkpoint)
        assert written < told.index(epoch_event)
    progress = [e for e in told if isinstance(e, events.Progress)]
    assert progress and progress[-1].snapshot.total_epochs == 3
    assert told[-1].result.status == "finished" and manifest_of(run)["status"] == "finished"


@pytest.mark.slow
def test_a_finished_run_tells_only_that_it_was_skipped(fake, isolated_project, synthetic_dataset):
    run = hand_run(isolated_project, synthetic_dataset)
    _train(run)
    again = _train(run)
    assert len(again) == 1 and isinstance(again[0], events.Finished) and again[0].result.skipped


@pytest.mark.slow
def test_no_resume_is_decided_by_the_library(fake, isolated_project, synthetic_dataset):
    run = hand_run(isolated_project, synthetic_dataset)
    change_manifest(run, status="interrupted")
    with pytest.raises(RunError, match="drop --no-resume to resume it"):
        train_run(load_settings(), run, TrainOptions(resume=False))
    assert manifest_of(run)["status"] == "interrupted" and not (run / "model").exists()


def test_an_observer_that_fails_is_dropped_and_the_others_go_on(monkeypatch):
    from bespoke import progress

    warned, seen = [], []

    def broken(event):
        raise OSError("the terminal went away")

    monkeypatch.setattr(progress, "say", lambda text, level="info": warned.append((text, level)))
    both = events.Broadcast.of([broken, seen.append, None])
    first = events.Message("r1", "one")
    both(first)
    both(events.Message("r1", "two"))
    assert [e.text for e in seen] == ["one", "two"] and len(both.observers) == 1
    assert len(warned) == 1 and "a display of this run failed" in warned[0][0] and warned[0][1] == "warning"
