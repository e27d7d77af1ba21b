"""Several runs from data (`bespoke.run.sweep_file`): one after another, one per GPU at once (`gpus`), this
machine's deterministic share of them (`shard` i/n: sorted by run id, every n-th starting at the i-th), or
submitted to a Slurm cluster as one job array (`submit_to_slurm`, bespoke.run.slurm_sweep).
A failed run never stops the sweep; a finished run is skipped; Ctrl-C stops everything and marks the running
runs interrupted.
"""

from __future__ import annotations

import queue
import threading
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

from bespoke.errors import BespokeError
from bespoke.run.events import Message, Observer, RunDone, Serialized, SweepPlanned, ignore
from bespoke.run.manifest import RunManifest, load_manifest
from bespoke.run.paths import resolve_dataset
from bespoke.run.plan import PlanRequest, RunPlan, plan_run
from bespoke.run.preflight import require_preflight
from bespoke.run.runner import SigtermAsInterrupt
from bespoke.run.slurm import SlurmRequest, require_slurm
from bespoke.run.slurm_sweep import SlurmSubmission, submit_sweep
from bespoke.run.sweep_file import (
    SweepEntry,
    parse_gpus,
    parse_resolutions,
    parse_shard,
    shard_items,
    sweep_entries,
)
from bespoke.run.train import TrainOptions, train_run
from bespoke.settings import Settings


@dataclass
class SweepRow:
    """One line of the comparison table (best epoch and colours are filled in once the run is processed)."""

    run_id: str
    run_dir: Path | None
    resolution: int | None
    name: str | None
    preset: str | None
    status: str
    epochs_done: int = 0
    epochs_total: int | None = None
    duration: float | None = None
    final_loss: float | None = None
    best_epoch: int | None = None
    mean_colors: float | None = None
    reason: str | None = None
    gpu: str | None = None
    skipped: bool = False
    log_tail: list[str] = field(default_factory=list)
    cost_usd: float | None = None  # the run's cost (all its attempts), with a GPU price


def row_from_manifest(run_dir: Path, manifest: RunManifest) -> SweepRow:
    """A table row from a run's run.json."""
    reason = manifest.attempt.reason if manifest.attempt is not None else None
    if manifest.early_stop is not None and manifest.status == "stopped-early":
        reason = manifest.early_stop.reason
    return SweepRow(
        run_id=manifest.id, run_dir=Path(run_dir), resolution=manifest.resolution, name=manifest.name,
        preset=manifest.preset,
        status=manifest.status, epochs_done=manifest.epochs_done, epochs_total=manifest.epochs_total,
        duration=manifest.duration_s, final_loss=manifest.final_loss, reason=reason, cost_usd=manifest.cost_usd,
    )


def plan_entries(settings: Settings, entries: list[SweepEntry], dataset: Path, create: bool = True) -> list[RunPlan]:
    """Plan every entry (planning writes or finds each run folder; `create=False` only computes the run ids)."""
    return [plan_run(settings, PlanRequest(resolution=entry.resolution, dataset=dataset, preset=entry.preset,
                                           overrides=tuple(entry.overrides), name=entry.name),
                     create=create)
            for entry in entries]


class SweepRunner:
    """Runs planned run folders sequentially or one per GPU, collecting a `SweepRow` per run; every run's events
    go to the observer (from the worker threads one at a time: bespoke.run.events.Serialized)."""

    def __init__(self, settings: Settings, options: TrainOptions, observer: Observer = ignore):
        self.settings = settings
        self.stop = threading.Event()
        # run_sweep preflights every run at once, before any launch
        self.options = replace(options, stop=self.stop, preflight=False)
        self.emit: Observer = Serialized(observer)

    def _one(self, run_dir: Path, gpu: str | None) -> SweepRow:
        budget = self.options.loop.budget
        if budget is not None and budget.exhausted:  # nothing left for another run
            row = row_from_manifest(run_dir, load_manifest(run_dir))
            row.reason, row.gpu = f"not started: the sweep's budget is spent ({budget.spent:.2f} USD)", gpu
            self.emit(RunDone(row))
            return row
        try:
            options = replace(self.options, pin_gpu=gpu, label=f"gpu {gpu}" if gpu is not None else "")
            result = train_run(self.settings, run_dir, options, self.emit)
        except BespokeError as error:
            row = row_from_manifest(run_dir, load_manifest(run_dir))
            row.status, row.reason, row.gpu = "error", str(error), gpu
        else:
            row = row_from_manifest(run_dir, load_manifest(run_dir))
            row.gpu, row.skipped, row.log_tail = gpu, result.skipped, result.log_tail
            if result.skipped:
                row.reason = f"already {result.status} (skipped)"
        self.emit(RunDone(row))
        return row

    def run_sequential(self, run_dirs: list[Path]) -> list[SweepRow]:
        """One run after another; stops early only when the user interrupts."""
        rows = []
        for index, run_dir in enumerate(run_dirs, 1):
            if self.stop.is_set():
                break
            self.emit(Message(Path(run_dir).name, f"sweep {index}/{len(run_dirs)}: {Path(run_dir).name}"))
            row = self._one(Path(run_dir), None)
            rows.append(row)
            if row.status == "interrupted":
                self.stop.set()
        return rows

    def run_parallel(self, run_dirs: list[Path], gpus: tuple[str, ...]) -> list[SweepRow]:
        """One worker thread per GPU, each driving one trainer at a time pinned to its GPU."""
        todo: queue.Queue = queue.Queue()
        for run_dir in run_dirs:
            todo.put(Path(run_dir))
        rows: dict[str, SweepRow] = {}

        def worker(gpu: str):
            while not self.stop.is_set():
                try:
                    run_dir = todo.get_nowait()
                except queue.Empty:
                    return
                row = rows[run_dir.name] = self._one(run_dir, gpu)
                if row.status == "interrupted":
                    self.stop.set()

        join_or_stop([threading.Thread(target=worker, args=(gpu,), daemon=True, name=f"sweep-gpu{gpu}")
                      for gpu in gpus], self.stop)
        return [rows[Path(d).name] for d in run_dirs if Path(d).name in rows]


