"""The sample simulator: per-epoch samples for a planned run, made from synthetic punks, no model involved.

It stands in for the trainer in `bespoke demo`, the tests and the benchmarks. The images imitate what an
SD 1.5 LoRA draws while it learns 24 px punks: early epochs are blurry, noisy, colour-jittered and off the
pixel grid; they sharpen epoch by epoch while the grid phase drifts; and every epoch has a few bad samples,
so choosing the best epoch is not trivial. Until the quality peak (about 78 % of training) the simulated
model draws a new punk for each prompt (`design`, never a near copy of a training image); after it, it
over-trains: more and more samples are copies of the training image the prompt describes (`copy_share`:
0 up to the peak, COPY_MAX at the last epoch), sharper than ever -- the best-epoch rule must see through that. Files use the real sd-scripts
sample naming in `<run>/model/sample/`, and run.json says `simulated: true` with the simulator's settings.
Nothing here pretends to be a checkpoint or a trainer log.
"""

from __future__ import annotations

import datetime as _dt
import io
import math
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageFilter

from bespoke import progress
from bespoke.clock import now_iso
from bespoke.dataset.layout import GRID, layout_for
from bespoke.dataset.synthetic import make_punk
from bespoke.demo.degrade import jpeg
from bespoke.errors import ConfigError, RunError
from bespoke.fsutil import atomic_write_bytes
from bespoke.kohya.prompts import SamplePrompt, parse_prompt_file
from bespoke.pixels.novelty import NEAR_COPY, TrainingSet, shares
from bespoke.review.request import resolve_training
from bespoke.run.manifest import RunManifest, load_manifest, save_manifest
from bespoke.run.paths import RunPaths, read_training

SIMULATOR_VERSION = 2
COPY_MAX = 0.9  # share of the last epoch's samples that are copies of training images
NOTE = "samples are synthetic images made by bespoke.simulator from generated punks; no model was trained"


@dataclass(frozen=True)
class SimPrompt:
    """The parts of a sample prompt the simulator uses (compatible with planning's SamplePrompt)."""

    index: int
    prompt: str
    width: int = 512
    height: int = 512
    seed: int | None = None


@dataclass(frozen=True)
class SimulationResult:
    """What `simulate_run` wrote."""

    run_dir: Path
    samples: list[Path]
    epochs: int
    prompts: int
    sample_size: tuple[int, int]
    simulator: dict


