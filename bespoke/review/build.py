"""`bespoke review`: load runs and their process reports, build contact sheets and the HTML page,
and show the per-epoch numbers in the terminal.

A run whose report is missing or older than its newest sample is processed first (bespoke.process).
One run -> `<run>/report/index.html`; several -> `<out or common parent>/review-<hash>/index.html`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from bespoke.clock import now_iso
from bespoke.errors import ProcessError, RunError, UsageError, did_you_mean
from bespoke.fsutil import sha256_bytes
from bespoke.kohya.output import loss_points
from bespoke.review.html import RunView, build_html
from bespoke.review.process import process_run
from bespoke.review.report import load_report, output_dirs
from bespoke.review.sheets import build_contact_sheets, pick_method
from bespoke.run.manifest import RunManifest, load_manifest
from bespoke.run.names import name_labels
from bespoke.run.paths import RunPaths


@dataclass
class ReviewResult:
    """What `review_runs` built."""

    html: Path
    sheets: dict[str, list[Path]]
    views: list = field(default_factory=list)
    processed: list[str] = field(default_factory=list)


def sample_files(run_dir: Path) -> list[Path]:
    """The PNG samples sd-scripts (or the simulator) wrote for a run."""
    folder = RunPaths(Path(run_dir)).sample_dir
    return sorted(folder.glob("*.png")) if folder.is_dir() else []


def report_path(run_dir: Path) -> Path:
    """The run's report/report.json."""
    return output_dirs(Path(run_dir))[1] / "report.json"


def needs_processing(run_dir: Path) -> bool:
    """True when report.json is missing or older than the newest sample."""
    report = report_path(run_dir)
    samples = sample_files(run_dir)
    if not report.is_file():
        return True
    newest = max((p.stat().st_mtime for p in samples), default=0.0)
    return report.stat().st_mtime < newest


def loss_history(run_dir: Path, manifest: RunManifest) -> list[dict]:
    """Training loss points: run.json `loss_history` (simulated runs), else the trainer log's `avr_loss` values."""
    if manifest.loss_history:
        return [h for h in manifest.loss_history if isinstance(h, dict) and h.get("loss") is not None]
    try:
        text = RunPaths(Path(run_dir)).train_log.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return []
    return loss_points(text)


def _training_toml(run_dir: Path) -> str | None:
    path = RunPaths(Path(run_dir)).training_toml
    try:
        return path.read_text(encoding="utf-8")
    except OSError:
        return None


def load_view(run_dir: Path, *, method: str | None = None, process: bool = True, progress: bool = True,
              processed: list | None = None):
    """A RunView of one run: processes it first when its report is missing or stale."""
    run_dir = Path(run_dir)
    manifest = load_manifest(run_dir)
    samples = sample_files(run_dir)
    has_report = report_path(run_dir).is_file()
    if not samples and not has_report:
        raise RunError(f"{RunPaths(run_dir).sample_dir}: no samples (run status {manifest.status!r}); "
                       "train the run first, or try `bespoke demo`")
    if process and samples and needs_processing(run_dir):
        methods = None
        if has_report:
            try:
                methods = load_report(run_dir).get("methods")
            except ProcessError:
                methods = None
        if method and methods and method not in methods:
            methods = [*methods, method]
        if methods:  # process adds grid-palette itself when there is a palette
            methods = [m for m in methods if m != "grid-palette"] or None
        process_run(run_dir, methods=methods, progress=progress)  # with the training palette when known
        if processed is not None:
            processed.append(manifest.id)
    report = load_report(run_dir)
    if not report.get("samples"):
        raise RunError(f"{report_path(run_dir)}: the report has no samples; check {RunPaths(run_dir).sample_dir}")
    methods = list(report.get("methods") or [])
    if method and method not in methods:
        raise UsageError(f"--method {method}: {report_path(run_dir)} has {', '.join(methods) or 'no methods'}"
                         f"{did_you_mean(method, methods)}; run `bespoke process {run_dir} --methods {method}`")
    return RunView(
        run_dir=run_dir, run_id=manifest.id, manifest=manifest.to_json(), report=report,
        method=pick_method(report, method), training_toml=_training_toml(run_dir),
        loss=loss_history(run_dir, manifest),
    )


def review_dir_for(run_dirs: list[Path], outputs_dir: Path | None) -> Path:
    """Where a multi-run review goes by default: review-<hash of the run ids> beside the runs."""
    ids = sorted(Path(p).name for p in run_dirs)
    digest = sha256_bytes("\n".join(ids).encode("utf-8"))[:10]
    parents = {Path(p).resolve().parent for p in run_dirs}
    base = parents.pop() if len(parents) == 1 else Path(outputs_dir or Path.cwd())
    return base / f"review-{digest}"


def review_runs(run_dirs: list[Path], *, out_dir: Path | None = None, method: str | None = None,
                outputs_dir: Path | None = None, process: bool = True, progress: bool = True) -> ReviewResult:
    """Build contact sheets for each run and one HTML page for all of them."""
    if not run_dirs:
        raise UsageError("review: give at least one run folder or run id")
    run_dirs = list(dict.fromkeys(Path(p).resolve() for p in run_dirs))
    processed: list[str] = []
    views = [load_view(p, method=method, process=process, progress=progress, processed=processed)
             for p in run_dirs]
    labels = name_labels([RunManifest.from_json(v.manifest) for v in views], {v.run_id: v.run_dir for v in views})
    for view in views:
        view.name_label = labels.get(view.run_id)
    sheets = {}
    for view in views:
        written = build_contact_sheets(view.run_dir, view.report, method=view.method, run_id=view.run_id,
                                       simulated=view.simulated)
        view.sheets = [s.path for s in written]
        sheets[view.run_id] = view.sheets
    if out_dir is not None:
        html = Path(out_dir) / "index.html"
    elif len(views) == 1:
        html = RunPaths(views[0].run_dir).report_dir / "index.html"
    else:
        html = review_dir_for(run_dirs, outputs_dir) / "index.html"
    title = f"bespoke review — {views[0].run_id}" if len(views) == 1 else f"bespoke review — {len(views)} runs"
    build_html(views, html, title=title, generated=now_iso())
    return ReviewResult(html=html, sheets=sheets, views=views, processed=processed)


def best_rules(views) -> list[str]:
    """The distinct best-epoch rules of the reviewed runs (printed once under the tables)."""
    rules = [(v.report.get("best") or {}).get("rule") for v in views]
    return list(dict.fromkeys(r for r in rules if r))


def summary(result: ReviewResult) -> dict:
    """The --json form of a review."""
    return {
        "html": str(result.html),
        "processed": result.processed,
        "runs": [
            {
                "run_id": v.run_id, "run_dir": str(v.run_dir), "simulated": v.simulated, "method": v.method,
                "best": v.report.get("best"), "epochs": v.report.get("epochs"),
                "sheets": [str(p) for p in result.sheets.get(v.run_id, [])],
            }
            for v in result.views
        ],
    }
