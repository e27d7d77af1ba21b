"""The loop inside one attempt: each complete epoch measured, judged, and asked whether the run should stop.

The supervisor (bespoke.run.supervision) drives it on its thread: `epoch_finished` when an epoch is complete
(its time, cost, training and validation loss go into run.json's `epoch_log`; the judge gets the epoch), `tick`
every quarter second (the judge's verdicts are recorded; the stop rule and the budget are asked), `close` when
the trainer is gone. The loop only changes the manifest and collects events (`take_told`): the supervisor writes
run.json and then tells the observer, so an observer that reads run.json finds what it was told.

A stop is requested through the supervisor's own stop path (`stop`, watched by bespoke.run.runner like a
sweep's Ctrl-C), only at a clean point: the epoch's checkpoint whole, its state saved (when the run saves
states), no checkpoint or state being written and no epoch's sampling under way.
"""

from __future__ import annotations

import dataclasses
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from bespoke.clock import now_iso
from bespoke.errors import UsageError
from bespoke.kohya.checkpoints import STATE_LAST_FILE
from bespoke.kohya.config import has_validation, load_toml
from bespoke.kohya.metadata import as_int
from bespoke.kohya.naming import STATE_SUFFIX
from bespoke.kohya.tensorboard import EPOCH_TAG, VALIDATION_TAG, epoch_scalars
from bespoke.run.cost import Budget, Price, usd
from bespoke.run.events import EpochFinished, EpochMeasured, EpochScored, Stopping, TrainEvent
from bespoke.run.judge import EpochJudge, JudgeFactory, Verdict
from bespoke.run.manifest import EarlyStop, EpochRecord, RunManifest
from bespoke.run.paths import RunPaths
from bespoke.run.stop_rules import StopDecision, StopRule, best_scored, decide, parse_stop_rule

SCORE_WAIT_SECONDS = 300.0  # how long a run that ended (not stopped by a signal) waits for its last scores


