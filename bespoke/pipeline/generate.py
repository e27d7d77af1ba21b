"""`bespoke generate`: images from a run's checkpoint (bespoke.run.generate), then `process` on them."""

from __future__ import annotations

from pathlib import Path

from bespoke.review.process import process_path
from bespoke.review.report import output_dirs
from bespoke.run.generate import GenerateRequest, generate
from bespoke.settings import Settings


def generate_and_process(settings: Settings, run_dir: Path, request: GenerateRequest, *,
                         process: bool = True) -> dict:
    """Images from a run's checkpoint, then their candidates and report in <outdir>/bespoke_process/. Returns the
    generate.json record plus "outdir", "reused" and "report"."""
    result = generate(settings, run_dir, request)
    if process:
        outdir = Path(result["outdir"])
        report = process_path(outdir).report
        result["report"] = {"report": str(output_dirs(outdir)[1] / "report.json"), "samples": len(report.samples),
                            "errors": len(report.errors), "epochs": [e.to_json() for e in report.epochs],
                            "best": report.best.to_json() if report.best is not None else None}
    return result
