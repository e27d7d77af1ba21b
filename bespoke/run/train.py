"""Train one planned run folder: lock, check the configs, launch through accelerate in the run folder under the
one supervisor (`bespoke.run.runner`), live progress, run.json, resume.

Success is what exists on disk, not the exit code nor the signal (sd-scripts exits 0 on "No data found"): a run
is `finished` exactly when `{output_name}.safetensors` is whole and its `ss_epoch` is the last epoch.
Work is never lost: a finished run is skipped, an interrupted, failed or stale one resumes from its newest
`*-state` folder (`bespoke.run.resume`), and `restart` keeps the old log (rotated) and the old model/ (moved to
model.prev-N/). SIGINT, SIGTERM and SIGHUP stop the trainer's tree and mark the run interrupted; an exception
in bespoke does the same before it propagates.
"""

from __future__ import annotations

import copy
import os
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

from bespoke import __version__
from bespoke.clock import now_iso
from bespoke.errors import BespokeError, ConfigError, RunError
from bespoke.fsutil import atomic_write_text, sha256_file
from bespoke.kohya.check import check_file
from bespoke.kohya.checkpoints import Checkpoint, epochs_done
from bespoke.kohya.launch import (
    NEUTRAL_ACCELERATE_CONFIG,
    LaunchSpec,
    build_launch,
    pin_to_gpu,
    recordable_env,
    with_resume,
)
from bespoke.kohya.metadata import as_int
from bespoke.kohya.naming import sample_counts
from bespoke.kohya.output import log_tail
from bespoke.kohya.preflight import GATE_PASSED, gate_words
from bespoke.run.facts import trainer_facts
from bespoke.run.lock import RunLock
from bespoke.run.manifest import RunManifest, load_manifest, save_manifest
from bespoke.run.paths import RunPaths, read_training
from bespoke.run.plan import CONFIG_FILES, PlanRequest, launch_spec_for, modified_configs, plan_run
from bespoke.run.preflight import gate_refusal
from bespoke.run.proctree import DEFAULT_GRACE
from bespoke.run.progress import ModelWatcher, ProgressView, RunProgress
from bespoke.run.resume import (
    ResumeSamples,
    complete_final,
    finished_on_disk,
    outcome_from_disk,
    prepare_folder,
    whole_checkpoints,
)
from bespoke.run.runner import ProcessResult, StopSignals, rotate_log, run_logged, signal_name
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
    signum: int | None = None  # the signal that stopped bespoke (exit code 128 + signum)


def neutral_accelerate_config(paths: RunPaths) -> Path:
    """`config/accelerate.yaml` of the run (created once, never rewritten): the file given to --config_file."""
    if not paths.accelerate_yaml.exists():
        atomic_write_text(paths.accelerate_yaml, NEUTRAL_ACCELERATE_CONFIG)
    return paths.accelerate_yaml


def check_configs(paths: RunPaths, manifest: RunManifest, say: Say) -> dict[str, str]:
    """Re-validate the run's configs like `bespoke check` at every launch and compare them with the hashes plan
    recorded. A file edited by hand that still passes is used and recorded ({name: sha256}); one that fails is
    refused with the reason, before anything changes on disk."""
    edited = modified_configs(paths, manifest)
    for name in CONFIG_FILES:
        path = paths.config_dir / name
        if not path.is_file():
            raise ConfigError(f"{path}: missing; restore it or re-plan the run")
        try:
            check_file(path)
        except BespokeError as error:
            how = "was edited by hand since plan and " if name in edited else ""
            raise ConfigError(f"{path} {how}fails the check: {error}; fix it (`bespoke check {path}`) or "
                              "re-plan the run") from error
    for name in edited:
        say(f"{manifest.id}: config/{name} was edited by hand since plan; it passes the check and is used as is "
            "(recorded in run.json)")
    return {name: sha256_file(paths.config_dir / name) for name in edited}


