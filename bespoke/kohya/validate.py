"""Checks of what sd-scripts will read, before anything runs: every training key, type and choice against the
option table of train_network.py, the dataset TOML against sd-scripts' schema, and the rules across keys that
the trainer enforces only after loading (bucket bounds, cache_latents vs augmentation, dataset values that
silently override training values). Errors name the file and the key, with a "did you mean".
"""

from __future__ import annotations

import re
from pathlib import Path

from bespoke.errors import ConfigError, did_you_mean
from bespoke.kohya.config import dataset_only_keys, flatten_training, load_toml
from bespoke.kohya.options import (
    dataset_levels,
    lr_scheduler_names,
    optimizer_names,
    torch_optim_names,
    train_network_options,
)
from bespoke.kohya.presets import ResolvedPreset
from bespoke.kohya.rules import (
    check_dataset_rules,
    check_image_dirs,
    check_network_weights,
    check_ranges,
    check_training_rules,
    resolution_pair,
)

_RESOLUTION = re.compile(r"^\s*(\d+)\s*(?:,\s*(\d+)\s*)?$")
_DOTTED = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)+$")


def _describe(value) -> str:
    kind = {bool: "boolean", int: "integer", float: "float", str: "string", list: "array", dict: "table"}
    return f"{kind.get(type(value), type(value).__name__)} {value!r}"


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _check_scalar(kind: str, value) -> str | None:
    """None if `value` fits the option type `kind`, else what was expected."""
    if kind == "bool":
        return None if isinstance(value, bool) else "true or false"
    if kind == "int":
        return None if _is_int(value) else "an integer"
    if kind in ("float", "int_or_float"):
        return None if _is_number(value) else "a number"
    return None if isinstance(value, str) else "a string"


def _check_option(source: str, key: str, value, option) -> None:
    if value is None:
        raise ConfigError(f"{source}: key {key!r} has no value; remove it to use the default")
    if option.nargs == "*" and isinstance(value, list):
        items = value
    elif option.nargs == "*" or not isinstance(value, list):
        items = [value]
    else:
        raise ConfigError(f"{source}: key {key!r} takes one value, got {_describe(value)}")
    for item in items:
        expected = _check_scalar(option.type, item)
        if expected:
            raise ConfigError(f"{source}: key {key!r} must be {expected}, got {_describe(item)}")
        if option.choices is not None and item not in option.choices:
            names = [str(c) for c in option.choices if c is not None]
            raise ConfigError(f"{source}: key {key!r} = {item!r} is not one of {', '.join(names)}"
                              f"{did_you_mean(str(item), names)}")


def _check_special(source: str, values: dict) -> None:
    if "resolution" in values:
        match = _RESOLUTION.match(values["resolution"])
        if not match:
            raise ConfigError(f"{source}: key 'resolution' must be a string \"N\" or \"W,H\", got {values['resolution']!r}")
    scheduler = values.get("lr_scheduler")
    if scheduler is not None:
        names = lr_scheduler_names()
        ok = scheduler in names
        if not ok and scheduler.startswith("adafactor:"):
            try:
                float(scheduler.split(":", 1)[1])
                ok = True
            except ValueError:
                ok = False
        if not ok:
            raise ConfigError(f"{source}: key 'lr_scheduler' = {scheduler!r} is not a scheduler sd-scripts knows "
                              f"({', '.join(names)}, adafactor:<lr>){did_you_mean(scheduler, names)}")
    optimizer = values.get("optimizer_type")
    if optimizer:
        known = {name.lower(): name for name in optimizer_names()}
        torch_names = list(torch_optim_names())
        if optimizer.lower() not in known and optimizer not in torch_names and not _DOTTED.match(optimizer):
            raise ConfigError(f"{source}: key 'optimizer_type' = {optimizer!r} is not an optimizer sd-scripts knows "
                              f"(case-insensitive: {', '.join(optimizer_names())}; or a torch.optim class or a "
                              f"dotted module.Class path){did_you_mean(optimizer, list(known.values()) + torch_names)}")


