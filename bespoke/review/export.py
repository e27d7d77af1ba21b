"""`bespoke export`: the chosen epoch's candidates in the formats pixel artists and asset pipelines take.

For one epoch (the best one unless asked) and the report's method, into one folder:

- `png/<name>.png`: each candidate at 24 px (x1), exactly as `process` wrote it;
- `png_x<S>/<name>.png`: the same scaled by an integer S with nearest neighbour (every pixel an SxS block);
- `palette.gpl` (GIMP/Aseprite/Krita palette) and `palette.hex` (Lospec's one-colour-per-line list): every
  colour of the exported candidates, most used first;
- `sheet.png` (x1, no gaps: frames at multiples of 24 px) and `sheet_x<S>.png`: a sprite sheet of them all;
- `manifest.json`: per image its file names, the sample it came from, prompt, seed, epoch, its frame on the
  sheet, colours and near-copy flag; what was left out (degenerate samples) and why.

Re-exporting replaces bespoke's own export; a folder holding anything else is refused (nothing is overwritten).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from bespoke.clock import now_iso
from bespoke.errors import UsageError
from bespoke.fsutil import atomic_write_json, atomic_write_text
from bespoke.review.build import view_of as load_any_view
from bespoke.review.records import Candidate, ProcessReport, Sample
from bespoke.review.report import output_dirs

EXPORT_KIND = "bespoke.export"
CELL = 24
DEFAULT_SCALE = 8
MAX_SCALE = 64


@dataclass(frozen=True)
class ExportOptions:
    """How to export: `scale` (the integer upscale of the second PNG set and the sheet), sprite sheet
    `columns` (None: a square-ish grid) and `out_dir` (None: `<run>/export/e<N>_<method>/`)."""

    scale: int = DEFAULT_SCALE
    columns: int | None = None
    out_dir: Path | None = None


@dataclass(frozen=True)
class Picked:
    """One candidate to export: its sample and its candidate in the report."""

    sample: Sample
    candidate: Candidate
    name: str


def pick(report: ProcessReport, epoch: int, method: str) -> tuple[list[Picked], list[dict[str, str]]]:
    """(candidates of `epoch` with `method` in prompt order, samples left out with the reason)."""
    samples = [s for s in report.samples if s.epoch == epoch]
    samples.sort(key=lambda s: (s.prompt_index is None, s.prompt_index or 0, s.seed or 0, s.file))
    picked: list[Picked] = []
    left_out: list[dict[str, str]] = []
    names: set[str] = set()
    for sample in samples:
        candidate = sample.candidates.get(method)
        if sample.degenerate:
            left_out.append({"sample": sample.file, "reason": f"degenerate ({sample.degenerate})"})
            continue
        if not candidate:
            left_out.append({"sample": sample.file, "reason": f"no {method} candidate"})
            continue
        name = _name(sample, epoch)
        while name in names:
            name += "_"
        names.add(name)
        picked.append(Picked(sample, candidate, name))
    return picked, left_out


def _name(sample: Sample, epoch: int) -> str:
    if sample.prompt_index is None:
        return Path(sample.file).stem
    seed = f"_s{sample.seed}" if sample.seed is not None else ""
    return f"e{epoch:03d}_p{sample.prompt_index:02d}{seed}"


def palette_of(images: list[np.ndarray]) -> list[tuple[tuple[int, int, int], int]]:
    """Every colour of `images` with its pixel count, most used first (ties: by colour)."""
    if not images:
        return []
    pixels = np.concatenate([img.reshape(-1, 3) for img in images])
    colours, counts = np.unique(pixels, axis=0, return_counts=True)
    order = sorted(range(len(colours)), key=lambda i: (-int(counts[i]), tuple(int(c) for c in colours[i])))
    return [((int(colours[i][0]), int(colours[i][1]), int(colours[i][2])), int(counts[i])) for i in order]


def gpl_text(palette: list[tuple[tuple[int, int, int], int]], name: str) -> str:
    """A GIMP palette (.gpl): header, then `R G B<TAB>#rrggbb (n px)` per colour."""
    lines = ["GIMP Palette", f"Name: {name}", "Columns: 8", "#"]
    lines += [f"{r:3d} {g:3d} {b:3d}\t#{r:02x}{g:02x}{b:02x} ({n} px)" for (r, g, b), n in palette]
    return "\n".join(lines) + "\n"


def hex_text(palette: list[tuple[tuple[int, int, int], int]]) -> str:
    """Lospec's .hex: one `rrggbb` per line."""
    return "".join(f"{r:02x}{g:02x}{b:02x}\n" for (r, g, b), _ in palette)


