"""Dataset preparation: validated 24x24 punks -> exact R px training images + captions, cached by content hash.

Flow: list the folder and read every source's bytes (cheap) -> hash them with the options -> a finished cache
folder for that hash is returned as is -> otherwise decode and validate everything, build the images in a temp
folder inside the cache and rename it into place. A crash leaves at most a `.tmp-*` folder, never a final one.

The steps live in their own modules: `sources` (listing, decoding, validation), `render` (alpha policy,
upscaling, the colour invariant, PNG), `cache` (key and folders), `report` (`prepare.json`).
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bespoke import progress
from bespoke.clock import now_iso
from bespoke.dataset.cache import (
    clean_stale_tmp,
    dataset_key,
    make_tmp_folder,
    prepared_folder,
    prepared_root,
)
from bespoke.dataset.colours import packed_colours
from bespoke.dataset.layout import Layout, layout_for
from bespoke.dataset.options import check_resolution, parse_background, parse_trigger
from bespoke.dataset.render import (
    PrepareInvariantError,
    border_colour,
    check_prepared,
    composite,
    encode_png,
    source_colours,
    upscale,
)
from bespoke.dataset.report import REPORT_FILE, Recipe, build_report, image_entry, load_prepare_report
from bespoke.dataset.sources import SourceImage, SourceProblems, decode_sources, list_sources
from bespoke.errors import DatasetError
from bespoke.fsutil import atomic_write_json

__all__ = [
    "PrepareInvariantError",
    "PreparedDataset",
    "REPORT_FILE",
    "check_resolution",
    "composite",
    "load_prepare_report",
    "parse_background",
    "prepare_dataset",
    "source_colours",
]


@dataclass(frozen=True)
class PreparedDataset:
    """A prepared image_dir at one resolution (the thing `plan` points sd-scripts at)."""

    source: Path
    resolution: int
    layout: Layout
    dir: Path
    sha256: str
    palette: list[str]
    report: dict[str, Any]
    cached: bool


def _open_cached(final: Path, source: Path, key: str) -> PreparedDataset:
    """The finished cache folder `final`, checked complete and made for `key`; else a DatasetError."""
    try:
        report = load_prepare_report(final)
    except DatasetError as exc:
        raise DatasetError(f"{final}: cached dataset is not usable ({exc}); delete that folder and run again") from None
    missing = [
        f"{entry['name']}{ext}" for entry in report["images"] for ext in (".png", ".txt")
        if not (final / f"{entry['name']}{ext}").is_file()
    ]
    if report.get("sha256") != key or missing:
        what = f"{len(missing)} files are missing (e.g. {missing[0]})" if missing else "it belongs to other inputs"
        raise DatasetError(f"{final}: cached dataset is not usable ({what}); delete that folder and run again")
    layout = layout_for(report["layout"]["name"], report["resolution"])
    return PreparedDataset(source=source, resolution=report["resolution"], layout=layout, dir=final, sha256=key,
                           palette=list(report["palette"]), report=report, cached=True)


def _build_one(image: SourceImage, background: str, geometry: Layout, folder: Path) -> tuple[dict[str, Any], set[int]]:
    """Composite, upscale, prove and write one image + caption into `folder`; return its report entry."""
    rgb, info = composite(image, background)
    allowed = source_colours(image, info)
    colours = packed_colours(rgb)
    if not colours <= allowed:
        raise PrepareInvariantError(f"{image.name}: compositing produced a colour the source lacks")
    out = upscale(rgb, geometry)
    check_prepared(out, rgb, geometry, allowed, image.name)
    (folder / f"{image.name}.png").write_bytes(encode_png(out))
    (folder / f"{image.name}.txt").write_bytes(image.caption.raw)
    return image_entry(image, info, colours, border_colour(rgb)), colours


def _build_all(images: list[SourceImage], background: str, geometry: Layout, folder: Path,
               advance: Callable[[], object]) -> tuple[list[dict[str, Any]], set[int]]:
    """Build every image into `folder` (see _build_one); returns the report entries in order and the palette."""
    entries: list[dict[str, Any]] = []
    palette: set[int] = set()
    # PNG encoding (zlib) and numpy release the GIL: a few threads roughly halve the wall time
    with ThreadPoolExecutor(max_workers=min(4, os.cpu_count() or 1)) as pool:
        jobs = [pool.submit(_build_one, image, background, geometry, folder) for image in images]
        try:
            for job in jobs:
                entry, colours = job.result()
                entries.append(entry)
                palette |= colours
                advance()
        except BaseException:
            for job in jobs:
                job.cancel()
            raise
    return entries, palette


def _move_into_place(tmp: Path, final: Path) -> bool:
    """Rename the finished `tmp` folder to `final`; False when another process finished the same dataset first."""
    try:
        os.rename(tmp, final)
    except OSError:
        if not (final / REPORT_FILE).is_file():
            raise
        # another process finished the same dataset first: theirs is identical, use it
        shutil.rmtree(tmp, ignore_errors=True)
        return False
    return True


def prepare_dataset(source: Path, resolution: int, *, cache_dir: Path, layout: str = "stretch",
                    background: str | None = None, trigger: str | None = None) -> PreparedDataset:
    """Validated, cached training images at `resolution` px for the punks in `source` (progress: a task while
    the images are checked, another while they are built).

    The result lives in `<cache_dir>/prepared/<hash16>/`: `<name>.png` (R x R RGB) + `<name>.txt` +
    `prepare.json`. The same inputs and options return the finished folder without decoding anything.
    """
    started = time.perf_counter()
    source = Path(source).expanduser().resolve()
    resolution = check_resolution(resolution)
    geometry = layout_for(layout, resolution)
    background = parse_background(background)
    trigger = parse_trigger(trigger)

    problems = SourceProblems(source)
    files, notes = list_sources(source, problems)
    if problems.items:  # report every problem at once, decoding included
        decode_sources(files, problems, trigger)
        problems.raise_if_any()
    key = dataset_key(files, resolution, layout, background, trigger)
    root = prepared_root(cache_dir)
    final = prepared_folder(root, key)
    if final.exists():
        return _open_cached(final, source, key)

    with progress.task(f"checking {len(files)} images", total=len(files)) as checking:
        images = decode_sources(files, problems, trigger, advance=checking.advance)
    problems.raise_if_any()

    root.mkdir(parents=True, exist_ok=True)
    clean_stale_tmp(root)
    tmp = make_tmp_folder(root, key)
    try:
        with progress.task(f"preparing {geometry.describe()}", total=len(images)) as building:
            entries, palette = _build_all(images, background, geometry, tmp, building.advance)
        report = build_report(Recipe(source, geometry, background, trigger, key), images, entries, palette, notes)
        report["created_at"] = now_iso()
        report["elapsed_seconds"] = round(time.perf_counter() - started, 3)
        atomic_write_json(tmp / REPORT_FILE, report)
        if not _move_into_place(tmp, final):
            return _open_cached(final, source, key)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return PreparedDataset(source=source, resolution=resolution, layout=geometry, dir=final, sha256=key,
                           palette=report["palette"], report=report, cached=False)
