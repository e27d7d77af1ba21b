"""run.json: the one record of a run, typed.

A `RunManifest` holds what `plan` decided (immutable afterwards), what is on disk now (epochs, checkpoints,
samples: refreshed from the folder after every epoch and at the end) and the current `Attempt` — one launch of
the trainer, replaced whole at every launch so that nothing of an earlier attempt (exit code, log tail, reason)
survives into the next. bespoke's own versions (`versions`) and the trainer's (`attempt.trainer`) are kept
apart. `epoch_log` holds one `EpochRecord` per trained epoch (time, cost, training and validation loss, the live
score and its interval), kept across attempts; `early_stop` says why a `stopped-early` run stopped. The file is
written atomically and carries `schema_version`; schema 1 files (bespoke 0.1, one flat dict) are read and
upgraded in memory.
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

SCHEMA_VERSION = 4
# 2 -> 3 only added optional fields (name, slurm); 3 -> 4 too (attempt.stop, attempt.trainer_end,
# attempt.filled_samples, attempt.cost_usd; epoch_log, early_stop, cost, dataset.validation)
READABLE_VERSIONS = (1, 2, 3, SCHEMA_VERSION)
STATUSES = ("planned", "running", "finished", "failed", "interrupted", "stopped-early")
# statuses a run ends in having trained what it was going to (nothing to resume without asking)
DONE_STATUSES = ("finished", "stopped-early")


@dataclass
class SignalSent:
    """One signal bespoke (or its watchdog) sent while stopping a trainer."""

    signal: str  # SIGINT | SIGTERM | SIGKILL
    pid: int
    role: str  # trainer (the launcher's child: the trainer, or one rank's worker) | launcher | other
    at_s: float  # seconds after the stop was asked


@dataclass
class StopRecord:
    """How bespoke stopped the trainer of one attempt."""

    asked_by: str  # SIGINT | SIGTERM | SIGHUP (to bespoke) | stop request | crash (bespoke failed) | bespoke died
    ended: str  # how the trainer went: graceful | terminate | kill | exited (before bespoke sent anything)
    sent: list[SignalSent] = field(default_factory=list)
    trainer_seconds: float | None = None  # from the request until the trainer was gone
    seconds: float = 0.0  # the whole stop, the launcher and anything left over included
    waited_for: list[str] = field(default_factory=list)  # saves and samplings the stop waited for (gate.py)

    @classmethod
    def from_json(cls, data: dict, source: str) -> StopRecord:
        values = _known(cls, data, f"{source}: attempt.stop")
        values["sent"] = [SignalSent(**_known(SignalSent, s, f"{source}: attempt.stop.sent"))
                          for s in values.get("sent", [])]
        return cls(**values)


@dataclass
class TrainerEnd:
    """How the trainer process itself ended; the launcher's own exit code is Attempt.exit_code."""

    how: str  # "exit 0", "exit 1 (RuntimeError: …)", "KeyboardInterrupt (SIGINT)", "killed (SIGKILL)", "unknown"
    source: str  # gate (its last line, from inside the trainer) | bespoke (which killed it) | launcher | unknown
    exit_code: int | None = None
    signal: str | None = None  # the signal it died of (SIGINT after a KeyboardInterrupt, SIGKILL)
    last_lines: list[str] = field(default_factory=list)  # the trainer's last lines in train.log

    @classmethod
    def from_json(cls, data: dict, source: str) -> TrainerEnd:
        return cls(**_known(cls, data, f"{source}: attempt.trainer_end"))


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
    exit_code: int | None = None  # the launcher's (accelerate launch), not the trainer's: see trainer_end
    reason: str | None = None
    log_tail: list[str] | None = None
    duration_s: float | None = None
    trainer: dict[str, Any] = field(default_factory=dict)  # sd-scripts commit, python/torch/accelerate, GPU
    bespoke_version: str | None = None  # the bespoke that launched this attempt (plan's is in `versions`)
    signal: str | None = None  # the signal that stopped bespoke (SIGINT / SIGTERM / SIGHUP), if one did
    edited_configs: dict[str, str] = field(default_factory=dict)  # config file -> sha256, when edited by hand
    resume_samples: list[str] = field(default_factory=list)  # e000000 images a resumed trainer redrew (moved)
    filled_samples: list[str] = field(default_factory=list)  # missing epoch samples put back from those redraws
    stop: StopRecord | None = None  # how bespoke stopped the trainer, when it did
    trainer_end: TrainerEnd | None = None
    cost_usd: float | None = None  # duration x the GPU price (when one is set)

    @classmethod
    def from_json(cls, data: dict, source: str) -> Attempt:
        values = _known(cls, data, f"{source}: attempt")
        if values.get("stop") is not None:
            values["stop"] = StopRecord.from_json(values["stop"], source)
        if values.get("trainer_end") is not None:
            values["trainer_end"] = TrainerEnd.from_json(values["trainer_end"], source)
        return cls(**values)


