"""Long work says how far it is; whoever runs bespoke decides how that looks.

Library code (prepare, process, generate, the simulator) opens a `task` and advances it; it never imports rich
and never takes a "show progress?" flag. The command line installs a display once (`use_display`, in
`bespoke.cli.display`: a rich bar on a terminal, a line when the text changes in a pipe, nothing with --quiet);
without one (library use, tests, worker processes) every task is silent. Messages for the user go through
`say` the same way (`logging` would also do, but bespoke's messages are part of its output, on stderr, with the
display's own formatting, and tests read them).

One display for the whole process, swapped under a lock: threads (a sweep's workers) may open tasks at once.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Protocol


class Task(Protocol):
    """One piece of long work: `advance` as items finish; `describe` when what is being done changes."""

    def advance(self, n: int = 1) -> None: ...

    def describe(self, text: str) -> None: ...


class Display(Protocol):
    """How tasks and messages are shown (bespoke.cli.display implements it with rich)."""

    def open(self, description: str, total: int | None) -> Task: ...

    def close(self, task: Task) -> None: ...

    def say(self, text: str, level: str = "info") -> None: ...


class _SilentTask:
    def advance(self, n: int = 1) -> None:
        pass

    def describe(self, text: str) -> None:
        pass


class _Silent:
    """No display: tasks count nothing, messages go nowhere."""

    def open(self, description: str, total: int | None) -> Task:
        return _SilentTask()

    def close(self, task: Task) -> None:
        pass

    def say(self, text: str, level: str = "info") -> None:
        pass


SILENT: Display = _Silent()
_lock = threading.Lock()
_display: Display = SILENT


def current() -> Display:
    """The display installed now (SILENT when none)."""
    return _display


@contextmanager
def use_display(display: Display) -> Iterator[Display]:
    """Install `display` for the duration of the block (the previous one comes back after it)."""
    global _display
    with _lock:
        previous, _display = _display, display
    try:
        yield display
    finally:
        with _lock:
            _display = previous


@contextmanager
def task(description: str, total: int | None = None) -> Iterator[Task]:
    """A task shown by the installed display while the block runs; closed on every path out of it."""
    display = _display
    handle = display.open(description, total)
    try:
        yield handle
    finally:
        display.close(handle)


def say(text: str, level: str = "info") -> None:
    """A message for the user (level "info" or "warning"); a display that fails (a hung-up terminal) is dropped,
    never the work."""
    try:
        _display.say(text, level)
    except OSError:
        _drop_display()


def _drop_display() -> None:
    global _display
    with _lock:
        _display = SILENT

