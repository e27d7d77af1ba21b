"""The search space of `bespoke tune`: a TOML file, validated like a preset before anything runs.

```toml
[study]
name = "lr-dim"                 # the study (default: the file's name); its folder is <outputs>/tunes/<name>/
resolution = 64                 # every trial's -r (or a parameter `resolution` with choices)
preset = "baseline-512"         # the fixed base preset (optional), and fixed --set values:
set = ["max_train_epochs=4"]
dataset = "bespoke_punks"       # optional: a folder or a name under datasets/
objective = "score"             # score (the best epoch's, maximised) | val-loss (the lowest, minimised)
seed = 1                        # the sampler's (TPE) seed
random_trials = 4               # trials drawn at random before TPE models the space (Optuna's default: 10)

[pruner]
kind = "median"                 # median (default) | halving (successive halving) | none
startup_trials = 2              # median: trials that are never pruned, to have a median
warmup_epochs = 0               # median: epochs of each trial never pruned

[budget]                        # at least one; the first spent ends the study
trials = 8                      # trials asked, whatever their outcome (failed ones count: never retried forever)
hours = 4.0                     # GPU-hours spent by trials
usd = 10.0                      # with gpu_price_per_hour
gpu_price_per_hour = 1.89

[params.learning_rate]          # any train_network.py option, dataset key or bespoke key of a preset
type = "float"                  # float | int | categorical
low = 1e-5
high = 1e-3
log = true                      # optional (float, int); `step` too (not with log)

[params.lr_scheduler]
type = "categorical"
choices = ["constant", "cosine"]
```

Every key is checked the way `--set` checks it (a real option, "did you mean"), and every corner of the space
(each range's ends, each choice, all combined) is planned without writing a run folder, so a space that could
propose a config the trainer refuses is an error here, naming the file, the parameter and the value.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import toml

from bespoke.errors import BespokeError, ConfigError, did_you_mean
from bespoke.kohya.presets import parse_override
from bespoke.tomlfile import parse_toml

try:
    from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution
except ImportError:  # without the `tune` extra a space still parses; a study says how to install Optuna
    CategoricalDistribution = FloatDistribution = IntDistribution = None  # type: ignore[assignment,misc]

TABLES = {"study": ("name", "resolution", "preset", "set", "dataset", "objective", "seed", "random_trials"),
          "pruner": ("kind", "startup_trials", "warmup_epochs"),
          "budget": ("trials", "hours", "usd", "gpu_price_per_hour"),
          "params": ()}
PARAM_KEYS = {"float": ("type", "low", "high", "log", "step"), "int": ("type", "low", "high", "log", "step"),
              "categorical": ("type", "choices")}
OBJECTIVES = {"score": "maximize", "val-loss": "minimize"}
PRUNERS = ("median", "halving", "none")
RESOLUTION = "resolution"  # a parameter that is the run's -r, not a --set key
MAX_CORNERS = 64  # beyond that many combinations, each parameter's corners are checked with the others' first


@dataclass(frozen=True)
class Param:
    """One dimension of the space."""

    key: str
    kind: str  # float | int | categorical
    low: float | int | None = None
    high: float | int | None = None
    log: bool = False
    step: float | int | None = None
    choices: tuple = ()

    def corners(self) -> tuple:
        """The values that bound what the sampler may propose: the range's ends, or every choice."""
        return self.choices if self.kind == "categorical" else (self.low, self.high)

    def distribution(self) -> Any:
        """The Optuna distribution of this parameter."""
        if self.kind == "categorical":
            return CategoricalDistribution(list(self.choices))
        if self.kind == "int":
            return IntDistribution(int(self.low or 0), int(self.high or 0), log=self.log, step=int(self.step or 1))
        return FloatDistribution(float(self.low or 0), float(self.high or 0), log=self.log,
                                 step=float(self.step) if self.step is not None else None)


def override(key: str, value: Any) -> str:
    """`key=value` as `--set` takes it (the value in TOML syntax)."""
    return f"{key}={toml.dumps({'v': value}).strip()[4:]}"


@dataclass(frozen=True)
class Budget:
    trials: int | None = None
    hours: float | None = None  # GPU-hours
    usd: float | None = None
    gpu_price_per_hour: float | None = None


@dataclass(frozen=True)
class Pruning:
    kind: str = "median"
    startup_trials: int = 2
    warmup_epochs: int = 0


