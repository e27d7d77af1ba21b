"""How many CPUs this process may use: the fewest allowed by any limit the box sets, never the node's count.

`os.cpu_count()` counts the machine: a Slurm task or a container given 4 of 64 CPUs would start 64 workers and
oversubscribe its node. The limits read here are the CPU affinity mask (taskset, Slurm's and Docker's cpusets),
the cgroup CPU quota (v2 `cpu.max`, v1 `cpu.cfs_quota_us` / `cpu.cfs_period_us`, on the process's own cgroup and
every parent up to the mount: the tightest wins, rounded up to whole CPUs) and `SLURM_CPUS_PER_TASK`. Where a
limit cannot be read it does not count; the answer is at least 1.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

PROC_SELF = Path("/proc/self")


@dataclass(frozen=True)
class CpuLimits:
    """Each limit on this process's CPUs (None: not set or not readable here) and the CPUs it may use."""

    machine: int
    affinity: int | None
    cgroup: int | None
    slurm: int | None

    @property
    def usable(self) -> int:
        """The tightest limit, at least 1."""
        limits = [n for n in (self.machine, self.affinity, self.cgroup, self.slurm) if n is not None]
        return max(1, min(limits))


def affinity_cpus() -> int | None:
    """CPUs in this process's affinity mask (None where the OS has no such call: macOS, Windows)."""
    getaffinity = getattr(os, "sched_getaffinity", None)
    if getaffinity is None:
        return None
    try:
        return len(getaffinity(0))
    except OSError:
        return None


def slurm_cpus(environ: Mapping[str, str]) -> int | None:
    """SLURM_CPUS_PER_TASK as a whole number of CPUs (None when unset or not a positive number)."""
    value = environ.get("SLURM_CPUS_PER_TASK", "").strip()
    return int(value) if value.isdigit() and int(value) > 0 else None


def _read(path: Path) -> str | None:
    try:
        return path.read_text(encoding="ascii", errors="replace").strip()
    except OSError:
        return None


def _quota_v2(folder: Path) -> float | None:
    """CPUs `cpu.max` allows ("max 100000" = no limit)."""
    text = _read(folder / "cpu.max")
    parts = text.split() if text else []
    if len(parts) != 2 or parts[0] == "max":
        return None
    try:
        quota, period = int(parts[0]), int(parts[1])
    except ValueError:
        return None
    return quota / period if quota > 0 and period > 0 else None


def _quota_v1(folder: Path) -> float | None:
    """CPUs `cpu.cfs_quota_us` / `cpu.cfs_period_us` allow (quota -1 = no limit)."""
    quota, period = _read(folder / "cpu.cfs_quota_us"), _read(folder / "cpu.cfs_period_us")
    try:
        q, p = int(quota or ""), int(period or "")
    except ValueError:
        return None
    return q / p if q > 0 and p > 0 else None


@dataclass(frozen=True)
class _Mount:
    """A cgroup hierarchy as this process sees it: where it is mounted, which part of it, and which version."""

    point: Path
    root: str
    version: int


def _mounts(mountinfo: str | None) -> list[_Mount]:
    """The cgroup v2 mount and the v1 mount holding the `cpu` controller, from /proc/self/mountinfo."""
    found = []
    for line in (mountinfo or "").splitlines():
        fields = line.split()
        if "-" not in fields:
            continue
        sep = fields.index("-")
        if len(fields) < sep + 4 or sep < 5:
            continue
        fstype, options = fields[sep + 1], fields[sep + 3].split(",")
        if fstype == "cgroup2" or (fstype == "cgroup" and "cpu" in options):
            # mountinfo escapes spaces and the like as octal (\040)
            point = fields[4].encode("ascii", "replace").decode("unicode_escape")
            found.append(_Mount(Path(point), fields[3], 2 if fstype == "cgroup2" else 1))
    return found


def _own_cgroup(cgroup: str | None, version: int) -> str | None:
    """This process's cgroup path in the hierarchy of `version`, from /proc/self/cgroup."""
    for line in (cgroup or "").splitlines():
        parts = line.split(":", 2)
        if len(parts) != 3:
            continue
        if (version == 2 and parts[0] == "0" and parts[1] == "") or (version == 1 and "cpu" in parts[1].split(",")):
            return parts[2]
    return None


def _folders(mount: _Mount, path: str | None) -> list[Path]:
    """The process's cgroup folder under `mount` and each parent up to the mount point (the mount point alone
    when the path is not inside the mounted part: a container that sees only its own cgroup)."""
    if path is None:
        return [mount.point]
    try:
        inner = Path(path).relative_to(mount.root)
    except ValueError:
        return [mount.point]
    here = mount.point / inner
    return [here, *[p for p in here.parents if p == mount.point or mount.point in p.parents]]


def cgroup_cpus(proc: Path = PROC_SELF) -> int | None:
    """The tightest cgroup CPU quota over this process's cgroup and its parents, rounded up (None: no quota)."""
    mountinfo, cgroup = _read(proc / "mountinfo"), _read(proc / "cgroup")
    quotas = []
    for mount in _mounts(mountinfo):
        reader = _quota_v2 if mount.version == 2 else _quota_v1
        quotas += [q for q in (reader(f) for f in _folders(mount, _own_cgroup(cgroup, mount.version))) if q]
    return max(1, math.ceil(min(quotas) - 1e-9)) if quotas else None


def cpu_limits(environ: Mapping[str, str] | None = None, proc: Path = PROC_SELF) -> CpuLimits:
    """Every limit on this process's CPUs (`environ` defaults to os.environ; `proc` to /proc/self)."""
    return CpuLimits(machine=os.cpu_count() or 1, affinity=affinity_cpus(), cgroup=cgroup_cpus(proc),
                     slurm=slurm_cpus(os.environ if environ is None else environ))


def available_cpus(environ: Mapping[str, str] | None = None, proc: Path = PROC_SELF) -> int:
    """The CPUs this process may use: the tightest of affinity, cgroup quota and SLURM_CPUS_PER_TASK, >= 1."""
    return cpu_limits(environ, proc).usable
