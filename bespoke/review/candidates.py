"""One sample -> its 24 px candidates and their metrics: the work each `process` worker does.

The worker gets the job once (methods, palette, tolerance, layout prior, the training images and palette, the
Scorer, where to write) and then one (SampleInfo, stem) per sample; it returns an `Outcome`: the sample's
report record, or a SampleError that never stops the other samples. Besides the asked-for methods every sample
gets the *scoring candidate*: the default faithful candidate (merge.TOLERANCE, the training palette when known)
whatever the flags, and its terms (bespoke.pixels.terms), so the best-epoch score (bespoke.review.selection)
never depends on which options `process` ran with. Novelty is measured on the grid candidates and the scoring
candidate only (Pillow's resamplers are there for comparison, and are no design).

A 24 px picture is its own grid (source "native": each pixel a cell); a larger one needs cells of 2 px or more
(48 px and up) for its grid to be found.
"""

from __future__ import annotations

import functools
import os
import signal
import struct
import zlib
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
from PIL import Image, UnidentifiedImageError

from bespoke.dataset.layout import GRID, Layout
from bespoke.kohya.naming import SampleInfo
from bespoke.pixels import metrics as m
from bespoke.pixels.colour import rgb_to_lab
from bespoke.pixels.downscale import PIL_METHODS, cell_colors, extract, pil_downscale
from bespoke.pixels.grid import Grid, find_grid
from bespoke.pixels.merge import TOLERANCE, moved_stats
from bespoke.pixels.novelty import TrainingSet, novelty
from bespoke.pixels.palette import Palette
from bespoke.pixels.terms import CandidateTerms, Context, candidate_terms
from bespoke.review.records import (
    Candidate,
    Novelty,
    ReportFormatError,
    Sample,
    SampleError,
    SampleGrid,
    Scoring,
)
from bespoke.review.samples import label_of
from bespoke.review.scoring import Scorer

NOVELTY_METHODS = ("grid", "grid-palette")
T = TypeVar("T")
MIN_CELL = 2  # px: a sample whose cells are smaller has no grid to find (24 px pictures are their own cells)


@dataclass(frozen=True)
class Job:
    """Everything a worker needs besides the sample itself (sent once per worker)."""

    methods: tuple[str, ...]
    palette: Palette | None  # the --palette request (grid-palette)
    tolerance: float  # delta E a candidate may move a cell (the --tolerance request)
    layout: Layout | None
    base: Path  # paths in the report are relative to this
    candidates_dir: Path
    training: TrainingSet | None = None  # the training images at 24 px (novelty)
    training_palette: Palette | None = None  # the training set's colours (off_palette, the scoring candidate)
    scorer: Scorer = Scorer()  # what the scoring candidate's terms are measured against


@dataclass(slots=True)
class Outcome:
    """One sample's result, as a worker returns it and the journal keeps it: its report record (or why it could
    not be processed) and the scoring candidate's 24x24 RGB pixels (`design`, for diversity; None for an
    error)."""

    entry: Sample | SampleError
    design: bytes | None = None

    @property
    def file(self) -> str:
        return self.entry.file

    def to_json(self) -> dict[str, Any]:
        """{"sample": ..., "design": hex} or {"error": ...}."""
        if isinstance(self.entry, SampleError):
            return {"error": self.entry.to_json()}
        return {"sample": self.entry.to_json(), "design": (self.design or b"").hex()}

    @classmethod
    def from_json(cls, data: dict[str, Any], where: str) -> Outcome:
        if "error" in data:
            return cls(SampleError.from_json(data["error"], f"{where}.error"))
        design = data.get("design")
        if not isinstance(design, str) or len(design) != GRID * GRID * 3 * 2:
            raise ReportFormatError(f"{where}.design: not the hex of {GRID}x{GRID} RGB pixels")
        return cls(Sample.from_json(data.get("sample"), f"{where}.sample"), bytes.fromhex(design))


_JOB: Job | None = None
WARM_BLOCK = 31 << 20  # under 32 MiB: glibc raises its thresholds only for a freed block below that (64-bit)


