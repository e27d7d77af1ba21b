"""A process and every process it started, stopped as one: graceful first, forced after a stated grace period.

Through psutil, so it works the same on Linux, macOS and Windows. Descendants are remembered as they are seen
(`refresh` is called while the trainer runs), and the trainer is started with a token in its environment
(`TOKEN_VARIABLE`), which every process it starts inherits: before stopping, every process carrying the token
is found too, so a grandchild whose parent already died — re-parented away from the tree before any refresh
saw it — is still stopped. psutil identifies a process by pid *and* start time, so a recycled pid is never
signalled.
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable

import psutil

# SIGINT lets a Python trainer unwind (KeyboardInterrupt) like a Ctrl-C in its terminal; on Windows the trainer
# runs in its own process group and gets CTRL_BREAK_EVENT, the one console event that can target a group.
GRACEFUL = signal.SIGINT if os.name == "posix" else getattr(signal, "CTRL_BREAK_EVENT", signal.SIGTERM)
SIGNAL_NAMES = {"graceful": getattr(GRACEFUL, "name", str(GRACEFUL)), "terminate": "SIGTERM", "kill": "SIGKILL"}
# (graceful signal -> wait, terminate -> wait, then kill): the stated grace period, 15 s in all
DEFAULT_GRACE = (10.0, 5.0)
TOKEN_VARIABLE = "BESPOKE_TREE_TOKEN"


def process_alive(pid: int | None, started: float | None = None) -> bool:
    """True when `pid` runs (not a zombie) and, if `started` is given, is the process that started then."""
    if not pid:
        return False
    try:
        process = psutil.Process(int(pid))
        if started is not None and abs(process.create_time() - float(started)) > 1.0:
            return False  # the pid was recycled
        return process.status() != psutil.STATUS_ZOMBIE
    except (psutil.NoSuchProcess, psutil.AccessDenied, ValueError):
        return False


def start_time(pid: int) -> float | None:
    """The start time psutil reports for `pid` (with the pid, it names one process for good)."""
    try:
        return psutil.Process(pid).create_time()
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return None


class ProcessTree:
    """A root process and every descendant seen so far."""

    def __init__(self, pid: int, token: str | None = None):
        self.pid = pid
        self.token = token
        self.known: dict[int, psutil.Process] = {}
        try:
            self.known[pid] = psutil.Process(pid)
        except psutil.NoSuchProcess:
            pass
        self.refresh()

    def refresh(self) -> None:
        """Remember the descendants running now (called every tick while the trainer runs)."""
        for process in list(self.known.values()):
            try:
                for child in process.children(recursive=True):
                    self.known.setdefault(child.pid, child)
            except (psutil.NoSuchProcess, psutil.AccessDenied):
                continue

    def find_token(self) -> None:
        """Remember every process whose environment carries this tree's token (one scan of the process table:
        done before a stop, not every tick)."""
        if not self.token:
            return
        for process in psutil.process_iter():
            if process.pid in self.known:
                continue
            try:
                if process.environ().get(TOKEN_VARIABLE) == self.token:
                    self.known[process.pid] = process
            except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess, OSError):
                continue

    def alive(self) -> list[psutil.Process]:
        """The processes of the tree still running (zombies and recycled pids excluded)."""
        out = []
        for process in self.known.values():
            try:
                if process.is_running() and process.status() != psutil.STATUS_ZOMBIE:
                    out.append(process)
            except (psutil.NoSuchProcess, psutil.AccessDenied):
                continue
        return out

    def trainers(self) -> list[psutil.Process]:
        """The processes a stop is for: the root's children (the launcher's: the trainer, or each rank's worker
        under torchrun's agent) and anything of the tree whose parent is gone; the root itself while it has
        none (the launcher is still starting). Their own children (data-loader workers) are not among them."""
        alive = self.alive()
        pids = {p.pid for p in alive}
        out = []
        for process in alive:
            if process.pid == self.pid:
                continue
            try:
                parent = process.ppid()
            except (psutil.NoSuchProcess, psutil.AccessDenied):
                continue
            if parent == self.pid or parent not in pids:
                out.append(process)
        return out or [p for p in alive if p.pid == self.pid]

    def send(self, how: str, processes: list[psutil.Process] | None = None) -> list[psutil.Process]:
        """Send `how` (graceful / terminate / kill) to `processes` (default: the whole tree); returns those reached."""
        sent = []
        for process in self.alive() if processes is None else processes:
            try:
                if how == "graceful":
                    process.send_signal(GRACEFUL)
                elif how == "terminate":
                    process.terminate()
                else:
                    process.kill()
                sent.append(process)
            except (psutil.NoSuchProcess, psutil.AccessDenied, OSError, ValueError):
                continue
        return sent

    def _wait(self, seconds: float, hurry: Callable[[], bool]) -> bool:
        """Wait until the whole tree is gone (True), `seconds` passed or `hurry()` says stop waiting (False)."""
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            self.refresh()
            if not self.alive():
                return True
            if hurry():
                return False
            time.sleep(0.05)
        return not self.alive()

    def stop(self, grace: tuple[float, float] = DEFAULT_GRACE, hurry: Callable[[], bool] = lambda: False) -> str:
        """Stop every process of the tree: graceful signal, wait grace[0]; terminate, wait grace[1]; kill.
        `hurry()` (e.g. a second Ctrl-C) skips straight to kill. Returns how it ended: graceful/terminate/kill."""
        self.refresh()
        self.find_token()
        for how, seconds in (("graceful", grace[0]), ("terminate", grace[1])):
            self.send(how)
            if self._wait(seconds, hurry):
                return how
            if hurry():
                break
        self.kill()
        return "kill"

    def kill(self) -> None:
        """Kill whatever of the tree still runs, and wait (briefly) for it to be gone. Never `wait()`s: reaping
        the root here would take its exit status away from the Popen that started it."""
        self.refresh()
        self.find_token()
        self.send("kill")
        self._wait(5.0, lambda: False)
