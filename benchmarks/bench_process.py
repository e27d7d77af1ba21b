"""Throughput and memory of `bespoke process` on generated 512 px samples.

    .venv/bin/python benchmarks/bench_process.py [--samples 300] [--workers 2] [--memory-samples 2000]

1. Throughput: the same N files (degraded punks, shifted + JPEG-damaged, saved as PNG like SD samples)
   decoded by bare Pillow in one process, then processed with all methods + metrics (workers processes) as
   bespoke processes a run: the faithful grid and grid-palette candidates against the training palette, the
   scoring candidate and novelty against the training images (`--training`, default ../shared/bespoke_punks:
   the user's 203 punks and their 4019-colour palette; without it, 203 generated punks); the ratio
   process/decode is measured in one run. Target <= 2.
2. Memory: peak RSS of the main process and of one worker, in a fresh subprocess, for M/10 and M samples
   (names are symlinks to the N files, so 10 000 samples need no 10 000 renders). Target: flat.

CPU and memory of the workers: they are the fork server's children, not this process's, so after each run the
fork server is stopped and waited for (as at the end of a `bespoke process` command): its CPU and its workers'
then count in RUSAGE_CHILDREN, and each run pays the fork server's start, as every command does.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing.forkserver
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from PIL import Image  # noqa: E402

from bespoke.dataset.synthetic import make_punk  # noqa: E402
from bespoke.demo.degrade import degrade  # noqa: E402


def make_samples(folder: Path, count: int) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(count):
        image, _ = degrade(make_punk(i).pixels, "shifted", seed=i)
        path = folder / f"bench_e{1 + i % 10:06d}_{i % 7:02d}_20261122023155_{i}.png"
        image.save(path)
        paths.append(path)
    return paths


def decode_all(paths) -> tuple[float, float]:
    """(wall seconds, CPU seconds) of decoding every file with Pillow."""
    start, cpu = time.perf_counter(), time.process_time()
    for path in paths:
        with Image.open(path) as img:
            img.convert("RGB")
    return time.perf_counter() - start, time.process_time() - cpu


def cpu_now() -> float:
    """CPU seconds of this process plus its finished children (the fork server and, through it, the workers)."""
    import resource

    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return time.process_time() + children.ru_utime + children.ru_stime


def stop_fork_server() -> None:
    """Stop the fork server and wait for it, so that its CPU and its workers' count as this process's children
    (a private call of multiprocessing; a no-op when no fork server runs)."""
    stop = getattr(getattr(multiprocessing.forkserver, "_forkserver", None), "_stop", None)
    if stop is not None:
        stop()


def timed_process(folder: Path, workers: int, training: Path, methods: str | None = None):
    from bespoke.review.process import process_path
    from bespoke.review.request import DEFAULT_METHODS, ProcessOptions

    start, cpu = time.perf_counter(), cpu_now()
    report = process_path(folder, ProcessOptions(workers=workers, palette=str(training), training=str(training),
                                                 force=True, methods=methods or DEFAULT_METHODS)).report
    stop_fork_server()
    return report, time.perf_counter() - start, cpu_now() - cpu


MEMORY_CHILD = r"""
import json, multiprocessing.forkserver, resource, sys
from bespoke.review.process import process_path
from bespoke.review.request import ProcessOptions
report = process_path(sys.argv[1], ProcessOptions(workers=int(sys.argv[2]), palette=sys.argv[3],
                                                  training=sys.argv[3])).report
multiprocessing.forkserver._forkserver._stop()  # its workers' peak RSS then counts in RUSAGE_CHILDREN
print(json.dumps({"samples": len(report.samples),
                  "main_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
                  "worker_kb": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss}))
"""


def memory_run(source: list[Path], folder: Path, count: int, workers: int, training: Path) -> dict:
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(count):
        src = source[i % len(source)]
        os.symlink(src, folder / f"m_e{1 + i % 10:06d}_{i % 7:02d}_20261122023155_{i}.png")
    out = subprocess.run([sys.executable, "-c", MEMORY_CHILD, str(folder), str(workers), str(training)], check=True,
                         capture_output=True, text=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def training_folder(path: str | None, tmp: Path) -> Path:
    """The training punks to measure against: `path`, ../shared/bespoke_punks, or 203 generated punks."""
    folder = Path(path) if path else Path(__file__).resolve().parent.parent.parent / "shared" / "bespoke_punks"
    if folder.is_dir():
        return folder
    folder = tmp / "training"
    folder.mkdir()
    for i in range(203):
        Image.fromarray(make_punk(90_000 + i).pixels).save(folder / f"punk_{i:03d}.png")
    return folder


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--samples", type=int, default=300)
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--memory-samples", type=int, default=2000)
    parser.add_argument("--training", default=None, help="folder of 24 px training punks (palette + novelty)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        paths = make_samples(tmp / "samples", args.samples)
        training = training_folder(args.training, tmp)
        decode_all(paths[:20])  # warm the page cache and Pillow's plugins
        load = os.getloadavg()[0]
        decode, decode_cpu = decode_all(paths)
        _, single, single_cpu = timed_process(tmp / "samples", 1, training)
        report, process, process_cpu = timed_process(tmp / "samples", args.workers, training)
        _, lean, lean_cpu = timed_process(tmp / "samples", args.workers, training, "nearest,grid")
        n = len(report.samples)
        methods = len(report.methods)
        print(f"load average before: {load:.2f} on {os.cpu_count()} cores (other work shares them)")
        print(f"training set: {training} ({report.training.images} images, palette "
              f"{report.training.palette['size']} colours); methods {', '.join(report.methods)}")
        print(f"{'what':<44} {'wall s':>7} {'wall ms/img':>11} {'ratio':>6} {'CPU ms/img':>10}")
        print(f"{'bare Pillow decode (1 process)':<44} {decode:7.2f} {1000 * decode / n:11.2f} {1.0:6.2f} "
              f"{1000 * decode_cpu / n:10.2f}")
        for label, wall, cpu in ((f"process, {methods} methods + metrics, 1 worker", single, single_cpu),
                                 (f"process, {methods} methods + metrics, {args.workers} workers", process, process_cpu)):
            print(f"{label:<44} {wall:7.2f} {1000 * wall / n:11.2f} {wall / decode:6.2f} {1000 * cpu / n:10.2f}")
        label = f"process, nearest + grid + grid-palette, {args.workers} workers"
        print(f"{label:<44} {lean:7.2f} {1000 * lean / n:11.2f} {lean / decode:6.2f} {1000 * lean_cpu / n:10.2f}")
        for what, cpu in ((f"{methods} methods", process_cpu), ("the default candidates only", lean_cpu)):
            print(f"CPU-bound ratio with {args.workers} free cores, {what}: {cpu / args.workers / decode_cpu:.2f} "
                  f"(process CPU / {args.workers} / decode CPU; target <= 2; the wall ratios above include other "
                  "work's load)")
        if args.memory_samples:
            print(f"\n{'samples':>8} {'main peak MB':>13} {'worker peak MB':>15}")
            for count in (max(1, args.memory_samples // 10), args.memory_samples):
                row = memory_run(paths, tmp / f"mem{count}", count, args.workers, training)
                print(f"{row['samples']:8d} {row['main_kb'] / 1024:13.1f} {row['worker_kb'] / 1024:15.1f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
