"""Train one planned run folder: lock, check the configs, launch through accelerate in the run folder under the
one supervisor (`bespoke.run.runner`), live progress, run.json, resume.

Success is what exists on disk, not the exit code nor the signal (sd-scripts exits 0 on "No data found"): a run
is `finished` exactly when `{output_name}.safetensors` is whole and its `ss_epoch` is the last epoch.
Work is never lost: a finished run is skipped, an interrupted, failed or stale one resumes from its newest
`*-state` folder (`bespoke.run.resume`), and `restart` keeps the old log (rotated) and the old model/ (moved to
model.prev-N/). SIGINT, SIGTERM and SIGHUP stop the trainer (bespoke.run.stopping: recorded in the attempt) and
mark the run interrupted; an exception in bespoke does the same before it propagates. A stop the run's loop
requested (a stop rule, the budget, a caller's StopRequest: bespoke.run.loop) goes the same way, at a clean point,
and makes it `stopped-early`, which like `finished` is skipped unless `past_stop` continues it.
"""

from __future__ import annotations

import copy
import os
import socket
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path

from bespoke import __version__
from bespoke.clock import now_iso
from bespoke.errors import BespokeError, ConfigError, RunError
from bespoke.fsutil import atomic_write_text, sha256_file
from bespoke.kohya.check import check_file
from bespoke.kohya.checkpoints import Checkpoint
from bespoke.kohya.launch import (
    NEUTRAL_ACCELERATE_CONFIG,
    LaunchSpec,
    build_launch,
    pin_to_gpu,
    recordable_env,
    with_resume,
)
from bespoke.kohya.metadata import as_int
from bespoke.kohya.output import log_tail
from bespoke.kohya.preflight import gate_words
from bespoke.run.events import Broadcast, Finished, Message, Observer, Started, Stopping, TrainEvent, ignore
from bespoke.run.lock import RunLock
from bespoke.run.loop import EpochLoop, LoopOptions, close_attempt, loop_for
from bespoke.run.manifest import EarlyStop, RunManifest, load_manifest, save_manifest
from bespoke.run.paths import RunPaths, read_training
from bespoke.run.plan import CONFIG_FILES, PlanRequest, launch_spec_for, modified_configs, plan_run
from bespoke.run.preflight import gate_refusal
from bespoke.run.proctree import DEFAULT_GRACE
from bespoke.run.progress import RunProgress
from bespoke.run.resume import (
    ResumeSamples,
    complete_final,
    expected_prompts,
    finished_on_disk,
    missing_note,
    prepare_folder,
    record_on_disk,
    resume_epoch,
    stop_note,
    whole_checkpoints,
)
from bespoke.run.runner import (
    STOP_REQUEST,
    Hooks,
    ProcessResult,
    ProcessSpec,
    StopSignals,
    rotate_log,
    run_logged,
)
from bespoke.run.stopping import StopPolicy
from bespoke.run.supervision import Supervision, TrainerFacts
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
    early_stop: EarlyStop | None = None  # why a stopped-early run stopped
    cost_usd: float | None = None  # what the run has cost so far (all attempts), with a GPU price


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


def _outcome(result: ProcessResult, checkpoints: list[Checkpoint], progress: RunProgress, output_name: str,
             epochs_total: int | None, early: EarlyStop | None) -> tuple[str, str | None]:
    """(status, reason) of an attempt, decided from what is on disk: a whole final checkpoint of the last epoch
    is a finished run, whatever signal or exit code came with it."""
    if complete_final(checkpoints, epochs_total) is not None:
        return "finished", None
    if result.interrupted and result.signum is None and early is not None:
        return "stopped-early", early.reason
    if result.interrupted:
        return "interrupted", None  # the reason says where the resume starts: _finish (resume.stop_note)
    if result.exit_code != 0:
        return "failed", f"trainer exited with code {result.exit_code}"
    final = next((c for c in checkpoints if c.final), None)
    if final is None:
        return "failed", (f"trainer exited 0 but wrote no checkpoint: {progress.no_data}" if progress.no_data else
                          f"trainer exited 0 but wrote no {output_name}.safetensors")
    return "failed", f"{output_name}.safetensors is epoch {final.epoch}, expected the last epoch {epochs_total}"