def refuse_simulated(manifest: RunManifest, paths: RunPaths) -> None:
    """A demo run (simulated samples, no model) is never trained into: its status would mean nothing real."""
    if manifest.simulated or manifest.demo:
        raise RunError(f"run {manifest.id} in {paths.root} belongs to `bespoke demo` (its samples are SIMULATED, no "
                       f"model was trained); bespoke never trains into it: plan a real run with "
                       f"`bespoke train -r {manifest.resolution or 512}` outside the demo folder")


class _Supervision:
    """The calling thread's view of a running trainer: writes run.json as epochs complete, feeds the display."""

    def __init__(self, paths: RunPaths, manifest: RunManifest, output_name: str, progress: RunProgress,
                 view: ProgressView | None, facts: _Facts, firsts: ResumeSamples):
        self.paths, self.manifest, self.output_name = paths, manifest, output_name
        self.progress, self.view, self.facts, self.firsts = progress, view, facts, firsts
        self.facts_written = False
        self.watcher = ModelWatcher(paths.model_dir)
        self.last_poll = 0.0

    def on_line(self, stream: str, line: str) -> None:
        """Each line of the trainer's output: the gate's pass line ends the preflight status, the rest is progress."""
        if self.progress.status == "preflight" and line.startswith(GATE_PASSED):
            self.progress.status = "training"
        self.progress.feed(stream, line)

    def tick(self) -> None:
        """Called every quarter second while the trainer runs."""
        changed = False
        if not self.facts_written and self.facts.ready():
            self.facts_written = changed = True
            if self.manifest.attempt is not None:
                self.manifest.attempt.trainer = dict(self.facts.values)
        new_ckpts: list[Path] = []
        new_samples: list[Path] = []
        if time.monotonic() - self.last_poll >= 0.5:
            self.last_poll = time.monotonic()
            self.firsts.collect()
            new_ckpts, new_samples = self.watcher.poll()
        if self.progress.take_epoch_changed() or new_ckpts:
            checkpoints = whole_checkpoints(self.paths.model_dir, self.output_name)
            snap = self.progress.snapshot()
            self.manifest.epochs_done = max(snap["epoch"] - 1, epochs_done(checkpoints), 0)
            self.manifest.checkpoints = [c.to_json(self.paths.root) for c in checkpoints]
            self.manifest.samples = sample_counts(self.paths.sample_dir)
            self.manifest.last_loss = snap["loss"]
            changed = True
        if changed:
            save_manifest(self.paths.root, self.manifest)
        if self.view is not None:
            try:
                self.view.refresh(new_ckpts, new_samples)
            except OSError:  # the terminal went away (SIGHUP): keep supervising without a display
                self.view = None


class _Facts:
    """Versions/commit/GPU of the trainer take ~0.2 s of helper processes: gathered while the trainer starts."""

    def __init__(self, settings: Settings):
        self.values: dict = {}
        self.thread = threading.Thread(target=lambda: self.values.update(trainer_facts(settings)), daemon=True)
        self.thread.start()

    def ready(self) -> bool:
        return not self.thread.is_alive()


def _outcome(result: ProcessResult, checkpoints: list[Checkpoint], progress: RunProgress, output_name: str,
             epochs_total: int | None) -> tuple[str, str | None]:
    """(status, reason) of an attempt, decided from what is on disk: a whole final checkpoint of the last epoch
    is a finished run, whatever signal or exit code came with it."""
    if complete_final(checkpoints, epochs_total) is not None:
        return "finished", None
    if result.interrupted:
        return "interrupted", f"stopped by bespoke ({signal_name(result.signum)})"
    if result.exit_code != 0:
        return "failed", f"trainer exited with code {result.exit_code}"
    final = next((c for c in checkpoints if c.final), None)
    if final is None:
        return "failed", (f"trainer exited 0 but wrote no checkpoint: {progress.no_data}" if progress.no_data else
                          f"trainer exited 0 but wrote no {output_name}.safetensors")
    return "failed", f"{output_name}.safetensors is epoch {final.epoch}, expected the last epoch {epochs_total}"


