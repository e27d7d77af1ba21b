"""Fault injection for `bespoke train` with the fake trainer: run folders, launches in their own session (like a
terminal's foreground job), signals at chosen moments, and what is on disk afterwards — as one table row.

The fault suite runs the fake trainer through the real `accelerate launch` of this venv; it is tested on the
accelerate versions in TESTED_ACCELERATE (sd-scripts' pin and the newest release; .ci/run runs it under both)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import psutil
import toml
from locations import FAKE_DIR, REPO

from bespoke.kohya.checkpoints import find_checkpoints
from bespoke.kohya.metadata import WeightsError, read_header
from bespoke.run.manifest import load_manifest
from bespoke.run.paths import RunPaths

EPOCHS = 3  # 4 images, batch 2, 1 repeat: 2 steps per epoch
PROMPTS = 2
TESTED_ACCELERATE = ("1.6.0", "1.16.0")  # sd-scripts' requirements.txt pin, and the newest on PyPI (2026-12)
STATE_FILES = ("model.safetensors", "optimizer.bin", "random_states_0.pkl", "scheduler.bin", "train_state.json")


def make_env(root: Path, **knobs: str) -> dict[str, str]:
    """The environment of a bespoke launched against the fake checkout, with fault knobs."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("BESPOKE_", "FAKE_"))}
    env.update(BESPOKE_PROJECT=str(root), BESPOKE_SD_SCRIPTS=str(FAKE_DIR), BESPOKE_PYTHON=sys.executable,
               HF_HOME=str(root / "hf_home"), FAKE_TRAINER_STEP_SECONDS="0.05",
               FAKE_TRAINER_RECORD=str(root / "seen.jsonl"), PYTHONPATH=str(REPO))
    env.update(knobs)
    return env


def make_run(root: Path, name: str = "hand", epochs: int = EPOCHS) -> Path:
    """A run folder as plan writes one (relative paths, save_state, sampling before and after every epoch)."""
    from manifest_helpers import write_run_json

    from bespoke.dataset.synthetic import write_dataset

    images = root / "imgs"
    if not images.is_dir():
        write_dataset(images, count=4, seed=2)
    paths = RunPaths(root / "outputs" / name)
    paths.config_dir.mkdir(parents=True)
    paths.prompts_txt.write_text("".join(f"punk {i} --w 64 --h 64 --d {i + 1}\n" for i in range(PROMPTS)))
    paths.training_toml.write_text(toml.dumps({
        "model": {"output_dir": "model", "output_name": name},
        "training": {"max_train_epochs": epochs, "save_every_n_epochs": 1, "sample_every_n_epochs": 1,
                     "sample_at_first": True, "save_state": True, "save_last_n_epochs_state": 1,
                     "sample_prompts": "config/prompts.txt", "mixed_precision": "no",
                     "network_module": "networks.lora"}}))
    paths.dataset_toml.write_text(toml.dumps({"datasets": [{"resolution": 64, "batch_size": 2, "subsets": [
        {"image_dir": str(images), "num_repeats": 1, "caption_extension": ".txt"}]}]}))
    write_run_json(paths.root, id=name, status="planned", resolution=64, output_name=name, num_epochs=epochs)
    return paths.root


def launch(root: Path, run: Path, *args: str, **knobs: str) -> subprocess.Popen:
    """`bespoke train --run RUN` in a session of its own (its pid is its process group, as in a terminal)."""
    return subprocess.Popen([sys.executable, "-m", "bespoke", "train", "--run", str(run), "--no-process", *args],
                            env=make_env(root, **knobs), cwd=root, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            start_new_session=True)


def wait_for(predicate, timeout: float = 60.0) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        try:
            if predicate():
                return True
        except OSError:
            pass
        time.sleep(0.05)
    return False


def log_text(run: Path) -> str:
    path = RunPaths(run).train_log
    return path.read_text(errors="replace") if path.exists() else ""


def trainers(run: Path) -> list[psutil.Process]:
    """Processes still running with the run folder as their working directory (the launcher, the trainer and
    anything they started), or a reaper watching it."""
    out = []
    for process in psutil.process_iter(["cwd", "cmdline", "status"]):
        try:
            if process.info["status"] == psutil.STATUS_ZOMBIE:
                continue
            cmdline = process.info["cmdline"] or []
            if process.info["cwd"] == str(run) or ("bespoke.run.reaper" in cmdline and str(run) in cmdline):
                out.append(process)
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
    return out


