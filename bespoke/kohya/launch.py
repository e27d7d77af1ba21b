"""Pure construction of the trainer command line: a frozen spec in, `(argv, env)` out. Nothing runs here.

Every accelerate value is passed explicitly so that a user's ~/.cache/huggingface/accelerate config
cannot silently change a run, and the trainer's environment is the caller's without what would make the
trainer's Python (another interpreter, in another venv) run differently (`trainer_env`).
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import NamedTuple

# env names that may carry credentials: never recorded in run.json even if a caller sets them
_SECRET = re.compile(r"(TOKEN|SECRET|PASSWORD|PASSWD|CREDENTIAL|API_KEY|ACCESS_KEY|AUTH)", re.IGNORECASE)


# Variables of the caller's Python that change how ANOTHER Python runs a script. Removed from the environment of
# every process bespoke starts in the trainer's Python (the launch, gen_img.py's, the probes) and recorded.
LEAKY_PYTHON_VARS = (
    "PYTHONPATH",  # prepends the caller's import paths: its packages would shadow the trainer venv's own
    "PYTHONHOME",  # relocates the standard library: the trainer's Python would load the caller's (or not start)
    "PYTHONPLATLIBDIR",  # the same for the platform library folder
    "PYTHONEXECUTABLE",  # (macOS) sets sys.executable, which accelerate uses to start train_network.py
    "PYTHONSAFEPATH",  # drops the script's folder from sys.path: train_network.py could not import `library`
    "PYTHONUSERBASE",  # another user site-packages: packages the trainer's venv does not have, or other versions
    "PYTHONNOUSERSITE",  # hides the user site-packages a non-venv trainer Python may install into (pip --user)
    "PYTHONINSPECT",  # an interactive prompt after the script: exit codes become 1, a terminal stdin would hang
    "PYTHONOPTIMIZE",  # strips `assert`: sd-scripts checks configs with asserts (bucket_reso_steps % 64 ...)
    "PYTHONWARNINGS",  # the caller's warning filters ("error" for its own tests) would crash the trainer
)
# Not removed: PYTHONSTARTUP (read by interactive sessions only), PYTHONIOENCODING / PYTHONUTF8 / PYTHONHASHSEED /
# PYTHONFAULTHANDLER / PYTHONDEVMODE / PYTHONMALLOC / PYTHONTRACEMALLOC (deliberate choices that change no result
# of the trainer's code paths), PATH (accelerate and torchrun start workers with sys.executable, not from PATH;
# dropping entries could hide CUDA tools the trainer looks up there).
# An activated environment: removed, with its companions, when the trainer's Python is not inside it (then it is
# the caller's: bitsandbytes looks for the CUDA runtime under $CONDA_PREFIX, pip/uv run by the trainer install
# into $VIRTUAL_ENV); kept when the trainer's Python lives there.
ENVIRONMENT_PREFIXES = {"VIRTUAL_ENV": ("VIRTUAL_ENV_PROMPT",), "CONDA_PREFIX": ("CONDA_DEFAULT_ENV",)}


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


class Launch(NamedTuple):
    """A launch ready for subprocess: its argv, its whole environment, and how that differs from the caller's."""

    argv: list[str]
    env: dict[str, str]
    env_overrides: dict[str, str]  # what bespoke set
    env_removed: dict[str, str]  # what bespoke took out of the caller's environment (trainer_env), with values


def _inside(python: str, prefix: str, env: Mapping[str, str]) -> bool:
    """Whether the interpreter `python` (a path, or a name looked up on the env's PATH) lives under `prefix`."""
    found = python if os.sep in python else shutil.which(python, path=env.get("PATH"))
    if not found:
        return False
    root = os.path.abspath(prefix)
    return os.path.commonpath([root, os.path.abspath(found)]) == root  # not resolved: a venv's python is a link


def trainer_env(base_env: Mapping[str, str], python: str) -> tuple[dict[str, str], dict[str, str]]:
    """`base_env` for a process in the trainer's Python `python`, without the caller's Python setup (see
    LEAKY_PYTHON_VARS and ENVIRONMENT_PREFIXES): `(env, removed)`, removed with its values."""
    removed = {name: base_env[name] for name in LEAKY_PYTHON_VARS if name in base_env}
    for name, companions in ENVIRONMENT_PREFIXES.items():
        prefix = base_env.get(name)
        if prefix and not _inside(python, prefix, base_env):
            removed.update({n: base_env[n] for n in (name, *companions) if n in base_env})
    return {k: v for k, v in base_env.items() if k not in removed}, removed


def build_launch(spec: LaunchSpec, base_env: Mapping[str, str]) -> Launch:
    """The launch of `spec` from the caller's environment `base_env` (see Launch)."""
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
    env, removed = trainer_env(base_env, spec.python)
    return Launch(argv, {**env, **overrides}, overrides, removed)


def train_script_args(training_toml: str | Path, dataset_toml: str | Path) -> tuple[str, ...]:
    """Arguments for train_network.py: the two config files, nothing else (the TOML holds the rest)."""
    return ("--config_file", str(training_toml), "--dataset_config", str(dataset_toml))


def pin_to_gpu(spec: LaunchSpec, gpu_id: str) -> LaunchSpec:
    """The spec of one sweep child that owns exactly one GPU: one process, CUDA_VISIBLE_DEVICES=<id>."""
    return replace(spec, pinned_device=str(gpu_id), gpu_ids=(), num_processes=1)


def with_resume(spec: LaunchSpec, state_dir: str | Path) -> LaunchSpec:
    """Append `--resume <state dir>` after the config files (sd-scripts: the CLI overrides the TOML)."""
    return replace(spec, extra_script_args=(*spec.extra_script_args, "--resume", str(state_dir)))


def recordable_env(overrides: dict[str, str]) -> dict[str, str]:
    """The env overrides safe to write into run.json: anything that looks like a credential is dropped."""
    return {k: v for k, v in overrides.items() if not _SECRET.search(k)}


def format_command(argv: list[str], env_overrides: dict[str, str] | None = None, cwd: str | Path | None = None) -> str:
    """A shell line that re-runs `argv` by hand: `cd` to its working directory, env overrides, every word quoted."""
    prefix = [f"{k}={shlex.quote(v)}" for k, v in sorted((env_overrides or {}).items())]
    line = " ".join([*prefix, shlex.join([str(a) for a in argv])])
    return f"cd {shlex.quote(str(cwd))} && {line}" if cwd is not None else line
