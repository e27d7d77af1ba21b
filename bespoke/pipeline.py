"""Chains the stages that sit in different packages: a run that finished training gets processed, a sweep's
table gets each run's best epoch, `bespoke runs` shows it.

run/ never imports review/ (the arrows of the package tree point down the pipeline); what needs both lives here.
"""

from __future__ import annotations

from pathlib import Path

from rich.console import Console

from bespoke.errors import BespokeError
from bespoke.review.build import needs_processing, sample_files
from bespoke.review.process import process_path, process_run
from bespoke.review.report import output_dirs, report_summary
from bespoke.run.generate import GenerateRequest, generate
from bespoke.run.manifest import load_manifest
from bespoke.run.paths import list_run_dirs
from bespoke.run.sweep import SweepRow
from bespoke.settings import Settings


def process_sweep_rows(rows: list[SweepRow], console: Console, quiet: bool) -> None:
    """Process finished runs whose report is missing or older than their samples; fill best epoch and colours."""
    for row in rows:
        if row.run_dir is None or row.status not in ("finished", "skipped") or not sample_files(row.run_dir):
            continue
        try:
            if needs_processing(row.run_dir):
                process_run(row.run_dir)
        except BespokeError as error:  # the table still shows the run; the reason says why metrics are missing
            row.reason = f"process: {error}"
            continue
        row.best_epoch, row.mean_colors = report_summary(row.run_dir)


def runs_overview(outputs_dir: Path) -> list[dict]:
    """`bespoke runs`: one dict per run folder (id, status, resolution, preset, epochs, best epoch, path)."""
    out = []
    for run_dir in list_run_dirs(outputs_dir):
        try:
            manifest = load_manifest(run_dir)
        except BespokeError as error:  # one broken run.json must not hide the others
            out.append({"id": run_dir.name, "status": "unreadable", "resolution": None, "preset": None,
                        "epochs_done": 0, "epochs_total": None, "best_epoch": None, "simulated": False,
                        "path": str(run_dir), "error": str(error)})
            continue
        best, _colors = report_summary(run_dir)
        out.append({
            "id": manifest.id, "status": manifest.status, "resolution": manifest.resolution,
            "preset": manifest.preset, "epochs_done": manifest.epochs_done,
            "epochs_total": manifest.epochs_total or manifest.num_epochs, "best_epoch": best,
            "simulated": manifest.simulated, "path": str(run_dir),
        })
    return out


def generate_and_process(settings: Settings, run_dir: Path, request: GenerateRequest, *, process: bool = True,
                         quiet: bool = False) -> dict:
    """`bespoke generate`: images from a run's checkpoint, then `process` on them (candidates and report in
    <outdir>/bespoke_process/). Returns the generate.json record plus "outdir", "reused" and "report"."""
    result = generate(settings, run_dir, request, quiet=quiet)
    if process:
        outdir = Path(result["outdir"])
        report = process_path(outdir).report
        result["report"] = {"report": str(output_dirs(outdir)[1] / "report.json"), "samples": len(report.samples),
                            "errors": len(report.errors), "epochs": [e.to_json() for e in report.epochs],
                            "best": report.best.to_json() if report.best is not None else None}
    return result