@dataclass(frozen=True)
class TrainOptions:
    """How to train one run; every field has `bespoke train`'s default."""

    restart: bool = False  # start over in the run folder (old model/ kept aside, log rotated)
    resume: bool = True  # False (--no-resume): an interrupted or failed run is refused instead of resumed
    gpu_ids: tuple[str, ...] = ()  # several -> accelerate --multi_gpu
    pin_gpu: str | None = None  # one GPU for this run via CUDA_VISIBLE_DEVICES (sweep --gpus)
    stop: threading.Event | None = None  # set from outside to stop the run (a sweep's Ctrl-C)
    base_env: Mapping[str, str] | None = None  # the environment to launch from (default: this process's)
    stop_timeouts: tuple[float, float] = DEFAULT_GRACE
    preflight: bool = True  # gate the launch with bespoke preflight (bespoke.kohya.preflight.gate_words)
    label: str = ""  # where the run goes in a sweep ("gpu 0"), for the live view
    loop: LoopOptions = LoopOptions()  # score each epoch, stop on a rule or a budget (bespoke.run.loop)
    past_stop: bool = False  # (--continue) train a stopped-early run on from its last state


def _skipped(manifest: RunManifest, paths: RunPaths, reason: str = "already finished") -> TrainResult:
    exit_code = manifest.attempt.exit_code if manifest.attempt is not None else None
    if manifest.status == "stopped-early" and manifest.early_stop is not None:
        reason = (f"stopped early after epoch {manifest.early_stop.after_epoch} ({manifest.early_stop.reason}); "
                  "--continue trains on past the stop")
    return TrainResult(manifest.id, paths.root, manifest.status, exit_code, manifest.epochs_done,
                       manifest.epochs_total, manifest.duration_s, manifest.final_loss, skipped=True, reason=reason,
                       early_stop=manifest.early_stop, cost_usd=manifest.cost_usd)


def refuse_without_resume(manifest: RunManifest, options: TrainOptions) -> None:
    """--no-resume: an interrupted or failed run is not continued silently (the one home of that rule)."""
    if not options.resume and not options.restart and manifest.status in ("interrupted", "failed"):
        raise RunError(f"run {manifest.id} is {manifest.status}; drop --no-resume to resume it, "
                       "or use --restart to start over")


def train_run(settings: Settings, run_dir: Path, options: TrainOptions = TrainOptions(),
              observer: Observer = ignore) -> TrainResult:
    """Train the planned run in `run_dir` and return how it ended (see the module docstring for the rules).

    Everything that happens on the way goes to `observer` as bespoke.run.events (the last one `Finished`).
    SIGINT/SIGTERM/SIGHUP stop it (result `interrupted`, `signum` set). Raises RunError when the run is locked,
    simulated, or cannot be resumed without `restart`; ConfigError when a config fails its check;
    PreflightError when the installed sd-scripts would refuse it (nothing trained, run.json as it was).
    """
    paths = RunPaths(Path(run_dir))
    manifest = load_manifest(paths.root)
    refuse_simulated(manifest, paths)
    refuse_without_resume(manifest, options)
    observer = Broadcast.of([observer])  # a display that fails (a hung-up terminal) never fails the run
    if manifest.status == "finished" and not options.restart:
        return _told(observer, _skipped(manifest, paths))
    if manifest.status == "stopped-early" and not (options.restart or options.past_stop):
        return _told(observer, _skipped(manifest, paths))
    settings.sd_script("train_network.py")  # before the lock: a missing checkout changes nothing on disk
    with StopSignals() as signals, RunLock(paths, manifest.id) as lock:
        result = _train_locked(settings, paths, options, _with_lock(lock, observer), signals)
    if result.signum is None and signals.signum is not None:  # it came while run.json was being written
        result.signum = signals.signum
    return _told(observer, result)


def _told(observer: Observer, result: TrainResult) -> TrainResult:
    observer(Finished(result.run_id, result))
    return result


def _with_lock(lock: RunLock, observer: Observer) -> Observer:
    """The lock records which trainer it waits for as soon as the trainer is spawned (an error there is bespoke's
    and stops the run, unlike a display's), then the observer hears of it."""
    def observe(event: TrainEvent) -> None:
        if isinstance(event, Started):
            lock.trainer_started(event.pid)
        observer(event)
    return observe


