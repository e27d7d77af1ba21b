"""The process report, typed: `report.json` as records, each documenting its fields (the schema lives here).

`ProcessReport` is the whole file; it holds `Sample`s (each with its `SampleGrid`, a `Candidate` per method with
its `Novelty`, and the `Scoring` candidate's values), `SampleError`s, `EpochRow`s (per-method `MethodRow`s and
the epoch's `Score`), the `Best` epoch and the `TrainingSource`. The field names are the JSON keys and the
metric names of DESIGN.md ("Metrics"); other tools read them, so a field keeps its name and meaning.

Reading is strict: an unknown key, a missing required key or a record that is not an object is an error that
says where in the file (`ReportFormatError`; the loader adds the file and what to do). A field with a default
may be missing (older files lack it). Adding a field: give it a default, bump REPORT_SCHEMA, and add an
upgrade step to `UPGRADES` when older files need more than the default.

Schema history: 4 -- this one: every sample's score terms (`Scoring.terms`, `tags`, `score`), the epoch's
interval, the indistinguishable epochs and the pick (`Best`), the prompts' tags (`prompts`), `analysis_version`;
`correct_cast` is gone (dropped when reading an older report). 3 -- every record typed. 2 -- the same fields,
except that reports written before it was recorded lack `novelty_tolerance` (upgraded to 5.0: novelty used
merge.TOLERANCE then).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from bespoke.review.record_base import (
    ReportFormatError,
    _at,
    _by_name,
    _each,
    _fail,
    _items,
    _names,
    _optional,
    _plain,
    _Record,
    _values,
)

__all__ = ["ReportFormatError"]

REPORT_SCHEMA = 4
REPORT_KIND = "bespoke.process"
V2_NOVELTY_TOLERANCE = 5.0
LONG_LISTS = ("samples", "errors", "epochs")


@dataclass(slots=True, kw_only=True)
class Novelty(_Record):
    """How near a candidate is to the training images: `nearest` (the training file name), `share` (0-1: the
    part of that training punk's figure the candidate draws within `novelty_tolerance` at the same place),
    `near_copy` (share >= near_copy_threshold) and `shift` ([dy, dx] cells: where the training figure sits in
    the candidate; None in older reports)."""

    nearest: str
    share: float
    near_copy: bool
    shift: list[int] | None = None


@dataclass(slots=True, kw_only=True)
class Candidate(_Record):
    """One 24 px candidate of a sample (one method).

    `file` (relative to the run or folder), `colors`, `top10_coverage`, `clean` (never for a degenerate
    sample), `off_palette` (share 0-1 of the 576 cells whose colour is not a training-palette colour; None
    without a known training palette), `grid_error` (mean |sample - candidate drawn back on its grid|, 0-255),
    `background_uniform`, `delta_e_max` / `delta_e_mean` (CIE76 delta E of each cell against the colour the
    model drew, the grid cell's own colour), `moved_beyond` (cells moved more than the report's `tolerance`:
    0 for grid and grid-palette), `novelty` (None without training images).
    """

    file: str
    colors: int
    top10_coverage: float
    clean: bool
    off_palette: float | None
    grid_error: float
    background_uniform: bool
    delta_e_max: float
    delta_e_mean: float
    moved_beyond: int
    novelty: Novelty | None

    @classmethod
    def from_json(cls, data: object, where: str) -> Candidate:
        values = _values(cls, data, where)
        values["novelty"] = _optional(Novelty.from_json, values["novelty"], _at(where, "novelty"))
        return cls(**values)


@dataclass(slots=True, kw_only=True)
class Scoring(_Record):
    """The scoring candidate's values (the default faithful candidate, with the training palette when known,
    whatever the methods asked for): what the best-epoch score reads (bespoke.review.selection).

    `terms`: each term of the score on this sample, 0-1 (bespoke.pixels.terms; None where it cannot be measured:
    no training set, no prompt tag, a 24 px image has no pixel_art, one sample of its prompt in its epoch has
    no `varied`); `tags`: the adherence of each tag of its prompt (the report's `prompts` entry of it, in
    order); `score`: the sample's score (selection.RULE; 0 for a degenerate sample)."""

    colors: int
    grid_error: float
    off_palette: float | None
    novelty: Novelty | None
    terms: dict[str, float | None] = field(default_factory=dict)
    tags: list[float | None] = field(default_factory=list)
    score: float | None = None

    @classmethod
    def from_json(cls, data: object, where: str) -> Scoring:
        values = _values(cls, data, where)
        values["novelty"] = _optional(Novelty.from_json, values["novelty"], _at(where, "novelty"))
        return cls(**values)


