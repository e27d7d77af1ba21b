"""`bespoke train`: train a run (bespoke.run.train), then, when it finished or stopped early, process its samples
(and draw its contact sheet for a notification)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from bespoke.errors import BespokeError
from bespoke.review.process import current_report
from bespoke.review.records import ProcessReport
from bespoke.review.sheets import build_contact_sheets
from bespoke.run.events import Observer, ignore
from bespoke.run.manifest import DONE_STATUSES
from bespoke.run.notify import end_summary
from bespoke.run.plan import PlanRequest
from bespoke.run.train import TrainOptions, TrainResult, train_request, train_run
from bespoke.settings import Settings


@dataclass
class TrainOutcome:
    """How training ended and, for a finished run, its process report (or why there is none)."""

    result: TrainResult
    report: ProcessReport | None = None
    process_error: str | None = None  # the training finished, but processing its samples failed
    sheet: Path | None = None  # the first contact sheet, when one was asked for

    @property
    def best_epoch(self) -> int | None:
        return self.report.best.epoch if self.report is not None and self.report.best is not None else None

    def summary(self) -> dict:
        """What a notification says of this run (bespoke.run.notify.end_summary)."""
        best = self.report.best if self.report is not None else None
        return end_summary(self.result, self.sheet, (best.epoch, best.score) if best is not None else None)


def train_and_process(settings: Settings, target: PlanRequest | Path, options: TrainOptions = TrainOptions(),
                      observer: Observer = ignore, process: bool = True, sheet: bool = False) -> TrainOutcome:
    """Train `target` (a request to plan, or a planned run folder); a run that finished (or stopped early) this
    time, with no stop asked for after its last checkpoint, is processed too (`process`), and its contact sheet
    drawn (`sheet`)."""
    if isinstance(target, PlanRequest):
        result = train_request(settings, target, options, observer)
    else:
        result = train_run(settings, Path(target), options, observer)
    outcome = TrainOutcome(result)
    if process and result.status in DONE_STATUSES and not result.skipped and result.signum is None:
        try:
            done = current_report(result.run_dir)
            outcome.report = done.report if done is not None else None
            if sheet and outcome.report is not None:
                sheets = build_contact_sheets(result.run_dir, outcome.report)
                outcome.sheet = sheets[0].path if sheets else None
        except BespokeError as error:
            outcome.process_error = str(error)
    return outcome
