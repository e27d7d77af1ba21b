"""Settings a user sets once: flags, then BESPOKE_* environment variables, then bespoke.toml, then defaults.

`bespoke.toml` lives in the project root (the current directory, or BESPOKE_PROJECT). Unknown keys are
errors with a "did you mean".
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path

from bespoke.errors import ConfigError, did_you_mean
from bespoke.tomlfile import read_toml

DEFAULT_BASE_MODEL = "stable-diffusion-v1-5/stable-diffusion-v1-5"
SETTINGS_FILE = "bespoke.toml"


@dataclass(frozen=True)
class AccelerateSettings:
    """Values passed explicitly to `accelerate launch` so a personal accelerate config cannot leak in."""

    num_processes: int = 1
    num_machines: int = 1
    dynamo_backend: str = "no"
    num_cpu_threads_per_process: int = 2
    extra_args: tuple[str, ...] = ()  # multi-node flags etc., passed through verbatim


@dataclass(frozen=True)
class SlurmSettings:
    """`[slurm]` in bespoke.toml: how `bespoke sweep --slurm` asks for resources (flags override each)."""

    partition: str | None = None
    account: str | None = None
    time: str | None = None  # a Slurm time limit per run, e.g. "04:00:00" or "1-00:00:00"
    gres: str | None = None  # GPUs per run, e.g. "gpu:1"
    max_concurrent: int | None = None  # how many runs of a sweep run at once (the array's %N)
    cpus_per_task: int | None = None
    mem: str | None = None  # memory per run, e.g. "32G"
    extra: tuple[str, ...] = ()  # more `#SBATCH` lines, verbatim (e.g. "--qos=low", "--constraint=a100")


@dataclass(frozen=True)
class TrainSettings:
    """`[train]` in bespoke.toml: the loop's defaults for `train` and `sweep` (flags override each). A webhook
    URL is a secret: write `$NAME` to take it from the environment variable NAME when it is sent."""

    stop_when: str | None = None  # peaked[:N] | val-loss[:N] | off
    notify: tuple[str, ...] = ()  # webhook targets: [slack:|discord:|ntfy:|json:]URL or $VARIABLE
    notify_epochs: bool = False  # also tell each scored epoch
    on_finish: str | None = None  # a command run once when the run or sweep ends, whatever the outcome
    gpu_price_per_hour: float | None = None  # USD per GPU-hour
    budget: float | None = None  # USD a command may spend
    live_score: bool = True  # score each epoch while training


# [train] key in bespoke.toml -> type
_TRAIN_KEYS = {"stop_when": str, "notify": list, "notify_epochs": bool, "on_finish": str,
               "gpu_price_per_hour": float, "budget": float, "live_score": bool}

# [slurm] key in bespoke.toml -> (field, type)
_SLURM_KEYS = {"partition": ("partition", str), "account": ("account", str), "time": ("time", str),
               "gres": ("gres", str), "max-concurrent": ("max_concurrent", int),
               "cpus-per-task": ("cpus_per_task", int), "mem": ("mem", str), "extra": ("extra", list)}


@dataclass(frozen=True)
class Settings:
    """Resolved settings. Paths are absolute."""

    project_root: Path
    outputs_dir: Path
    datasets_dir: Path
    cache_dir: Path
    sd_scripts: Path | None = None
    sd_python: str | None = None
    base_model: str = DEFAULT_BASE_MODEL
    accelerate: AccelerateSettings = field(default_factory=AccelerateSettings)
    presets_dir: Path | None = None  # the user's own presets folder (default: ./kohya_configs when it exists)
    slurm: SlurmSettings = field(default_factory=SlurmSettings)
    score_profile: str | None = None  # the score profile review/process/export use (score_profiles.toml)
    train: TrainSettings = field(default_factory=TrainSettings)

    def with_overrides(self, **changes) -> Settings:
        """A copy with non-None values replaced (used for command-line flags)."""
        return replace(self, **{k: v for k, v in changes.items() if v is not None})

    def sd_script(self, name: str) -> Path:
        """`<sd-scripts>/<name>` (e.g. train_network.py), or a ConfigError saying how to set the checkout up."""
        if self.sd_scripts is None:
            raise ConfigError("no sd-scripts checkout configured: pass --sd-scripts PATH, set BESPOKE_SD_SCRIPTS, "
                              "or sd_scripts in bespoke.toml (then `bespoke doctor`)")
        script = Path(self.sd_scripts) / name
        if not script.is_file():
            raise ConfigError(f"{self.sd_scripts}: no {name}; is this an up-to-date kohya-ss sd-scripts checkout? "
                              "(`git -C <sd-scripts> pull`; `bespoke doctor` checks the setup)")
        return script

    @property
    def trainer_python(self) -> str:
        """The Python that runs sd-scripts: configured, or the checkout's venv, or this interpreter."""
        if self.sd_python:
            return self.sd_python
        if self.sd_scripts:
            for candidate in ("venv/bin/python", ".venv/bin/python", "venv/Scripts/python.exe"):
                path = self.sd_scripts / candidate
                if path.exists():
                    return str(path)
        return sys.executable