def _train_locked(settings: Settings, paths: RunPaths, options: TrainOptions, emit: Observer,
                  signals: StopSignals) -> TrainResult:
    manifest = load_manifest(paths.root)  # may have changed while we waited for the lock
    training = read_training(paths)
    output_name = str(training.get("output_name") or "last")
    total_epochs = as_int(training.get("max_train_epochs"))
    if not options.restart and finished_on_disk(paths, manifest, output_name, total_epochs):
        return _skipped(manifest, paths, "already finished (every epoch is on disk)")
    say = lambda text: emit(Message(manifest.id, text))  # noqa: E731 - bespoke's own words about this run
    edited = check_configs(paths, manifest, say)
    loop = loop_for(paths, manifest, training, options.loop, options.past_stop and not options.restart)
    resume = prepare_folder(paths, manifest, output_name, options.restart, say)
    rotated = rotate_log(paths.train_log)
    if options.restart and rotated:
        say(f"{manifest.id}: old log kept in {rotated.name}")
    spec, (argv, env, overrides, removed) = _launch(settings, paths, training, options, resume)
    if signals.signum is not None:  # stopped before anything was launched: nothing changed
        return TrainResult(manifest.id, paths.root, manifest.status, reason="stopped before the launch",
                           signum=signals.signum)
    before = copy.deepcopy(manifest)  # what run.json goes back to if the preflight gate stops the launch
    attempt = manifest.new_attempt(argv=argv, env_overrides=recordable_env(overrides), cwd=str(spec.cwd),
                                   host=socket.gethostname(), resumed_from=resume.name if resume else None,
                                   bespoke_version=__version__, edited_configs=edited, env_removed=removed)
    if options.restart:  # a real restart of a run keeps nothing simulated or measured from before
        manifest.loss_history, manifest.last_loss, manifest.final_loss, manifest.duration_s = None, None, None, 0.0
        manifest.epoch_log, manifest.cost_usd = [], None
    manifest.early_stop = None
    manifest.status, manifest.epochs_total, manifest.output_name = "running", total_epochs, output_name
    save_manifest(paths.root, manifest)
    progress = RunProgress(manifest.id, total_epochs, label=options.label)
    progress.status = "preflight" if options.preflight else "training"
    firsts = ResumeSamples(paths, attempt.number, resume, training)
    supervision = Supervision(paths, manifest, progress, emit, TrainerFacts(settings), firsts,
                              samples_per_epoch(training, expected_prompts(paths, training)))
    supervision.loop, supervision.outside_stop = loop, options.stop
    result = _supervised(LaunchedRun(argv, env, overrides, spec, resume), supervision, options, signals)
    supervision.facts.thread.join()
    problem = gate_refusal(paths.preflight_report, paths.root) if options.preflight and not result.interrupted else None
    if problem is not None:
        loop.close(interrupted=True)
        save_manifest(paths.root, before)  # nothing was trained: the run is as it was, the log says why
        raise problem
    firsts.record(attempt)
    supervision.ended(result.signum is not None or loop.outside)
    return _finish(paths, manifest, result, progress, resume, loop, supervision.facts.values)


def samples_per_epoch(training: Mapping, prompts: int) -> int:
    """How many samples the trainer draws at each epoch's end (0 when it samples by steps or not at all)."""
    every = as_int(training.get("sample_every_n_epochs")) or 0
    return prompts if every == 1 else 0


@dataclass(frozen=True)
class LaunchedRun:
    """One attempt's launch: what runs, where, and from which state folder."""

    argv: list[str]
    env: dict[str, str]
    overrides: dict[str, str]  # the environment variables bespoke set (recorded, shown in the command)
    spec: LaunchSpec
    resume: Path | None


def _supervised(launch: LaunchedRun, supervision: Supervision, options: TrainOptions,
                signals: StopSignals) -> ProcessResult:
    """Run the launch under the one supervisor; an exception marks the run interrupted first."""
    paths, manifest, emit = supervision.paths, supervision.manifest, supervision.emit

    def spawned(pid: int) -> None:
        emit(Started(manifest.id, paths.root, pid, manifest.attempt.number if manifest.attempt else 1,
                     manifest.epochs_total, launch.resume.name if launch.resume else None))

    def stopping(asked_by: str) -> None:  # the loop's own stop was told with its reason (EpochLoop.tick)
        loop = supervision.loop
        if asked_by != STOP_REQUEST or loop.requested is None or loop.outside:
            emit(Stopping(manifest.id, asked_by))

    try:
        return run_logged(ProcessSpec(tuple(launch.argv), launch.env, paths.train_log, launch.spec.cwd,
                                      recordable_env(launch.overrides), paths.root, StopPolicy(*options.stop_timeouts)),
                          Hooks(on_line=supervision.on_line, on_tick=supervision.tick, on_start=spawned,
                                on_stopping=stopping, on_stop=lambda record: setattr(manifest.attempt, "stop", record),
                                stop=supervision.loop.stop, signals=signals))
    except BaseException as error:  # the tree is stopped already; record that before it propagates
        supervision.loop.close(interrupted=True)
        _record_crash(paths, manifest, error)
        if isinstance(error, OSError):
            raise RunError(f"run {manifest.id}: {error}; the trainer was stopped and the run marked interrupted: "
                           "fix that, then run the same command again to resume") from error
        raise


