"""What `process` costs per image against a bare Pillow decode of it, at 512 and 128 px, side by side.

    .venv/bin/python benchmarks/bench_cost.py [--samples 60] [--repeats 5] [--training DIR] [--profile DIR]
                                              [--methods M] [--stages]

Per resolution, the same N sample files (generated punks, softened, shifted and JPEG-damaged like SD samples,
saved as PNG) are, in this one process and interleaved so that the box's load falls on both alike:
- decoded by bare Pillow (open, load, RGB): the reference;
- processed by the worker code of `bespoke process` (bespoke.review.candidates.process_sample, the job
  `process FOLDER --training T` sends: its default methods, printed, plus grid-palette against the training
  palette, novelty against the training images, the scoring candidate's terms against the prior and a 9-tag
  prompt, the candidates written as PNG).
Times are CPU seconds of this process (time.process_time; the box is shared, wall time is not ours), the
median of `--repeats` passes over the N files, per image. "analysis" is process minus decode: the target is
analysis <= decode, so process <= 2x decode. `--stages` also times each step of a sample on its own (the
fastest of the passes, per image): where the analysis goes.

Training set: `--training` or ../shared/bespoke_punks (the user's 203 punks, their captions and 4019-colour
palette), else 203 generated punks with captions. `--profile DIR` writes a pyinstrument profile (text) of one
pass at each resolution (pyinstrument is on PyPI; not a bespoke dependency).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

import numpy as np  # noqa: E402
from PIL import Image  # noqa: E402

from bespoke.dataset.synthetic import make_punk, write_dataset  # noqa: E402
from bespoke.demo.degrade import degrade  # noqa: E402
from bespoke.review import candidates  # noqa: E402
from bespoke.review.request import ProcessOptions, resolve_request  # noqa: E402
from bespoke.review.samples import find_samples  # noqa: E402
from bespoke.review.scoring import build_scorer  # noqa: E402

STAGES = False
SHARED = next((p for p in (HERE.parent.parent / "shared", HERE.parent.parent.parent / "shared") if p.is_dir()),
              HERE / "shared")
PROMPT = ("pixel art, 24x24, portrait of bespoke punk lady, pink hair (#ff66cc), crown, hoop earrings, eyes "
          "(#663300), lips (#cc6666), neutral expression, skin (#f0c090), solid green background (#00ff00)")


def make_samples(folder: Path, count: int, size: int) -> None:
    folder.mkdir(parents=True)
    (folder / "prompts.txt").write_text(PROMPT + "\n")
    (folder / "sample").mkdir()
    for i in range(count):
        image, _ = degrade(make_punk(i).pixels, "shifted", seed=i, size=size)
        image.save(folder / "sample" / f"bench_e{1 + i % 10:06d}_00_20261122023155_{i}.png")


def training_folder(path: str | None, tmp: Path) -> Path:
    folder = Path(path) if path else SHARED / "bespoke_punks"
    if folder.is_dir():
        return folder
    folder = tmp / "training"
    write_dataset(folder, count=203, seed=9)
    return folder


def decode(path: Path) -> None:
    with Image.open(path) as img:
        img.load()
        if img.mode != "RGB":
            img.convert("RGB")


def job_for(folder: Path, training: Path, out: Path, methods: str | None = None) -> tuple[candidates.Job, list]:
    """The worker job `bespoke process FOLDER --training T --out OUT [--methods M]` sends (the scorer built
    once)."""
    options = ProcessOptions(training=str(training), out=str(out))
    request = resolve_request(folder, replace(options, methods=methods) if methods else options)
    infos = find_samples(folder)
    scorer = build_scorer(request.training_set, (i.prompt for i in infos))
    for method in request.methods:
        (out / "candidates" / method).mkdir(parents=True, exist_ok=True)
    job = candidates.Job(request.methods, request.palette, request.tolerance, request.layout, folder,
                         out / "candidates", request.training, request.training_palette, scorer)
    return job, [(info, info.name) for info in infos]


def cpu_per_image(work, items, repeats: int) -> float:
    """Median over `repeats` passes of the CPU ms per item of `work(item)`."""
    passes = []
    for _ in range(repeats):
        start = time.process_time()
        for item in items:
            work(item)
        passes.append(1000 * (time.process_time() - start) / len(items))
    return statistics.median(passes)


def stages(job: candidates.Job, items: list, repeats: int) -> dict[str, float]:
    """CPU ms per image of each step a worker takes, alone (the fastest of `repeats` passes)."""
    from bespoke.pixels import metrics as m
    from bespoke.pixels.downscale import PIL_METHODS, pil_downscale
    from bespoke.pixels.grid import find_grid
    from bespoke.pixels.terms import Context, candidate_terms

    decoded = [candidates._Decoded(candidates._open_rgb(info.path), job.layout) for info, _ in items]
    palette = job.palette
    shown = [d.grid_candidate(job.tolerance, palette) for d in decoded]
    pictures = [[np.ascontiguousarray(candidates._pixels(job, k, d)) for k in job.methods] for d in decoded]

    def metrics(sample: candidates._Decoded, outs: list) -> None:
        sample._once.clear()  # as a fresh sample: each distinct picture measured once, as process does
        for out in outs:
            candidates._measure_candidate(job, out, sample, None, "", with_novelty=False)
    context = Context(prior=job.scorer.reference, tags=job.scorer.tags(items[0][0].prompt), grid_error=3.0,
                      novelty_share=0.2)
    pil = [k for k in job.methods if k in PIL_METHODS]
    count = len(job.methods)
    steps = {
        "decode": lambda i: candidates._open_rgb(items[i][0].path),
        "find the grid": lambda i: find_grid(decoded[i].arr, job.layout, image=decoded[i].img),
        "cell colours": lambda i: candidates.cell_colors(decoded[i].arr, decoded[i].grid),
        "grid: merge the noise": lambda i: candidates.extract(decoded[i].arr, decoded[i].grid, raw=decoded[i].cells),
        "grid-palette: snap": lambda i: candidates.extract(decoded[i].arr, decoded[i].grid, palette=palette,
                                                           raw=decoded[i].cells, reduced=decoded[i].reduced(5.0)),
        f"Pillow {'+'.join(pil)}": lambda i: [m.nearest24(decoded[i].img) if k == "nearest" else
                                             pil_downscale(decoded[i].img, k) for k in pil],
        f"metrics of {count} candidates (no novelty)": lambda i: metrics(decoded[i], pictures[i]),
        "novelty (once)": lambda i: candidates.novelty(shown[i], job.training),
        "terms": lambda i: candidate_terms(shown[i], context),
        f"write {count} PNGs": lambda i: [candidates._write_png(job.candidates_dir / "grid" / "x.png", shown[i])
                                         for _ in range(count)],
    }
    out = {}
    for name, step in steps.items():
        best = float("inf")
        for _ in range(repeats):
            start = time.process_time()
            for i in range(len(items)):
                step(i)
            best = min(best, 1000 * (time.process_time() - start) / len(items))
        out[name] = best
    return out


def measure(size: int, args: argparse.Namespace, training: Path, tmp: Path) -> dict:
    count, repeats, profile = args.samples, args.repeats, args.profile
    folder = tmp / f"s{size}"
    make_samples(folder, count, size)
    job, items = job_for(folder, training, tmp / f"out{size}", args.methods)
    print(f"{size} px: methods {','.join(job.methods)}")
    candidates.init_worker(job)
    paths = [info.path for info, _ in items]
    for path in paths:  # the page cache and Pillow's plugins warm, the worker's first-call costs paid
        decode(path)
    candidates.process_sample(items[0])
    decode_ms, process_ms = [], []
    for _ in range(repeats):  # interleaved: the box's load falls on both alike
        decode_ms.append(cpu_per_image(decode, paths, 1))
        process_ms.append(cpu_per_image(candidates.process_sample, items, 1))
    errors = [o.entry for o in map(candidates.process_sample, items[:3]) if not hasattr(o.entry, "scoring")]
    if errors:
        raise SystemExit(f"{size} px: {errors[0]}")
    if profile is not None:
        from pyinstrument import Profiler

        profiler = Profiler(interval=0.0005)
        profiler.start()
        for item in items:
            candidates.process_sample(item)
        profiler.stop()
        profile.mkdir(parents=True, exist_ok=True)
        (profile / f"process_{size}.txt").write_text(profiler.output_text(unicode=True, show_all=False))
    return {"size": size, "decode": statistics.median(decode_ms), "process": statistics.median(process_ms),
            "stages": stages(job, items, repeats) if STAGES else {}}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--samples", type=int, default=60)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--sizes", default="512,128")
    parser.add_argument("--training", default=None)
    parser.add_argument("--profile", type=Path, default=None)
    parser.add_argument("--methods", default=None, help="process's --methods (default: process's default)")
    parser.add_argument("--stages", action="store_true", help="time each step of a sample on its own")
    args = parser.parse_args()
    global STAGES
    STAGES = args.stages
    import os

    with tempfile.TemporaryDirectory() as tmp:
        training = training_folder(args.training, Path(tmp))
        print(f"load average before: {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores; training set {training}")
        print(f"{'size':>5} {'decode ms':>10} {'process ms':>11} {'analysis ms':>12} {'process/decode':>15} "
              f"{'analysis/decode':>16}")
        for size in (int(s) for s in args.sizes.split(",")):
            row = measure(size, args, training, Path(tmp))
            analysis = row["process"] - row["decode"]
            print(f"{size:>5} {row['decode']:10.2f} {row['process']:11.2f} {analysis:12.2f} "
                  f"{row['process'] / row['decode']:15.2f} {analysis / row['decode']:16.2f}")
            for name, ms in row["stages"].items():
                print(f"{'':>5}   {name:<40} {ms:7.2f} ms")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
