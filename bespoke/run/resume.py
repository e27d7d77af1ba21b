"""What a launch starts from, decided from what is on disk — never from the last status a dead bespoke wrote.

- `complete_final`: the run is finished when `{output_name}.safetensors` is whole (not truncated) and its
  `ss_epoch` is the last epoch, whatever signal or exit code came with it.
- `prepare_folder`: resume from the newest `*-state` folder (presets keep the last one); with no state but
  checkpoints, refuse and say exactly what `--restart` would lose; with nothing done yet, start over in place.
- `ResumeSamples`: sd-scripts redraws the "before training" sample (`e000000`) on every resume with the
  resumed LoRA loaded (FACTS §10); those images are moved to `model/sample/resume-<attempt>/` and recorded,
  so the untrained model's epoch-0 sample is never replaced or doubled.
- `settle_run`: a run left `running` by a bespoke that died gets its real status (run by the reaper).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

from bespoke.clock import now_iso
from bespoke.errors import RunError
from bespoke.fsutil import move_aside
from bespoke.kohya.checkpoints import Checkpoint, epochs_done, find_checkpoints, newest_state_dir
from bespoke.kohya.metadata import WeightsError, read_header
from bespoke.kohya.naming import parse_sample_name
from bespoke.run.lock import holder, holder_alive, try_lock
from bespoke.run.manifest import RunManifest, load_manifest, save_manifest
from bespoke.run.paths import RunPaths

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


class ResumeSamples:
    """Moves the e000000 samples a resumed trainer draws out of the way of the untrained model's."""

    def __init__(self, paths: RunPaths, attempt_number: int, active: bool):
        self.paths, self.active = paths, active
        self.folder = paths.sample_dir / f"resume-{attempt_number}"
        self.before = set(self._first_samples()) if active else set()
        self.moved: list[str] = []

    def _first_samples(self) -> list[Path]:
        folder = self.paths.sample_dir
        if not folder.is_dir():
            return []
        return [p for p in folder.glob("*.png") if parse_sample_name(p).epoch == 0]

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
        return self.moved


def outcome_from_disk(paths: RunPaths, manifest: RunManifest) -> tuple[str, list[Checkpoint]]:
    """'finished' when the final checkpoint is whole and the last epoch, else 'interrupted'; and the checkpoints."""
    checkpoints = whole_checkpoints(paths.model_dir, manifest.output_name or "last")
    total = manifest.epochs_total or manifest.num_epochs
    return ("finished" if complete_final(checkpoints, total) else "interrupted"), checkpoints


def settle_run(run_dir: Path, reason: str) -> str | None:
    """Give a run left `running` by a dead bespoke its status from disk (under the run's lock, if it is free).
    Returns the new status, or None when the run was not `running` or someone else holds it."""
    paths = RunPaths(Path(run_dir))
    lock = try_lock(paths, paths.root.name)
    if lock is None:
        return None
    try:
        manifest = load_manifest(paths.root)
        if manifest.status != "running":
            return None
        status, checkpoints = outcome_from_disk(paths, manifest)
        manifest.status, manifest.epochs_done = status, epochs_done(checkpoints)
        manifest.checkpoints = [c.to_json(paths.root) for c in checkpoints]
        if manifest.attempt is not None and manifest.attempt.finished_at is None:
            manifest.attempt.finished_at, manifest.attempt.reason = now_iso(), reason
        save_manifest(paths.root, manifest)
        return status
    finally:
        lock.release()


def live_status(run_dir: Path, manifest: RunManifest) -> tuple[str, int]:
    """(status, epochs) for display: a run.json that says `running` while no bespoke holds the run is `stale`,
    with the epochs whose checkpoints are whole on disk (what a re-run resumes from)."""
    if manifest.status != "running" or holder_alive(holder(RunPaths(Path(run_dir)))):
        return manifest.status, manifest.epochs_done
    on_disk = whole_checkpoints(RunPaths(Path(run_dir)).model_dir, manifest.output_name or "last")
    return "stale", epochs_done(on_disk)


def finished_on_disk(paths: RunPaths, manifest: RunManifest, output_name: str, total_epochs: int | None) -> bool:
    """Every epoch's checkpoint is on disk: finished, whatever run.json says (recorded: the signal came late)."""
    if not complete_final(whole_checkpoints(paths.model_dir, output_name), total_epochs):
        return False
    if manifest.status != "finished":
        manifest.status, manifest.epochs_done = "finished", total_epochs or manifest.epochs_done
        save_manifest(paths.root, manifest)
    return True
