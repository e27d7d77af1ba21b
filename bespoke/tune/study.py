"""A study's folder, storage, sampler and pruner, and who takes which trial.

The folder is `<outputs>/tunes/<name>/`: `space.toml` (the space the study began with: a changed space is
refused, a new name starts a new study), `journal.log` (the Optuna journal, optuna.storages.JournalStorage over a
JournalFileBackend, unless `--storage URL` names another: an RDB URL such as sqlite:///x.db, or a journal file),
`ask.lock` and `workers/` (one lock file per live worker).

Taking a trial happens under `ask.lock`, so workers on one machine or many (the lock file is on the shared
filesystem) never ask past the budget: first an orphaned trial is taken back (RUNNING, and its worker's lock is
free: that worker was stopped by Ctrl-C, a signal, a crash or kill -9), and its run resumes from its last state
under the same trial number; else, while the budget lasts, a new trial is asked.
"""

from __future__ import annotations

import os
import socket
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from filelock import FileLock, Timeout

from bespoke.errors import ConfigError, RunError, UsageError, did_you_mean
from bespoke.fsutil import atomic_write_text
from bespoke.settings import Settings
from bespoke.tune.space import SearchSpace, parse_space

try:
    import optuna
    from optuna.storages.journal import JournalFileBackend, JournalFileOpenLock
except ImportError:  # the `tune` extra is not installed: optuna_module() says how to install it
    optuna = None  # type: ignore[assignment]

TUNES_DIR = "tunes"
JOURNAL = "journal.log"
SPACE_COPY = "space.toml"
WORKER = "worker"  # trial user attributes bespoke keeps
RUN_DIR = "run_dir"
COST = "cost_usd"
SECONDS = "seconds"
TAKEN_AT = "taken_at"  # when the worker running the trial took it (time.time())
_COUNTER = iter(range(1, 1 << 30))


def optuna_module() -> Any:
    """optuna, or a usage error saying how to install it."""
    if optuna is None:
        raise UsageError("bespoke tune needs Optuna: pip install 'bespoke[tune]' (or pip install optuna)")
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    return optuna


def tunes_root(settings: Settings) -> Path:
    return Path(settings.outputs_dir) / TUNES_DIR


def study_dir(settings: Settings, name: str) -> Path:
    return tunes_root(settings) / name


def storage_for(folder: Path, url: str | None) -> Any:
    """The study's storage: the journal file in its folder, or what `url` names."""
    optuna_module()
    if url and "://" in url:
        return optuna.storages.RDBStorage(url)
    path = Path(url).expanduser() if url else folder / JOURNAL
    path.parent.mkdir(parents=True, exist_ok=True)
    # the open(2)-based lock works on NFS too, where the symlink one may not
    return optuna.storages.JournalStorage(JournalFileBackend(str(path), JournalFileOpenLock(str(path))))


def sampler_for(space: SearchSpace, asked: int = 0) -> Any:
    """TPE, seeded with the space's seed plus the trials asked before: each trial draws from its own stream, so a
    re-run or another worker (a new process) never repeats the proposals of the first."""
    optuna_module()
    seed = space.seed + asked if space.seed is not None else None
    return optuna.samplers.TPESampler(seed=seed, n_startup_trials=space.random_trials)


def pruner_for(space: SearchSpace) -> Any:
    optuna_module()
    pruning = space.pruning
    if pruning.kind == "median":
        return optuna.pruners.MedianPruner(n_startup_trials=pruning.startup_trials,
                                           n_warmup_steps=pruning.warmup_epochs)
    if pruning.kind == "halving":
        return optuna.pruners.SuccessiveHalvingPruner()
    return optuna.pruners.NopPruner()


def keep_space(folder: Path, space: SearchSpace) -> None:
    """The study's space is the one it began with: a first run records it, a later one must match it."""
    copy = folder / SPACE_COPY
    if copy.is_file():
        if copy.read_text(encoding="utf-8") != space.text:
            raise ConfigError(f"{space.source}: differs from the space study {space.name!r} began with ({copy}); "
                              "give [study] name a new value to start a new study, or restore the file")
        return
    folder.mkdir(parents=True, exist_ok=True)
    atomic_write_text(copy, space.text)


@dataclass
class Study:
    """An open study: the Optuna study, its folder and space."""

    space: SearchSpace
    folder: Path
    optuna: Any  # optuna.Study

    @property
    def ask_lock(self) -> FileLock:
        return FileLock(str(self.folder / "ask.lock"), thread_local=False)


def open_study(settings: Settings, space: SearchSpace, storage: str | None = None) -> Study:
    """Create the study (or load it: `tune` again continues it)."""
    optuna_module()
    folder = study_dir(settings, space.name)
    keep_space(folder, space)
    study = optuna.create_study(study_name=space.name, storage=storage_for(folder, storage),
                                direction=space.direction,  # type: ignore[arg-type]
                                sampler=sampler_for(space), pruner=pruner_for(space),
                                load_if_exists=True)
    return Study(space, folder, study)


