"""The CPUs this process may use: each limit read from fake /proc and cgroup files and a fake environment."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from bespoke import cpus


def _proc(tmp_path: Path, mountinfo: list[str], cgroup: list[str]) -> Path:
    """A fake /proc/self with the given mountinfo and cgroup lines."""
    proc = tmp_path / "proc"
    proc.mkdir(exist_ok=True)
    (proc / "mountinfo").write_text("\n".join(mountinfo) + "\n")
    (proc / "cgroup").write_text("\n".join(cgroup) + "\n")
    return proc


def _v2_mount(point: Path, root: str = "/") -> str:
    return f"41 31 0:38 {root} {point} rw,relatime - cgroup2 cgroup2 rw"


def _v1_mount(point: Path, root: str = "/") -> str:
    return f"32 31 0:29 {root} {point} rw,relatime - cgroup cgroup rw,cpu,cpuacct"


def _write(folder: Path, **files: str) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        (folder / name.replace("__", ".")).write_text(text + "\n")


@pytest.fixture
def no_affinity_limit(monkeypatch):
    """A box whose affinity mask is its whole machine (so only the limit under test counts)."""
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(64)), raising=False)
    monkeypatch.setattr(os, "cpu_count", lambda: 64)


def test_affinity_mask(monkeypatch, tmp_path):
    monkeypatch.setattr(os, "cpu_count", lambda: 64)
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {3, 7, 9}, raising=False)
    limits = cpus.cpu_limits(environ={}, proc=tmp_path / "nothing")
    assert (limits.machine, limits.affinity, limits.cgroup, limits.slurm) == (64, 3, None, None)
    assert cpus.available_cpus(environ={}, proc=tmp_path / "nothing") == 3


def test_without_an_affinity_call_the_machine_counts(monkeypatch, tmp_path):
    monkeypatch.delattr(os, "sched_getaffinity", raising=False)  # macOS, Windows
    monkeypatch.setattr(os, "cpu_count", lambda: 12)
    assert cpus.affinity_cpus() is None
    assert cpus.available_cpus(environ={}, proc=tmp_path / "nothing") == 12


def test_cgroup_v2_quota_tightest_of_the_cgroup_and_its_parents(no_affinity_limit, tmp_path):
    mount = tmp_path / "cg2"
    _write(mount / "system.slice" / "job_7", cpu__max="250000 100000")  # 2.5 CPUs -> 3
    _write(mount / "system.slice" / "job_7" / "step_0", cpu__max="max 100000")
    _write(mount / "system.slice", cpu__max="800000 100000")
    proc = _proc(tmp_path, [_v2_mount(mount)], ["0::/system.slice/job_7/step_0"])
    assert cpus.cgroup_cpus(proc) == 3
    assert cpus.available_cpus(environ={}, proc=proc) == 3


def test_cgroup_v2_without_a_quota(no_affinity_limit, tmp_path):
    mount = tmp_path / "cg2"
    _write(mount / "user.slice", cpu__max="max 100000")
    proc = _proc(tmp_path, [_v2_mount(mount)], ["0::/user.slice"])
    assert cpus.cgroup_cpus(proc) is None
    assert cpus.available_cpus(environ={}, proc=proc) == 64


def test_cgroup_v1_quota_in_a_container_that_sees_only_its_own_cgroup(no_affinity_limit, tmp_path):
    mount = tmp_path / "cpu,cpuacct"
    _write(mount, cpu__cfs_quota_us="400000", cpu__cfs_period_us="100000")
    # the host's path of the container's cgroup, which is mounted as the root inside it
    proc = _proc(tmp_path, [_v1_mount(mount, "/docker/abc")],
                 ["12:memory:/docker/abc", "4:cpu,cpuacct:/docker/abc", "0::/"])
    assert cpus.cgroup_cpus(proc) == 4
    assert cpus.available_cpus(environ={}, proc=proc) == 4


def test_cgroup_v1_unlimited_and_a_part_cpu_quota(no_affinity_limit, tmp_path):
    mount = tmp_path / "cpu"
    _write(mount, cpu__cfs_quota_us="-1", cpu__cfs_period_us="100000")
    proc = _proc(tmp_path, [_v1_mount(mount)], ["4:cpu,cpuacct:/"])
    assert cpus.cgroup_cpus(proc) is None
    _write(mount, cpu__cfs_quota_us="50000", cpu__cfs_period_us="100000")  # half a CPU: still one worker
    assert cpus.cgroup_cpus(proc) == 1


def test_unreadable_or_odd_cgroup_files_do_not_count(no_affinity_limit, tmp_path):
    mount = tmp_path / "cg2"
    _write(mount, cpu__max="lots 100000")
    proc = _proc(tmp_path, [_v2_mount(mount), "a line that is no mount"], ["0::/"])
    assert cpus.cgroup_cpus(proc) is None
    assert cpus.cgroup_cpus(tmp_path / "no proc here") is None


@pytest.mark.parametrize(("value", "expected"), [("4", 4), (" 2 ", 2), ("0", None), ("four", None), ("", None)])
def test_slurm_cpus_per_task(no_affinity_limit, tmp_path, value, expected):
    environ = {"SLURM_CPUS_PER_TASK": value}
    assert cpus.slurm_cpus(environ) == expected
    assert cpus.available_cpus(environ=environ, proc=tmp_path / "nothing") == (expected or 64)


def test_the_tightest_limit_wins(monkeypatch, tmp_path):
    monkeypatch.setattr(os, "cpu_count", lambda: 64)
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(8)), raising=False)
    mount = tmp_path / "cg2"
    _write(mount, cpu__max="600000 100000")
    proc = _proc(tmp_path, [_v2_mount(mount)], ["0::/"])
    assert cpus.available_cpus(environ={"SLURM_CPUS_PER_TASK": "7"}, proc=proc) == 6
    assert cpus.available_cpus(environ={"SLURM_CPUS_PER_TASK": "5"}, proc=proc) == 5
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1}, raising=False)
    assert cpus.available_cpus(environ={"SLURM_CPUS_PER_TASK": "5"}, proc=proc) == 2


def test_this_box():
    """On the machine the suite runs on: at least 1, never more than the machine has."""
    limits = cpus.cpu_limits()
    assert 1 <= limits.usable <= (os.cpu_count() or 1)
