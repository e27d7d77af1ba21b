"""What a launch starts from, decided from what is on disk — never from the last status a dead bespoke wrote.

- `complete_final`: the run is finished when `{output_name}.safetensors` is whole (not truncated) and its
  `ss_epoch` is the last epoch, whatever signal or exit code came with it.
- `prepare_folder`: resume from the newest `*-state` folder (presets keep the last one); with no state but
  checkpoints, refuse and say exactly what `--restart` would lose; with nothing done yet, start over in place.
- `epochs_kept`: "epochs done" is what a resume keeps: the epoch of the newest whole `*-state` folder (with
  save_state), else the newest whole checkpoint; a finished run, all of them. `stop_note` says it in words
  ("stopped during epoch 3; the next run resumes after epoch 2").
- `ResumeSamples`: sd-scripts redraws the "before training" sample (`e000000`) on every resume with the
  resumed LoRA loaded (FACTS §10); those images are moved to `model/sample/resume-<attempt>/` and recorded,
  so the untrained model's epoch-0 sample is never replaced or doubled. They are drawn with the resumed
  state's weights — the weights of the epoch the state holds, with the same prompts and seeds (checked on the
  real trainer: tests/real_trainer/test_real_stops.py) — so where that epoch's own samples are missing (a
  hard kill while they were drawn) a copy takes their place, named as sd-scripts names epoch samples.
  `samples_record` (run.json `samples`) lists what is still missing, by epoch and prompt.
- `settle_run`: a run left `running` by a bespoke that died gets its real status (run by the reaper).
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from pathlib import Path

from bespoke.clock import now_iso
from bespoke.errors import BespokeError, RunError
from bespoke.fsutil import move_aside
from bespoke.kohya.checkpoints import Checkpoint, epochs_done, find_checkpoints, newest_state_dir
from bespoke.kohya.metadata import WeightsError, as_int, read_header
from bespoke.kohya.naming import parse_sample_name, sample_counts
from bespoke.kohya.prompts import parse_prompt_file
from bespoke.run.lock import holder, holder_alive, try_lock
from bespoke.run.manifest import Attempt, RunManifest, StopRecord, TrainerEnd, load_manifest, save_manifest
from bespoke.run.paths import RunPaths, read_training
from bespoke.run.progress import state_epoch

Say = Callable[[str], None]


def set_aside_model_dir(model_dir: Path) -> Path | None:
    """Move a non-empty model/ to the next free model.prev-N/ (nothing is deleted); return where it went."""
    model_dir = Path(model_dir)
    if not model_dir.is_dir() or not any(model_dir.iterdir()):
        return None
    return move_aside(model_dir, lambda n: f"{model_dir.name}.prev-{n}")


def whole_checkpoints(model_dir: Path, output_name: str) -> list[Checkpoint]:
    """The run's checkpoints that are whole: a file the trainer was writing when it was stopped (sd-scripts
    writes in place) is not work done, and is overwritten when that epoch is trained again."""
    out = []
    for checkpoint in find_checkpoints(model_dir, output_name):
        try:
            read_header(checkpoint.path)
        except (WeightsError, OSError):
            continue
        out.append(checkpoint)
    return out


def complete_final(checkpoints: list[Checkpoint], epochs_total: int | None) -> Checkpoint | None:
    """The final checkpoint when it is whole and holds the last epoch, else None."""
    final = next((c for c in checkpoints if c.final), None)
    if final is None or final.epoch is None:  # missing, or unreadable (truncated mid-save)
        return None
    return final if epochs_total is None or final.epoch == epochs_total else None


def _loss_note(checkpoints: list[Checkpoint], model_dir: Path) -> str:
    done = epochs_done(checkpoints)
    names = ", ".join(c.path.name for c in checkpoints)
    return (f"after {done} epoch(s) it has no *-state folder to resume from (save_state was off), and resuming from "
            f"a checkpoint alone would restart sd-scripts' optimizer, learning-rate schedule and step count. "
            f"--restart trains every epoch again from scratch; the {len(checkpoints)} checkpoint(s) so far "
            f"({names}) and their samples are kept in {model_dir.name}.prev-N/, nothing is deleted")


def prepare_folder(paths: RunPaths, manifest: RunManifest, output_name: str, restart: bool, say: Say) -> Path | None:
    """Make model/ ready for this attempt; returns the state folder to resume from, if any."""
    run_id, status = manifest.id, manifest.status
    if restart:
        moved = set_aside_model_dir(paths.model_dir)
        if moved:
            say(f"{run_id}: starting over; old model/ kept in {moved.name}")
        return None
    if status in ("running", "interrupted", "failed", "stopped-early"):  # stopped-early: train --continue
        resume = newest_state_dir(paths.model_dir)
        checkpoints = whole_checkpoints(paths.model_dir, output_name)
        if resume is not None:
            say(f"{run_id}: resuming from {resume.name} (was {status})")
            return resume
        if checkpoints:
            raise RunError(f"run {run_id} was {status}: {_loss_note(checkpoints, paths.model_dir)}")
        if moved := set_aside_model_dir(paths.model_dir):
            # no checkpoint yet: start over in place, keeping e.g. the samples drawn before training
            say(f"{run_id}: starting over (was {status}, no checkpoint yet); old model/ kept in {moved.name}")
    elif moved := set_aside_model_dir(paths.model_dir):  # "planned" yet model/ has files: keep them, never mix
        say(f"{run_id}: model/ already had files; kept them in {moved.name}")
    return None


def resume_epoch(state_dir: Path, total: int | None) -> int | None:
    """The epoch a resume from `state_dir` starts with (its epoch + 1), for sd-scripts' --initial_epoch; None when
    the state holds the last epoch or its epoch is unknown (sd-scripts then decides from its step count)."""
    epoch = state_epoch(state_dir)
    return epoch + 1 if epoch is not None and (total is None or epoch < total) else None


def epochs_kept(paths: RunPaths, output_name: str, training: dict, total: int | None) -> int:
    """The epochs a resume keeps (see the module docstring)."""
    checkpoints = whole_checkpoints(paths.model_dir, output_name)
    final = complete_final(checkpoints, total)
    if final is not None:
        return final.epoch or epochs_done(checkpoints)
    if training.get("save_state"):
        state = newest_state_dir(paths.model_dir)
        return (state_epoch(state) or 0) if state is not None else 0
    return epochs_done(checkpoints)


def _sampled_epochs(training: dict, last: int) -> list[int]:
    every = as_int(training.get("sample_every_n_epochs")) or 0
    return [e for e in range(1, last + 1) if every > 0 and e % every == 0]


def expected_prompts(paths: RunPaths, training: dict) -> int:
    """How many prompts each sampled epoch draws (0 when the run has no readable prompt file)."""
    if not training.get("sample_prompts"):
        return 0
    try:
        return len(parse_prompt_file(paths.root / str(training["sample_prompts"])))
    except BespokeError:
        return 0


def _drawn(paths: RunPaths) -> dict[int, set[int]]:
    drawn: dict[int, set[int]] = {}
    for path in paths.sample_dir.glob("*.png") if paths.sample_dir.is_dir() else []:
        info = parse_sample_name(path)
        if info.epoch is not None and info.prompt_index is not None:
            drawn.setdefault(info.epoch, set()).add(info.prompt_index)
    return drawn


def missing_samples(paths: RunPaths, training: dict, kept: int) -> dict[int, list[int]]:
    """{epoch: [prompt indices]} of the kept epochs whose samples are not on disk."""
    prompts, drawn = expected_prompts(paths, training), _drawn(paths)
    out = {}
    for epoch in _sampled_epochs(training, kept):
        lost = [p for p in range(prompts) if p not in drawn.get(epoch, set())]
        if lost:
            out[epoch] = lost
    return out


def samples_record(paths: RunPaths, training: dict, kept: int) -> dict:
    """run.json `samples`: the count by epoch, and `missing` ({"2": [0, 1]}: epoch -> prompt indices) if any."""
    record = sample_counts(paths.sample_dir)
    missing = missing_samples(paths, training, kept)
    if missing:
        record["missing"] = {str(e): p for e, p in missing.items()}
    return record


class ResumeSamples:
    """Moves the e000000 samples a resumed trainer draws out of the way of the untrained model's, and puts a
    copy in place of the resumed epoch's samples that are missing (the module docstring says why)."""

    def __init__(self, paths: RunPaths, attempt_number: int, resumed_from: Path | None, training: dict):
        self.paths, self.active = paths, resumed_from is not None
        self.folder = paths.sample_dir / f"resume-{attempt_number}"
        epoch = state_epoch(resumed_from) if resumed_from is not None else None
        self.fill_epoch = epoch if epoch and epoch in _sampled_epochs(training, epoch) else None
        self.before = set(self._first_samples()) if self.active else set()
        self.moved: list[str] = []
        self.filled: list[str] = []

    def _first_samples(self) -> list[Path]:
        folder = self.paths.sample_dir
        if not folder.is_dir():
            return []
        return sorted(p for p in folder.glob("*.png") if parse_sample_name(p).epoch == 0)

    def collect(self) -> list[str]:
        """Move every new e000000 image (drawn by this resumed attempt) to resume-<n>/; returns all moved."""
        if not self.active:
            return self.moved
        for path in self._first_samples():
            if path in self.before:
                continue
            self.folder.mkdir(parents=True, exist_ok=True)
            os.replace(path, self.folder / path.name)
            self.moved.append((self.folder / path.name).relative_to(self.paths.root).as_posix())
            self._fill(self.folder / path.name)
        return self.moved

    def record(self, attempt: Attempt | None) -> bool:
        """collect, and put what was moved and filled in the attempt (as it happens: run.json keeps it even if
        bespoke is killed); True when that changed."""
        before = len(self.moved)
        self.collect()
        if attempt is None or (len(self.moved) == before and attempt.resume_samples == self.moved):
            return False
        attempt.resume_samples, attempt.filled_samples = list(self.moved), list(self.filled)
        return True

    def _fill(self, redrawn: Path) -> None:
        info = parse_sample_name(redrawn)
        if self.fill_epoch is None or info.prompt_index is None:
            return
        if info.prompt_index in _drawn(self.paths).get(self.fill_epoch, set()):
            return
        name = (f"{info.output_name}_" if info.output_name else "") + \
            f"e{self.fill_epoch:06d}_{info.prompt_index:02d}_{info.timestamp}" + \
            (f"_{info.seed}" if info.seed is not None else "") + ".png"
        shutil.copy2(redrawn, self.paths.sample_dir / name)
        self.filled.append((self.paths.sample_dir / name).relative_to(self.paths.root).as_posix())


