"""What the review page shows: one RunView per run, and the recorded baseline drawn as a reference."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypedDict

from bespoke.review.baseline import recorded_baseline, recorded_epochs


class Baseline(TypedDict):
    """The recorded baseline as the page draws it: the headline epoch's mean and the mean of every epoch."""

    epoch: int
    resolution: int
    mean_colors_nearest: float
    per_epoch: dict[int, float]
    source: str


@dataclass
class RunView:
    """Everything the page shows about one run."""

    run_dir: Path
    run_id: str
    manifest: dict
    report: dict
    method: str | None
    training_toml: str | None = None
    loss: list[dict] = field(default_factory=list)
    sheets: list[Path] = field(default_factory=list)
    name_label: str | None = None  # the run's name, with what differs from runs sharing it (bespoke.run.names)

    @property
    def simulated(self) -> bool:
        """True when the run or its report says its samples came from the simulator."""
        return bool(self.manifest.get("simulated") or self.report.get("simulated"))

    @property
    def label(self) -> str:
        """The run's name in legends: its user-given name (with the settings that tell runs sharing it apart),
        else its resolution ('512 px'), else its id; '(simulated)' when simulated."""
        resolution = self.manifest.get("resolution")
        name = self.name_label or (f"{resolution} px" if resolution else self.run_id)
        return name + (" (simulated)" if self.simulated else "")


def load_baseline() -> Baseline:
    """The recorded 512 px baseline, from bespoke.review.baseline (bespoke/data/baseline_recorded.json).

    There is no built-in copy: a missing or broken data file is a packaging bug and raises.
    """
    data = recorded_baseline()
    epoch = int(data["headline"]["epoch"])
    resolution = int(data["protocol"]["width"])
    return {
        "epoch": epoch,
        "resolution": resolution,
        "mean_colors_nearest": float(data["headline"]["mean_colors_nearest"]),
        "per_epoch": {number: float(e["mean"]) for number, e in recorded_epochs().items()},
        "source": f"recorded CAPTION_FIX evaluation ({resolution} px, epoch {epoch})",
    }


def method_stat(stats: dict, method: str | None, key: str) -> Any:
    """`key` of `method` in one epoch's stats of the report (None when absent or no method)."""
    return ((stats.get("methods") or {}).get(method) or {}).get(key) if method else None
