"""`bespoke review`: load runs (or plain folders of samples) and their process reports, build contact sheets
and the HTML page, and show the per-epoch numbers in the terminal.

A run whose report is missing or older than its newest sample is processed first (bespoke.process); so is any
other folder of samples -- a folder of images, an sd-scripts output_dir -- whose report goes to
`<folder>/bespoke_process/`, or to `--out` when it is given for one folder (a read-only folder needs it). One
run -> `<run>/report/index.html`; one folder -> `<folder>/bespoke_process/report/index.html` (or
`<out>/index.html`); several -> `<out or common parent>/review-<hash>/index.html`. The page's folder holds
every image the page shows. A folder of results written with --out (its report/report.json names the samples'
folder) is reviewed as the samples it was made from.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from bespoke.clock import now_iso
from bespoke.errors import ProcessError, RunError, UsageError, did_you_mean
from bespoke.fsutil import sha256_bytes
from bespoke.kohya.output import loss_points
from bespoke.kohya.tensorboard import VALIDATION_TAG, epoch_losses
from bespoke.review.html import RunView, build_html, single_file_path
from bespoke.review.process import Loaded, Processed, current_report, is_current, process_path
from bespoke.review.profiles import Profile
from bespoke.review.records import ProcessReport
from bespoke.review.report import PLAIN_OUTPUT, REPORT_FILE, load_report, output_dirs, report_file
from bespoke.review.request import DEFAULT_METHODS, ProcessOptions
from bespoke.review.samples import IMAGE_SUFFIXES, find_samples, is_output_dir
from bespoke.review.selection import rescored
from bespoke.review.sheets import SheetOptions, build_contact_sheets, pick_method
from bespoke.run.manifest import RunManifest, load_manifest
from bespoke.run.paths import RunPaths, is_run_dir


@dataclass(frozen=True)
class Inputs:
    """What a review passes on to `process` for the folders it processes: `training` (a folder of 24 px
    training images with captions; a run uses its own dataset) and `palette` (--palette); and the score
    profile the review shows (`profile`: --profile)."""

    training: str | None = None
    palette: str | None = None
    profile: Profile | None = None  # the score profile to show the score under (not passed to process)


@dataclass
class ReviewResult:
    """What `review_runs` built."""

    html: Path
    sheets: dict[str, list[Path]]
    views: list[RunView] = field(default_factory=list)
    processed: list[str] = field(default_factory=list)
    single_file: Path | None = None  # review.html with every image inlined (--single-file)


def sample_files(run_dir: Path) -> list[Path]:
    """The PNG samples sd-scripts (or the simulator) wrote for a run."""
    folder = RunPaths(Path(run_dir)).sample_dir
    return sorted(folder.glob("*.png")) if folder.is_dir() else []


def results_source(path: Path) -> Path | None:
    """The samples' folder a folder of results written with `--out` was made from (its report/report.json's
    `source`), or None when `path` is no such folder."""
    path = Path(path)
    if is_run_dir(path) or not (path / "report" / REPORT_FILE).is_file() or _plain_images(path):
        return None
    try:
        return Path(load_report(path, path).source)
    except ProcessError:
        return None


def plain_folder(path: Path) -> Path | None:
    """The folder of sample images `path` names when it is not a run: the folder itself (when it holds images,
    an sd-scripts sample/ folder or a process report), the parent of its `bespoke_process/` output, or the
    samples' folder of a folder of results (results_source); None otherwise."""
    path = Path(path)
    if not path.is_dir() or is_run_dir(path):
        return None
    if path.name == PLAIN_OUTPUT and not is_run_dir(path.parent):
        return path.parent
    if (path / PLAIN_OUTPUT).is_dir() or _plain_images(path) or is_output_dir(path):
        return path
    return results_source(path)


def report_path(run_dir: Path) -> Path:
    """The run's report/report.json."""
    return report_file(run_dir)


def epoch_loss(run_dir: Path, manifest: RunManifest) -> tuple[dict[int, float], str]:
    """({epoch: training loss}, where it came from): sd-scripts' TensorBoard `loss/epoch_average`, else the
    trainer log's running average at each epoch's last step (the same number), else the mean of a simulated
    run's per-step losses."""
    paths = RunPaths(Path(run_dir))
    logged = epoch_losses(paths.tensorboard_dir)
    if logged:
        return logged, "TensorBoard loss/epoch_average (logs/tensorboard)"
    points = loss_history(run_dir, manifest)
    by_epoch: dict[int, list[dict]] = {}
    for point in points:
        by_epoch.setdefault(int(point.get("epoch") or 1), []).append(point)
    if manifest.loss_history:
        return ({e: sum(float(p["loss"]) for p in pts) / len(pts) for e, pts in sorted(by_epoch.items())},
                "run.json loss_history (per step), averaged per epoch")
    last = {e: float(max(pts, key=lambda p: p.get("step") or 0)["loss"]) for e, pts in sorted(by_epoch.items())}
    return last, "the trainer log's avr_loss at the last step of each epoch" if last else ""


