"""Images from a run's LoRA checkpoint with sd-scripts `gen_img.py` (arguments and prompt file:
`bespoke.kohya.gen_img`).

The launch goes through the same machinery as training: a `LaunchSpec` -> `build_launch` (every accelerate
value explicit) -> `run_logged` (own process group, whole output in a log, Ctrl-C stops the group). The result
folder `<run>/generated/e{NNNNNN}/` gets `generate.json` (argv, env overrides, checkpoint + sha256, seeds,
prompts, times, exit code), `prompts.txt` and `generate.log`. Nothing there is overwritten: a finished
generation with the same request is reused, a different one needs `force`, which moves the old folder aside.
Processing the images is the caller's (`bespoke.pipeline`).
"""

from __future__ import annotations

import os
import re
import threading
import time
from dataclasses import dataclass, replace
from pathlib import Path

from bespoke import progress
from bespoke.clock import now_iso
from bespoke.errors import Interrupted, RunError, TrainerError, UsageError, did_you_mean
from bespoke.fsutil import atomic_write_json, atomic_write_text, move_aside, read_json, sha256_file
from bespoke.kohya.checkpoints import by_epoch, find_checkpoints
from bespoke.kohya.gen_img import (
    SAMPLERS,
    GenImgInputs,
    GenPrompt,
    baseline_prompts,
    gen_img_args,
    image_name,
    prompts_from_file,
    render_gen_prompts,
)
from bespoke.kohya.launch import Launch, LaunchSpec, build_launch, recordable_env
from bespoke.kohya.output import log_tail, trainer_error
from bespoke.kohya.preflight import gate_words
from bespoke.run.manifest import load_manifest
from bespoke.run.paths import RunPaths, read_training
from bespoke.run.plan import base_model_argument
from bespoke.run.preflight import gate_refusal
from bespoke.run.runner import ProcessResult, rotate_log, run_logged, signal_name
from bespoke.settings import Settings

SCHEMA_VERSION = 1
DEFAULT_SEEDS = (1, 2, 3, 4)
MAX_SEEDS = 1000


@dataclass(frozen=True)
class GenerateRequest:
    """What to generate: which epoch (None = the last one on disk), prompts (None = the baseline set), seeds."""

    epoch: int | None = None
    prompts_file: Path | None = None
    seeds: tuple[int, ...] = DEFAULT_SEEDS
    mul: float = 1.0
    steps: int | None = None
    scale: float | None = None
    sampler: str | None = None
    force: bool = False
    preflight: bool = True  # gen_img.py's parser, tokenizer, attention, precision and files first (~6 s)


def parse_seeds(text: str) -> tuple[int, ...]:
    """'1-8' -> 1..8, '1,2,5' -> (1, 2, 5), '3' -> (3,), mixes allowed ('1-3,10'); order kept, duplicates dropped."""
    seeds: list[int] = []
    for part in str(text).split(","):
        part = part.strip()
        if not part:
            continue
        match = re.fullmatch(r"(\d+)\s*-\s*(\d+)", part)
        if match:
            low, high = int(match.group(1)), int(match.group(2))
            if high < low:
                raise UsageError(f"--seeds {text!r}: range {part} runs backwards; write {high}-{low}")
            if high - low + 1 > MAX_SEEDS:
                raise UsageError(f"--seeds {text!r}: {high - low + 1} seeds is more than {MAX_SEEDS}")
            seeds.extend(range(low, high + 1))
        elif part.isdigit():
            seeds.append(int(part))
        else:
            raise UsageError(f"--seeds {text!r}: {part!r} is not a seed; use e.g. 1-8 or 1,2,5 (non-negative integers)")
    unique = list(dict.fromkeys(seeds))
    if not unique:
        raise UsageError(f"--seeds {text!r}: no seeds; use e.g. 1-8 or 1,2,5")
    if len(unique) > MAX_SEEDS:
        raise UsageError(f"--seeds {text!r}: {len(unique)} seeds is more than {MAX_SEEDS}")
    if any(s > 2**32 - 1 for s in unique):
        raise UsageError(f"--seeds {text!r}: seeds must be below 2**32")
    return tuple(unique)


