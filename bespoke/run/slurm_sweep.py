"""`bespoke sweep --slurm`, `bespoke cancel` and the Slurm columns of `bespoke runs`.

A sweep on a cluster is planned on the submit host (every run folder on the shared filesystem, validated and
preflighted once), gets a folder `<outputs>/sweeps/<sweep id>/` with `sweep.json` (its runs, in array order,
and every submission) and the job-array script, and is submitted with `sbatch --parsable --hold`; each
run.json's `slurm` record gets the array job and task id before the array is released, so a task never races
the submitter for run.json. Submitting again is idempotent: finished runs and tasks still queued or running
are left alone; failed, interrupted, cancelled or never-submitted runs are submitted (as a new array over
just those tasks of the same script).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from bespoke.clock import now_iso
from bespoke.errors import BespokeError, RunError, did_you_mean
from bespoke.fsutil import atomic_write_json, atomic_write_text, sha256_bytes
from bespoke.run import slurm
from bespoke.run.lock import RunLock
from bespoke.run.manifest import DONE_STATUSES, RunManifest, load_manifest, save_manifest
from bespoke.run.names import name_labels
from bespoke.run.paths import RunPaths, list_run_dirs, resolve_run
from bespoke.run.plan import RunPlan
from bespoke.settings import Settings

SWEEPS_DIR = "sweeps"
SWEEP_JSON = "sweep.json"
Say = Callable[[str], None]


def sweep_id_for(run_ids: list[str], label: str | None = None) -> str:
    """`<label>-<hash8>` of the sweep's run ids (in order): the same sweep always finds the same folder."""
    digest = sha256_bytes("\n".join(run_ids).encode("utf-8"))[:8]
    return f"{label or 'sweep'}-{digest}"


def sweeps_root(settings: Settings) -> Path:
    return Path(settings.outputs_dir) / SWEEPS_DIR


@dataclass
class SlurmRow:
    """One run of a Slurm sweep: bespoke's status, what Slurm says, and what this submission did."""

    run_id: str
    run_dir: Path
    name: str | None
    status: str
    task: int
    slurm: slurm.TaskState | None = None
    action: str = ""


@dataclass
class SlurmSubmission:
    """What `sweep --slurm` did: the sweep folder, the array job it submitted (if any) and one row per run."""

    sweep_id: str
    sweep_dir: Path
    script: Path
    job_id: str | None
    rows: list[SlurmRow] = field(default_factory=list)

    @property
    def all_finished(self) -> bool:
        return all(row.status in DONE_STATUSES for row in self.rows)


def _write_sweep_json(sweep_dir: Path, sweep_id: str, plans: list[RunPlan], submission: dict | None) -> None:
    path = sweep_dir / SWEEP_JSON
    old = load_sweep(sweep_dir) if path.exists() else {}
    atomic_write_json(path, {
        "schema_version": 1, "id": sweep_id, "created_at": old.get("created_at") or now_iso(),
        "script": slurm.SCRIPT_NAME,
        "runs": [{"task": i, "id": p.run_id, "path": str(p.paths.root), "name": p.manifest.name}
                 for i, p in enumerate(plans)],
        "submissions": list(old.get("submissions", [])) + ([submission] if submission else []),
    })


def load_sweep(sweep_dir: Path) -> dict:
    """A sweep folder's sweep.json."""
    path = Path(sweep_dir) / SWEEP_JSON
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise RunError(f"{path}: unreadable sweep record ({exc}); re-run the `bespoke sweep --slurm` command") from exc
    if not isinstance(data, dict) or not isinstance(data.get("runs"), list):
        raise RunError(f"{path}: not a bespoke sweep record")
    return data


def task_states(manifests: list[RunManifest]) -> dict[str, slurm.TaskState]:
    """run id -> what Slurm says about the run's last task (queue first, then recently ended / accounting)."""
    keyed = {m.id: f"{m.slurm['job_id']}_{m.slurm['task_id']}" for m in manifests
             if isinstance(m.slurm, dict) and m.slurm.get("job_id") is not None}
    if not keyed:
        return {}
    states = slurm.queue()
    missing = {key.split("_")[0] for key in keyed.values() if key not in states}
    if missing:
        states.update({k: v for k, v in slurm.recent(missing).items() if k not in states})
    return {run_id: states[key] for run_id, key in keyed.items() if key in states}


def _decide(manifest: RunManifest, state: slurm.TaskState | None) -> str | None:
    """Why a run is not submitted now (None: submit it)."""
    if manifest.status in DONE_STATUSES:
        return f"{manifest.status} (skipped)"
    if state is not None and state.active:
        return f"already {state.shown} as task {state.job} (not submitted twice)"
    return None


