"""Train one planned run folder: lock, launch through accelerate in the run folder, live progress, run.json, resume.

Success is what exists on disk, not the exit code (sd-scripts exits 0 on "No data found"): a run is
`finished` only when `{output_name}.safetensors` exists and its `ss_epoch` is the last epoch.
Work is never lost: a finished run is skipped, an interrupted or failed one resumes from its newest
`*-state` folder, and `restart` keeps the old log (rotated) and the old model/ (moved to model.prev-N/).
"""

from __future__ import annotations

import os
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

from bespoke.clock import now_iso
from bespoke.errors import RunError
from bespoke.fsutil import atomic_write_text, move_aside
from bespoke.kohya.checkpoints import Checkpoint, epochs_done, find_checkpoints, newest_state_dir
from bespoke.kohya.launch import (
    NEUTRAL_ACCELERATE_CONFIG,
    build_launch,
    pin_to_gpu,
    recordable_env,
    with_resume,
)
from bespoke.kohya.metadata import as_int
from bespoke.kohya.naming import parse_sample_name
from bespoke.kohya.output import log_tail
from bespoke.run.facts import trainer_facts
from bespoke.run.lock import RunLock
from bespoke.run.manifest import RunManifest, load_manifest, save_manifest
from bespoke.run.paths import RunPaths, read_training
from bespoke.run.plan import PlanRequest, launch_spec_for, plan_run
from bespoke.run.preflight import require_preflight
from bespoke.run.progress import ModelWatcher, ProgressView, RunProgress
from bespoke.run.runner import ProcessResult, rotate_log, run_logged
from bespoke.settings import Settings

LOG_TAIL_LINES = 30
Say = Callable[[str], None]


@dataclass
class TrainResult:
    """How `train_run` ended. `status` is the run.json status; `skipped` when it was already finished."""

    run_id: str
    run_dir: Path
    status: str
    exit_code: int | None = None
    epochs_done: int = 0
    epochs_total: int | None = None
    duration: float = 0.0
    final_loss: float | None = None
    reason: str | None = None
    skipped: bool = False
    resumed_from: str | None = None
    log_tail: list[str] = field(default_factory=list)
    argv: list[str] = field(default_factory=list)


def sample_counts(sample_dir: Path) -> dict:
    """Sample images by epoch: {"count": n, "by_epoch": {"0": 4, "1": 4}}."""
    by_epoch: dict[str, int] = {}
    count = 0
    if Path(sample_dir).is_dir():
        for path in Path(sample_dir).glob("*.png"):
            info = parse_sample_name(path)
            if info.prompt_index is None:  # not an sd-scripts sample name
                continue
            count += 1
            key = str(info.epoch) if info.epoch is not None else f"step{info.step}"
            by_epoch[key] = by_epoch.get(key, 0) + 1
    return {"count": count, "by_epoch": dict(sorted(by_epoch.items()))}


def set_aside_model_dir(model_dir: Path) -> Path | None:
    """Move a non-empty model/ to the next free model.prev-N/ (nothing is deleted); return where it went."""
    model_dir = Path(model_dir)
    if not model_dir.is_dir() or not any(model_dir.iterdir()):
        return None
    return move_aside(model_dir, lambda n: f"{model_dir.name}.prev-{n}")


def neutral_accelerate_config(paths: RunPaths) -> Path:
    """`config/accelerate.yaml` of the run (created once, never rewritten): the file given to --config_file."""
    if not paths.accelerate_yaml.exists():
        atomic_write_text(paths.accelerate_yaml, NEUTRAL_ACCELERATE_CONFIG)
    return paths.accelerate_yaml


def _checkpoints_json(paths: RunPaths, checkpoints: list[Checkpoint]) -> list[dict]:
    return [c.to_json(paths.root) for c in checkpoints]


