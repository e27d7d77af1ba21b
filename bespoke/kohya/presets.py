"""Presets in kohya_configs/: layered TOML (base <- res-R <- named preset <- --set overrides).

Each preset file has up to three tables: [training] (train_network.py options), [dataset] (dataset TOML
keys) and [bespoke] (bespoke's own keys, never passed to sd-scripts). The notes at the top of
kohya_configs/base.toml are the user-facing description of this.
"""

from __future__ import annotations

import re
import sys
from dataclasses import dataclass, field
from pathlib import Path

import toml

if sys.version_info >= (3, 11):
    import tomllib
else:  # the same parser, before it joined the standard library
    import tomli as tomllib

from bespoke.errors import ConfigError, did_you_mean
from bespoke.kohya.options import dataset_keys, train_network_options

# bespoke/kohya_configs links to the repository's kohya_configs/ (and is a real copy inside an installed wheel)
PRESETS_DIR = Path(__file__).resolve().parent.parent / "kohya_configs"

TABLES = ("training", "dataset", "bespoke")
# bespoke-only keys and their types
BESPOKE_KEYS = {
    "description": str,
    "prompts": str,
    "layout": str,
    "sample_size": int,
    "resolution": int,
}
# Values bespoke derives itself; a preset or --set may not set them.
MANAGED_TRAINING = {
    "pretrained_model_name_or_path": "comes from settings.base_model (--base-model / BESPOKE_BASE_MODEL / bespoke.toml)",
    "resolution": "comes from -r/--resolution",
    "output_dir": "is the run folder's model/",
    "logging_dir": "is the run folder's logs/tensorboard",
    "sample_prompts": "is the run folder's config/prompts.txt (use --prompts FILE)",
    "config_file": "is the run folder's config/training.toml",
    "dataset_config": "is the run folder's config/dataset.toml",
    "train_data_dir": "is replaced by the dataset TOML's image_dir (the prepared dataset)",
    "reg_data_dir": "is not supported by bespoke's dataset TOML",
    "in_json": "is not supported by bespoke's dataset TOML",
    "output_config": "would make sd-scripts write a config and exit",
}
MANAGED_DATASET = {
    "image_dir": "is the prepared dataset folder (use --dataset)",
    "resolution": "comes from -r/--resolution",
}
_RES_NAME = re.compile(r"^res-\d+$")
_SWEEP_NAME = re.compile(r"^sweep-")  # sweep definitions (bespoke sweep --sweep FILE) share the folder


@dataclass(frozen=True)
class ResolvedPreset:
    """Layered preset values: `training`, `dataset` and `bespoke` tables, and the files they came from."""

    name: str | None
    resolution: int
    training: dict
    dataset: dict
    bespoke: dict
    sources: tuple[Path, ...] = field(default_factory=tuple)
    overrides: tuple[str, ...] = ()
    origins: dict = field(default_factory=dict)  # "table.key" -> the file (or "--set ...") that set it last

    @property
    def prompts_file(self) -> Path:
        """The prompt set named by the preset (a file in the presets folder)."""
        return self.sources[0].parent / self.bespoke.get("prompts", "prompts-default.txt")

    @property
    def layout(self) -> str:
        return self.bespoke.get("layout", "stretch")

    @property
    def sample_size(self) -> int:
        return int(self.bespoke.get("sample_size", self.resolution))

    @property
    def description(self) -> str:
        return self.bespoke.get("description", "")


def presets_folder(path: Path | None = None) -> Path:
    """The folder holding the preset TOMLs (kohya_configs/ unless given)."""
    return Path(path) if path else PRESETS_DIR


def preset_names(directory: Path | None = None) -> list[str]:
    """Named presets a user can pass to --preset (every TOML except base and res-R)."""
    folder = presets_folder(directory)
    return sorted(
        p.stem for p in folder.glob("*.toml")
        if p.stem != "base" and not _RES_NAME.match(p.stem) and not _SWEEP_NAME.match(p.stem)
    )


def list_presets(directory: Path | None = None) -> list[dict]:
    """Every preset file with its role and description, for `bespoke presets`."""
    folder = presets_folder(directory)
    keyed: list[tuple[tuple[int, int, str], dict[str, str]]] = []  # (sort key, row)
    order = {"base": 0, "resolution": 1, "preset": 2, "sweep": 3}
    for path in folder.glob("*.toml"):
        if _SWEEP_NAME.match(path.stem):
            role = "sweep"
            try:
                description = str(tomllib.loads(path.read_text(encoding="utf-8")).get("description", ""))
            except (tomllib.TOMLDecodeError, UnicodeDecodeError, OSError):
                description = "(unreadable sweep file)"
        else:
            role = "base" if path.stem == "base" else "resolution" if _RES_NAME.match(path.stem) else "preset"
            description = load_preset_file(path)["bespoke"].get("description", "")
        number = int(path.stem[4:]) if role == "resolution" else 0
        keyed.append(((order[role], -number, path.stem),
                      {"name": path.stem, "role": role, "description": description, "path": str(path)}))
    keyed.sort(key=lambda pair: pair[0])
    return [row for _, row in keyed]


def load_preset_file(path: Path) -> dict:
    """Read one preset TOML: returns {'training': {...}, 'dataset': {...}, 'bespoke': {...}}."""
    path = Path(path)
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:  # the message names the line and column
        raise ConfigError(f"{path}: not valid TOML: {exc}") from exc
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read preset ({exc.strerror})") from exc
    for key, value in data.items():
        if key not in TABLES:
            raise ConfigError(
                f"{path}: top-level key {key!r} must be inside [training], [dataset] or [bespoke]"
                f"{did_you_mean(key, TABLES)}"
            )
        if not isinstance(value, dict):
            raise ConfigError(f"{path}: {key!r} must be a table ([{key}])")
    out = {table: dict(data.get(table, {})) for table in TABLES}
    _check_table_keys(out, str(path))
    return out


