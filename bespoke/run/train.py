"""Train one planned run folder: lock, launch through accelerate, live progress, run.json, resume.

Success is what exists on disk, not the exit code (sd-scripts exits 0 on "No data found"): a run is
`finished` only when `{output_name}.safetensors` exists and its `ss_epoch` is the last epoch.
Work is never lost: a finished run is skipped, an interrupted or failed one resumes from its newest
`*-state` folder, and `restart` keeps the old log (rotated) and the old model/ (moved to model.prev-N/).
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path

import toml

from bespoke.errors import RunError
from bespoke.fsutil import atomic_write_text, move_aside
from bespoke.kohya.config import flatten_training
from bespoke.kohya.launch import (
    NEUTRAL_ACCELERATE_CONFIG,
    LaunchSpec,
    build_launch,
    recordable_env,
    with_resume,
)
from bespoke.run.paths import RunPaths, now_iso, read_manifest, update_manifest

LOG_TAIL_LINES = 30
_VERSIONS_CODE = (
    "import json, sys\n"
    "from importlib import metadata\n"
    "out = {'python': sys.version.split()[0]}\n"
    "for name in ('torch', 'accelerate'):\n"
    "    try:\n"
    "        out[name] = metadata.version(name)\n"
    "    except Exception:\n"
    "        out[name] = 'not installed'\n"
    "print(json.dumps(out))\n"
)


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


# ---------------------------------------------------------------- lock


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class RunLock:
    """`<run>/.lock` created with O_EXCL holding pid, hostname and start time. A dead pid's lock is taken over."""

    def __init__(self, paths: RunPaths, run_id: str):
        self.path = paths.lock_file
        self.run_id = run_id
        self.content = json.dumps({"pid": os.getpid(), "host": socket.gethostname(), "started_at": now_iso()})

    def _create(self) -> bool:
        try:
            fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            return False
        with os.fdopen(fd, "w") as handle:
            handle.write(self.content)
        return True

    def acquire(self) -> RunLock:
        if self._create():
            return self
        try:
            held = json.loads(self.path.read_text(encoding="utf-8"))
            pid, host = int(held["pid"]), str(held["host"])
        except (OSError, ValueError, KeyError, TypeError):
            # half-written by a process that died at once; give a live writer a moment
            held, pid, host = {}, None, socket.gethostname()
            if time.time() - self.path.stat().st_mtime < 5:
                raise RunError(f"run {self.run_id} is being started by another bespoke; try again") from None
        if host != socket.gethostname():
            raise RunError(f"run {self.run_id} is in use by pid {pid} on {host} (since {held.get('started_at')}); "
                           f"if that machine is no longer running it, delete {self.path}")
        if pid is not None and _pid_alive(pid):
            raise RunError(f"run {self.run_id} is in use by pid {pid} (since {held.get('started_at')}); "
                           "wait for it to finish or stop that process")
        # stale: move it aside (only one taker wins the rename), then create ours
        stale = self.path.with_name(f".lock.stale-{pid}-{os.getpid()}")
        try:
            os.rename(self.path, stale)
            stale.unlink()
        except FileNotFoundError:
            pass
        if not self._create():
            raise RunError(f"run {self.run_id} was just taken by another bespoke; see {self.path}")
        return self

    def release(self) -> None:
        try:
            if self.path.read_text(encoding="utf-8") == self.content:
                self.path.unlink()
        except FileNotFoundError:
            pass

    def __enter__(self):
        return self.acquire()

    def __exit__(self, *exc):
        self.release()
        return False


# ---------------------------------------------------------------- what is on disk


def read_safetensors_metadata(path: Path) -> dict[str, str]:
    """The `__metadata__` of a safetensors file from its header alone; {} if unreadable (e.g. still being
    written by the trainer: the manifest then falls back to the epoch in the file name)."""
    from bespoke.kohya.metadata import WeightsError, read_metadata

    try:
        return read_metadata(path)
    except (WeightsError, OSError):
        return {}


def _int_or_none(value) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def find_checkpoints(model_dir: Path, output_name: str) -> list[dict]:
    """Checkpoints of `output_name` in model/: file, epoch (ss_epoch, else from the name), steps, final flag."""
    model_dir = Path(model_dir)
    out = []
    if not model_dir.is_dir():
        return out
    for path in sorted(model_dir.glob(f"{output_name}*.safetensors")):
        stem = path.stem
        final = stem == output_name
        suffix = stem[len(output_name) + 1:] if stem.startswith(output_name + "-") else None
        if not final and not (suffix and suffix.isdigit()):
            continue
        meta = read_safetensors_metadata(path)
        epoch = _int_or_none(meta.get("ss_epoch"))
        if epoch is None and suffix:
            epoch = int(suffix)
        out.append({"file": str(path.relative_to(model_dir.parent)), "epoch": epoch,
                    "steps": _int_or_none(meta.get("ss_steps")), "final": final})
    return sorted(out, key=lambda c: (c["epoch"] is None, c["epoch"] or 0, c["final"]))


