"""Which checkpoint holds which epoch: the one discovery of a model folder's LoRA files and state folders.

An epoch file's epoch is its `ss_epoch` metadata, else the number in its name; the final file
`{output_name}.safetensors` has no number, so its epoch is what `ss_epoch` says (None while it cannot be read,
e.g. still being written). Names are compared exactly (no glob), so an output name with `[` or `*` works.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from bespoke.kohya.metadata import WeightsError, as_int, read_metadata
from bespoke.kohya.naming import CHECKPOINT_SUFFIX, STATE_SUFFIX, epoch_from_filename, final_checkpoint_name

STATE_LAST_FILE = "random_states_0.pkl"  # written last by accelerate's save_state


@dataclass(frozen=True)
class Checkpoint:
    """One LoRA file of a run: its epoch and global step (from its metadata when readable)."""

    path: Path
    epoch: int | None
    steps: int | None
    final: bool

    def to_json(self, base: Path) -> dict:
        """The manifest form: the file relative to `base` (the run folder)."""
        return {"file": self.path.relative_to(base).as_posix(), "epoch": self.epoch, "steps": self.steps,
                "final": self.final}


def _metadata(path: Path) -> dict[str, str]:
    try:
        return read_metadata(path)
    except (WeightsError, OSError):
        return {}


def find_checkpoints(model_dir: Path, output_name: str) -> list[Checkpoint]:
    """Every epoch file and the final file of `output_name` in `model_dir`, sorted by epoch (unknown last)."""
    model_dir = Path(model_dir)
    if not model_dir.is_dir():
        return []
    final_name = final_checkpoint_name(output_name)
    found = []
    for path in model_dir.iterdir():
        if not path.name.endswith(CHECKPOINT_SUFFIX) or not path.is_file():
            continue
        final = path.name == final_name
        from_name = epoch_from_filename(path, output_name)
        if not final and from_name is None:
            continue
        meta = _metadata(path)
        epoch = as_int(meta.get("ss_epoch"))
        found.append(Checkpoint(path, epoch if epoch is not None else from_name, as_int(meta.get("ss_steps")),
                                final))
    return sorted(found, key=lambda c: (c.epoch is None, c.epoch or 0, c.final, c.path.name))


def by_epoch(checkpoints: list[Checkpoint]) -> dict[int, Checkpoint]:
    """{epoch: checkpoint}; where an epoch file and the final file hold the same epoch, the epoch file."""
    out: dict[int, Checkpoint] = {}
    for checkpoint in checkpoints:
        if checkpoint.epoch is not None and (checkpoint.epoch not in out or out[checkpoint.epoch].final):
            out[checkpoint.epoch] = checkpoint
    return dict(sorted(out.items()))


def epochs_done(checkpoints: list[Checkpoint]) -> int:
    """The highest epoch with a checkpoint (0 when there is none)."""
    return max((c.epoch or 0 for c in checkpoints), default=0)


def newest_state_dir(model_dir: Path) -> Path | None:
    """The complete `*-state` folder (sd-scripts --save_state) with the highest step, or None.

    Complete = accelerate's last file, `random_states_0.pkl`, is there: sd-scripts' save hook writes
    train_state.json FIRST, then accelerate writes the weights, optimizer.bin, scheduler.bin and the RNG states,
    so a Ctrl-C during the save leaves a folder with train_state.json and no optimizer.bin (seen on the real
    trainer: resuming from it dies with FileNotFoundError ... optimizer.bin)."""
    best, best_key = None, None
    model_dir = Path(model_dir)
    if not model_dir.is_dir():
        return None
    for path in model_dir.iterdir():
        state_file = path / "train_state.json"
        if not path.name.endswith(STATE_SUFFIX) or not state_file.is_file() or \
                not (path / STATE_LAST_FILE).is_file():
            continue
        try:
            state = json.loads(state_file.read_text(encoding="utf-8"))
            key = (int(state.get("current_step", 0)), int(state.get("current_epoch", 0)), path.stat().st_mtime)
        except (OSError, ValueError, TypeError, AttributeError):
            continue
        if best_key is None or key > best_key:
            best, best_key = path, key
    return best
