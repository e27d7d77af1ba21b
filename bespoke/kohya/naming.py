"""The file names sd-scripts gives what it writes (kohya/FACTS.md §3-4): samples, checkpoints, state folders.

Samples: `{output_name}_e{epoch:06d}_{prompt:02d}_{YYYYmmddHHMMSS}[_{seed}].png`; `e000000` is the sample drawn
before training, a bare 6-digit number instead of `e…` is a global step. Checkpoints: `{output_name}-{epoch:06d}`
for every epoch but the last, which is only `{output_name}`; `{output_name}-step{step:08d}` for step saves.
State folders (`--save_state`): the checkpoint name plus `-state`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

SAMPLE_NAME = re.compile(
    r"^(?:(?P<name>.*)_)?(?:e(?P<epoch>\d{6,})|(?P<step>\d{6,}))_(?P<prompt>\d{2,})_(?P<ts>\d{14})(?:_(?P<seed>\d+))?\.png$"
)
CHECKPOINT_SUFFIX = ".safetensors"
STATE_SUFFIX = "-state"


@dataclass(frozen=True)
class SampleInfo:
    """One sample image and what its name says about it (None = unknown)."""

    path: Path
    name: str  # file stem
    output_name: str | None
    epoch: int | None
    step: int | None
    prompt_index: int | None
    timestamp: str | None  # YYYYmmddHHMMSS, local time of the trainer
    seed: int | None
    prompt: str | None = None

    def sort_key(self) -> tuple:
        """Epoch, then step, then prompt index, then name; unknowns last."""
        return (self.epoch is None, self.epoch or 0, self.step is None, self.step or 0,
                self.prompt_index if self.prompt_index is not None else 1 << 30, self.name)


def parse_sample_name(filename: str | Path) -> SampleInfo:
    """Parse an sd-scripts sample file name; unknown names give a SampleInfo with everything None."""
    path = Path(filename)
    match = SAMPLE_NAME.match(path.name)
    if not match:
        return SampleInfo(path, path.stem, None, None, None, None, None, None)
    g = match.groupdict()
    return SampleInfo(
        path=path, name=path.stem, output_name=g["name"],
        epoch=int(g["epoch"]) if g["epoch"] is not None else None,
        step=int(g["step"]) if g["step"] is not None else None,
        prompt_index=int(g["prompt"]), timestamp=g["ts"],
        seed=int(g["seed"]) if g["seed"] is not None else None,
    )


def epoch_checkpoint_name(output_name: str, epoch: int) -> str:
    """`{output_name}-{epoch:06d}.safetensors`: a checkpoint of every epoch but the last."""
    return f"{output_name}-{epoch:06d}{CHECKPOINT_SUFFIX}"


def final_checkpoint_name(output_name: str) -> str:
    """`{output_name}.safetensors`: the last epoch's checkpoint (it has no numbered twin)."""
    return f"{output_name}{CHECKPOINT_SUFFIX}"


def epoch_from_filename(path: str | Path, output_name: str | None) -> int | None:
    """The epoch in `{output_name}-{epoch:06d}.safetensors` (6 digits or more); None for any other name
    (the final file, step files, another output name). `output_name=None` accepts any name."""
    stem = Path(path).stem
    head, sep, tail = stem.rpartition("-")
    if sep and tail.isdigit() and len(tail) >= 6 and (output_name is None or head == output_name):
        return int(tail)
    return None


def sample_counts(sample_dir: Path) -> dict:
    """Sample images by epoch: {"count": n, "by_epoch": {"0": 4, "1": 4}}."""
    by_epoch: dict[str, int] = {}
    count = 0
    if Path(sample_dir).is_dir():
        for path in Path(sample_dir).glob("*.png"):
            info = parse_sample_name(path)
            if info.prompt_index is None:  # not an sd-scripts sample name
                continue
            count += 1
            key = str(info.epoch) if info.epoch is not None else f"step{info.step}"
            by_epoch[key] = by_epoch.get(key, 0) + 1
    return {"count": count, "by_epoch": dict(sorted(by_epoch.items()))}
