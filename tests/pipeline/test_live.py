"""The live judge (bespoke.pipeline.live.LiveJudge): process's candidates and score for each epoch while the fake
trainer trains, in process's own journal, so `process` afterwards finds every sample done and agrees with every
score; its workers niced and counted from the CPUs the trainer leaves; a judge that cannot start says why for
each epoch and never stops the run."""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path

import psutil
import pytest
from loop_fixtures import loop_run, slow_steps
from manifest_helpers import manifest_of

from bespoke.pipeline import live
from bespoke.pipeline.live import LiveJudge, LoopRequest, loop_options, score_interval, verdict_of
from bespoke.review.candidates import Outcome
from bespoke.review.process import current_report, job_for, pool_context, put_down, run_options
from bespoke.review.records import SampleError, Score
from bespoke.review.request import resolve_request
from bespoke.review.scoring import Scorer
from bespoke.run.events import EpochFinished, EpochScored
from bespoke.run.loop import LoopOptions
from bespoke.run.manifest import load_manifest
from bespoke.run.paths import RunPaths
from bespoke.run.stop_rules import StopRule
from bespoke.run.train import TrainOptions, train_run
from bespoke.settings import TrainSettings, load_settings


@pytest.mark.slow
def test_each_epoch_is_scored_as_process_scores_it_and_no_sample_is_processed_twice(fake, isolated_project,
                                                                                   monkeypatch):
    slow_steps(monkeypatch)
    monkeypatch.setenv("FAKE_TRAINER_SAMPLES_BEST_AT", "3")  # pixel art: an epoch of no-grid samples scores None
    run = loop_run(isolated_project, epochs=4)
    told: list = []
    train_run(load_settings(), run, TrainOptions(preflight=False, loop=LoopOptions(judge=LiveJudge)), told.append)
    manifest = manifest_of(run)
    assert manifest["status"] == "finished"
    live_scores = {r["epoch"]: r["score"] for r in manifest["epoch_log"]}
    assert sorted(live_scores) == [1, 2, 3, 4] and all(isinstance(s, float) for s in live_scores.values())
    assert [e.epoch for e in told if isinstance(e, EpochScored)] == [1, 2, 3, 4]
    # the journal holds each sample once; the candidates are on disk
    paths = RunPaths(run)
    lines = (paths.report_dir / "partial.jsonl").read_text().splitlines()[1:]
    files = [json.loads(line)["sample"]["file"] for line in lines]
    samples = sorted(p.relative_to(run).as_posix() for p in paths.sample_dir.glob("*.png"))
    assert sorted(files) == samples and len(files) == 4
    written = {p: p.stat().st_mtime_ns for p in paths.candidates_dir.rglob("*.png")}
    manifest_record = load_manifest(run)
    methods = resolve_request(run, run_options(run, manifest_record), manifest_record).methods
    assert len(written) == 4 * len(manifest_record.prompts) * len(methods)  # epochs x prompts x the run's methods
    time.sleep(0.05)
    processed = current_report(run)
    assert processed is not None and not processed.reused
    report = processed.report
    # process found every sample judged already: no candidate was written again, and the scores agree
    assert {p: p.stat().st_mtime_ns for p in paths.candidates_dir.rglob("*.png")} == written
    assert {row.epoch: row.score.total for row in report.epochs} == live_scores
    assert not (paths.report_dir / "partial.jsonl").exists()


@pytest.mark.slow
def test_a_run_whose_samples_peak_at_epoch_4_of_10_stops_after_6_with_4_the_best(fake, isolated_project,
                                                                                monkeypatch):
    """The real judge on the fake's pixel-art samples, sharpest at epoch 4: peaked:2 stops after epoch 6."""
    monkeypatch.setenv("FAKE_TRAINER_STEP_SECONDS", "0.5")  # 2 s an epoch: each score lands within its epoch
    monkeypatch.setenv("FAKE_TRAINER_SAMPLES_BEST_AT", "4")
    run = loop_run(isolated_project, epochs=10)
    train_run(load_settings(), run, TrainOptions(preflight=False, loop=LoopOptions(
        judge=LiveJudge, stop_when=StopRule("peaked", 2))), lambda event: None)
    manifest = manifest_of(run)
    assert manifest["status"] == "stopped-early" and manifest["epochs_done"] == 6
    assert manifest["early_stop"]["best_epoch"] == 4 and manifest["early_stop"]["after_epoch"] == 6
    scores = [r["score"] for r in manifest["epoch_log"]]
    assert scores[:4] == sorted(scores[:4]) and scores[3] > scores[4] > scores[5]  # up to 4, down after
    assert "no epoch scored above epoch 4's score" in manifest["early_stop"]["reason"]


