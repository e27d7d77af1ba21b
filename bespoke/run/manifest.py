"""run.json: the one record of a run, typed.

A `RunManifest` holds what `plan` decided (immutable afterwards), what is on disk now (epochs, checkpoints,
samples: refreshed from the folder after every epoch and at the end) and the current `Attempt` — one launch of
the trainer, replaced whole at every launch so that nothing of an earlier attempt (exit code, log tail, reason)
survives into the next. bespoke's own versions (`versions`) and the trainer's (`attempt.trainer`) are kept
apart. The file is written atomically and carries `schema_version`; schema 1 files (bespoke 0.1, one flat
dict) are read and upgraded in memory.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from bespoke.clock import now_iso
from bespoke.errors import RunError
from bespoke.fsutil import atomic_write_json
from bespoke.run.paths import RunPaths

SCHEMA_VERSION = 3
READABLE_VERSIONS = (1, 2, SCHEMA_VERSION)  # 2 -> 3 only added optional fields (name, slurm)
STATUSES = ("planned", "running", "finished", "failed", "interrupted")


@dataclass
class Attempt:
    """One launch of the trainer (or of the simulator): what ran, where, and how it ended."""

    number: int
    started_at: str
    argv: list[str] = field(default_factory=list)
    env_overrides: dict[str, str] = field(default_factory=dict)
    env_removed: dict[str, str] = field(default_factory=dict)  # the caller's variables kept from the trainer
    cwd: str | None = None
    host: str | None = None
    resumed_from: str | None = None
    finished_at: str | None = None
    exit_code: int | None = None
    reason: str | None = None
    log_tail: list[str] | None = None
    duration_s: float | None = None
    trainer: dict[str, Any] = field(default_factory=dict)  # sd-scripts commit, python/torch/accelerate, GPU
    bespoke_version: str | None = None  # the bespoke that launched this attempt (plan's is in `versions`)
    signal: str | None = None  # the signal that stopped bespoke (SIGINT / SIGTERM / SIGHUP), if one did
    edited_configs: dict[str, str] = field(default_factory=dict)  # config file -> sha256, when edited by hand
    resume_samples: list[str] = field(default_factory=list)  # e000000 images a resumed trainer redrew (moved)

    @classmethod
    def from_json(cls, data: dict, source: str) -> Attempt:
        return cls(**_known(cls, data, f"{source}: attempt"))


@dataclass
class RunManifest:
    """Everything bespoke knows about one run folder (see the module docstring for the three parts)."""

    # decided by plan
    id: str
    status: str = "planned"
    name: str | None = None  # the user's label (--name, a sweep entry's name); the id stays the config hash
    created_at: str = ""
    resolution: int | None = None
    preset: str | None = None
    preset_layers: list[str] = field(default_factory=list)
    overrides: list[str] = field(default_factory=list)
    layout: str = "stretch"
    dataset: dict[str, Any] = field(default_factory=dict)
    config_sha256: dict[str, str] = field(default_factory=dict)
    output_name: str | None = None
    num_epochs: int | None = None
    sample_size: int | None = None
    prompts: list[dict] = field(default_factory=list)
    argv: list[str] = field(default_factory=list)  # the launch `plan` printed (run from the run folder)
    env_overrides: dict[str, str] = field(default_factory=dict)
    sd_scripts: str | None = None
    sd_scripts_commit: str | None = None
    base_model: str | None = None
    versions: dict[str, Any] = field(default_factory=dict)  # bespoke's own (the trainer's: attempt.trainer)
    # what is on disk
    epochs_done: int = 0
    epochs_total: int | None = None
    checkpoints: list[dict] = field(default_factory=list)
    samples: dict[str, Any] = field(default_factory=dict)
    last_loss: float | None = None
    final_loss: float | None = None
    duration_s: float = 0.0  # over all attempts
    # the current (or last) launch
    attempt: Attempt | None = None
    # simulated runs (the demo): never taken for a real run
    simulated: bool = False
    simulator: dict[str, Any] | None = None
    loss_history: list[dict] | None = None
    demo: bool = False  # planned by `bespoke demo`
    slurm: dict[str, Any] | None = None  # job/array task ids when submitted through `sweep --slurm`
    updated_at: str | None = None

    def to_json(self) -> dict:
        """The run.json form (schema_version first)."""
        return {"schema_version": SCHEMA_VERSION, **asdict(self)}

    @classmethod
    def from_json(cls, data: dict, source: str = "run.json") -> RunManifest:
        """Parse run.json data (schema 1 is upgraded); unknown keys and bad statuses are errors."""
        data = dict(data)
        version = data.pop("schema_version", None)
        if version == 1:
            data = _upgrade_v1(data)
        elif version not in READABLE_VERSIONS:
            raise RunError(f"{source}: schema_version {version!r}, this bespoke reads {SCHEMA_VERSION} (and 1, 2); "
                           "was it written by a newer bespoke?")
        values = _known(cls, data, source)
        if values.get("attempt") is not None:
            values["attempt"] = Attempt.from_json(values["attempt"], source)
        manifest = cls(**values)
        if manifest.status not in STATUSES:
            raise RunError(f"{source}: status {manifest.status!r} is not one of {', '.join(STATUSES)}")
        return manifest

    def new_attempt(self, **values: Any) -> Attempt:
        """Start a new attempt (numbered after the previous one); the previous one is dropped whole."""
        number = self.attempt.number + 1 if self.attempt is not None else 1
        self.attempt = Attempt(number=number, started_at=now_iso(), **values)
        return self.attempt


def _known(cls: type, data: dict, source: str) -> dict:
    names = {f.name for f in fields(cls)}
    unknown = sorted(set(data) - names)
    if unknown:
        raise RunError(f"{source}: unknown key(s) {', '.join(unknown)}; restore run.json from a backup or re-plan "
                       "the run (bespoke never writes these)")
    return {k: v for k, v in data.items() if k in names}


_V1_ATTEMPT = ("started_at", "finished_at", "exit_code", "cwd", "host", "resumed_from", "reason", "log_tail")
_V1_TRAINER = ("gpu",)


def _upgrade_v1(data: dict) -> dict:
    """bespoke 0.1's flat run.json -> schema 2: launch fields into `attempt`, the trainer's facts apart."""
    attempt = {key: data.pop(key) for key in _V1_ATTEMPT if key in data}
    trainer = {key: data.pop(key) for key in _V1_TRAINER if key in data}
    versions = data.get("versions") or {}
    if "bespoke" not in versions and versions:  # overwritten by the trainer's facts in 0.1
        trainer["versions"] = data.pop("versions")
    data.pop("loss_history_simulated", None)
    if attempt.get("started_at"):
        data["attempt"] = {"number": 1, "argv": list(data.get("argv") or []),
                           "env_overrides": dict(data.get("env_overrides") or {}), "trainer": trainer, **attempt}
    return data


def load_manifest(run_dir: Path) -> RunManifest:
    """Read `<run_dir>/run.json`; a one-line error when it is missing, unreadable or not a bespoke manifest."""
    path = RunPaths(Path(run_dir)).run_json
    if not path.exists():
        raise RunError(f"{path}: no run.json here; is {run_dir} a bespoke run folder? (see `bespoke runs`)")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise RunError(f"{path}: unreadable run.json ({exc}); restore it from a backup or re-plan the run") from exc
    if not isinstance(data, dict):
        raise RunError(f"{path}: not a bespoke run.json (not a JSON object)")
    return RunManifest.from_json(data, str(path))


def save_manifest(run_dir: Path, manifest: RunManifest) -> RunManifest:
    """Write run.json atomically, stamping `updated_at`; returns the manifest."""
    if manifest.status not in STATUSES:
        raise ValueError(f"bad run status {manifest.status!r}")
    manifest.updated_at = now_iso()
    atomic_write_json(RunPaths(Path(run_dir)).run_json, manifest.to_json())
    return manifest
