"""`bespoke inspect`: the LoRA files of a run (or any folder, or one file) read back from their safetensors
metadata (bespoke.kohya.metadata, no torch), and inside a run checked against the run's training config."""

from __future__ import annotations

from pathlib import Path

from bespoke.errors import RunError
from bespoke.kohya.checkpoints import find_checkpoints
from bespoke.kohya.lora_check import check_against_run
from bespoke.kohya.metadata import WeightsError, summarize
from bespoke.kohya.naming import CHECKPOINT_SUFFIX
from bespoke.run.paths import RunPaths, is_run_dir, read_training


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


def _files(folder: Path, training: dict | None) -> list[Path]:
    """A run's checkpoints (its output name, bespoke.kohya.checkpoints), or every .safetensors of a plain folder."""
    if training is not None:
        return sorted(c.path for c in find_checkpoints(folder, str(training.get("output_name") or "last")))
    return sorted(p for p in folder.iterdir() if p.suffix == CHECKPOINT_SUFFIX) if folder.is_dir() else []


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
        mismatches = check_against_run(summary, training) if training is not None else []
        return {"kind": "file", "run": str(run) if run else None, "file": path.name, "path": str(path),
                "summary": summary, "mismatches": mismatches}
    run = path if is_run_dir(path) else None
    training = _training_of(run) if run else None
    folder = RunPaths(run).model_dir if run else path
    files = _files(folder, training if run else None)
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
                        "mismatches": check_against_run(summary, training) if training is not None else []})
    entries.sort(key=lambda e: ("summary" not in e, getattr(e.get("summary"), "epoch", None) or 0, e["file"]))
    return {"kind": "folder", "run": str(run) if run else None, "folder": str(folder), "checkpoints": entries}
