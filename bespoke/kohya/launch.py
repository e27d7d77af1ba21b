"""Pure construction of the trainer command line: a frozen spec in, `(argv, env)` out. Nothing runs here.

Every accelerate value is passed explicitly so that a user's ~/.cache/huggingface/accelerate config
cannot silently change a run.
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass, field, replace
from pathlib import Path

# env names that may carry credentials: never recorded in run.json even if a caller sets them
_SECRET = re.compile(r"(TOKEN|SECRET|PASSWORD|PASSWD|CREDENTIAL|API_KEY|ACCESS_KEY|AUTH)", re.IGNORECASE)


NEUTRAL_ACCELERATE_CONFIG = """\
# Written by bespoke and passed to `accelerate launch --config_file` so that a personal
# ~/.cache/huggingface/accelerate/default_config.yaml cannot change this run: every other value is
# given on the command line (see run.json "argv").
compute_environment: LOCAL_MACHINE
distributed_type: 'NO'
"""


@dataclass(frozen=True)
class LaunchSpec:
    """What to launch: a script of the sd-scripts checkout with its arguments, through accelerate."""

    python: str
    script: Path
    script_args: tuple[str, ...]
    num_processes: int = 1
    num_machines: int = 1
    mixed_precision: str = "no"
    dynamo_backend: str = "no"
    num_cpu_threads_per_process: int = 2
    gpu_ids: tuple[str, ...] = ()  # GPUs of ONE run; several -> --multi_gpu --gpu_ids
    extra_accelerate_args: tuple[str, ...] = ()
    cwd: Path | None = None
    env_overrides: tuple[tuple[str, str], ...] = field(default_factory=tuple)
    pinned_device: str | None = None  # one run per GPU (sweep --gpus): CUDA_VISIBLE_DEVICES only, no --gpu_ids
    extra_script_args: tuple[str, ...] = ()  # e.g. ("--resume", dir): after the config files, CLI wins in sd-scripts
    # A neutral accelerate config file (NEUTRAL_ACCELERATE_CONFIG) passed as --config_file: without it accelerate
    # reads $HF_HOME/accelerate/default_config.yaml, whose distributed_type / debug / gpu_ids still apply
    # even when every value above is given explicitly.
    accelerate_config: Path | None = None
    # Words before the script (bespoke.kohya.preflight.gate_words): bespoke's preflight gate, which accelerate
    # starts instead of the script; it checks the script's own arguments and then runs the script in its process.
    gate: tuple[str, ...] = ()


def build_launch(spec: LaunchSpec, base_env: dict[str, str]) -> tuple[list[str], dict[str, str], dict[str, str]]:
    """Return `(argv, env, env_overrides)`: argv for subprocess, the full env, and just what bespoke set."""
    argv = [spec.python, "-m", "accelerate.commands.launch"]
    if spec.accelerate_config is not None:
        argv += ["--config_file", str(spec.accelerate_config)]
    num_processes = max(spec.num_processes, len(spec.gpu_ids) or 1)
    if num_processes > 1:
        argv.append("--multi_gpu")
    argv += [
        "--num_processes", str(num_processes),
        "--num_machines", str(spec.num_machines),
        "--mixed_precision", spec.mixed_precision,
        "--dynamo_backend", spec.dynamo_backend,
        "--num_cpu_threads_per_process", str(spec.num_cpu_threads_per_process),
    ]
    if spec.gpu_ids and spec.pinned_device is None:
        argv += ["--gpu_ids", ",".join(spec.gpu_ids)]
    argv += list(spec.extra_accelerate_args)
    argv += [*spec.gate, str(spec.script), *spec.script_args, *spec.extra_script_args]
    overrides = {"PYTHONUNBUFFERED": "1"}
    if spec.pinned_device is not None:
        overrides["CUDA_VISIBLE_DEVICES"] = spec.pinned_device
    elif spec.gpu_ids:
        overrides["CUDA_VISIBLE_DEVICES"] = ",".join(spec.gpu_ids)
    overrides.update(dict(spec.env_overrides))
    env = {**base_env, **overrides}
    return argv, env, overrides


def train_script_args(training_toml: str | Path, dataset_toml: str | Path) -> tuple[str, ...]:
    """Arguments for train_network.py: the two config files, nothing else (the TOML holds the rest)."""
    return ("--config_file", str(training_toml), "--dataset_config", str(dataset_toml))


def pin_to_gpu(spec: LaunchSpec, gpu_id: str) -> LaunchSpec:
    """The spec of one sweep child that owns exactly one GPU: one process, CUDA_VISIBLE_DEVICES=<id>."""
    return replace(spec, pinned_device=str(gpu_id), gpu_ids=(), num_processes=1)


def with_resume(spec: LaunchSpec, state_dir: str | Path, next_epoch: int | None = None) -> LaunchSpec:
    """Append `--resume <state dir>` after the config files (sd-scripts: the CLI overrides the TOML), and
    `--initial_epoch <next_epoch>` when given: sd-scripts starts a resume at `current_step // steps per epoch` of
    the state's train_state.json, and a resumed run counts its steps from 0 again, so without it a state written
    by a resumed run sends the next resume back to epochs already trained (seen on the real trainer)."""
    words = ("--resume", str(state_dir)) + (("--initial_epoch", str(next_epoch)) if next_epoch else ())
    return replace(spec, extra_script_args=(*spec.extra_script_args, *words))


def recordable_env(overrides: dict[str, str]) -> dict[str, str]:
    """The env overrides safe to write into run.json: anything that looks like a credential is dropped."""
    return {k: v for k, v in overrides.items() if not _SECRET.search(k)}


def format_command(argv: list[str], env_overrides: dict[str, str] | None = None, cwd: str | Path | None = None) -> str:
    """A shell line that re-runs `argv` by hand: `cd` to its working directory, env overrides, every word quoted."""
    prefix = [f"{k}={shlex.quote(v)}" for k, v in sorted((env_overrides or {}).items())]
    line = " ".join([*prefix, shlex.join([str(a) for a in argv])])
    return f"cd {shlex.quote(str(cwd))} && {line}" if cwd is not None else line