@dataclass(slots=True, kw_only=True)
class SampleGrid(_Record):
    """The pixel grid found on a sample: cell size and phase (px), cells per side, confidence 0-1 and its
    source ("detected", or the run's layout)."""

    cell_w: float
    cell_h: float
    phase_x: float
    phase_y: float
    cells_x: int
    cells_y: int
    confidence: float
    source: str


@dataclass(slots=True, kw_only=True)
class Sample(_Record):
    """One processed sample image.

    What its sd-scripts file name says (`name`, `epoch`, `step`, `prompt_index`, `seed`; None when it does not
    say) and `prompt` (the run's prompt of that index); `width`, `height`; `colors_nearest` -- the RAW count of
    colours of Pillow's NEAREST downscale to 24 px (the user's historical metric, 216.6 at their best epoch; a
    property of the raw sample, not of any candidate), `top10_coverage` and `clean` on that raw downscale
    (never clean when degenerate); `degenerate` (None, "nan-black", "solid", "near-solid", "no-grid" or
    "not-pixel-art"); `grid`; `candidates` by method; `scoring`; `label` (what a plain file name says besides
    its epoch, e01_green_bg_lad -> green_bg_lad: pairs samples across epochs when no prompt index says it).
    """

    file: str
    name: str
    epoch: int | None
    step: int | None
    prompt_index: int | None
    seed: int | None
    prompt: str | None
    width: int
    height: int
    colors_nearest: int
    top10_coverage: float
    clean: bool
    degenerate: str | None
    grid: SampleGrid
    candidates: dict[str, Candidate]
    scoring: Scoring
    label: str | None = None

    @classmethod
    def from_json(cls, data: object, where: str) -> Sample:
        values = _values(cls, data, where)
        values["grid"] = SampleGrid.from_json(values["grid"], _at(where, "grid"))
        values["candidates"] = _by_name(Candidate.from_json, values["candidates"], _at(where, "candidates"))
        values["scoring"] = Scoring.from_json(values["scoring"], _at(where, "scoring"))
        return cls(**values)


@dataclass(slots=True, kw_only=True)
class SampleError(_Record):
    """A sample that could not be processed, and why (it never stops the others)."""

    file: str
    error: str


@dataclass(slots=True, kw_only=True)
class MethodRow(_Record):
    """One method's candidates over one epoch: `colors_mean`, `clean_pct`, `off_palette_mean`,
    `grid_error_mean`, `background_uniform_pct`, `delta_e_max` (the largest), `delta_e_mean`, `moved_beyond`
    (the sum) and `near_copy_pct` (None without training images); None where the epoch has no candidates."""

    colors_mean: float | None
    clean_pct: float | None
    off_palette_mean: float | None
    grid_error_mean: float | None
    background_uniform_pct: float | None
    delta_e_max: float | None
    delta_e_mean: float | None
    moved_beyond: int
    near_copy_pct: float | None


@dataclass(slots=True, kw_only=True)
class Score(_Record):
    """An epoch's best-epoch score: `total` 0-1, the mean of its samples' scores; `terms` (name -> the mean of
    that term over the epoch's samples; which terms and their weights: bespoke.review.selection.RULE);
    `interval` ([low, high], the 95 % bootstrap interval of `total` over the samples; None with one sample an
    epoch); `quality` (the same score without adherence: how clean the pictures are, what the pick among
    indistinguishable epochs reads)."""

    total: float
    terms: dict[str, float] = field(default_factory=dict)
    interval: list[float] | None = None
    quality: float | None = None