class StopRequest:
    """A caller's "stop this run at the next clean point" (e.g. a tuner pruning a trial from its observer on
    EpochScored): `request` from any thread; the loop takes it at its next tick and the run stops as a stop
    rule stops it -- after its last complete epoch (checkpoint and state saved), `stopped-early` with `rule` and
    `reason` in run.json's early_stop, resumable with `train --continue`. The first request counts."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._asked: tuple[str, str] | None = None

    def request(self, reason: str, rule: str = "requested") -> None:
        with self._lock:
            if self._asked is None:
                self._asked = (rule, reason)

    @property
    def asked(self) -> tuple[str, str] | None:
        """(rule, reason) once requested."""
        with self._lock:
            return self._asked


@dataclass(frozen=True)
class LoopOptions:
    """What the loop of one run does: score epochs (`judge`), stop on a rule or a budget, at a price."""

    judge: JudgeFactory | None = None
    stop_when: StopRule | None = None  # the flag's, or bespoke.toml's
    stop_explicit: bool = False  # the flag was given (`off` too): it wins over the preset's rule
    budget: Budget | None = None
    price: Price | None = None
    # another stop rule, asked like stop_when whenever an epoch was recorded or scored (an Optuna pruner:
    # bespoke.tune); it returns the decision to stop at a clean point, or None
    prune: Callable[[list[EpochRecord]], StopDecision | None] | None = None
    stop_request: StopRequest | None = None  # a caller's stop (see StopRequest)


class EpochLoop:
    """The loop of one attempt (see the module docstring)."""

    def __init__(self, paths: RunPaths, manifest: RunManifest, options: LoopOptions, saves_state: bool,
                 floor: int = 0):
        self.paths, self.manifest, self.options = paths, manifest, options
        self.saves_state, self.floor = saves_state, floor
        self.judge: EpochJudge | None = None  # made at the first epoch: nothing runs before the launch
        self.stop = threading.Event()  # the supervisor's stop request (given to bespoke.run.runner)
        self.decision: StopDecision | None = None
        self.requested: StopDecision | None = None  # the decision the stop was requested for
        self.outside = False  # a stop from outside (a sweep's Ctrl-C) came first
        self.told: list[TrainEvent] = []
        self.last_end = time.monotonic()
        self.states: set[int] = set()
        self.fresh = False  # an epoch was recorded since the stop rule was last asked
        budget = options.budget
        if budget is not None and budget.include_earlier_attempts and manifest.cost_usd:
            budget.charge(manifest.cost_usd)

    def take_told(self) -> list[TrainEvent]:
        """The events to tell once run.json is written, in order."""
        told, self.told = self.told, []
        return told

    def state_saved(self, epoch: int | None) -> None:
        if epoch is not None:
            self.states.add(epoch)

    def epoch_finished(self, event: EpochFinished, last_loss: float | None) -> None:
        """Record the epoch (time, cost, losses) and hand it to the judge."""
        now = time.monotonic()
        record = self.manifest.epoch_record(event.epoch)
        record.attempt = self.manifest.attempt.number if self.manifest.attempt is not None else None
        record.finished_at, record.seconds = now_iso(), round(now - self.last_end, 3)
        self.last_end = now
        record.samples, record.missing_samples = len(event.samples), event.missing_samples
        losses = epoch_scalars(self.paths.tensorboard_dir, (EPOCH_TAG, VALIDATION_TAG))
        record.train_loss = _rounded(losses[EPOCH_TAG].get(event.epoch, last_loss))
        record.validation_loss = _rounded(losses[VALIDATION_TAG].get(event.epoch))
        if self.options.price is not None:
            record.cost_usd = self.options.price.of(record.seconds)
            if self.options.budget is not None:
                self.options.budget.charge(record.cost_usd)
        self.told.append(EpochMeasured(self.manifest.id, dataclasses.replace(record)))
        self.fresh = True
        if self.options.judge is not None:
            if self.judge is None:
                self.judge = self.options.judge(self.paths.root)
            self.judge.submit(event)
        if self.decision is None and not _last(event):
            self.decision = self._over_budget(event.epoch)

    def _over_budget(self, epoch: int) -> StopDecision | None:
        budget, price = self.options.budget, self.options.price
        if budget is None or price is None:
            return None
        timed = [r.seconds for r in self.manifest.epoch_log if r.seconds is not None and r.attempt ==
                 (self.manifest.attempt.number if self.manifest.attempt else None)]
        later = timed[1:] or timed  # the first epoch of an attempt also paid for the model load
        next_usd = price.of(sum(later) / len(later)) if later else 0.0
        if not budget.would_pass(next_usd):
            return None
        best = best_scored(self.manifest.epoch_log)
        return StopDecision(f"budget {usd(budget.limit_usd)}",
                            f"budget: {usd(budget.spent)} of {usd(budget.limit_usd)} spent, and the next epoch "
                            f"would cost about {usd(next_usd)}", epoch, best.epoch if best is not None else None)

    @property
    def wants_stop(self) -> bool:
        """A stop is decided and not requested yet (the supervisor then looks at model/ before each tick)."""
        return self.decision is not None and not self.stop.is_set()

    def tick(self, clean: bool, outside_stop: bool = False) -> bool:
        """Record the judge's verdicts, ask the stop rule, request a stop at a clean point; True when the
        manifest changed."""
        changed = self._record(self.judge.collect() if self.judge is not None else [])
        rule = self.options.stop_when
        if self.decision is None and rule is not None and (changed or self.fresh):
            self.decision = self._unless_last(decide(rule, self.manifest.epoch_log, self.floor))
        if self.decision is None and self.options.prune is not None and (changed or self.fresh):
            self.decision = self._unless_last(self.options.prune(self.manifest.epoch_log))
        if self.decision is None:
            self.decision = self._requested()
        self.fresh = False
        if outside_stop and not self.stop.is_set():
            self.outside = True
            self.stop.set()
        if self.decision is not None and not self.stop.is_set() and clean and self._state_kept(self.decision):
            self.requested = self.decision
            self.told.append(Stopping(self.manifest.id, self.decision.reason))
            self.stop.set()
        return changed

    def _requested(self) -> StopDecision | None:
        """The caller's stop, after the last complete epoch (none before the first: it waits for one)."""
        asked = self.options.stop_request.asked if self.options.stop_request is not None else None
        done = [r.epoch for r in self.manifest.epoch_log if r.seconds is not None and r.epoch > self.floor]
        if asked is None or not done:
            return None
        best = best_scored(self.manifest.epoch_log)
        return self._unless_last(StopDecision(asked[0], asked[1], max(done), best.epoch if best else None))

    def _unless_last(self, decision: StopDecision | None) -> StopDecision | None:
        """No stop after the last epoch: the run is finishing anyway."""
        total = self.manifest.epochs_total or self.manifest.num_epochs
        return None if decision is None or (total is not None and decision.after_epoch >= total) else decision

    def _state_kept(self, decision: StopDecision) -> bool:
        return not self.saves_state or any(epoch >= decision.after_epoch for epoch in self.states)

    def _record(self, verdicts: list[Verdict]) -> bool:
        for verdict in verdicts:
            record = self.manifest.epoch_record(verdict.epoch)
            record.score, record.score_low, record.score_high = verdict.score, verdict.low, verdict.high
            record.score_error = verdict.error
            best = best_scored(self.manifest.epoch_log)
            self.told.append(EpochScored(self.manifest.id, verdict.epoch, verdict.score, verdict.low, verdict.high,
                                         best.epoch if best else None, best.score if best else None, verdict.error))
        return bool(verdicts)

    def close(self, interrupted: bool) -> None:
        """The trainer is gone: the judge's last verdicts (none waited for after a signal)."""
        if self.judge is not None:
            self._record(self.judge.close(0.0 if interrupted else SCORE_WAIT_SECONDS))

    def early_stop(self, epochs_done: int) -> EarlyStop | None:
        """What run.json says of the stop this loop requested (None when it requested none)."""
        if self.requested is None or self.outside:
            return None
        return EarlyStop(self.requested.rule, self.requested.reason, epochs_done, self.requested.best_epoch)


