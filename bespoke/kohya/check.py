"""`bespoke check`: every problem of a hand-edited sd-scripts file or a run folder, one per line, where the
validators of validate.py stop at the first (plan, train: one line to fix at a time is enough there)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from bespoke.errors import BespokeError, ConfigError, did_you_mean
from bespoke.kohya.config import flatten_training, load_toml
from bespoke.kohya.prompts import parse_prompt_file
from bespoke.kohya.rules import (
    check_dataset_rules,
    check_image_dirs,
    check_network_weights,
    check_ranges,
    training_rules,
)
from bespoke.kohya.validate import check_consistency, check_dataset_table, duplicate_keys, validate_training


def _collect(problems: list[BespokeError], check: Callable[..., object], *args) -> bool:
    """Run one independent check, keeping its error; True when it passed."""
    try:
        check(*args)
    except ConfigError as error:
        problems.append(error)
        return False
    return True


def training_problems(path: Path) -> tuple[dict, list[BespokeError]]:
    """Every problem of a training TOML, not only the first: each key on its own (name, type, choice, range),
    then each of the trainer's cross-key rules on the keys that passed. Returns (flat values, problems)."""
    data = load_toml(path)
    problems: list[BespokeError] = [*duplicate_keys(data, path)]
    values = flatten_training(data)
    passed = {key: value for key, value in values.items()
              if _collect(problems, validate_training, {key: value}, str(path), False)}
    for rule in training_rules():
        _collect(problems, rule, passed, str(path))
    return values, problems


def dataset_problems(config: dict, source: str, training: dict | None = None,
                     rules: bool = True) -> list[BespokeError]:
    """Every problem of a dataset TOML: each key of each table on its own (name, type, range); with `rules`,
    the trainer's rules on the datasets (buckets, latent caching: the first broken) once the tables pass, with
    the `training` options they fall back to."""
    problems: list[BespokeError] = []
    for key in config:
        if key not in ("general", "datasets"):
            problems.append(ConfigError(f"{source}: top-level key {key!r} is not allowed (only [general] and "
                                        f"[[datasets]]){did_you_mean(key, ('general', 'datasets'))}"))
    tables = [("[general]", config.get("general", {}), "general")]
    datasets = config.get("datasets")
    if not isinstance(datasets, list) or not datasets:
        problems.append(ConfigError(f"{source}: no [[datasets]] table; add one with a [[datasets.subsets]] image_dir"))
        datasets = []
    for i, dataset in enumerate(datasets):
        tables.append((f"datasets[{i}]", dataset, "datasets"))
        subsets = dataset.get("subsets") if isinstance(dataset, dict) else None
        if not isinstance(subsets, list) or not subsets:
            problems.append(ConfigError(f"{source}: datasets[{i}] has no [[datasets.subsets]]; add one with image_dir"))
            subsets = []
        tables += [(f"datasets[{i}].subsets[{j}]", subset, "subsets") for j, subset in enumerate(subsets)]
    for where, table, level in tables:
        extra = ("subsets",) if level == "datasets" else ()
        for one in ({key: value} for key, value in table.items()) if isinstance(table, dict) else [table]:
            if _collect(problems, check_dataset_table, source, where, one, level, extra) and one.keys() - {*extra}:
                _collect(problems, check_ranges, one, source, where)
        if level == "subsets" and isinstance(table, dict) and not table.get("image_dir"):
            problems.append(ConfigError(f"{source}: {where}: key 'image_dir' is required (the folder of images + "
                                        f"captions)"))
    if rules and not problems:
        _collect(problems, check_dataset_rules, config, training or {}, source)
    return problems


def _run_root(path: Path) -> Path | None:
    """The run folder a config file (or the folder itself) belongs to, or None."""
    for folder in (path, path.parent.parent):
        if (folder / "run.json").is_file() and (folder / "config" / "training.toml").is_file():
            return folder
    return None


def check_file(path: Path) -> tuple[str, str]:
    """Validate a hand-edited sd-scripts file, or a run folder, guessing its kind: returns (kind, summary);
    the first problem raises (`file_problems` lists all of them)."""
    kind, summary, problems = file_problems(path)
    if problems:
        raise problems[0]
    return kind, summary


def _run_folder_problems(root: Path) -> tuple[str, list[BespokeError]]:
    """Both config files of a run folder (and its prompts), checked together as the trainer reads them."""
    training_toml, dataset_toml = root / "config" / "training.toml", root / "config" / "dataset.toml"
    training, problems = training_problems(training_toml)
    dataset_config = load_toml(dataset_toml)
    # the dataset's rules fall back to training values: only to ones that passed their own checks
    problems += dataset_problems(dataset_config, str(dataset_toml), training, rules=not problems)
    if not problems:
        _collect(problems, check_consistency, training, dataset_config, str(dataset_toml))
        _collect(problems, check_image_dirs, dataset_config, training, str(dataset_toml), root)
        _collect(problems, check_network_weights, training, str(training_toml), root)
    prompts: list = []
    _collect(problems, lambda: prompts.extend(parse_prompt_file(root / "config" / "prompts.txt")))
    datasets = dataset_config.get("datasets") or []
    return (f"{len(training)} training options, {len(datasets)} dataset(s), {len(prompts)} prompts"), problems


def file_problems(path: Path) -> tuple[str, str, list[BespokeError]]:
    """Every problem of a hand-edited sd-scripts file or a run folder, guessing its kind: (kind, summary,
    problems). A file inside a run folder's config/ is checked together with its sibling (the trainer reads both).
    A file that cannot be read at all (missing, not TOML) raises."""
    path = Path(path)
    if not path.exists():
        raise ConfigError(f"{path}: no such file or run folder")
    root = _run_root(path)
    if path.is_dir():
        if root is None:
            raise ConfigError(f"{path}: not a run folder (no run.json + config/training.toml) nor a config file")
        return ("run folder", *_run_folder_problems(root))
    suffix = path.suffix.lower()
    data = load_toml(path) if suffix == ".toml" else None
    if suffix in (".txt", ".json") or (data is not None and "prompt" in data):
        prompts = parse_prompt_file(path)
        return "sample prompts", f"{len(prompts)} prompts", []
    if data is None:
        raise ConfigError(f"{path}: not a .toml config or a .txt/.toml/.json prompt file")
    in_run = root is not None and path.parent == root / "config"
    problems: list[BespokeError] = []
    if "datasets" in data or "general" in data:
        kind = "dataset config"
        subsets = sum(len(d.get("subsets", [])) for d in data.get("datasets") or [] if isinstance(d, dict))
        summary = f"{len(data.get('datasets') or [])} dataset(s), {subsets} subset(s)"
        if not in_run:
            problems += dataset_problems(data, str(path))
            if not problems:
                _collect(problems, check_image_dirs, data, {}, str(path), root)
    else:
        kind = "training config"
        values, problems = training_problems(path)
        summary = f"{len(values)} train_network.py options"
        if not problems and not in_run:
            _collect(problems, check_network_weights, values, str(path), root)
    if in_run:  # checked with its sibling, as the trainer reads both
        assert root is not None
        problems = _run_folder_problems(root)[1]
    return kind, summary, problems
