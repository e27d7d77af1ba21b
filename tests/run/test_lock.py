"""The run lock's record from another host: refused, except when a Slurm task that Slurm no longer runs left it."""

from __future__ import annotations

import pytest

from bespoke.errors import RunError
from bespoke.fsutil import atomic_write_json
from bespoke.run import lock as run_lock
from bespoke.run.lock import RunLock, record_path
from bespoke.run.paths import RunPaths
from bespoke.run.slurm import TaskState


def _left_behind(tmp_path, **record) -> RunPaths:
    paths = RunPaths(tmp_path / "run")
    paths.root.mkdir()
    atomic_write_json(record_path(paths), {"pid": 123, "host": "node-a", "started_at": "earlier",
                                           "trainer_pid": 456, **record})
    return paths


def _in_slurm(monkeypatch, job: str, task: str, queue: dict) -> None:
    monkeypatch.setenv("SLURM_ARRAY_JOB_ID", job)
    monkeypatch.setenv("SLURM_ARRAY_TASK_ID", task)
    monkeypatch.setattr(run_lock, "queue", lambda: queue)


def test_a_record_from_another_host_is_refused_outside_slurm(tmp_path, monkeypatch):
    for name in ("SLURM_ARRAY_JOB_ID", "SLURM_ARRAY_TASK_ID", "SLURM_JOB_ID"):
        monkeypatch.delenv(name, raising=False)
    paths = _left_behind(tmp_path, slurm_task="7_0")
    with pytest.raises(RunError, match="in use by pid 123 on node-a"):
        RunLock(paths, "r").acquire()


def test_a_slurm_task_that_slurm_no_longer_runs_is_taken_over(tmp_path, monkeypatch):
    paths = _left_behind(tmp_path, slurm_task="7_0")
    _in_slurm(monkeypatch, "9", "0", {"7_1": TaskState("7_1", "RUNNING")})  # 7_0 is gone (its node died)
    with RunLock(paths, "r") as held:
        assert held.record["slurm_task"] == "9_0"


def test_a_slurm_task_still_running_elsewhere_is_refused(tmp_path, monkeypatch):
    paths = _left_behind(tmp_path, slurm_task="7_0")
    _in_slurm(monkeypatch, "9", "0", {"7_0": TaskState("7_0", "RUNNING", node="node-a")})
    with pytest.raises(RunError, match="in use by pid 123 on node-a"):
        RunLock(paths, "r").acquire()


def test_a_requeued_task_takes_over_its_own_earlier_incarnation(tmp_path, monkeypatch):
    paths = _left_behind(tmp_path, slurm_task="7_0")
    _in_slurm(monkeypatch, "7", "0", {"7_0": TaskState("7_0", "RUNNING", node="node-b")})  # that is us now
    with RunLock(paths, "r"):
        pass