def _prepare_folder(paths: RunPaths, manifest: RunManifest, output_name: str, restart: bool, say: Say) -> Path | None:
    """Make model/ and the log ready for this attempt; returns the state folder to resume from, if any."""
    run_id, status = manifest.id, manifest.status
    if restart:
        moved, rotated = set_aside_model_dir(paths.model_dir), rotate_log(paths.train_log)
        if moved or rotated:
            say(f"{run_id}: starting over; old model/ kept in {moved.name if moved else '-'}, "
                f"old log in {rotated.name if rotated else '-'}")
        return None
    resume = None
    if status in ("running", "interrupted", "failed"):
        resume = newest_state_dir(paths.model_dir)
        checkpoints = find_checkpoints(paths.model_dir, output_name)
        if resume is not None:
            say(f"{run_id}: resuming from {resume.name} (was {status})")
        elif checkpoints:
            raise RunError(
                f"run {run_id} was {status} after {epochs_done(checkpoints)} epoch(s) and has no *-state folder to "
                "resume from (save_state was off); re-run with --restart to start over in the same folder "
                "(the old model/ is kept as model.prev-N, the old log rotated)")
        elif moved := set_aside_model_dir(paths.model_dir):
            # no checkpoint yet: start over in place, keeping e.g. the samples drawn before training
            say(f"{run_id}: starting over (was {status}, no checkpoint yet); old model/ kept in {moved.name}")
    elif moved := set_aside_model_dir(paths.model_dir):  # "planned" yet model/ has files: keep them, never mix
        say(f"{run_id}: model/ already had files; kept them in {moved.name}")
    rotate_log(paths.train_log)
    return resume


class _Supervision:
    """The calling thread's view of a running trainer: writes run.json as epochs complete, feeds the display."""

    def __init__(self, paths: RunPaths, manifest: RunManifest, output_name: str, progress: RunProgress,
                 view: ProgressView | None, facts_thread: threading.Thread, facts: dict):
        self.paths, self.manifest, self.output_name = paths, manifest, output_name
        self.progress, self.view = progress, view
        self.facts_thread, self.facts = facts_thread, facts
        self.facts_written = False
        self.watcher = ModelWatcher(paths.model_dir)
        self.last_poll = 0.0

    def tick(self) -> None:
        """Called every quarter second while the trainer runs."""
        changed = False
        if not self.facts_written and not self.facts_thread.is_alive():
            self.facts_written = changed = True
            if self.manifest.attempt is not None:
                self.manifest.attempt.trainer = dict(self.facts)
        new_ckpts: list[Path] = []
        new_samples: list[Path] = []
        if time.monotonic() - self.last_poll >= 0.5:
            self.last_poll = time.monotonic()
            new_ckpts, new_samples = self.watcher.poll()
        if self.progress.take_epoch_changed() or new_ckpts:
            checkpoints = find_checkpoints(self.paths.model_dir, self.output_name)
            snap = self.progress.snapshot()
            self.manifest.epochs_done = max(snap["epoch"] - 1, epochs_done(checkpoints), 0)
            self.manifest.checkpoints = _checkpoints_json(self.paths, checkpoints)
            self.manifest.samples = sample_counts(self.paths.sample_dir)
            self.manifest.last_loss = snap["loss"]
            changed = True
        if changed:
            save_manifest(self.paths.root, self.manifest)
        if self.view is not None:
            self.view.refresh(new_ckpts, new_samples)


def _outcome(result: ProcessResult, final: Checkpoint | None, progress: RunProgress, output_name: str,
             epochs_total: int | None) -> tuple[str, str | None]:
    """(status, reason) of an attempt, decided from what is on disk."""
    if result.interrupted:
        return "interrupted", "stopped by the user (Ctrl-C / SIGTERM)"
    if result.exit_code != 0:
        return "failed", f"trainer exited with code {result.exit_code}"
    if final is None:
        return "failed", (f"trainer exited 0 but wrote no checkpoint: {progress.no_data}" if progress.no_data else
                          f"trainer exited 0 but wrote no {output_name}.safetensors")
    if epochs_total and final.epoch != epochs_total:
        return "failed", f"{output_name}.safetensors is epoch {final.epoch}, expected the last epoch {epochs_total}"
    return "finished", None


