"""`bespoke process`: every sample -> 24 px candidates per method + colour metrics -> report.json/report.csv.

Samples stream through a process pool (one image in memory per worker, `bespoke.review.candidates`); one bad
sample becomes an entry in "errors" and never stops the others. Outputs go to `<run>/candidates/<method>/` and
`<run>/report/` for a run folder, or to `<folder>/bespoke_process/` for a plain folder of images (never among
the user's images). Re-processing replaces bespoke's own candidates and report (they are derived files).

Each finished sample is also appended to `report/partial.jsonl`; after Ctrl-C (or a crash) the same command
reuses those samples and processes only the rest. The training images (novelty) and the training palette
(off_palette, the scoring candidate) come from the run's prepared dataset, or `training=<folder of 24 px
images>` for a plain folder.
"""

from __future__ import annotations

import multiprocessing
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from bespoke.clock import now_iso
from bespoke.console import console
from bespoke.dataset.layout import GRID, Layout
from bespoke.dataset.prepare import REPORT_FILE, load_prepare_report
from bespoke.errors import BespokeError, Interrupted, ProcessError, UsageError, did_you_mean
from bespoke.kohya.naming import SampleInfo
from bespoke.pixels import palette as pal
from bespoke.pixels.merge import TOLERANCE
from bespoke.pixels.novelty import MATCH_TOLERANCE, NEAR_COPY, TrainingSet, read_folder, read_prepared
from bespoke.review.candidates import Job, init_worker, process_sample, relative
from bespoke.review.report import (
    REPORT_KIND,
    REPORT_SCHEMA,
    Journal,
    epoch_table,
    load_report,
    output_dirs,
    write_report,
)
from bespoke.review.samples import find_samples
from bespoke.review.selection import choose_best, score_epochs
from bespoke.run.manifest import RunManifest, load_manifest
from bespoke.run.paths import is_run_dir

DEFAULT_METHODS = ("nearest", "box", "bilinear", "lanczos", "grid")
KNOWN_METHODS = ("nearest", "box", "bilinear", "lanczos", "grid", "grid-palette")


@dataclass(frozen=True)
class _Request:
    """What to process and how (the options an up-to-date report must match)."""

    path: Path
    manifest: RunManifest | None
    methods: tuple[str, ...]
    palette: pal.Palette | None
    tolerance: float
    layout: Layout | None
    training: TrainingSet | None
    training_palette: pal.Palette | None
    training_source: str | None
    correct_cast: bool = False


def layout_from_json(data: object) -> Layout | None:
    """The cell layout recorded in run.json's dataset record, or None when there is none or it is malformed."""
    if not isinstance(data, dict) or "edges" not in data:
        return None
    try:
        return Layout(name=str(data.get("name", "stretch")), resolution=int(data["resolution"]),
                      grid=int(data.get("grid", GRID)), edges=tuple(int(e) for e in data["edges"]))
    except (KeyError, TypeError, ValueError):
        return None


def _prepared_dir(manifest: RunManifest | None) -> Path | None:
    prepared = (manifest.dataset if manifest is not None else {}).get("prepared_dir")
    return Path(prepared) if prepared else None


def resolve_palette(spec: str | None, run_dir: Path | None, manifest: RunManifest | None) -> pal.Palette | None:
    """The `--palette` request as a Palette (None without one)."""
    parsed = pal.parse_spec(spec)
    if parsed is None:
        return None
    mode, k, folder = parsed
    if mode == "k":
        return pal.Palette("k", k=k)
    if mode == "folder":
        assert folder is not None
        return pal.Palette("folder", colors=pal.palette_from_folder(folder))
    if run_dir is None:
        raise UsageError("--palette dataset needs a run folder (its run.json names the prepared dataset); "
                         "for a plain folder pass --palette <folder of 24 px PNGs> or --palette k:16")
    prepared = _prepared_dir(manifest)
    if prepared is None:
        raise UsageError(f"{run_dir}/run.json: no dataset.prepared_dir to read the palette from; "
                         "pass --palette <folder of 24 px PNGs> or --palette k:16")
    colors = load_prepare_report(prepared).get("palette")
    if not isinstance(colors, list) or not colors:
        raise UsageError(f"{prepared / REPORT_FILE}: no \"palette\" list; run `bespoke prepare` again")
    return pal.Palette("dataset", colors=pal.parse_hex(colors, str(prepared / REPORT_FILE)))


