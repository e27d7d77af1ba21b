"""`bespoke train`: train a run (bespoke.run.train), then, when it finished, process its samples."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from bespoke.errors import BespokeError
from bespoke.review.process import current_report
from bespoke.review.records import ProcessReport
from bespoke.run.events import Observer, ignore
from bespoke.run.plan import PlanRequest
from bespoke.run.train import TrainOptions, TrainResult, train_request, train_run
from bespoke.settings import Settings


@dataclass
class TrainOutcome:
    """How training ended and, for a finished run, its process report (or why there is none)."""

    result: TrainResult
    report: ProcessReport | None = None
    process_error: str | None = None  # the training finished, but processing its samples failed


def train_and_process(settings: Settings, target: PlanRequest | Path, options: TrainOptions = TrainOptions(),
                      observer: Observer = ignore, process: bool = True) -> TrainOutcome:
    """Train `target` (a request to plan, or a planned run folder); a run that finished this time, with no stop
    asked for after its last checkpoint, is processed too (`process`)."""
    if isinstance(target, PlanRequest):
        result = train_request(settings, target, options, observer)
    else:
        result = train_run(settings, Path(target), options, observer)
    outcome = TrainOutcome(result)
    if process and result.status == "finished" and not result.skipped and result.signum is None:
        try:
            done = current_report(result.run_dir)
            outcome.report = done.report if done is not None else None
        except BespokeError as error:
            outcome.process_error = str(error)
    return outcome
