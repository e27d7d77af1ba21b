"""A study for the fake trainer: a 3-parameter space whose optimum the fake knows (FAKE_TRAINER_OPTIMUM), and
what a study's journal says of its trials."""

from __future__ import annotations

import json
import math
from pathlib import Path

OPTIMUM = {"learning_rate": 1e-3, "network_dim": 16, "lr_scheduler": "cosine"}


def space_text(name: str = "fake", trials: int = 8, epochs: int = 4, seed: int = 3, random_trials: int = 4,
               startup: int = 2, extra: str = "") -> str:
    return f"""
[study]
name = "{name}"
resolution = 64
set = ["max_train_epochs={epochs}"]
seed = {seed}
random_trials = {random_trials}

[pruner]
kind = "median"
startup_trials = {startup}

[budget]
trials = {trials}

[params.learning_rate]
type = "float"
low = 1e-4
high = 1e-2
log = true

[params.network_dim]
type = "int"
low = 8
high = 24
step = 8

[params.lr_scheduler]
type = "categorical"
choices = ["constant", "cosine"]
{extra}"""


def write_space(project: Path, **kwargs) -> Path:
    path = project / "space.toml"
    path.write_text(space_text(**kwargs))
    return path


def use_optimum(monkeypatch, step_seconds: float = 0.4) -> None:
    """The fake's samples peak later and cleaner the nearer a trial is to OPTIMUM; steps slow enough that each
    epoch's score lands before the next epoch ends (so the pruner's stop comes in time)."""
    monkeypatch.setenv("FAKE_TRAINER_OPTIMUM", json.dumps(OPTIMUM))
    monkeypatch.setenv("FAKE_TRAINER_STEP_SECONDS", str(step_seconds))


def distance(params: dict) -> float:
    """The fake's distance of a trial from OPTIMUM (tests/fakes/sd_scripts/library/train_util.py _optimum_peak)."""
    parts = [min(1.0, abs(math.log10(params["learning_rate"] / OPTIMUM["learning_rate"]))),
             min(1.0, abs(math.log10(params["network_dim"] / OPTIMUM["network_dim"]))),
             0.0 if params["lr_scheduler"] == OPTIMUM["lr_scheduler"] else 1.0]
    return sum(parts) / len(parts)


def journal_trials(project: Path, name: str = "fake") -> list:
    """The study's trials, read from its journal as a fresh process would."""
    import optuna

    from bespoke.settings import load_settings
    from bespoke.tune.study import load_study

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    return load_study(load_settings(), name).optuna.get_trials(deepcopy=False)