def load_study(settings: Settings, name: str, storage: str | None = None) -> Study:
    """An existing study by name (its space from its folder)."""
    folder = study_dir(settings, name)
    copy = folder / SPACE_COPY
    if not copy.is_file():
        known = sorted(p.name for p in tunes_root(settings).iterdir()) if tunes_root(settings).is_dir() else []
        raise RunError(f"{name}: no such study in {tunes_root(settings)}{did_you_mean(name, known)}")
    space = parse_space(copy.read_text(encoding="utf-8"), copy, folder.name)
    optuna_module()
    study = optuna.load_study(study_name=space.name, storage=storage_for(folder, storage),
                              sampler=sampler_for(space), pruner=pruner_for(space))
    return Study(space, folder, study)


_LIVE: set[str] = set()  # the tokens of this process's workers (a lock held here is not tested from here)
_LIVE_LOCK = threading.Lock()


class Worker:
    """One worker's identity and the lock it holds for its life (its trials are orphaned once it is free)."""

    def __init__(self, study: Study):
        self.token = f"{socket.gethostname()}-{os.getpid()}-{next(_COUNTER)}"
        (study.folder / "workers").mkdir(exist_ok=True)
        self.path = study.folder / "workers" / f"{self.token}.lock"
        self.lock = FileLock(str(self.path), thread_local=False)

    def __enter__(self) -> Worker:
        self.lock.acquire(timeout=0)
        return self

    def __exit__(self, *exc) -> None:
        with _LIVE_LOCK:
            _LIVE.discard(self.token)
        self.lock.release()
        self.path.unlink(missing_ok=True)


def worker_gone(folder: Path, token: str | None, mine: set[str]) -> bool:
    """The worker named `token` no longer holds its lock (or never recorded itself)."""
    if token in mine:
        return False
    if not token:
        return True
    lock = FileLock(str(folder / "workers" / f"{token}.lock"), thread_local=False)
    try:
        lock.acquire(timeout=0)
    except Timeout:
        return False
    lock.release()
    (folder / "workers" / f"{token}.lock").unlink(missing_ok=True)
    return True


def _used(space: SearchSpace, trials: list) -> tuple[float, float]:
    """(GPU-seconds, USD) the study has used: what each trial recorded when it last ended, plus, for a trial
    running now, the time since its worker took it (so N workers do not each spend the whole budget)."""
    now, price = time.time(), space.budget.gpu_price_per_hour or 0.0
    seconds = usd = 0.0
    for trial in trials:
        seconds += float(trial.user_attrs.get(SECONDS) or 0.0)
        usd += float(trial.user_attrs.get(COST) or 0.0)
        taken = trial.user_attrs.get(TAKEN_AT)
        if trial.state.name == "RUNNING" and taken is not None:
            running = max(now - float(taken), 0.0)
            seconds, usd = seconds + running, usd + running / 3600 * price
    return seconds, usd


def spent(space: SearchSpace, trials: list) -> str | None:
    """Why the budget is spent (None while it lasts), from the study's trials (running ones included)."""
    budget = space.budget
    if budget.trials is not None and len(trials) >= budget.trials:
        return f"{len(trials)} of {budget.trials} trials asked"
    seconds, usd = _used(space, trials)
    if budget.hours is not None and seconds / 3600 >= budget.hours:
        return f"{seconds / 3600:.2f} of {budget.hours} GPU-hours spent"
    if budget.usd is not None and usd >= budget.usd:
        return f"{usd:.2f} of {budget.usd:.2f} USD spent"
    return None


def remaining_usd(space: SearchSpace, trials: list) -> float | None:
    """What is left of a USD budget, running trials' time counted (the next trial stops before it would pass
    it)."""
    if space.budget.usd is None:
        return None
    return max(space.budget.usd - _used(space, trials)[1], 0.0)


def take_trial(study: Study, worker: Worker) -> tuple[Any, bool] | None:
    """(an Optuna trial, whether it was taken back from a stopped worker), or None once the budget is spent."""
    optuna_module()
    with study.ask_lock, _LIVE_LOCK:
        _LIVE.add(worker.token)
        trials = study.optuna.get_trials(deepcopy=False)
        for frozen in trials:
            if frozen.state == optuna.trial.TrialState.RUNNING and worker_gone(
                    study.folder, frozen.user_attrs.get(WORKER), _LIVE):
                trial = optuna.trial.Trial(study.optuna, frozen._trial_id)
                trial.set_user_attr(WORKER, worker.token)
                trial.set_user_attr(TAKEN_AT, time.time())
                return trial, True
        if spent(study.space, trials) is not None:
            return None
        study.optuna.sampler = sampler_for(study.space, len(trials))
        trial = study.optuna.ask({p.key: p.distribution() for p in study.space.params})
        trial.set_user_attr(WORKER, worker.token)
        trial.set_user_attr(TAKEN_AT, time.time())
        return trial, False