@dataclass(frozen=True)
class SearchSpace:
    """A validated search space (see the module docstring)."""

    name: str
    source: Path
    text: str  # the file as read: a study keeps it, and refuses to go on under a changed space
    resolution: int | None
    preset: str | None
    fixed: tuple[str, ...]
    dataset: str | None
    objective: str
    params: tuple[Param, ...]
    budget: Budget
    pruning: Pruning
    seed: int | None = None
    random_trials: int = 10

    @property
    def direction(self) -> str:
        return OBJECTIVES[self.objective]

    def overrides(self, values: dict) -> tuple[str, ...]:
        """The trial's `--set`s: the fixed ones, then its parameters' (resolution aside)."""
        return self.fixed + tuple(override(k, v) for k, v in values.items() if k != RESOLUTION)

    def resolution_of(self, values: dict) -> int:
        return int(values.get(RESOLUTION, self.resolution or 0))

    def corner_values(self) -> Iterator[dict]:
        """Every combination of the parameters' corners (or, past MAX_CORNERS, each parameter's corners with the
        others at their first)."""
        corners = [p.corners() for p in self.params]
        if math.prod(len(c) for c in corners) <= MAX_CORNERS:
            for combo in itertools.product(*corners):
                yield dict(zip((p.key for p in self.params), combo, strict=True))
            return
        first = {p.key: p.corners()[0] for p in self.params}
        for param in self.params:
            for value in param.corners():
                yield {**first, param.key: value}


def _unknown(source: str, where: str, given, known) -> None:
    for key in given:
        if key not in known:
            raise ConfigError(f"{source}: {where} key {key!r} is not one of {', '.join(known)}"
                              f"{did_you_mean(key, known)}")


def _number(source: str, where: str, value, kind: str, positive: bool = False):
    ok = isinstance(value, int) and not isinstance(value, bool) if kind == "int" else \
        isinstance(value, int | float) and not isinstance(value, bool)
    if not ok or (positive and value <= 0):
        what = "a whole number" if kind == "int" else "a number"
        raise ConfigError(f"{source}: {where} = {value!r}: give {what}{' above 0' if positive else ''}")
    return value


def _param(source: str, key: str, table) -> Param:
    where = f"[params.{key}]"
    if not isinstance(table, dict):
        raise ConfigError(f"{source}: {where} must be a table (type = \"float\", low = ..., high = ...)")
    kind = table.get("type")
    if kind not in PARAM_KEYS:
        raise ConfigError(f"{source}: {where} type = {kind!r}: choose float, int or categorical"
                          f"{did_you_mean(str(kind), PARAM_KEYS)}")
    _unknown(source, where, table, PARAM_KEYS[kind])
    if kind == "categorical":
        choices = table.get("choices")
        if not isinstance(choices, list) or not choices or len({type(c) for c in choices}) != 1 \
                or len(set(map(str, choices))) != len(choices):
            raise ConfigError(f"{source}: {where} choices: give a list of distinct values of one type, "
                              "e.g. choices = [\"constant\", \"cosine\"]")
        return Param(key, kind, choices=tuple(choices))
    low, high = (_number(source, f"{where} {end}", table.get(end), kind) for end in ("low", "high"))
    log, step = table.get("log", False), table.get("step")
    if not isinstance(log, bool):
        raise ConfigError(f"{source}: {where} log = {log!r}: write true or false")
    if low >= high:
        raise ConfigError(f"{source}: {where} low = {low} is not below high = {high}")
    if log and low <= 0:
        raise ConfigError(f"{source}: {where} low = {low}: a log range starts above 0")
    if step is not None:
        _number(source, f"{where} step", step, kind, positive=True)
        if log:
            raise ConfigError(f"{source}: {where}: step and log do not go together (Optuna refuses it); drop one")
    return Param(key, kind, low, high, log, step)


def _check_key(source: str, param: Param) -> None:
    """Each corner value as `--set` would take it: a real key, a value of its type."""
    if param.key == RESOLUTION:
        if param.kind != "categorical" or not all(isinstance(c, int) for c in param.choices):
            raise ConfigError(f"{source}: [params.resolution] is the run's -r: make it categorical with whole "
                              "numbers, e.g. choices = [64, 128]")
        return
    for value in param.corners():
        try:
            parse_override(override(param.key, value))
        except ConfigError as error:
            raise ConfigError(f"{source}: [params.{param.key}]: {error}") from None


def _budget(source: str, table: dict) -> Budget:
    trials = table.get("trials")
    if trials is not None:
        _number(source, "[budget] trials", trials, "int", positive=True)
    hours, usd, price = (table.get(k) for k in ("hours", "usd", "gpu_price_per_hour"))
    for name, value in (("hours", hours), ("usd", usd), ("gpu_price_per_hour", price)):
        if value is not None:
            _number(source, f"[budget] {name}", value, "float", positive=True)
    if usd is not None and price is None:
        raise ConfigError(f"{source}: [budget] usd needs gpu_price_per_hour (USD for one GPU for one hour)")
    if trials is None and hours is None and usd is None:
        raise ConfigError(f"{source}: [budget]: give trials, hours or usd (a study without a budget never ends)")
    return Budget(trials, hours, usd, price)


