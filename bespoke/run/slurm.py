"""Slurm, through its own commands (no bindings tied to one Slurm version): `sbatch --parsable`, `scontrol
release`, `squeue`, `scontrol show job` (recently ended tasks, no accounting needed), `sacct` (when the cluster
keeps accounting) and `scancel`; and the job-array script a sweep submits.

Every array task runs `bespoke train --run <run folder>`: the same supervisor, lock, resume and run.json as a
local run. The script is written into the sweep's folder, readable and re-submittable by hand (`sbatch FILE`;
finished runs are skipped, interrupted ones resume), and asks for `--requeue`: a task pre-empted or requeued by
Slurm receives SIGTERM, which bespoke's supervisor turns into an interrupted (resumable) run.
"""

from __future__ import annotations

import re
import shlex
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path

from bespoke.errors import ConfigError, RunError, UsageError
from bespoke.run.runner import run_capture
from bespoke.settings import Settings, SlurmSettings

SCRIPT_NAME = "slurm-array.sh"
# squeue/scontrol states in which a task still holds (or waits for) its place: never submit it twice
ACTIVE = frozenset({"PENDING", "CONFIGURING", "RUNNING", "COMPLETING", "REQUEUED", "REQUEUE_HOLD", "REQUEUE_FED",
                    "RESIZING", "SUSPENDED", "SIGNALING", "STAGE_OUT", "STOPPED", "RESV_DEL_HOLD"})
# Slurm's words -> the ones `bespoke runs` shows
_SHOWN = {"COMPLETED": "finished", "FAILED": "failed", "NODE_FAIL": "failed", "BOOT_FAIL": "failed",
          "OUT_OF_MEMORY": "failed", "DEADLINE": "failed", "CANCELLED": "cancelled", "TIMEOUT": "timeout",
          "PREEMPTED": "preempted", "REQUEUED": "pending", "REQUEUE_HOLD": "held", "CONFIGURING": "starting"}
_TIME = re.compile(r"^(\d+-)?\d{1,2}(:\d{2}){0,2}$|^\d+$")


@dataclass(frozen=True)
class SlurmRequest:
    """What one sweep asks Slurm for: bespoke.toml's [slurm] with the command line's flags over it."""

    partition: str | None = None
    account: str | None = None
    time: str | None = None
    gres: str | None = None
    max_concurrent: int | None = None
    cpus_per_task: int | None = None
    mem: str | None = None
    extra: tuple[str, ...] = ()

    def sbatch_lines(self) -> list[str]:
        """The resource lines of the script (`#SBATCH --partition=gpu` ...), in a stable order."""
        pairs = (("partition", self.partition), ("account", self.account), ("time", self.time),
                 ("gres", self.gres), ("cpus-per-task", self.cpus_per_task), ("mem", self.mem))
        lines = [f"--{key}={value}" for key, value in pairs if value is not None]
        return lines + list(self.extra)


def slurm_request(settings: SlurmSettings, *, partition: str | None = None, account: str | None = None,
                  time: str | None = None, gres: str | None = None, max_concurrent: int | None = None) -> SlurmRequest:
    """Flags over bespoke.toml's [slurm]; a malformed time limit or count is a usage error."""
    request = SlurmRequest(
        partition=partition or settings.partition, account=account or settings.account,
        time=time or settings.time, gres=gres or settings.gres,
        max_concurrent=max_concurrent if max_concurrent is not None else settings.max_concurrent,
        cpus_per_task=settings.cpus_per_task, mem=settings.mem, extra=tuple(settings.extra))
    if request.time is not None and not _TIME.match(request.time):
        raise UsageError(f"--time {request.time}: write a Slurm time limit like 04:00:00, 90 or 1-12:00:00")
    if request.max_concurrent is not None and request.max_concurrent < 1:
        raise UsageError(f"--max-concurrent {request.max_concurrent}: give at least 1")
    for line in request.extra:
        if "\n" in line or not line.startswith("--"):
            raise ConfigError(f"slurm.extra {line!r}: each entry is one sbatch option, e.g. \"--qos=low\"")
    return request