@dataclass(frozen=True)
class LaunchOptions:
    """How to launch one run: GPUs, outside stop, environment, and callbacks (for sweeps and tests)."""

    gpu_ids: tuple[str, ...] = ()
    pin_gpu: str | None = None  # one GPU for this run via CUDA_VISIBLE_DEVICES (sweep --gpus)
    stop: threading.Event | None = None
    base_env: dict[str, str] | None = None
    stop_timeouts: tuple[float, float] = (10.0, 5.0)
    on_spawn: Callable[[int], None] | None = None
    preflight: bool = True  # bespoke preflight before the launch (after the lock and the resume rules)


def _skipped(manifest: RunManifest, paths: RunPaths) -> TrainResult:
    exit_code = manifest.attempt.exit_code if manifest.attempt is not None else None
    return TrainResult(manifest.id, paths.root, "finished", exit_code, manifest.epochs_done, manifest.epochs_total,
                       manifest.duration_s, manifest.final_loss, skipped=True, reason="already finished")


def train_run(settings: Settings, run_dir: Path, *, restart: bool = False, gpu_ids: tuple[str, ...] = (),
              pin_gpu: str | None = None, progress: RunProgress | None = None, view: ProgressView | None = None,
              stop: threading.Event | None = None, base_env: dict[str, str] | None = None,
              stop_timeouts: tuple[float, float] = (10.0, 5.0), on_message: Say | None = None,
              on_spawn: Callable[[int], None] | None = None, preflight: bool = True) -> TrainResult:
    """Train the planned run in `run_dir` and return how it ended (see the module docstring for the rules).

    `progress` is a `RunProgress` to feed (created if None); `view` a `ProgressView` (or None for no display);
    `pin_gpu` pins the run to one GPU with CUDA_VISIBLE_DEVICES (sweep --gpus); `stop` stops it from outside;
    `on_spawn(pid)` is called right after the trainer process started; `preflight` runs `bespoke preflight` first.
    Raises RunError when the run is locked, or cannot be resumed without `restart`; PreflightError when the
    installed sd-scripts would refuse the run on this box.
    """
    paths = RunPaths(Path(run_dir))
    manifest = load_manifest(paths.root)
    if manifest.status == "finished" and not restart:
        return _skipped(manifest, paths)
    settings.sd_script("train_network.py")  # before the lock: a missing checkout changes nothing on disk
    options = LaunchOptions(tuple(gpu_ids), pin_gpu, stop, base_env, stop_timeouts, on_spawn, preflight)
    with RunLock(paths, manifest.id):
        return _train_locked(settings, paths, restart, options, progress, view, on_message or (lambda text: None))


def _train_locked(settings: Settings, paths: RunPaths, restart: bool, options: LaunchOptions,
                  progress: RunProgress | None, view: ProgressView | None, say: Say) -> TrainResult:
    manifest = load_manifest(paths.root)  # may have changed while we waited for the lock
    training = read_training(paths)
    output_name = str(training.get("output_name") or "last")
    total_epochs = as_int(training.get("max_train_epochs"))
    resume = _prepare_folder(paths, manifest, output_name, restart, say)
    if options.preflight:
        require_preflight(settings, [paths.root])
    spec = replace(launch_spec_for(settings, paths, training, gpu_ids=options.gpu_ids),
                   accelerate_config=Path(paths.relative(neutral_accelerate_config(paths))))
    if options.pin_gpu is not None:
        spec = pin_to_gpu(spec, options.pin_gpu)
    if resume is not None:
        spec = with_resume(spec, paths.relative(resume))
    argv, env, overrides = build_launch(spec, dict(os.environ if options.base_env is None else options.base_env))
    facts: dict = {}  # versions/commit/GPU take ~0.2 s of helper processes: gathered while the trainer starts
    facts_thread = threading.Thread(target=lambda: facts.update(trainer_facts(settings)), daemon=True)
    facts_thread.start()
    manifest.new_attempt(argv=argv, env_overrides=recordable_env(overrides), cwd=str(spec.cwd),
                         host=socket.gethostname(), resumed_from=resume.name if resume is not None else None)
    manifest.status, manifest.epochs_total = "running", total_epochs
    save_manifest(paths.root, manifest)
    progress = progress or RunProgress(manifest.id, total_epochs)
    progress.status = "training"
    supervision = _Supervision(paths, manifest, output_name, progress, view, facts_thread, facts)
    if view is not None:
        view.start(progress)
    try:
        result = run_logged(argv, env, paths.train_log, cwd=spec.cwd, on_line=progress.feed,
                            on_tick=supervision.tick, stop=options.stop, stop_timeouts=options.stop_timeouts,
                            env_overrides=recordable_env(overrides), on_start=options.on_spawn)
    finally:
        if view is not None:
            view.stop()
    facts_thread.join()
    return _finish(paths, manifest, result, progress, output_name, total_epochs, resume, facts)


