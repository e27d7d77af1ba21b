"""Run folders under outputs/: their layout and their manifest, run.json.

run.json is written atomically, carries a schema_version, and is the single record of a run's state.
"""

from __future__ import annotations

import datetime as _dt
import json
from dataclasses import dataclass
from pathlib import Path

from bespoke.errors import RunError
from bespoke.fsutil import atomic_write_json

SCHEMA_VERSION = 1
STATUSES = ("planned", "running", "finished", "failed", "interrupted")


def now_iso() -> str:
    """Local time with offset, seconds precision."""
    return _dt.datetime.now().astimezone().isoformat(timespec="seconds")


@dataclass(frozen=True)
class RunPaths:
    """Every path of one run folder (DESIGN.md "Run folder")."""

    root: Path

    @property
    def run_json(self) -> Path:
        return self.root / "run.json"

    @property
    def config_dir(self) -> Path:
        return self.root / "config"

    @property
    def training_toml(self) -> Path:
        return self.config_dir / "training.toml"

    @property
    def dataset_toml(self) -> Path:
        return self.config_dir / "dataset.toml"

    @property
    def prompts_txt(self) -> Path:
        return self.config_dir / "prompts.txt"

    @property
    def logs_dir(self) -> Path:
        return self.root / "logs"

    @property
    def train_log(self) -> Path:
        return self.logs_dir / "train.log"

    @property
    def model_dir(self) -> Path:
        return self.root / "model"

    @property
    def sample_dir(self) -> Path:
        return self.model_dir / "sample"

    @property
    def candidates_dir(self) -> Path:
        return self.root / "candidates"

    @property
    def report_dir(self) -> Path:
        return self.root / "report"

    @property
    def lock_file(self) -> Path:
        return self.root / ".lock"


def read_manifest(run_dir: Path) -> dict:
    """Load run.json of a run folder; a clear error when it is missing or unreadable."""
    path = RunPaths(Path(run_dir)).run_json
    if not path.exists():
        raise RunError(f"{path}: no run.json here; is {run_dir} a bespoke run folder? (see `bespoke runs`)")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise RunError(f"{path}: unreadable run.json ({exc}); restore it from the log or re-plan the run") from exc
    version = data.get("schema_version")
    if version != SCHEMA_VERSION:
        raise RunError(f"{path}: schema_version {version!r}, this bespoke reads {SCHEMA_VERSION}")
    return data


def write_manifest(run_dir: Path, manifest: dict) -> dict:
    """Write run.json atomically (stamps schema_version and updated_at)."""
    manifest = {"schema_version": SCHEMA_VERSION, **manifest, "updated_at": now_iso()}
    if manifest.get("status") not in STATUSES:
        raise ValueError(f"bad run status {manifest.get('status')!r}")
    atomic_write_json(RunPaths(Path(run_dir)).run_json, manifest)
    return manifest


def update_manifest(run_dir: Path, **fields) -> dict:
    """Read, merge `fields`, write back atomically; returns the new manifest."""
    manifest = read_manifest(run_dir)
    manifest.update(fields)
    return write_manifest(run_dir, manifest)


def is_run_dir(path: Path) -> bool:
    return RunPaths(Path(path)).run_json.is_file()


def list_run_dirs(outputs_dir: Path) -> list[Path]:
    """Run folders directly under outputs_dir, sorted by name."""
    outputs_dir = Path(outputs_dir)
    if not outputs_dir.is_dir():
        return []
    return sorted(p for p in outputs_dir.iterdir() if p.is_dir() and is_run_dir(p))
