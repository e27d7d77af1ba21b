"""`bespoke runs`: every run folder with what training left (run.json, its status as it really is) and what
processing found (the best epoch)."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from bespoke.errors import BespokeError
from bespoke.review.report import report_summary
from bespoke.run.manifest import RunManifest, load_manifest
from bespoke.run.paths import list_run_dirs
from bespoke.run.resume import live_status
from bespoke.run.slurm_sweep import slurm_columns
from bespoke.run.stop_rules import best_scored


@dataclass
class RunRow:
    """One line of `bespoke runs` (and one object of `runs --json`)."""

    id: str
    status: str  # run.json's, except `stale`: it says running while no bespoke holds the run
    resolution: int | None
    preset: str | None
    epochs_done: int
    epochs_total: int | None
    best_epoch: int | None
    simulated: bool
    path: str
    error: str | None = None  # why run.json could not be read
    name: str | None = None
    label: str | None = None  # the name as shown (with what differs from runs sharing it)
    slurm: dict[str, Any] | None = None  # Slurm's view of a submitted run: state, job, node, elapsed
    score: float | None = None  # the best epoch's score (processed, else live)
    score_low: float | None = None  # its interval, when the live score has one
    score_high: float | None = None
    best_from: str | None = None  # "process" (report.json) or "live" (run.json's epoch_log)
    validation_loss: float | None = None  # the newest epoch's loss on the held-out designs
    cost_usd: float | None = None
    stop_reason: str | None = None  # why a stopped-early run stopped

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def runs_overview(outputs_dir: Path) -> list[RunRow]:
    """Every run folder in `outputs_dir`: one broken run.json never hides the others."""
    rows = []
    for run_dir in list_run_dirs(outputs_dir):
        try:
            manifest = load_manifest(run_dir)
        except BespokeError as error:
            rows.append(RunRow(run_dir.name, "unreadable", None, None, 0, None, None, False, str(run_dir),
                               error=str(error)))
            continue
        status, epochs = live_status(run_dir, manifest)
        best, _colors = report_summary(run_dir)
        row = RunRow(manifest.id, status, manifest.resolution, manifest.preset, epochs,
                     manifest.epochs_total or manifest.num_epochs, best, manifest.simulated, str(run_dir))
        _loop_columns(row, manifest)
        rows.append(row)
    extra = slurm_columns([Path(row.path) for row in rows])
    for row in rows:
        columns = extra.get(row.id, {})
        row.name, row.label, row.slurm = columns.get("name"), columns.get("label"), columns.get("slurm")
    return rows


def _loop_columns(row: RunRow, manifest: RunManifest) -> None:
    """What the run's loop recorded: the live best (when no report says better), validation loss, cost, stop."""
    log = manifest.epoch_log
    live = best_scored(log)
    if row.best_epoch is None and live is not None:
        row.best_epoch, row.best_from = live.epoch, "live"
    elif row.best_epoch is not None:
        row.best_from = "process"
    chosen = next((r for r in log if r.epoch == row.best_epoch), None)
    if chosen is not None:
        row.score, row.score_low, row.score_high = chosen.score, chosen.score_low, chosen.score_high
    measured = [r for r in log if r.validation_loss is not None]
    row.validation_loss = measured[-1].validation_loss if measured else None
    row.cost_usd = manifest.cost_usd
    row.stop_reason = manifest.early_stop.reason if manifest.early_stop is not None else None
