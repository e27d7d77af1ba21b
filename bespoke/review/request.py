"""What `process` is asked to do, resolved against the folder: methods, palette, tolerance, cell layout, where
the results go, and the training set (images, palette and captions: novelty, off_palette, the scoring candidate
and the terms of the score).

The training set is the run's prepared dataset whenever it is on this machine (so a run's score is the same
whatever `--training` says), else `training=<folder of 24 px images>` (with their .txt captions). For a folder
that is not a run, `--training` also gives `grid-palette` its palette when `--palette` names none, so that
the candidate shown is the one scored. run.json and prepare.json are each read once per request (a caller
that has read run.json already passes it in).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bespoke import progress
from bespoke.dataset.layout import GRID, Layout
from bespoke.dataset.prepare import REPORT_FILE, load_prepare_report
from bespoke.errors import BespokeError, UsageError, did_you_mean
from bespoke.pixels import palette as pal
from bespoke.pixels.merge import TOLERANCE
from bespoke.pixels.novelty import MATCH_TOLERANCE, NEAR_COPY, TrainingSet, read_folder, read_prepared
from bespoke.review.records import TrainingSource
from bespoke.review.scoring import Training
from bespoke.review.selection import ANALYSIS_VERSION
from bespoke.run.manifest import RunManifest, load_manifest
from bespoke.run.paths import is_run_dir

# nearest is the user's historical metric and grid the extraction the score is measured on; Pillow's box,
# bilinear and lanczos are there to compare against and cost more than the analysis (--methods asks for them)
DEFAULT_METHODS = ("nearest", "grid")
KNOWN_METHODS = ("nearest", "box", "bilinear", "lanczos", "grid", "grid-palette")


@dataclass(frozen=True)
class ProcessOptions:
    """What `process` is asked for (its command-line options): `methods` (names or a comma list), `palette`
    (dataset, k:<N> or a folder), `tolerance` (delta E; None: merge.TOLERANCE), `layout_hint` (None: the run's),
    `training` (a folder of 24 px images with their captions; a run uses its prepared dataset when it is on
    this machine), `out` (the folder for candidates/ and report/; None: the run's own, or
    <folder>/bespoke_process/), `workers` (None: the CPUs this process may use) and `force` (process again even
    when the report is up to date)."""

    methods: str | Sequence[str] | None = DEFAULT_METHODS
    palette: str | None = None
    tolerance: float | None = None
    layout_hint: Layout | None = None
    training: str | None = None
    out: str | Path | None = None
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
    training_set: Training | None
    out: Path | None = None

    @property
    def training(self) -> TrainingSet | None:
        """The training images at 24 px (novelty), or None."""
        return self.training_set.images if self.training_set is not None else None

    @property
    def training_palette(self) -> pal.Palette | None:
        """The training palette (off_palette, the scoring candidate), or None."""
        return self.training_set.palette if self.training_set is not None else None

    def training_record(self) -> TrainingSource | None:
        """Where the training images and palette came from, as the report records it."""
        if self.training_set is None:
            return None
        return TrainingSource(source=self.training_set.source, images=len(self.training_set.images),
                              palette=self.training_set.palette.to_json())


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


def _caption(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8", errors="replace") if path.is_file() else ""
    except OSError:
        return ""


def _training_folder(folder: str) -> Training:
    path = Path(folder).expanduser()
    if not path.is_dir():
        raise UsageError(f"--training {folder}: not a folder; pass the folder of the 24 px training images")
    images = read_folder(path)
    if not len(images):
        raise UsageError(f"--training {folder}: no readable 24x24 images in it; pass the folder of the 24 px "
                         "training images (each with its .txt caption)")
    captions = tuple(_caption((path / name).with_suffix(".txt")) for name in images.names)
    return Training(images, pal.Palette("folder", colors=pal.palette_from_folder(path)), captions, str(path))


def _prepared_training(run_dir: Path, prepared: PreparedDataset) -> Training | None:
    """The run's prepared dataset read back at 24 px, with its captions; None when it is not on this machine."""
    try:
        palette = resolve_palette("dataset", run_dir, prepared)
    except BespokeError:  # the prepared dataset is not on this machine: no training images, no palette
        return None
    if palette is None or prepared.folder is None:
        return None
    report = prepared.report()
    layout = layout_from_json(report.get("layout"))
    names = [str(e.get("name")) for e in report.get("images") or [] if isinstance(e, dict) and e.get("name")]
    images = read_prepared(prepared.folder, names, layout.edges) if layout is not None else TrainingSet.from_arrays(
        [], [])
    captions = tuple(_caption(prepared.folder / f"{name}.txt") for name in images.names)
    return Training(images, palette, captions, str(prepared.folder))


def resolve_training_set(run_dir: Path | None, manifest: RunManifest | None, folder: str | None,
                         prepared: PreparedDataset | None = None) -> Training | None:
    """The training set for novelty and the score: a run's prepared dataset when it is on this machine (a
    `folder` given beside it is not used, and the user is told), else `folder`; None without either."""
    if run_dir is not None:
        own = _prepared_training(run_dir, prepared or PreparedDataset(manifest))
        if own is not None:
            if folder:
                progress.say(f"--training {folder}: not used; run {run_dir.name} is scored against its own prepared "
                             f"dataset ({own.source})", "warning")
            return own
    return _training_folder(folder) if folder else None


def resolve_training(run_dir: Path | None, manifest: RunManifest | None, folder: str | None,
                     prepared: PreparedDataset | None = None,
                     ) -> tuple[TrainingSet | None, pal.Palette | None, str | None]:
    """(training images at 24 px or None when none were read, training palette, where they came from):
    resolve_training_set, as a tuple."""
    found = resolve_training_set(run_dir, manifest, folder, prepared)
    if found is None:
        return None, None, None
    return (found.images if len(found.images) else None), found.palette, found.source


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
    training_set = resolve_training_set(run_dir, manifest, options.training, prepared)
    train_palette = training_set.palette if training_set is not None else None
    palette = options.palette
    if palette is None and run_dir is None and training_set is not None:
        palette = options.training  # a folder's training set gives grid-palette its palette: shown = scored
    same_folder = options.training and palette and \
        Path(palette).expanduser().resolve() == Path(options.training).expanduser().resolve()
    resolved = train_palette if same_folder else resolve_palette(palette, run_dir, prepared)
    if resolved is not None and train_palette is not None and resolved.to_json() == train_palette.to_json():
        resolved = train_palette  # one object: the scoring candidate reuses grid-palette
    layout = options.layout_hint
    if layout is None and manifest is not None:
        layout = layout_from_json(manifest.dataset.get("layout"))
    out = Path(options.out).expanduser() if options.out is not None else None
    return Request(path, manifest, parse_methods(options.methods, resolved), resolved,
                   TOLERANCE if tolerance is None else float(tolerance), layout, training_set, out)


def report_options(request: Request) -> dict[str, Any]:
    """What an existing report or journal must have been made with to be reused (the report's JSON fields):
    the options, and what the candidates and the score were measured with."""
    training = request.training_record()
    return {"methods": list(request.methods), "palette": request.palette.to_json() if request.palette else None,
            "tolerance": request.tolerance,
            "layout_hint": request.layout.to_json() if request.layout is not None else None,
            "training": training.to_json() if training is not None else None,
            "near_copy_threshold": NEAR_COPY, "novelty_tolerance": MATCH_TOLERANCE,
            "analysis_version": ANALYSIS_VERSION}