def _check_table_keys(tables: dict, source: str) -> None:
    for key, value in tables["bespoke"].items():
        if key not in BESPOKE_KEYS:
            raise ConfigError(f"{source}: [bespoke] key {key!r} is not a bespoke preset key{did_you_mean(key, BESPOKE_KEYS)}")
        kind = BESPOKE_KEYS[key]
        if not isinstance(value, kind) or isinstance(value, bool):
            raise ConfigError(f"{source}: [bespoke] {key} must be {kind.__name__}, got {value!r}")
    for key in tables["training"]:
        if key in MANAGED_TRAINING:
            raise ConfigError(f"{source}: training key {key!r} is set by bespoke: it {MANAGED_TRAINING[key]}")
    for key in tables["dataset"]:
        if key in MANAGED_DATASET:
            raise ConfigError(f"{source}: dataset key {key!r} is set by bespoke: it {MANAGED_DATASET[key]}")


def parse_override(text: str) -> tuple[str, str, object]:
    """Parse one `--set key=value` into (table, key, value); value is TOML, a bare word is a string."""
    if "=" not in text:
        raise ConfigError(f"--set {text!r}: expected key=value, e.g. --set network_dim=8")
    key, raw = (part.strip() for part in text.split("=", 1))
    if not key or not raw:
        raise ConfigError(f"--set {text!r}: expected key=value, e.g. --set network_dim=8")
    table = None
    if "." in key:
        prefix, rest = key.split(".", 1)
        if prefix not in TABLES:
            raise ConfigError(f"--set {text!r}: table {prefix!r} is not one of {', '.join(TABLES)}"
                              f"{did_you_mean(prefix, TABLES)}")
        table, key = prefix, rest
    training_options = train_network_options()
    known = {"dataset": dataset_keys(), "training": set(training_options), "bespoke": set(BESPOKE_KEYS)}
    if table is None:
        for candidate in ("dataset", "training", "bespoke"):
            if key in known[candidate]:
                table = candidate
                break
        else:
            everything = known["dataset"] | known["training"] | known["bespoke"]
            raise ConfigError(f"--set {text!r}: {key!r} is not a train_network.py option, dataset key or "
                              f"bespoke key{did_you_mean(key, everything)}")
    elif key not in known[table]:
        raise ConfigError(f"--set {text!r}: {key!r} is not a {table} key{did_you_mean(key, known[table])}")
    managed = MANAGED_TRAINING if table == "training" else MANAGED_DATASET if table == "dataset" else {}
    if key in managed:
        raise ConfigError(f"--set {text!r}: {table} key {key!r} is set by bespoke: it {managed[key]}")
    try:
        # the toml parser forgives an unclosed array ("[1," -> [1]); a typo must not pass
        if raw.startswith("[") != raw.endswith("]") or raw.startswith("{") != raw.endswith("}"):
            raise ValueError("unbalanced brackets")
        value = toml.loads(f"v = {raw}")["v"]
    except (toml.TomlDecodeError, IndexError, ValueError) as exc:
        if re.fullmatch(r"[A-Za-z0-9_./:+~-]+", raw):
            value = raw
        else:
            raise ConfigError(f"--set {text!r}: value {raw!r} is not valid TOML (quote strings: "
                              f"--set {key}='\"text\"')") from exc
    return table, key, value


def resolve_preset(resolution: int, preset: str | None, overrides=(), presets_dir=None) -> ResolvedPreset:
    """Layer base <- res-R <- preset <- overrides; values are checked later by kohya_config validation."""
    folder = presets_folder(presets_dir)
    res_file = folder / f"res-{resolution}.toml"
    if not res_file.is_file():
        available = sorted(int(p.stem[4:]) for p in folder.glob("res-*.toml") if _RES_NAME.match(p.stem))
        raise ConfigError(f"no preset for resolution {resolution} ({res_file} is missing); "
                          f"resolutions with a preset: {', '.join(map(str, available))}")
    files = [folder / "base.toml", res_file]
    if preset:
        name = preset[:-5] if preset.endswith(".toml") else preset
        path = folder / f"{name}.toml"
        if name == "base" or _RES_NAME.match(name) or _SWEEP_NAME.match(name):
            raise ConfigError(f"--preset {preset!r}: base and res-R are always applied and sweep-* files are for "
                              f"`bespoke sweep --sweep`; choose a named preset: "
                              f"{', '.join(preset_names(folder)) or 'none'}")
        if not path.is_file():
            raise ConfigError(f"unknown preset {preset!r} in {folder}{did_you_mean(name, preset_names(folder))}; "
                              f"available: {', '.join(preset_names(folder)) or 'none'}")
        files.append(path)
        preset = name
    layered: dict[str, dict[str, object]] = {table: {} for table in TABLES}
    origins = {}
    for path in files:
        data = load_preset_file(path)
        for table in TABLES:
            layered[table].update(data[table])
            origins.update({f"{table}.{key}": str(path) for key in data[table]})
    for text in overrides:
        table, key, value = parse_override(text)
        layered[table][key] = value
        origins[f"{table}.{key}"] = f"--set {text}"
    _check_table_keys(layered, "--set")
    wanted = layered["bespoke"].get("resolution")
    if wanted is not None and wanted != resolution:
        raise ConfigError(f"preset {preset!r} is for {wanted} px only ({files[-1]}); use -r {wanted}")
    return ResolvedPreset(
        name=preset,
        resolution=resolution,
        training=layered["training"],
        dataset=layered["dataset"],
        bespoke=layered["bespoke"],
        sources=tuple(files),
        overrides=tuple(overrides),
        origins=origins,
    )