# key in bespoke.toml / env suffix -> (Settings field, kind)
_KEYS = {
    "outputs_dir": "path",
    "datasets_dir": "path",
    "cache_dir": "path",
    "sd_scripts": "path",
    "sd_python": "str",
    "base_model": "str",
    "presets_dir": "path",
    "score_profile": "str",
}
_TABLES = ("accelerate", "slurm", "train")
_ACCELERATE_KEYS = {f.name: f for f in fields(AccelerateSettings)}
_ENV = {
    "BESPOKE_OUTPUTS": "outputs_dir",
    "BESPOKE_DATASETS": "datasets_dir",
    "BESPOKE_CACHE": "cache_dir",
    "BESPOKE_SD_SCRIPTS": "sd_scripts",
    "BESPOKE_PYTHON": "sd_python",
    "BESPOKE_BASE_MODEL": "base_model",
    "BESPOKE_SCORE_PROFILE": "score_profile",
}


def project_root() -> Path:
    """BESPOKE_PROJECT if set, else the current directory."""
    return Path(os.environ.get("BESPOKE_PROJECT") or os.getcwd()).resolve()


def _read_file(path: Path) -> dict:
    if not path.exists():
        return {}
    data = read_toml(path, "settings file")
    tables = {name: data.pop(name, {}) for name in _TABLES}
    for key in data:
        if key not in _KEYS:
            raise ConfigError(f"{path}: unknown key {key!r}{did_you_mean(key, list(_KEYS) + list(_TABLES))}")
    known: dict[str, list[str]] = {"accelerate": list(_ACCELERATE_KEYS), "slurm": list(_SLURM_KEYS),
                                   "train": list(_TRAIN_KEYS)}
    for name, table in tables.items():
        if not isinstance(table, dict):
            raise ConfigError(f"{path}: [{name}] must be a table")
        for key in table:
            if key not in known[name]:
                raise ConfigError(f"{path}: unknown key {name}.{key}{did_you_mean(key, known[name])}")
    data.update(tables)
    return data


def _slurm_from(values: dict, source: str) -> SlurmSettings:
    kwargs: dict[str, object] = {}
    for key, value in values.items():
        name, kind = _SLURM_KEYS[key]
        if kind is list:
            if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                raise ConfigError(f"{source}: slurm.{key} must be a list of strings, e.g. [\"--qos=low\"]")
            value = tuple(v if v.startswith("-") else f"--{v}" for v in value)
        elif not isinstance(value, kind) or isinstance(value, bool):
            raise ConfigError(f"{source}: slurm.{key} must be {kind.__name__}, got {value!r}")
        elif isinstance(value, int) and value < 1:
            raise ConfigError(f"{source}: slurm.{key} must be at least 1, got {value}")
        kwargs[name] = value
    return SlurmSettings(**kwargs)  # type: ignore[arg-type]