def run_checkpoints(run_dir: Path, training: dict | None = None) -> dict[int, Path]:
    """{epoch: checkpoint path} of a run's model/ (bespoke.kohya.checkpoints); a final file whose metadata
    cannot be read counts as the last epoch of the config."""
    paths = RunPaths(Path(run_dir))
    training = read_training(paths) if training is None else training
    checkpoints = find_checkpoints(paths.model_dir, str(training.get("output_name") or "last"))
    found = {epoch: c.path for epoch, c in by_epoch(checkpoints).items()}
    last = int(training.get("max_train_epochs") or 0) or None
    for c in checkpoints:
        if c.final and c.epoch is None and last is not None:
            found.setdefault(last, c.path)
    return dict(sorted(found.items()))


def checkpoint_for_epoch(run_dir: Path, epoch: int | None, training: dict | None = None) -> tuple[int, Path]:
    """(epoch, path) of the checkpoint for `epoch` (None = the last one); a clear error listing what exists."""
    checkpoints = run_checkpoints(run_dir, training)
    if not checkpoints:
        raise RunError(f"{RunPaths(Path(run_dir)).model_dir}: no checkpoints yet; train the run first (bespoke train)")
    if epoch is None:
        epoch = max(checkpoints)
    if epoch not in checkpoints:
        have = ", ".join(str(e) for e in checkpoints)
        raise RunError(f"{run_dir}: no checkpoint for epoch {epoch}; available epochs: {have}")
    return epoch, checkpoints[epoch]


def gen_launch_spec(settings: Settings, script_args: tuple[str, ...], cwd: Path) -> LaunchSpec:
    """The LaunchSpec of gen_img.py: the trainer's Python, one process, the user's accelerate settings."""
    script = settings.sd_script("gen_img.py")
    acc = settings.accelerate
    # gen_img.py runs one process and picks its precision from --fp16/--bf16, not from accelerate
    return LaunchSpec(python=settings.trainer_python, script=script, script_args=script_args, num_processes=1,
                      num_machines=1, mixed_precision="no", dynamo_backend=acc.dynamo_backend,
                      num_cpu_threads_per_process=acc.num_cpu_threads_per_process,
                      extra_accelerate_args=tuple(acc.extra_args), cwd=cwd)


def _request_key(checkpoint_sha: str, prompts: list[GenPrompt], seeds: tuple[int, ...], mul: float, sampler: str,
                 base_model: str) -> dict:
    return {"checkpoint_sha256": checkpoint_sha, "prompts": [p.to_json() for p in prompts], "seeds": list(seeds),
            "mul": mul, "sampler": sampler, "base_model": str(base_model)}


def _set_aside(outdir: Path) -> Path:
    stamp = time.strftime("%Y%m%d%H%M%S")
    return move_aside(outdir, lambda n: f"{outdir.name}.{stamp}" + (f"-{n - 1}" if n > 1 else ""))


def _claim_outdir(outdir: Path, key: dict, expected: list[str], force: bool) -> dict | None:
    """Make `outdir` free for a new generation, or return its finished record when it already holds this one.

    A finished generation of another request needs `force`; a failed/interrupted one is moved aside
    without asking; files bespoke did not write need `force`. Moving aside never deletes anything.
    """
    if not outdir.exists() or not any(outdir.iterdir()):
        return None
    old = read_json(outdir / "generate.json")
    same = old is not None and old.get("request") == key
    finished = old is not None and old.get("status") == "finished"
    if same and finished and all((outdir / n).is_file() for n in expected) and not force:
        progress.say(f"{outdir}: already generated (same checkpoint, prompts and seeds); reusing it")
        return old
    if (old is None or (finished and not same)) and not force:
        what = "a different finished generation" if old is not None else "files bespoke did not write"
        raise RunError(f"{outdir}: holds {what}; pass --force to move it aside "
                       f"(kept as {outdir.name}.<time>) and generate again")
    moved = _set_aside(outdir)
    progress.say(f"{outdir}: previous generation ({(old or {}).get('status', 'unknown')}) moved to {moved.name}")
    return None


