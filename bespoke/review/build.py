"""`bespoke review`: load runs and their process reports, build contact sheets and the HTML page,
and show the per-epoch numbers in the terminal.

A run whose report is missing or older than its newest sample is processed first (bespoke.process).
One run -> `<run>/report/index.html`; several -> `<out or common parent>/review-<hash>/index.html`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from bespoke.errors import ProcessError, RunError, UsageError, did_you_mean
from bespoke.fsutil import sha256_bytes
from bespoke.run.paths import RunPaths, is_run_dir, list_run_dirs, now_iso, read_manifest

REPORT_KIND = "bespoke.process"
REPORT_SCHEMA = 1
_AVR_LOSS = re.compile(r"\|\s*(\d+)/(\d+)\s*\[[^\]]*?avr_loss=([-+0-9.eE]+)")
_EPOCH_LINE = re.compile(r"^\s*epoch (\d+)/(\d+)\s*$")


@dataclass
class ReviewResult:
    """What `review_runs` built."""

    html: Path
    sheets: dict[str, list[Path]]
    views: list = field(default_factory=list)
    processed: list[str] = field(default_factory=list)


def resolve_run(arg: str | Path, outputs_dir: Path | None = None) -> Path:
    """A run folder from a path or a run id under `outputs_dir`; a clear error otherwise."""
    path = Path(arg).expanduser()
    if path.is_dir():
        if is_run_dir(path):
            return path.resolve()
        raise RunError(f"{path}: not a bespoke run folder (no run.json); review takes run folders or run ids "
                       "(see `bespoke runs`); for a plain folder of images use `bespoke process`")
    if outputs_dir is not None and (Path(outputs_dir) / str(arg)).is_dir() and is_run_dir(Path(outputs_dir) / str(arg)):
        return (Path(outputs_dir) / str(arg)).resolve()
    known = [p.name for p in list_run_dirs(Path(outputs_dir))] if outputs_dir else []
    where = f" nor a run id in {outputs_dir}" if outputs_dir else ""
    raise RunError(f"{arg}: no such run folder{where}{did_you_mean(str(arg), known)}; see `bespoke runs`")


def sample_files(run_dir: Path) -> list[Path]:
    """The PNG samples sd-scripts (or the simulator) wrote for a run."""
    folder = RunPaths(Path(run_dir)).sample_dir
    return sorted(folder.glob("*.png")) if folder.is_dir() else []


def report_path(run_dir: Path) -> Path:
    return RunPaths(Path(run_dir)).report_dir / "report.json"


def needs_processing(run_dir: Path) -> bool:
    """True when report.json is missing or older than the newest sample."""
    report = report_path(run_dir)
    samples = sample_files(run_dir)
    if not report.is_file():
        return True
    newest = max((p.stat().st_mtime for p in samples), default=0.0)
    return report.stat().st_mtime < newest


def read_report(run_dir: Path) -> dict:
    """report/report.json of a processed run, checked for kind and schema version."""
    from bespoke.review.process import load_report

    return load_report(run_dir)


def process_run(run_dir: Path, *, palette: str | None = None, methods=None, progress: bool = True) -> dict:
    """Run bespoke.process on a run (imported lazily: it is the heavy part); the palette defaults to the
    run's training palette when it has one."""
    from bespoke.review.process import default_palette, process_path

    kwargs = {"palette": palette or default_palette(run_dir), "progress": progress}
    if methods:
        kwargs["methods"] = methods
    return process_path(run_dir, **kwargs)


def loss_history(run_dir: Path, manifest: dict) -> list[dict]:
    """Training loss points: run.json `loss_history`, else the tqdm `avr_loss` values in logs/train.log."""
    history = manifest.get("loss_history")
    if isinstance(history, list) and history:
        return [h for h in history if isinstance(h, dict) and h.get("loss") is not None]
    log = RunPaths(Path(run_dir)).train_log
    if not log.is_file():
        return []
    points: dict[tuple[int, int], float] = {}
    epoch = 1
    try:
        text = log.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return []
    for line in re.split(r"[\r\n]+", text):
        match = _EPOCH_LINE.match(line)
        if match:
            epoch = int(match.group(1))
            continue
        match = _AVR_LOSS.search(line)
        if match:
            try:
                points[(epoch, int(match.group(1)))] = float(match.group(3))
            except ValueError:
                continue
    return [{"epoch": e, "step": s, "loss": v} for (e, s), v in sorted(points.items())]