def _dataset_palette(run_dir: Path, manifest: RunManifest | None) -> pal.Palette | None:
    """The run's training palette, or None when its prepared dataset is not on this machine."""
    try:
        return resolve_palette("dataset", run_dir, manifest)
    except BespokeError:
        return None


def resolve_training(run_dir: Path | None, manifest: RunManifest | None,
                     folder: str | None) -> tuple[TrainingSet | None, pal.Palette | None, str | None]:
    """(training images at 24 px, training palette, where they came from) for novelty and the score:
    `folder` (24 px images) when given, else the run's prepared dataset when it is on this machine."""
    if folder:
        path = Path(folder).expanduser()
        if not path.is_dir():
            raise UsageError(f"--training {folder}: not a folder; pass the folder of the 24 px training images")
        training = read_folder(path)
        if not len(training):
            raise UsageError(f"--training {folder}: no readable 24x24 images in it")
        return training, pal.Palette("folder", colors=pal.palette_from_folder(path)), str(path)
    if run_dir is None:
        return None, None, None
    palette = _dataset_palette(run_dir, manifest)
    prepared = _prepared_dir(manifest)
    if palette is None or prepared is None:
        return None, None, None
    report = load_prepare_report(prepared)
    layout = layout_from_json(report.get("layout"))
    names = [str(e.get("name")) for e in report.get("images") or [] if isinstance(e, dict) and e.get("name")]
    images = read_prepared(prepared, names, layout.edges) if layout is not None else None
    return (images if images is not None and len(images) else None), palette, str(prepared)


def default_palette(run_dir: Path) -> str | None:
    """"dataset" when the run's prepared dataset (its training palette) is on this machine, else None.

    What bespoke uses when it processes a run on its own (after train, sweep, review).
    """
    if not is_run_dir(run_dir):
        return None
    prepared = _prepared_dir(load_manifest(run_dir))
    return "dataset" if prepared is not None and (prepared / REPORT_FILE).is_file() else None


def process_run(run_dir: Path, *, methods: Sequence[str] | None = None, progress: bool = True,
                force: bool = False) -> dict:
    """`process` as bespoke runs it on its own (after train, sweep, review): with the run's training palette
    when it is on this machine, reusing an up-to-date report."""
    return process_path(run_dir, methods=methods or DEFAULT_METHODS, palette=default_palette(run_dir),
                        progress=progress, force=force)


def parse_methods(methods: str | Sequence[str] | None, palette: pal.Palette | None) -> tuple[str, ...]:
    """Validate method names; `grid-palette` is added when a palette is given and only allowed then."""
    if isinstance(methods, str):
        methods = [m.strip() for m in methods.split(",") if m.strip()]
    chosen = list(dict.fromkeys(methods or DEFAULT_METHODS))
    for method in chosen:
        if method not in KNOWN_METHODS:
            raise UsageError(f"unknown method {method!r}{did_you_mean(method, KNOWN_METHODS)}; "
                             f"choose from {', '.join(KNOWN_METHODS)}")
    if "grid-palette" in chosen and palette is None:
        raise UsageError("method grid-palette needs --palette (dataset, k:<N> or a folder of 24 px PNGs)")
    if palette is not None and "grid-palette" not in chosen:
        chosen.append("grid-palette")
    return tuple(chosen)


def _stems(infos: list[SampleInfo]) -> list[str]:
    seen: dict[str, int] = {}
    for info in infos:
        seen[info.name] = seen.get(info.name, 0) + 1
    return [info.name if seen[info.name] == 1 else info.path.name.replace(".", "_") for info in infos]