@dataclass(frozen=True)
class LaunchOptions:
    """How to launch one run: GPUs, outside stop, environment, and callbacks (for sweeps and tests)."""

    gpu_ids: tuple[str, ...] = ()
    pin_gpu: str | None = None  # one GPU for this run via CUDA_VISIBLE_DEVICES (sweep --gpus)
    stop: threading.Event | None = None
    base_env: dict[str, str] | None = None
    stop_timeouts: tuple[float, float] = DEFAULT_GRACE
    on_spawn: Callable[[int], None] | None = None
    preflight: bool = True  # gate the launch with bespoke preflight (bespoke.kohya.preflight.gate_words)


def _skipped(manifest: RunManifest, paths: RunPaths, reason: str = "already finished") -> TrainResult:
    exit_code = manifest.attempt.exit_code if manifest.attempt is not None else None
    return TrainResult(manifest.id, paths.root, "finished", exit_code, manifest.epochs_done, manifest.epochs_total,
                       manifest.duration_s, manifest.final_loss, skipped=True, reason=reason)


def train_run(settings: Settings, run_dir: Path, *, restart: bool = False, gpu_ids: tuple[str, ...] = (),
              pin_gpu: str | None = None, progress: RunProgress | None = None, view: ProgressView | None = None,
              stop: threading.Event | None = None, base_env: dict[str, str] | None = None,
              stop_timeouts: tuple[float, float] = DEFAULT_GRACE, on_message: Say | None = None,
              on_spawn: Callable[[int], None] | None = None, preflight: bool = True) -> TrainResult:
    """Train the planned run in `run_dir` and return how it ended (see the module docstring for the rules).

    `progress` is a `RunProgress` to feed (created if None); `view` a `ProgressView` (or None for no display);
    `pin_gpu` pins the run to one GPU with CUDA_VISIBLE_DEVICES (sweep --gpus); `stop` stops it from outside;
    `stop_timeouts` is the grace period of a stop; `on_spawn(pid)` is called right after the trainer started;
    `preflight` runs `bespoke preflight` first (PreflightError when the installed sd-scripts would refuse the run).
    SIGINT/SIGTERM/SIGHUP stop it (result `interrupted`, `signum` set). Raises RunError when the run is locked,
    simulated, or cannot be resumed without `restart`; ConfigError when a config fails its check.
    """
    paths = RunPaths(Path(run_dir))
    manifest = load_manifest(paths.root)
    refuse_simulated(manifest, paths)
    if manifest.status == "finished" and not restart:
        return _skipped(manifest, paths)
    settings.sd_script("train_network.py")  # before the lock: a missing checkout changes nothing on disk
    options = LaunchOptions(tuple(gpu_ids), pin_gpu, stop, base_env, stop_timeouts, on_spawn, preflight)
    with StopSignals() as signals, RunLock(paths, manifest.id) as lock:
        result = _train_locked(settings, paths, restart, options, _Display(progress, view, on_message), lock,
                               signals)
    if result.signum is None and signals.signum is not None:  # it came while run.json was being written
        result.signum = signals.signum
    return result


@dataclass
class _Display:
    progress: RunProgress | None
    view: ProgressView | None
    on_message: Say | None

    def say(self, text: str) -> None:
        if self.on_message is not None:
            try:
                self.on_message(text)
            except OSError:  # the terminal went away (SIGHUP)
                self.on_message = None


