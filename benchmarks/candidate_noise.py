"""Does the shown candidate add noise? On every real sample: the regions it splits, its colours against
`grid`, the largest move of a whole region -- the shown candidate being what review shows (`grid-palette`
with the training palette) and `grid` the reference.

    .venv/bin/python benchmarks/candidate_noise.py [--samples DIR ...] [--palette DIR] [--legacy PATH]
                                                   [--sheets DIR] [--rows]

Definitions, on the 24x24 candidates:
- a *region* is 4-connected cells of one colour in `grid`, two cells or more (what grid draws flat);
- *split*: a region whose cells take two or more colours in the shown candidate; its *split cells* are the
  cells not in the region's most common colour there;
- *colours*: the shown candidate's colours minus grid's;
- *whole move*: per region, delta E (CIE76) between grid's colour and the shown candidate's mean colour
  over the region, and the largest RGB level change; the largest over the regions;
- *moved > tol*: cells the shown candidate moved beyond merge.TOLERANCE from the colour the model drew.
Targets, on every sample: 0 regions split, no more colours than grid, whole move <= merge.INVISIBLE
(TARGET_MOVE in this script, so an older tree is judged alike), 0 cells moved beyond the tolerance.

Samples default to the user's real ones (../shared/samples, ../shared/runs/keep_tokens_3/sample: 512 px;
../shared/baseline/caption_fix_eval_24px: 24 px, each pixel a cell), read at run time, never copied into the
project. `--legacy PATH` measures another checkout the same way (a subprocess with `--json`) and prints its
summary beside, marked "before". `--sheets DIR` writes one contact sheet per 512 px sample: the sample | grid
| the shown candidate, 24 cells at 20 px each (for looking at, cell by cell).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np

TREE = Path(os.environ.get("BESPOKE_TREE") or Path(__file__).resolve().parent.parent)
sys.path.insert(0, str(TREE))

from PIL import Image, ImageDraw  # noqa: E402

from bespoke.pixels import palette as pal  # noqa: E402
from bespoke.pixels.downscale import cell_colors, extract  # noqa: E402
from bespoke.pixels.grid import find_grid  # noqa: E402

try:
    from bespoke.pixels.colour import rgb_to_lab  # noqa: E402
except ImportError:  # a checkout from before bespoke.pixels.colour (--legacy)
    from bespoke.pixels.palette import rgb_to_lab  # type: ignore[attr-defined,no-redef]  # noqa: E402

HERE = Path(__file__).resolve().parent.parent
# ../shared beside the checkout (a git worktree of it sits one level deeper)
SHARED = next((p for p in (HERE.parent / "shared", HERE.parent.parent / "shared") if p.is_dir()), HERE / "shared")
DEFAULT_SAMPLES = ("samples", "runs/keep_tokens_3/sample", "baseline/caption_fix_eval_24px")
TOLERANCE = 5.0  # merge.TOLERANCE, fixed here so both trees are judged alike
TARGET_MOVE = 1.0  # merge.INVISIBLE: the largest move of a flat region that an eye cannot see side by side
ZOOM = 20


def regions(picture: np.ndarray) -> list[np.ndarray]:
    """The 4-connected one-colour regions of two cells or more of a 24x24x3 picture, as flat cell indices."""
    h, w = picture.shape[:2]
    codes = (picture[..., 0].astype(np.int64) << 16 | picture[..., 1].astype(np.int64) << 8 | picture[..., 2]).ravel()
    label = np.full(h * w, -1)
    found = []
    for start in range(h * w):
        if label[start] >= 0:
            continue
        label[start] = start
        stack, members = [start], []
        while stack:
            cell = stack.pop()
            members.append(cell)
            y, x = divmod(cell, w)
            for ny, nx in ((y + 1, x), (y - 1, x), (y, x + 1), (y, x - 1)):
                other = ny * w + nx
                if 0 <= ny < h and 0 <= nx < w and label[other] < 0 and codes[other] == codes[cell]:
                    label[other] = start
                    stack.append(other)
        if len(members) >= 2:
            found.append(np.array(members))
    return found


def noise(grid: np.ndarray, shown: np.ndarray, cells: np.ndarray) -> dict:
    """What `shown` does to the regions `grid` draws flat (module docstring), and how far it moved the cells."""
    flat_grid, flat_shown = grid.reshape(-1, 3), shown.reshape(-1, 3)
    lab_grid, lab_shown = rgb_to_lab(flat_grid), rgb_to_lab(flat_shown)
    split = split_cells = 0
    move_de = move_rgb = 0.0
    for members in regions(grid):
        _, counts = np.unique(flat_shown[members], axis=0, return_counts=True)
        if len(counts) > 1:
            split += 1
            split_cells += int(len(members) - counts.max())
        move_de = max(move_de, float(np.linalg.norm(lab_shown[members].mean(axis=0) - lab_grid[members[0]])))
        levels = np.abs(flat_shown[members].astype(float).mean(axis=0) - flat_grid[members[0]].astype(float))
        move_rgb = max(move_rgb, float(levels.max()))
    moved = np.sqrt(((rgb_to_lab(cells.reshape(-1, 3)) - lab_shown) ** 2).sum(axis=1))
    return {"split": split, "split_cells": split_cells, "grid_colours": _ncolours(grid),
            "shown_colours": _ncolours(shown), "move_de": round(move_de, 2), "move_rgb": round(move_rgb, 1),
            "moved_beyond": int((moved > TOLERANCE + 1e-6).sum())}


def _ncolours(picture: np.ndarray) -> int:
    return len(np.unique(picture.reshape(-1, 3), axis=0))


def _sheet(path: Path, image: Image.Image, grid: np.ndarray, shown: np.ndarray, out: Path) -> None:
    side = 24 * ZOOM
    sheet = Image.new("RGB", (3 * side + 20, side + 18), "white")
    draw = ImageDraw.Draw(sheet)
    tiles = [("sample", image.resize((side, side), Image.Resampling.LANCZOS)),
             (f"grid {_ncolours(grid)}", Image.fromarray(grid).resize((side, side), Image.Resampling.NEAREST)),
             (f"shown {_ncolours(shown)}", Image.fromarray(shown).resize((side, side), Image.Resampling.NEAREST))]
    for i, (label, tile) in enumerate(tiles):
        sheet.paste(tile, (i * (side + 10), 18))
        draw.text((i * (side + 10), 3), f"{path.name[:48]}  {label}", fill="black")
    sheet.save(out / f"{path.stem}.png")


def measure(folders: list[Path], palette_dir: Path, sheets: Path | None) -> dict[str, list[dict]]:
    """Per folder, per sample: noise() of the shown candidate (grid-palette, the training palette) against grid."""
    palette = pal.Palette("dataset", colors=pal.palette_from_folder(palette_dir))
    out: dict[str, list[dict]] = {}
    for folder in folders:
        rows = out.setdefault(str(folder), [])
        for path in sorted(folder.glob("*.png")):
            with Image.open(path) as img:
                image = img.convert("RGB")
            arr = np.asarray(image)
            grid_found = find_grid(arr)
            cells = cell_colors(arr, grid_found)
            grid = extract(arr, grid_found, raw=cells)[0]
            shown = extract(arr, grid_found, palette=palette, raw=cells)[0]
            rows.append({"file": path.name, "size": image.width, **noise(grid, shown, cells)})
            if sheets is not None and image.width >= 48:
                _sheet(path, image, grid, shown, sheets)
    return out


def summary(rows: list[dict]) -> dict:
    split = [r["split_cells"] for r in rows if r["split"]]
    return {"samples": len(rows), "with_split": len(split), "split_cells_median": float(np.median(split)) if split else 0,
            "more_colours": sum(r["shown_colours"] > r["grid_colours"] for r in rows),
            "fewer_colours": sum(r["shown_colours"] < r["grid_colours"] for r in rows),
            "colours_median": (float(np.median([r["grid_colours"] for r in rows])),
                               float(np.median([r["shown_colours"] for r in rows]))),
            "move_de_max": max(r["move_de"] for r in rows), "move_rgb_max": max(r["move_rgb"] for r in rows),
            "moved_beyond": sum(r["moved_beyond"] for r in rows)}


def _legacy(args) -> dict | None:
    if not args.legacy:
        return None
    tree = str(Path(args.legacy).resolve())
    cmd = [sys.executable, __file__, "--json", "--palette", str(args.palette), "--samples", *map(str, args.samples)]
    done = subprocess.run(cmd, env={**os.environ, "BESPOKE_TREE": tree, "PYTHONPATH": tree}, capture_output=True,
                          text=True, check=True)
    return json.loads(done.stdout)


def report(new: dict[str, list[dict]], old: dict[str, list[dict]] | None, rows: bool) -> bool:
    """Print per folder the summary (and with `rows` every sample); True when every target holds for this tree."""
    ok = True
    print(f"{'folder':<34} {'tree':<7} {'n':>3} {'split':>5} {'cells':>5} {'more col':>8} {'fewer':>5} "
          f"{'colours grid/shown':>18} {'move dE':>7} {'RGB':>5} {'moved>tol':>9}")
    for folder, samples in new.items():
        for tree, data in (("now", samples), ("before", (old or {}).get(folder))):
            if not data:
                continue
            s = summary(data)
            cols = f"{s['colours_median'][0]:.0f}/{s['colours_median'][1]:.0f}"
            print(f"{Path(folder).name[:34]:<34} {tree:<7} {s['samples']:3d} {s['with_split']:5d} "
                  f"{s['split_cells_median']:5.0f} {s['more_colours']:8d} {s['fewer_colours']:5d} {cols:>18} "
                  f"{s['move_de_max']:7.2f} {s['move_rgb_max']:5.1f} {s['moved_beyond']:9d}")
        s = summary(samples)
        ok &= s["with_split"] == 0 and s["more_colours"] == 0 and s["move_de_max"] <= TARGET_MOVE + 1e-6
        ok &= s["moved_beyond"] == 0
        if rows:
            for r in samples:
                print(f"    {r['file'][:44]:<44} split {r['split']:2d} ({r['split_cells']:3d} cells) colours "
                      f"{r['grid_colours']:3d} -> {r['shown_colours']:3d}  move dE {r['move_de']:5.2f} "
                      f"RGB {r['move_rgb']:5.1f}")
    print("\nsplit = samples with a region split (cells: median split cells among them); more/fewer col = samples "
          f"with more/fewer colours than grid; move = largest whole-region move\ntargets (this tree): "
          f"{'PASS' if ok else 'FAIL'}")
    return ok


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--samples", nargs="+", type=Path, default=[SHARED / s for s in DEFAULT_SAMPLES])
    parser.add_argument("--palette", type=Path, default=SHARED / "bespoke_punks")
    parser.add_argument("--legacy", default=None, help="another bespoke checkout to measure beside (\"before\")")
    parser.add_argument("--sheets", type=Path, default=None, help="write contact sheets of the 512 px samples here")
    parser.add_argument("--rows", action="store_true", help="print every sample")
    parser.add_argument("--json", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    folders = [f for f in args.samples if f.is_dir()]
    if not folders or not args.palette.is_dir():
        print(f"no samples or no palette folder ({', '.join(map(str, args.samples))}; {args.palette}): nothing to measure")
        return 0
    if args.sheets is not None:
        args.sheets.mkdir(parents=True, exist_ok=True)
    new = measure(folders, args.palette, args.sheets)
    if args.json:
        print(json.dumps(new))
        return 0
    return 0 if report(new, _legacy(args), args.rows) else 1


if __name__ == "__main__":
    raise SystemExit(main())
