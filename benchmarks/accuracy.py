"""Accuracy of every downscale method on degraded 512 px versions of generated 24 px punks.

    .venv/bin/python benchmarks/accuracy.py [--punks 40] [--size 512]

For each degradation (bespoke.degrade: nearest, soft, shifted) and method: % of the 576 pixels exact,
mean RGB distance to the original, % within distance 10, colours per image (mean), grid found (% of
images whose detected phase matches the true shift within 2 px). The palette for `grid-palette` is the
union of the colours of all punks in the set (what `--palette dataset` reads from a prepared dataset).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bespoke import palette as pal  # noqa: E402
from bespoke.degrade import LEVELS, degrade  # noqa: E402
from bespoke.downscale import PIL_METHODS, extract, pil_downscale  # noqa: E402
from bespoke.gridfind import find_grid  # noqa: E402
from bespoke.metrics import unique_colors  # noqa: E402
from bespoke.synthetic import make_punk  # noqa: E402

METHODS = (*PIL_METHODS, "grid", "grid-palette")


def evaluate(punks: list[np.ndarray], level: str, size: int = 512, seed: int = 0) -> dict[str, dict]:
    """Per method: exact %, mean distance, within-10 %, mean colours over the punks at `level`."""
    palette = pal.Palette("dataset", colors=np.unique(np.concatenate([p.reshape(-1, 3) for p in punks]), axis=0))
    stats = {m: {"exact": [], "dist": [], "within10": [], "colors": []} for m in METHODS}
    phase_ok = []
    for index, truth in enumerate(punks):
        image, (dx, dy) = degrade(truth, level, seed=seed * 100_000 + index, size=size)
        arr = np.asarray(image)
        grid = find_grid(arr)
        phase_ok.append(abs(grid.xs[0] - dx) <= 2 and abs(grid.ys[0] - dy) <= 2)
        outputs = {m: pil_downscale(image, m) for m in PIL_METHODS}
        outputs["grid"], raw = extract(arr, grid)
        outputs["grid-palette"], _ = extract(arr, grid, palette=palette, raw=raw)
        for method, out in outputs.items():
            d = np.sqrt(((out.astype(np.float64) - truth.astype(np.float64)) ** 2).sum(axis=2))
            s = stats[method]
            s["exact"].append((d == 0).mean())
            s["dist"].append(d.mean())
            s["within10"].append((d <= 10).mean())
            s["colors"].append(unique_colors(out))
    table = {m: {k: float(np.mean(v)) for k, v in s.items()} for m, s in stats.items()}
    table["_grid_found"] = float(np.mean(phase_ok))
    return table


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--punks", type=int, default=40)
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    punks = [make_punk(args.seed * 10_000 + i).pixels for i in range(args.punks)]
    truth_colors = np.mean([unique_colors(p) for p in punks])
    print(f"{args.punks} punks, {args.size} px, mean true colours {truth_colors:.1f}")
    print(f"{'degradation':<10} {'method':<13} {'exact %':>8} {'mean dist':>9} {'<=10 %':>7} {'colours':>8}")
    for level in LEVELS:
        start = time.perf_counter()
        table = evaluate(punks, level, args.size, args.seed)
        for method in METHODS:
            row = table[method]
            print(f"{level:<10} {method:<13} {100 * row['exact']:8.1f} {row['dist']:9.2f} "
                  f"{100 * row['within10']:7.1f} {row['colors']:8.1f}")
        print(f"{level:<10} grid phase found within 2 px: {100 * table['_grid_found']:.0f} %"
              f"  ({time.perf_counter() - start:.1f} s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
