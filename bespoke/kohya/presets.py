"""Presets in kohya_configs/: layered TOML (base <- res-R <- named preset <- --set overrides).

Preset files are looked up along a search path: the user's own folder first (`kohya_configs/` in the project,
or the `presets_dir` bespoke.toml names), then the presets packaged with bespoke; the first folder holding a
name wins, so a user's `res-512.toml` or `base.toml` replaces the packaged one. `--preset PATH` takes a TOML
file directly. Each preset file has up to three tables: [training] (train_network.py options), [dataset] (dataset TOML
keys) and [bespoke] (bespoke's own keys, never passed to sd-scripts). The notes at the top of
kohya_configs/base.toml are the user-facing description of this.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import toml

from bespoke.errors import ConfigError, did_you_mean
from bespoke.kohya.options import dataset_keys, train_network_options
from bespoke.tomlfile import read_toml

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
    "validation_share": float,  # the share of the pictures held out (whole designs) for validation; 0 = none
    "validation_seed": int,
    "stop_when": str,  # `train --stop-when`'s default for runs of this preset
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
    search: tuple[Path, ...] = ()  # the preset folders, user's first

    @property
    def prompts_file(self) -> Path:
        """The prompt set named by the preset: next to the preset file that named it, else the first folder of
        the search path that has it."""
        name = self.bespoke.get("prompts", "prompts-default.txt")
        origin = self.origins.get("bespoke.prompts", "")
        folders = [Path(origin).parent] if origin and not origin.startswith("--set") else []
        folders += list(self.search or (self.sources[0].parent,))
        return next((f / name for f in folders if (f / name).is_file()), folders[0] / name)

    @property
    def layout(self) -> str:
        return self.bespoke.get("layout", "stretch")

    @property
    def sample_size(self) -> int:
        return int(self.bespoke.get("sample_size", self.resolution))

    @property
    def description(self) -> str:
        return self.bespoke.get("description", "")

    @property
    def validation_share(self) -> float:
        return float(self.bespoke.get("validation_share", 0.0))

    @property
    def validation_seed(self) -> int:
        return int(self.bespoke.get("validation_seed", 0))


def presets_folder(path: Path | None = None) -> Path:
    """The folder of the packaged preset TOMLs (or `path` when given)."""
    return Path(path) if path else PRESETS_DIR


def search_path(user_dir: Path | None = None, presets_dir: Path | None = None) -> tuple[Path, ...]:
    """The preset folders in lookup order: `presets_dir` alone when given (tests), else the user's folder
    (when it exists) before the packaged one; the same folder twice counts once."""
    if presets_dir is not None:
        return (Path(presets_dir),)
    folders: list[Path] = []
    for folder in (user_dir, PRESETS_DIR):
        if folder is not None and Path(folder).is_dir() and Path(folder).resolve() not in folders:
            folders.append(Path(folder).resolve())
    return tuple(folders)


def _role(stem: str) -> str:
    if _SWEEP_NAME.match(stem):
        return "sweep"
    return "base" if stem == "base" else "resolution" if _RES_NAME.match(stem) else "preset"


def _find(file_name: str, search: Sequence[Path]) -> Path | None:
    return next((folder / file_name for folder in search if (folder / file_name).is_file()), None)


def preset_names(directory: Path | None = None, user_dir: Path | None = None) -> list[str]:
    """Named presets a user can pass to --preset (every TOML except base, res-R and sweep-*), all folders."""
    return sorted({p.stem for folder in search_path(user_dir, directory) for p in folder.glob("*.toml")
                   if _role(p.stem) == "preset"})


def _describe(path: Path, role: str) -> str:
    if role != "sweep":
        return str(load_preset_file(path)["bespoke"].get("description", ""))
    try:
        return str(read_toml(path, "sweep file").get("description", ""))
    except ConfigError:
        return "(unreadable sweep file)"


def list_presets(directory: Path | None = None, user_dir: Path | None = None) -> list[dict]:
    """Every preset file of the search path with its role, description and where it comes from
    ("project" for the user's folder, "bespoke" for the packaged one); a name hidden by an earlier folder is
    listed with `shadowed_by`."""
    search = search_path(user_dir, directory)
    keyed: list[tuple[tuple[int, int, str, int], dict]] = []
    order = {"base": 0, "resolution": 1, "preset": 2, "sweep": 3}
    for rank, folder in enumerate(search):
        source = "bespoke" if folder == PRESETS_DIR.resolve() and directory is None else "project"
        for path in folder.glob("*.toml"):
            role = _role(path.stem)
            winner = _find(path.name, search)
            row = {"name": path.stem, "role": role, "description": _describe(path, role), "path": str(path),
                   "source": source, "shadowed_by": str(winner) if winner and winner != path else None}
            number = int(path.stem[4:]) if role == "resolution" else 0
            keyed.append(((order[role], -number, path.stem, rank), row))
    keyed.sort(key=lambda pair: pair[0])
    return [row for _, row in keyed]


def load_preset_file(path: Path) -> dict:
    """Read one preset TOML: returns {'training': {...}, 'dataset': {...}, 'bespoke': {...}}."""
    path = Path(path)
    data = read_toml(path, "preset")
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
        kinds = (float, int) if kind is float else (kind,)  # 0 is a share too
        if not isinstance(value, kinds) or isinstance(value, bool):
            raise ConfigError(f"{source}: [bespoke] {key} must be {kind.__name__}, got {value!r}")
    share = tables["bespoke"].get("validation_share")
    if share is not None and not 0 <= share < 1:
        raise ConfigError(f"{source}: [bespoke] validation_share must be at least 0 and below 1 (0.1 holds out a "
                          f"tenth of the designs; 0 none), got {share!r}")
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
        if "homogeneous" in str(exc):
            raise ConfigError(f"--set {text!r}: the value is an array of mixed types, which the toml 0.10.2 "
                              f"parser of sd-scripts refuses: give every item one type") from exc
        if re.fullmatch(r"[A-Za-z0-9_./:+~-]+", raw):
            value = raw
        else:
            raise ConfigError(f"--set {text!r}: value {raw!r} is not valid TOML (quote strings: "
                              f"--set {key}='\"text\"')") from exc
    return table, key, value


def _preset_file(preset: str, search: Sequence[Path]) -> tuple[str, Path]:
    """(name, file) for --preset: a path to a TOML file, or a name looked up along the search path."""
    given = Path(preset).expanduser()
    if "/" in preset or "\\" in preset or (preset.endswith(".toml") and given.is_file()):
        if not given.is_file():
            raise ConfigError(f"--preset {preset}: no such preset file")
        return given.stem, given.resolve()
    name = preset[:-5] if preset.endswith(".toml") else preset
    names = preset_names(directory=search[0]) if len(search) == 1 else sorted(
        {p.stem for folder in search for p in folder.glob("*.toml") if _role(p.stem) == "preset"})
    if _role(name) != "preset":
        raise ConfigError(f"--preset {preset!r}: base and res-R are always applied and sweep-* files are for "
                          f"`bespoke sweep --sweep`; choose a named preset: {', '.join(names) or 'none'}")
    path = _find(f"{name}.toml", search)
    if path is None:
        where = " or ".join(str(folder) for folder in search)
        raise ConfigError(f"unknown preset {preset!r} in {where}{did_you_mean(name, names)}; "
                          f"available: {', '.join(names) or 'none'} (or give a path: --preset ./my-preset.toml)")
    return name, path


def resolve_preset(resolution: int, preset: str | None, overrides=(), presets_dir=None,
                   user_dir: Path | None = None) -> ResolvedPreset:
    """Layer base <- res-R <- preset <- overrides; values are checked later by kohya_config validation.

    Files are found along `search_path(user_dir, presets_dir)`; `preset` is a name or a path to a TOML file."""
    search = search_path(user_dir, presets_dir)
    res_file = _find(f"res-{resolution}.toml", search)
    base_file = _find("base.toml", search)
    if res_file is None or base_file is None:
        available = sorted({int(p.stem[4:]) for folder in search for p in folder.glob("res-*.toml")
                            if _RES_NAME.match(p.stem)})
        missing = f"res-{resolution}.toml" if res_file is None else "base.toml"
        raise ConfigError(f"no preset for resolution {resolution} ({missing} is in none of "
                          f"{', '.join(map(str, search))}); resolutions with a preset: "
                          f"{', '.join(map(str, available))}")
    files = [base_file, res_file]
    if preset:
        preset, path = _preset_file(preset, search)
        files.append(path)
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
        search=search,
    )