def _train_locked(settings: Settings, paths: RunPaths, restart: bool, options: LaunchOptions, display: _Display,
                  lock: RunLock, signals: StopSignals) -> TrainResult:
    manifest = load_manifest(paths.root)  # may have changed while we waited for the lock
    training = read_training(paths)
    output_name = str(training.get("output_name") or "last")
    total_epochs = as_int(training.get("max_train_epochs"))
    if not restart and finished_on_disk(paths, manifest, output_name, total_epochs):
        return _skipped(manifest, paths, "already finished (every epoch is on disk)")
    edited = check_configs(paths, manifest, display.say)
    resume = prepare_folder(paths, manifest, output_name, restart, display.say)
    rotated = rotate_log(paths.train_log)
    if restart and rotated:
        display.say(f"{manifest.id}: old log kept in {rotated.name}")
    spec, (argv, env, overrides) = _launch(settings, paths, training, options, resume)
    if signals.signum is not None:  # stopped before anything was launched: nothing changed
        return TrainResult(manifest.id, paths.root, manifest.status, reason="stopped before the launch",
                           signum=signals.signum)
    before = copy.deepcopy(manifest)  # what run.json goes back to if the preflight gate stops the launch
    attempt = manifest.new_attempt(argv=argv, env_overrides=recordable_env(overrides), cwd=str(spec.cwd),
                                   host=socket.gethostname(), resumed_from=resume.name if resume else None,
                                   bespoke_version=__version__, edited_configs=edited)
    if restart:  # a real restart of a run keeps nothing simulated or measured from before
        manifest.loss_history, manifest.last_loss, manifest.final_loss, manifest.duration_s = None, None, None, 0.0
    manifest.status, manifest.epochs_total = "running", total_epochs
    save_manifest(paths.root, manifest)
    progress = display.progress or RunProgress(manifest.id, total_epochs)
    progress.status = "preflight" if options.preflight else "training"
    firsts = ResumeSamples(paths, attempt.number, resume is not None)
    supervision = _Supervision(paths, manifest, output_name, progress, display.view, _Facts(settings), firsts)
    result = _supervised(argv, env, overrides, spec, supervision, display, options, lock, signals)
    supervision.facts.thread.join()
    problem = gate_refusal(paths.preflight_report, paths.root) if options.preflight and not result.interrupted else None
    if problem is not None:
        save_manifest(paths.root, before)  # nothing was trained: the run is as it was, the log says why
        raise problem
    attempt.resume_samples = firsts.collect()
    return _finish(paths, manifest, result, progress, output_name, total_epochs, resume, supervision.facts.values)


def _supervised(argv: list[str], env: dict[str, str], overrides: dict[str, str], spec: LaunchSpec,
                supervision: _Supervision, display: _Display, options: LaunchOptions, lock: RunLock,
                signals: StopSignals) -> ProcessResult:
    """Run the launch under the one supervisor with the live view; an exception marks the run interrupted first."""
    paths, manifest = supervision.paths, supervision.manifest

    def spawned(pid: int) -> None:
        lock.trainer_started(pid)
        if options.on_spawn is not None:
            options.on_spawn(pid)

    if display.view is not None:
        display.view.start(supervision.progress)
    try:
        return run_logged(argv, env, paths.train_log, cwd=spec.cwd, on_line=supervision.on_line,
                          on_tick=supervision.tick, stop=options.stop, stop_timeouts=options.stop_timeouts,
                          env_overrides=recordable_env(overrides), on_start=spawned, signals=signals,
                          run_dir=paths.root)
    except BaseException as error:  # the tree is stopped already; record that before it propagates
        _record_crash(paths, manifest, error)
        if isinstance(error, OSError):
            raise RunError(f"run {manifest.id}: {error}; the trainer was stopped and the run marked interrupted: "
                           "fix that, then run the same command again to resume") from error
        raise
    finally:
        if display.view is not None:
            try:
                display.view.stop()
            except OSError:
                pass


def _launch(settings: Settings, paths: RunPaths, training: dict, options: LaunchOptions, resume: Path | None):
    """The launch spec of this attempt and its (argv, env, env overrides)."""
    spec = replace(launch_spec_for(settings, paths, training, gpu_ids=options.gpu_ids),
                   accelerate_config=Path(paths.relative(neutral_accelerate_config(paths))))
    if options.pin_gpu is not None:
        spec = pin_to_gpu(spec, options.pin_gpu)
    if resume is not None:
        spec = with_resume(spec, paths.relative(resume))
    if options.preflight:
        paths.preflight_report.unlink(missing_ok=True)
        spec = replace(spec, gate=gate_words(paths.relative(paths.preflight_report)))
    return spec, build_launch(spec, dict(os.environ if options.base_env is None else options.base_env))


