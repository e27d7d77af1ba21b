"""A worker of a study: take a trial (an orphaned one first, else a new one while the budget lasts), run it, and
again, until the budget is spent or it is stopped. `tune_here` runs one worker, or one per GPU (`--gpus`), on
this machine; each Slurm task of `tune --slurm` runs one (`bespoke tune SPACE --worker`).

Ctrl-C (SIGTERM, SIGHUP) stops the trial's trainer at once and leaves the trial RUNNING, its run interrupted;
the worker ends and its lock is released, so `tune` again takes that trial back first and resumes its run.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field, replace
from pathlib import Path

from bespoke.run.events import Message, Observer, Serialized
from bespoke.run.paths import resolve_dataset
from bespoke.run.sweep import join_or_stop
from bespoke.run.sweep_file import parse_gpus
from bespoke.settings import Settings
from bespoke.tune.space import SearchSpace
from bespoke.tune.study import Study, Worker, open_study, spent, take_trial
from bespoke.tune.trial import TrialEnd, TrialSetup, check_space, run_trial


@dataclass
class TuneOutcome:
    """What this machine's workers did: each trial's end, whether they were stopped, why they ended."""

    study: Study
    ends: list[TrialEnd] = field(default_factory=list)
    signum: int | None = None
    interrupted: bool = False
    ended: str | None = None  # why the budget is spent


def work(setup: TrialSetup, observer: Observer, outcome: TuneOutcome) -> None:
    """One worker: trials until the budget is spent or the worker is stopped."""
    study = setup.study
    with Worker(study) as worker:
        while not (setup.stop is not None and setup.stop.is_set()):
            taken = take_trial(study, worker)
            if taken is None:
                break
            trial, resumed = taken
            where = f" on gpu {setup.gpu}" if setup.gpu is not None else ""
            observer(Message(f"trial-{trial.number}", f"{study.space.name}: trial {trial.number}"
                             f"{' (taken back: its worker stopped)' if resumed else ''}{where}: "
                             + ", ".join(f"{k}={v}" for k, v in trial.params.items())))
            end = run_trial(setup, trial, observer)
            outcome.ends.append(end)
            observer(Message(f"trial-{trial.number}", f"trial {trial.number}: {end.state}"
                             + (f" ({end.reason})" if end.reason else "")))
            if end.state == "RUNNING":  # stopped by a signal: the trial waits for the next worker
                outcome.interrupted = True
                outcome.signum = outcome.signum or end.signum or None
                break


def prepare(settings: Settings, space: SearchSpace, storage: str | None) -> tuple[Study, Path]:
    """The checks made before any trial: the checkout, the dataset, every corner of the space; then the study."""
    settings.sd_script("train_network.py")
    dataset = resolve_dataset(space.dataset, settings.datasets_dir)
    check_space(settings, space, dataset)
    return open_study(settings, space, storage), dataset


def tune_here(settings: Settings, space: SearchSpace, *, storage: str | None = None, gpus: str | None = None,
              preflight: bool = True, observer: Observer) -> TuneOutcome:
    """`bespoke tune SPACE [--gpus 0,1]`: this machine's workers on the study (see the module docstring)."""
    gpu_ids = parse_gpus(gpus)
    study, dataset = prepare(settings, space, storage)
    outcome = TuneOutcome(study)
    setup = TrialSetup(settings, study, dataset, preflight=preflight)
    if not gpu_ids:
        work(setup, observer, outcome)
    else:
        _parallel(setup, gpu_ids, Serialized(observer), outcome)
    outcome.ended = spent(space, study.optuna.get_trials(deepcopy=False))
    return outcome


def _parallel(setup: TrialSetup, gpu_ids: tuple[str, ...], observer: Observer, outcome: TuneOutcome) -> None:
    """One worker thread per GPU; Ctrl-C (SIGTERM, SIGHUP) stops them all (their trials left to take back)."""
    stop = threading.Event()
    threads = [threading.Thread(target=work, args=(replace(setup, gpu=gpu, stop=stop), observer, outcome),
                                daemon=True, name=f"tune-gpu{gpu}") for gpu in gpu_ids]
    if join_or_stop(threads, stop):
        outcome.interrupted = True
