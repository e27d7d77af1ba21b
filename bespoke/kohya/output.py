"""What sd-scripts prints, parsed: the one reader of trainer output (live lines and log files alike).

sd-scripts prints `epoch k/n` on stdout and a tqdm bar `steps:  42%|...| 5/12 [00:03<00:04, 1.6it/s,
avr_loss=0.123]` on stderr (redrawn with \\r), `saving checkpoint: …` per save and "No data found" when the
dataset is empty (kohya/FACTS.md §2, §6). `parse_line` turns one line into an event; `loss_points` reads the
loss curve out of a whole log; `log_tail` and `trainer_error` say why a run failed.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

_EPOCH = re.compile(r"^\s*epoch (\d+)/(\d+)\s*$")
_STEPS = re.compile(
    r"steps:\s*\d+%\|[^|]*\|\s*(\d+)/(\d+)\s*\[([\d:]+)<([\d:?]+)[^\]]*?(?:avr_loss=([-+\w.]+))?\]"
)
_SAVE = re.compile(r"saving checkpoint:\s*(.+?)\s*$")
_TOTAL = re.compile(r"total optimization steps[^:]*:\s*(\d+)")
_EPOCHS = re.compile(r"num epochs[^:]*:\s*(\d+)")
_NO_DATA = "No data found"


@dataclass(frozen=True)
class EpochStarted:
    epoch: int
    total: int


@dataclass(frozen=True)
class StepProgress:
    step: int
    total: int
    elapsed: float
    remaining: float | None
    loss: float | None


@dataclass(frozen=True)
class CheckpointSaved:
    path: str


@dataclass(frozen=True)
class TrainingInfo:
    total_steps: int | None = None
    num_epochs: int | None = None


@dataclass(frozen=True)
class NoData:
    line: str


Event = EpochStarted | StepProgress | CheckpointSaved | TrainingInfo | NoData


def _seconds(text: str) -> float | None:
    if "?" in text:
        return None
    total = 0.0
    for part in text.split(":"):
        total = total * 60 + float(part)
    return total


def _float(text: str | None) -> float | None:
    if text is None:
        return None
    try:
        return float(text)
    except ValueError:
        return None


def parse_line(line: str) -> Event | None:
    """One line of trainer output (either stream) -> an event, or None for anything else."""
    if match := _STEPS.search(line):
        step, total, elapsed, remaining, loss = match.groups()
        return StepProgress(int(step), int(total), _seconds(elapsed) or 0.0, _seconds(remaining), _float(loss))
    if match := _EPOCH.match(line):
        return EpochStarted(int(match.group(1)), int(match.group(2)))
    if match := _SAVE.search(line):
        return CheckpointSaved(match.group(1))
    if _NO_DATA in line:
        return NoData(line.strip())
    if match := _TOTAL.search(line):
        return TrainingInfo(total_steps=int(match.group(1)))
    if match := _EPOCHS.search(line):
        return TrainingInfo(num_epochs=int(match.group(1)))
    return None



_LINES = re.compile(r"\r\n|\r|\n")


def loss_points(text: str) -> list[dict]:
    """The loss curve in a trainer log: one {"epoch", "step", "loss"} per step that printed `avr_loss`
    (tqdm redraws of the same step keep the last value), in step order."""
    points: dict[tuple[int, int], float] = {}
    epoch = 1
    for line in _LINES.split(text):
        event = parse_line(line)
        if isinstance(event, EpochStarted):
            epoch = event.epoch
        elif isinstance(event, StepProgress) and event.loss is not None:
            points[(epoch, event.step)] = event.loss
    return [{"epoch": e, "step": s, "loss": v} for (e, s), v in sorted(points.items())]


def log_tail(path: Path, lines: int = 30) -> list[str]:
    """The last `lines` meaningful lines of a trainer log: tqdm redraws collapsed, bespoke's own lines dropped."""
    path = Path(path)
    if not path.exists():
        return []
    with open(path, "rb") as handle:
        handle.seek(0, 2)
        size = handle.tell()
        handle.seek(max(size - 262144, 0))
        text = handle.read().decode("utf-8", errors="replace")
    out: list[str] = []
    for line in _LINES.split(text):
        if not line.strip() or line.startswith("[bespoke]"):
            continue
        if out and "steps:" in line and "steps:" in out[-1]:
            out[-1] = line
        else:
            out.append(line.rstrip())
    return out[-lines:]


_ERROR_LINE = re.compile(r"^\s*([\w.]*(?:Error|Exception|Interrupt)|ERROR)\b[: ]")


def trainer_error(tail: list[str]) -> str | None:
    """The trainer's own error line in a log tail (e.g. `RuntimeError: ...`), skipping accelerate's wrapper."""
    for line in reversed(tail):
        if _ERROR_LINE.match(line) and "CalledProcessError" not in line:
            return line.strip()
    return None