def init_worker(job: Job, pool: bool = False) -> None:
    """Initializer: the job every later `process_sample` call of this worker uses. A pool worker ignores
    Ctrl-C: the main process stops the pool and says what was kept (no traceback from every worker)."""
    global _JOB
    _JOB = job
    if pool:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        # A fresh worker's malloc (glibc) hands each multi-megabyte temporary of a sample back to the OS and
        # faults it in again: ~2000 page faults and +12 % CPU an image. Freeing one large block first raises
        # its mmap and trim thresholds to what a long-lived process (which forked workers came from) has.
        block = np.empty(WARM_BLOCK, dtype=np.uint8)
        del block


def relative(path: Path, base: Path) -> str:
    """`path` relative to `base` in POSIX form, or as it is when it is not below `base`."""
    try:
        return Path(path).relative_to(base).as_posix()
    except ValueError:
        return str(path)


_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def png_bytes(arr: np.ndarray) -> bytes:
    """An RGB uint8 picture as PNG bytes: IHDR, one IDAT of unfiltered rows, IEND.

    Written here rather than by Pillow's save because a candidate is 24x24 and there are thousands: Pillow spends
    ~110 us a file on its plugin and encoder setup, this ~17 us (the file is ~80 bytes larger, no row filters).
    zlib with a 512-byte window and the least memory: its set-up, not the compression, is what a tiny image costs.
    """
    height, width, _ = arr.shape
    rows = np.zeros((height, 1 + 3 * width), dtype=np.uint8)  # each row: filter type 0 (none), then its RGB bytes
    rows[:, 1:] = arr.reshape(height, -1)
    deflate = zlib.compressobj(1, zlib.DEFLATED, 9, 1)
    idat = deflate.compress(rows.tobytes()) + deflate.flush()
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)  # 8 bits, truecolour, no interlace
    return _PNG_SIGNATURE + _png_chunk(b"IHDR", header) + _png_chunk(b"IDAT", idat) + _png_chunk(b"IEND", b"")


@functools.lru_cache(maxsize=64)
def _method_folder(candidates_dir: Path, method: str, base: Path) -> tuple[str, str]:
    """A method's candidate folder, and as the report names it (relative to `base`): strings, so that a
    sample's three files cost no pathlib parsing (~15 us a path)."""
    folder = candidates_dir / method
    return str(folder), relative(folder, base)


def _write_png(path: str | Path, arr: np.ndarray) -> None:
    """A small derived image, written in place: no temp file and rename per candidate (thousands of them,
    and the rename costs more than the PNG). An interrupted run leaves no new report; re-run to redo."""
    data = png_bytes(arr)
    # overwritten, then cut to its length: truncating a re-processed candidate first (open "wb") frees its
    # blocks only to allocate them again, and costs more than encoding it
    with open(os.open(path, os.O_WRONLY | os.O_CREAT, 0o666), "wb") as handle:  # an fd: "wb" truncates nothing
        handle.write(data)
        handle.truncate()


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


NATIVE_EDGES = tuple(float(i) for i in range(GRID + 1))