def sample_counts(sample_dir: Path) -> dict:
    """Sample images by epoch: {"count": n, "by_epoch": {"0": 4, "1": 4}}."""
    from bespoke.review.samples import parse_sample_name

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


def newest_state_dir(model_dir: Path) -> Path | None:
    """The `*-state` folder (sd-scripts --save_state) with the highest step, or None."""
    best, best_key = None, None
    if not Path(model_dir).is_dir():
        return None
    for path in Path(model_dir).glob("*-state"):
        state_file = path / "train_state.json"
        if not state_file.is_file():
            continue
        try:
            state = json.loads(state_file.read_text(encoding="utf-8"))
            key = (int(state.get("current_step", 0)), int(state.get("current_epoch", 0)), path.stat().st_mtime)
        except (OSError, ValueError, TypeError):
            continue
        if best_key is None or key > best_key:
            best, best_key = path, key
    return best


def _has_outputs(model_dir: Path) -> bool:
    return Path(model_dir).is_dir() and any(Path(model_dir).iterdir())


def set_aside_model_dir(model_dir: Path) -> Path | None:
    """Move a non-empty model/ to the next free model.prev-N/ (nothing is deleted); return where it went."""
    model_dir = Path(model_dir)
    if not _has_outputs(model_dir):
        return None
    return move_aside(model_dir, lambda n: f"{model_dir.name}.prev-{n}")


# ---------------------------------------------------------------- environment facts


def trainer_facts(settings, timeout: float = 20.0) -> dict:
    """sd-scripts commit, python/torch/accelerate versions as the trainer's Python reports them, GPU name.

    Three quick helper commands, run concurrently; any failure becomes "unknown".
    """
    from bespoke.run.runner import run_capture

    def commit():
        if settings.sd_scripts is None:
            return "unknown"
        done = run_capture(["git", "-C", str(settings.sd_scripts), "rev-parse", "HEAD"], timeout=timeout)
        return done.stdout.strip() if done.exit_code == 0 and done.stdout.strip() else "unknown"

    def versions():
        done = run_capture([settings.trainer_python, "-c", _VERSIONS_CODE], timeout=timeout)
        try:
            return json.loads(done.stdout.strip().splitlines()[-1])
        except (ValueError, IndexError):
            return {"python": "unknown", "torch": "unknown", "accelerate": "unknown"}

    def gpu():
        if shutil.which("nvidia-smi") is None:
            return None
        done = run_capture(["nvidia-smi", "--query-gpu=name", "--format=csv,noheader"], timeout=timeout)
        names = [n.strip() for n in done.stdout.splitlines() if n.strip()] if done.exit_code == 0 else []
        return ", ".join(names) or None

    with ThreadPoolExecutor(3) as pool:
        jobs = pool.submit(commit), pool.submit(versions), pool.submit(gpu)
        return {"sd_scripts_commit": jobs[0].result(), "versions": jobs[1].result(), "gpu": jobs[2].result()}


def launch_spec_for_run(settings, paths: RunPaths, training: dict, gpu_ids: tuple[str, ...] = ()) -> LaunchSpec:
    """The LaunchSpec of a run folder: the same one `plan` printed (planning.launch_spec_for)."""
    from bespoke.run.plan import launch_spec_for

    return launch_spec_for(settings, paths, training, gpu_ids=tuple(gpu_ids))


def neutral_accelerate_config(paths: RunPaths) -> Path:
    """`config/accelerate.yaml` of the run (created once, never rewritten): the file given to --config_file."""
    path = paths.config_dir / "accelerate.yaml"
    if not path.exists():
        atomic_write_text(path, NEUTRAL_ACCELERATE_CONFIG)
    return path


def load_training(paths: RunPaths) -> dict:
    """The run's config/training.toml, flattened the way sd-scripts reads it."""
    try:
        data = toml.load(paths.training_toml)
    except (OSError, toml.TomlDecodeError) as exc:
        raise RunError(f"{paths.training_toml}: cannot read the run's training config ({exc}); re-plan the run") from exc
    return flatten_training(data)


# ---------------------------------------------------------------- the run