def _iterate(items: list[tuple[str, str]], job: Job, workers: int) -> Iterator[dict]:
    if workers <= 1 or len(items) < 4:
        init_worker(job)
        yield from map(process_sample, items)
        return
    # forked workers start with the pixel modules this module already imported
    context = multiprocessing.get_context("fork" if hasattr(os, "fork") else "spawn")
    with context.Pool(workers, initializer=init_worker, initargs=(job, True)) as pool:
        yield from pool.imap(process_sample, items, chunksize=max(1, min(16, len(items) // (workers * 8))))


def _request(path: Path, methods: str | Sequence[str] | None, palette: str | None, tolerance: float | None,
             layout_hint: Layout | None, training: str | None, correct_cast: bool = False) -> _Request:
    run_dir = path if is_run_dir(path) else None
    manifest = load_manifest(path) if run_dir is not None else None
    if tolerance is not None and tolerance < 0:
        raise UsageError(f"--tolerance {tolerance}: must be 0 (no merging) or a positive delta E, e.g. {TOLERANCE:g}")
    train_set, train_palette, source = resolve_training(run_dir, manifest, training)
    same_folder = training and palette and Path(palette).expanduser().resolve() == Path(training).expanduser().resolve()
    resolved = train_palette if same_folder else resolve_palette(palette, run_dir, manifest)
    if resolved is not None and train_palette is not None and resolved.to_json() == train_palette.to_json():
        resolved = train_palette  # one object: the scoring candidate reuses grid-palette
    if correct_cast and (resolved is None or resolved.colors is None):
        raise UsageError("--correct-cast needs a fixed palette to measure the cast against: "
                         "--palette dataset or a folder of 24 px PNGs")
    if layout_hint is None and manifest is not None:
        layout_hint = layout_from_json(manifest.dataset.get("layout"))
    return _Request(path, manifest, parse_methods(methods, resolved), resolved,
                    TOLERANCE if tolerance is None else float(tolerance), layout_hint, train_set, train_palette, source,
                    correct_cast)


def _entry(info: SampleInfo, result: dict) -> dict:
    """A worker's result as the report's sample entry (what the file name says first)."""
    return {"file": result["file"], "name": info.name, "epoch": info.epoch, "step": info.step,
            "prompt_index": info.prompt_index, "seed": info.seed, "prompt": info.prompt,
            **{k: v for k, v in result.items() if k != "file"}}


def _run_workers(request: _Request, infos: list[SampleInfo], candidates_dir: Path, workers: int,
                 progress: bool, journal: Journal) -> list[dict]:
    """Every sample's result (reused from the journal, or processed and appended to it), in `infos` order.
    Ctrl-C stops the workers and raises Interrupted saying what was kept."""
    job = Job(request.methods, request.palette, request.tolerance, request.layout, request.path, candidates_dir,
              request.training, request.training_palette, request.correct_cast)
    stems = dict(zip((str(i.path) for i in infos), _stems(infos), strict=True))
    done = journal.reusable(request.path)
    todo = [info for info in infos if relative(info.path, request.path) not in done]
    items = [(str(info.path), stems[str(info.path)]) for info in todo]
    results = dict(done)
    # a live bar in a log file is only blank lines
    with Progress(TextColumn("processing"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                  console=console, transient=True, disable=not (progress and console.is_terminal)) as bar:
        task = bar.add_task("process", total=len(infos), completed=len(done))
        try:
            for info, result in zip(todo, _iterate(items, job, workers), strict=False):
                results[result["file"]] = _entry(info, result) if "error" not in result else result
                journal.append(results[result["file"]], info.path)
                bar.advance(task)
        except KeyboardInterrupt:
            raise Interrupted(f"process interrupted: {len(results)} of {len(infos)} samples done and kept in "
                              f"{journal.path}; run the same command again to continue") from None
    return [results[relative(info.path, request.path)] for info in infos]


def _report(request: _Request, results: list[dict]) -> dict:
    samples = [r for r in results if "error" not in r]
    errors = [{"file": r["file"], "error": r["error"]} for r in results if "error" in r]
    designs = {s["file"]: bytes.fromhex(s.pop("_design")) for s in samples}
    epochs = epoch_table(samples, request.methods)
    score_epochs(epochs, samples, designs)
    training = None if request.training_palette is None else {
        "source": request.training_source, "images": len(request.training) if request.training else 0,
        "palette": request.training_palette.to_json()}
    return {
        "schema_version": REPORT_SCHEMA, "kind": REPORT_KIND, "created_at": now_iso(), "source": str(request.path),
        "run_id": request.manifest.id if request.manifest is not None else None,
        "simulated": bool(request.manifest.simulated) if request.manifest is not None else False,
        "methods": list(request.methods), "palette": request.palette.to_json() if request.palette else None,
        "tolerance": request.tolerance, "correct_cast": request.correct_cast, "near_copy_threshold": NEAR_COPY,
        "novelty_tolerance": MATCH_TOLERANCE, "training": training,
        "layout_hint": request.layout.to_json() if request.layout is not None else None,
        "samples": samples, "errors": errors, "epochs": epochs,
        "best": choose_best(epochs, request.methods),
    }


def _options(request: _Request) -> dict:
    """What an existing report or journal must have been made with to be reused."""
    return {"methods": list(request.methods), "palette": request.palette.to_json() if request.palette else None,
            "tolerance": request.tolerance, "correct_cast": request.correct_cast,
            "layout_hint": request.layout.to_json() if request.layout is not None else None,
            "training": None if request.training_palette is None else {
                "source": request.training_source, "images": len(request.training) if request.training else 0,
                "palette": request.training_palette.to_json()}}


def process_path(path: Path, *, methods: str | Sequence[str] | None = DEFAULT_METHODS, palette: str | None = None,
                 tolerance: float | None = None, layout_hint: Layout | None = None, workers: int | None = None,
                 progress: bool = True, force: bool = False, training: str | None = None,
                 correct_cast: bool = False) -> dict:
    """Process every sample of a run folder or a folder of images; writes candidates and the report and
    returns the report dict. ProcessError when nothing could be processed; Interrupted on Ctrl-C (what was
    done is kept in report/partial.jsonl and reused by the next call with the same options).

    When the existing report was made with the same options from the same samples (none newer than it),
    it is returned as it is (`"reused": True`) and nothing is rewritten; `force` processes again.
    """
    path = Path(path).expanduser()
    request = _request(path, methods, palette, tolerance, layout_hint, training, correct_cast)
    infos = find_samples(path)
    candidates_dir, report_dir = output_dirs(path)
    if not force:
        reused = _up_to_date_report(request, infos)
        if reused is not None:
            return {**reused, "reused": True}
    created = [d for d in (candidates_dir.parent, candidates_dir, *(candidates_dir / m for m in request.methods),
                           report_dir) if not d.exists()]
    for method in request.methods:
        (candidates_dir / method).mkdir(parents=True, exist_ok=True)
    journal = Journal.open(report_dir, _options(request), fresh=force)
    results = _run_workers(request, infos, candidates_dir, workers or os.cpu_count() or 1, progress, journal)
    if not any("error" not in r for r in results):
        journal.remove()
        for folder in reversed(created):  # leave no empty output folders behind a failed run
            try:
                folder.rmdir()
            except OSError:
                pass
        first = results[0] if results else {"file": str(path), "error": "no samples"}
        raise ProcessError(f"{path}: none of {len(infos)} samples could be processed; "
                           f"e.g. {first['file']}: {first['error']}")
    report = _report(request, results)
    write_report(report_dir, report)
    journal.remove()
    return report


def _up_to_date_report(request: _Request, infos: list[SampleInfo]) -> dict | None:
    """The existing report when it answers this very request (same options, same samples, none newer)."""
    path = request.path
    try:
        report = load_report(path)
    except ProcessError:
        return None
    report_file = output_dirs(path)[1] / "report.json"
    options = _options(request)
    same_options = all(report.get(k) == v for k, v in options.items())
    done = {s["file"] for s in report["samples"]} | {e["file"] for e in report["errors"]}
    files = {relative(info.path, path) for info in infos}
    newest = max((info.path.stat().st_mtime for info in infos), default=0.0)
    candidates = all((path / c["file"]).is_file() for s in report["samples"] for c in s["candidates"].values())
    fresh = newest <= report_file.stat().st_mtime
    return report if same_options and done == files and fresh and candidates else None
