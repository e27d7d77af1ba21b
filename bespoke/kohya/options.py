"""The sd-scripts option facts bespoke checks configs against, loaded from the project's own data files.

`bespoke/data/train_network_options.json` is derived from `train_network.py`'s argparse parser
(`build_option_table` turns the shared facts file into it; a test keeps the two in step).
`bespoke/data/dataset_config_keys.json` holds the dataset TOML keys allowed per level.
sd-scripts checks neither the training TOML's types nor its choices, so this table is the only guard.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

DATA_DIR = Path(__file__).resolve().parent.parent / "data"
OPTIONS_FILE = DATA_DIR / "train_network_options.json"
DATASET_KEYS_FILE = DATA_DIR / "dataset_config_keys.json"

# The parser's own type names that bespoke validates; anything else is treated as a string.
KNOWN_TYPES = ("str", "int", "float", "int_or_float", "Path", "bool")


@dataclass(frozen=True)
class Option:
    """One train_network.py option: `type` is str/int/float/int_or_float/Path or 'bool' for store_true."""

    dest: str
    type: str
    nargs: str | None = None  # "*" for list options
    choices: tuple | None = None
    default: object = None

    @property
    def store_true(self) -> bool:
        return self.type == "bool"


def build_option_table(parser_facts: dict) -> dict:
    """Turn `train_network_args.json` (argparse actions) into the table kept in the data file."""
    options = {}
    for action in parser_facts["arguments"]:
        if action["store_true"]:
            kind = "bool"
        elif action["store_false"]:
            kind = "bool"
        else:
            kind = action["type"] or "str"
        nargs = action["nargs"] if action["nargs"] not in (None, 0) else None
        options[action["dest"]] = {
            "type": kind,
            "nargs": nargs,
            "choices": action["choices"],
            "default": action["default"],
        }
    return dict(sorted(options.items()))


@lru_cache(maxsize=1)
def _load_options_file() -> dict:
    return json.loads(OPTIONS_FILE.read_text(encoding="utf-8"))


@lru_cache(maxsize=1)
def train_network_options() -> dict[str, Option]:
    """Every train_network.py option by dest."""
    table = _load_options_file()["options"]
    return {
        dest: Option(
            dest=dest,
            type=spec["type"],
            nargs=spec["nargs"],
            choices=tuple(spec["choices"]) if spec["choices"] is not None else None,
            default=spec["default"],
        )
        for dest, spec in table.items()
    }


def lr_scheduler_names() -> tuple[str, ...]:
    """Scheduler names sd-scripts accepts (not argparse-checked; `adafactor:<lr>` is handled separately)."""
    return tuple(_load_options_file()["lr_schedulers"])


def optimizer_names() -> tuple[str, ...]:
    """Optimizer names sd-scripts knows (case-insensitive); a dotted class path is also accepted."""
    return tuple(_load_options_file()["optimizers"])


def torch_optim_names() -> tuple[str, ...]:
    """`torch.optim` class names sd-scripts accepts as an optimizer_type (it imports them by name)."""
    return tuple(_load_options_file().get("torch_optim_names", []))


def options_source() -> dict:
    """Where the option table came from (repo, commit)."""
    data = _load_options_file()
    return {"source_repo": data["source_repo"], "source_commit": data["source_commit"]}


@lru_cache(maxsize=1)
def dataset_levels() -> dict[str, dict[str, dict]]:
    """Allowed dataset TOML keys per level ('general', 'datasets', 'subsets'): key -> {type, required}."""
    data = json.loads(DATASET_KEYS_FILE.read_text(encoding="utf-8"))
    return data["levels"]


def dataset_keys() -> set[str]:
    """Every key allowed at some level of the dataset TOML (DreamBooth-style, caption files)."""
    return {key for level in dataset_levels().values() for key in level}
