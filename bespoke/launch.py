"""Pure construction of the trainer command line: a frozen spec in, `(argv, env)` out. Nothing runs here.

Every accelerate value is passed explicitly so that a user's ~/.cache/huggingface/accelerate config
cannot silently change a run.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path


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
    gpu_ids: tuple[str, ...] = ()  # pinned GPUs; several -> --multi_gpu
    extra_accelerate_args: tuple[str, ...] = ()
    cwd: Path | None = None
    env_overrides: tuple[tuple[str, str], ...] = field(default_factory=tuple)


def build_launch(spec: LaunchSpec, base_env: dict[str, str]) -> tuple[list[str], dict[str, str], dict[str, str]]:
    """Return `(argv, env, env_overrides)`: argv for subprocess, the full env, and just what bespoke set."""
    argv = [spec.python, "-m", "accelerate.commands.launch"]
    if len(spec.gpu_ids) > 1 or spec.num_processes > 1:
        argv.append("--multi_gpu")
    num_processes = max(spec.num_processes, len(spec.gpu_ids) or 1)
    argv += [
        "--num_processes", str(num_processes),
        "--num_machines", str(spec.num_machines),
        "--mixed_precision", spec.mixed_precision,
        "--dynamo_backend", spec.dynamo_backend,
        "--num_cpu_threads_per_process", str(spec.num_cpu_threads_per_process),
    ]
    if spec.gpu_ids:
        argv += ["--gpu_ids", ",".join(spec.gpu_ids)]
    argv += list(spec.extra_accelerate_args)
    argv += [str(spec.script), *spec.script_args]
    overrides = {"PYTHONUNBUFFERED": "1"}
    if spec.gpu_ids:
        overrides["CUDA_VISIBLE_DEVICES"] = ",".join(spec.gpu_ids)
    overrides.update(dict(spec.env_overrides))
    env = {**base_env, **overrides}
    return argv, env, overrides


def train_script_args(training_toml: Path, dataset_toml: Path) -> tuple[str, ...]:
    """Arguments for train_network.py: the two config files, nothing else (the TOML holds the rest)."""
    return ("--config_file", str(training_toml), "--dataset_config", str(dataset_toml))
