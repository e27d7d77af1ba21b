"""`bespoke process`: every sample -> 24 px candidates per method + colour metrics -> report.json/report.csv.

Samples stream through a process pool (one image in memory per worker, `bespoke.review.candidates`); one bad
sample becomes an entry in "errors" and never stops the others. Outputs go to `<run>/candidates/<method>/` and
`<run>/report/` for a run folder, to `<folder>/bespoke_process/` for any other folder (never among the user's
images), or to `--out` (a read-only folder of samples: without --out that is an error saying where bespoke
would write, before anything is written). Re-processing replaces bespoke's own candidates and report (they are
derived files).

Each finished sample is also appended to `report/partial.jsonl` (bespoke.review.journal); after Ctrl-C (or a
crash) the same command reuses those samples and processes only the rest. What is asked for and how it is
resolved (palette, training images): bespoke.review.request.

The pool has as many workers as this process may use CPUs (bespoke.cpus: affinity, cgroup quota, Slurm), and
its workers come from a fork server (spawned where there is none): the main process never forks, so a live
thread in it (the progress display's refresh) cannot leave a worker holding a lock nobody will release.
"""

from __future__ import annotations

import multiprocessing
import multiprocessing.forkserver
import os
import stat
from collections.abc import Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from bespoke import progress
from bespoke.clock import now_iso
from bespoke.cpus import available_cpus
from bespoke.errors import Interrupted, ProcessError
from bespoke.kohya.naming import SampleInfo
from bespoke.pixels.novelty import MATCH_TOLERANCE, NEAR_COPY
from bespoke.review.candidates import Job, Outcome, init_worker, process_sample, relative
from bespoke.review.epochs import epoch_table
from bespoke.review.journal import Journal
from bespoke.review.records import ProcessReport, Sample, SampleError
from bespoke.review.report import load_report, output_dirs, report_file, write_report
from bespoke.review.request import (
    DEFAULT_METHODS,
    ProcessOptions,
    Request,
    default_palette,
    report_options,
    resolve_request,
)
from bespoke.review.samples import find_samples
from bespoke.review.scoring import Scorer, build_scorer, prompt_tags
from bespoke.review.selection import ANALYSIS_VERSION, adherence_by_prompt, choose_best, score_samples
from bespoke.run.manifest import RunManifest, load_manifest
from bespoke.run.paths import RunPaths, is_run_dir

# the fork server imports these once (the main script too: multiprocessing's default); its workers start with them
WORKER_MODULES = ["__main__", "bespoke.review.candidates"]
MIN_POOL_SAMPLES = 4  # fewer samples are processed in this process: a pool costs more than it saves


@dataclass(frozen=True)
class Loaded:
    """Files the caller has read already, so that `process` does not read them again (a review reads each
    file once): the run's run.json, and its report.json (None: there is none, or it is unreadable)."""

    manifest: RunManifest | None = None
    report: ProcessReport | None = None


@dataclass(frozen=True)
class Processed:
    """What `process_path` did: the report, and whether it was the one on disk, reused as it was."""

    report: ProcessReport
    reused: bool = False


def process_run(run_dir: Path, *, methods: Sequence[str] | None = None, force: bool = False,
                loaded: Loaded | None = None) -> Processed:
    """`process` as bespoke runs it on its own (after train, sweep, review): with the run's training palette
    when it is on this machine, reusing an up-to-date report. run.json and report.json are read once (or not
    at all when `loaded` has them)."""
    if loaded is None:
        manifest = load_manifest(run_dir) if is_run_dir(run_dir) else None
        loaded = Loaded(manifest=manifest, report=None if force else _existing_report(Path(run_dir)))
    return process_path(run_dir, run_options(run_dir, loaded.manifest, methods, force), loaded=loaded)


def run_options(run_dir: Path, manifest: RunManifest | None, methods: Sequence[str] | None = None,
                force: bool = False) -> ProcessOptions:
    """The options bespoke processes a run with on its own (process_run; live scoring while it trains, which
    fills the same journal): the default methods and the run's training palette when it is on this machine."""
    return ProcessOptions(methods=methods or DEFAULT_METHODS, palette=default_palette(run_dir, manifest), force=force)


def sample_stems(infos: list[SampleInfo]) -> list[str]:
    """The candidate file stem of each sample: its name, or its file name when two samples share a name."""
    seen: dict[str, int] = {}
    for info in infos:
        seen[info.name] = seen.get(info.name, 0) + 1
    return [info.name if seen[info.name] == 1 else info.path.name.replace(".", "_") for info in infos]


def job_for(request: Request, candidates_dir: Path, scorer: Scorer) -> Job:
    """What each worker needs to process a sample of `request` into `candidates_dir`, its score's terms measured
    with `scorer` (build_scorer: the training set and the prompts)."""
    return Job(request.methods, request.palette, request.tolerance, request.layout, request.path, candidates_dir,
               request.training, request.training_palette, scorer)


