"""Scoring each epoch while the run trains: the loop's options from flags and bespoke.toml, and the judge.

`loop_options` turns what `train` / `sweep` were asked (flags over bespoke.toml's [train] table) into the run
loop's options (bespoke.run.loop.LoopOptions): the stop rule, the price, the budget and, with live scoring on,
the judge that scores each epoch as it lands.

`LiveJudge` is bespoke.run.judge.EpochJudge made of `process`: each complete epoch's samples become the same
faithful candidates (bespoke.review.candidates) with the options bespoke processes a run with on its own
(bespoke.review.process.run_options), each appended to process's own journal (report/partial.jsonl) as it is
done, so no sample is processed twice: a resumed attempt reuses what an earlier one judged, and the `process`
after training reuses them all. The epoch's score is its row of the report's epoch table (bespoke.review.epochs,
bespoke.review.selection), with the interval when the score record has one. The work runs on one background
thread feeding a pool of niced worker processes (from the fork server, never forked from bespoke), as many as
the CPUs this process may use minus what the trainer's own process and data loaders take, and never more than
an epoch has samples.
"""

from __future__ import annotations

import os
import queue
import threading
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bespoke.cpus import available_cpus
from bespoke.errors import BespokeError
from bespoke.kohya.metadata import as_int
from bespoke.review.candidates import Job, Outcome, init_worker, process_sample, relative
from bespoke.review.epochs import epoch_table
from bespoke.review.journal import Journal
from bespoke.review.process import job_for, pool_context, put_down, run_options, sample_stems
from bespoke.review.records import EpochRow, Sample, SampleError, Score
from bespoke.review.report import output_dirs
from bespoke.review.request import Request, report_options, resolve_request
from bespoke.review.samples import find_samples
from bespoke.review.scoring import build_scorer
from bespoke.review.selection import score_samples
from bespoke.run.cost import Budget, Price, check_budget, check_price
from bespoke.run.events import EpochFinished
from bespoke.run.judge import Verdict
from bespoke.run.loop import LoopOptions
from bespoke.run.manifest import load_manifest
from bespoke.run.paths import RunPaths, read_training
from bespoke.run.stop_rules import parse_stop_rule
from bespoke.settings import TrainSettings

NICENESS = 10  # the workers' nice increment: the trainer's data loaders come first
TRAINER_LOADERS = 8  # sd-scripts' default max_data_loader_n_workers
STOP_WAIT_SECONDS = 5.0  # after close's own wait: how long a stopped judge gets to put its pool down
POLL_SECONDS = 0.25  # how often a judge waiting on its pool looks whether it was stopped


@dataclass(frozen=True)
class LoopRequest:
    """What the command line asked for (None: not given, bespoke.toml's [train] value applies)."""

    stop_when: str | None = None
    budget: float | None = None
    gpu_price: float | None = None
    live_score: bool | None = None
    gpus: int = 1  # GPUs one run holds (its price counts each)
    count_earlier_attempts: bool = True  # `train`: the budget counts what the run's earlier attempts cost


def loop_options(defaults: TrainSettings, request: LoopRequest) -> LoopOptions:
    """The run loop's options: each value from the flag, else bespoke.toml's [train] table."""
    price = check_price(request.gpu_price if request.gpu_price is not None else defaults.gpu_price_per_hour)
    budget = check_budget(request.budget if request.budget is not None else defaults.budget, price)
    given = request.stop_when is not None
    rule = parse_stop_rule(request.stop_when if given else defaults.stop_when,
                           "--stop-when" if given else "bespoke.toml [train] stop_when")
    live = defaults.live_score if request.live_score is None else request.live_score
    return LoopOptions(judge=LiveJudge if live else None, stop_when=rule, stop_explicit=given,
                       budget=Budget(budget, request.count_earlier_attempts) if budget is not None else None,
                       price=Price(price, max(1, request.gpus)) if price is not None else None)