def test_a_judge_that_cannot_start_says_why_for_each_epoch(tmp_path):
    judge = LiveJudge(tmp_path / "not-a-run")
    for epoch in (1, 2):
        judge.submit(EpochFinished("r", tmp_path, epoch, 3, None, (tmp_path / "x.png",)))
    verdicts = judge.close(10)
    assert [v.epoch for v in verdicts] == [1, 2] and all(v.score is None for v in verdicts)
    assert all("live scoring could not start" in (v.error or "") for v in verdicts)


def test_a_judge_closed_at_once_returns_at_once(tmp_path):
    judge = LiveJudge(tmp_path)
    began = time.monotonic()
    assert judge.close(0.0) == []
    assert time.monotonic() - began < 1


def test_an_epoch_without_samples_is_not_judged_unless_its_samples_are_missing():
    judge = LiveJudge(Path("/nowhere"))
    assert judge._judge(None, EpochFinished("r", Path("/nowhere"), 1, 2, None)) is None  # type: ignore[arg-type]
    missing = judge._judge(None, EpochFinished("r", Path("/nowhere"), 1, 2, None, (), 2))  # type: ignore[arg-type]
    assert missing is not None and missing.score is None and "not drawn" in (missing.error or "")


def test_an_epoch_whose_samples_all_failed_has_the_reason_for_its_verdict():
    outcomes = [Outcome(SampleError(file="model/sample/a.png", error="truncated or corrupt image (x)"))]
    verdict = verdict_of(3, outcomes, ("grid",))
    assert verdict.score is None and "none of its 1 samples" in (verdict.error or "") and "a.png" in verdict.error


def test_the_interval_is_read_only_where_the_score_record_has_one():
    assert score_interval(Score(total=0.5)) == (None, None)  # one sample an epoch: no bootstrap interval
    assert score_interval(Score(total=0.5, interval=[0.42, 0.61])) == (0.42, 0.61)


def test_live_scoring_follows_the_flag_over_bespoke_toml():
    assert loop_options(TrainSettings(), LoopRequest()).judge is LiveJudge  # on by default
    assert loop_options(TrainSettings(live_score=False), LoopRequest()).judge is None
    assert loop_options(TrainSettings(live_score=False), LoopRequest(live_score=True)).judge is LiveJudge
    assert loop_options(TrainSettings(), LoopRequest(live_score=False)).judge is None


def test_the_workers_are_the_cpus_the_trainer_leaves(monkeypatch, tmp_path):
    paths = RunPaths(tmp_path)
    paths.config_dir.mkdir(parents=True)
    paths.training_toml.write_text("[training]\nmax_data_loader_n_workers = 2\n")
    monkeypatch.setattr(live, "available_cpus", lambda: 8)
    assert live.spare_cpus(tmp_path) == 5  # 8 - the trainer's process - 2 loaders
    paths.training_toml.write_text("[training]\nseed = 1\n")  # sd-scripts' default: 8 loaders
    assert live.spare_cpus(tmp_path) == 1
    monkeypatch.setattr(live, "available_cpus", lambda: 2)
    paths.training_toml.write_text("[training]\nmax_data_loader_n_workers = 0\n")
    assert live.spare_cpus(tmp_path) == 1


def test_the_workers_are_niced(tmp_path):
    request = resolve_request(tmp_path, run_options(tmp_path, None))
    with pool_context().Pool(1, initializer=live._worker, initargs=(job_for(request, tmp_path, Scorer()), 5)) as pool:
        niceness = pool.apply(os.nice, (0,))
    assert niceness == min(19, os.nice(0) + 5)


def _killed_from_outside(pool) -> list[psutil.Process]:
    """SIGTERM to the pool's workers and their fork server, as Slurm's cancel sends it to every process of a task."""
    worker = psutil.Process(pool.submit(os.getpid).result(timeout=120))
    server = psutil.Process(worker.ppid())
    workers = server.children()
    for process in [*workers, server]:
        process.send_signal(signal.SIGTERM)
    psutil.wait_procs(workers, timeout=10)
    # the server is this process's child: multiprocessing reaps it (and starts another) when it is next needed
    deadline = time.monotonic() + 10
    while server.status() != psutil.STATUS_ZOMBIE and time.monotonic() < deadline:
        time.sleep(0.05)
    return workers


def test_a_judge_whose_workers_were_killed_from_outside_puts_its_pool_down_at_once(tmp_path):
    """multiprocessing.Pool's terminate() waited for ever on the task queue's lock an idle worker died holding, so
    a cancelled Slurm task hung until SIGKILL with its stop unrecorded."""
    request = resolve_request(tmp_path, run_options(tmp_path, None))
    job = job_for(request, tmp_path, Scorer())
    pool = live.open_pool(2, job, 0)
    victims = _killed_from_outside(pool)
    assert not any(p.is_running() for p in victims)
    began = time.monotonic()
    put_down(pool)
    assert time.monotonic() - began < 2
    again = live.open_pool(1, job, 0)  # the next judge gets a fork server again
    assert again.submit(os.getpid).result(timeout=120) != os.getpid()
    put_down(again)