class _Decoded:
    """One decoded sample and what every method shares: its grid, the colours the model drew per cell."""

    def __init__(self, img: Image.Image, layout: Layout | None) -> None:
        self.img = img
        self.arr = np.asarray(img)
        w, h = img.size
        self.native = w == GRID
        if self.native:  # a 24 px picture: each pixel is a cell, as it is
            self.near = self.arr
            self.grid: Grid = Grid(NATIVE_EDGES, NATIVE_EDGES, 1.0, "native")
            self.cells = np.ascontiguousarray(self.arr)
        else:
            self.near = m.nearest24(img)
            self.grid = find_grid(self.arr, layout, image=img)
            self.cells = cell_colors(self.arr, self.grid)
        self.cells_lab = rgb_to_lab(self.cells)  # every candidate's moves are measured from it
        self.index = (m.upsample_index(self.grid.xs, w), m.upsample_index(self.grid.ys, h))
        self._reduced: dict[float, np.ndarray] = {}
        # what is measured of a 24 px picture, once per distinct picture: grid-palette mostly draws what grid
        # draws, nearest is also the sample's raw NEAREST count, the scoring candidate is one of the outputs
        self._once: dict[tuple[str, bytes], Any] = {}

    def reduced(self, tolerance: float) -> np.ndarray:
        """The faithful reduction of the cells at `tolerance` (the `grid` candidate), computed once."""
        if tolerance not in self._reduced:
            self._reduced[tolerance] = extract(self.arr, self.grid, tolerance=tolerance, raw=self.cells)[0]
        return self._reduced[tolerance]

    def grid_candidate(self, tolerance: float, palette: Palette | None) -> np.ndarray:
        """`grid` (palette None) or `grid-palette` at `tolerance`, from the one reduction."""
        reduced = self.reduced(tolerance)
        if palette is None:
            return reduced
        return extract(self.arr, self.grid, tolerance=tolerance, palette=palette, raw=self.cells, reduced=reduced)[0]

    def once(self, what: str, out: np.ndarray, compute: Callable[[], T]) -> T:
        """`compute()`, the `what` of picture `out`, computed once per distinct picture of this sample."""
        key = (what, out.tobytes())
        if key not in self._once:
            self._once[key] = compute()
        return self._once[key]

    def novelty(self, out: np.ndarray, training: TrainingSet) -> dict | None:
        return self.once("novelty", out, lambda: novelty(out, training))

    def grid_error(self, out: np.ndarray) -> float:
        return self.once("grid_error", out, lambda: m.grid_error(self.arr, out, *self.index))

    def color_stats(self, out: np.ndarray) -> tuple[int, float]:
        return self.once("color_stats", out, lambda: m.color_stats(out))


def _pixels(job: Job, method: str, sample: _Decoded) -> np.ndarray:
    if method in PIL_METHODS:
        return sample.near if method == "nearest" else pil_downscale(sample.img, method)
    return sample.grid_candidate(job.tolerance, job.palette if method == "grid-palette" else None)


def _measure_candidate(job: Job, out: np.ndarray, sample: _Decoded, degenerate: str | None,
                       file: str, with_novelty: bool = True) -> Candidate:
    """The metrics of one 24 px candidate written to `file` (bespoke.review.records.Candidate says each),
    measured once per distinct picture of the sample: grid-palette mostly draws what grid draws."""
    measured = sample.once(f"candidate novelty={with_novelty}", out,
                           lambda: _candidate_metrics(job, out, sample, degenerate, with_novelty))
    return replace(measured, file=file)


def _candidate_metrics(job: Job, out: np.ndarray, sample: _Decoded, degenerate: str | None,
                       with_novelty: bool) -> Candidate:
    colors, coverage = sample.color_stats(out)
    training = job.training_palette
    off = m.off_palette(out, training.colors, training.codes) if training is not None else None
    near = sample.novelty(out, job.training) if job.training is not None and with_novelty else None
    moved = moved_stats(sample.cells, out, job.tolerance, cells_lab=sample.cells_lab)
    return Candidate(
        file="", colors=colors, top10_coverage=round(coverage, 4),
        clean=m.is_clean(colors, coverage) and degenerate is None,
        off_palette=None if off is None else round(off, 4),
        grid_error=round(sample.grid_error(out), 3),
        background_uniform=m.background_uniform(out), delta_e_max=moved["delta_e_max"],
        delta_e_mean=moved["delta_e_mean"], moved_beyond=int(moved["moved_beyond"]),
        novelty=Novelty(**near) if near is not None else None,
    )


def _scoring(job: Job, sample: _Decoded, outputs: dict[str, np.ndarray]) -> np.ndarray:
    """The scoring candidate: the default faithful one with the training palette when known."""
    default_tol = job.tolerance == TOLERANCE
    if job.training_palette is None:
        if default_tol and "grid" in outputs:
            return outputs["grid"]
        return sample.grid_candidate(TOLERANCE, None)
    if default_tol and "grid-palette" in outputs and job.palette is job.training_palette:
        return outputs["grid-palette"]
    return sample.grid_candidate(TOLERANCE, job.training_palette)