@dataclass(frozen=True)
class _Resolved:
    """A request made concrete for one run: which checkpoint, prompts, sampler and base model; the folder it goes
    to, the images it must write there, and its key (what makes two generations the same)."""

    epoch: int
    checkpoint: Path
    prompts: list[GenPrompt]
    sampler: str
    base_model: str
    training: dict
    outdir: Path
    expected: list[str]
    key: dict


def _resolve(settings: Settings, run_dir: Path, request: GenerateRequest) -> _Resolved:
    manifest = load_manifest(run_dir)
    training = read_training(RunPaths(run_dir))
    epoch, checkpoint = checkpoint_for_epoch(run_dir, request.epoch, training)
    prompts = prompts_from_file(request.prompts_file) if request.prompts_file else baseline_prompts()
    if request.steps is not None or request.scale is not None:
        prompts = [replace(p, steps=request.steps or p.steps, scale=request.scale or p.scale) for p in prompts]
    if not request.seeds:
        raise UsageError("no seeds given")
    if request.scale is not None and not request.scale > 0:
        raise UsageError(f"--scale {request.scale}: the CFG scale must be a positive number")
    sampler = str(request.sampler or training.get("sample_sampler") or "ddim").lower()
    if sampler not in SAMPLERS:
        raise UsageError(f"--sampler {sampler!r}: gen_img.py knows {', '.join(SAMPLERS)}"
                         f"{did_you_mean(sampler, SAMPLERS)}")
    base_model = base_model_argument(str(training.get("pretrained_model_name_or_path") or manifest.base_model
                                         or settings.base_model))
    render_gen_prompts(prompts, request.seeds)  # bad prompt text: fail before touching the folder
    key = _request_key(sha256_file(checkpoint), prompts, request.seeds, request.mul, sampler, base_model)
    return _Resolved(epoch, checkpoint, prompts, sampler, base_model, training,
                     outdir=RunPaths(run_dir).generated_dir / f"e{epoch:06d}",
                     expected=[image_name(p, s) for p in prompts for s in request.seeds], key=key)


def _script_args(request: GenerateRequest, job: _Resolved) -> tuple[str, ...]:
    return gen_img_args(GenImgInputs(base_model=job.base_model, outdir=job.outdir,
                                     prompt_file=job.outdir / "prompts.txt", checkpoint=job.checkpoint,
                                     prompts=job.prompts, mul=request.mul, sampler=job.sampler), job.training)


def generate(settings: Settings, run_dir: Path, request: GenerateRequest = GenerateRequest(), *,
             base_env: dict[str, str] | None = None, stop: threading.Event | None = None) -> dict:
    """Generate `request` from a run's checkpoint into `<run>/generated/e{NNNNNN}/` (progress: a task of images
    done; messages: bespoke.progress.say).

    Returns the generate.json manifest plus "outdir" and "reused".
    Raises RunError (no such epoch, folder holds a different generation), ConfigError (no sd-scripts,
    bad prompt file), TrainerError (gen_img.py failed or wrote fewer images than asked) or Interrupted
    (Ctrl-C, SIGTERM, or the `stop` event set: gen_img.py's process group is stopped), PreflightError
    (`request.preflight`: gen_img.py would reject its arguments, or no tokenizer / attention backend / file).
    """
    run_dir = Path(run_dir)
    settings.sd_script("gen_img.py")  # no sd-scripts / no gen_img.py: say so before anything is written
    job = _resolve(settings, run_dir, request)
    reusable = _claim_outdir(job.outdir, job.key, job.expected, request.force)
    if reusable is not None:
        return {**reusable, "outdir": str(job.outdir), "reused": True}
    record = _launch(settings, run_dir, request, job, base_env, stop)
    progress.say(f"generated {len(job.expected)} images from epoch {job.epoch} into {job.outdir}")
    return {**record, "outdir": str(job.outdir), "reused": False}


