"""The process report on disk: where it is, its one reader (`load_report`) and its one writer (`write_report`).

`<run>/report/report.json` (+ report.csv, one row per sample and method) for a run folder, or
`<folder>/bespoke_process/report/` for any other folder (a folder of images, an sd-scripts output_dir), or
`<out>/report/` when `--out` names where results go (a read-only folder of samples). Both files are written atomically and
streamed one record at a time (thousands of samples); report.json carries `schema_version` and `kind` first,
then one sample, error or epoch row per line. The schema is bespoke.review.records (ProcessReport and the
records it holds, each documenting its fields); older schemas are upgraded on read. While `process` runs,
finished samples go to `report/partial.jsonl` (bespoke.review.journal).
"""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import IO

from bespoke.errors import ProcessError
from bespoke.fsutil import atomic_write_stream
from bespoke.review.records import LONG_LISTS, ProcessReport, ReportFormatError, Sample
from bespoke.run.paths import RunPaths, is_run_dir

REPORT_FILE = "report.json"
CSV_FILE = "report.csv"
PLAIN_OUTPUT = "bespoke_process"
CSV_FIELDS = ("file", "name", "epoch", "step", "prompt_index", "seed", "width", "height", "colors_nearest",
              "top10_coverage", "clean", "grid_cell_w", "grid_cell_h", "grid_phase_x", "grid_phase_y",
              "grid_confidence", "grid_source", "method", "candidate_file", "colors", "candidate_top10_coverage",
              "candidate_clean", "off_palette", "grid_error", "background_uniform", "delta_e_max", "delta_e_mean",
              "moved_beyond", "nearest_training", "novelty_share", "near_copy", "degenerate")


def output_dirs(path: Path, out: Path | None = None) -> tuple[Path, Path]:
    """(candidates dir, report dir) for a run folder or a plain folder, or inside `out` when given."""
    if out is not None:
        return Path(out) / "candidates", Path(out) / "report"
    if is_run_dir(path):
        paths = RunPaths(path)
        return paths.candidates_dir, paths.report_dir
    return path / PLAIN_OUTPUT / "candidates", path / PLAIN_OUTPUT / "report"


def report_file(path: Path, out: Path | None = None) -> Path:
    """The report.json of a run folder or a plain folder (or of `out`, when the results went there)."""
    return output_dirs(Path(path), out)[1] / REPORT_FILE


def _write_csv(handle: IO[str], samples: list[Sample]) -> None:
    writer = csv.writer(handle, lineterminator="\n")
    writer.writerow(CSV_FIELDS)
    for s in samples:
        g = s.grid
        head = [s.file, s.name, s.epoch, s.step, s.prompt_index, s.seed, s.width, s.height, s.colors_nearest,
                s.top10_coverage, s.clean, g.cell_w, g.cell_h, g.phase_x, g.phase_y, g.confidence, g.source]
        for method, c in s.candidates.items():
            n = c.novelty
            writer.writerow(head + [method, c.file, c.colors, c.top10_coverage, c.clean, c.off_palette, c.grid_error,
                                    c.background_uniform, c.delta_e_max, c.delta_e_mean, c.moved_beyond,
                                    n.nearest if n else None, n.share if n else None, n.near_copy if n else None,
                                    s.degenerate])


def _write_json(handle: IO[str], report: ProcessReport) -> None:
    """report.json: the top-level fields in order, each record of the long lists on its own line."""
    handle.write("{")
    for index, (key, value) in enumerate(report.items()):
        handle.write(("\n" if index == 0 else ",\n") + f" {json.dumps(key)}: ")
        if key not in LONG_LISTS:
            handle.write(json.dumps(value, ensure_ascii=False))
            continue
        handle.write("[")
        for position, record in enumerate(value):
            handle.write(("\n  " if position == 0 else ",\n  ") + json.dumps(record.to_json(), ensure_ascii=False))
        handle.write("\n ]" if value else "]")
    handle.write("\n}\n")


def write_report(report_dir: Path, report: ProcessReport) -> None:
    """report.csv and report.json, each written atomically."""
    atomic_write_stream(Path(report_dir) / CSV_FILE, lambda handle: _write_csv(handle, report.samples), text=True)
    atomic_write_stream(Path(report_dir) / REPORT_FILE, lambda handle: _write_json(handle, report), text=True)


def load_report(run_or_dir: Path, out: Path | None = None) -> ProcessReport:
    """The report.json of a run folder or a plain folder (or of `out`); a one-line ProcessError naming the file
    (and what to do) when it is missing, unreadable, of another kind or schema, or not what bespoke writes."""
    path = Path(run_or_dir)
    where = report_file(path, out)
    if not where.is_file():
        raise ProcessError(f"{where}: no process report; run `bespoke process {path}`")
    try:
        data = json.loads(where.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ProcessError(f"{where}: unreadable report ({exc}); run `bespoke process {path}` again") from exc
    try:
        return ProcessReport.from_json(data)
    except ReportFormatError as exc:
        raise ProcessError(f"{where}: {exc}; run `bespoke process {path} --force` to write it again") from None


def report_summary(run_dir: Path) -> tuple[int | None, float | None]:
    """(best epoch, mean colors_nearest of that epoch) from a run's report, or (None, None) without one."""
    try:
        report = load_report(run_dir)
    except ProcessError:
        return None, None
    if report.best is None:
        return None, None
    epoch = report.best.epoch
    return epoch, next((e.colors_nearest_mean for e in report.epochs if e.epoch == epoch), None)