def validation_loss(run_dir: Path) -> dict[int, float]:
    """{epoch: loss on the designs held out for validation}: sd-scripts' TensorBoard
    `loss/validation/epoch_average` (empty when the run held none out)."""
    return epoch_losses(RunPaths(Path(run_dir)).tensorboard_dir, VALIDATION_TAG)


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


def _read_report(folder: Path) -> ProcessReport | None:
    """The folder's report.json, read once; None when there is none or it is unreadable (processing writes a
    new one; without processing `load_report` says what is wrong)."""
    try:
        return load_report(folder)
    except ProcessError:
        return None


def _methods_for(report: ProcessReport | None, method: str | None) -> list[str] | None:
    """The methods to process a stale run with: those its report was made with (and `method`), else None
    (the defaults); never grid-palette, which process adds itself when there is a palette."""
    methods = list(report.methods) if report is not None else []
    if method and methods and method not in methods:
        methods.append(method)
    return [m for m in methods if m != "grid-palette"] or None


def load_view(run_dir: Path, *, method: str | None = None, process: bool = True,
              processed: list[str] | None = None, inputs: Inputs = Inputs()) -> RunView:
    """A RunView of one run: processes it first when its report is missing or stale (or, with `inputs`, does
    not answer them). Reads run.json and report.json once each (processing reuses them)."""
    run_dir = Path(run_dir)
    manifest = load_manifest(run_dir)
    samples = sample_files(run_dir)
    has_report = report_path(run_dir).is_file()
    if not samples and not has_report:
        raise RunError(f"{RunPaths(run_dir).sample_dir}: no samples (run status {manifest.status!r}); "
                       "train the run first, or try `bespoke demo`")
    report = _read_report(run_dir) if has_report else None
    if process and samples:
        loaded = Loaded(manifest=manifest, report=report)
        if inputs.training or inputs.palette:
            options = ProcessOptions(methods=_methods_for(report, method) or DEFAULT_METHODS,
                                     palette=inputs.palette, training=inputs.training)
            done: Processed | None = process_path(run_dir, options, loaded=loaded)
        else:
            done = current_report(run_dir, methods=_methods_for(report, method), loaded=loaded)
        if done is not None:
            report = done.report
            if not done.reused and processed is not None:
                processed.append(manifest.id)
    report = report or load_report(run_dir)  # none, or unreadable: says which
    if not report.samples:
        raise RunError(f"{report_path(run_dir)}: the report has no samples; check {RunPaths(run_dir).sample_dir}")
    _check_method(report, method, run_dir)
    loss, source = epoch_loss(run_dir, manifest)
    return RunView(run_dir=run_dir, run_id=manifest.id, report=report, method=pick_method(report, method),
                   training_toml=_training_toml(run_dir), loss=loss, loss_source=source, run=manifest,
                   validation_loss=validation_loss(run_dir))


def _check_method(report: ProcessReport, method: str | None, folder: Path) -> None:
    methods = report.methods
    if method and method not in methods:
        raise UsageError(f"--method {method}: {report_file(folder)} has {', '.join(methods) or 'no methods'}"
                         f"{did_you_mean(method, methods)}; run `bespoke process {folder} --methods {method}`")


def _plain_images(folder: Path) -> list[Path]:
    return [p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES]


def _kept_training(report: ProcessReport | None) -> str | None:
    """The training folder a folder's report was made with, while it is still there (a re-process keeps it)."""
    source = report.training.source if report is not None and report.training is not None else None
    return source if source and Path(source).is_dir() else None


def load_plain_view(folder: Path, *, method: str | None = None, process: bool = True,
                    processed: list[str] | None = None, inputs: Inputs = Inputs(),
                    out: Path | None = None) -> RunView:
    """A RunView of a folder of samples that is no run (a folder of images, an sd-scripts output_dir), its
    results in `out` when given: processed first when its report is missing or not current (with the methods
    and training folder it was made with), or with `inputs` when they are given."""
    folder = Path(folder)
    report = _read_report_at(folder, out)
    asked = bool(inputs.training or inputs.palette)
    if process and (asked or report is None or not is_current(report, folder, find_samples(folder), out)):
        options = ProcessOptions(methods=_methods_for(report, None) or list(DEFAULT_METHODS), out=out,
                                 training=inputs.training or _kept_training(report), palette=inputs.palette)
        done = process_path(folder, options, loaded=Loaded(report=report))
        report = done.report
        if processed is not None and not done.reused:
            processed.append(folder.name)
    report = report or load_report(folder, out)
    _check_method(report, method, folder)
    return RunView(run_dir=folder, run_id=folder.name, report=report, method=pick_method(report, method),
                   plain=True, results=out)


def _read_report_at(folder: Path, out: Path | None) -> ProcessReport | None:
    try:
        return load_report(folder, out)
    except ProcessError:
        return None