def _training_toml(run_dir: Path) -> str | None:
    path = RunPaths(Path(run_dir)).training_toml
    try:
        return path.read_text(encoding="utf-8")
    except OSError:
        return None


def load_view(run_dir: Path, *, method: str | None = None, process: bool = True, progress: bool = True,
              processed: list | None = None):
    """A RunView of one run: processes it first when its report is missing or stale."""
    from bespoke.review.html import RunView
    from bespoke.review.sheets import pick_method

    run_dir = Path(run_dir)
    manifest = read_manifest(run_dir)
    samples = sample_files(run_dir)
    has_report = report_path(run_dir).is_file()
    if not samples and not has_report:
        raise RunError(f"{RunPaths(run_dir).sample_dir}: no samples (run status {manifest.get('status')!r}); "
                       "train the run first, or try `bespoke demo`")
    if process and samples and needs_processing(run_dir):
        methods = None
        if has_report:
            try:
                methods = read_report(run_dir).get("methods")
            except ProcessError:
                methods = None
        if method and methods and method not in methods:
            methods = [*methods, method]
        if methods:  # process adds grid-palette itself when there is a palette
            methods = [m for m in methods if m != "grid-palette"] or None
        process_run(run_dir, methods=methods, progress=progress)  # with the training palette when known
        if processed is not None:
            processed.append(manifest.get("id", run_dir.name))
    report = read_report(run_dir)
    if not report.get("samples"):
        raise RunError(f"{report_path(run_dir)}: the report has no samples; check {RunPaths(run_dir).sample_dir}")
    methods = list(report.get("methods") or [])
    if method and method not in methods:
        raise UsageError(f"--method {method}: {report_path(run_dir)} has {', '.join(methods) or 'no methods'}"
                         f"{did_you_mean(method, methods)}; run `bespoke process {run_dir} --methods {method}`")
    return RunView(
        run_dir=run_dir, run_id=str(manifest.get("id") or run_dir.name), manifest=manifest, report=report,
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
    from bespoke.review.html import build_html
    from bespoke.review.sheets import build_contact_sheets

    if not run_dirs:
        raise UsageError("review: give at least one run folder or run id")
    run_dirs = list(dict.fromkeys(Path(p).resolve() for p in run_dirs))
    processed: list[str] = []
    views = [load_view(p, method=method, process=process, progress=progress, processed=processed)
             for p in run_dirs]
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


def epoch_table(view):
    """A rich table of the per-epoch numbers of one run (best epoch marked)."""
    from rich.table import Table

    method = view.method or "-"
    best = (view.report.get("best") or {}).get("epoch")
    sim = " [bold white on red] SIMULATED [/]" if view.simulated else ""
    table = Table(title=f"{view.run_id}{sim}  candidates: {method}", title_justify="left")
    for name in ("epoch", "samples", "colours", "clean %", "cand colours", "cand clean %", "off-palette",
                 "grid err"):
        table.add_column(name, justify="right")

    def fmt(value, spec="{:.1f}"):
        return "-" if value is None else spec.format(value)

    for stats in view.report.get("epochs") or []:
        ms = ((stats.get("methods") or {}).get(view.method) or {}) if view.method else {}
        is_best = best is not None and stats.get("epoch") == best
        table.add_row(
            f"{stats.get('epoch', '?')}{' *' if is_best else ''}", str(stats.get("samples", "-")),
            fmt(stats.get("colors_nearest_mean")), fmt(stats.get("clean_pct"), "{:.0f}"),
            fmt(ms.get("colors_mean")), fmt(ms.get("clean_pct"), "{:.0f}"),
            fmt(ms.get("off_palette_mean"), "{:.1%}"), fmt(ms.get("grid_error_mean")),
            style="bold" if is_best else None,
        )
    if best is not None:
        table.caption = f"* best epoch {best} ({method}); colours = colors_nearest of the samples"
        table.caption_justify = "left"
    return table


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