@dataclass(slots=True, kw_only=True)
class EpochRow(_Record):
    """The aggregates of one epoch (`epoch` None: samples whose name gives none).

    `samples`, `colors_nearest_mean` (the raw NEAREST count, see Sample), `clean_pct`, `top10_coverage_mean`,
    `degenerate_pct`, `near_copy_pct` (% of samples whose scoring candidate is a near copy; None without
    training images), `diversity` (distinct designs / samples, 0-1), `score`, `methods` (a MethodRow per
    method) and `adherence` (per prompt of the report's `prompts`, by its text: the mean adherence of each of
    its tags over the epoch's samples of that prompt, None where a tag is not measured).
    """

    epoch: int | None
    samples: int
    colors_nearest_mean: float | None
    clean_pct: float | None
    top10_coverage_mean: float | None
    degenerate_pct: float | None
    near_copy_pct: float | None
    diversity: float
    score: Score
    methods: dict[str, MethodRow]
    adherence: dict[str, list[float | None]] = field(default_factory=dict)

    @classmethod
    def from_json(cls, data: object, where: str) -> EpochRow:
        values = _values(cls, data, where)
        values["score"] = Score.from_json(values["score"], _at(where, "score"))
        values["methods"] = _by_name(MethodRow.from_json, values["methods"], _at(where, "methods"))
        return cls(**values)


@dataclass(slots=True, kw_only=True)
class Best(_Record):
    """The best epoch, whatever flags `process` ran with (epoch 0 and degenerate samples never win): `epoch` (the
    pick), `method` (the candidate shown for it), `rule` (in words), its `score` total and `terms`; `highest`
    (the epoch with the highest score), `tied` (the epochs the samples cannot tell from `highest` at 95 %,
    `highest` among them; the pick is one of them), `more_seeds` (per tied epoch but `highest`, by its number:
    how many more seeds per prompt would separate it from `highest` at today's difference; None when no
    practical number would; none with one sample an epoch) and `resolved` (false with fewer than
    selection.MIN_SAMPLES samples an epoch: nothing told apart)."""

    epoch: int
    method: str | None
    rule: str
    score: float
    terms: dict[str, float]
    highest: int | None = None
    tied: list[int] = field(default_factory=list)
    more_seeds: dict[str, int | None] = field(default_factory=dict)
    resolved: bool = True


@dataclass(slots=True, kw_only=True)
class TagInfo(_Record):
    """One tag of a prompt and how its adherence is measured: `text`, `measure` (in words: learned from which
    training punks, and/or the hex colour where bespoke finds it; None when it is not measured) and `why` (why
    not, else None)."""

    text: str
    measure: str | None
    why: str | None


@dataclass(slots=True, kw_only=True)
class PromptTags(_Record):
    """A prompt of the samples and its tags (what `Scoring.tags` and `EpochRow.adherence` are in order of)."""

    prompt: str
    tags: list[TagInfo]

    @classmethod
    def from_json(cls, data: object, where: str) -> PromptTags:
        values = _values(cls, data, where)
        values["tags"] = _each(TagInfo.from_json, values["tags"], _at(where, "tags"))
        return cls(**values)


@dataclass(slots=True, kw_only=True)
class TrainingSource(_Record):
    """Where the training images and palette came from: `source` (a folder), `images` (how many were read
    for novelty; 0 when only the palette is known) and `palette` (bespoke.pixels.palette.Palette.to_json)."""

    source: str | None
    images: int
    palette: dict[str, Any]


def _upgrade_v2(data: dict[str, Any]) -> dict[str, Any]:
    data.setdefault("novelty_tolerance", V2_NOVELTY_TOLERANCE)
    return data


