"""`bespoke inspect`: the LoRA files of a run (or any folder, or one file) read back from their safetensors
metadata (bespoke.kohya.metadata, no torch), and inside a run checked against the run's training config —
including `ss_steps` against the steps per epoch the run's dataset config gives (sd-scripts restarts its step
count after `--resume`, so a resumed run's later checkpoints carry a short `ss_steps`)."""

from __future__ import annotations

import math
from pathlib import Path

from bespoke.errors import ConfigError, RunError
from bespoke.kohya.checkpoints import find_checkpoints
from bespoke.kohya.config import load_toml
from bespoke.kohya.lora_check import check_against_run
from bespoke.kohya.metadata import LoraSummary, WeightsError, as_int, summarize
from bespoke.kohya.naming import CHECKPOINT_SUFFIX
from bespoke.run.manifest import load_manifest
from bespoke.run.paths import RunPaths, is_run_dir, read_training

_IMAGES = (".png", ".jpg", ".jpeg", ".webp", ".bmp")  # what sd-scripts' DreamBooth subsets pick up


def _run_of(path: Path) -> Path | None:
    """The run folder a checkpoint lives in (<run>/model/x.safetensors), or None."""
    for parent in list(Path(path).resolve().parents)[:3]:
        if is_run_dir(parent):
            return parent
    return None


def _training_of(run: Path) -> dict | None:
    try:
        return read_training(RunPaths(run))
    except RunError:
        return None


def steps_per_epoch(run: Path, training: dict) -> int | None:
    """Optimizer steps per epoch from the run's dataset config: every subset's images x num_repeats, in batches of
    the dataset's batch size, over gradient accumulation (prepared images share one size: one bucket). None
    when the dataset config or an image folder cannot be read."""
    paths = RunPaths(run)
    try:
        config = load_toml(paths.dataset_toml)
    except ConfigError:
        return None
    general = config.get("general", {})
    batches = 0
    for dataset in config.get("datasets", []):
        batch = as_int(dataset.get("batch_size", general.get("batch_size", training.get("train_batch_size")))) or 1
        images = 0
        for subset in dataset.get("subsets", []):
            folder = Path(str(subset.get("image_dir", "")))
            folder = folder if folder.is_absolute() else paths.root / folder
            if not folder.is_dir():
                return None
            count = sum(1 for p in folder.iterdir() if p.suffix.lower() in _IMAGES)
            images += count * (as_int(subset.get("num_repeats", general.get("num_repeats", 1))) or 1)
        batches += math.ceil(images / batch)
    return math.ceil(batches / (as_int(training.get("gradient_accumulation_steps")) or 1)) or None


def steps_mismatch(summary: LoraSummary, per_epoch: int | None) -> list[str]:
    """`ss_steps` against epoch x steps per epoch."""
    if per_epoch is None or summary.steps is None or summary.epoch is None:
        return []
    expected = summary.epoch * per_epoch
    if summary.steps == expected:
        return []
    return [f"ss_steps {summary.steps} in metadata, but epoch {summary.epoch} x {per_epoch} steps per epoch = "
            f"{expected} in the run's config (sd-scripts restarts its step count after --resume; the weights are "
            "not affected)"]


def _check(summary: LoraSummary, training: dict | None, per_epoch: int | None) -> list[str]:
    if training is None:
        return []
    return check_against_run(summary, training) + steps_mismatch(summary, per_epoch)


def _files(folder: Path, training: dict | None) -> list[Path]:
    """A run's checkpoints (its output name, bespoke.kohya.checkpoints), or every .safetensors of a plain folder."""
    if training is not None:
        return sorted(c.path for c in find_checkpoints(folder, str(training.get("output_name") or "last")))
    return sorted(p for p in folder.iterdir() if p.suffix == CHECKPOINT_SUFFIX) if folder.is_dir() else []


def _why_no_weights(run: Path) -> str:
    """Why a run folder has no LoRA to inspect, in words (a run in this state is exit 4, not a bad argument)."""
    manifest = load_manifest(run)
    if manifest.demo or manifest.simulated:
        return "it is a demo run (its samples are simulated: no LoRA was trained); inspect a trained run"
    if manifest.status == "planned":
        return f"the run is not trained yet (status planned); train it first (`bespoke train --run {run.name}`)"
    return f"none on disk (status {manifest.status}): were they moved or deleted?"


def inspect_path(path: Path) -> dict:
    """What `bespoke inspect` shows. A file: {"kind": "file", "summary", "mismatches", "run"}; a run folder or a
    folder of checkpoints: {"kind": "folder", "checkpoints": [{file, summary | error, mismatches}]}.
    Inside a run folder every checkpoint is checked against the run's training config."""
    path = Path(path).expanduser()
    if not path.exists():
        raise WeightsError(f"{path}: no such file or folder")
    if path.is_file():
        summary = summarize(path)
        run = _run_of(path)
        training = _training_of(run) if run else None
        per_epoch = steps_per_epoch(run, training) if run and training is not None else None
        mismatches = _check(summary, training, per_epoch)
        return {"kind": "file", "run": str(run) if run else None, "file": path.name, "path": str(path),
                "summary": summary, "mismatches": mismatches}
    run = path if is_run_dir(path) else None
    training = _training_of(run) if run else None
    per_epoch = steps_per_epoch(run, training) if run and training is not None else None
    folder = RunPaths(run).model_dir if run else path
    files = _files(folder, training if run else None)
    if not files and run is not None:
        raise RunError(f"{folder}: no .safetensors checkpoints here: {_why_no_weights(run)}")
    if not files:
        raise WeightsError(f"{folder}: no .safetensors checkpoints here")
    entries: list[dict[str, object]] = []
    for file in files:
        try:
            summary = summarize(file)
        except WeightsError as exc:
            entries.append({"file": file.name, "path": str(file), "error": str(exc), "mismatches": []})
            continue
        entries.append({"file": file.name, "path": str(file), "summary": summary,
                        "mismatches": _check(summary, training, per_epoch)})
    entries.sort(key=lambda e: ("summary" not in e, getattr(e.get("summary"), "epoch", None) or 0, e["file"]))
    return {"kind": "folder", "run": str(run) if run else None, "folder": str(folder), "checkpoints": entries}
