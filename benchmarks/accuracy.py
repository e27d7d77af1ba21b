"""Accuracy and faithfulness of the 24 px candidates: synthetic degraded punks (with the truth) and the
user's real samples (no truth: how far each candidate moved the cells the model drew).

    .venv/bin/python benchmarks/accuracy.py [--punks 40] [--sizes 512,128] [--legacy ../main]

Synthetic: punks from bespoke.dataset.synthetic, degraded by bespoke.demo.degrade (nearest, soft, shifted) at
each size. Per level and method: exact % (pixels equal to the truth), within-10 % (RGB distance <= 10),
mean RGB distance, colours (mean) and colours / truth colours, cells moved beyond the tolerance (total) and the
largest move (delta E) against the cells as drawn. grid-palette uses the union palette of the punks under test;
it merges grid's colours into a palette colour only where two or more become one, so where the damage tinted
every colour alike (soft, shifted) it keeps grid's colours rather than move each area to its truth (the exact
share a whole-area snap reached there came from moving areas the user sees: benchmarks/candidate_noise.py).

Real: every image of `--real-samples` (default ../shared/samples) with the union palette of `--real-palette`
(default ../shared/bespoke_punks): colours (median, range), moved beyond, max/mean delta E, off-palette share.
Read at run time, never copied into the project.

`--legacy PATH` measures a second bespoke checkout (e.g. the code before the faithful candidates) the same
way in a subprocess and prints its rows beside, marked "today". Targets (issue 11): 0 cells moved beyond the
tolerance everywhere; real median colours <= 30; synthetic grid colours <= 1.3x truth and within-10 >= 95 %;
grid-palette exact >= 98 % on `nearest`.
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

from PIL import Image  # noqa: E402

from bespoke.dataset.synthetic import make_punk  # noqa: E402
from bespoke.demo.degrade import LEVELS, degrade  # noqa: E402
from bespoke.pixels import palette as pal  # noqa: E402
from bespoke.pixels.downscale import cell_colors, extract, pil_downscale  # noqa: E402
from bespoke.pixels.grid import find_grid  # noqa: E402

try:
    from bespoke.pixels.colour import rgb_to_lab  # noqa: E402
except ImportError:  # a checkout from before bespoke.pixels.colour (--legacy)
    from bespoke.pixels.palette import rgb_to_lab  # type: ignore[attr-defined,no-redef]  # noqa: E402

HERE = Path(__file__).resolve().parent.parent
# ../shared beside the checkout (a git worktree of it sits one level deeper)
SHARED = next((p for p in (HERE.parent / "shared", HERE.parent.parent / "shared") if p.is_dir()), HERE / "shared")
TOLERANCE = 5.0  # the reported tolerance (bespoke.pixels.merge.TOLERANCE), fixed here so both trees are judged alike


def _ncolors(a: np.ndarray) -> int:
    return len(np.unique(a.reshape(-1, 3), axis=0))


def _moves(cells: np.ndarray, out: np.ndarray) -> np.ndarray:
    return np.sqrt(((rgb_to_lab(cells) - rgb_to_lab(out)) ** 2).sum(axis=-1))


def synthetic(punks: list[np.ndarray], size: int, level: str, seed: int) -> dict[str, dict]:
    """Per method: exact, within10, dist, colours, ratio, moved_beyond, de_max over the punks."""
    palette = pal.Palette("dataset", colors=np.unique(np.concatenate([p.reshape(-1, 3) for p in punks]), axis=0))
    rows: dict[str, dict[str, list]] = {}
    for index, truth in enumerate(punks):
        image, _ = degrade(truth, level, seed=seed * 100_000 + index, size=size)
        arr = np.asarray(image)
        grid = find_grid(arr)
        cells = cell_colors(arr, grid)
        outputs = {"nearest": pil_downscale(image, "nearest"), "grid": extract(arr, grid, raw=cells)[0],
                   "grid-palette": extract(arr, grid, palette=palette, raw=cells)[0]}
        for method, out in outputs.items():
            d = np.sqrt(((out.astype(float) - truth.astype(float)) ** 2).sum(axis=2))
            moves = _moves(cells, out)
            row = rows.setdefault(method, {k: [] for k in ("exact", "within10", "dist", "colors", "ratio",
                                                             "moved_beyond", "de_max")})
            row["exact"].append((d == 0).mean())
            row["within10"].append((d <= 10).mean())
            row["dist"].append(d.mean())
            row["colors"].append(_ncolors(out))
            row["ratio"].append(_ncolors(out) / _ncolors(truth))
            row["moved_beyond"].append(int((moves > TOLERANCE + 1e-6).sum()))
            row["de_max"].append(float(moves.max()))
    return {m: {"exact": float(np.mean(r["exact"])), "within10": float(np.mean(r["within10"])),
                "dist": float(np.mean(r["dist"])), "colors": float(np.mean(r["colors"])),
                "ratio": float(np.mean(r["ratio"])), "moved_beyond": int(np.sum(r["moved_beyond"])),
                "de_max": float(np.max(r["de_max"]))} for m, r in rows.items()}


def real(samples: list[Path], palette_dir: Path) -> dict[str, dict]:
    """Per method on the real samples: colours (list), moved_beyond (total), de_max, de_mean, off-palette."""
    palette = pal.Palette("dataset", colors=pal.palette_from_folder(palette_dir))
    codes = set(map(tuple, palette.colors.tolist()))
    rows: dict[str, dict[str, list]] = {}
    for path in samples:
        with Image.open(path) as img:
            arr = np.asarray(img.convert("RGB"))
        grid = find_grid(arr)
        cells = cell_colors(arr, grid)
        outputs = [("grid", extract(arr, grid, raw=cells)[0]),
                   ("grid-palette", extract(arr, grid, palette=palette, raw=cells)[0])]
        for method, out in outputs:
            moves = _moves(cells, out)
            row = rows.setdefault(method, {k: [] for k in ("colors", "moved_beyond", "de_max", "de_mean", "off")})
            row["colors"].append(_ncolors(out))
            row["moved_beyond"].append(int((moves > TOLERANCE + 1e-6).sum()))
            row["de_max"].append(float(moves.max()))
            row["de_mean"].append(float(moves.mean()))
            row["off"].append(float(np.mean([tuple(c) not in codes for c in out.reshape(-1, 3).tolist()])))
    return {m: {"colors": r["colors"], "moved_beyond": int(np.sum(r["moved_beyond"])),
                "de_max": float(np.max(r["de_max"])), "de_mean": float(np.mean(r["de_mean"])),
                "off": float(np.mean(r["off"]))} for m, r in rows.items()}


def measure(args) -> dict:
    punks = [make_punk(args.seed * 10_000 + i).pixels for i in range(args.punks)]
    out: dict = {"synthetic": {}, "real": None,
                 "truth_colors": float(np.mean([_ncolors(p) for p in punks]))}
    for size in args.sizes:
        for level in LEVELS:
            out["synthetic"][f"{size}/{level}"] = synthetic(punks, size, level, args.seed)
    samples = sorted(Path(args.real_samples).glob("*.png")) if args.real_samples else []
    if samples and Path(args.real_palette).is_dir():
        out["real"] = real(samples, Path(args.real_palette))
    return out


def _legacy(args) -> dict | None:
    if not args.legacy:
        return None
    env = {**os.environ, "BESPOKE_TREE": str(Path(args.legacy).resolve()), "PYTHONPATH": str(Path(args.legacy).resolve())}
    cmd = [sys.executable, __file__, "--json", "--punks", str(args.punks), "--seed", str(args.seed),
           "--sizes", ",".join(map(str, args.sizes)), "--real-samples", str(args.real_samples or ""),
           "--real-palette", str(args.real_palette)]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, check=True)
    return json.loads(done.stdout)


def report(new: dict, old: dict | None) -> bool:
    """Print the tables; True when every target holds for the new tree."""
    print(f"synthetic: mean true colours per punk {new['truth_colors']:.1f}; tolerance delta E {TOLERANCE:g}")
    print(f"{'size/level':<13} {'method':<13} {'tree':<6} {'exact %':>8} {'<=10 %':>7} {'dist':>6} {'colours':>8} "
          f"{'x truth':>8} {'moved>tol':>9} {'max dE':>7}")
    ok = True
    for key, methods in new["synthetic"].items():
        for method, row in methods.items():
            for tree, r in (("new", row), ("today", (old or {}).get("synthetic", {}).get(key, {}).get(method))):
                if r is None or (tree == "today" and method == "nearest"):
                    continue
                print(f"{key:<13} {method:<13} {tree:<6} {100 * r['exact']:8.1f} {100 * r['within10']:7.1f} "
                      f"{r['dist']:6.2f} {r['colors']:8.1f} {r['ratio']:8.2f} {r['moved_beyond']:9d} {r['de_max']:7.1f}")
            if method == "nearest":
                continue
            ok &= row["moved_beyond"] == 0
            if method == "grid":
                ok &= row["ratio"] <= 1.3 and row["within10"] >= 0.95
            if method == "grid-palette" and key.endswith("/nearest"):
                ok &= row["exact"] >= 0.98
    if new["real"]:
        print(f"\nreal samples ({len(new['real']['grid']['colors'])}), union palette of the training punks")
        print(f"{'method':<13} {'tree':<6} {'colours median':>14} {'range':>9} {'moved>tol':>9} {'max dE':>7} "
              f"{'mean dE':>7} {'off-pal %':>9}")
        for method, row in new["real"].items():
            for tree, r in (("new", row), ("today", (old or {}).get("real", {}).get(method) if old else None)):
                if r is None:
                    continue
                print(f"{method:<13} {tree:<6} {np.median(r['colors']):14.0f} "
                      f"{min(r['colors']):>4}-{max(r['colors']):<4} {r['moved_beyond']:9d} {r['de_max']:7.1f} "
                      f"{r['de_mean']:7.2f} {100 * r['off']:9.1f}")
            ok &= row["moved_beyond"] == 0 and float(np.median(row["colors"])) <= 30
    print(f"\ntargets (new tree): {'PASS' if ok else 'FAIL'}")
    return ok


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--punks", type=int, default=40, help="synthetic punks per level")
    parser.add_argument("--sizes", default="512,128", help="sample sizes, comma separated")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--real-samples", default=str(SHARED / "samples"))
    parser.add_argument("--real-palette", default=str(SHARED / "bespoke_punks"))
    parser.add_argument("--legacy", default=None, help="another bespoke checkout to measure beside (\"today\")")
    parser.add_argument("--json", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    args.sizes = [int(s) for s in str(args.sizes).split(",") if s]
    new = measure(args)
    if args.json:
        print(json.dumps(new))
        return 0
    return 0 if report(new, _legacy(args)) else 1


if __name__ == "__main__":
    raise SystemExit(main())