def review_dir_for(run_dirs: list[Path], outputs_dir: Path | None) -> Path:
    """Where a multi-run review goes by default: review-<hash of the run ids> beside the runs."""
    ids = sorted(Path(p).name for p in run_dirs)
    digest = sha256_bytes("\n".join(ids).encode("utf-8"))[:10]
    parents = {Path(p).resolve().parent for p in run_dirs}
    base = parents.pop() if len(parents) == 1 else Path(outputs_dir or Path.cwd())
    return base / f"review-{digest}"


def view_of(path: Path, *, method: str | None = None, process: bool = True,
            processed: list[str] | None = None, inputs: Inputs = Inputs(), out: Path | None = None) -> RunView:
    """The RunView of a run folder or of any other folder of samples (processed first when stale; a plain
    folder's results in `out` when given), its score under `inputs.profile` when one is given
    (selection.rescored). A folder of results (results_source) is its samples' view."""
    view = _view(path, method=method, process=process, processed=processed, inputs=inputs, out=out)
    if inputs.profile is not None:
        view.report = rescored(view.report, inputs.profile.score_weights(), inputs.profile.name)
    return view


def _view(path: Path, *, method: str | None, process: bool, processed: list[str] | None, inputs: Inputs,
          out: Path | None) -> RunView:
    source = results_source(path)
    if source is not None:
        default = output_dirs(source)[1].parent.resolve() == Path(path).resolve()  # its own bespoke_process/
        return load_plain_view(source, method=method, process=process and source.is_dir(), processed=processed,
                               inputs=inputs, out=None if default else Path(path))
    folder = plain_folder(path)
    if folder is not None:
        return load_plain_view(folder, method=method, process=process, processed=processed, inputs=inputs, out=out)
    return load_view(path, method=method, process=process, processed=processed, inputs=inputs)


def _page_path(views: list[RunView], run_dirs: list[Path], out_dir: Path | None,
               outputs_dir: Path | None) -> Path:
    if out_dir is not None:
        return Path(out_dir) / "index.html"
    if len(views) == 1:
        return output_dirs(views[0].run_dir, views[0].results)[1].parent / "index.html" if views[0].results \
            else output_dirs(views[0].run_dir)[1] / "index.html"
    return review_dir_for(run_dirs, outputs_dir) / "index.html"


def _prune_sheets(folder: Path, keep: set[Path]) -> None:
    """Remove contact sheets of earlier reviews from the review folder (it is copied as a whole)."""
    if folder.is_dir():
        for path in folder.rglob("*.png"):
            if path not in keep:
                path.unlink(missing_ok=True)


def review_runs(run_dirs: list[Path], *, out_dir: Path | None = None, method: str | None = None,
                outputs_dir: Path | None = None, process: bool = True, single_file: bool = False,
                inputs: Inputs = Inputs()) -> ReviewResult:
    """Build contact sheets for each run (or plain folder of samples) and one HTML page for all of them, in a
    folder that holds every image the page shows. `single_file` also writes review.html with them inlined.
    One folder of samples reviewed with `out_dir` has its results written there too; `inputs.profile` scores
    the runs with its weights."""
    if not run_dirs:
        raise UsageError("review: give at least one run folder, run id or folder of samples")
    run_dirs = list(dict.fromkeys(Path(p).resolve() for p in run_dirs))
    processed: list[str] = []
    results = Path(out_dir).resolve() if out_dir is not None and len(run_dirs) == 1 else None
    views = [view_of(p, method=method, process=process, processed=processed, inputs=inputs, out=results)
             for p in run_dirs]
    html = _page_path(views, run_dirs, out_dir, outputs_dir)
    sheets = {}
    for view in views:
        written = build_contact_sheets(view.run_dir, view.report, SheetOptions(
            out_dir=html.parent / "sheets" / view.key, method=view.method, run_id=view.run_id,
            simulated=view.simulated))
        view.sheets = [s.path for s in written]
        sheets[view.run_id] = view.sheets
    _prune_sheets(html.parent / "sheets", {p for paths in sheets.values() for p in paths})
    title = f"bespoke review — {views[0].run_id}" if len(views) == 1 else f"bespoke review — {len(views)} runs"
    build_html(views, html, title=title, generated=now_iso(), single_file=single_file)
    return ReviewResult(html=html, sheets=sheets, views=views, processed=processed,
                        single_file=single_file_path(html) if single_file else None)


def best_rules(views: list[RunView]) -> list[str]:
    """The distinct best-epoch rules of the reviewed runs (printed once under the tables)."""
    return list(dict.fromkeys(v.report.best.rule for v in views if v.report.best is not None))


def summary(result: ReviewResult) -> dict:
    """The --json form of a review."""
    return {
        "html": str(result.html), "single_file": str(result.single_file) if result.single_file else None,
        "processed": result.processed,
        "runs": [
            {
                "run_id": v.run_id, "name": v.name, "label": v.label, "run_dir": str(v.run_dir),
                "simulated": v.simulated, "method": v.method,
                "best": v.report.best.to_json() if v.report.best is not None else None,
                "epochs": [e.to_json() for e in v.report.epochs],
                "sheets": [str(p) for p in result.sheets.get(v.run_id, [])],
            }
            for v in result.views
        ],
    }