def missing_note(paths: RunPaths, manifest: RunManifest, resumable: bool = True) -> str:
    """'epoch 2 lacks the samples of prompt(s) 0, 1 (the resume redraws them from its state)' for each epoch in
    run.json's samples.missing ('' when none): only the newest state's epoch is redrawn, by a resume with
    sample_at_first (ResumeSamples); any other is lost for good (sd-scripts never draws an epoch again)."""
    missing = manifest.samples.get("missing") or {}
    state = newest_state_dir(paths.model_dir) if resumable and missing else None
    redrawn = state_epoch(state) if state is not None and _training_or_empty(paths).get("sample_at_first") else None
    return "; ".join(f"epoch {e} lacks the samples of prompt(s) {', '.join(map(str, p))} ("
                     f"{'the resume redraws them from its state' if str(e) == str(redrawn) else 'they cannot be redrawn'})"
                     for e, p in missing.items())


def stop_note(paths: RunPaths, manifest: RunManifest, asked_by: str, epoch_running: int) -> str:
    """'stopped by SIGINT during epoch 3; the next run resumes after epoch 2' (and what samples are missing), from
    what `record_on_disk` put in `manifest`."""
    kept, state = manifest.epochs_done, newest_state_dir(paths.model_dir)
    when = f"during epoch {epoch_running}" if epoch_running > kept else f"after epoch {kept}"
    if state is not None:
        then = f"the next run resumes after epoch {kept} ({state.name})"
    elif kept:
        then = f"the next run needs --restart: no state folder holds epoch {kept}"
    else:
        then = "the next run starts over (no epoch was complete)"
    lost = missing_note(paths, manifest)
    return f"stopped by {asked_by} {when}; {then}" + (f"; {lost}" if lost else "")


