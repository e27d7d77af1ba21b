"""The process report: where it is written, its schema, the per-epoch aggregates, and reading it back.

`<run>/report/report.json` (+ report.csv, one row per sample and method) for a run folder, or
`<folder>/bespoke_process/report/` for a plain folder of images. Written atomically, with a schema version.
While `process` runs, each finished sample is appended to `report/partial.jsonl` (the Journal), so an
interrupted run resumes; it is removed once report.json is written.

Schema 2 (REPORT_SCHEMA). Top level: `tolerance` (CIE76 delta E a default candidate may move a cell from
the colour the model drew), `correct_cast` (grid-palette took the global colour cast out first: an explicit
request that moves every cell), `near_copy_threshold` (share of cells matching one training image at which a
candidate is a near copy), `novelty_tolerance` (delta E within which a cell matches the training image's
cell for novelty), `training` (null, or {"source", "images", "palette"}: where the training images and
palette came from), `methods`, `palette` (the --palette request), `samples`, `errors`, `epochs`, `best`.

Per sample: `colors_nearest` -- the RAW count of colours of Pillow's NEAREST downscale to 24 px (the user's
historical metric, 216.6 at their best epoch; a property of the raw sample, not of any candidate),
`top10_coverage`, `clean` (on that raw downscale; never for a degenerate sample), `degenerate` (null or
"nan-black" | "solid" | "near-solid" | "no-grid"), `grid` (cell size, phase, confidence, source),
`candidates` {method: ...} and `scoring` (the scoring candidate's colors, grid_error, off_palette, novelty:
see bespoke.review.selection).

Per candidate (per method): `file`, `colors`, `top10_coverage`, `clean` (never for a degenerate sample),
`off_palette` (share 0-1 of the 576 cells whose colour is not a training-palette colour; null without a known
training palette), `grid_error` (mean absolute difference 0-255 between the sample and the candidate drawn
back on its grid), `background_uniform`, `delta_e_max` / `delta_e_mean` (CIE76 delta E of each cell against
the colour the model drew, i.e. the grid cell's own colour before any reduction), `moved_beyond` (cells
moved more than `tolerance`: 0 for grid and grid-palette), `novelty` (null without training images, else
{"nearest": training file name, "share": 0-1 of cells within `novelty_tolerance` of that image,
"near_copy": bool}).

Per epoch row: `epoch`, `samples`, `colors_nearest_mean` (the raw NEAREST count, see above), `clean_pct`,
`top10_coverage_mean`, `degenerate_pct`, `near_copy_pct` (% of the epoch's samples whose scoring candidate is
a near copy; null without training images), `diversity` (distinct designs / samples, 0-1), `score`
{"total": 0-1, "terms": {name: 0-1}} (bespoke.review.selection.RULE), and `methods` {method: colors_mean,
clean_pct, off_palette_mean, grid_error_mean, background_uniform_pct, delta_e_max, delta_e_mean,
moved_beyond (sum over the epoch), near_copy_pct}.

`best`: null, or {"epoch", "method", "rule" (text), "score", "terms"}: the trained epoch with the highest
score, whatever flags `process` ran with; epoch 0 and degenerate samples never win.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import IO

from bespoke.errors import ProcessError
from bespoke.fsutil import atomic_write_stream
from bespoke.run.paths import RunPaths, is_run_dir

REPORT_SCHEMA = 2
PARTIAL = "partial.jsonl"
REPORT_KIND = "bespoke.process"
PLAIN_OUTPUT = "bespoke_process"
CSV_FIELDS = ("file", "name", "epoch", "step", "prompt_index", "seed", "width", "height", "colors_nearest",
              "top10_coverage", "clean", "grid_cell_w", "grid_cell_h", "grid_phase_x", "grid_phase_y",
              "grid_confidence", "grid_source", "method", "candidate_file", "colors", "candidate_top10_coverage",
              "candidate_clean", "off_palette", "grid_error", "background_uniform", "delta_e_max", "delta_e_mean",
              "moved_beyond", "nearest_training", "novelty_share", "near_copy", "degenerate")


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


def _method_row(cands: list[dict]) -> dict:
    novel = [c["novelty"] for c in cands if c.get("novelty")]
    return {
        "colors_mean": mean_of(c["colors"] for c in cands), "clean_pct": pct_of(c["clean"] for c in cands),
        "off_palette_mean": mean_of(c["off_palette"] for c in cands),
        "grid_error_mean": mean_of(c["grid_error"] for c in cands),
        "background_uniform_pct": pct_of(c["background_uniform"] for c in cands),
        "delta_e_max": max((c["delta_e_max"] for c in cands), default=None),
        "delta_e_mean": mean_of(c["delta_e_mean"] for c in cands),
        "moved_beyond": sum(c["moved_beyond"] for c in cands),
        "near_copy_pct": pct_of(n["near_copy"] for n in novel) if novel else None,
    }


def epoch_table(samples: list[dict], methods) -> list[dict]:
    """Per-epoch aggregates (trained epochs in order, then unknown epoch as null); selection adds the score,
    near_copy_pct and diversity."""
    groups: dict = {}
    for s in samples:
        groups.setdefault(s["epoch"], []).append(s)
    keys = sorted(k for k in groups if k is not None) + ([None] if None in groups else [])
    rows = []
    for epoch in keys:
        group = groups[epoch]
        rows.append({"epoch": epoch, "samples": len(group),
                     "colors_nearest_mean": mean_of(s["colors_nearest"] for s in group),
                     "clean_pct": pct_of(s["clean"] for s in group),
                     "top10_coverage_mean": mean_of(s["top10_coverage"] for s in group),
                     "degenerate_pct": pct_of(s.get("degenerate") is not None for s in group),
                     "methods": {method: _method_row([s["candidates"][method] for s in group
                                                      if method in s["candidates"]]) for method in methods}})
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
            n = c.get("novelty") or {}
            writer.writerow(head + [method, c["file"], c["colors"], c["top10_coverage"], c["clean"], c["off_palette"],
                                    c["grid_error"], c["background_uniform"], c["delta_e_max"], c["delta_e_mean"],
                                    c["moved_beyond"], n.get("nearest"), n.get("share"), n.get("near_copy"),
                                    s.get("degenerate")])


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


class Journal:
    """`report/partial.jsonl`: the samples a `process` run has finished, for the next run to reuse.

    First line {"options": ...}; then one {"mtime_ns", "size", "result"} per sample. A journal made with other
    options is started afresh; a torn last line (killed mid-write) is ignored."""

    def __init__(self, path: Path, entries: dict[str, dict]) -> None:
        self.path = path
        self._entries = entries

    @classmethod
    def open(cls, report_dir: Path, options: dict, *, fresh: bool = False) -> Journal:
        """The journal of `report_dir` for `options` (emptied when `fresh` or made with other options)."""
        path = Path(report_dir) / PARTIAL
        entries: dict[str, dict] = {}
        lines = [] if fresh or not path.is_file() else path.read_text(encoding="utf-8").splitlines()
        header = _json_line(lines[0]) if lines else None
        if header is not None and header.get("options") == options:
            for line in lines[1:]:
                entry = _json_line(line)
                if entry is not None and isinstance(entry.get("result"), dict) and "file" in entry["result"]:
                    entries[entry["result"]["file"]] = entry
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps({"options": options}) + "\n", encoding="utf-8")
        return cls(path, entries)

    def reusable(self, base: Path) -> dict[str, dict]:
        """{sample file: result} of the journal's samples that are unchanged and whose candidates exist."""
        out = {}
        for file, entry in self._entries.items():
            try:
                stat = (Path(base) / file).stat()
            except OSError:
                continue
            result = entry["result"]
            same = stat.st_mtime_ns == entry.get("mtime_ns") and stat.st_size == entry.get("size")
            if same and all((Path(base) / c["file"]).is_file() for c in result.get("candidates", {}).values()):
                out[file] = result
        return out

    def append(self, result: dict, sample: Path) -> None:
        """Record one finished sample (flushed at once: the next Ctrl-C may come any time)."""
        stat = Path(sample).stat()
        with open(self.path, "a", encoding="utf-8") as handle:
            handle.write(json.dumps({"mtime_ns": stat.st_mtime_ns, "size": stat.st_size, "result": result}) + "\n")

    def remove(self) -> None:
        """The report is written: the journal has done its job."""
        self.path.unlink(missing_ok=True)


def _json_line(line: str) -> dict | None:
    try:
        data = json.loads(line)
    except ValueError:
        return None
    return data if isinstance(data, dict) else None


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
