"""How long a review of a sweep takes: 4 runs x 10 epochs x 8 prompts, simulated, end to end.

    .venv/bin/python benchmarks/bench_review.py [--epochs 10] [--prompts 8] [--keep DIR]

Stages, each timed on its own: plan (prepare + configs, the four real runs), simulate (the samples),
process (every method + metrics, bespoke.process), then the review itself as `bespoke review` builds it
(reports loaded, contact sheets, thumbnails and candidate copies into the review folder, the page), a second
review (images up to date: only the page is rewritten) and `--single-file`. Wall seconds and CPU seconds
(this process + its children: process uses a worker pool, whose fork server is stopped and waited for after
each process stage so that its workers' CPU counts) are both shown: on a busy machine wall time grows, CPU time
does not.

Targets (issue 14): the review of 4 runs x 10 epochs x 8 prompts builds in < 10 s on a 2-core box, and
index.html stays under 1 MB (the images are files beside it; the whole folder and the single file are shown).
"""

from __future__ import annotations

import argparse
import multiprocessing.forkserver
import resource
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

TARGET_SECONDS = 10.0
TARGET_PAGE_MB = 1.0


def _cpu() -> float:
    own = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


class Timer:
    def __init__(self):
        self.rows: list[tuple[str, float, float, int]] = []

    def run(self, name: str, items: int, func):
        wall, cpu = time.perf_counter(), _cpu()
        result = func()
        self.rows.append((name, time.perf_counter() - wall, _cpu() - cpu, items))
        return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--prompts", type=int, default=8)
    parser.add_argument("--keep", type=Path, help="Build in this folder (kept) instead of a temporary one.")
    args = parser.parse_args()
    if args.keep:
        args.keep.mkdir(parents=True, exist_ok=True)
        run(args, args.keep)
    else:
        with tempfile.TemporaryDirectory(prefix="bench_review_") as tmp:
            run(args, Path(tmp))


def run(args, root: Path) -> None:
    """Build the sweep in `root` and print the timings."""
    from rich.table import Table

    from bespoke.console import console, out
    from bespoke.dataset.layout import RESOLUTIONS
    from bespoke.dataset.synthetic import write_dataset
    from bespoke.demo.demo import DATASET_NAME, demo_prompts
    from bespoke.demo.simulator import simulate_run
    from bespoke.review.build import review_runs
    from bespoke.review.process import process_path
    from bespoke.review.request import ProcessOptions
    from bespoke.run.plan import PlanRequest, plan_run
    from bespoke.settings import load_settings

    settings = load_settings().with_overrides(outputs_dir=root / "outputs", datasets_dir=root / "datasets",
                                              cache_dir=root / "cache")
    dataset = root / "datasets" / DATASET_NAME
    if not dataset.exists():
        write_dataset(dataset, 24, seed=0)
    prompts = root / "datasets" / f"prompts_{args.prompts}.txt"
    prompts.write_text(demo_prompts(args.prompts, 0), encoding="utf-8")

    timer = Timer()
    per_run = args.epochs + 1  # + e000000 (sample_at_first in the base preset)
    samples = len(RESOLUTIONS) * per_run * args.prompts

    def plan_all():
        return [plan_run(settings, PlanRequest(resolution=r, dataset=dataset, prompts=prompts,
                                               overrides=(f"max_train_epochs={args.epochs}",))) for r in RESOLUTIONS]

    plans = timer.run("plan (4 runs)", len(RESOLUTIONS), plan_all)
    runs = [p.paths.root for p in plans]
    if any(not p.created for p in plans):
        console.print("[yellow]runs exist already (--keep): simulate/process are skipped for them[/]")
    for run, resolution in zip(runs, RESOLUTIONS, strict=True):
        if not (run / "model" / "sample").exists():
            timer.run(f"simulate {resolution} px", per_run * args.prompts,
                      lambda run=run: simulate_run(run))

    def process(run):
        process_path(run, ProcessOptions(palette="dataset"))
        multiprocessing.forkserver._forkserver._stop()  # its workers' CPU then counts (see the docstring)

    for run, resolution in zip(runs, RESOLUTIONS, strict=True):
        timer.run(f"process {resolution} px", per_run * args.prompts, lambda run=run: process(run))
    review_dir = root / "outputs" / "review-bench"
    timer.run("review (sheets + images + page)", samples,
              lambda: review_runs(runs, out_dir=review_dir, process=False))
    timer.run("review again (images cached)", samples,
              lambda: review_runs(runs, out_dir=review_dir, process=False))
    single = timer.run("review --single-file", samples,
                       lambda: review_runs(runs, out_dir=review_dir, process=False, single_file=True)).single_file

    table = Table(title=f"review benchmark: {len(runs)} runs x {args.epochs} epochs (+e0) x {args.prompts} prompts "
                        f"= {samples} samples", title_justify="left")
    for name in ("stage", "items", "wall s", "cpu s", "wall ms/item", "share of wall"):
        table.add_column(name, justify="right" if name != "stage" else "left")
    total = sum(r[1] for r in timer.rows)
    for name, wall, cpu, items in timer.rows:
        table.add_row(name, str(items), f"{wall:.2f}", f"{cpu:.2f}", f"{1000 * wall / max(1, items):.1f}",
                      f"{wall / total:.0%}")
    review = next(r[1] for r in timer.rows if r[0].startswith("review ("))
    table.add_row("total", str(samples), f"{total:.2f}", f"{sum(r[2] for r in timer.rows):.2f}", "", "100%",
                  style="bold")
    out.print(table)
    page = (review_dir / "index.html").stat().st_size
    sizes = Table(title="review folder", title_justify="left")
    for name in ("part", "files", "MB"):
        sizes.add_column(name, justify="right" if name != "part" else "left")
    for part in ("img", "sheets"):
        files = [p for p in (review_dir / part).rglob("*") if p.is_file()]
        sizes.add_row(f"{part}/", str(len(files)), f"{sum(p.stat().st_size for p in files) / 1e6:.2f}")
    sizes.add_row("index.html", "1", f"{page / 1e6:.2f}")
    sizes.add_row("review.html (--single-file)", "1", f"{single.stat().st_size / 1e6:.2f}")
    out.print(sizes)
    out.print(f"review build: {review:.2f} s wall (target < {TARGET_SECONDS:.0f} s: "
              f"{'met' if review < TARGET_SECONDS else 'MISSED'}); index.html {page / 1e6:.2f} MB "
              f"(target < {TARGET_PAGE_MB:.0f} MB: {'met' if page / 1e6 < TARGET_PAGE_MB else 'MISSED'})",
              soft_wrap=True)


if __name__ == "__main__":
    main()