def _epochs_on_disk(checkpoints: list[dict]) -> int:
    return max((c["epoch"] or 0 for c in checkpoints), default=0)


def train_run(settings, run_dir: Path, *, restart: bool = False, gpu_ids: tuple[str, ...] = (),
              pin_gpu: str | None = None, progress=None, view=None, stop: threading.Event | None = None,
              base_env: dict[str, str] | None = None, stop_timeouts: tuple[float, float] = (10.0, 5.0),
              on_message: Callable[[str], None] | None = None,
              on_spawn: Callable[[int], None] | None = None) -> TrainResult:
    """Train the planned run in `run_dir` and return how it ended (see the module docstring for the rules).

    `progress` is a `RunProgress` to feed (created if None); `view` a `ProgressView` (or None for no display);
    `pin_gpu` pins the run to one GPU with CUDA_VISIBLE_DEVICES (sweep --gpus); `stop` stops it from outside;
    `on_spawn(pid)` is called right after the trainer process started.
    Raises RunError when the run is locked, or cannot be resumed without `restart`.
    """
    from bespoke.kohya.launch import pin_to_gpu
    from bespoke.run.runner import rotate_log, run_logged
    from bespoke.run.progress import ModelWatcher, RunProgress, log_tail

    paths = RunPaths(Path(run_dir))
    manifest = read_manifest(paths.root)
    run_id = manifest.get("id", paths.root.name)
    say = on_message or (lambda text: None)
    training = load_training(paths)
    output_name = str(training.get("output_name") or "last")
    model_dir = Path(training.get("output_dir") or paths.model_dir)
    total_epochs = _int_or_none(training.get("max_train_epochs"))

    if manifest.get("status") == "finished" and not restart:
        return TrainResult(run_id, paths.root, "finished", manifest.get("exit_code"),
                           manifest.get("epochs_done", 0), manifest.get("epochs_total"),
                           manifest.get("duration_s", 0.0), manifest.get("final_loss"), skipped=True,
                           reason="already finished")
    settings.sd_script("train_network.py")  # before the lock: a missing checkout changes nothing on disk

    with RunLock(paths, run_id):
        manifest = read_manifest(paths.root)  # may have changed while we waited for the lock
        status = manifest.get("status")
        extra_resume = None
        if restart:
            moved = set_aside_model_dir(model_dir)
            rotated = rotate_log(paths.train_log)
            if moved or rotated:
                say(f"{run_id}: starting over; old model/ kept in {moved.name if moved else '-'}, "
                    f"old log in {rotated.name if rotated else '-'}")
        elif status in ("running", "interrupted", "failed"):
            state = newest_state_dir(model_dir)
            if state is not None:
                extra_resume = state
                say(f"{run_id}: resuming from {state.name} (was {status})")
            elif find_checkpoints(model_dir, output_name):
                done = _epochs_on_disk(find_checkpoints(model_dir, output_name))
                raise RunError(
                    f"run {run_id} was {status} after {done} epoch(s) and has no *-state folder to resume from "
                    "(save_state was off); re-run with --restart to start over in the same folder "
                    "(the old model/ is kept as model.prev-N, the old log rotated)")
            else:
                # no checkpoint yet: start over in place; anything already there (e.g. the samples drawn
                # before training) is kept in model.prev-N
                moved = set_aside_model_dir(model_dir)
                if moved:
                    say(f"{run_id}: starting over (was {status}, no checkpoint yet); old model/ kept in {moved.name}")
            rotate_log(paths.train_log)
        else:
            moved = set_aside_model_dir(model_dir)  # "planned" yet model/ has files: keep them, never mix
            if moved:
                say(f"{run_id}: model/ already had files; kept them in {moved.name}")
            rotate_log(paths.train_log)

        spec = launch_spec_for_run(settings, paths, training, gpu_ids=tuple(gpu_ids))
        spec = replace(spec, accelerate_config=neutral_accelerate_config(paths))
        if pin_gpu is not None:
            spec = pin_to_gpu(spec, pin_gpu)
        if extra_resume is not None:
            spec = with_resume(spec, extra_resume)
        argv, env, overrides = build_launch(spec, dict(os.environ if base_env is None else base_env))
        # versions/commit/GPU take ~0.2 s of helper processes: gather them while the trainer starts
        facts: dict = {}
        facts_thread = threading.Thread(target=lambda: facts.update(trainer_facts(settings)), daemon=True)
        facts_thread.start()
        facts_written = [False]
        started_at = now_iso()
        update_manifest(paths.root, status="running", started_at=started_at, finished_at=None, exit_code=None,
                        argv=argv, env_overrides=recordable_env(overrides),
                        cwd=str(spec.cwd) if spec.cwd else None, resumed_from=str(extra_resume) if extra_resume
                        else None, reason=None, log_tail=None, epochs_total=total_epochs, host=socket.gethostname())

        progress = progress or RunProgress(run_id, total_epochs)
        progress.status = "training"
        watcher = ModelWatcher(model_dir)
        last_poll = [0.0]

        def on_tick():
            now = time.monotonic()
            if not facts_written[0] and not facts_thread.is_alive():
                facts_written[0] = True
                update_manifest(paths.root, **facts)
            new_ckpts, new_samples = ((), ())
            if now - last_poll[0] >= 0.5:
                last_poll[0] = now
                new_ckpts, new_samples = watcher.poll()
            if progress.take_epoch_changed() or new_ckpts:
                checkpoints = find_checkpoints(model_dir, output_name)
                snap = progress.snapshot()
                update_manifest(paths.root, epochs_done=max(snap["epoch"] - 1, _epochs_on_disk(checkpoints), 0),
                                checkpoints=checkpoints, samples=sample_counts(model_dir / "sample"),
                                last_loss=snap["loss"])
            if view is not None:
                view.refresh(new_ckpts, new_samples)

        if view is not None:
            view.start(progress)
        try:
            result = run_logged(argv, env, paths.train_log, cwd=spec.cwd, on_line=progress.feed, on_tick=on_tick,
                                stop=stop, stop_timeouts=stop_timeouts, env_overrides=recordable_env(overrides),
                                on_start=on_spawn)
        finally:
            if view is not None:
                view.stop()

        facts_thread.join()
        checkpoints = find_checkpoints(model_dir, output_name)
        final = next((c for c in checkpoints if c["final"]), None)
        snap = progress.snapshot()
        epochs_total = snap["total_epochs"] or total_epochs
        epochs_done = _epochs_on_disk(checkpoints)
        reason = None
        if result.interrupted:
            status = "interrupted"
            reason = "stopped by the user (Ctrl-C / SIGTERM)"
        elif result.exit_code != 0:
            status = "failed"
            reason = f"trainer exited with code {result.exit_code}"
        elif final is None:
            status = "failed"
            reason = (f"trainer exited 0 but wrote no checkpoint: {progress.no_data}" if progress.no_data else
                      f"trainer exited 0 but wrote no {output_name}.safetensors")
        elif epochs_total and final["epoch"] != epochs_total:
            status = "failed"
            reason = f"{output_name}.safetensors is epoch {final['epoch']}, expected the last epoch {epochs_total}"
        else:
            status = "finished"
        tail = log_tail(paths.train_log, LOG_TAIL_LINES) if status != "finished" else None
        duration = float(manifest.get("duration_s") or 0.0) + result.duration if extra_resume else result.duration
        progress.status = status
        update_manifest(paths.root, status=status, finished_at=now_iso(), exit_code=result.exit_code,
                        epochs_done=epochs_done, epochs_total=epochs_total, checkpoints=checkpoints,
                        samples=sample_counts(model_dir / "sample"), final_loss=snap["loss"], reason=reason,
                        log_tail=tail, duration_s=round(duration, 3), **facts)
        return TrainResult(run_id, paths.root, status, result.exit_code, epochs_done, epochs_total, duration,
                           snap["loss"], reason, resumed_from=str(extra_resume) if extra_resume else None,
                           log_tail=tail or [], argv=argv)


def train_request(settings, *, resolution: int, dataset: Path, preset: str | None = None, overrides=(),
                  prompts: Path | None = None, restart: bool = False, resume: bool = True,
                  gpu_ids: tuple[str, ...] = (), view=None, on_message=None) -> TrainResult:
    """`bespoke train`: plan (or find) the run folder for this request, then `train_run` it."""
    from bespoke.run.plan import PlanRequest, plan_run

    plan = plan_run(settings, PlanRequest(resolution=resolution, dataset=Path(dataset), preset=preset,
                                          overrides=tuple(overrides), prompts=prompts))
    if on_message is not None:
        on_message(f"run {plan.run_id} ({'new' if plan.created else plan.manifest.get('status', '?')}): {plan.paths.root}")
    if not resume and not restart and plan.manifest.get("status") in ("interrupted", "failed"):
        raise RunError(f"run {plan.run_id} is {plan.manifest['status']}; drop --no-resume to resume it, "
                       "or use --restart to start over")
    return train_run(settings, plan.paths.root, restart=restart, gpu_ids=gpu_ids, view=view, on_message=on_message)