def _record_crash(paths: RunPaths, manifest: RunManifest, error: BaseException) -> None:
    """Mark the run interrupted after an exception in bespoke (best effort: the disk may be what failed)."""
    status, checkpoints = outcome_from_disk(paths, manifest)
    manifest.status, manifest.epochs_done = status, epochs_done(checkpoints)
    manifest.checkpoints = [c.to_json(paths.root) for c in checkpoints]
    if manifest.attempt is not None:
        manifest.attempt.finished_at = now_iso()
        manifest.attempt.reason = f"bespoke failed while supervising: {type(error).__name__}: {error}"[:500]
    try:
        save_manifest(paths.root, manifest)
    except OSError:
        pass  # run.json stays "running"; the lock is released, so `runs` shows it stale and a re-run resumes


def _finish(paths: RunPaths, manifest: RunManifest, result: ProcessResult, progress: RunProgress, output_name: str,
            total_epochs: int | None, resume: Path | None, facts: dict) -> TrainResult:
    """Record how the attempt ended in run.json and return it."""
    checkpoints = whole_checkpoints(paths.model_dir, output_name)
    snap = progress.snapshot()
    epochs_total = snap["total_epochs"] or total_epochs
    status, reason = _outcome(result, checkpoints, progress, output_name, epochs_total)
    tail = log_tail(paths.train_log, LOG_TAIL_LINES) if status != "finished" else None
    duration = manifest.duration_s + result.duration if resume is not None else result.duration
    progress.status = status
    attempt = manifest.attempt
    assert attempt is not None  # set by _train_locked before the launch
    attempt.finished_at, attempt.exit_code, attempt.reason = now_iso(), result.exit_code, reason
    attempt.log_tail, attempt.duration_s, attempt.trainer = tail, round(result.duration, 3), dict(facts)
    attempt.signal = signal_name(result.signum) if result.signum is not None else None
    manifest.status, manifest.epochs_done, manifest.epochs_total = status, epochs_done(checkpoints), epochs_total
    manifest.checkpoints = [c.to_json(paths.root) for c in checkpoints]
    manifest.samples = sample_counts(paths.sample_dir)
    manifest.final_loss, manifest.duration_s = snap["loss"], round(duration, 3)
    save_manifest(paths.root, manifest)
    return TrainResult(manifest.id, paths.root, status, result.exit_code, manifest.epochs_done, epochs_total, duration,
                       snap["loss"], reason, resumed_from=str(resume) if resume is not None else None,
                       log_tail=tail or [], argv=attempt.argv, signum=result.signum)


def train_request(settings: Settings, *, resolution: int, dataset: Path, preset: str | None = None,
                  overrides: tuple[str, ...] = (), prompts: Path | None = None, restart: bool = False,
                  resume: bool = True, gpu_ids: tuple[str, ...] = (), view: ProgressView | None = None,
                  on_message: Say | None = None, name: str | None = None,
                  preflight: bool = True) -> TrainResult:
    """`bespoke train`: plan (or find) the run folder for this request, then `train_run` it."""
    plan = plan_run(settings, PlanRequest(resolution=resolution, dataset=Path(dataset), preset=preset,
                                          overrides=tuple(overrides), prompts=prompts, name=name))
    if on_message is not None:
        on_message(f"run {plan.run_id} ({'new' if plan.created else plan.manifest.status}): {plan.paths.root}")
    if not resume and not restart and plan.manifest.status in ("interrupted", "failed"):
        raise RunError(f"run {plan.run_id} is {plan.manifest.status}; drop --no-resume to resume it, "
                       "or use --restart to start over")
    return train_run(settings, plan.paths.root, restart=restart, gpu_ids=gpu_ids, view=view, on_message=on_message,
                     preflight=preflight)
