"""Novelty: its cost per candidate against the training images, and the data behind NEAR_COPY.

    .venv/bin/python benchmarks/bench_novelty.py [--training ../shared/bespoke_punks] [--samples ../shared/samples]

1. Cost: `novelty()` of 24 px candidates against every training image (the user's 203 punks when
   ../shared is present, else 203 generated punks), median over repeated runs, ms per candidate. Target < 1 ms.
   Also `distinct_designs` of an epoch of 8 and of 64 candidates.
2. Threshold: the share of matching cells (at MATCH_TOLERANCE) between each training punk and its nearest
   *other* training punk -- split into different designs and variants of one design (same number or same
   name stem: lad_054_sterling / sterlingglasses) -- and between each real sample's default candidate and its
   nearest training punk; and, at 5 and at 8 delta E, generated punks degraded like SD samples against their
   own originals (what a copy looks like). NEAR_COPY must lie above the distinct designs and real samples
   and below the copies.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from PIL import Image  # noqa: E402

from bespoke.dataset.synthetic import make_punk  # noqa: E402
from bespoke.demo.degrade import degrade  # noqa: E402
from bespoke.pixels.downscale import extract  # noqa: E402
from bespoke.pixels.grid import find_grid  # noqa: E402
from bespoke.pixels.novelty import (  # noqa: E402
    MATCH_TOLERANCE,
    NEAR_COPY,
    TrainingSet,
    distinct_designs,
    novelty,
    read_folder,
    shares,
)

SHARED = ROOT.parent / "shared"


def _same_design(a: str, b: str) -> bool:
    (na, _, ta), (nb, _, tb) = (x.split(".")[0].partition("_")[2].partition("_") for x in (a, b))
    return na == nb or ta[:6].lower() == tb[:6].lower()


def _candidate(image: Image.Image) -> np.ndarray:
    arr = np.asarray(image.convert("RGB"))
    return extract(arr, find_grid(arr))[0]


def cost(training: TrainingSet, candidates: list[np.ndarray], repeats: int) -> tuple[float, float]:
    """(wall, CPU) ms per candidate of novelty() against the whole training set, each the median of
    `repeats` runs; CPU time is what the machine's other work cannot inflate."""
    novelty(candidates[0], training)
    wall, cpu = [], []
    for _ in range(repeats):
        start, start_cpu = time.perf_counter(), time.process_time()
        for c in candidates:
            novelty(c, training)
        wall.append((time.perf_counter() - start) / len(candidates))
        cpu.append((time.process_time() - start_cpu) / len(candidates))
    return 1000 * float(np.median(wall)), 1000 * float(np.median(cpu))


def nearest_others(training: TrainingSet, images: list[np.ndarray]) -> tuple[list[float], list[float]]:
    """(distinct designs, variants): each training image's share with its nearest other one."""
    distinct, variants = [], []
    for i, image in enumerate(images):
        s = shares(image, training)
        s[i] = -1
        j = int(np.argmax(s))
        (variants if _same_design(training.names[i], training.names[j]) else distinct).append(float(s[j]))
    return distinct, variants


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--training", default=str(SHARED / "bespoke_punks"))
    parser.add_argument("--samples", default=str(SHARED / "samples"))
    parser.add_argument("--repeats", type=int, default=20)
    args = parser.parse_args()
    folder = Path(args.training)
    if folder.is_dir():
        training = read_folder(folder)
        images = [np.asarray(Image.open(folder / n).convert("RGB")) for n in training.names]
        source = str(folder)
    else:
        images = [make_punk(i).pixels for i in range(203)]
        training = TrainingSet.from_arrays([f"gen_{i}" for i in range(203)], images)
        source = "203 generated punks (../shared absent)"
    print(f"training set: {len(training)} images from {source}; match tolerance delta E {MATCH_TOLERANCE:g}, "
          f"near copy at share >= {NEAR_COPY}")
    candidates = [make_punk(5000 + i).pixels for i in range(50)]
    wall, per = cost(training, candidates, args.repeats)
    print(f"load average: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    print(f"\n{'what':<52} {'wall ms':>8} {'CPU ms':>8}")
    print(f"{'novelty() per candidate vs ' + str(len(training)) + ' images':<52} {wall:8.3f} {per:8.3f}   "
          f"target CPU < 1: {'PASS' if per < 1 else 'FAIL'}")
    for n in (8, 64):
        epoch = [make_punk(6000 + i).pixels for i in range(n)]
        start = time.perf_counter()
        distinct_designs(epoch)
        print(f"{'distinct_designs of an epoch of ' + str(n) + ' candidates':<52} "
              f"{1000 * (time.perf_counter() - start):8.2f}")

    distinct, variants = nearest_others(training, images)
    print(f"\nshare of cells matching the nearest other training image (n={len(images)}):")
    allv = np.array(distinct + variants)
    print(f"  all: median {np.median(allv):.2f}, p90 {np.percentile(allv, 90):.2f}")
    print(f"  different designs ({len(distinct)}): max {max(distinct):.2f}")
    if variants:
        print(f"  variants of one design ({len(variants)}): {min(variants):.2f}-{max(variants):.2f}, "
              f"{sum(v >= NEAR_COPY for v in variants)} at or above {NEAR_COPY}")
    samples = sorted(Path(args.samples).glob("*.png")) if Path(args.samples).is_dir() else []
    real = [float(shares(_candidate(Image.open(p)), training).max()) for p in samples]
    if real:
        print(f"  real samples' default candidates ({len(real)}): {min(real):.2f}-{max(real):.2f}")
    own = [make_punk(7000 + i).pixels for i in range(20)]
    own_set = TrainingSet.from_arrays([str(i) for i in range(20)], own)
    copies = [_candidate(degrade(p, "soft", seed=i)[0]) for i, p in enumerate(own)]
    for tol in (5.0, MATCH_TOLERANCE):
        got = [float(shares(c, own_set, tol)[i]) for i, c in enumerate(copies)]
        print(f"  copies (generated punks through 'soft' SD-like damage) at delta E {tol:g}: "
              f"{min(got):.2f}-{max(got):.2f}")
    ok = max(distinct) < NEAR_COPY and (not real or max(real) < NEAR_COPY) and per < 1
    print(f"\nthreshold above every distinct design and real sample, cost < 1 ms: {'PASS' if ok else 'FAIL'}")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
