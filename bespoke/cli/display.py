"""How long work and messages look on the terminal: the rich side of `bespoke.progress`.

On a terminal every open task is a line of one shared rich progress display (transient: gone when the work
is); in a pipe or a file tasks are silent (a log should not fill with redrawn bars) and messages are plain
lines. `--quiet` installs the silent display. Commands get this through `quiet_option` or, without a --quiet
flag, from the group (cli/common.py), so library code never decides how it is shown.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING

from bespoke import progress
from bespoke.run import events

if TYPE_CHECKING:  # rich loads when something is shown, not for a command's --help
    from rich.console import Console
    from rich.progress import Progress, TaskID


class _RichTask:
    def __init__(self, bar: Progress, task_id: TaskID):
        self.bar, self.task_id = bar, task_id

    def advance(self, n: int = 1) -> None:
        self.bar.advance(self.task_id, n)

    def describe(self, text: str) -> None:
        self.bar.update(self.task_id, description=text)


class ConsoleDisplay:
    """bespoke.progress.Display on a rich Console (stderr: bespoke.console's, made on first use, unless given)."""

    def __init__(self, console: Console | None = None):
        self._console = console
        self._lock = threading.Lock()
        self._bar: Progress | None = None
        self._open = 0

    @property
    def console(self) -> Console:
        if self._console is None:
            from bespoke.console import console

            self._console = console
        return self._console

    def open(self, description: str, total: int | None) -> progress.Task:
        if not self.console.is_terminal:
            return progress.SILENT.open(description, total)
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

        with self._lock:
            if self._bar is None:
                self._bar = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                                     TimeRemainingColumn(), console=self.console, transient=True)
                self._bar.start()
            self._open += 1
            return _RichTask(self._bar, self._bar.add_task(description, total=total))

    def close(self, task: progress.Task) -> None:
        if not isinstance(task, _RichTask):
            return
        with self._lock:
            task.bar.remove_task(task.task_id)
            self._open -= 1
            if self._open == 0 and self._bar is not None:
                self._bar.stop()
                self._bar = None

    def say(self, text: str, level: str = "info") -> None:
        style = "yellow" if level == "warning" else None
        target = self._bar.console if self._bar is not None else self.console
        target.print(text, style=style, markup=False, highlight=False)


def display_for(quiet: bool) -> progress.Display:
    """The display of one invocation: silent with --quiet, else the stderr console's."""
    return progress.SILENT if quiet else ConsoleDisplay()


