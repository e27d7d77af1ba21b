"""The review folder's own images: every picture the page shows is a file inside the page's folder.

A review is something people copy home (`scp -r report/`), so nothing on the page may point outside its
folder: samples become small thumbnails (`img/<run>/s/`), candidates are copied at their 24 px size
(`img/<run>/c/`; the page scales them up pixelated), and the nearest training image of each candidate is copied
once (`img/train/`). Files are rewritten only when their source is newer, and files no longer shown are
removed, so re-running a review is cheap and the folder never grows stale.
"""

from __future__ import annotations

import re
import shutil
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from PIL import Image

from bespoke.cpus import available_cpus
from bespoke.review.records import ProcessReport

THUMB_PX = 288  # sample thumbnails: shown at 144 px (sharp on 2x screens) and at 288 px in the compare view
# WebP (lossy, q85) because a thumbnail is a resampled picture anyway: ~4 KB against ~15-30 KB as PNG, which
# keeps a 4-run sweep's folder and its --single-file page a few MB; every current browser shows WebP.
THUMB_QUALITY = 85
IMG_DIR = "img"
TRAIN_DIR = "train"
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")
AssetRun = tuple[str, Path, ProcessReport, dict[str, Any], str | None]  # key, folder, report, dataset, method


@dataclass
class RunAssets:
    """Page-relative URLs of one run's images: sample file (as in report.json) -> thumbnail, candidate file ->
    copy, training file name -> copy."""

    samples: dict[str, str] = field(default_factory=dict)
    candidates: dict[str, str] = field(default_factory=dict)
    training: dict[str, str] = field(default_factory=dict)


def safe_name(text: str) -> str:
    """`text` as one file/folder name that needs no URL quoting."""
    return _UNSAFE.sub("_", text).strip("._") or "run"


def _fresh(dest: Path, src: Path) -> bool:
    try:
        return dest.stat().st_mtime >= src.stat().st_mtime
    except OSError:
        return False


def _thumbnail(src: Path, dest: Path) -> bool:
    """A THUMB_PX thumbnail of `src` at `dest` (BOX filter: an honest average of the sample; WebP for
    samples, PNG for the 24 px training images, which stay exact); False when `src` is unreadable."""
    if _fresh(dest, src):
        return True
    try:
        with Image.open(src) as img:
            rgb = img.convert("RGB")
            if max(rgb.size) > THUMB_PX:
                rgb.thumbnail((THUMB_PX, THUMB_PX), Image.Resampling.BOX, reducing_gap=2.0)
            dest.parent.mkdir(parents=True, exist_ok=True)
            if dest.suffix == ".webp":
                rgb.save(dest, "WEBP", quality=THUMB_QUALITY, method=4)
            else:
                rgb.save(dest, "PNG")
        return True
    except (OSError, ValueError):
        return False


def _copy(src: Path, dest: Path) -> bool:
    if _fresh(dest, src):
        return True
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(src, dest)
        return True
    except OSError:
        return False


def training_image(dataset: dict[str, Any], name: str) -> Path | None:
    """Where the training image `name` (a candidate's novelty.nearest) is on this machine: the run's dataset
    (run.json `dataset`) source folder, else its prepared folder; None when neither has it."""
    for key in ("source", "prepared_dir"):
        folder = dataset.get(key)
        for file in (Path(name).name, f"{Path(name).name}.png"):  # a prepared dataset names its images bare
            path = Path(folder) / file if folder else None
            if path is not None and path.is_file():
                return path
    return None


def _jobs(run: AssetRun, page_dir: Path) -> tuple[list[tuple[str, Path, Path]], RunAssets]:
    """(kind, src, dest) per image of one run (candidates of the shown method only), and their URLs."""
    key, run_dir, report, dataset, method = run
    base = page_dir / IMG_DIR / key
    assets = RunAssets()
    jobs: list[tuple[str, Path, Path]] = []
    for sample in report.samples:
        rel = sample.file
        dest = base / "s" / (safe_name(Path(rel).stem) + ".webp")
        jobs.append(("thumb", run_dir / rel, dest))
        assets.samples[rel] = dest.relative_to(page_dir).as_posix()
        cand = sample.candidates.get(method) if method else None
        if cand is None:
            continue
        parts = Path(cand.file).parts
        folder = safe_name(parts[-2]) if len(parts) > 1 else "c"
        cdest = base / "c" / folder / (safe_name(Path(cand.file).stem) + ".png")
        jobs.append(("copy", run_dir / cand.file, cdest))
        assets.candidates[cand.file] = cdest.relative_to(page_dir).as_posix()
        nearest = cand.novelty.nearest if cand.novelty is not None else None
        if nearest and nearest not in assets.training:
            src = training_image(dataset, nearest)
            if src is not None:
                tdest = page_dir / IMG_DIR / TRAIN_DIR / (safe_name(Path(nearest).stem) + ".png")
                jobs.append(("thumb", src, tdest))
                assets.training[nearest] = tdest.relative_to(page_dir).as_posix()
    return jobs, assets


def _run(job: tuple[str, Path, Path]) -> bool:
    kind, src, dest = job
    return _thumbnail(src, dest) if kind == "thumb" else _copy(src, dest)


def build_assets(runs: list[AssetRun], page_dir: Path) -> dict[str, RunAssets]:
    """Write every image of `runs` ((key, run folder, report, run.json's dataset, shown method) each) below
    `page_dir/img/` and return their URLs per run key. Images that cannot be read get no URL (the page says
    so)."""
    page_dir = Path(page_dir)
    all_jobs: list[tuple[str, Path, Path]] = []
    by_key: dict[str, RunAssets] = {}
    for run in runs:
        jobs, assets = _jobs(run, page_dir)
        all_jobs += jobs
        by_key[run[0]] = assets
    with ThreadPoolExecutor(max_workers=min(4, available_cpus())) as pool:
        results = list(pool.map(_run, all_jobs))
    failed = {dest.relative_to(page_dir).as_posix() for job, ok in zip(all_jobs, results, strict=True) if not ok
              for dest in [job[2]]}
    for assets in by_key.values():
        for table in (assets.samples, assets.candidates, assets.training):
            for name in [n for n, url in table.items() if url in failed]:
                del table[name]
    _prune(page_dir / IMG_DIR, {job[2] for job in all_jobs})
    return by_key


def _prune(folder: Path, keep: set[Path]) -> None:
    """Remove images below `folder` the page no longer shows (earlier reviews of other runs or samples)."""
    if not folder.is_dir():
        return
    for path in folder.rglob("*"):
        if path.is_file() and path not in keep:
            path.unlink(missing_ok=True)
