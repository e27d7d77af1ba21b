"""Where things are: the files of a run folder, and what a user's run or dataset argument names.

Everything of a run lives below its folder (`model/` is the trainer's output_dir, read from the folder itself,
never from a config), so a run folder can be moved or copied to another machine. One resolver turns a run
argument (a path, a run id, or a unique prefix of one) into a run folder; one turns a dataset argument (a path
or a name under the datasets folder) into a folder.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from bespoke.errors import ConfigError, DatasetError, RunError, did_you_mean
from bespoke.kohya.config import flatten_training, load_toml

DEFAULT_DATASET = "bespoke_punks"


@dataclass(frozen=True)
class RunPaths:
    """Every path of one run folder (DESIGN.md "Run folder")."""

    root: Path

    @property
    def run_json(self) -> Path:
        return self.root / "run.json"

    @property
    def config_dir(self) -> Path:
        return self.root / "config"

    @property
    def training_toml(self) -> Path:
        return self.config_dir / "training.toml"

    @property
    def dataset_toml(self) -> Path:
        return self.config_dir / "dataset.toml"

    @property
    def prompts_txt(self) -> Path:
        return self.config_dir / "prompts.txt"

    @property
    def accelerate_yaml(self) -> Path:
        return self.config_dir / "accelerate.yaml"

    @property
    def logs_dir(self) -> Path:
        return self.root / "logs"

    @property
    def train_log(self) -> Path:
        return self.logs_dir / "train.log"

    @property
    def preflight_report(self) -> Path:
        """The preflight gate's answer for the latest launch (bespoke/kohya/gate.py)."""
        return self.logs_dir / "preflight.json"

    @property
    def tensorboard_dir(self) -> Path:
        return self.logs_dir / "tensorboard"

    @property
    def model_dir(self) -> Path:
        return self.root / "model"

    @property
    def sample_dir(self) -> Path:
        return self.model_dir / "sample"

    @property
    def generated_dir(self) -> Path:
        return self.root / "generated"

    @property
    def candidates_dir(self) -> Path:
        return self.root / "candidates"

    @property
    def report_dir(self) -> Path:
        return self.root / "report"

    @property
    def lock_file(self) -> Path:
        return self.root / ".lock"

    def relative(self, path: Path) -> str:
        """`path` as the trainer sees it from the run folder (its working directory): `model`, `config/…`."""
        return Path(path).relative_to(self.root).as_posix()


def read_training(paths: RunPaths) -> dict:
    """The run's config/training.toml, flattened the way sd-scripts reads it."""
    try:
        return flatten_training(load_toml(paths.training_toml))
    except ConfigError as exc:
        raise RunError(f"cannot read the run's training config: {exc}; re-plan the run") from exc


def is_run_dir(path: Path) -> bool:
    """True for a folder holding a run.json."""
    return RunPaths(Path(path)).run_json.is_file()


def list_run_dirs(outputs_dir: Path) -> list[Path]:
    """Run folders directly under outputs_dir, sorted by name."""
    outputs_dir = Path(outputs_dir)
    if not outputs_dir.is_dir():
        return []
    return sorted(p for p in outputs_dir.iterdir() if p.is_dir() and is_run_dir(p))


def find_run(arg: str | Path, outputs_dir: Path) -> Path | None:
    """The run folder `arg` names, or None: a path to a run folder, a run id in `outputs_dir`, or a prefix of
    exactly one run id there. Several runs sharing the prefix is an error that lists them."""
    path = Path(arg).expanduser()
    if path.is_dir() and is_run_dir(path):
        return path.resolve()
    text = str(arg)
    if not text or "/" in text or "\\" in text or text in (".", ".."):
        return None
    exact = Path(outputs_dir) / text
    if exact.is_dir() and is_run_dir(exact):
        return exact.resolve()
    matches = [p for p in list_run_dirs(outputs_dir) if p.name.startswith(text)]
    if len(matches) > 1:
        names = ", ".join(p.name for p in matches[:8]) + (", …" if len(matches) > 8 else "")
        raise RunError(f"{text}: {len(matches)} runs start with it ({names}); give more of the run id")
    return matches[0].resolve() if matches else None


def resolve_run(arg: str | Path, outputs_dir: Path) -> Path:
    """A run folder from a path, a run id or a unique run id prefix; a one-line error with a "did you mean"
    (and what to do) otherwise."""
    found = find_run(arg, outputs_dir)
    if found is not None:
        return found
    path = Path(arg).expanduser()
    if path.is_dir():
        raise RunError(f"{path}: not a bespoke run folder (no run.json); see `bespoke runs`")
    known = [p.name for p in list_run_dirs(outputs_dir)]
    raise RunError(f"{arg}: no such run folder nor a run id in {outputs_dir}"
                   f"{did_you_mean(str(arg), known)}; see `bespoke runs`")


def resolve_dataset(arg: str | Path | None, datasets_dir: Path) -> Path:
    """A source dataset folder: `arg` as a path when it exists (or is clearly a path), else a name under
    `datasets_dir`; no `arg` means `<datasets_dir>/bespoke_punks`. The folder must exist."""
    datasets_dir = Path(datasets_dir)
    if arg is None:
        default = datasets_dir / DEFAULT_DATASET
        if not default.is_dir():
            raise DatasetError(f"no --dataset given and the default {default} does not exist; pass --dataset PATH "
                               "(a folder of 24x24 PNGs + .txt captions) or a dataset name in that folder")
        return default.resolve()
    path = Path(arg).expanduser()
    if path.is_dir():
        return path.resolve()
    named = datasets_dir / str(arg)
    if not path.is_absolute() and len(path.parts) == 1 and named.is_dir():
        return named.resolve()
    if path.exists():
        raise DatasetError(f"{path}: is a file; a dataset is a folder of 24x24 PNGs with .txt captions")
    known = sorted(p.name for p in datasets_dir.iterdir() if p.is_dir()) if datasets_dir.is_dir() else []
    listing = f"; datasets there: {', '.join(known)}" if known else ""
    raise DatasetError(f"{arg}: no such folder here or in {datasets_dir}{did_you_mean(str(arg), known)}{listing}")
