"""The one way training tells the rest what happens: typed events to one observer.

`train_run` (and a sweep, for each of its runs) emits these to the `Observer` it was given: the terminal's live
view, a sweep's live table, the command's messages, the run lock (which trainer pid to wait for), and whatever
chains stages above `run/` (scoring an epoch as it lands) are all observers. Every event of a run is delivered on its
supervising thread, in order (a sweep on several GPUs wraps its observer in `Serialized`), so an observer needs
no lock of its own for what it keeps; an observer that
raises is dropped for the rest of the run with a warning (a display bug never stops a paid training run).

An epoch is `EpochFinished` once its checkpoint is whole and its samples are on disk (every prompt drawn, or
the next epoch began, or the trainer ended); `StateSaved` when a `*-state` folder is whole (the trainer wrote
its last file, `random_states_0.pkl`), the point a resume can start from. `EpochMeasured` follows each
EpochFinished with what run.json now records of the epoch (time, cost, training and validation loss) and
`EpochScored` comes when live scoring has judged it (bespoke.run.judge), both after run.json says so.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from bespoke import progress

if TYPE_CHECKING:  # only for annotations: train.py and sweep.py import this module, and a --help loads it
    from bespoke.run.manifest import EpochRecord
    from bespoke.run.sweep import SweepRow
    from bespoke.run.train import TrainResult


@dataclass(frozen=True)
class Snapshot:
    """The live state of one run (bespoke.run.progress.RunProgress.snapshot)."""

    run_id: str
    status: str  # starting | preflight | training | a run.json status at the end
    epoch: int = 0  # the epoch in progress (1-based; 0 before the first)
    total_epochs: int | None = None
    step: int = 0
    total_steps: int | None = None
    loss: float | None = None
    remaining: float | None = None  # seconds, the trainer's own estimate
    elapsed: float = 0.0
    label: str = ""  # where it runs in a sweep ("gpu 0") or "queued"


@dataclass(frozen=True)
class Started:
    """The trainer was spawned (pid of the launcher); `resumed_from` names the state folder it continues."""

    run_id: str
    run_dir: Path
    pid: int
    attempt: int
    total_epochs: int | None
    resumed_from: str | None = None


@dataclass(frozen=True)
class Message:
    """Something bespoke tells the user about this run ("config/x was edited by hand", "old log kept in …")."""

    run_id: str
    text: str
    level: str = "info"  # info | warning


@dataclass(frozen=True)
class Progress:
    """Emitted every supervision tick (4 a second) with the run's live state."""

    snapshot: Snapshot

    @property
    def run_id(self) -> str:
        return self.snapshot.run_id


@dataclass(frozen=True)
class TrainerSaid:
    """A line of the trainer's that the user should see now (an epoch began, "No data found")."""

    run_id: str
    text: str
    level: str = "info"


@dataclass(frozen=True)
class CheckpointWritten:
    """A LoRA file is whole on disk (`epoch` from its name or metadata; None when unknown)."""

    run_id: str
    path: Path
    epoch: int | None


@dataclass(frozen=True)
class SamplesWritten:
    """New sample images appeared (sorted by name)."""

    run_id: str
    paths: tuple[Path, ...]


@dataclass(frozen=True)
class EpochFinished:
    """Epoch `epoch` is complete: its checkpoint whole and its samples drawn (see the module docstring)."""

    run_id: str
    run_dir: Path
    epoch: int
    total_epochs: int | None
    checkpoint: Path | None
    samples: tuple[Path, ...] = ()
    missing_samples: int = 0  # prompts this epoch should have drawn and did not


@dataclass(frozen=True)
class EpochMeasured:
    """Epoch `record.epoch` is recorded in run.json: its time, cost, training and validation loss."""

    run_id: str
    record: EpochRecord  # a copy: the observer may keep it


@dataclass(frozen=True)
class EpochScored:
    """Live scoring judged an epoch (recorded in run.json): its score and interval, and the best epoch so far."""

    run_id: str
    epoch: int
    score: float | None
    low: float | None = None
    high: float | None = None
    best_epoch: int | None = None
    best_score: float | None = None
    error: str | None = None  # why the epoch has no score


@dataclass(frozen=True)
class StateSaved:
    """A whole `*-state` folder: a resume can start after `epoch`."""

    run_id: str
    epoch: int | None
    path: Path


@dataclass(frozen=True)
class Stopping:
    """bespoke is stopping the trainer (`reason` says why: a signal's name, "stop requested", …)."""

    run_id: str
    reason: str


@dataclass(frozen=True)
class Finished:
    """The attempt is over and run.json says how (`result.status`); the last event of a run."""

    run_id: str
    result: TrainResult


@dataclass(frozen=True)
class SweepPlanned:
    """A sweep planned its runs; `run_ids` are the ones this machine runs (its shard), in order."""

    run_ids: tuple[str, ...]
    shard: tuple[int, int] | None = None
    planned: int = 0  # runs in the whole sweep (all shards)


@dataclass(frozen=True)
class RunDone:
    """One run of a sweep is over (trained, skipped, failed, or refused with an error): its table row."""

    row: SweepRow

    @property
    def run_id(self) -> str:
        return self.row.run_id


TrainEvent = (Started | Message | Progress | TrainerSaid | CheckpointWritten | SamplesWritten | EpochFinished
              | EpochMeasured | EpochScored | StateSaved | Stopping | Finished | SweepPlanned | RunDone)
Observer = Callable[[TrainEvent], None]


def ignore(event: TrainEvent) -> None:
    """The observer that wants nothing."""


@dataclass
class Broadcast:
    """One observer made of several: each gets every event, in order; one that raises is dropped (once, with a
    warning through bespoke.progress.say) and the others go on."""

    observers: list[Observer] = field(default_factory=list)

    @classmethod
    def of(cls, observers: Iterable[Observer | None]) -> Broadcast:
        return cls([o for o in observers if o is not None])

    def __call__(self, event: TrainEvent) -> None:
        for observer in list(self.observers):
            try:
                observer(event)
            except Exception as error:  # noqa: BLE001 - see the class docstring
                self.observers.remove(observer)
                progress.say(f"{getattr(event, 'run_id', 'sweep')}: a display of this run failed and is off for the rest "
                             f"of it ({type(error).__name__}: {error})", "warning")


class Serialized:
    """An observer called from several threads (a sweep's GPU workers), one event at a time."""

    def __init__(self, observer: Observer):
        self.observer = observer
        self.lock = threading.Lock()

    def __call__(self, event: TrainEvent) -> None:
        with self.lock:
            self.observer(event)