def pool_context() -> multiprocessing.context.BaseContext:
    """A start method that never forks this process: the fork server (Linux, macOS), else spawn (Windows)."""
    if "forkserver" not in multiprocessing.get_all_start_methods():
        return multiprocessing.get_context("spawn")
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(WORKER_MODULES)
    return context


def _start_fork_server(workers: int) -> None:
    """Start the fork server now when a pool will need it: its interpreter starts and imports while this process
    reads the training images, instead of after (it waits, idle, if the report turns out to be up to date)."""
    if workers > 1 and pool_context().get_start_method() == "forkserver":
        multiprocessing.forkserver.ensure_running()


def _iterate(items: list[tuple[SampleInfo, str]], job: Job, workers: int) -> Iterator[Outcome]:
    if workers <= 1 or len(items) < MIN_POOL_SAMPLES:
        init_worker(job)
        yield from map(process_sample, items)
        return
    pool = ProcessPoolExecutor(workers, mp_context=pool_context(), initializer=init_worker, initargs=(job, True))
    try:
        yield from pool.map(process_sample, items, chunksize=max(1, min(16, len(items) // (workers * 8))))
    finally:
        put_down(pool)


def put_down(pool: ProcessPoolExecutor) -> None:
    """Stop a pool of workers without waiting: what is queued is dropped, a sample being processed finishes (tens of
    ms) and its worker exits. An executor, not multiprocessing.Pool, because Slurm's cancel, a pre-emption or a time
    limit sends SIGTERM to every process of the task: a Pool whose idle worker died holding its task queue's lock
    waits on that lock for ever in terminate(), and bespoke hung until SIGKILL with its stop unrecorded. The
    executor notices a dead worker (BrokenProcessPool) and never takes that lock to shut down."""
    pool.shutdown(wait=False, cancel_futures=True)


def _run_workers(request: Request, infos: list[SampleInfo], candidates_dir: Path, workers: int,
                 journal: Journal) -> tuple[list[Outcome], Scorer]:
    """Every sample's outcome (reused from the journal, or processed and appended to it), in `infos` order,
    and the Scorer they were measured with. Ctrl-C stops the workers and raises Interrupted saying what was
    kept."""
    stems = dict(zip((str(i.path) for i in infos), sample_stems(infos), strict=True))
    results = journal.reusable(request.path)
    scorer = build_scorer(request.training_set, (info.prompt for info in infos))
    job = job_for(request, candidates_dir, scorer)
    todo = [info for info in infos if relative(info.path, request.path) not in results]
    items = [(info, stems[str(info.path)]) for info in todo]
    with progress.task("processing", total=len(infos)) as bar:
        bar.advance(len(results))
        try:
            for info, outcome in zip(todo, _iterate(items, job, workers), strict=False):
                results[outcome.file] = outcome
                journal.append(outcome, info.path)
                bar.advance()
        except KeyboardInterrupt:
            raise Interrupted(f"process interrupted: {len(results)} of {len(infos)} samples done and kept in "
                              f"{journal.path}; run the same command again to continue") from None
    return [results[relative(info.path, request.path)] for info in infos], scorer


def _report(request: Request, outcomes: list[Outcome], scorer: Scorer) -> ProcessReport:
    samples = [o.entry for o in outcomes if isinstance(o.entry, Sample)]
    errors = [o.entry for o in outcomes if isinstance(o.entry, SampleError)]
    designs = {o.file: o.design for o in outcomes if o.design is not None}
    weights = score_samples(samples, designs)
    epochs = epoch_table(samples, request.methods, designs, tuple(weights))
    prompts = prompt_tags(scorer)
    for row in epochs:
        row.adherence = adherence_by_prompt([s for s in samples if s.epoch == row.epoch], prompts)
    manifest = request.manifest
    return ProcessReport(
        created_at=now_iso(), source=str(request.path), run_id=manifest.id if manifest is not None else None,
        simulated=bool(manifest.simulated) if manifest is not None else False, methods=list(request.methods),
        palette=request.palette.to_json() if request.palette else None, tolerance=request.tolerance,
        near_copy_threshold=NEAR_COPY, novelty_tolerance=MATCH_TOLERANCE, training=request.training_record(),
        layout_hint=request.layout.to_json() if request.layout is not None else None,
        samples=samples, errors=errors, epochs=epochs, best=choose_best(epochs, request.methods, samples),
        analysis_version=ANALYSIS_VERSION, weights=weights, prompts=prompts,
    )


def _writable(folder: Path) -> bool:
    """Whether `folder` can be made and written: its nearest existing ancestor takes new entries and is not
    marked read-only (no write bit for anyone: root may write there, but the folder says not to)."""
    for parent in (folder, *folder.parents):
        if parent.exists():
            return (parent.is_dir() and os.access(parent, os.W_OK | os.X_OK)
                    and bool(parent.stat().st_mode & (stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH)))
    return False


def _check_writable(path: Path, out: Path | None, candidates_dir: Path, report_dir: Path) -> None:
    for folder in (candidates_dir, report_dir):
        if not _writable(folder):
            if out is not None:
                raise ProcessError(f"--out {out}: cannot write there (read-only); pass a folder you can write to")
            raise ProcessError(f"{path}: read-only; bespoke writes its candidates and report to "
                               f"{folder.parent}, so pass --out FOLDER for them")


def process_path(path: Path, options: ProcessOptions | None = None, *, loaded: Loaded | None = None) -> Processed:
    """Process every sample of a run folder or a folder of images; writes candidates and the report.
    ProcessError when nothing could be processed; Interrupted on Ctrl-C (what was done is kept in
    report/partial.jsonl and reused by the next call with the same options).

    When the existing report was made with the same options from the same samples (none newer than it),
    it is returned as it is (`reused`) and nothing is rewritten; `options.force` processes again. `loaded`:
    run.json and report.json as the caller read them already (they are not read again).
    """
    path = Path(path).expanduser()
    options = options or ProcessOptions()
    workers = options.workers or available_cpus()
    _start_fork_server(workers)
    request = resolve_request(path, options, loaded.manifest if loaded is not None else None)
    infos = find_samples(path)
    candidates_dir, report_dir = output_dirs(path, request.out)
    if not options.force:
        existing = loaded.report if loaded is not None else _existing_report(path, request.out)
        if existing is not None and _answers(existing, request, infos):
            return Processed(existing, reused=True)
    _check_writable(path, request.out, candidates_dir, report_dir)
    created = [d for d in (candidates_dir.parent, candidates_dir, *(candidates_dir / m for m in request.methods),
                           report_dir) if not d.exists()]
    for method in request.methods:
        (candidates_dir / method).mkdir(parents=True, exist_ok=True)
    journal = Journal.open(report_dir, report_options(request), fresh=options.force)
    outcomes, scorer = _run_workers(request, infos, candidates_dir, workers, journal)
    if not any(isinstance(o.entry, Sample) for o in outcomes):
        journal.remove()
        for folder in reversed(created):  # leave no empty output folders behind a failed run
            try:
                folder.rmdir()
            except OSError:
                pass
        first = outcomes[0].entry if outcomes else SampleError(file=str(path), error="no samples")
        detail = first.error if isinstance(first, SampleError) else ""
        raise ProcessError(f"{path}: none of {len(infos)} samples could be processed; e.g. {first.file}: {detail}")
    try:
        report = _report(request, outcomes, scorer)
        write_report(report_dir, report)
    except KeyboardInterrupt:  # every sample is in the journal: the next call only writes the report
        raise Interrupted(f"process interrupted while writing its report: all {len(infos)} samples are done and "
                          f"kept in {journal.path}; run the same command again to write it") from None
    journal.remove()
    return Processed(report)


def _existing_report(path: Path, out: Path | None = None) -> ProcessReport | None:
    try:
        return load_report(path, out)
    except ProcessError:  # none, or unreadable: processed afresh
        return None


def _answers(report: ProcessReport, request: Request, infos: list[SampleInfo]) -> bool:
    """True when `report` answers this very request: the same options, and current (`is_current`)."""
    fields = dict(report.items())  # JSON values, but the sample records as they are
    same_options = all(fields[key] == value for key, value in report_options(request).items())
    return same_options and is_current(report, request.path, infos, request.out)


def is_current(report: ProcessReport, path: Path, infos: list[SampleInfo], out: Path | None = None) -> bool:
    """The one staleness rule: a report is current while this bespoke's analysis made it (ANALYSIS_VERSION), it
    covers exactly the samples on disk, none of them is newer than it, and every candidate it names is there."""
    if report.analysis_version != ANALYSIS_VERSION:
        return False
    done = {s.file for s in report.samples} | {e.file for e in report.errors}
    files = {relative(info.path, path) for info in infos}
    try:
        written = report_file(path, out).stat().st_mtime
    except OSError:
        return False
    newest = max((info.path.stat().st_mtime for info in infos), default=0.0)
    candidates = all((path / c.file).is_file() for s in report.samples for c in s.candidates.values())
    return done == files and newest <= written and candidates


def current_report(run_dir: Path, *, methods: Sequence[str] | None = None, loaded: Loaded | None = None) -> Processed | None:
    """A run's report as bespoke keeps it on its own (after train, in a sweep, a review, the demo): the one on
    disk while it is current (`is_current`; whatever options it was made with, so a user's own `process` flags
    stay), else processed again with the report's methods (or `methods`, or the defaults) and the run's training
    palette. None when the run drew no samples (sampling was off)."""
    run_dir = Path(run_dir)
    sample_dir = RunPaths(run_dir).sample_dir
    if not sample_dir.is_dir() or not any(sample_dir.glob("*.png")):
        return None
    if loaded is None:
        manifest = load_manifest(run_dir) if is_run_dir(run_dir) else None
        loaded = Loaded(manifest=manifest, report=_existing_report(run_dir))
    existing = loaded.report
    if existing is not None and is_current(existing, run_dir, find_samples(run_dir)):
        return Processed(existing, reused=True)
    kept = [m for m in existing.methods if m != "grid-palette"] if existing is not None else []
    return process_run(run_dir, methods=kept or methods, loaded=loaded)