def sheet_of(images: list[np.ndarray], columns: int) -> tuple[Image.Image, list[tuple[int, int]]]:
    """A sprite sheet at x1 (frames touching, transparent where there is none) and each frame's (x, y)."""
    rows = max(1, math.ceil(len(images) / columns))
    sheet = Image.new("RGBA", (columns * CELL, rows * CELL), (0, 0, 0, 0))
    positions = []
    for i, img in enumerate(images):
        x, y = (i % columns) * CELL, (i // columns) * CELL
        sheet.paste(Image.fromarray(img, "RGB"), (x, y))
        positions.append((x, y))
    return sheet, positions


def check_target(out_dir: Path) -> None:
    """Refuse a folder that holds anything but an earlier bespoke export."""
    if not out_dir.exists():
        return
    if not out_dir.is_dir():
        raise UsageError(f"--out {out_dir}: is a file; give a folder for the export")
    if any(out_dir.iterdir()) and not (out_dir / "manifest.json").is_file():
        raise UsageError(f"--out {out_dir}: not empty and not a bespoke export (no manifest.json); "
                         "give a new or empty folder")


@dataclass
class ExportResult:
    """What `export_epoch` wrote."""

    out_dir: Path
    epoch: int
    method: str
    images: int
    colours: int
    manifest: dict


def _read(path: Path) -> np.ndarray:
    with Image.open(path) as img:
        return np.asarray(img.convert("RGB"))


def _remove_previous(out_dir: Path) -> None:
    """Delete the files an earlier export listed (only those): a re-export never leaves stale images."""
    try:
        old = json.loads((out_dir / "manifest.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return
    if old.get("kind") != EXPORT_KIND:
        raise UsageError(f"{out_dir / 'manifest.json'}: not a bespoke export manifest; give a new or empty folder")
    for rel in old.get("files") or []:
        target = (out_dir / rel).resolve()
        if target.is_relative_to(out_dir.resolve()) and target.is_file():
            target.unlink()


def _write_images(out_dir: Path, picked: list[Picked], images: list[np.ndarray], scale: int,
                  epoch: int) -> tuple[list[str], list[dict[str, Any]]]:
    """png/ and png_x<scale>/ of every picked candidate: (files written, manifest entries)."""
    files: list[str] = []
    entries = []
    for p, img in zip(picked, images, strict=True):
        small, big = f"png/{p.name}.png", f"png_x{scale}/{p.name}.png"
        for rel, arr in ((small, img), (big, np.kron(img, np.ones((scale, scale, 1), dtype=np.uint8)))):
            (out_dir / rel).parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(arr, "RGB").save(out_dir / rel)
            files.append(rel)
        novelty = p.candidate.novelty
        entries.append({"name": p.name, "png": small, f"png_x{scale}": big, "sample": Path(p.sample.file).name,
                        "prompt": p.sample.prompt, "prompt_index": p.sample.prompt_index, "seed": p.sample.seed,
                        "epoch": epoch, "colours": p.candidate.colors,
                        "near_copy": novelty.near_copy if novelty else None,
                        "nearest_training_image": novelty.nearest if novelty else None})
    return files, entries


def export_epoch(folder: Path, report: ProcessReport, epoch: int, method: str, options: ExportOptions | None = None,
                 label: str = "") -> ExportResult:
    """Export the `method` candidates of `epoch` (paths in `report` are relative to `folder`)."""
    options = options or ExportOptions()
    scale = options.scale
    if not 1 <= scale <= MAX_SCALE:
        raise UsageError(f"--scale {scale}: must be a whole number from 1 to {MAX_SCALE}")
    picked, left_out = pick(report, epoch, method)
    if not picked:
        raise UsageError(f"epoch {epoch}: no {method} candidates to export"
                         + (f" ({len(left_out)} left out: {left_out[0]['reason']})" if left_out else ""))
    out_dir = Path(options.out_dir) if options.out_dir else default_out(folder, epoch, method)
    check_target(out_dir)
    _remove_previous(out_dir)
    images = [_read(Path(folder) / p.candidate.file) for p in picked]
    files, entries = _write_images(out_dir, picked, images, scale, epoch)
    columns = options.columns or max(1, math.ceil(math.sqrt(len(images))))
    sheet, positions = sheet_of(images, columns)
    sheet.save(out_dir / "sheet.png")
    sheet.resize((sheet.width * scale, sheet.height * scale), Image.Resampling.NEAREST).save(
        out_dir / f"sheet_x{scale}.png")
    for entry, (x, y) in zip(entries, positions, strict=True):
        entry["frame"] = {"x": x, "y": y, "w": CELL, "h": CELL}
    palette = palette_of(images)
    atomic_write_text(out_dir / "palette.gpl", gpl_text(palette, label or f"bespoke e{epoch} {method}"))
    atomic_write_text(out_dir / "palette.hex", hex_text(palette))
    files += ["sheet.png", f"sheet_x{scale}.png", "palette.gpl", "palette.hex"]
    manifest = {"kind": EXPORT_KIND, "schema_version": 1, "created_at": now_iso(), "run": label or None,
                "epoch": epoch, "method": method, "scale": scale, "cell": CELL, "columns": columns,
                "palette_colours": len(palette), "images": entries, "left_out": left_out, "files": files}
    atomic_write_json(out_dir / "manifest.json", manifest)
    for name in ("palette.gpl", "palette.hex", "manifest.json"):  # readable like the PNGs beside them
        (out_dir / name).chmod(0o644)
    return ExportResult(out_dir, epoch, method, len(entries), len(palette), manifest)


def default_out(folder: Path, epoch: int, method: str) -> Path:
    """`<run>/export/e<N>_<method>/` (for a plain folder, inside its bespoke_process/)."""
    base = output_dirs(folder)[1].parent
    return base / "export" / f"e{epoch:03d}_{method}"


def export_run(path: Path, *, epoch: int | None = None, method: str | None = None,
               options: ExportOptions | None = None, process: bool = True) -> ExportResult:
    """Export a run's (or a plain folder's) candidates of `epoch` (default: its best epoch) and `method`
    (default: the method the review shows), processing the samples first when the report is stale."""
    view = load_any_view(Path(path), method=method, process=process)
    best = view.report.best.epoch if view.report.best is not None else None
    chosen = epoch if epoch is not None else best
    epochs = sorted({s.epoch for s in view.report.samples if s.epoch is not None})
    if chosen is None:
        raise UsageError(f"{path}: no best epoch in its report; pass --epoch (sampled: "
                         f"{', '.join(map(str, epochs)) or 'none'})")
    if chosen not in epochs:
        raise UsageError(f"--epoch {chosen}: {path} has samples of epochs {', '.join(map(str, epochs)) or 'none'}")
    if view.method is None:
        raise UsageError(f"{path}: its report has no candidates; run `bespoke process {path}`")
    return export_epoch(view.run_dir, view.report, chosen, view.method, options, label=view.name or view.run_id)
