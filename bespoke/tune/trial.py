"""One trial of a study: plan its run (`trial-N`, an ordinary bespoke run), train it with each epoch's live score
(or validation loss) reported to Optuna, and tell Optuna how it ended.

- finished, or stopped early by a stop rule or the budget: COMPLETE with the objective (the best epoch's score
  from `process`, or the lowest validation loss);
- stopped by the pruner: the run is `stopped-early` with the reason "pruned by optuna at epoch N" (stopped at a
  clean point, resumable like any early stop), the trial PRUNED;
- refused (a config, the preflight), failed, or without a score: FAIL with the reason (never asked again);
- interrupted (Ctrl-C, SIGTERM, a Slurm cancel): left RUNNING; its worker's lock is gone, so the next worker
  takes it back and resumes the same run (bespoke.tune.study.take_trial).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from bespoke.errors import BespokeError
from bespoke.pipeline.live import LoopRequest, loop_options
from bespoke.pipeline.train import TrainOutcome, train_and_process
from bespoke.review.process import current_report
from bespoke.run.events import Observer
from bespoke.run.manifest import EpochRecord, load_manifest
from bespoke.run.plan import PlanRequest, plan_run
from bespoke.run.stop_rules import StopDecision, best_scored
from bespoke.run.train import TrainOptions
from bespoke.settings import Settings
from bespoke.tune.space import SearchSpace, refusal, unmeasurable
from bespoke.tune.study import COST, RUN_DIR, SECONDS, Study, optuna_module, remaining_usd

PRUNE_RULE = "optuna"


def request_for(space: SearchSpace, values: dict, dataset: Path, name: str | None) -> PlanRequest:
    return PlanRequest(resolution=space.resolution_of(values), dataset=dataset, preset=space.preset,
                       overrides=space.overrides(values), name=name)


def check_space(settings: Settings, space: SearchSpace, dataset: Path) -> int:
    """Plan every corner of the space without writing a run folder; the first refused is a ConfigError naming it.
    Returns how many corners were checked."""
    count = 0
    for values in space.corner_values():
        try:
            plan = plan_run(settings, request_for(space, values, dataset, None), create=False)
        except BespokeError as error:
            raise refusal(space, values, error) from None
        _check_measurable(space, values, plan.training, plan.manifest)
        count += 1
    return count


def _check_measurable(space: SearchSpace, values: dict, training: dict, manifest) -> None:
    if space.objective == "score" and (training.get("sample_every_n_epochs") != 1 or not manifest.prompts):
        raise unmeasurable(space, values, "the score objective needs samples after every epoch: set "
                                          "sample_every_n_epochs = 1 and give a prompt (in [study] set or the "
                                          "preset), or choose objective = \"val-loss\"")
    if space.objective == "val-loss" and not (manifest.dataset or {}).get("validation"):
        raise unmeasurable(space, values, "the val-loss objective needs designs held out: set "
                                          "bespoke.validation_share (in [study] set or the preset), or choose "
                                          "objective = \"score\"")


class Reporter:
    """The loop's `prune` hook: each newly measured epoch reported to the trial, and a stop once the pruner says
    so (the run loop requests it at a clean point)."""

    def __init__(self, trial: Any, objective: str, reported: set[int]):
        self.trial, self.objective, self.reported = trial, objective, set(reported)
        self.pruned_at: int | None = None

    def value(self, record: EpochRecord) -> float | None:
        return record.score if self.objective == "score" else record.validation_loss

    def __call__(self, records: list[EpochRecord]) -> StopDecision | None:
        new = False
        for record in sorted(records, key=lambda r: r.epoch):
            value = self.value(record)
            if value is None or record.epoch in self.reported:
                continue
            self.trial.report(float(value), record.epoch)
            self.reported.add(record.epoch)
            new = True
        if not new or not self.trial.should_prune():
            return None
        self.pruned_at = max(self.reported)
        best = best_scored(records)
        return StopDecision(PRUNE_RULE, f"pruned by optuna at epoch {self.pruned_at}", self.pruned_at,
                            best.epoch if best is not None else None)


@dataclass(frozen=True)
class TrialSetup:
    """What every trial of a worker shares."""

    settings: Settings
    study: Study
    dataset: Path
    gpu: str | None = None
    preflight: bool = True
    stop: threading.Event | None = None  # set from outside: stop this worker's trial (interrupted)


@dataclass
class TrialEnd:
    """How a trial ended: its Optuna state name, the run, and whether a signal stopped it (left RUNNING)."""

    number: int
    state: str
    run_dir: Path | None = None
    reason: str | None = None
    signum: int | None = None


def _reported(study: Study, number: int) -> set[int]:
    frozen = next(t for t in study.optuna.get_trials(deepcopy=False) if t.number == number)
    return set(frozen.intermediate_values)


def run_trial(setup: TrialSetup, trial: Any, observer: Observer) -> TrialEnd:
    """Plan, train and tell one trial (see the module docstring)."""
    study, space = setup.study, setup.study.space
    values = trial.params
    try:
        plan = plan_run(setup.settings, request_for(space, values, setup.dataset, f"trial-{trial.number}"))
    except BespokeError as error:
        return _fail(study, trial, None, f"refused: {error}")
    trial.set_user_attr(RUN_DIR, str(plan.paths.root))
    trial.set_user_attr("run_id", plan.run_id)
    reporter = Reporter(trial, space.objective, _reported(study, trial.number))
    options = _options(setup, reporter)
    try:
        outcome = train_and_process(setup.settings, plan.paths.root, options, observer)
    except BespokeError as error:
        return _fail(study, trial, plan.paths.root, f"refused: {error}")
    return _tell(study, trial, outcome, reporter)


def _options(setup: TrialSetup, reporter: Reporter) -> TrainOptions:
    space, trials = setup.study.space, setup.study.optuna.get_trials(deepcopy=False)
    price = space.budget.gpu_price_per_hour
    left = remaining_usd(space, trials)
    if left is not None:  # a trial taken back after the budget was spent stops at its first clean point
        left = max(left, 1e-6)
    loop = loop_options(setup.settings.train, LoopRequest(budget=left,
                                                          gpu_price=price, live_score=True,
                                                          count_earlier_attempts=False))
    return TrainOptions(loop=replace(loop, prune=reporter), pin_gpu=setup.gpu, preflight=setup.preflight,
                        stop=setup.stop, label=f"gpu {setup.gpu}" if setup.gpu is not None else "")


def _record(trial: Any, run_dir: Path | None) -> None:
    if run_dir is None:
        return
    manifest = load_manifest(run_dir)
    trial.set_user_attr(COST, manifest.cost_usd)
    trial.set_user_attr(SECONDS, manifest.duration_s)
    trial.set_user_attr("status", manifest.status)
    best = best_scored(manifest.epoch_log)
    if best is not None:
        trial.set_user_attr("live_best_epoch", best.epoch)


def _fail(study: Study, trial: Any, run_dir: Path | None, reason: str) -> TrialEnd:
    optuna = optuna_module()
    _record(trial, run_dir)
    trial.set_user_attr("fail_reason", reason[:500])
    study.optuna.tell(trial, state=optuna.trial.TrialState.FAIL)
    return TrialEnd(trial.number, "FAIL", run_dir, reason)


def objective_of(space: SearchSpace, outcome: TrainOutcome) -> tuple[float | None, dict]:
    """(the trial's value, what the report shows of it: best epoch, interval)."""
    manifest = load_manifest(outcome.result.run_dir)
    if space.objective == "val-loss":
        losses = [r for r in manifest.epoch_log if r.validation_loss is not None]
        low = min(losses, key=lambda r: (r.validation_loss, r.epoch)) if losses else None
        return (low.validation_loss, {"best_epoch": low.epoch}) if low is not None else (None, {})
    report = outcome.report
    if report is None and outcome.result.skipped:  # the same settings as an earlier trial's run, done already
        done = current_report(outcome.result.run_dir)
        report = done.report if done is not None else None
    best = report.best if report is not None else None
    if best is None:
        return None, {}
    record = next((r for r in manifest.epoch_log if r.epoch == best.epoch), None)
    interval = {"score_low": record.score_low, "score_high": record.score_high} if record is not None else {}
    return float(best.score), {"best_epoch": best.epoch, **interval}


def _tell(study: Study, trial: Any, outcome: TrainOutcome, reporter: Reporter) -> TrialEnd:
    optuna = optuna_module()
    result = outcome.result
    _record(trial, result.run_dir)
    if result.signum is not None or result.status == "interrupted":
        trial.set_user_attr("interrupted", result.reason or "interrupted")
        return TrialEnd(trial.number, "RUNNING", result.run_dir, result.reason, result.signum or 0)
    early = result.early_stop
    pruned = early is not None and early.rule == PRUNE_RULE and result.status == "stopped-early"
    if pruned or (reporter.pruned_at is not None and result.status in ("finished", "stopped-early")):
        # the pruner's word stands even when the run ended before its stop could be requested
        at = reporter.pruned_at if reporter.pruned_at is not None else early.after_epoch if early else None
        trial.set_user_attr("pruned_at", at)
        study.optuna.tell(trial, state=optuna.trial.TrialState.PRUNED)
        return TrialEnd(trial.number, "PRUNED", result.run_dir, f"pruned by optuna at epoch {at}")
    if result.status not in ("finished", "stopped-early"):
        return _fail(study, trial, result.run_dir, f"{result.status}: {result.reason}")
    value, shown = objective_of(study.space, outcome)
    if value is None:
        why = outcome.process_error or f"no epoch has a {study.space.objective}"
        return _fail(study, trial, result.run_dir, f"no objective: {why}")
    for key, item in shown.items():
        trial.set_user_attr(key, item)
    study.optuna.tell(trial, value)
    return TrialEnd(trial.number, "COMPLETE", result.run_dir)