@dataclass(frozen=True)
class TaskState:
    """One array task as Slurm reports it."""

    job: str  # "<array job id>_<task id>"
    state: str  # Slurm's word, upper case (PENDING, RUNNING, COMPLETED, ...)
    node: str | None = None
    elapsed: str | None = None
    reason: str | None = None

    @property
    def active(self) -> bool:
        return self.state in ACTIVE

    @property
    def shown(self) -> str:
        """The lower-case word `bespoke runs` shows (pending, running, finished, failed, cancelled, ...)."""
        return _SHOWN.get(self.state, self.state.lower())


def require_slurm() -> None:
    """A usage error when Slurm's commands are not on PATH."""
    missing = [c for c in ("sbatch", "squeue", "scancel", "scontrol") if shutil.which(c) is None]
    if missing:
        raise UsageError(f"--slurm needs Slurm's commands, and {', '.join(missing)} is not on PATH; run bespoke on "
                         "a Slurm login node (or try the one-node Slurm of scripts/slurm-local.sh, see README)")


def _run(argv: list[str], what: str, timeout: float = 60.0) -> str:
    done = run_capture(argv, timeout=timeout)
    if done.exit_code != 0:
        detail = (done.stderr.strip().splitlines() or [f"exit code {done.exit_code}"])[-1]
        raise RunError(f"{what} failed: {detail} (command: {shlex.join(argv)})")
    return done.stdout


def submit(script: Path, tasks: list[int], request: SlurmRequest, hold: bool = True) -> str:
    """`sbatch --parsable [--hold] --array=<tasks>[%N] SCRIPT`; returns the array job id. Held, so that the
    caller records the ids in run.json before any task can start (then `release`)."""
    array = ",".join(str(t) for t in tasks)
    if request.max_concurrent:
        array += f"%{request.max_concurrent}"
    argv = ["sbatch", "--parsable", *(["--hold"] if hold else []), f"--array={array}", str(script)]
    out = _run(argv, "sbatch").strip()
    job_id = out.split(";")[0].strip()  # "<id>[;cluster]"
    if not job_id.isdigit():
        raise RunError(f"sbatch printed {out!r}, not a job id")
    return job_id


def release(job_id: str) -> None:
    """`scontrol release JOB`: let a held array start."""
    _run(["scontrol", "release", job_id], "scontrol release")


def cancel(jobs: list[str]) -> None:
    """`scancel` the given jobs or array tasks ("12", "12_3")."""
    if jobs:
        _run(["scancel", *jobs], "scancel")


def _task_key(job: str, array_job: str, task: str) -> str | None:
    if array_job and task and task.isdigit():
        return f"{array_job}_{task}"
    return job if "_" in job and "[" not in job else None


def queue() -> dict[str, TaskState]:
    """Every array task of this user in the queue (pending, running, completing...), by "<job>_<task>"."""
    out = _run(["squeue", "--me", "-h", "-r", "-o", "%i|%F|%K|%T|%N|%M|%r"], "squeue")
    states: dict[str, TaskState] = {}
    for line in out.splitlines():
        parts = line.split("|")
        if len(parts) != 7:
            continue
        job, array_job, task, state, node, elapsed, reason = (p.strip() for p in parts)
        key = _task_key(job, array_job, task)
        if key:
            states[key] = TaskState(key, state, node or None, elapsed or None, reason if reason != "None" else None)
    return states


def _fields(line: str) -> dict[str, str]:
    return dict(item.split("=", 1) for item in line.split() if "=" in item)