def validate_training(values: dict, source: str = "training.toml", rules: bool = True) -> dict:
    """Check every key is a train_network.py option with the right type and choice, then (with `rules`) the
    trainer's rules across the keys (bespoke.kohya.rules). Returns `values`."""
    options = train_network_options()
    for key, value in values.items():
        if key not in options:
            raise ConfigError(f"{source}: key {key!r} is not a train_network.py option{did_you_mean(key, options)}")
        _check_option(source, key, value, options[key])
    _check_special(source, values)
    if rules:
        check_training_rules(values, source)
    else:
        check_ranges(values, source, training=True)
    return values


def _check_dataset_value(source: str, where: str, key: str, kind, value) -> None:
    kinds = kind if isinstance(kind, list) else [kind]
    ok = False
    for one in kinds:
        if one == "int":
            ok = _is_int(value)
        elif one == "float":
            ok = isinstance(value, float)
        elif one == "bool":
            ok = isinstance(value, bool)
        elif one == "str":
            ok = isinstance(value, str)
        elif one == "dict":
            ok = isinstance(value, dict)
        elif one == "int or [int, int]":
            ok = _is_int(value) or (isinstance(value, list) and len(value) == 2 and all(map(_is_int, value)))
        elif one == "[float, float]":  # voluptuous: an int is not a float
            ok = isinstance(value, list) and len(value) == 2 and all(isinstance(v, float) for v in value)
        if ok:
            break
    if not ok:
        wanted = " or ".join(kinds)
        hint = ""
        if kinds == ["float"] and _is_int(value):
            hint = f" (ints are not floats here: write {value}.0)"
        elif "int" in kinds and isinstance(value, float) and value.is_integer():
            hint = f" (write {int(value)})"
        raise ConfigError(f"{source}: {where}: key {key!r} must be {wanted}, got {_describe(value)}{hint}")
    if key == "resize_interpolation":
        choices = train_network_options()["resize_interpolation"].choices
        assert choices is not None, "resize_interpolation is a choices option in train_network_options.json"
        if value not in choices:
            raise ConfigError(f"{source}: {where}: key 'resize_interpolation' = {value!r} is not one of "
                              f"{', '.join(choices)}{did_you_mean(value, choices)}")


def check_dataset_table(source: str, where: str, table, level: str, extra: tuple[str, ...] = ()) -> None:
    if not isinstance(table, dict):
        raise ConfigError(f"{source}: {where} must be a table")
    allowed = dataset_levels()[level]
    per_dataset = dataset_only_keys()
    for key, value in table.items():
        if key in extra:
            continue
        if key not in allowed:
            if level == "subsets" and key in per_dataset:
                raise ConfigError(f"{source}: {where}: key {key!r} is only allowed in [[datasets]] or [general], "
                                  f"not in a subset")
            raise ConfigError(f"{source}: {where}: key {key!r} is not allowed here "
                              f"(sd-scripts would stop with 'extra keys not allowed'){did_you_mean(key, allowed)}")
        _check_dataset_value(source, where, key, allowed[key]["type"], value)


def validate_dataset(config: dict, source: str = "dataset.toml", training: dict | None = None) -> dict:
    """Check the dataset TOML like sd-scripts' ConfigSanitizer (DreamBooth subsets), with clear messages, then
    the trainer's rules on each dataset (buckets, ranges, latent caching) with the `training` options it falls
    back to (sd-scripts' argparse defaults when None)."""
    for key in config:
        if key not in ("general", "datasets"):
            raise ConfigError(f"{source}: top-level key {key!r} is not allowed (only [general] and [[datasets]])"
                              f"{did_you_mean(key, ('general', 'datasets'))}")
    general = config.get("general", {})
    check_dataset_table(source, "[general]", general, "general")
    datasets = config.get("datasets")
    if not isinstance(datasets, list) or not datasets:
        raise ConfigError(f"{source}: no [[datasets]] table; add one with a [[datasets.subsets]] image_dir")
    for i, dataset in enumerate(datasets):
        where = f"datasets[{i}]"
        check_dataset_table(source, where, dataset, "datasets", extra=("subsets",))
        subsets = dataset.get("subsets")
        if not isinstance(subsets, list) or not subsets:
            raise ConfigError(f"{source}: {where} has no [[datasets.subsets]]; add one with image_dir")
        for j, subset in enumerate(subsets):
            sub_where = f"{where}.subsets[{j}]"
            check_dataset_table(source, sub_where, subset, "subsets")
            if not subset.get("image_dir"):
                raise ConfigError(f"{source}: {sub_where}: key 'image_dir' is required (the folder of images + captions)")
    check_dataset_rules(config, training or {}, source)
    return config