def _clock(seconds: float | None) -> str:
    if seconds is None:
        return "?"
    seconds = int(seconds)
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}" if seconds >= 3600 else \
        f"{seconds // 60:02d}:{seconds % 60:02d}"


def describe_samples(samples: tuple[Path, ...]) -> str:
    """'4 new samples (epoch 1)' for a batch of new sample files."""
    from bespoke.kohya.naming import parse_sample_name

    epochs = sorted({info.epoch for p in samples if (info := parse_sample_name(p)).epoch is not None})
    which = f" (epoch {', '.join(str(e) for e in epochs)})" if epochs else ""
    return f"{len(samples)} new sample{'s' if len(samples) != 1 else ''}{which}"


def describe_epoch(record) -> str:
    """'epoch 3: 41 s, $0.05, loss 0.1234, val loss 0.1301' for an EpochMeasured record."""
    from bespoke.run.cost import usd

    parts = [f"{record.seconds:.0f} s" if record.seconds is not None else None,
             usd(record.cost_usd) if record.cost_usd is not None else None,
             f"loss {record.train_loss:.4f}" if record.train_loss is not None else None,
             f"val loss {record.validation_loss:.4f}" if record.validation_loss is not None else None,
             f"{record.missing_samples} sample(s) missing" if record.missing_samples else None]
    return f"epoch {record.epoch}: " + ", ".join(p for p in parts if p)


def describe_score(event: events.EpochScored) -> str:
    """'epoch 3 score 0.612 (0.580-0.640); best so far: epoch 3' for an EpochScored event."""
    if event.score is None:
        return f"epoch {event.epoch}: not scored ({event.error or 'no samples'})"
    interval = f" ({event.low:.3f}-{event.high:.3f})" if event.low is not None and event.high is not None else ""
    best = f"; best so far: epoch {event.best_epoch}" if event.best_epoch is not None else ""
    return f"epoch {event.epoch} score {event.score:.3f}{interval}{best}"


class TrainView:
    """The observer that shows training on the terminal: a live bar per run (rich) with bespoke's messages above
    it; in a pipe or a Slurm log, plain lines, each only when what it says changed (a step line at most every
    `plain_every` seconds); with --quiet, nothing. Runs of a sequential sweep come one after another."""

    def __init__(self, console: Console, quiet: bool = False, plain_every: float = 10.0):
        self.console, self.quiet, self.plain_every = console, quiet, plain_every
        self.live = console.is_terminal and not quiet
        self.bar: Progress | None = None
        self.task: TaskID | None = None
        self.last_line: dict[str, str] = {}
        self.last_time: dict[str, float] = {}

    def __call__(self, event: events.TrainEvent) -> None:
        if self.quiet:
            return
        if isinstance(event, events.Started) and self.live:
            self._start(event.run_id)
        elif isinstance(event, events.Progress):
            self._progress(event.snapshot)
        elif isinstance(event, events.Message | events.TrainerSaid):
            if self.live and isinstance(event, events.TrainerSaid) and event.level == "info":
                return  # the bar shows the epoch
            self.say(event.text, event.level)
        elif isinstance(event, events.CheckpointWritten):
            self.say(f"{event.run_id}: checkpoint {event.path.name}")
        elif isinstance(event, events.SamplesWritten):
            self.say(f"{event.run_id}: {describe_samples(event.paths)}")
        elif isinstance(event, events.EpochMeasured):
            self.say(f"{event.run_id}: {describe_epoch(event.record)}")
        elif isinstance(event, events.EpochScored):
            self.say(f"{event.run_id}: {describe_score(event)}", "info" if event.score is not None else "warning")
        elif isinstance(event, events.Stopping):
            self.say(f"{event.run_id}: stopping the trainer ({event.reason})", "warning")
        elif isinstance(event, events.Finished):
            self._stop()

    def say(self, text: str, level: str = "info") -> None:
        target = self.bar.console if self.bar is not None else self.console
        target.print(text, style="yellow" if level == "warning" else None, markup=False, highlight=False)

    def _start(self, run_id: str) -> None:
        from rich.progress import BarColumn, Progress, TextColumn

        self._stop()
        self.bar = Progress(TextColumn("[bold]{task.description}"), BarColumn(), TextColumn("step {task.fields[steps]}"),
                            TextColumn("loss {task.fields[loss]}"), TextColumn("ETA {task.fields[eta]}"),
                            console=self.console, transient=True)
        self.bar.start()
        self.task = self.bar.add_task(f"{run_id} starting", total=None, loss="-", eta="?", steps="?")

    def _stop(self) -> None:
        if self.bar is not None:
            self.bar.stop()
            self.bar, self.task = None, None

    def _progress(self, snap: events.Snapshot) -> None:
        loss = f"{snap.loss:.4f}" if snap.loss is not None else "-"
        if self.bar is not None and self.task is not None:
            self.bar.update(self.task, description=f"{snap.run_id} epoch {snap.epoch}/{snap.total_epochs or '?'}",
                            completed=snap.step, total=snap.total_steps, loss=loss, eta=_clock(snap.remaining),
                            steps=f"{snap.step}/{snap.total_steps or '?'}")
            return
        if self.live or not snap.total_steps:
            return
        line = f"{snap.run_id}: step {snap.step}/{snap.total_steps} loss {loss}"
        now = time.monotonic()
        if line != self.last_line.get(snap.run_id) and now - self.last_time.get(snap.run_id, 0.0) >= self.plain_every:
            self.last_line[snap.run_id], self.last_time[snap.run_id] = line, now
            self.console.print(f"{line} eta {_clock(snap.remaining)}", markup=False, highlight=False)
