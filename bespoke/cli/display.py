"""How long work and messages look on the terminal: the rich side of `bespoke.progress`.

On a terminal every open task is a line of one shared rich progress display (transient: gone when the work
is); in a pipe or a file tasks are silent (a log should not fill with redrawn bars) and messages are plain
lines. `--quiet` installs the silent display. Commands get this through `quiet_option` or, without a --quiet
flag, from the group (cli/common.py), so library code never decides how it is shown.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import click

from bespoke import progress

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


def quiet_option(func: Callable[..., Any]) -> Callable[..., Any]:
    """`-q/--quiet` for a command, with the display it asks for installed while the command runs."""

    @click.option("-q", "--quiet", is_flag=True, help="Print only the result (no progress, no messages).")
    @functools.wraps(func)
    def wrapper(*args: Any, quiet: bool, **kwargs: Any) -> Any:
        with progress.use_display(display_for(quiet)):
            return func(*args, quiet=quiet, **kwargs)

    return wrapper