def _finish(paths: RunPaths, manifest: RunManifest, result: ProcessResult, progress: RunProgress, output_name: str,
            total_epochs: int | None, resume: Path | None, facts: dict) -> TrainResult:
    """Record how the attempt ended in run.json and return it."""
    checkpoints = find_checkpoints(paths.model_dir, output_name)
    final = next((c for c in checkpoints if c.final), None)
    snap = progress.snapshot()
    epochs_total = snap["total_epochs"] or total_epochs
    status, reason = _outcome(result, final, progress, output_name, epochs_total)
    tail = log_tail(paths.train_log, LOG_TAIL_LINES) if status != "finished" else None
    duration = manifest.duration_s + result.duration if resume is not None else result.duration
    progress.status = status
    attempt = manifest.attempt
    assert attempt is not None  # set by _train_locked before the launch
    attempt.finished_at, attempt.exit_code, attempt.reason = now_iso(), result.exit_code, reason
    attempt.log_tail, attempt.duration_s, attempt.trainer = tail, round(result.duration, 3), dict(facts)
    manifest.status, manifest.epochs_done, manifest.epochs_total = status, epochs_done(checkpoints), epochs_total
    manifest.checkpoints = _checkpoints_json(paths, checkpoints)
    manifest.samples = sample_counts(paths.sample_dir)
    manifest.final_loss, manifest.duration_s = snap["loss"], round(duration, 3)
    save_manifest(paths.root, manifest)
    return TrainResult(manifest.id, paths.root, status, result.exit_code, manifest.epochs_done, epochs_total, duration,
                       snap["loss"], reason, resumed_from=str(resume) if resume is not None else None,
                       log_tail=tail or [], argv=attempt.argv)


def train_request(settings: Settings, *, resolution: int, dataset: Path, preset: str | None = None,
                  overrides: tuple[str, ...] = (), prompts: Path | None = None, restart: bool = False,
                  resume: bool = True, gpu_ids: tuple[str, ...] = (), view: ProgressView | None = None,
                  on_message: Say | None = None, preflight: bool = True) -> TrainResult:
    """`bespoke train`: plan (or find) the run folder for this request, then `train_run` it."""
    plan = plan_run(settings, PlanRequest(resolution=resolution, dataset=Path(dataset), preset=preset,
                                          overrides=tuple(overrides), prompts=prompts))
    if on_message is not None:
        on_message(f"run {plan.run_id} ({'new' if plan.created else plan.manifest.status}): {plan.paths.root}")
    if not resume and not restart and plan.manifest.status in ("interrupted", "failed"):
        raise RunError(f"run {plan.run_id} is {plan.manifest.status}; drop --no-resume to resume it, "
                       "or use --restart to start over")
    return train_run(settings, plan.paths.root, restart=restart, gpu_ids=gpu_ids, view=view, on_message=on_message,
                     preflight=preflight)