@dataclass
class EpochRecord:
    """What bespoke measured of one trained epoch: written when the epoch is complete (its checkpoint whole, its
    samples drawn), its score added when live scoring has judged it."""

    epoch: int
    attempt: int | None = None
    finished_at: str | None = None
    seconds: float | None = None  # wall time since the previous epoch ended (the first: since the launch)
    cost_usd: float | None = None  # seconds x the GPU price
    train_loss: float | None = None  # loss/epoch_average
    validation_loss: float | None = None  # loss/validation/epoch_average (held-out designs)
    samples: int = 0
    missing_samples: int = 0
    score: float | None = None  # the epoch's score (bespoke.review.selection), measured while training
    score_low: float | None = None  # its interval over the epoch's samples, when the score has one
    score_high: float | None = None
    score_error: str | None = None  # why the epoch could not be scored

    @classmethod
    def from_json(cls, data: dict, source: str) -> EpochRecord:
        return _build(cls, data, f"{source}: epoch_log")


@dataclass
class EarlyStop:
    """Why a run is `stopped-early`: the rule, in words, and the epoch it judged best."""

    rule: str  # "peaked:3", "val-loss:2", "budget $5.00"
    reason: str
    after_epoch: int  # the last epoch trained (its checkpoint and state saved)
    best_epoch: int | None = None

    @classmethod
    def from_json(cls, data: dict, source: str) -> EarlyStop:
        return _build(cls, data, f"{source}: early_stop")


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
    # the loop: per-epoch measurements, an early stop, what the run cost (over all attempts)
    epoch_log: list[EpochRecord] = field(default_factory=list)
    early_stop: EarlyStop | None = None
    cost_usd: float | None = None
    gpu_price_per_hour: float | None = None  # the price the last attempt was charged at
    stop_when: str | None = None  # the preset's stop rule (`train --stop-when` overrides it)
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
            raise RunError(f"{source}: schema_version {version!r}, this bespoke reads {SCHEMA_VERSION} (and 1-3); "
                           "was it written by a newer bespoke?")
        values = _known(cls, data, source)
        if values.get("attempt") is not None:
            values["attempt"] = Attempt.from_json(values["attempt"], source)
        if values.get("early_stop") is not None:
            values["early_stop"] = EarlyStop.from_json(values["early_stop"], source)
        values["epoch_log"] = [EpochRecord.from_json(e, source) for e in values.get("epoch_log") or []]
        manifest = cls(**values)
        if manifest.status not in STATUSES:
            raise RunError(f"{source}: status {manifest.status!r} is not one of {', '.join(STATUSES)}")
        return manifest

    def epoch_record(self, epoch: int) -> EpochRecord:
        """The record of `epoch` (made, in epoch order, when there is none yet)."""
        for record in self.epoch_log:
            if record.epoch == epoch:
                return record
        record = EpochRecord(epoch)
        self.epoch_log = sorted([*self.epoch_log, record], key=lambda r: r.epoch)
        return record

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


def _build(cls: type, data: Any, where: str) -> Any:
    """A record from its JSON object: unknown and missing keys are one-line RunErrors."""
    if not isinstance(data, dict):
        raise RunError(f"{where}: not a JSON object; restore run.json from a backup or re-plan the run")
    try:
        return cls(**_known(cls, data, where))
    except TypeError as error:
        missing = sorted({f.name for f in fields(cls)} - set(data))
        raise RunError(f"{where}: missing key(s) {', '.join(missing) or '?'}; restore run.json from a backup or "
                       "re-plan the run") from error


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
