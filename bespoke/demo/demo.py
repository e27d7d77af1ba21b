"""`bespoke demo`: the whole pipeline on data it makes itself, no GPU, in seconds.

Synthetic punks -> prepare + plan the four real runs (512/256/128/64, validated exactly as for training,
with the argv that would launch them) -> per-epoch samples from the SIMULATOR (labelled as such in the
terminal, run.json and the report) -> process -> one review of the sweep. Re-running reuses what is there
(the same config finds the same run folder); nothing the user made is deleted or overwritten. A demo stopped
while simulating (Ctrl-C) resumes: the partial run's samples are kept aside and it is simulated again.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

from bespoke import progress
from bespoke.dataset.layout import RESOLUTIONS
from bespoke.dataset.synthetic import make_punk, write_dataset
from bespoke.demo.simulator import simulate_run
from bespoke.errors import RunError, UsageError
from bespoke.fsutil import atomic_write_text
from bespoke.kohya.launch import format_command
from bespoke.review.build import ReviewResult, review_runs, sample_files
from bespoke.review.process import current_report
from bespoke.run.manifest import load_manifest, save_manifest
from bespoke.run.paths import RunPaths
from bespoke.run.plan import PlanRequest, plan_run
from bespoke.run.resume import set_aside_model_dir
from bespoke.settings import Settings

DEFAULT_OUT = "bespoke_demo"
DATASET_NAME = "synthetic_punks"
DATASET_SIZE = 24
# the historical metric's method beside the grid extractor (process adds grid-palette with the palette);
# `bespoke process` offers box/bilinear/lanczos too, the demo leaves them out to stay quick
DEMO_METHODS = ("nearest", "grid")
NEGATIVE = "blurry, smooth, gradients, antialiased, photography, realistic, 3d render"


@dataclass
class DemoRun:
    """One run of the demo sweep and what the demo did to it this time."""

    resolution: int
    run_dir: Path
    run_id: str
    argv: list[str]
    planned_now: bool
    simulated_now: bool = False
    processed_now: bool = False


@dataclass
class DemoResult:
    """Where everything went and how long each stage took (seconds)."""

    out: Path
    dataset: Path
    prompts_file: Path
    runs: list[DemoRun]
    html: Path
    sd_scripts_placeholder: bool
    review: ReviewResult
    timings: dict = field(default_factory=dict)


def demo_prompts(count: int, seed: int) -> str:
    """A prompt file of `count` prompts: the captions of the dataset's own punks, each with that punk's seed
    (so the simulator draws the punk the prompt describes). No --w/--h: the preset's sample size applies."""
    lines = [f"# bespoke demo prompts: captions of the synthetic dataset (seed {seed}), fixed seeds", ""]
    for index in range(count):
        punk_seed = seed * 10_000 + index  # the seed write_dataset gives punk `index`
        punk = make_punk(punk_seed)
        lines.append(f"# {punk.name}")
        lines.append(f"{punk.caption} --n {NEGATIVE} --d {punk_seed} --s 30 --l 7.5")
    return "\n".join(lines) + "\n"


def _ensure_dataset(folder: Path, seed: int) -> bool:
    """Write the synthetic dataset unless the folder already has images (never overwrite); True if written."""
    if folder.is_dir() and any(folder.glob("*.png")):
        return False
    write_dataset(folder, count=DATASET_SIZE, seed=seed)
    return True


def _ensure_prompts(path: Path, text: str) -> None:
    if path.exists():
        if path.read_text(encoding="utf-8") != text:
            raise RunError(f"{path}: exists with other content; bespoke demo never overwrites it "
                           "(move it away or use another --out)")
        return
    atomic_write_text(path, text)


def _check_sizes(epochs: int, prompts: int, resolutions: tuple[int, ...]) -> None:
    if not 1 <= epochs <= 100:
        raise UsageError(f"--epochs {epochs}: choose 1..100")
    if not 1 <= prompts <= 64:
        raise UsageError(f"--prompts {prompts}: choose 1..64")
    bad = [r for r in resolutions if r not in RESOLUTIONS]
    if bad or not resolutions:
        raise UsageError(f"demo resolutions {bad or '(none)'}: choose from {', '.join(map(str, RESOLUTIONS))}")