def _record(run_dir: Path, request: GenerateRequest, job: _Resolved, launch: Launch, cwd: Path | None) -> dict:
    """generate.json of a generation about to start (status "running")."""
    return {
        "schema_version": SCHEMA_VERSION, "kind": "bespoke-generate", "run": str(run_dir),
        "run_id": load_manifest(run_dir).id, "epoch": job.epoch,
        "checkpoint": {"path": str(job.checkpoint), "sha256": job.key["checkpoint_sha256"],
                       "size": job.checkpoint.stat().st_size},
        "base_model": job.base_model, "request": job.key, "seeds": list(request.seeds), "mul": request.mul,
        "sampler": job.sampler, "prompts": [p.to_json() for p in job.prompts], "prompt_file": "prompts.txt",
        "images": [{"file": image_name(p, s), "prompt": p.name, "seed": s} for p in job.prompts for s in request.seeds],
        "argv": launch.argv, "env_overrides": recordable_env(launch.env_overrides),
        "env_removed": launch.env_removed, "cwd": str(cwd) if cwd else None,
        "log": "generate.log", "status": "running", "started": now_iso(), "finished": None, "exit_code": None,
    }


def _launch(settings: Settings, run_dir: Path, request: GenerateRequest, job: _Resolved,
            base_env: dict[str, str] | None, stop: threading.Event | None) -> dict:
    """Run gen_img.py into the job's folder, keeping generate.json current; returns the finished record or raises."""
    outdir = job.outdir
    outdir.mkdir(parents=True, exist_ok=True)
    atomic_write_text(outdir / "prompts.txt", render_gen_prompts(job.prompts, request.seeds))
    spec = gen_launch_spec(settings, _script_args(request, job), cwd=run_dir)
    report = outdir / "preflight.json"
    if request.preflight:  # gen_img.py's own checks inside the launch, which then generates in that process
        spec = replace(spec, gate=gate_words(report))
    launch = build_launch(spec, dict(os.environ if base_env is None else base_env))
    log_path = outdir / "generate.log"
    rotate_log(log_path)
    record = _record(run_dir, request, job, launch, spec.cwd)
    atomic_write_json(outdir / "generate.json", record)
    with progress.task(f"generate e{job.epoch:06d}", total=len(job.expected)) as images:
        result = run_logged(launch.argv, launch.env, log_path, cwd=spec.cwd, on_tick=_ImageCounter(job, images),
                            stop=stop, env_overrides=recordable_env(launch.env_overrides))
    problem = gate_refusal(report, run_dir) if request.preflight and not result.interrupted else None
    if problem is not None:  # nothing was generated; the next generate moves this folder aside
        record.update(status="refused", reason=str(problem), finished=now_iso(), exit_code=result.exit_code)
        atomic_write_json(outdir / "generate.json", record)
        raise problem
    return _record_outcome(record, result, outdir, job.expected, log_path)


class _ImageCounter:
    """run_logged's on_tick: advances a task by the expected images that appeared (a look every 0.3 s at most)."""

    def __init__(self, job: _Resolved, images: progress.Task):
        self.job, self.images = job, images
        self.seen, self.looked = 0, 0.0

    def __call__(self) -> None:
        if time.monotonic() - self.looked < 0.3:
            return
        self.looked = time.monotonic()
        seen = sum(1 for n in self.job.expected if (self.job.outdir / n).is_file())
        if seen > self.seen:
            self.images.advance(seen - self.seen)
            self.seen = seen


def _record_outcome(record: dict, result: ProcessResult, outdir: Path, expected: list[str], log_path: Path) -> dict:
    missing = [n for n in expected if not (outdir / n).is_file()]
    if result.interrupted:
        status, reason = "interrupted", f"stopped by bespoke ({signal_name(result.signum)})"
    elif result.exit_code != 0:
        status, reason = "failed", f"gen_img.py exited with code {result.exit_code}"
    elif missing:
        status, reason = "failed", f"gen_img.py exited 0 but {len(missing)} of {len(expected)} images are missing"
    else:
        status, reason = "finished", None
    record.update(status=status, reason=reason, finished=now_iso(), exit_code=result.exit_code,
                  duration_s=round(result.duration, 3), missing=missing,
                  log_tail=log_tail(log_path, 20) if status != "finished" else None)
    atomic_write_json(outdir / "generate.json", record)
    if status == "interrupted":
        raise Interrupted(f"generate stopped; partial images and the log are in {outdir}", result.signum)
    if status != "finished":
        tail = record["log_tail"] or []
        error = trainer_error(tail) or (tail[-1].strip() if tail else "(empty log)")
        raise TrainerError(f"{reason}: {error[:200]} (full log: {log_path})")
    return record