def recent(job_ids: set[str]) -> dict[str, TaskState]:
    """Tasks that left the queue recently (`scontrol show job`, kept for the cluster's MinJobAge; works without
    accounting), then `sacct` for older ones when the cluster keeps accounting. Unknown ids are left out."""
    states: dict[str, TaskState] = {}
    for job_id in sorted(job_ids):
        done = run_capture(["scontrol", "show", "job", "-o", job_id], timeout=30)
        for line in done.stdout.splitlines() if done.exit_code == 0 else []:
            f = _fields(line)
            key = _task_key(f.get("JobId", ""), f.get("ArrayJobId", ""), f.get("ArrayTaskId", ""))
            if key and "JobState" in f:
                states[key] = TaskState(key, f["JobState"], f.get("NodeList") if f.get("NodeList") != "(null)" else None,
                                        f.get("RunTime"), None)
    missing = sorted(j for j in job_ids if not any(k.startswith(f"{j}_") for k in states))
    if missing and shutil.which("sacct"):
        done = run_capture(["sacct", "-n", "-P", "-X", "-j", ",".join(missing), "-o", "JobID,State,NodeList,Elapsed"])
        for line in done.stdout.splitlines() if done.exit_code == 0 else []:  # accounting off: exit 1, nothing
            parts = line.split("|")
            if len(parts) == 4 and re.fullmatch(r"\d+_\d+", parts[0]):
                state = parts[1].split()[0]  # "CANCELLED by 0" -> CANCELLED
                states[parts[0]] = TaskState(parts[0], state, parts[2] or None, parts[3] or None)
    return states


def bespoke_command(settings: Settings) -> list[str]:
    """How a task starts this bespoke with this invocation's settings (the folders made absolute)."""
    argv = [sys.executable, "-m", "bespoke", "--outputs", str(settings.outputs_dir)]
    if settings.sd_scripts is not None:
        argv += ["--sd-scripts", str(settings.sd_scripts)]
    if settings.sd_python:
        argv += ["--python", settings.sd_python]
    return argv + ["--base-model", settings.base_model]


def script_text(sweep_id: str, sweep_dir: Path, run_dirs: list[Path], request: SlurmRequest,
                command: list[str], project_root: Path) -> str:
    """The job-array script: task i trains run i with `bespoke train --run`, its log in <run>/logs/slurm.log."""
    last = len(run_dirs) - 1
    array = f"0-{last}" + (f"%{request.max_concurrent}" if request.max_concurrent else "")
    header = [
        "#!/bin/bash",
        f"# bespoke sweep {sweep_id}: {len(run_dirs)} run(s), one Slurm array task each. Task i trains run i",
        "# below with `bespoke train --run` (lock, resume and run.json as a local run; its log in",
        "# <run>/logs/slurm.log, the trainer's in <run>/logs/train.log). Re-submit by hand with",
        f"#   sbatch {shlex.quote(str(sweep_dir / SCRIPT_NAME))}            (finished runs are skipped)",
        f"#   sbatch --array=1,2 {shlex.quote(str(sweep_dir / SCRIPT_NAME))}   (only tasks 1 and 2)",
        "# `bespoke sweep ... --slurm` again does this for you, submitting only what is not done or queued.",
        f"#SBATCH --job-name=bespoke-{sweep_id}",
        f"#SBATCH --array={array}",
        f"#SBATCH --output={sweep_dir}/slurm-%A_%a.out",
        "#SBATCH --open-mode=append",
        "#SBATCH --requeue",
        f"#SBATCH --chdir={project_root}",
        *(f"#SBATCH {line}" for line in request.sbatch_lines()),
    ]
    runs = [f"  {shlex.quote(str(d))}" for d in run_dirs]
    body = [
        "set -euo pipefail",
        "runs=(", *runs, ")",
        'run=${runs[$SLURM_ARRAY_TASK_ID]}',
        'mkdir -p "$run/logs"',
        'exec >>"$run/logs/slurm.log" 2>&1',
        'echo "$(date +%Y-%m-%dT%H:%M:%S.%N%:z) slurm task ${SLURM_ARRAY_JOB_ID}_${SLURM_ARRAY_TASK_ID}'
        ' on $(hostname) (restart ${SLURM_RESTART_COUNT:-0}): bespoke train --run $run"',
        f"export BESPOKE_PROJECT={shlex.quote(str(project_root))}",
        f'exec {shlex.join(command)} train --run "$run" --quiet',
    ]
    return "\n".join(header + [""] + body) + "\n"