def spare_cpus(run_dir: Path) -> int:
    """The CPUs this process may use minus the trainer's own process and its data loader workers, at least 1."""
    try:
        loaders = as_int(read_training(RunPaths(run_dir)).get("max_data_loader_n_workers"))
    except BespokeError:  # the trainer refuses it anyway; count its default meanwhile
        loaders = None
    loaders = TRAINER_LOADERS if loaders is None else loaders
    return max(1, available_cpus() - 1 - max(loaders, 0))


def _worker(job: Job, niceness: int) -> None:
    """A pool worker: lower its priority below the trainer's, then take the job as process's workers do."""
    try:
        os.nice(niceness)
    except OSError:  # not allowed here: it still works, only not niced
        pass
    init_worker(job, True)


@dataclass
class _Session:
    """What judging a run needs, made once on the judge's thread: the request, the worker job, the journal."""

    request: Request
    job: Job
    journal: Journal
    reused: dict[str, Outcome]  # what the journal held when opened (earlier attempts, an interrupted process)

    @classmethod
    def open(cls, run_dir: Path) -> _Session:
        manifest = load_manifest(run_dir)
        request = resolve_request(run_dir, run_options(run_dir, manifest), manifest)
        candidates_dir, report_dir = output_dirs(run_dir)
        for method in request.methods:
            (candidates_dir / method).mkdir(parents=True, exist_ok=True)
        journal = Journal.open(report_dir, report_options(request))
        # one run's samples all take their prompts from its one prompt file: those drawn so far name them all
        scorer = build_scorer(request.training_set, (info.prompt for info in find_samples(run_dir)))
        return cls(request, job_for(request, candidates_dir, scorer), journal, journal.reusable(run_dir))


class LiveJudge:
    """bespoke.run.judge.EpochJudge with process's candidates and score (see the module docstring); `submit`
    and `collect` never block the supervising thread."""

    def __init__(self, run_dir: Path, workers: int | None = None, niceness: int = NICENESS):
        self.run_dir = Path(run_dir)
        self.workers, self.niceness = workers, niceness
        self._todo: queue.Queue[EpochFinished | None] = queue.Queue()
        self._done: queue.Queue[Verdict] = queue.Queue()
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._work, daemon=True, name="bespoke-live-score")
        self._pool: Any = None
        self._pool_lock = threading.Lock()

    def submit(self, epoch: EpochFinished) -> None:
        if not self._thread.is_alive() and not self._stopped.is_set():
            self._thread.start()
        self._todo.put(epoch)

    def collect(self) -> list[Verdict]:
        out = []
        while True:
            try:
                out.append(self._done.get_nowait())
            except queue.Empty:
                return out

    def close(self, wait: float) -> list[Verdict]:
        """Wait up to `wait` seconds for the epochs submitted; then stop, whatever is left unjudged (the
        `process` after training does those)."""
        if self._thread.ident is not None:
            self._todo.put(None)
            self._thread.join(max(wait, 0.0))
        self._stopped.set()
        with self._pool_lock:
            if self._pool is not None:
                put_down(self._pool)
        if self._thread.ident is not None:
            self._thread.join(STOP_WAIT_SECONDS)
        return self.collect()

    def _work(self) -> None:
        try:
            session = _Session.open(self.run_dir)
        except Exception as error:  # noqa: BLE001 - judging is a guest of the run: it never stops it
            self._refuse_all(f"live scoring could not start ({type(error).__name__}: {error})")
            return
        try:
            while not self._stopped.is_set():
                event = self._todo.get()
                if event is None:
                    return
                verdict = self._judge(session, event)
                if verdict is not None and not self._stopped.is_set():
                    self._done.put(verdict)
        except Exception as error:  # noqa: BLE001 - as above
            if not self._stopped.is_set():
                self._refuse_all(f"live scoring stopped ({type(error).__name__}: {error})")
        finally:
            with self._pool_lock:
                if self._pool is not None:
                    put_down(self._pool)
                    self._pool = None

    def _refuse_all(self, why: str) -> None:
        """Every epoch submitted (and to come) gets `why` for a verdict."""
        while not self._stopped.is_set():
            event = self._todo.get()
            if event is None:
                return
            self._done.put(Verdict(event.epoch, None, error=why))

    def _judge(self, session: _Session, event: EpochFinished) -> Verdict | None:
        if not event.samples:  # a run that draws no samples after this epoch: nothing to judge, nothing to say
            return None if not event.missing_samples else Verdict(event.epoch, None, error="its samples were "
                                                                                             "not drawn")
        wanted = {str(p) for p in event.samples}
        infos = find_samples(self.run_dir)
        chosen = [(i, s) for i, s in zip(infos, sample_stems(infos), strict=True) if str(i.path) in wanted]
        outcomes = [session.reused[f] for f in (relative(i.path, self.run_dir) for i, _ in chosen)
                    if f in session.reused]
        todo = [(i, s) for i, s in chosen if relative(i.path, self.run_dir) not in session.reused]
        for (info, _), outcome in zip(todo, self._results(session, todo, len(chosen)), strict=False):
            if self._stopped.is_set():
                return None
            session.journal.append(outcome, info.path)
            outcomes.append(outcome)
        return verdict_of(event.epoch, outcomes, session.request.methods)

    def _results(self, session: _Session, todo: list, per_epoch: int) -> Iterator[Outcome]:
        """Each sample's outcome from the pool (made at the first epoch that needs one), in order; ends early
        once the judge is stopped (a terminated pool never answers)."""
        if not todo:
            return
        with self._pool_lock:
            if self._pool is None and not self._stopped.is_set():
                workers = max(1, min(self.workers or spare_cpus(self.run_dir), per_epoch))
                self._pool = open_pool(workers, session.job, self.niceness)
            pool = self._pool
        if pool is None:
            return
        for result in [pool.submit(process_sample, item) for item in todo]:
            while True:
                if self._stopped.is_set():
                    return
                try:
                    yield result.result(timeout=POLL_SECONDS)
                    break
                except TimeoutError:
                    continue


