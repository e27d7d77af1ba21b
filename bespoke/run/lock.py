"""One bespoke at a time per run: an OS file lock on `<run>/.lock`, held for the run's whole life.

The lock itself is the OS's (`filelock`: fcntl/flock on POSIX, LockFileEx on Windows): two processes can never
both hold it, and it is released by the OS when its holder dies, however it dies — there is nothing to take
over and so no takeover race. Who holds it is written next to it in `<run>/.lock.json` (pid, host, start,
and the trainer's pid once launched). A new holder reads the previous record: while the previous trainer still
runs (its bespoke died; the reaper is stopping it) it waits for it a little, and never starts a second trainer
into the same folder while that one lives. A record from another host is never overridden (a network file
system may not carry the lock across machines) — unless it was written by a Slurm task that Slurm no longer
runs (a node that died or was pre-empted: its processes are gone with it), so a resubmitted task on another
node continues the run.
"""

from __future__ import annotations

import os
import socket
import time
from pathlib import Path

from filelock import FileLock, Timeout

from bespoke.clock import now_iso
from bespoke.errors import RunError
from bespoke.fsutil import atomic_write_json, read_json
from bespoke.run.paths import RunPaths
from bespoke.run.proctree import DEFAULT_GRACE, process_alive, start_time
from bespoke.run.slurm import queue

# how long a new holder waits for a trainer whose bespoke died to be stopped by its reaper
ORPHAN_WAIT_SECONDS = sum(DEFAULT_GRACE) + 5.0


def slurm_task() -> str | None:
    """This process's Slurm array task ("<job>_<task>") or job id, None outside Slurm."""
    job, task = os.environ.get("SLURM_ARRAY_JOB_ID"), os.environ.get("SLURM_ARRAY_TASK_ID")
    return f"{job}_{task}" if job and task else os.environ.get("SLURM_JOB_ID")


def slurm_task_gone(record: dict) -> bool:
    """True when the record was written inside a Slurm task that Slurm no longer runs (asked from inside Slurm
    only: elsewhere, or when squeue cannot answer, the record stands)."""
    task = record.get("slurm_task")
    if not task or slurm_task() is None:
        return False
    if task == slurm_task():  # an earlier incarnation of this very task (requeued): Slurm runs one at a time
        return True
    try:
        state = queue().get(task)
    except (RunError, OSError):
        return False
    return state is None or not state.active


def record_path(paths: RunPaths) -> Path:
    """`<run>/.lock.json`: who holds the lock (read-only for everyone but the holder)."""
    return paths.root / ".lock.json"


def holder(paths: RunPaths) -> dict | None:
    """The lock record of the run's current (or last, if it died) holder, or None."""
    return read_json(record_path(paths))


def holder_alive(record: dict | None) -> bool:
    """True when the record's bespoke still runs (only answerable on this host: else True, to be safe)."""
    if not record:
        return False
    if record.get("host") != socket.gethostname():
        return True
    return process_alive(record.get("pid"), record.get("pid_started"))


def trainer_alive(record: dict | None) -> bool:
    """True when the trainer launched by the record's holder still runs on this host."""
    if not record or not record.get("trainer_pid") or record.get("host") != socket.gethostname():
        return False
    return process_alive(record.get("trainer_pid"), record.get("trainer_started"))


class RunLock:
    """The run's OS lock plus its `.lock.json` record; `trainer_started(pid)` records the trainer."""

    def __init__(self, paths: RunPaths, run_id: str, orphan_wait: float = ORPHAN_WAIT_SECONDS):
        self.paths = paths
        self.run_id = run_id
        self.orphan_wait = orphan_wait
        self.lock = FileLock(str(paths.lock_file), timeout=0, thread_local=False)
        self.record = {"pid": os.getpid(), "pid_started": start_time(os.getpid()), "host": socket.gethostname(),
                       "started_at": now_iso(), "trainer_pid": None, "trainer_started": None,
                       "slurm_task": slurm_task()}
        self.previous: dict | None = None

    def acquire(self) -> RunLock:
        try:
            self.lock.acquire(timeout=0)
        except Timeout:
            held = holder(self.paths) or {}
            raise RunError(f"run {self.run_id} is in use by pid {held.get('pid', '?')} on "
                           f"{held.get('host', 'this machine')} (since {held.get('started_at', '?')}); wait for "
                           "it to finish or stop that process") from None
        try:
            self._check_previous()
            atomic_write_json(record_path(self.paths), self.record)
        except BaseException:
            self.lock.release()
            raise
        return self

    def _check_previous(self) -> None:
        previous = self.previous = holder(self.paths)
        if not previous:
            return
        if previous.get("host") != socket.gethostname() and not slurm_task_gone(previous):
            raise RunError(f"run {self.run_id} is in use by pid {previous.get('pid')} on {previous.get('host')} "
                           f"(since {previous.get('started_at')}); if that machine no longer runs it, delete "
                           f"{record_path(self.paths)}")
        end = time.monotonic() + self.orphan_wait
        while trainer_alive(previous) and time.monotonic() < end:
            time.sleep(0.2)  # its bespoke died; the reaper is stopping it
        if trainer_alive(previous):
            raise RunError(f"the trainer of run {self.run_id}'s previous attempt (pid {previous['trainer_pid']}) "
                           "is still running although its bespoke is gone; stop it (e.g. kill "
                           f"{previous['trainer_pid']}), then run the same command again")

    def trainer_started(self, pid: int) -> None:
        """Record the trainer's pid (the root of its process tree) while the lock is held."""
        self.record.update(trainer_pid=pid, trainer_started=start_time(pid))
        atomic_write_json(record_path(self.paths), self.record)

    def release(self) -> None:
        if not self.lock.is_locked:
            return
        try:
            record_path(self.paths).unlink(missing_ok=True)
        finally:
            self.lock.release()  # the .lock file stays: deleting it would let two holders lock two inodes

    def __enter__(self) -> RunLock:
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()


def try_lock(paths: RunPaths, run_id: str) -> RunLock | None:
    """The run's lock if it is free right now (without waiting for an orphaned trainer), else None."""
    try:
        return RunLock(paths, run_id, orphan_wait=0.0).acquire()
    except RunError:
        return None
