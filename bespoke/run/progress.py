"""Trainer events -> the live state of a run -> what the terminal shows.

`RunProgress` keeps the state of one run (thread-safe), fed with trainer lines parsed by
`bespoke.kohya.output.parse_line`; `ProgressView` shows it as a rich live bar, as plain log lines when the
console is not a terminal, or not at all (--quiet). `ModelWatcher` notices new checkpoints and samples.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from pathlib import Path

from rich.progress import BarColumn, Progress, TaskID, TextColumn

from bespoke.kohya.naming import parse_sample_name
from bespoke.kohya.output import (
    EpochStarted,
    Event,
    NoData,
    StepProgress,
    TrainingInfo,
    parse_line,
)


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
        self.events: deque = deque()  # for the view: events not shown yet
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
                self.events.append(event)
            elif isinstance(event, TrainingInfo):
                self.total_steps = event.total_steps or self.total_steps
                self.total_epochs = event.num_epochs or self.total_epochs
            elif isinstance(event, NoData):
                self.no_data = event.line
                self.events.append(event)
            else:
                self.events.append(event)
        return event

    def take_events(self) -> list:
        with self.lock:
            out = list(self.events)
            self.events.clear()
            return out

    def take_epoch_changed(self) -> bool:
        with self.lock:
            changed, self.epoch_changed = self.epoch_changed, False
            return changed

    def snapshot(self) -> dict:
        with self.lock:
            return {
                "run_id": self.run_id, "label": self.label, "status": self.status, "epoch": self.epoch,
                "total_epochs": self.total_epochs, "step": self.step, "total_steps": self.total_steps,
                "loss": self.loss, "remaining": self.remaining, "elapsed": time.monotonic() - self.started,
            }


class ModelWatcher:
    """Reports checkpoints and sample images that appeared in model/ since the last look."""

    def __init__(self, model_dir: Path):
        self.model_dir = Path(model_dir)
        self.seen = self._scan()

    def _scan(self) -> set[Path]:
        if not self.model_dir.is_dir():
            return set()
        found = {p for p in self.model_dir.glob("*.safetensors")}
        sample_dir = self.model_dir / "sample"
        if sample_dir.is_dir():
            found |= {p for p in sample_dir.glob("*.png")}
        return found

    def poll(self) -> tuple[list[Path], list[Path]]:
        """(new checkpoints, new samples), each sorted by name."""
        now = self._scan()
        new = now - self.seen
        self.seen = now
        return (sorted(p for p in new if p.suffix == ".safetensors"), sorted(p for p in new if p.suffix == ".png"))


def _fmt_time(seconds: float | None) -> str:
    if seconds is None:
        return "?"
    seconds = int(seconds)
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}" if seconds >= 3600 else \
        f"{seconds // 60:02d}:{seconds % 60:02d}"


def describe_samples(samples: list[Path]) -> str:
    """'4 samples (epoch 1)' for a batch of new sample files."""
    epochs = sorted({info.epoch for p in samples if (info := parse_sample_name(p)).epoch is not None})
    which = f" (epoch {', '.join(str(e) for e in epochs)})" if epochs else ""
    return f"{len(samples)} new sample{'s' if len(samples) != 1 else ''}{which}"


class ProgressView:
    """Shows one run: mode 'live' (rich bar), 'plain' (log lines for non-TTY), or 'quiet'."""

    def __init__(self, console, mode: str | None = None, quiet: bool = False):
        self.console = console
        self.mode = "quiet" if quiet else (mode or ("live" if console.is_terminal else "plain"))
        self.progress: Progress | None = None
        self.task: TaskID | None = None
        self.last_plain = 0.0

    @classmethod
    def for_console(cls, console, quiet: bool = False) -> ProgressView:
        return cls(console, quiet=quiet)

    def start(self, state: RunProgress) -> None:
        self.state = state
        if self.mode == "live":
            self.progress = Progress(
                TextColumn("[bold]{task.description}"), BarColumn(),
                TextColumn("step {task.fields[steps]}"), TextColumn("loss {task.fields[loss]}"),
                TextColumn("ETA {task.fields[eta]}"), console=self.console, transient=True,
            )
            self.progress.start()
            self.task = self.progress.add_task(f"{state.run_id} starting", total=None, loss="-", eta="?",
                                               steps="?")

    def message(self, text: str) -> None:
        """A line above the bar (or a plain line)."""
        if self.mode == "quiet":
            return
        if self.progress is not None:
            self.progress.console.print(text)
        else:
            self.console.print(text)

    def refresh(self, new_checkpoints=(), new_samples=()) -> None:
        """Called from the waiting thread: show new events and the current state."""
        if self.mode == "quiet":
            self.state.take_events()
            return
        snap = self.state.snapshot()
        for event in self.state.take_events():
            if isinstance(event, EpochStarted) and self.mode == "plain":
                self.console.print(f"{snap['run_id']}: epoch {event.epoch}/{event.total}")
            elif isinstance(event, NoData):
                self.message(f"[yellow]{snap['run_id']}: trainer says: {event.line}")
        for path in new_checkpoints:
            self.message(f"{snap['run_id']}: checkpoint {path.name}")
        if new_samples:
            self.message(f"{snap['run_id']}: {describe_samples(list(new_samples))}")
        loss = f"{snap['loss']:.4f}" if snap["loss"] is not None else "-"
        if self.progress is not None:
            assert self.task is not None  # start() adds the task right after creating the bar
            epochs = f"epoch {snap['epoch']}/{snap['total_epochs'] or '?'}"
            self.progress.update(self.task, description=f"{snap['run_id']} {epochs}", completed=snap["step"],
                                 total=snap["total_steps"], loss=loss, eta=_fmt_time(snap["remaining"]),
                                 steps=f"{snap['step']}/{snap['total_steps'] or '?'}")
        elif self.mode == "plain" and snap["total_steps"] and time.monotonic() - self.last_plain >= 10:
            self.last_plain = time.monotonic()
            self.console.print(f"{snap['run_id']}: step {snap['step']}/{snap['total_steps']} loss {loss} "
                               f"eta {_fmt_time(snap['remaining'])}")

    def stop(self) -> None:
        if self.progress is not None:
            self.progress.stop()
            self.progress = None


