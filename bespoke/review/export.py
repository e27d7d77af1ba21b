"""`bespoke export`: the chosen epoch's candidates in the formats pixel artists and asset pipelines take.

For one epoch (the best one unless asked) and the report's method, into one folder:

- `png/<name>.png`: each candidate at 24 px (x1), exactly as `process` wrote it;
- `png_x<S>/<name>.png`: the same scaled by an integer S with nearest neighbour (every pixel an SxS block);
- `palette.gpl` (GIMP/Aseprite/Krita palette) and `palette.hex` (Lospec's one-colour-per-line list): the
  exported candidates' colours with near-identical ones merged as the candidates merge them (one colour
  drawn a hair apart in two images is one palette colour; a one-pixel highlight of its own stays), most used
  first;
- `sheet.png` (x1, no gaps: frames at multiples of 24 px) and `sheet_x<S>.png`: a sprite sheet of them all;
- `manifest.json`: per image its file names, the sample it came from, prompt, seed, epoch, its frame on the
  sheet, colours and near-copy flag; what was left out (degenerate samples) and why.

`--kept` exports instead exactly the candidates marked keep on the vote page (bespoke.review.votes; any
epochs) into `<run>/export/kept/`, each with its epoch in its name and its manifest entry (`epoch` null at
the top, `kept` true).

Re-exporting replaces bespoke's own export; a folder holding anything else is refused (nothing is overwritten).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from bespoke.clock import now_iso
from bespoke.errors import UsageError
from bespoke.fsutil import atomic_write_json, atomic_write_text
from bespoke.pixels.merge import TOLERANCE, reduce_colours
from bespoke.review.build import Inputs
from bespoke.review.build import view_of as load_any_view
from bespoke.review.profiles import Profile
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


def pick_kept(report: ProcessReport, kept: list[tuple[str, str]]) -> tuple[list[Picked], list[dict[str, str]]]:
    """(the kept candidates: (sample file, method) pairs, in epoch and prompt order; those the report no
    longer has, with the reason)."""
    by_file = {s.file: s for s in report.samples}
    found, left_out = [], []
    for file, method in kept:
        sample = by_file.get(file)
        candidate = sample.candidates.get(method) if sample is not None else None
        if sample is None or candidate is None:
            left_out.append({"sample": file, "reason": f"marked keep, but the report has no {method} candidate "
                                                       "of it any more"})
        else:
            found.append((sample, candidate))
    found.sort(key=lambda sc: (sc[0].epoch or 0, sc[0].prompt_index or 0, sc[0].seed or 0, sc[0].file))
    picked: list[Picked] = []
    names: set[str] = set()
    for sample, candidate in found:
        name = _name(sample, sample.epoch or 0)
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


def merged_palette(images: list[np.ndarray]) -> list[tuple[tuple[int, int, int], int]]:
    """The palette of `images` with near-identical colours merged as the candidates merge them
    (reduce_colours: every colour within delta E TOLERANCE of its palette colour), each with the pixels it
    covers, most used first. Colours of different images that are one colour drawn a hair apart become one."""
    exact = palette_of(images)
    if not exact:
        return []
    colours = np.array([c for c, _ in exact], dtype=np.uint8)
    merged = reduce_colours(colours)  # each distinct colour once: no image's flatness hides a near twin
    counts: dict[tuple[int, int, int], int] = {}
    for rgb, (_, n) in zip(merged, exact, strict=True):
        key = (int(rgb[0]), int(rgb[1]), int(rgb[2]))
        counts[key] = counts.get(key, 0) + n
    return sorted(counts.items(), key=lambda item: (-item[1], item[0]))


def gpl_text(palette: list[tuple[tuple[int, int, int], int]], name: str, image_colours: int | None = None) -> str:
    """A GIMP palette (.gpl): header (with how many colours of the images it merges, when given), then
    `R G B<TAB>#rrggbb (n px)` per colour."""
    lines = ["GIMP Palette", f"Name: {name}", "Columns: 8"]
    if image_colours is not None:
        lines.append(f"# {len(palette)} colours: the {image_colours} colours of the images, near-identical ones "
                     f"(delta E {TOLERANCE:g}) merged")
    lines.append("#")
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
    """What `export_epoch` or `export_kept` wrote (`epoch` None for kept candidates of any epochs)."""

    out_dir: Path
    epoch: int | None
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


def _write_images(out_dir: Path, picked: list[Picked], images: list[np.ndarray],
                  scale: int) -> tuple[list[str], list[dict[str, Any]]]:
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
                        "epoch": p.sample.epoch, "colours": p.candidate.colors,
                        "near_copy": novelty.near_copy if novelty else None,
                        "nearest_training_image": novelty.nearest if novelty else None})
    return files, entries


def export_epoch(folder: Path, report: ProcessReport, epoch: int, method: str, options: ExportOptions | None = None,
                 label: str = "") -> ExportResult:
    """Export the `method` candidates of `epoch` (paths in `report` are relative to `folder`)."""
    picked, left_out = pick(report, epoch, method)
    if not picked:
        raise UsageError(f"epoch {epoch}: no {method} candidates to export"
                         + (f" ({len(left_out)} left out: {left_out[0]['reason']})" if left_out else ""))
    options = options or ExportOptions()
    out_dir = Path(options.out_dir) if options.out_dir else default_out(folder, epoch, method)
    heading = {"run": label or None, "epoch": epoch, "method": method, "kept": False}
    return _export(folder, picked, left_out, out_dir, options, label or f"bespoke e{epoch} {method}", heading)


def export_kept(folder: Path, report: ProcessReport, kept: list[tuple[str, str]],
                options: ExportOptions | None = None, label: str = "") -> ExportResult:
    """Export exactly the candidates marked keep ((sample file, method) pairs) into `<run>/export/kept/`."""
    if not kept:
        raise UsageError(f"{folder}: no candidate is marked keep; mark some on the vote page "
                         f"(`bespoke vote {folder}`: Q / P keep the left / right one)")
    picked, left_out = pick_kept(report, kept)
    if not picked:
        raise UsageError(f"{folder}: none of the {len(kept)} kept candidates is in its report any more "
                         f"({left_out[0]['reason']})")
    options = options or ExportOptions()
    out_dir = Path(options.out_dir) if options.out_dir else output_dirs(folder)[1].parent / "export" / "kept"
    methods = ",".join(sorted({m for _, m in kept}))
    heading = {"run": label or None, "epoch": None, "method": methods, "kept": True}
    return _export(folder, picked, left_out, out_dir, options, f"bespoke {label} kept".replace("  ", " "), heading)


def _export(folder: Path, picked: list[Picked], left_out: list[dict[str, str]], out_dir: Path,
            options: ExportOptions, palette_name: str, heading: dict[str, Any]) -> ExportResult:
    """Write png/, png_x<S>/, the sheets, palettes and manifest of `picked` into `out_dir` (`heading`: the
    manifest's run, epoch, method and kept)."""
    scale = options.scale
    if not 1 <= scale <= MAX_SCALE:
        raise UsageError(f"--scale {scale}: must be a whole number from 1 to {MAX_SCALE}")
    check_target(out_dir)
    _remove_previous(out_dir)
    images = [_read(Path(folder) / p.candidate.file) for p in picked]
    files, entries = _write_images(out_dir, picked, images, scale)
    columns = options.columns or max(1, math.ceil(math.sqrt(len(images))))
    sheet, positions = sheet_of(images, columns)
    sheet.save(out_dir / "sheet.png")
    sheet.resize((sheet.width * scale, sheet.height * scale), Image.Resampling.NEAREST).save(
        out_dir / f"sheet_x{scale}.png")
    for entry, (x, y) in zip(entries, positions, strict=True):
        entry["frame"] = {"x": x, "y": y, "w": CELL, "h": CELL}
    palette, image_colours = merged_palette(images), len(palette_of(images))
    atomic_write_text(out_dir / "palette.gpl", gpl_text(palette, palette_name, image_colours))
    atomic_write_text(out_dir / "palette.hex", hex_text(palette))
    files += ["sheet.png", f"sheet_x{scale}.png", "palette.gpl", "palette.hex"]
    manifest = {"kind": EXPORT_KIND, "schema_version": 1, "created_at": now_iso(), **heading, "scale": scale,
                "cell": CELL, "columns": columns, "palette_colours": len(palette), "image_colours": image_colours,
                "images": entries, "left_out": left_out, "files": files}
    atomic_write_json(out_dir / "manifest.json", manifest)
    for name in ("palette.gpl", "palette.hex", "manifest.json"):  # readable like the PNGs beside them
        (out_dir / name).chmod(0o644)
    return ExportResult(out_dir, heading["epoch"], heading["method"], len(entries), len(palette), manifest)


def default_out(folder: Path, epoch: int, method: str) -> Path:
    """`<run>/export/e<N>_<method>/` (for a plain folder, inside its bespoke_process/)."""
    base = output_dirs(folder)[1].parent
    return base / "export" / f"e{epoch:03d}_{method}"


def export_run(path: Path, *, epoch: int | None = None, method: str | None = None,
               options: ExportOptions | None = None, process: bool = True,
               kept: list[tuple[str, str]] | None = None, profile: Profile | None = None) -> ExportResult:
    """Export a run's (or a plain folder's) candidates of `epoch` (default: its best epoch) and `method`
    (default: the method the review shows), processing the samples first when the report is stale. With
    `kept` ((sample file, method) pairs marked keep), exactly those (with `method`, when given, instead of
    the method each was marked with). `profile`: the best epoch by its weights.

    A folder whose file names carry no epoch is one set: its "epoch" is 0 (the default, and the only one)."""
    view = load_any_view(Path(path), method=method, process=process, inputs=Inputs(profile=profile))
    if kept is not None:
        if epoch is not None:
            raise UsageError("--epoch with --kept: the kept candidates are exported whatever their epoch")
        marked = [(file, method or marked_with) for file, marked_with in kept]
        return export_kept(view.run_dir, view.report, marked, options, label=view.name or view.run_id)
    report = view.report
    epochs = sorted({s.epoch for s in report.samples if s.epoch is not None})
    if not epochs and report.samples:
        if epoch not in (None, 0):
            raise UsageError(f"--epoch {epoch}: {path} has no epochs (its file names carry none): its samples are "
                             "one set; leave out --epoch or pass --epoch 0")
        report, epochs, epoch = _one_set(report), [0], 0
    chosen = epoch if epoch is not None else (report.best.epoch if report.best is not None else None)
    if chosen is None:
        raise UsageError(f"{path}: no best epoch in its report; pass --epoch (sampled: "
                         f"{', '.join(map(str, epochs)) or 'none'})")
    if chosen not in epochs:
        raise UsageError(f"--epoch {chosen}: {path} has samples of epochs {', '.join(map(str, epochs)) or 'none'}")
    if view.method is None:
        raise UsageError(f"{path}: its report has no candidates; run `bespoke process {path}`")
    return export_epoch(view.run_dir, report, chosen, view.method, options, label=view.name or view.run_id)


def _one_set(report: ProcessReport) -> ProcessReport:
    """`report` with its unnumbered samples as epoch 0 (a folder of samples is one set)."""
    return replace(report, samples=[replace(s, epoch=0) for s in report.samples])