def read_prompt_file(path: Path) -> list[SimPrompt]:
    """The prompts of a run's prompt file (bespoke.prompts parses it), with sd-scripts' default size."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: no prompt file; plan the run first (`bespoke plan`)")
    return as_sim_prompts(parse_prompt_file(path))


def as_sim_prompts(prompts) -> list[SimPrompt]:
    """SimPrompts from SamplePrompt-like objects; a missing size is sd-scripts' default 512 (rounded to /8)."""
    out = []
    for i, p in enumerate(prompts):
        width = max(64, int(getattr(p, "width", None) or 512) // 8 * 8)
        height = max(64, int(getattr(p, "height", None) or 512) // 8 * 8)
        index = getattr(p, "index", None)
        out.append(SimPrompt(i if index is None else int(index), str(p.prompt), width, height, getattr(p, "seed", None)))
    return out


def quality(epoch: int, epochs: int) -> float:
    """How well the simulated model has learned at `epoch` (0 = untrained ... ~1 = best): a rise that
    peaks around 75-80 % of training, then a slight overfit, like the user's 10-epoch run (best at 8)."""
    if epoch <= 0:
        return 0.0
    peak = max(1.0, 0.78 * epochs)
    rise = 1.0 - math.exp(-3.0 * epoch / peak)
    overfit = 0.18 * max(0.0, (epoch - peak) / max(1.0, epochs - peak)) ** 1.5
    return float(np.clip(rise / (1.0 - math.exp(-3.0)) - overfit, 0.0, 1.0))


def copy_share(epoch: int, epochs: int) -> float:
    """The share of `epoch`'s samples that copy a training image: 0 up to the quality peak, then rising to
    COPY_MAX at the last epoch (the over-trained LoRA returns its training set)."""
    peak = max(1.0, 0.78 * epochs)
    if epoch <= peak or epochs <= peak:
        return 0.0
    return float(COPY_MAX * ((epoch - peak) / (epochs - peak)) ** 0.7)


def _designs(prompts: list[SimPrompt], seed: int, training: TrainingSet | None) -> tuple[list, list]:
    """(new design, training copy) per prompt, 24x24x3 uint8 each. The copy is the training image nearest the
    punk the prompt names (its --d seed, as the demo's prompts are its dataset's captions); the new design is
    another generated punk that no training image comes near."""
    news, copies = [], []
    for p in prompts:
        intended = make_punk((p.seed if p.seed is not None else seed * 1000 + p.index) % (2**31)).pixels
        copy = intended
        if training is not None and len(training):
            copy = training.rgb(int(np.argmax(shares(intended, training))))
        for attempt in range(20):
            new = make_punk((p.index * 7919 + seed * 104_729 + attempt * 31 + 2_000_003) % (2**31)).pixels
            if training is None or not len(training) or shares(new, training).max() < NEAR_COPY:
                break
        news.append(new)
        copies.append(copy)
    return news, copies


def _axis_map(size: int, layout: str, shift: int, stretch: float) -> np.ndarray:
    """For each output pixel on one axis, the punk cell it shows (after a phase shift and scale error)."""
    edges = np.asarray(layout_for(layout, size).edges)
    x = (np.arange(size) - size / 2.0) / stretch + size / 2.0 - shift
    cells = np.searchsorted(edges, np.floor(x), side="right") - 1
    return np.clip(cells, 0, GRID - 1)


def _smooth_noise(rng: np.random.Generator, width: int, height: int, scale: int) -> np.ndarray:
    """Low-frequency colour texture (what SD paints inside flat areas), zero mean, about unit std."""
    small = rng.standard_normal((max(2, height // scale), max(2, width // scale), 3)).astype(np.float32)
    img = Image.fromarray(np.clip(small * 40 + 128, 0, 255).astype(np.uint8), "RGB")
    big = np.asarray(img.resize((width, height), Image.Resampling.BICUBIC), dtype=np.float32)
    return (big - 128.0) / 40.0


@dataclass(frozen=True, eq=False)
class SampleSpec:
    """One simulated sample: the 24 px punk it draws (24x24x3 uint8), its size, the epoch of how many it imitates,
    its seed (the sample is deterministic for it), the grid layout, and whether it is one of the epoch's bad ones."""

    pixels: np.ndarray
    width: int
    height: int
    epoch: int
    epochs: int
    seed: int
    layout: str = "stretch"
    bad: bool = False


def render_sample(spec: SampleSpec) -> Image.Image:
    """One simulated sample (see SampleSpec)."""
    pixels, width, height, epoch, seed = spec.pixels, spec.width, spec.height, spec.epoch, spec.seed
    rng = np.random.default_rng(seed)
    q = quality(epoch, spec.epochs)
    if spec.bad:
        q *= 0.6
    cell = min(width, height) / GRID

    # the model's idea of the punk: some cells drawn in a slightly wrong colour, fewer as it learns
    base = pixels.astype(np.float32)
    wrong = rng.random((GRID, GRID, 1)) < 0.08 + 0.45 * (1.0 - q)
    base += wrong * rng.normal(0.0, 6.0 + 22.0 * (1.0 - q), (GRID, GRID, 3)).astype(np.float32)

    # drifting grid phase and a small scale error early on
    phase = (1.0 - 0.7 * q) * 0.3 * cell
    shift_x = int(round(phase * math.sin(1.7 * epoch + 0.9 * seed % 7)))
    shift_y = int(round(phase * math.cos(1.3 * epoch + 0.5 * seed % 5)))
    stretch = 1.0 + 0.03 * (1.0 - q) * math.sin(seed % 11 + epoch)
    ys = _axis_map(height, spec.layout, shift_y, stretch)
    xs = _axis_map(width, spec.layout, shift_x, stretch)
    base = np.clip(base, 0, 255).astype(np.uint8)
    out = Image.fromarray(np.ascontiguousarray(base[ys][:, xs]), "RGB")
    radius = cell * (0.7 * (1.0 - q) + 0.03)
    if radius >= 0.3:
        out = out.filter(ImageFilter.GaussianBlur(radius))

    # an untrained model paints with soft light and shade, not flat pixel-art colours: a smooth lighting
    # field across the portrait that fades as it learns (the user's early epochs were gradients, not cells)
    light = 0.22 * (1.0 - q) ** 1.5
    if light > 0.005:
        gy, gx = np.mgrid[0:height, 0:width].astype(np.float32)
        angle = rng.uniform(0, 2 * math.pi)
        ramp = (np.cos(angle) * (gx / width - 0.5) + np.sin(angle) * (gy / height - 0.5)) * 2.0
        field = 1.0 + light * (ramp + 0.5 * _smooth_noise(rng, width, height, max(2, int(cell * 4)))[..., 0])
        out = Image.fromarray(np.clip(np.asarray(out, np.float32) * field[..., None], 0, 255).astype(np.uint8), "RGB")

    # texture and noise only in patches (SD paints flat areas flat, and textures the rest)
    blobs = _smooth_noise(rng, width, height, max(2, int(cell * 1.5)))
    share = 0.12 + 0.5 * (1.0 - q)
    mask = blobs[..., 0] > np.quantile(blobs[::7, ::7, 0], 1.0 - share)
    arr = np.array(out)
    count = int(mask.sum())
    texture = blobs[..., 1][mask][:, None] * (8.0 * (1.0 - q) + 3.0)
    texture = texture + rng.standard_normal((count, 3), dtype=np.float32) * (6.0 * (1.0 - q) + 2.0)
    arr[mask] = np.clip(arr[mask] + texture, 0, 255).astype(np.uint8)
    out = Image.fromarray(arr, "RGB")
    if spec.bad:  # a bad sample also went through a heavy JPEG: block artefacts and smeared colours
        out = jpeg(out, quality=50)
    return out


def _render_job(job: tuple[Path, SampleSpec]) -> tuple[Path, bytes]:
    path, spec = job
    buffer = io.BytesIO()
    render_sample(spec).save(buffer, "PNG", compress_level=1)
    return path, buffer.getvalue()


def _bad_prompts(seed: int, epoch: int, count: int) -> set[int]:
    if count < 3:
        return set()
    rng = np.random.default_rng([seed, epoch, 77])
    return set(rng.choice(count, size=max(1, count // 4), replace=False).tolist())


def _loss_history(seed: int, epochs: int, steps_per_epoch: int) -> list[dict]:
    """A plausible, clearly simulated loss curve (run.json says loss_history_simulated)."""
    rng = np.random.default_rng([seed, 99])
    floor = 0.05 + 0.03 * rng.random()
    history = []
    for step in range(1, epochs * steps_per_epoch + 1):
        epoch = (step - 1) // steps_per_epoch + 1
        loss = floor + 0.09 * math.exp(-step / (1.5 * steps_per_epoch)) + abs(rng.normal(0, 0.012))
        history.append({"step": step, "epoch": epoch, "loss": round(loss, 5)})
    return history


def _check_fillable(paths: RunPaths, manifest: RunManifest) -> None:
    existing = sorted(paths.sample_dir.glob("*.png")) if paths.sample_dir.is_dir() else []
    if existing:
        raise RunError(f"{paths.sample_dir}: already holds {len(existing)} samples; the simulator never overwrites them")
    if manifest.status != "planned" and not manifest.simulated:
        raise RunError(f"{paths.run_json}: status {manifest.status!r}; the simulator only fills planned runs "
                       "(real runs stay real)")


@dataclass(frozen=True)
class _Simulation:
    """One simulated run: where its samples go and how they are named, its grid layout, seed and epochs."""

    sample_dir: Path
    output_name: str
    layout: str
    seed: int
    epochs: int
    epoch_list: list[int]


def _jobs(sim: _Simulation, prompts: list[SimPrompt], designs: tuple[list, list]) -> list[tuple[Path, SampleSpec]]:
    """One render job per (epoch, prompt), named as sd-scripts names its samples."""
    started = _dt.datetime.now().replace(microsecond=0)
    seed, epochs = sim.seed, sim.epochs
    jobs = []
    for epoch in sim.epoch_list:
        bad = _bad_prompts(seed, epoch, len(prompts))
        copied = np.random.default_rng([seed, epoch, 55]).random(len(prompts)) < copy_share(epoch, epochs)
        stamp = (started + _dt.timedelta(minutes=3 * epoch)).strftime("%Y%m%d%H%M%S")
        for prompt, new, copy, is_copy in zip(prompts, *designs, copied, strict=True):
            suffix = f"_{prompt.seed}" if prompt.seed is not None else ""
            path = sim.sample_dir / f"{sim.output_name}_e{epoch:06d}_{prompt.index:02d}_{stamp}{suffix}.png"
            image_seed = (seed * 1_000_003 + epoch * 1009 + prompt.index * 31 + 7) % (2**32)
            # a memorised training image is drawn at its best: no bad sample, the peak's sharpness
            jobs.append((path, SampleSpec(copy if is_copy else new, prompt.width, prompt.height,
                                          epoch if not is_copy else round(0.78 * epochs), epochs, image_seed,
                                          sim.layout, prompt.index in bad and not is_copy)))
    return jobs


def _render_all(jobs: list[tuple[Path, SampleSpec]], label: str) -> list[Path]:
    # Pillow and numpy release the GIL in the heavy parts (blur, noise, PNG encoding): threads use both cores
    written: list[Path] = []
    workers = max(1, min(4, os.cpu_count() or 1))
    with progress.task(f"simulating {label}", total=len(jobs)) as rendering, \
            ThreadPoolExecutor(max_workers=workers) as pool:
        for path, data in pool.map(_render_job, jobs):
            atomic_write_bytes(path, data)
            written.append(path)
            rendering.advance()
    return written


def simulate_run(
    run_dir: Path, prompts: list[SamplePrompt] | list[SimPrompt] | None = None, *, seed: int = 0,
    epochs: int | None = None,
) -> SimulationResult:
    """Write simulated per-epoch samples into `<run>/model/sample/` of a planned run and mark it finished
    and `simulated: true` in run.json (progress: a task of samples drawn). Refuses a run that already has samples
    or is a real run."""
    run_dir = Path(run_dir)
    paths = RunPaths(run_dir)
    manifest = load_manifest(run_dir)
    _check_fillable(paths, manifest)
    sim_prompts = as_sim_prompts(prompts) if prompts is not None else read_prompt_file(paths.prompts_txt)
    if not sim_prompts:
        raise ConfigError(f"{run_dir}: no sample prompts to simulate")
    training = read_training(paths) if paths.training_toml.is_file() else {}
    epochs = int(epochs or manifest.num_epochs or training.get("max_train_epochs", 10))
    output_name = manifest.output_name or training.get("output_name") or "last"
    epoch_list = list(range(0 if training.get("sample_at_first") else 1, epochs + 1))
    train_set = resolve_training(run_dir, manifest, None)[0]
    designs = _designs(sim_prompts, seed, train_set)
    manifest.status, manifest.simulated = "running", True
    manifest.new_attempt(argv=[], host=None)
    save_manifest(run_dir, manifest)
    simulation = _Simulation(paths.sample_dir, output_name, manifest.layout or "stretch", seed, epochs, epoch_list)
    written = _render_all(_jobs(simulation, sim_prompts, designs), run_dir.name)
    sizes = sorted({(p.width, p.height) for p in sim_prompts})
    simulator = {
        "version": SIMULATOR_VERSION, "seed": seed, "epochs": epochs, "prompts": len(sim_prompts),
        "sample_sizes": [list(s) for s in sizes],
        "quality_per_epoch": {str(e): round(quality(e, epochs), 3) for e in epoch_list},
        "copy_share_per_epoch": {str(e): round(copy_share(e, epochs), 3) for e in epoch_list},
        "training_images": len(train_set) if train_set is not None else 0, "note": NOTE,
    }
    manifest.status, manifest.simulator, manifest.epochs_done = "finished", simulator, epochs
    manifest.loss_history = _loss_history(seed + int(manifest.resolution or 0), epochs, steps_per_epoch=20)
    assert manifest.attempt is not None
    manifest.attempt.finished_at = now_iso()
    save_manifest(run_dir, manifest)
    return SimulationResult(run_dir, written, epochs, len(sim_prompts), sizes[0], simulator)