def _record(plan: RunPlan, job_id: str, task: int, sweep_id: str, script: Path) -> None:
    manifest = load_manifest(plan.paths.root)
    manifest.slurm = {"job_id": job_id, "task_id": task, "sweep": sweep_id, "script": str(script),
                      "submitted_at": now_iso(), "cancelled_at": None}
    save_manifest(plan.paths.root, manifest)


def submit_sweep(settings: Settings, plans: list[RunPlan], request: slurm.SlurmRequest, *, label: str | None = None,
                 preflight: Callable[[list[RunPlan]], None] | None = None) -> SlurmSubmission:
    """Write the sweep folder and script, and submit every run that is not finished, queued or running."""
    slurm.require_slurm()
    sweep_id = sweep_id_for([p.run_id for p in plans], label)
    sweep_dir = sweeps_root(settings) / sweep_id
    sweep_dir.mkdir(parents=True, exist_ok=True)
    script = sweep_dir / slurm.SCRIPT_NAME
    manifests = [load_manifest(p.paths.root) for p in plans]
    states = task_states(manifests)
    rows = [SlurmRow(m.id, p.paths.root, m.name, m.status, i, states.get(m.id), _decide(m, states.get(m.id)) or "")
            for i, (p, m) in enumerate(zip(plans, manifests, strict=True))]
    todo = [row for row in rows if not row.action]
    text = slurm.script_text(sweep_id, sweep_dir, [p.paths.root for p in plans], request,
                             slurm.bespoke_command(settings), settings.project_root)
    atomic_write_text(script, text)
    script.chmod(0o755)
    if not todo:
        _write_sweep_json(sweep_dir, sweep_id, plans, None)
        return SlurmSubmission(sweep_id, sweep_dir, script, None, rows)
    if preflight is not None:
        preflight([plans[row.task] for row in todo])  # once, on the submit host, before anything is queued
    tasks = [row.task for row in todo]
    job_id = slurm.submit(script, tasks, request, hold=True)
    try:
        for row in todo:
            _record(plans[row.task], job_id, row.task, sweep_id, script)
            row.action = f"submitted as task {job_id}_{row.task}"
        _write_sweep_json(sweep_dir, sweep_id, plans, {"job_id": job_id, "tasks": tasks, "submitted_at": now_iso(),
                                                       "resources": request.sbatch_lines()})
        slurm.release(job_id)
    except BaseException:
        slurm.cancel([job_id])  # nothing half-submitted stays queued
        raise
    return SlurmSubmission(sweep_id, sweep_dir, script, job_id, rows)


def find_sweep(settings: Settings, arg: str) -> Path | None:
    """A sweep folder from its path, id or unique id prefix (None when `arg` names no sweep)."""
    path = Path(arg).expanduser()
    if (path / SWEEP_JSON).is_file():
        return path.resolve()
    root = sweeps_root(settings)
    known = sorted(p for p in root.iterdir() if (p / SWEEP_JSON).is_file()) if root.is_dir() else []
    matches = [p for p in known if p.name == arg] or [p for p in known if p.name.startswith(arg)]
    if len(matches) > 1:
        raise RunError(f"{arg}: {len(matches)} sweeps start with it ({', '.join(p.name for p in matches)})")
    return matches[0] if matches else None


def _cancel_targets(settings: Settings, arg: str) -> list[Path]:
    sweep_dir = find_sweep(settings, arg)
    if sweep_dir is not None:
        return [Path(run["path"]) for run in load_sweep(sweep_dir)["runs"]]
    try:
        return [resolve_run(arg, settings.outputs_dir)]
    except RunError:
        sweeps = [p.name for p in sweeps_root(settings).iterdir()] if sweeps_root(settings).is_dir() else []
        raise RunError(f"{arg}: no such sweep or run{did_you_mean(arg, sweeps + [p.name for p in list_run_dirs(settings.outputs_dir)])}; "
                       "see `bespoke runs`") from None


