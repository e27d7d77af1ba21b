"""What `process` is asked to do, resolved against the folder: methods, palette, tolerance, cell layout, and the
training images and palette (novelty, off_palette, the scoring candidate).

The training images and palette come from the run's prepared dataset, or `training=<folder of 24 px images>`
for a plain folder. run.json and prepare.json are each read once per request (a caller that has read run.json
already passes it in).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bespoke.dataset.layout import GRID, Layout
from bespoke.dataset.prepare import REPORT_FILE, load_prepare_report
from bespoke.errors import BespokeError, UsageError, did_you_mean
from bespoke.pixels import palette as pal
from bespoke.pixels.merge import TOLERANCE
from bespoke.pixels.novelty import TrainingSet, read_folder, read_prepared
from bespoke.review.records import TrainingSource
from bespoke.run.manifest import RunManifest, load_manifest
from bespoke.run.paths import is_run_dir

DEFAULT_METHODS = ("nearest", "box", "bilinear", "lanczos", "grid")
KNOWN_METHODS = ("nearest", "box", "bilinear", "lanczos", "grid", "grid-palette")


@dataclass(frozen=True)
class ProcessOptions:
    """What `process` is asked for (its command-line options): `methods` (names or a comma list), `palette`
    (dataset, k:<N> or a folder), `tolerance` (delta E; None: merge.TOLERANCE), `layout_hint` (None: the run's),
    `training` (a folder of 24 px images; None: the run's prepared dataset), `correct_cast`, `workers` (None:
    the CPUs this process may use) and `force` (process again even when the report is up to date)."""

    methods: str | Sequence[str] | None = DEFAULT_METHODS
    palette: str | None = None
    tolerance: float | None = None
    layout_hint: Layout | None = None
    training: str | None = None
    correct_cast: bool = False
    workers: int | None = None
    force: bool = False


@dataclass(frozen=True)
class Request:
    """What to process and how, resolved (the options an up-to-date report must match: `report_options`)."""

    path: Path
    manifest: RunManifest | None
    methods: tuple[str, ...]
    palette: pal.Palette | None
    tolerance: float
    layout: Layout | None
    training: TrainingSet | None
    training_palette: pal.Palette | None
    training_source: str | None
    correct_cast: bool = False

    def training_record(self) -> TrainingSource | None:
        """Where the training images and palette came from, as the report records it."""
        if self.training_palette is None:
            return None
        return TrainingSource(source=self.training_source, images=len(self.training) if self.training else 0,
                              palette=self.training_palette.to_json())


class PreparedDataset:
    """The prepared dataset a run's run.json names, its prepare.json read at most once."""

    def __init__(self, manifest: RunManifest | None) -> None:
        prepared = (manifest.dataset if manifest is not None else {}).get("prepared_dir")
        self.folder = Path(prepared) if prepared else None
        self._loaded: dict[str, Any] | BespokeError | None = None

    def report(self) -> dict[str, Any]:
        """prepare.json (DatasetError when it is missing or unreadable; UsageError when none is named)."""
        if self.folder is None:
            raise UsageError("run.json names no dataset.prepared_dir")
        if self._loaded is None:
            try:
                self._loaded = load_prepare_report(self.folder)
            except BespokeError as error:
                self._loaded = error
        if isinstance(self._loaded, BespokeError):
            raise self._loaded
        return self._loaded


def layout_from_json(data: object) -> Layout | None:
    """The cell layout recorded in run.json's dataset record, or None when there is none or it is malformed."""
    if not isinstance(data, dict) or "edges" not in data:
        return None
    try:
        return Layout(name=str(data.get("name", "stretch")), resolution=int(data["resolution"]),
                      grid=int(data.get("grid", GRID)), edges=tuple(int(e) for e in data["edges"]))
    except (KeyError, TypeError, ValueError):
        return None


def resolve_palette(spec: str | None, run_dir: Path | None, prepared: PreparedDataset | None) -> pal.Palette | None:
    """The `--palette` request as a Palette (None without one)."""
    parsed = pal.parse_spec(spec)
    if parsed is None:
        return None
    mode, k, folder = parsed
    if mode == "k":
        return pal.Palette("k", k=k)
    if mode == "folder":
        assert folder is not None
        return pal.Palette("folder", colors=pal.palette_from_folder(folder))
    if run_dir is None:
        raise UsageError("--palette dataset needs a run folder (its run.json names the prepared dataset); "
                         "for a plain folder pass --palette <folder of 24 px PNGs> or --palette k:16")
    if prepared is None or prepared.folder is None:
        raise UsageError(f"{run_dir}/run.json: no dataset.prepared_dir to read the palette from; "
                         "pass --palette <folder of 24 px PNGs> or --palette k:16")
    colors = prepared.report().get("palette")
    where = str(prepared.folder / REPORT_FILE)
    if not isinstance(colors, list) or not colors:
        raise UsageError(f"{where}: no \"palette\" list; run `bespoke prepare` again")
    return pal.Palette("dataset", colors=pal.parse_hex(colors, where))


def resolve_training(run_dir: Path | None, manifest: RunManifest | None, folder: str | None,
                     prepared: PreparedDataset | None = None,
                     ) -> tuple[TrainingSet | None, pal.Palette | None, str | None]:
    """(training images at 24 px, training palette, where they came from) for novelty and the score:
    `folder` (24 px images) when given, else the run's prepared dataset when it is on this machine."""
    if folder:
        path = Path(folder).expanduser()
        if not path.is_dir():
            raise UsageError(f"--training {folder}: not a folder; pass the folder of the 24 px training images")
        training = read_folder(path)
        if not len(training):
            raise UsageError(f"--training {folder}: no readable 24x24 images in it")
        return training, pal.Palette("folder", colors=pal.palette_from_folder(path)), str(path)
    if run_dir is None:
        return None, None, None
    prepared = prepared or PreparedDataset(manifest)
    try:
        palette = resolve_palette("dataset", run_dir, prepared)
    except BespokeError:  # the prepared dataset is not on this machine: no training images, no palette
        return None, None, None
    if palette is None or prepared.folder is None:
        return None, None, None
    report = prepared.report()
    layout = layout_from_json(report.get("layout"))
    names = [str(e.get("name")) for e in report.get("images") or [] if isinstance(e, dict) and e.get("name")]
    images = read_prepared(prepared.folder, names, layout.edges) if layout is not None else None
    return (images if images is not None and len(images) else None), palette, str(prepared.folder)


def default_palette(run_dir: Path, manifest: RunManifest | None = None) -> str | None:
    """"dataset" when the run's prepared dataset (its training palette) is on this machine, else None.

    What bespoke uses when it processes a run on its own (after train, sweep, review).
    """
    if not is_run_dir(run_dir):
        return None
    folder = PreparedDataset(manifest or load_manifest(run_dir)).folder
    return "dataset" if folder is not None and (folder / REPORT_FILE).is_file() else None


def parse_methods(methods: str | Sequence[str] | None, palette: pal.Palette | None) -> tuple[str, ...]:
    """Validate method names; `grid-palette` is added when a palette is given and only allowed then."""
    if isinstance(methods, str):
        methods = [m.strip() for m in methods.split(",") if m.strip()]
    chosen = list(dict.fromkeys(methods or DEFAULT_METHODS))
    for method in chosen:
        if method not in KNOWN_METHODS:
            raise UsageError(f"unknown method {method!r}{did_you_mean(method, KNOWN_METHODS)}; "
                             f"choose from {', '.join(KNOWN_METHODS)}")
    if "grid-palette" in chosen and palette is None:
        raise UsageError("method grid-palette needs --palette (dataset, k:<N> or a folder of 24 px PNGs)")
    if palette is not None and "grid-palette" not in chosen:
        chosen.append("grid-palette")
    return tuple(chosen)


def resolve_request(path: Path, options: ProcessOptions, manifest: RunManifest | None = None) -> Request:
    """`options` resolved against `path` (a run folder, whose run.json is `manifest` when already read, or a
    plain folder); UsageError for what cannot be done, before anything is written."""
    run_dir = path if is_run_dir(path) else None
    if run_dir is not None and manifest is None:
        manifest = load_manifest(path)
    tolerance = options.tolerance
    if tolerance is not None and tolerance < 0:
        raise UsageError(f"--tolerance {tolerance}: must be 0 (no merging) or a positive delta E, e.g. {TOLERANCE:g}")
    prepared = PreparedDataset(manifest) if run_dir is not None else None
    train_set, train_palette, source = resolve_training(run_dir, manifest, options.training, prepared)
    palette, training = options.palette, options.training
    same_folder = training and palette and Path(palette).expanduser().resolve() == Path(training).expanduser().resolve()
    resolved = train_palette if same_folder else resolve_palette(palette, run_dir, prepared)
    if resolved is not None and train_palette is not None and resolved.to_json() == train_palette.to_json():
        resolved = train_palette  # one object: the scoring candidate reuses grid-palette
    if options.correct_cast and (resolved is None or resolved.colors is None):
        raise UsageError("--correct-cast needs a fixed palette to measure the cast against: "
                         "--palette dataset or a folder of 24 px PNGs")
    layout = options.layout_hint
    if layout is None and manifest is not None:
        layout = layout_from_json(manifest.dataset.get("layout"))
    return Request(path, manifest, parse_methods(options.methods, resolved), resolved,
                   TOLERANCE if tolerance is None else float(tolerance), layout, train_set, train_palette, source,
                   options.correct_cast)


def report_options(request: Request) -> dict[str, Any]:
    """What an existing report or journal must have been made with to be reused (the report's JSON fields)."""
    training = request.training_record()
    return {"methods": list(request.methods), "palette": request.palette.to_json() if request.palette else None,
            "tolerance": request.tolerance, "correct_cast": request.correct_cast,
            "layout_hint": request.layout.to_json() if request.layout is not None else None,
            "training": training.to_json() if training is not None else None}
