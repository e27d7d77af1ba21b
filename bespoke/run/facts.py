"""The trainer's environment, probed once: one process in the trainer's Python (bespoke/kohya/envprobe.py) for
Python, torch, accelerate, the device, xformers and the optional packages, plus the sd-scripts commit read from
its checkout. `doctor`, every attempt's `trainer` record in run.json and `plan`'s commit all come from here."""

from __future__ import annotations

import os
from pathlib import Path

from bespoke.kohya.environment import TrainerFacts, env_probe_argv, parse_environment
from bespoke.kohya.launch import trainer_env
from bespoke.run.runner import run_capture
from bespoke.settings import Settings

PROBE_TIMEOUT_S = 120.0  # torch, bitsandbytes and friends imported on a busy box with a cold disk cache


def sd_scripts_commit(checkout: Path | None) -> str | None:
    """The git commit of an sd-scripts checkout, read from .git without running git (None if unknown)."""
    if not checkout:
        return None
    git = Path(checkout) / ".git"
    try:
        if git.is_file():  # worktree / submodule: "gitdir: <path>"
            target = git.read_text(encoding="utf-8").strip().removeprefix("gitdir:").strip()
            git = (Path(checkout) / target).resolve()
        head = (git / "HEAD").read_text(encoding="utf-8").strip()
        if not head.startswith("ref:"):
            return head
        return _ref_commit(git, head[4:].strip())
    except OSError:
        return None


def _ref_commit(git: Path, ref: str) -> str | None:
    ref_file = git / ref
    if ref_file.is_file():
        return ref_file.read_text(encoding="utf-8").strip()
    packed = git / "packed-refs"
    if packed.is_file():
        for line in packed.read_text(encoding="utf-8").splitlines():
            parts = line.split()
            if len(parts) == 2 and parts[1] == ref:
                return parts[0]
    return None


def trainer_facts(settings: Settings, *, options: bool = False, timeout: float = PROBE_TIMEOUT_S,
                  base_env: dict[str, str] | None = None) -> TrainerFacts:
    """The trainer's environment as its own Python sees it (see bespoke.kohya.environment.TrainerFacts), in the
    environment a launch would give it; with `options`, train_network.py's option names too (imports sd-scripts:
    seconds more). Never raises: what could not be found is None, with the reason in `errors`."""
    checkout = settings.sd_scripts if settings.sd_scripts and Path(settings.sd_scripts).is_dir() else None
    python = settings.trainer_python
    env, _removed = trainer_env(dict(os.environ if base_env is None else base_env), python)
    done = run_capture(env_probe_argv(python, checkout, options), timeout=timeout, env=env)
    return parse_environment(done.stdout, done.stderr, done.exit_code, sd_scripts_commit(settings.sd_scripts))