def cancel_runs(settings: Settings, arg: str, *, wait: float = 120.0, say: Say | None = None) -> list[SlurmRow]:
    """`bespoke cancel SWEEP|RUN`: scancel the runs' queued or running tasks, wait for them to leave the queue
    (the supervisor stops the trainer and marks the run interrupted on Slurm's SIGTERM), then record the cancel
    and mark any run still recorded as running interrupted. Every run stays resumable."""
    slurm.require_slurm()
    run_dirs = _cancel_targets(settings, arg)
    manifests = [load_manifest(d) for d in run_dirs]
    states = task_states(manifests)
    active = [states[m.id].job for m in manifests if m.id in states and states[m.id].active]
    slurm.cancel(active)
    deadline = time.monotonic() + wait
    while active and time.monotonic() < deadline:
        queued = slurm.queue()
        active = [job for job in active if job in queued]
        if active:
            time.sleep(0.5)
    if active:
        raise RunError(f"{', '.join(active)} still in the queue after {wait:.0f} s; check `squeue` and run "
                       "`bespoke cancel` again")
    rows = []
    for run_dir, before in zip(run_dirs, manifests, strict=True):
        rows.append(_after_cancel(run_dir, before, states.get(before.id)))
    return rows


def _after_cancel(run_dir: Path, before: RunManifest, state: slurm.TaskState | None) -> SlurmRow:
    """Record a cancel in run.json; a run still recorded as running whose Slurm task is over (cancelled now, or
    killed earlier without bespoke recording it) is marked interrupted: resumable. Done under the run's lock,
    so a run someone trains outside Slurm meanwhile is left alone."""
    cancelled = state is not None and state.active
    action = "cancelled" if cancelled else "not queued or running"
    try:
        with RunLock(RunPaths(run_dir), before.id):
            manifest = load_manifest(run_dir)
            stale = manifest.status == "running" and not cancelled
            if (cancelled or stale) and isinstance(manifest.slurm, dict):
                if cancelled:
                    manifest.slurm["cancelled_at"] = now_iso()
                if manifest.status == "running":  # stopped before bespoke could record it
                    manifest.status = "interrupted"
                    if manifest.attempt is not None:
                        manifest.attempt.reason = ("cancelled through Slurm (bespoke cancel)" if cancelled else
                                                   "its Slurm task ended without bespoke recording it (killed?)")
                    action = action if cancelled else "marked interrupted (its task is gone)"
                save_manifest(run_dir, manifest)
    except RunError as error:  # trained by someone else right now (e.g. `bespoke train --run` by hand)
        manifest = load_manifest(run_dir)
        action = f"{action}; not marked: {error}"
    return SlurmRow(manifest.id, run_dir, manifest.name, manifest.status, -1, state, action)


def slurm_columns(run_dirs: list[Path]) -> dict[str, dict]:
    """run id -> {"name", "label", "slurm": {state, job, node, elapsed} or None} for `bespoke runs`.

    Slurm is asked only when a run was submitted through it; node and elapsed fall back to bespoke's own
    record of the last attempt (its host and duration) once Slurm no longer knows the task."""
    manifests, folders = [], {}
    for run_dir in run_dirs:
        try:
            manifests.append(load_manifest(run_dir))
        except BespokeError:
            continue
        folders[manifests[-1].id] = Path(run_dir)
    labels = name_labels(manifests, folders)
    submitted = [m for m in manifests if isinstance(m.slurm, dict) and m.slurm.get("job_id") is not None]
    try:
        states = task_states(submitted) if submitted else {}
    except BespokeError:  # Slurm unreachable from here: show what run.json knows
        states = {}
    out: dict[str, dict] = {}
    for m in manifests:
        info = None
        if m in submitted:
            assert m.slurm is not None
            info = _slurm_info(m, states.get(m.id))
        out[m.id] = {"name": m.name, "label": labels.get(m.id), "slurm": info}
    return out


def short_elapsed(text: str | None) -> str | None:
    """Slurm's elapsed time without leading zeros: "00:01:05" -> "1:05", "1-02:00:00" stays."""
    if not text or "-" in text:
        return text
    trimmed = text.lstrip("0:")
    return trimmed if len(trimmed) > 2 else f"0:{trimmed.zfill(2)}"


def _slurm_info(manifest: RunManifest, state: slurm.TaskState | None) -> dict:
    """Slurm's view of one run; once Slurm forgot the task, bespoke's record of the last attempt (host,
    duration) stands in for node and elapsed."""
    assert manifest.slurm is not None
    attempt = manifest.attempt
    if state is not None:
        word, node = state.shown, state.node
        elapsed = short_elapsed(state.elapsed) if state.state != "PENDING" else None  # "0:00" says nothing
    else:
        word = "cancelled" if manifest.slurm.get("cancelled_at") else "ended"
        node = attempt.host if attempt else None
        elapsed = f"{attempt.duration_s:.0f}s" if attempt and attempt.duration_s is not None else None
    return {"state": word, "job": f"{manifest.slurm['job_id']}_{manifest.slurm['task_id']}", "node": node,
            "elapsed": elapsed, "sweep": manifest.slurm.get("sweep")}
