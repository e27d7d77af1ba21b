"""The process report: where it is written, its schema, the per-epoch aggregates, and reading it back.

`<run>/report/report.json` (+ report.csv, one row per sample and method) for a run folder, or
`<folder>/bespoke_process/report/` for a plain folder of images. Written atomically, with a schema version.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import IO

from bespoke.errors import ProcessError
from bespoke.fsutil import atomic_write_stream
from bespoke.run.paths import RunPaths, is_run_dir

REPORT_SCHEMA = 1
REPORT_KIND = "bespoke.process"
PLAIN_OUTPUT = "bespoke_process"
CSV_FIELDS = ("file", "name", "epoch", "step", "prompt_index", "seed", "width", "height", "colors_nearest",
              "top10_coverage", "clean", "grid_cell_w", "grid_cell_h", "grid_phase_x", "grid_phase_y",
              "grid_confidence", "grid_source", "method", "candidate_file", "colors", "candidate_top10_coverage",
              "candidate_clean", "off_palette", "grid_error", "background_uniform", "moved_pixels", "mean_move")



def output_dirs(path: Path) -> tuple[Path, Path]:
    """(candidates dir, report dir) for a run folder or a plain folder."""
    if is_run_dir(path):
        paths = RunPaths(path)
        return paths.candidates_dir, paths.report_dir
    return path / PLAIN_OUTPUT / "candidates", path / PLAIN_OUTPUT / "report"


def mean_of(values):
    values = [v for v in values if v is not None]
    return round(sum(values) / len(values), 4) if values else None


def pct_of(flags):
    flags = list(flags)
    return round(100.0 * sum(bool(f) for f in flags) / len(flags), 1) if flags else None


def epoch_table(samples: list[dict], methods) -> list[dict]:
    """Per-epoch aggregates (trained epochs in order, then unknown epoch as null)."""
    groups: dict = {}
    for s in samples:
        groups.setdefault(s["epoch"], []).append(s)
    keys = sorted(k for k in groups if k is not None) + ([None] if None in groups else [])
    rows = []
    for epoch in keys:
        group = groups[epoch]
        row = {"epoch": epoch, "samples": len(group),
               "colors_nearest_mean": mean_of(s["colors_nearest"] for s in group),
               "clean_pct": pct_of(s["clean"] for s in group),
               "top10_coverage_mean": mean_of(s["top10_coverage"] for s in group), "methods": {}}
        for method in methods:
            cands = [s["candidates"][method] for s in group if method in s["candidates"]]
            row["methods"][method] = {
                "colors_mean": mean_of(c["colors"] for c in cands), "clean_pct": pct_of(c["clean"] for c in cands),
                "off_palette_mean": mean_of(c["off_palette"] for c in cands),
                "grid_error_mean": mean_of(c["grid_error"] for c in cands),
                "background_uniform_pct": pct_of(c["background_uniform"] for c in cands),
            }
        rows.append(row)
    return rows


def _write_csv(handle: IO[str], samples: list[dict]) -> None:
    writer = csv.writer(handle, lineterminator="\n")
    writer.writerow(CSV_FIELDS)
    for s in samples:
        g = s["grid"]
        head = [s["file"], s["name"], s["epoch"], s["step"], s["prompt_index"], s["seed"], s["width"], s["height"],
                s["colors_nearest"], s["top10_coverage"], s["clean"], g["cell_w"], g["cell_h"], g["phase_x"],
                g["phase_y"], g["confidence"], g["source"]]
        for method, c in s["candidates"].items():
            writer.writerow(head + [method, c["file"], c["colors"], c["top10_coverage"], c["clean"], c["off_palette"],
                                    c["grid_error"], c["background_uniform"], c["moved_pixels"], c["mean_move"]])


def _write_json(handle: IO[str], report: dict) -> None:
    json.dump(report, handle, indent=1, ensure_ascii=False)
    handle.write("\n")


def write_report(report_dir: Path, report: dict) -> None:
    """report.csv and report.json, each written atomically (streamed: thousands of samples)."""
    samples = report["samples"]
    atomic_write_stream(report_dir / "report.csv", lambda handle: _write_csv(handle, samples), text=True)
    atomic_write_stream(report_dir / "report.json", lambda handle: _write_json(handle, report), text=True)


def load_report(run_or_dir) -> dict:
    """The report.json written by process_path for a run folder or a plain folder."""
    path = Path(run_or_dir)
    report_path = output_dirs(path)[1] / "report.json"
    if not report_path.is_file():
        raise ProcessError(f"{report_path}: no process report; run `bespoke process {path}`")
    try:
        data = json.loads(report_path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ProcessError(f"{report_path}: unreadable report ({exc}); run `bespoke process {path}` again") from exc
    if data.get("kind") != REPORT_KIND or data.get("schema_version") != REPORT_SCHEMA:
        raise ProcessError(f"{report_path}: not a bespoke process report of schema {REPORT_SCHEMA}; "
                           f"run `bespoke process {path}` again")
    return data


def report_summary(run_dir: Path) -> tuple[int | None, float | None]:
    """(best epoch, mean colors_nearest of that epoch) from a run's report, or (None, None) without one."""
    try:
        report = load_report(run_dir)
    except ProcessError:
        return None, None
    epoch = (report.get("best") or {}).get("epoch")
    colors = next((e.get("colors_nearest_mean") for e in report.get("epochs") or []
                   if e.get("epoch") == epoch and epoch is not None), None)
    return epoch, colors