def deliver(proc: subprocess.Popen, sig: int) -> None:
    """Ctrl-C and a closed terminal signal the whole foreground group; `docker stop` / `kill` only the pid."""
    if sig in (signal.SIGINT, signal.SIGHUP):
        os.killpg(proc.pid, sig)
    else:
        os.kill(proc.pid, sig)


def _whole(path: Path) -> bool:
    try:
        read_header(path)
        return True
    except WeightsError:
        return False


@dataclass
class DiskState:
    """What a run folder holds: status, checkpoints (whole or not), states, samples by epoch, the lock record."""

    status: str
    epochs_done: int
    checkpoints: dict[str, bool]
    states: list[str]
    samples: dict[str, int]
    resume_samples: int
    lock_record: bool
    attempt: dict = field(default_factory=dict)
    missing: dict = field(default_factory=dict)  # run.json samples.missing: {epoch: [prompt indices]}
    cut_states: list[str] = field(default_factory=list)  # state folders lacking one of accelerate's files

    @property
    def stop(self) -> dict:
        return self.attempt.get("stop") or {}

    @property
    def trainer_end(self) -> dict:
        return self.attempt.get("trainer_end") or {}

    def describe(self) -> str:
        ckpts = ", ".join(f"{n}{'' if ok else ' (half-written)'}" for n, ok in self.checkpoints.items()) or "none"
        samples = " ".join(f"e{k}:{v}" for k, v in self.samples.items()) or "none"
        moved = f", {self.resume_samples} resume e0 moved aside" if self.resume_samples else ""
        missing = f", missing {self.missing}" if self.missing else ""
        return (f"{self.status}; {self.epochs_done} epoch(s); ckpt {ckpts}; state {', '.join(self.states) or '-'};"
                f" samples {samples}{moved}{missing}")


def disk_state(run: Path) -> DiskState:
    paths = RunPaths(run)
    manifest = load_manifest(run)
    model = paths.model_dir
    checkpoints = {c.path.name: _whole(c.path) for c in find_checkpoints(model, manifest.output_name or "hand")}
    states = sorted(p.name for p in model.glob("*-state")) if model.is_dir() else []
    samples: dict[str, int] = {}
    for png in sorted(paths.sample_dir.glob("*.png")) if paths.sample_dir.is_dir() else []:
        epoch = png.name.split("_e")[1][:6]
        samples[str(int(epoch))] = samples.get(str(int(epoch)), 0) + 1
    moved = len(list(paths.sample_dir.glob("resume-*/*.png"))) if paths.sample_dir.is_dir() else 0
    attempt = asdict(manifest.attempt) if manifest.attempt is not None else {}
    cut = [name for name in states if any(not (model / name / f).is_file() for f in STATE_FILES)]
    return DiskState(manifest.status, manifest.epochs_done, checkpoints, states, samples, moved,
                     (run / ".lock.json").exists(), attempt, dict(manifest.samples.get("missing") or {}), cut)


def stop_line(sent: dict) -> str:
    """The train.log line of one signal sent (bespoke.run.stopping.Stopper)."""
    return f"{sent['signal']} to pid {sent['pid']} ({sent['role']}"


def describe_stop(state: DiskState) -> str:
    """The recorded stop in a table cell: who asked, what went to whom and when, how the trainer ended."""
    stop = state.stop
    if not stop:
        return "-"
    sent = ", ".join(f"{s['signal']}->{s['role']} +{s['at_s']:.2f}s" for s in stop["sent"]) or "nothing"
    waited = f"; waited for {', '.join(stop['waited_for'])}" if stop["waited_for"] else ""
    return (f"asked by {stop['asked_by']}: {sent}; {stop['ended']}, trainer gone after "
            f"{stop['trainer_seconds'] or 0:.2f} s{waited}; trainer: {state.trainer_end.get('how')}")


def seen(root: Path) -> list[dict]:
    record = root / "seen.jsonl"
    return [json.loads(line) for line in record.read_text().splitlines()] if record.exists() else []