def loop_for(paths: RunPaths, manifest: RunManifest, training: dict, options: LoopOptions,
             past_stop: bool) -> EpochLoop:
    """The loop of this attempt: the stop rule of the flag, else the preset's (run.json), else bespoke.toml's,
    checked against what the run can measure; a run continued past an early stop counts again from there."""
    rule = options.stop_when
    if not options.stop_explicit and manifest.stop_when:
        rule = parse_stop_rule(manifest.stop_when, f"{paths.run_json}: stop_when")
    if rule is not None:
        _check_measurable(rule, paths, manifest, training, options)
    floor = manifest.epochs_done if past_stop and manifest.status == "stopped-early" else 0
    return EpochLoop(paths, manifest, dataclasses.replace(options, stop_when=rule), bool(training.get("save_state")),
                     floor)


def _check_measurable(rule: StopRule, paths: RunPaths, manifest: RunManifest, training: dict,
                      options: LoopOptions) -> None:
    if rule.kind == "peaked":
        sampled = (as_int(training.get("sample_every_n_epochs")) or 0) == 1 and manifest.prompts
        if options.judge is None or not sampled:
            why = "live scoring is off (--no-live-score)" if options.judge is None else \
                "the run does not draw samples after every epoch (sample_every_n_epochs = 1 and a prompt)"
            raise UsageError(f"--stop-when {rule}: the score of each epoch is needed, and {why}; use "
                             f"--stop-when val-loss:{rule.patience} or --stop-when off")
    elif not has_validation(load_toml(paths.dataset_toml)):
        raise UsageError(f"--stop-when {rule}: {paths.dataset_toml} holds no designs out for validation; plan the "
                         "run with a validation share (preset [bespoke] validation_share) or use --stop-when peaked")


def close_attempt(manifest: RunManifest, loop: EpochLoop, seconds: float) -> None:
    """What the attempt cost (its whole time: the model load and the final save included), added to the run's;
    the budget is charged what its epochs did not already charge."""
    price = loop.options.price
    if price is None or manifest.attempt is None:
        return
    cost = price.of(seconds)
    number = manifest.attempt.number
    charged = sum(r.cost_usd or 0.0 for r in manifest.epoch_log if r.attempt == number)
    manifest.attempt.cost_usd = cost
    manifest.cost_usd = round((manifest.cost_usd or 0.0) + cost, 4)
    manifest.gpu_price_per_hour = price.per_gpu_hour
    if loop.options.budget is not None:
        loop.options.budget.charge(max(cost - charged, 0.0))


def _last(event: EpochFinished) -> bool:
    return event.total_epochs is not None and event.epoch >= event.total_epochs


def _rounded(value: float | None) -> float | None:
    return None if value is None else round(float(value), 6)


def saving_now(model_dir: Path) -> bool:
    """A `*-state` folder is being written (its last file is not there yet)."""
    return any(folder.is_dir() and not (folder / STATE_LAST_FILE).exists()
               for folder in Path(model_dir).glob(f"*{STATE_SUFFIX}"))