def _upgrade_v3(data: dict[str, Any]) -> dict[str, Any]:
    data.pop("correct_cast", None)  # the option is gone: it repainted more pictures than it helped
    return data


UPGRADES: dict[int, Callable[[dict[str, Any]], dict[str, Any]]] = {2: _upgrade_v2, 3: _upgrade_v3}  # v -> v + 1


@dataclass(slots=True, kw_only=True)
class ProcessReport(_Record):
    """`report.json`: what `process` measured on every sample of a run or folder, per epoch, and the best epoch.

    `created_at`, `source` (the folder processed), `run_id` and `simulated` (None / false for a plain folder);
    the options it was made with: `methods`, `palette` (the --palette request: Palette.to_json, or None),
    `tolerance` (CIE76 delta E a default candidate may move a cell from the colour the model drew), `training`,
    `layout_hint` (the run's cell layout, Layout.to_json, or None); the constants it was measured with:
    `near_copy_threshold` (share of a training figure reproduced at which a candidate is a near copy),
    `novelty_tolerance` (delta E within which a cell matches the training figure's cell), `analysis_version`
    (of the candidates, terms and score: a report of another version is processed again; 0 in older files),
    `weights` (the terms this run's score uses and their weights; `new` multiplies), `prompts` (each prompt's
    tags); then `samples`, `errors`, `epochs` (trained epochs in order, then the unknown epoch) and `best` (None
    when no trained epoch can win). On disk `schema_version` and `kind` come first.
    """

    created_at: str
    source: str
    run_id: str | None
    simulated: bool
    methods: list[str]
    palette: dict[str, Any] | None
    tolerance: float
    near_copy_threshold: float
    novelty_tolerance: float
    training: TrainingSource | None
    layout_hint: dict[str, Any] | None
    samples: list[Sample]
    errors: list[SampleError]
    epochs: list[EpochRow]
    best: Best | None
    analysis_version: int = 0
    weights: dict[str, float] = field(default_factory=dict)
    prompts: list[PromptTags] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return dict(self.items(lists=False))

    def items(self, *, lists: bool = True) -> Iterator[tuple[str, Any]]:
        """(key, JSON value) in file order; with `lists` the long lists (samples, errors, epochs) stay lists of
        records, for a writer that streams them one record at a time."""
        yield "schema_version", REPORT_SCHEMA
        yield "kind", REPORT_KIND
        for name in _names(type(self)):
            value = getattr(self, name)
            yield name, value if lists and name in LONG_LISTS else _plain(value)

    @classmethod
    def from_json(cls, data: object, where: str = "") -> ProcessReport:
        """A report of this schema, or of an older one upgraded; any other kind or version is refused."""
        data = dict(_items(data, where, dict))
        kind, version = data.pop("kind", None), data.pop("schema_version", None)
        if kind != REPORT_KIND:
            raise _fail(where, f"not a bespoke process report (kind {kind!r})")
        if version != REPORT_SCHEMA and version not in UPGRADES:
            raise _fail(where, f"schema_version {version!r}; this bespoke reads process reports of schema "
                        f"{REPORT_SCHEMA} (and upgrades {', '.join(map(str, sorted(UPGRADES)))})")
        while isinstance(version, int) and version in UPGRADES:
            data, version = UPGRADES[version](data), version + 1
        values = _values(cls, data, where)
        values["training"] = _optional(TrainingSource.from_json, values["training"], _at(where, "training"))
        values["samples"] = _each(Sample.from_json, values["samples"], _at(where, "samples"))
        values["errors"] = _each(SampleError.from_json, values["errors"], _at(where, "errors"))
        values["epochs"] = _each(EpochRow.from_json, values["epochs"], _at(where, "epochs"))
        values["best"] = _optional(Best.from_json, values["best"], _at(where, "best"))
        if "prompts" in values:
            values["prompts"] = _each(PromptTags.from_json, values["prompts"], _at(where, "prompts"))
        return cls(**values)
