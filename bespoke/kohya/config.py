"""The two files sd-scripts reads, as data: the training TOML (`--config_file`) and the dataset TOML
(`--dataset_config`) built from a resolved preset, and read back the way sd-scripts reads them.

Rendering them as text is `bespoke.kohya.tomlwriter`; checking them is `bespoke.kohya.validate`.
"""

from __future__ import annotations

import re
from pathlib import Path

import toml

from bespoke import tomlfile
from bespoke.errors import ConfigError
from bespoke.kohya.options import dataset_levels
from bespoke.kohya.presets import ResolvedPreset

# Training keys whose values are paths inside the run folder, written relative to it (the trainer runs there).
RUN_LOCAL_KEYS = ("output_dir", "logging_dir", "sample_prompts")


def build_training_config(preset: ResolvedPreset, *, base_model: str, run_local: dict[str, str]) -> dict:
    """Resolved training TOML values (flat, sorted, no None) for a preset.

    `run_local` holds the run folder's own paths as the trainer sees them from the run folder, its working
    directory (`output_dir = "model"`, `logging_dir`, `sample_prompts`): keys of RUN_LOCAL_KEYS, all of them.
    """
    missing = set(RUN_LOCAL_KEYS) - set(run_local)
    if missing:
        raise ValueError(f"run_local lacks {sorted(missing)}")
    values = dict(preset.training)
    values.setdefault("output_name", f"bespoke_{preset.resolution}px")
    values.update(
        pretrained_model_name_or_path=base_model,
        resolution=f"{preset.resolution},{preset.resolution}",
        **run_local,
    )
    # Mirrored so sd-scripts' ".caption" default can never apply, even if the dataset TOML is swapped.
    if "caption_extension" in preset.dataset:
        values["caption_extension"] = preset.dataset["caption_extension"]
    return {key: values[key] for key in sorted(values) if values[key] is not None}


def dataset_only_keys() -> set[str]:
    """Keys sd-scripts accepts per dataset (and in [general]) but rejects inside a subset."""
    levels = dataset_levels()
    return set(levels["datasets"]) - set(levels["subsets"])


def build_dataset_config(preset: ResolvedPreset, image_dir: Path | str, validation_dir: Path | str | None = None,
                         validation_seed: int = 0) -> dict:
    """Dataset TOML: one [[datasets]] (resolution, batch, buckets) with one subset (image_dir, captions).

    With `validation_dir` (designs held out for validation), a second [[datasets]] of the same settings holds
    exactly those images out: `validation_split = 1.0` (a float: the trainer's schema refuses an int), seeded,
    one pass over them per validation (`num_repeats = 1`). sd-scripts' own random split would part a design's
    background twins; this one keeps whole designs on one side (FACTS.md §11, verified on the real trainer)."""
    per_dataset = dataset_only_keys()
    dataset: dict = {"resolution": preset.resolution}
    subset: dict = {"image_dir": str(image_dir)}
    for key in sorted(preset.dataset):
        value = preset.dataset[key]
        if value is None:
            continue
        (dataset if key in per_dataset else subset)[key] = value
    blocks = [{**dict(sorted(dataset.items())), "subsets": [dict(sorted(subset.items()))]}]
    if validation_dir is not None:
        held = {**dataset, "validation_split": 1.0, "validation_seed": int(validation_seed)}
        held_subset = {**subset, "image_dir": str(validation_dir), "num_repeats": 1}
        blocks.append({**dict(sorted(held.items())), "subsets": [dict(sorted(held_subset.items()))]})
    return {"datasets": blocks}


def has_validation(dataset_config: dict) -> bool:
    """The dataset TOML holds images out for validation (a dataset or [general] with validation_split > 0)."""
    general = dataset_config.get("general") or {}
    blocks = [general, *(dataset_config.get("datasets") or [])]
    return any(isinstance(b, dict) and isinstance(b.get("validation_split"), int | float)
               and b["validation_split"] > 0 for b in blocks)


def toml_error(text: str, exc: Exception) -> str:
    """Where a TOML text is broken, for a one-line error: toml 0.10.2's own message when it names the line,
    else (its IndexError/ValueError crashes) the line and column the strict parser (tomllib) reports."""
    if isinstance(exc, toml.TomlDecodeError):
        return str(exc)
    strict = tomlfile.strict_error(text)
    if strict:
        return strict
    return f"the toml 0.10.2 parser sd-scripts uses cannot read it ({type(exc).__name__}: {exc})"


def load_toml(path: Path) -> dict:
    """Parse a TOML file with the `toml` package, as sd-scripts does (toml 0.10.2 quirks included);
    a one-line ConfigError naming the file and the line otherwise."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
        return toml.loads(text)
    except FileNotFoundError as exc:
        raise ConfigError(f"{path}: file not found") from exc
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML (not UTF-8 text: {exc.reason} at byte {exc.start})") from exc
    except (toml.TomlDecodeError, IndexError, ValueError) as exc:
        mixed = mixed_arrays(text) if "homogeneous" in str(exc) else []
        if mixed:
            raise ConfigError(f"{path}: key {mixed[0]!r} is an array of mixed types, which the toml 0.10.2 parser "
                              f"of sd-scripts refuses ('Not a homogeneous array'): give every item one type "
                              f"(all strings, or all floats: 1.0 not 1)") from exc
        raise ConfigError(f"{path}: not valid TOML: {toml_error(text, exc)}") from exc


def mixed_arrays(text: str) -> list[str]:
    """Dotted keys of one-line arrays that mix value types (int and float count as two), which toml 0.10.2,
    the parser sd-scripts uses, refuses with a message that names no key. Each `key = [...]` line is parsed
    alone; a multi-line array is not found (the caller then reports toml's own message)."""
    found, section = [], ""
    for line in text.splitlines():
        header = re.match(r"^\s*\[\[?\s*([^\]]+?)\s*\]\]?\s*(#.*)?$", line)
        if header:
            section = header.group(1)
            continue
        match = re.match(r"^\s*([A-Za-z0-9_.\-]+)\s*=\s*\[", line)
        if not match:
            continue
        try:
            toml.loads(line.strip())
        except toml.TomlDecodeError as exc:
            if "homogeneous" in str(exc):
                found.append(f"{section}.{match.group(1)}" if section else match.group(1))
    return found


def flatten_training(data: dict) -> dict:
    """Flatten like sd-scripts' read_config_from_file: one level of tables merged, later keys win."""
    flat = {}
    for key, value in data.items():
        if isinstance(value, dict):
            flat.update(value)
        else:
            flat[key] = value
    return flat