def _decode(path: Path) -> Image.Image:
    img = _open_rgb(path)
    w, h = img.size
    if w < GRID or h < GRID:
        raise ValueError(f"too small ({w}x{h}); samples must be at least {GRID}x{GRID} px")
    if w != h:
        raise ValueError(f"not square ({w}x{h}); bespoke reads square samples of a {GRID}-cell grid")
    if GRID < w < MIN_CELL * GRID:
        raise ValueError(f"{w}x{h}: cells of {w / GRID:.2f} px, under {MIN_CELL}; bespoke reads {GRID} px pictures "
                         f"as they are and samples of {MIN_CELL * GRID} px and up")
    return img


def _terms(job: Job, info: SampleInfo, sample: _Decoded, scoring: np.ndarray, score: Candidate) -> CandidateTerms:
    share = score.novelty.share if score.novelty is not None else None
    return candidate_terms(scoring, Context(prior=job.scorer.reference, tags=job.scorer.tags(info.prompt),
                                            grid_error=None if sample.native else score.grid_error,
                                            novelty_share=share))


def _rounded(values: dict[str, float | None]) -> dict[str, float | None]:
    return {k: None if v is None else round(float(v), 4) for k, v in values.items()}


def _measure(job: Job, info: SampleInfo, stem: str, file: str) -> Outcome:
    """The record of one sample (`file`: its path as the report names it) and its candidates."""
    sample = _Decoded(_decode(info.path), job.layout)
    cn, cov = sample.color_stats(sample.near)
    outputs = {method: np.ascontiguousarray(_pixels(job, method, sample), dtype=np.uint8) for method in job.methods}
    scoring = _scoring(job, sample, outputs)
    fit = sample.grid_error(scoring)
    degenerate = m.degenerate(sample.arr, sample.grid.source, scoring, None if sample.native else fit)
    candidates: dict[str, Candidate] = {}
    score = None
    for method, out in outputs.items():
        folder, shown_as = _method_folder(job.candidates_dir, method, job.base)
        _write_png(f"{folder}/{stem}.png", out)
        candidates[method] = _measure_candidate(job, out, sample, degenerate, f"{shown_as}/{stem}.png",
                                                with_novelty=method in NOVELTY_METHODS)
        if out is scoring:
            score = candidates[method]
    if score is None:
        score = _measure_candidate(job, scoring, sample, degenerate, "")
    terms = _terms(job, info, sample, scoring, score)
    w, h = sample.img.size
    entry = Sample(file=file, name=info.name, epoch=info.epoch, step=info.step,
                   prompt_index=info.prompt_index, seed=info.seed, prompt=info.prompt, width=w, height=h,
                   colors_nearest=cn, top10_coverage=round(cov, 4), clean=m.is_clean(cn, cov) and degenerate is None,
                   degenerate=degenerate, grid=SampleGrid(**sample.grid.to_json()), candidates=candidates,
                   scoring=Scoring(colors=score.colors, grid_error=score.grid_error, off_palette=score.off_palette,
                                   novelty=score.novelty, terms=_rounded(terms.as_dict()),
                                   tags=[None if v is None else round(v, 4) for v in terms.tags]),
                   label=label_of(info))
    return Outcome(entry, scoring.tobytes())


def process_sample(item: tuple[SampleInfo, str]) -> Outcome:
    """Process one sample (its SampleInfo, candidate stem) with the worker's job: its record or its error."""
    job = _JOB
    assert job is not None, "init_worker() first"
    info, stem = item
    rel = relative(info.path, job.base)
    try:
        return _measure(job, info, stem, rel)
    except (ValueError, OSError) as exc:
        return Outcome(SampleError(file=rel, error=str(exc)))
    except Exception as exc:  # noqa: BLE001 - one odd image must never stop the others
        return Outcome(SampleError(file=rel, error=f"cannot process ({type(exc).__name__}: {exc})"))