def record_on_disk(paths: RunPaths, manifest: RunManifest) -> str:
    """The epochs kept, checkpoints and samples (missing ones too) of `manifest` from what is on disk; returns the
    status the disk says (finished / interrupted)."""
    training = _training_or_empty(paths)
    output_name = manifest.output_name or str(training.get("output_name") or "last")
    checkpoints = whole_checkpoints(paths.model_dir, output_name)
    total = manifest.epochs_total or manifest.num_epochs
    status = "finished" if complete_final(checkpoints, total) else "interrupted"
    manifest.epochs_done = epochs_kept(paths, output_name, training, total)
    manifest.checkpoints = [c.to_json(paths.root) for c in checkpoints]
    manifest.samples = samples_record(paths, training, manifest.epochs_done)
    return status


def _training_or_empty(paths: RunPaths) -> dict:
    try:
        return read_training(paths)
    except RunError:
        return {}


def settle_run(run_dir: Path, reason: str, stop: StopRecord | None = None,
               trainer_end: TrainerEnd | None = None) -> str | None:
    """Give a run left `running` by a dead bespoke its status from disk (under the run's lock, if it is free),
    with the watchdog's stop record and the trainer's end. Returns the new status, or None when the run was not
    `running` or someone else holds it."""
    paths = RunPaths(Path(run_dir))
    lock = try_lock(paths, paths.root.name)
    if lock is None:
        return None
    try:
        manifest = load_manifest(paths.root)
        if manifest.status != "running":
            return None
        manifest.status = status = record_on_disk(paths, manifest)
        attempt = manifest.attempt
        if attempt is not None and attempt.finished_at is None:
            attempt.finished_at, attempt.reason = now_iso(), reason
            attempt.stop, attempt.trainer_end = stop, trainer_end
        save_manifest(paths.root, manifest)
        return status
    finally:
        lock.release()


def live_status(run_dir: Path, manifest: RunManifest) -> tuple[str, int]:
    """(status, epochs) for display: a run.json that says `running` while no bespoke holds the run is `stale`,
    with the epochs a re-run keeps (epochs_kept)."""
    paths = RunPaths(Path(run_dir))
    if manifest.status != "running" or holder_alive(holder(paths)):
        return manifest.status, manifest.epochs_done
    training = _training_or_empty(paths)
    kept = epochs_kept(paths, manifest.output_name or str(training.get("output_name") or "last"), training,
                       manifest.epochs_total or manifest.num_epochs)
    return "stale", kept


def finished_on_disk(paths: RunPaths, manifest: RunManifest, output_name: str, total_epochs: int | None) -> bool:
    """Every epoch's checkpoint is on disk: finished, whatever run.json says (recorded: the signal came late)."""
    if not complete_final(whole_checkpoints(paths.model_dir, output_name), total_epochs):
        return False
    if manifest.status != "finished":
        manifest.status, manifest.epochs_done = "finished", total_epochs or manifest.epochs_done
        save_manifest(paths.root, manifest)
    return True
