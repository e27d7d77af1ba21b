"""A sweep's comparison table gets each finished run's best epoch: its samples are processed first when their
report is missing or stale."""

from __future__ import annotations

from bespoke.errors import BespokeError
from bespoke.review.process import current_report
from bespoke.review.report import report_summary
from bespoke.run.manifest import DONE_STATUSES
from bespoke.run.sweep import SweepRow


def process_sweep_rows(rows: list[SweepRow]) -> None:
    """Fill each finished run's best epoch and colours (processing it when needed); a run whose processing fails
    keeps its row, with the reason."""
    for row in rows:
        if row.run_dir is None or row.status not in (*DONE_STATUSES, "skipped"):
            continue
        try:
            current_report(row.run_dir)
        except BespokeError as error:  # the table still shows the run; the reason says why metrics are missing
            row.reason = f"process: {error}"
            continue
        row.best_epoch, row.mean_colors = report_summary(row.run_dir)