def _train_from(values: dict, source: str) -> TrainSettings:
    kwargs: dict[str, object] = {}
    for key, value in values.items():
        kind = _TRAIN_KEYS[key]
        if kind is list:
            if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                raise ConfigError(f"{source}: train.{key} must be a list of strings, e.g. [\"slack:$SLACK_WEBHOOK\"]")
            value = tuple(value)
        elif kind is float:
            if not isinstance(value, int | float) or isinstance(value, bool) or value < 0:
                raise ConfigError(f"{source}: train.{key} must be a number of USD, 0 or more, got {value!r}")
            value = float(value)
        elif not isinstance(value, kind):
            raise ConfigError(f"{source}: train.{key} must be {kind.__name__}, got {value!r}")
        kwargs[key] = value
    return TrainSettings(**kwargs)  # type: ignore[arg-type]


def _accelerate_from(values: dict, source: str) -> AccelerateSettings:
    kwargs = {}
    for key, value in values.items():
        default = getattr(AccelerateSettings(), key)
        if isinstance(default, tuple):
            if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                raise ConfigError(f"{source}: accelerate.{key} must be a list of strings")
            value = tuple(value)
        elif not isinstance(value, type(default)) or isinstance(value, bool):
            raise ConfigError(f"{source}: accelerate.{key} must be {type(default).__name__}, got {value!r}")
        kwargs[key] = value
    return AccelerateSettings(**kwargs)


def _presets_dir(root: Path, named: Path | None, source: Path) -> Path | None:
    """The user's presets folder: the one bespoke.toml names (it must exist), else ./kohya_configs if present."""
    if named is not None:
        if not named.is_dir():
            raise ConfigError(f"{source}: presets_dir {named} is not a folder; create it or remove the key")
        return named
    local = root / "kohya_configs"
    return local.resolve() if local.is_dir() else None


def load_settings(root: Path | None = None, env: Mapping[str, str] | None = None) -> Settings:
    """Resolve settings from env and bespoke.toml over defaults (flags are applied by the caller)."""
    root = Path(root) if root else project_root()
    environ: Mapping[str, str] = os.environ if env is None else env
    file_path = root / SETTINGS_FILE
    values = _read_file(file_path)
    accelerate = _accelerate_from(values.pop("accelerate", {}), str(file_path))
    slurm = _slurm_from(values.pop("slurm", {}), str(file_path))
    train = _train_from(values.pop("train", {}), str(file_path))
    for var, key in _ENV.items():
        if environ.get(var):
            values[key] = environ[var]
    if environ.get("BESPOKE_NUM_CPU_THREADS"):
        try:
            accelerate = replace(accelerate, num_cpu_threads_per_process=int(environ["BESPOKE_NUM_CPU_THREADS"]))
        except ValueError as exc:
            raise ConfigError("BESPOKE_NUM_CPU_THREADS must be an integer") from exc

    def path_of(key: str, default: str) -> Path:
        raw = values.get(key, default)
        if not isinstance(raw, str):
            raise ConfigError(f"{file_path}: {key} must be a string path")
        path = Path(raw).expanduser()
        return (path if path.is_absolute() else root / path).resolve()

    for key in ("sd_python", "base_model", "score_profile"):
        if key in values and not isinstance(values[key], str):
            raise ConfigError(f"{file_path}: {key} must be a string")
    return Settings(
        project_root=root,
        outputs_dir=path_of("outputs_dir", "outputs"),
        datasets_dir=path_of("datasets_dir", "datasets"),
        cache_dir=path_of("cache_dir", ".bespoke_cache"),
        sd_scripts=path_of("sd_scripts", "") if values.get("sd_scripts") else None,
        sd_python=values.get("sd_python"),
        base_model=values.get("base_model", DEFAULT_BASE_MODEL),
        accelerate=accelerate,
        presets_dir=_presets_dir(root, path_of("presets_dir", "") if values.get("presets_dir") else None, file_path),
        slurm=slurm,
        score_profile=values.get("score_profile") or None,
        train=train,
    )
