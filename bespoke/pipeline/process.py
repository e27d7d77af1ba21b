"""A trained run's samples turned into candidates and a report: the one place bespoke decides that a run needs
processing (after train, in a sweep's table, in the demo)."""

from __future__ import annotations

from pathlib import Path

from bespoke.review.build import sample_files
from bespoke.review.process import process_run


def processed(run_dir: Path) -> dict | None:
    """The run's up-to-date process report, made first when it is missing or stale (the staleness rule is
    process's own: the same options, the same samples, none newer than the report); None when the run drew no
    samples (sampling was off)."""
    if not sample_files(run_dir):
        return None
    return process_run(run_dir)
