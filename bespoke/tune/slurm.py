"""`bespoke tune SPACE --slurm N`: N Slurm array tasks, each one worker (`bespoke tune <study>/space.toml`) that
pulls trials from the study's shared storage until the budget is spent; `bespoke cancel STUDY` cancels them.

The study is opened and every corner of its space checked here, on the submit host, before anything is queued.
The script is `<outputs>/tunes/<study>/slurm-workers.sh` (plain bash, re-submittable by hand), the tasks' logs
`slurm-%A_%a.out` beside it, and `slurm.json` records every submission. Submitting again while tasks of the
study are queued or running submits nothing. A task cancelled or pre-empted gets SIGTERM: its trial's run is
marked interrupted and the trial left RUNNING, taken back by the next worker (bespoke.tune.study.take_trial).
"""

from __future__ import annotations

import json
import shlex
import time
from dataclasses import dataclass
from pathlib import Path

from bespoke.clock import now_iso
from bespoke.errors import RunError, UsageError
from bespoke.fsutil import atomic_write_json, atomic_write_text
from bespoke.run import slurm
from bespoke.settings import Settings
from bespoke.tune.space import SearchSpace
from bespoke.tune.study import SPACE_COPY, study_dir
from bespoke.tune.worker import prepare

SCRIPT = "slurm-workers.sh"
RECORD = "slurm.json"


@dataclass(frozen=True)
class StudySubmission:
    job_id: str | None
    script: Path
    active: tuple[str, ...] = ()  # tasks of the study already queued or running (nothing submitted then)


def script_text(folder: Path, tasks: int, request: slurm.SlurmRequest, command: list[str], project: Path,
                storage: str | None) -> str:
    name = folder.name
    worker = [*command, "tune", str(folder / SPACE_COPY), "--study-name", name, "--quiet",
              *(["--storage", storage] if storage else [])]
    lines = [
        "#!/bin/bash",
        f"# bespoke tune {name}: {tasks} worker task(s); each pulls trials from the study's storage until its",
        "# budget is spent (a trial interrupted by Slurm is taken back by the next worker). Re-submit by hand with",
        f"#   sbatch {shlex.quote(str(folder / SCRIPT))}",
        f"#SBATCH --job-name=bespoke-tune-{name}",
        f"#SBATCH --array=0-{tasks - 1}",
        f"#SBATCH --output={folder}/slurm-%A_%a.out",
        "#SBATCH --open-mode=append",
        f"#SBATCH --chdir={project}",
        *(f"#SBATCH {line}" for line in request.sbatch_lines()),
        "",
        "set -euo pipefail",
        'echo "$(date +%Y-%m-%dT%H:%M:%S%:z) worker ${SLURM_ARRAY_JOB_ID}_${SLURM_ARRAY_TASK_ID} on $(hostname)"',
        f"export BESPOKE_PROJECT={shlex.quote(str(project))}",
        f"exec {shlex.join(worker)}",
    ]
    return "\n".join(lines) + "\n"


def _record(folder: Path) -> dict:
    path = folder / RECORD
    if not path.is_file():
        return {"submissions": []}
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise RunError(f"{path}: unreadable ({error}); move it away and submit again") from None


def active_tasks(folder: Path) -> list[str]:
    """The study's array tasks Slurm still holds (queued or running)."""
    jobs = {str(s["job_id"]) for s in _record(folder)["submissions"]}
    if not jobs:
        return []
    return sorted(key for key, state in slurm.queue().items() if key.split("_")[0] in jobs and state.active)


def submit_study(settings: Settings, space: SearchSpace, tasks: int, request: slurm.SlurmRequest,
                 storage: str | None = None) -> StudySubmission:
    """Check and open the study here, then submit `tasks` workers (nothing when some are queued or running)."""
    slurm.require_slurm()
    if tasks < 1:
        raise UsageError(f"--slurm {tasks}: give at least 1 task")
    prepare(settings, space, storage)
    folder = study_dir(settings, space.name)
    script = folder / SCRIPT
    busy = active_tasks(folder)
    if busy:
        return StudySubmission(None, script, tuple(busy))
    atomic_write_text(script, script_text(folder, tasks, request, slurm.bespoke_command(settings),
                                          settings.project_root, storage))
    script.chmod(0o755)
    job_id = slurm.submit(script, list(range(tasks)), request, hold=False)
    record = _record(folder)
    record["submissions"].append({"job_id": job_id, "tasks": tasks, "submitted_at": now_iso()})
    atomic_write_json(folder / RECORD, record)
    return StudySubmission(job_id, script)


def cancel_study(settings: Settings, name: str, wait: float = 120.0) -> list[str] | None:
    """scancel the study's queued and running tasks and wait for them to leave the queue (each worker marks its
    trial's run interrupted on the SIGTERM); None when `name` is not a study submitted to Slurm."""
    folder = study_dir(settings, name)
    if not (folder / RECORD).is_file():
        return None
    slurm.require_slurm()
    active = active_tasks(folder)
    slurm.cancel(active)
    deadline = time.monotonic() + wait
    left = active
    while left and time.monotonic() < deadline:
        queued = slurm.queue()
        left = [task for task in left if task in queued]
        if left:
            time.sleep(0.5)
    if left:
        raise RunError(f"{', '.join(left)} still in the queue after {wait:.0f} s; check `squeue` and run "
                       "`bespoke cancel` again")
    return active
