"""Time `prepare_dataset`: cold build vs cache hit, per resolution, on 203 synthetic punks (and the real set if present).

    .venv/bin/python benchmarks/bench_prepare.py [--repeat 3] [--real ../shared/bespoke_punks]

Prints a table of median wall times and the cold/cached ratio measured in this run. No asserts: numbers only.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import tempfile
import time
from pathlib import Path

from bespoke.dataset.layout import RESOLUTIONS
from bespoke.dataset.prepare import prepare_dataset
from bespoke.dataset.synthetic import write_dataset


def measure(source: Path, resolution: int, layout: str, repeat: int) -> tuple[float, float]:
    cold, warm = [], []
    for _ in range(repeat):
        cache = Path(tempfile.mkdtemp(prefix="bench-prepare-"))
        try:
            start = time.perf_counter()
            prepare_dataset(source, resolution, cache_dir=cache, layout=layout)
            cold.append(time.perf_counter() - start)
            start = time.perf_counter()
            assert prepare_dataset(source, resolution, cache_dir=cache, layout=layout).cached
            warm.append(time.perf_counter() - start)
        finally:
            shutil.rmtree(cache, ignore_errors=True)
    return statistics.median(cold), statistics.median(warm)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--real", type=Path, default=Path(__file__).resolve().parents[1].parent / "shared" / "bespoke_punks")
    args = parser.parse_args()
    sets = []
    work = Path(tempfile.mkdtemp(prefix="bench-src-"))
    try:
        synthetic = work / "synthetic"
        write_dataset(synthetic, count=203, seed=0)
        sets.append(("synthetic x203", synthetic))
        if args.real.is_dir():
            sets.append(("real bespoke_punks", args.real))
        print(f"{'dataset':<20} {'R':>5} {'layout':<8} {'cold s':>8} {'cached s':>9} {'cold/cached':>12}")
        for label, source in sets:
            for resolution in RESOLUTIONS:
                for layout in ("stretch", "pad"):
                    cold, warm = measure(source, resolution, layout, args.repeat)
                    print(f"{label:<20} {resolution:>5} {layout:<8} {cold:>8.3f} {warm:>9.4f} {cold / warm:>11.0f}x")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
