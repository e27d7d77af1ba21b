"""What the review page shows: one RunView per run, and the recorded baseline drawn as a reference."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TypedDict

from bespoke.pixels.metrics import NOT_PIXEL_ART
from bespoke.review.assets import RunAssets, safe_name
from bespoke.review.baseline import recorded_baseline, recorded_epochs
from bespoke.review.records import EpochRow, MethodRow, ProcessReport
from bespoke.run.manifest import RunManifest
from bespoke.run.names import differences as run_differences


class Baseline(TypedDict):
    """The recorded baseline as the page draws it: the headline epoch's mean and the mean of every epoch."""

    epoch: int
    resolution: int
    mean_colors_nearest: float
    per_epoch: dict[int, float]
    source: str


@dataclass
class RunView:
    """Everything the page shows about one run (or one plain folder of samples: `run` None, `plain`)."""

    run_dir: Path
    run_id: str
    report: ProcessReport
    method: str | None
    run: RunManifest | None = None  # the run's run.json
    training_toml: str | None = None
    loss: dict[int, float] = field(default_factory=dict)  # per-epoch training loss
    loss_source: str = ""  # where `loss` came from (TensorBoard, the trainer log, the simulator)
    validation_loss: dict[int, float] = field(default_factory=dict)  # per-epoch loss on the held-out designs
    sheets: list[Path] = field(default_factory=list)
    assets: RunAssets = field(default_factory=RunAssets)
    plain: bool = False  # a folder of images, not a run
    results: Path | None = None  # where its candidates and report are, when not beside it (process --out)
    label_override: str | None = None  # set by label_views when several runs share a label

    @property
    def key(self) -> str:
        """The run's folder name inside the review's img/ and sheets/ folders."""
        return safe_name(self.run_id)

    @property
    def name(self) -> str | None:
        """The user's label of the run (run.json `name`), None when it has none."""
        return self.run.name if self.run is not None and self.run.name else None

    @property
    def resolution(self) -> int | None:
        """The run's training resolution (None for a folder of samples)."""
        return self.run.resolution if self.run is not None else None

    @property
    def status(self) -> str:
        """The run's status, or what a plain folder is."""
        return self.run.status if self.run is not None else "folder of samples"

    @property
    def simulated(self) -> bool:
        """True when the run or its report says its samples came from the simulator."""
        return bool((self.run is not None and self.run.simulated) or self.report.simulated)

    @property
    def base_label(self) -> str:
        """The user's name of the run, else its resolution ('512 px'), else its id."""
        return self.name or (f"{self.resolution} px" if self.resolution else self.run_id)

    @property
    def label(self) -> str:
        """The run's name in legends (unique among the reviewed runs once label_views ran); '(simulated)'
        when simulated."""
        return (self.label_override or self.base_label) + (" (simulated)" if self.simulated else "")


def differences(views: list[RunView]) -> dict[str, list[str]]:
    """Per run id, the settings (resolution, preset, each --set key) whose values are not the same in every
    reviewed run, as "key value" (bespoke.run.names.differences); empty lists for a single run or a plain
    folder of samples."""
    runs = [v for v in views if v.run is not None]
    table = run_differences([v.run for v in runs if v.run is not None], {v.run_id: v.run_dir for v in runs})
    return {v.run_id: [f"{k} {value}" for k, value in table.get(v.run_id, {}).items()] for v in views}


def label_views(views: list[RunView]) -> None:
    """Make every run's label unique: runs that share a name (or have none and share a resolution) get what
    differs between them appended, else their id."""
    diffs = differences(views)
    counts: dict[str, int] = {}
    for view in views:
        counts[view.base_label] = counts.get(view.base_label, 0) + 1
    for view in views:
        if counts[view.base_label] > 1:
            extra = ", ".join(d for d in diffs[view.run_id] if not d.startswith("resolution ")) or view.run_id
            view.label_override = f"{view.base_label} · {extra}"


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


def baseline_applies(view: RunView, baseline: Baseline) -> bool:
    """The recorded baseline is a comparison only for runs at its resolution (512 px)."""
    return view.resolution == baseline["resolution"]


def method_row(row: EpochRow | None, method: str | None) -> MethodRow | None:
    """`method`'s row in one epoch of the report (None without that epoch, method or row)."""
    return row.methods.get(method) if row is not None and method else None


def best_row(report: ProcessReport) -> EpochRow | None:
    """The report's row of its best epoch (None without a best epoch)."""
    best = report.best
    return next((e for e in report.epochs if e.epoch == best.epoch), None) if best is not None else None


@dataclass(frozen=True)
class Headline:
    """What the top table shows of one run: the chosen epoch ('8', or 'one set' for a folder whose names carry
    no epoch), its score, interval and terms, and its row of the report."""

    epoch: str
    score: float | None
    interval: list[float] | None
    terms: dict[str, float]
    row: EpochRow | None


def headline(report: ProcessReport) -> Headline | None:
    """The report's best epoch; for a folder of samples without epochs, its one set; None without either."""
    best = report.best
    if best is not None:
        row = best_row(report)
        return Headline(str(best.epoch), best.score, row.score.interval if row else None, best.terms, row)
    if len(report.epochs) == 1 and report.epochs[0].epoch is None:
        row = report.epochs[0]
        return Headline("one set", row.score.total, row.score.interval, row.score.terms, row)
    return None


def best_of_runs(views: list[RunView]) -> tuple[str | None, dict[str, str]]:
    """(run id of the highest-scoring run, or None for fewer than two scored runs; per other run id, a note
    when its score lies within the best run's interval: not told apart at this sample count)."""
    scored = [(h.score, v.run_id, h) for v in views if (h := headline(v.report)) is not None and h.score is not None]
    if len(scored) < 2:
        return None, {}
    top_score, top_id, top = max(scored, key=lambda item: item[0])
    notes = {}
    if top.interval:
        for score, run_id, _ in scored:
            if run_id != top_id and score >= top.interval[0]:
                notes[run_id] = "within the best run's interval: not told apart at this sample count"
    return top_id, notes


def colour_change(delta_e: float) -> str:
    """A colour move (CIE76 delta E) in a pixel artist's words."""
    for limit, words in ((1.0, "no visible change"), (2.3, "barely visible"), (5.0, "close match"),
                         (10.0, "visible change")):
        if delta_e <= limit:
            return words
    return "a different colour"


def blockiness(grid_error: float) -> str:
    """How well a sample is drawn in 24-cell blocks, in words (grid error: the mean difference, 0-255, between
    the sample and its candidate drawn back as blocks; the user's real samples 1.9-6.3, blurred ones 7-12)."""
    for limit, words in ((2.0, "crisp blocks"), (7.0, "slightly soft blocks"), (NOT_PIXEL_ART, "blurry blocks")):
        if grid_error <= limit:
            return words
    return "no blocks: not pixel art"