def _launch(settings: Settings, paths: RunPaths, training: dict, options: TrainOptions, resume: Path | None):
    """The launch spec of this attempt and its (argv, env, env overrides)."""
    spec = replace(launch_spec_for(settings, paths, training, gpu_ids=options.gpu_ids),
                   accelerate_config=Path(paths.relative(neutral_accelerate_config(paths))))
    if options.pin_gpu is not None:
        spec = pin_to_gpu(spec, options.pin_gpu)
    if resume is not None:
        spec = with_resume(spec, paths.relative(resume), resume_epoch(resume, as_int(training.get("max_train_epochs"))))
    paths.preflight_report.unlink(missing_ok=True)  # every launch goes through the gate (it guards the stop)
    spec = replace(spec, gate=gate_words(paths.relative(paths.preflight_report) if options.preflight else None))
    return spec, build_launch(spec, dict(os.environ if options.base_env is None else options.base_env))


def _record_crash(paths: RunPaths, manifest: RunManifest, error: BaseException) -> None:
    """Mark the run interrupted after an exception in bespoke (best effort: the disk may be what failed)."""
    manifest.status = record_on_disk(paths, manifest)
    if manifest.attempt is not None:
        manifest.attempt.finished_at = now_iso()
        manifest.attempt.reason = f"bespoke failed while supervising: {type(error).__name__}: {error}"[:500]
    try:
        save_manifest(paths.root, manifest)
    except OSError:
        pass  # run.json stays "running"; the lock is released, so `runs` shows it stale and a re-run resumes


def _finish(paths: RunPaths, manifest: RunManifest, result: ProcessResult, progress: RunProgress,
            resume: Path | None, loop: EpochLoop, facts: dict) -> TrainResult:
    """Record how the attempt ended in run.json and return it."""
    output_name = manifest.output_name or "last"
    checkpoints = whole_checkpoints(paths.model_dir, output_name)
    snap = progress.snapshot()
    epochs_total = snap.total_epochs or manifest.epochs_total
    manifest.epochs_total = epochs_total
    record_on_disk(paths, manifest)  # epochs done: what a resume keeps
    early = loop.early_stop(manifest.epochs_done)
    status, reason = _outcome(result, checkpoints, progress, output_name, epochs_total, early)
    manifest.early_stop = early if status == "stopped-early" else None
    close_attempt(manifest, loop, result.duration)
    tail = log_tail(paths.train_log, LOG_TAIL_LINES) if status != "finished" else None
    duration = manifest.duration_s + result.duration if resume is not None else result.duration
    progress.status = status
    attempt = manifest.attempt
    assert attempt is not None  # set by _train_locked before the launch
    attempt.finished_at, attempt.exit_code, attempt.reason = now_iso(), result.exit_code, reason
    attempt.log_tail, attempt.duration_s, attempt.trainer = tail, round(result.duration, 3), dict(facts)
    attempt.signal = result.stop.asked_by if result.stop is not None and result.signum is not None else None
    attempt.stop, attempt.trainer_end = result.stop, result.trainer_end
    manifest.status = status
    if result.stop is not None and status == "interrupted":
        attempt.reason = stop_note(paths, manifest, result.stop.asked_by, snap.epoch)
    elif status == "finished" and manifest.samples.get("missing"):  # lost to a hard stop, never redrawn: say so
        attempt.reason = missing_note(paths, manifest, resumable=False)
    manifest.final_loss, manifest.duration_s = snap.loss, round(duration, 3)
    save_manifest(paths.root, manifest)
    return TrainResult(manifest.id, paths.root, status, result.exit_code, manifest.epochs_done, epochs_total, duration,
                       snap.loss, attempt.reason, resumed_from=str(resume) if resume is not None else None,
                       log_tail=tail or [], argv=attempt.argv, signum=result.signum, early_stop=manifest.early_stop,
                       cost_usd=manifest.cost_usd)


def train_request(settings: Settings, request: PlanRequest, options: TrainOptions = TrainOptions(),
                  observer: Observer = ignore) -> TrainResult:
    """`bespoke train`: plan (or find) the run folder for this request, then `train_run` it."""
    plan = plan_run(settings, request)
    observer = Broadcast.of([observer])
    observer(Message(plan.run_id, f"run {plan.run_id} ({'new' if plan.created else plan.manifest.status}): "
                                  f"{plan.paths.root}"))
    return train_run(settings, plan.paths.root, options, observer)