@dataclass
class SweepOutcome:
    """Rows of the runs this machine handled, and whether the user interrupted the sweep."""

    rows: list[SweepRow]
    interrupted: bool


@dataclass(frozen=True)
class SweepRequest:
    """What `bespoke sweep` was asked for: the runs (resolutions, a preset, a sweep file, overrides, a dataset)
    and where they go (GPUs, this machine's shard)."""

    resolutions: str | None = None
    preset: str | None = None
    sweep_file: Path | None = None
    dataset: str | Path | None = None
    overrides: tuple[str, ...] = ()
    gpus: str | None = None
    shard: str | None = None


def run_sweep(settings: Settings, request: SweepRequest, options: TrainOptions = TrainOptions(),
              observer: Observer = ignore) -> SweepOutcome:
    """`bespoke sweep`: plan every entry, keep this machine's shard, run them (one per GPU with `gpus`), each
    with `options` (restart, environment, grace); every run's events go to `observer`.

    Flags are checked first, then the sd-scripts checkout (once), then the dataset (a folder or a name in the
    datasets folder, bespoke.run.paths.resolve_dataset), then every run is planned."""
    gpu_ids = parse_gpus(request.gpus)
    shard_spec = parse_shard(request.shard)
    entries = sweep_entries(parse_resolutions(request.resolutions) if request.resolutions else None, request.preset,
                            request.overrides, request.sweep_file)
    settings.sd_script("train_network.py")  # once, before any run: not the same error for every run
    source = resolve_dataset(request.dataset, settings.datasets_dir)
    run_dirs = _plan_share(settings, entries, source, shard_spec, observer)
    if options.preflight:  # one probe for every run that will launch; any problem stops the sweep before it starts
        require_preflight(settings, [d for d in run_dirs if options.restart or load_manifest(d).status != "finished"])
    runner = SweepRunner(settings, options, observer)
    try:
        rows = runner.run_parallel(run_dirs, gpu_ids) if gpu_ids else runner.run_sequential(run_dirs)
    except KeyboardInterrupt:
        runner.stop.set()
        rows = []
    interrupted = runner.stop.is_set()
    if interrupted:  # rows for runs never started, so the table says what is left
        done = {r.run_id for r in rows}
        rows += [row_from_manifest(d, load_manifest(d)) for d in run_dirs if d.name not in done]
    return SweepOutcome(rows, interrupted)


def _plan_share(settings: Settings, entries: list[SweepEntry], dataset: Path, shard_spec: tuple[int, int] | None,
                observer: Observer) -> list[Path]:
    """Plan this machine's runs; with a shard, run ids are computed first without writing, so no machine
    creates another's run folders."""
    plans = plan_entries(settings, entries, dataset, create=shard_spec is None)
    unique = {plan.run_id: (plan, entry) for plan, entry in zip(plans, entries, strict=True)}
    share = set(shard_items(list(unique), shard_spec))
    chosen = [run_id for run_id in unique if run_id in share]  # the sweep's own order, this machine's share
    if shard_spec is not None:
        mine = plan_entries(settings, [unique[run_id][1] for run_id in chosen], dataset)
        unique.update({plan.run_id: (plan, entries[0]) for plan in mine})
    observer(SweepPlanned(tuple(chosen), shard_spec, len(unique)))
    return [unique[run_id][0].paths.root for run_id in chosen]


def preflight(settings: Settings, plans: list[RunPlan]) -> None:
    """Checks made once on the submit host before a Slurm sweep is queued: `bespoke preflight` of every run to
    submit, in one probe. The runs train on the cluster's nodes, so stages that need hardware this host lacks
    do not stop the submission (each task preflights again on its node before it launches)."""
    require_preflight(settings, [plan.paths.root for plan in plans], here=False)


def submit_to_slurm(settings: Settings, *, request: SlurmRequest, resolutions: str | None = None,
                    preset: str | None = None, sweep_file: Path | None = None, dataset: str | Path | None = None,
                    overrides: tuple[str, ...] = ()) -> SlurmSubmission:
    """`bespoke sweep --slurm`: plan every run on the shared filesystem here, then submit the ones not finished,
    queued or running as one job array (bespoke.run.slurm_sweep.submit_sweep)."""
    require_slurm()  # before anything is planned
    entries = sweep_entries(parse_resolutions(resolutions) if resolutions else None, preset, overrides, sweep_file)
    settings.sd_script("train_network.py")
    source = resolve_dataset(dataset, settings.datasets_dir)
    unique: dict[str, RunPlan] = {}
    for plan in plan_entries(settings, entries, source):
        unique.setdefault(plan.run_id, plan)
    label = Path(sweep_file).stem if sweep_file is not None else None
    return submit_sweep(settings, list(unique.values()), request, label=label,
                        preflight=lambda plans: preflight(settings, plans))


def join_or_stop(threads: list[threading.Thread], stop: threading.Event) -> bool:
    """Start `threads` (one per GPU) and wait for them all; a Ctrl-C (or SIGTERM, SIGHUP) sets `stop` and waits
    for each to wind its run down. True when it was interrupted."""
    for thread in threads:
        thread.start()
    try:
        with SigtermAsInterrupt():
            while any(t.is_alive() for t in threads):
                time.sleep(0.2)
    except KeyboardInterrupt:
        stop.set()
        for thread in threads:
            thread.join()
        return True
    return False
