"""One sample -> its 24 px candidates and their metrics: the work each `process` worker does.

The worker gets the job once (methods, palette, layout prior, where to write) and then one (path, stem) per
sample; it returns the sample's report entry, or an error entry that never stops the other samples.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from bespoke.dataset.layout import GRID, Layout
from bespoke.pixels import metrics as m
from bespoke.pixels.downscale import PIL_METHODS, extract, moved, pil_downscale
from bespoke.pixels.grid import Grid, find_grid
from bespoke.pixels.palette import Palette


@dataclass(frozen=True)
class Job:
    """Everything a worker needs besides the sample itself (sent once per worker)."""

    methods: tuple[str, ...]
    palette: Palette | None
    merge: float | None
    layout: Layout | None
    base: Path  # paths in the report are relative to this
    candidates_dir: Path


_JOB: Job | None = None


def init_worker(job: Job) -> None:
    """Pool initializer: the job every later `process_sample` call of this worker uses."""
    global _JOB
    _JOB = job


def relative(path: Path, base: Path) -> str:
    """`path` relative to `base` in POSIX form, or as it is when it is not below `base`."""
    try:
        return Path(path).relative_to(base).as_posix()
    except ValueError:
        return str(path)


def _write_png(path: Path, arr: np.ndarray) -> None:
    """A small derived image, written in place: no temp file and rename per candidate (thousands of them,
    and the rename costs more than the PNG). An interrupted run leaves no new report; re-run to redo."""
    buffer = io.BytesIO()
    Image.fromarray(arr, "RGB").save(buffer, "PNG")
    with open(path, "wb") as handle:
        handle.write(buffer.getvalue())


def _open_rgb(path: Path) -> Image.Image:
    try:
        with Image.open(path) as img:
            img.load()
            # an RGB image needs no conversion (convert would copy it)
            return img if img.mode == "RGB" else img.convert("RGB")
    except UnidentifiedImageError:
        raise ValueError("not an image Pillow can read") from None
    except (OSError, SyntaxError, ValueError) as exc:
        raise ValueError(f"truncated or corrupt image ({exc})") from None


def _candidate(job: Job, method: str, stem: str, img: Image.Image, arr: np.ndarray, near: np.ndarray, grid: Grid,
               raw: np.ndarray | None, index: tuple[np.ndarray, np.ndarray]) -> tuple[dict, np.ndarray | None]:
    """One method's candidate: written to candidates/<method>/<stem>.png, with its metrics."""
    if method in PIL_METHODS:
        out = near if method == "nearest" else pil_downscale(img, method)
        moved_px, mean_move = 0, 0.0
    else:
        palette = job.palette if method == "grid-palette" else None
        out, raw = extract(arr, grid, merge=job.merge, palette=palette, raw=raw)
        moved_px, mean_move = moved(raw, out)
    out = np.ascontiguousarray(out, dtype=np.uint8)
    target = job.candidates_dir / method / f"{stem}.png"
    _write_png(target, out)
    colors, coverage = m.color_stats(out)
    off = m.off_palette(out, job.palette.colors if job.palette is not None else None)
    return {
        "file": relative(target, job.base), "colors": colors, "top10_coverage": round(coverage, 4),
        "clean": m.is_clean(colors, coverage), "off_palette": None if off is None else round(off, 4),
        "grid_error": round(m.grid_error(arr, out, *index), 3), "background_uniform": m.background_uniform(out),
        "moved_pixels": moved_px, "mean_move": round(mean_move, 3),
    }, raw


def _measure(job: Job, path: Path, stem: str) -> dict:
    img = _open_rgb(path)
    w, h = img.size
    if w < GRID or h < GRID:
        raise ValueError(f"too small ({w}x{h}); samples must be at least {GRID}x{GRID} px")
    if w != h:
        raise ValueError(f"not square ({w}x{h}); bespoke reads square samples of a {GRID}-cell grid")
    arr = np.asarray(img)
    near = m.nearest24(img)
    cn, cov = m.color_stats(near)
    grid = find_grid(arr, job.layout)
    index = (m.upsample_index(grid.xs, w), m.upsample_index(grid.ys, h))
    candidates: dict[str, dict] = {}
    raw = None
    for method in job.methods:
        candidates[method], raw = _candidate(job, method, stem, img, arr, near, grid, raw, index)
    return {"width": w, "height": h, "colors_nearest": cn, "top10_coverage": round(cov, 4),
            "clean": m.is_clean(cn, cov), "grid": grid.to_json(), "candidates": candidates}


def process_sample(item: tuple[str, str]) -> dict:
    """Process one sample (path, candidate stem) with the worker's job; returns its report entry or an error."""
    job = _JOB
    assert job is not None, "init_worker() first"
    path, stem = Path(item[0]), item[1]
    rel = relative(path, job.base)
    try:
        return {"file": rel, **_measure(job, path, stem)}
    except (ValueError, OSError) as exc:
        return {"file": rel, "error": str(exc)}
    except Exception as exc:  # noqa: BLE001 - one odd image must never stop the others
        return {"file": rel, "error": f"cannot process ({type(exc).__name__}: {exc})"}