def check_consistency(training: dict, dataset_config: dict, source: str) -> None:
    """Cross-file checks: values the dataset TOML silently overrides, and what sd-scripts refuses late."""
    general = dataset_config.get("general", {})
    for i, dataset in enumerate(dataset_config.get("datasets", [])):
        for j, subset in enumerate(dataset.get("subsets", [])):
            # sd-scripts takes subset -> dataset -> general -> training value: a different training value is dead
            effective = {**general, **{k: v for k, v in dataset.items() if k != "subsets"}, **subset}
            for key, value in training.items():
                other_key = "batch_size" if key == "train_batch_size" else key
                if other_key not in effective or key in ("image_dir",):
                    continue
                other = effective[other_key]
                if key == "resolution":
                    same = resolution_pair(value) == resolution_pair(other)
                else:
                    same = value == other and type(value) is type(other)
                if not same:
                    raise ConfigError(f"{source}: datasets[{i}].subsets[{j}]: {other_key} = {other!r} overrides the "
                                      f"training value {key} = {value!r} (sd-scripts uses the dataset value); "
                                      f"set it in one place")
    check_dataset_rules(dataset_config, training, source)


def duplicate_keys(data: dict, path: Path) -> list[ConfigError]:
    """Keys set twice in a training TOML (in two sections, or a section and the top level)."""
    seen: dict[str, str] = {}
    problems = []
    for section, value in data.items():
        for key in value if isinstance(value, dict) else (section,):
            where = f"[{section}]" if isinstance(value, dict) else "the top level"
            if key in seen:
                problems.append(ConfigError(f"{path}: key {key!r} is set in {seen[key]} and in {where}; sd-scripts "
                                            f"silently keeps the later one: keep one"))
            seen[key] = where
    return problems


def validate_training_toml(path: Path) -> dict:
    """Load a training TOML as sd-scripts does (toml.load + flatten) and validate it; returns flat values."""
    data = load_toml(path)
    for problem in duplicate_keys(data, path):
        raise problem
    return validate_training(flatten_training(data), str(path))


def validate_dataset_toml(path: Path, training: dict | None = None) -> dict:
    """Load a dataset TOML with toml.load and validate it (with the training options it falls back to);
    returns the parsed config."""
    return validate_dataset(load_toml(path), str(path), training)


def validate_preset_values(preset: ResolvedPreset) -> None:
    """Check each layered preset value against sd-scripts' tables, naming the file (or --set) that set it."""
    options = train_network_options()
    levels = dataset_levels()
    per_dataset = dataset_only_keys()
    for key, value in preset.training.items():
        source = preset.origins.get(f"training.{key}", "preset")
        if key not in options:
            raise ConfigError(f"{source}: key {key!r} is not a train_network.py option{did_you_mean(key, options)}")
        validate_training({key: value}, source, rules=False)  # one key: the cross-key rules run on the whole
    for key, value in preset.dataset.items():
        source = preset.origins.get(f"dataset.{key}", "preset")
        level = "datasets" if key in per_dataset else "subsets"
        if key not in levels["datasets"] and key not in levels["subsets"]:
            known = set(levels["datasets"]) | set(levels["subsets"])
            raise ConfigError(f"{source}: [dataset] key {key!r} is not a dataset TOML key{did_you_mean(key, known)}")
        check_dataset_table(source, "[dataset]", {key: value}, level)


def validate_run_configs(training_toml: Path, dataset_toml: Path, base: Path | None = None) -> tuple[dict, dict]:
    """Both files the trainer reads, together: keys, types, the trainer's cross-key rules and the files they
    name (images, captions, network_weights; relative paths from `base`, the trainer's working directory)."""
    training = validate_training_toml(training_toml)
    dataset_config = validate_dataset_toml(dataset_toml, training)
    check_consistency(training, dataset_config, str(dataset_toml))
    check_image_dirs(dataset_config, training, str(dataset_toml), base)
    check_network_weights(training, str(training_toml), base)
    return training, dataset_config
