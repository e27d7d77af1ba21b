"""One bespoke at a time per run: `<run>/.lock`.

The lock file is created with O_EXCL and holds pid, hostname and start time; a lock whose pid is dead on
this host is taken over (moved aside first, so only one taker can win).
"""

from __future__ import annotations

import json
import os
import socket
import time

from bespoke.clock import now_iso
from bespoke.errors import RunError
from bespoke.run.paths import RunPaths


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class RunLock:
    """`<run>/.lock` created with O_EXCL holding pid, hostname and start time. A dead pid's lock is taken over."""

    def __init__(self, paths: RunPaths, run_id: str):
        self.path = paths.lock_file
        self.run_id = run_id
        self.content = json.dumps({"pid": os.getpid(), "host": socket.gethostname(), "started_at": now_iso()})

    def _create(self) -> bool:
        try:
            fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            return False
        with os.fdopen(fd, "w") as handle:
            handle.write(self.content)
        return True

    def acquire(self) -> RunLock:
        if self._create():
            return self
        try:
            held = json.loads(self.path.read_text(encoding="utf-8"))
            pid, host = int(held["pid"]), str(held["host"])
        except (OSError, ValueError, KeyError, TypeError):
            # half-written by a process that died at once; give a live writer a moment
            held, pid, host = {}, None, socket.gethostname()
            if time.time() - self.path.stat().st_mtime < 5:
                raise RunError(f"run {self.run_id} is being started by another bespoke; try again") from None
        if host != socket.gethostname():
            raise RunError(f"run {self.run_id} is in use by pid {pid} on {host} (since {held.get('started_at')}); "
                           f"if that machine is no longer running it, delete {self.path}")
        if pid is not None and _pid_alive(pid):
            raise RunError(f"run {self.run_id} is in use by pid {pid} (since {held.get('started_at')}); "
                           "wait for it to finish or stop that process")
        # stale: move it aside (only one taker wins the rename), then create ours
        stale = self.path.with_name(f".lock.stale-{pid}-{os.getpid()}")
        try:
            os.rename(self.path, stale)
            stale.unlink()
        except FileNotFoundError:
            pass
        if not self._create():
            raise RunError(f"run {self.run_id} was just taken by another bespoke; see {self.path}")
        return self

    def release(self) -> None:
        try:
            if self.path.read_text(encoding="utf-8") == self.content:
                self.path.unlink()
        except FileNotFoundError:
            pass

    def __enter__(self):
        return self.acquire()

    def __exit__(self, *exc):
        self.release()
        return False
