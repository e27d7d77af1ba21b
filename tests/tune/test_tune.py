"""`bespoke tune` with real Optuna and the fake trainer, whose samples peak later and cleaner the nearer a trial's
settings are to a known optimum (tune_fixtures.OPTIMUM): the study finds it within its budget, prunes the trials
that peak early and low, survives Ctrl-C and a re-run (no trial lost or run twice), and two workers share one
journal."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from tune_fixtures import distance, journal_trials, use_optimum, write_space

from bespoke.run.manifest import load_manifest
from bespoke.settings import load_settings
from bespoke.tune.report import tune_report
from bespoke.tune.space import load_space
from bespoke.tune.study import load_study
from bespoke.tune.worker import tune_here


@pytest.mark.slow
def test_eight_trials_of_three_parameters_find_the_known_optimum_and_prune_early_low_trials(fake, isolated_project,
                                                                                          monkeypatch):
    use_optimum(monkeypatch)
    space = load_space(write_space(isolated_project, trials=8))
    outcome = tune_here(load_settings(), space, observer=lambda event: None)
    trials = journal_trials(isolated_project)
    assert len(trials) == 8 and outcome.ended == "8 of 8 trials asked" and not outcome.interrupted
    assert {t.state.name for t in trials} <= {"COMPLETE", "PRUNED"}
    done = [t for t in trials if t.state.name == "COMPLETE"]
    pruned = [t for t in trials if t.state.name == "PRUNED"]
    best = max(done, key=lambda t: t.value)
    # the best completed trial is the nearest completed one, and near the optimum
    assert distance(best.params) == min(distance(t.params) for t in done) and distance(best.params) < 0.15
    # trials were pruned, lower than the best when they were, stopped at a clean point as stopped-early runs
    # saying why
    assert len(pruned) >= 2 and max(t.value for t in pruned) < best.value
    stopped = [load_manifest(Path(t.user_attrs["run_dir"])) for t in pruned]
    assert any(m.status == "stopped-early" and m.epochs_done < 4 for m in stopped)
    for manifest, trial in zip(stopped, pruned, strict=True):
        if manifest.status == "stopped-early":
            assert manifest.early_stop.reason == f"pruned by optuna at epoch {trial.user_attrs['pruned_at']}"
    # every trial is an ordinary run named for it
    for trial in trials:
        assert load_manifest(Path(trial.user_attrs["run_dir"])).name == f"trial-{trial.number}"
    report = tune_report(load_study(load_settings(), "fake"))
    assert report.best == best.number and report.margin is not None and report.margin > 0
    assert set(report.importances) == {"learning_rate", "network_dim", "lr_scheduler"}
    assert report.review is not None and report.review.is_file()


def _tune(project: Path, *args: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "bespoke", "tune", "space.toml", "--quiet", *args], cwd=project,
                            env=dict(os.environ), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def _running_trial(project: Path, number: int) -> bool:
    for run_json in (project / "outputs").glob("*/run.json"):
        manifest = load_manifest(run_json.parent)
        if manifest.name == f"trial-{number}" and manifest.status == "running" and manifest.epoch_log:
            return True
    return False


def _wait(predicate, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.2)


@pytest.mark.slow
def test_ctrl_c_keeps_the_running_trial_and_a_re_run_resumes_it_and_finishes_the_study(fake, isolated_project,
                                                                                      monkeypatch):
    use_optimum(monkeypatch, step_seconds=0.5)
    write_space(isolated_project, trials=3, epochs=3, startup=5)  # no pruning: every trial trains through
    first = _tune(isolated_project)
    _wait(lambda: _running_trial(isolated_project, 1))
    first.send_signal(signal.SIGINT)
    out, _ = first.communicate(timeout=60)
    assert first.returncode == 130, out
    trials = journal_trials(isolated_project)
    assert [t.state.name for t in trials] == ["COMPLETE", "RUNNING"]
    interrupted = Path(trials[1].user_attrs["run_dir"])
    assert load_manifest(interrupted).status == "interrupted" and trials[1].user_attrs["interrupted"]
    again = _tune(isolated_project)
    out, _ = again.communicate(timeout=300)
    assert again.returncode == 0, out
    trials = journal_trials(isolated_project)
    assert [t.number for t in trials] == [0, 1, 2] and {t.state.name for t in trials} == {"COMPLETE"}
    runs = [Path(t.user_attrs["run_dir"]) for t in trials]
    assert len(set(runs)) == 3 and runs[1] == interrupted
    attempts = [load_manifest(r).attempt.number for r in runs]
    assert attempts == [1, 2, 1]  # trial 0 never ran again; trial 1 resumed once, from its saved state
    assert load_manifest(interrupted).attempt.resumed_from is not None


@pytest.mark.slow
def test_two_workers_share_one_journal_without_asking_past_the_budget(fake, isolated_project, monkeypatch):
    use_optimum(monkeypatch, step_seconds=0.1)
    write_space(isolated_project, trials=4, epochs=2, startup=5)
    workers = [_tune(isolated_project), _tune(isolated_project)]
    for worker in workers:
        out, _ = worker.communicate(timeout=400)
        assert worker.returncode == 0, out
    trials = journal_trials(isolated_project)
    assert [t.number for t in trials] == [0, 1, 2, 3] and {t.state.name for t in trials} == {"COMPLETE"}
    assert len({t.user_attrs["worker"].rsplit("-", 2)[1] for t in trials}) == 2  # both processes took trials
    runs = [Path(t.user_attrs["run_dir"]) for t in trials]
    assert len(set(runs)) == 4 and all(load_manifest(r).attempt.number == 1 for r in runs)


@pytest.mark.slow
def test_one_worker_per_gpu_pins_each_trial_and_ctrl_c_leaves_both_trials_to_take_back(fake, isolated_project,
                                                                                      monkeypatch):
    import json

    use_optimum(monkeypatch, step_seconds=0.5)
    write_space(isolated_project, trials=2, epochs=3, startup=5)
    workers = _tune(isolated_project, "--gpus", "0,1")
    _wait(lambda: _running_trial(isolated_project, 0) and _running_trial(isolated_project, 1))
    workers.send_signal(signal.SIGINT)
    out, _ = workers.communicate(timeout=60)
    assert workers.returncode == 130, out
    launched = [json.loads(line) for line in fake.read_text().splitlines()]
    assert sorted(c["env"]["CUDA_VISIBLE_DEVICES"] for c in launched) == ["0", "1"]
    trials = journal_trials(isolated_project)
    assert [t.state.name for t in trials] == ["RUNNING", "RUNNING"]
    assert all(load_manifest(Path(t.user_attrs["run_dir"])).status == "interrupted" for t in trials)
    again = _tune(isolated_project)
    out, _ = again.communicate(timeout=300)
    assert again.returncode == 0, out
    trials = journal_trials(isolated_project)
    assert [t.state.name for t in trials] == ["COMPLETE", "COMPLETE"]
    assert all(load_manifest(Path(t.user_attrs["run_dir"])).attempt.number == 2 for t in trials)
