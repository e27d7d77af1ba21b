"""Trainer output and the model folder -> the live state of a run and the events it makes.

`RunProgress` keeps the live state of one run (thread-safe: reader threads feed it lines parsed by
`bespoke.kohya.output.parse_line`); `ModelWatcher` notices new checkpoints, sample images and whole state
folders in model/; `EpochTracker` decides when an epoch is complete (bespoke.run.events.EpochFinished). How any
of it is shown is the observers' business (bespoke.cli.display).
"""

from __future__ import annotations

import json
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path

from bespoke.kohya.checkpoints import STATE_LAST_FILE, Checkpoint
from bespoke.kohya.naming import STATE_SUFFIX, parse_sample_name
from bespoke.kohya.output import EpochStarted, Event, NoData, StepProgress, TrainingInfo, parse_line
from bespoke.run.events import Snapshot


class RunProgress:
    """The live state of one run, fed by trainer lines from reader threads."""

    def __init__(self, run_id: str, total_epochs: int | None = None, label: str = ""):
        self.run_id = run_id
        self.label = label
        self.lock = threading.Lock()
        self.epoch = 0
        self.total_epochs = total_epochs
        self.step = 0
        self.total_steps: int | None = None
        self.loss: float | None = None
        self.remaining: float | None = None
        self.no_data: str | None = None
        self.status = "starting"
        self.started = time.monotonic()
        self.said: deque[Event] = deque()  # epoch starts and "No data found", not yet told to the observer
        self.epoch_changed = False

    def feed(self, stream: str, line: str) -> Event | None:
        """Parse one line and update the state; returns the event (or None)."""
        event = parse_line(line)
        if event is None:
            return None
        with self.lock:
            if isinstance(event, StepProgress):
                self.step, self.total_steps, self.remaining = event.step, event.total, event.remaining
                if event.loss is not None:
                    self.loss = event.loss
                self.status = "training"
            elif isinstance(event, EpochStarted):
                self.epoch, self.total_epochs = event.epoch, event.total
                self.epoch_changed = True
                self.said.append(event)
            elif isinstance(event, TrainingInfo):
                self.total_steps = event.total_steps or self.total_steps
                self.total_epochs = event.num_epochs or self.total_epochs
            elif isinstance(event, NoData):
                self.no_data = event.line
                self.said.append(event)
        return event

    def take_said(self) -> list[Event]:
        with self.lock:
            out = list(self.said)
            self.said.clear()
            return out

    def take_epoch_changed(self) -> bool:
        with self.lock:
            changed, self.epoch_changed = self.epoch_changed, False
            return changed

    def snapshot(self) -> Snapshot:
        with self.lock:
            return Snapshot(run_id=self.run_id, status=self.status, epoch=self.epoch, total_epochs=self.total_epochs,
                            step=self.step, total_steps=self.total_steps, loss=self.loss, remaining=self.remaining,
                            elapsed=time.monotonic() - self.started, label=self.label)


@dataclass
class ModelChanges:
    """What appeared in model/ since the last look, each sorted by name."""

    checkpoints: list[Path] = field(default_factory=list)
    samples: list[Path] = field(default_factory=list)
    states: list[Path] = field(default_factory=list)  # whole *-state folders (their last file is written)


class ModelWatcher:
    """Reports checkpoints, sample images and whole state folders that appeared in model/ since the last look."""

    def __init__(self, model_dir: Path):
        self.model_dir = Path(model_dir)
        self.seen = self._scan()

    def _scan(self) -> set[Path]:
        if not self.model_dir.is_dir():
            return set()
        found = set(self.model_dir.glob("*.safetensors"))
        found |= {p.parent for p in self.model_dir.glob(f"*{STATE_SUFFIX}/{STATE_LAST_FILE}")}
        sample_dir = self.model_dir / "sample"
        if sample_dir.is_dir():
            found |= set(sample_dir.glob("*.png"))
        return found

    def poll(self) -> ModelChanges:
        now = self._scan()
        new = sorted(now - self.seen)
        self.seen = now
        return ModelChanges(checkpoints=[p for p in new if p.suffix == ".safetensors"],
                            samples=[p for p in new if p.suffix == ".png"],
                            states=[p for p in new if p.name.endswith(STATE_SUFFIX)])


def state_epoch(state_dir: Path) -> int | None:
    """The epoch a whole `*-state` folder was saved after (its train_state.json), or None."""
    try:
        return int(json.loads((Path(state_dir) / "train_state.json").read_text(encoding="utf-8"))["current_epoch"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


class EpochTracker:
    """Decides when an epoch is complete: its checkpoint is whole and its samples are drawn — every prompt
    (`expected` per epoch), or the trainer went on to the next epoch, or it ended. sd-scripts saves an epoch's
    checkpoint before that epoch's samples, except the last epoch's (its samples come first, the final file
    after the loop), so either order counts."""

    def __init__(self, expected: int, done: set[int] | None = None):
        self.expected = expected
        self.done = set(done or ())  # epochs already told (a resumed run's earlier epochs)
        self.checkpoints: dict[int, Checkpoint] = {}
        self.samples: dict[int, list[Path]] = {}

    def add_samples(self, paths: list[Path]) -> None:
        for path in paths:
            epoch = parse_sample_name(path).epoch
            if epoch is not None and epoch >= 1:
                self.samples.setdefault(epoch, []).append(path)

    def add_checkpoints(self, checkpoints: list[Checkpoint]) -> None:
        for checkpoint in checkpoints:
            if checkpoint.epoch is not None:
                self.checkpoints.setdefault(checkpoint.epoch, checkpoint)

    def complete(self, epoch_in_progress: int, ended: bool) -> list[tuple[int, Checkpoint, list[Path]]]:
        """(epoch, checkpoint, samples) of each epoch that is now complete and was not told yet, in order."""
        out = []
        for epoch in sorted(self.checkpoints):
            if epoch in self.done:
                continue
            samples = sorted(self.samples.get(epoch, []))
            if len(samples) >= self.expected or ended or epoch_in_progress > epoch:
                self.done.add(epoch)
                out.append((epoch, self.checkpoints[epoch], samples))
        return out