def _plan_runs(settings: Settings, dataset: Path, prompts_file: Path, epochs: int,
               resolutions: tuple[int, ...]) -> list[DemoRun]:
    """The four real run configs, planned and validated exactly as for training (never launched)."""
    runs: list[DemoRun] = []
    for resolution in resolutions:
        request = PlanRequest(resolution=resolution, dataset=dataset, overrides=(f"max_train_epochs={epochs}",),
                              prompts=prompts_file)
        plan = plan_run(settings, request, demo=True)
        runs.append(DemoRun(resolution, plan.paths.root, plan.run_id, list(plan.argv), plan.created))
        command = format_command(plan.argv, plan.env_overrides, cwd=plan.paths.root)
        progress.say(f"{'planned' if plan.created else 'found  '} {plan.run_id}: {command}")
    return runs


def _simulate(runs: list[DemoRun], seed: int) -> None:
    for run in runs:
        manifest = load_manifest(run.run_dir)
        if not manifest.demo and not manifest.simulated:
            raise RunError(f"{run.run_dir}: a real run (not planned by the demo) is in the demo's outputs; the demo "
                           "never fills a real run with simulated samples: use another --out")
        if manifest.simulated and manifest.status != "finished":
            # an earlier demo was stopped while simulating: keep what it drew aside and simulate again
            moved = set_aside_model_dir(RunPaths(run.run_dir).model_dir)
            manifest.status = "planned"
            save_manifest(run.run_dir, manifest)
            progress.say(f"{run.run_id}: resuming the demo (stopped while simulating); partial samples kept in "
                f"{moved.name if moved else '-'}")
        if manifest.status == "planned" and not sample_files(run.run_dir):
            simulate_run(run.run_dir, seed=seed)
            run.simulated_now = True
            progress.say(f"SIMULATED samples for {run.run_id} (no model trained)")


def _process(runs: list[DemoRun]) -> None:
    for run in runs:
        done = current_report(run.run_dir, methods=DEMO_METHODS)
        run.processed_now = done is not None and not done.reused


class _Stopwatch:
    """Seconds per named stage."""

    def __init__(self) -> None:
        self.timings: dict[str, float] = {}
        self.started = time.perf_counter()

    def lap(self, name: str) -> None:
        now = time.perf_counter()
        self.timings[name] = now - self.started
        self.started = now


def run_demo(
    settings: Settings, out: Path | str | None = None, *, epochs: int | None = None, prompts: int | None = None,
    quick: bool = False, resolutions: tuple[int, ...] = RESOLUTIONS, seed: int = 0,
) -> DemoResult:
    """Run the demo into `out` (default ./bespoke_demo) and return where the review is; what it does on the way
    is said through bespoke.progress."""
    epochs = int(epochs if epochs is not None else (4 if quick else 10))
    prompts = int(prompts if prompts is not None else (4 if quick else 8))
    _check_sizes(epochs, prompts, resolutions)
    out = Path(out or Path.cwd() / DEFAULT_OUT).expanduser().resolve()
    if out.exists() and not out.is_dir():
        raise UsageError(f"--out {out}: is a file, not a folder")
    demo_settings = settings.with_overrides(outputs_dir=out / "outputs", datasets_dir=out / "datasets",
                                            cache_dir=out / ".cache")
    clock = _Stopwatch()
    dataset = out / "datasets" / (DATASET_NAME if seed == 0 else f"{DATASET_NAME}_seed{seed}")
    written = _ensure_dataset(dataset, seed)
    progress.say(f"dataset: {dataset} ({'generated ' + str(DATASET_SIZE) + ' synthetic punks' if written else 'reused'})")
    prompts_file = out / "datasets" / f"demo_prompts_{prompts}_seed{seed}.txt"
    _ensure_prompts(prompts_file, demo_prompts(prompts, seed))
    clock.lap("dataset")
    runs = _plan_runs(demo_settings, dataset, prompts_file, epochs, resolutions)
    clock.lap("plan")
    _simulate(runs, seed)
    clock.lap("simulate")
    _process(runs)
    clock.lap("process")
    result = review_runs([r.run_dir for r in runs], outputs_dir=demo_settings.outputs_dir, process=False)
    clock.lap("review")
    return DemoResult(out=out, dataset=dataset, prompts_file=prompts_file, runs=runs, html=result.html,
                      sd_scripts_placeholder=settings.sd_scripts is None, timings=clock.timings, review=result)