def _pruning(source: str, table: dict) -> Pruning:
    kind = table.get("kind", "median")
    if kind not in PRUNERS:
        raise ConfigError(f"{source}: [pruner] kind = {kind!r}: choose {', '.join(PRUNERS)}"
                          f"{did_you_mean(str(kind), PRUNERS)}")
    startup = _number(source, "[pruner] startup_trials", table.get("startup_trials", 2), "int")
    warmup = _number(source, "[pruner] warmup_epochs", table.get("warmup_epochs", 0), "int")
    return Pruning(kind, startup, warmup)


def _objective(source: str, value) -> str:
    if value == "profile":
        raise ConfigError(f"{source}: [study] objective = \"profile\": vote-calibrated profiles are not part of "
                          "this bespoke yet; use score or val-loss")
    if value not in OBJECTIVES:
        raise ConfigError(f"{source}: [study] objective = {value!r}: choose score or val-loss"
                          f"{did_you_mean(str(value), OBJECTIVES)}")
    return str(value)


def parse_space(text: str, source: Path, default_name: str | None = None) -> SearchSpace:
    """The space in `text` (read from `source`), every key and range checked; one-line ConfigErrors. Without a
    [study] name the study is named `default_name`, else the file's name."""
    where = str(source)
    data = parse_toml(text, where)
    _unknown(where, "top-level", data, TABLES)
    study, params = data.get("study", {}), data.get("params", {})
    for table in TABLES:
        if not isinstance(data.get(table, {}), dict):
            raise ConfigError(f"{where}: [{table}] must be a table")
        if table != "params":
            _unknown(where, f"[{table}]", data.get(table, {}), TABLES[table])
    if not params:
        raise ConfigError(f"{where}: no [params.KEY] tables: the space needs at least one parameter")
    parsed = tuple(_param(where, key, table) for key, table in params.items())
    for param in parsed:
        _check_key(where, param)
    fixed = study.get("set", [])
    if not isinstance(fixed, list) or not all(isinstance(s, str) for s in fixed):
        raise ConfigError(f"{where}: [study] set: give a list of \"key=value\" strings, as --set takes them")
    for text_ in fixed:
        try:
            parse_override(text_)
        except ConfigError as error:
            raise ConfigError(f"{where}: [study] set: {error}") from None
    resolution = study.get("resolution")
    if resolution is None and RESOLUTION not in params:
        raise ConfigError(f"{where}: [study] resolution: give the trials' resolution (e.g. 64), or make it a "
                          "parameter [params.resolution]")
    if resolution is not None:
        _number(where, "[study] resolution", resolution, "int", positive=True)
    name = str(study.get("name") or default_name or Path(source).stem)
    if not name.replace("-", "").replace("_", "").isalnum():
        raise ConfigError(f"{where}: [study] name = {name!r}: use letters, digits, - and _ (it names a folder)")
    seed = study.get("seed")
    if seed is not None:
        _number(where, "[study] seed", seed, "int")
    return SearchSpace(name, Path(source), text, resolution, study.get("preset"), tuple(fixed),
                       study.get("dataset"), _objective(where, study.get("objective", "score")), parsed,
                       _budget(where, data.get("budget", {})), _pruning(where, data.get("pruner", {})), seed,
                       _number(where, "[study] random_trials", study.get("random_trials", 10), "int"))


def load_space(path: Path, default_name: str | None = None) -> SearchSpace:
    """Read and parse a space file (a missing or unreadable file is a one-line ConfigError)."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as error:
        raise ConfigError(f"{path}: search space not readable ({error.strerror or error})") from None
    return parse_space(text, path, default_name)


def describe(values: dict) -> str:
    return ", ".join(f"{k}={v}" for k, v in values.items())


def refusal(space: SearchSpace, values: dict, error: BespokeError) -> ConfigError:
    """The error for a corner of the space that plan refuses."""
    return ConfigError(f"{space.source}: the space can propose {describe(values)}, which is refused: {error}; "
                       "narrow that parameter's range (or its choices) so every value it can take trains")


def unmeasurable(space: SearchSpace, values: dict, why: str) -> ConfigError:
    """The error for settings under which the study's objective has nothing to measure: the objective or the
    settings are at fault, not a parameter's range."""
    return ConfigError(f"{space.source}: [study] objective = \"{space.objective}\" cannot be measured with the "
                       f"settings (e.g. {describe(values)}): {why}")