def open_pool(workers: int, job: Job, niceness: int) -> ProcessPoolExecutor:
    """The judge's niced workers (an executor: see bespoke.review.process.put_down)."""
    return ProcessPoolExecutor(workers, mp_context=pool_context(), initializer=_worker, initargs=(job, niceness))


def verdict_of(epoch: int, outcomes: list[Outcome], methods: tuple[str, ...]) -> Verdict:
    """The epoch's score as the report's epoch table gives it (its interval when the record has one), or why
    there is none."""
    samples = [o.entry for o in outcomes if isinstance(o.entry, Sample)]
    if not samples:
        first = next((o.entry for o in outcomes if isinstance(o.entry, SampleError)), None)
        detail = f"; e.g. {first.file}: {first.error}" if first is not None else ""
        return Verdict(epoch, None, error=f"none of its {len(outcomes)} samples could be processed{detail}")
    designs = {o.file: o.design for o in outcomes if o.design is not None}
    weights = score_samples(samples, designs)
    row: EpochRow = next(r for r in epoch_table(samples, methods, designs, tuple(weights)) if r.epoch == epoch)
    if (row.degenerate_pct or 0) >= 100:  # as bespoke.review.selection.choose_best: it cannot be the best
        return Verdict(epoch, None, samples=len(samples), error="every sample is degenerate (black, solid or "
                                                                 "no grid)")
    low, high = score_interval(row.score)
    return Verdict(epoch, row.score.total, low, high, len(samples))


def score_interval(score: Score) -> tuple[float | None, float | None]:
    """(low, high) of the score's bootstrap interval over the epoch's samples; (None, None) where the record has
    none (one sample an epoch): the stop rule uses the point score."""
    if score.interval is None or len(score.interval) != 2:
        return None, None
    low, high = score.interval
    return float(low), float(high)
