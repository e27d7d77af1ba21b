"""Images from a run's LoRA checkpoint with sd-scripts `gen_img.py`, then `process` on them.

The launch goes through the same machinery as training: a `LaunchSpec` -> `build_launch` (every accelerate
value explicit) -> `process_runner.run_logged` (own process group, whole output in a log, Ctrl-C stops the
group). gen_img.py names its outputs by batch index, not by prompt, so bespoke writes a per-generation
prompt file with one line per (prompt, seed), each with `--d <seed>` and `--f <name>_s<seed>.png` (the
per-prompt file-name option; gen_img.py appends no extension, so bespoke writes it). The result folder
`<run>/generated/e{NNNNNN}/` gets `generate.json` (argv, env overrides, checkpoint + sha256, seeds, prompts,
times, exit code), `prompts.txt` and `generate.log`. Nothing there is overwritten: a finished generation
with the same request is reused, a different one needs `force`, which moves the old folder aside.
"""

from __future__ import annotations

import json
import os
import re
import time
from dataclasses import dataclass, replace
from pathlib import Path

from bespoke.errors import ConfigError, RunError, TrainerError, UsageError
from bespoke.fsutil import atomic_write_json, atomic_write_text, move_aside, sha256_file
from bespoke.run.paths import RunPaths, now_iso, read_manifest

SCHEMA_VERSION = 1
DEFAULT_SEEDS = (1, 2, 3, 4)
MAX_SEEDS = 1000
_SAFE = re.compile(r"[^A-Za-z0-9_.-]+")
# gen_img.py --sampler choices (gen_img.py setup_parser; the same list as train_network.py --sample_sampler)
SAMPLERS = ("ddim", "pndm", "lms", "euler", "euler_a", "heun", "dpm_2", "dpm_2_a", "dpmsolver", "dpmsolver++",
            "dpmsingle", "k_lms", "k_euler", "k_euler_a", "k_dpm_2", "k_dpm_2_a")


@dataclass(frozen=True)
class GenPrompt:
    """One prompt of a generation: a file-safe name and everything gen_img.py needs per line."""

    name: str
    prompt: str
    negative: str = ""
    width: int = 512
    height: int = 512
    steps: int = 30
    scale: float = 7.5

    def to_json(self) -> dict:
        return dict(self.__dict__)


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
    process: bool = True


# ---------------------------------------------------------------- small parsers


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


def safe_name(text: str) -> str:
    """A file-name-safe prompt name."""
    return _SAFE.sub("_", text).strip("._") or "prompt"


def baseline_prompts() -> list[GenPrompt]:
    """The 7 prompts of the recorded baseline protocol (negative prompt, 512x512, 30 steps, CFG 7.5)."""
    from bespoke.review.baseline import recorded_baseline

    data = recorded_baseline()
    proto = data["protocol"]
    return [GenPrompt(p["name"], p["prompt"], data["negative_prompt"], proto["width"], proto["height"],
                      proto["steps"], float(proto["guidance_scale"])) for p in data["prompts"]]


def prompts_from_file(path: Path) -> list[GenPrompt]:
    """Prompts of an sd-scripts prompt file (.txt/.toml/.json); unnamed ones become p00, p01, ..."""
    from bespoke.kohya.prompts import parse_prompt_file

    out: list[GenPrompt] = []
    seen: set[str] = set()
    for p in parse_prompt_file(Path(path)):
        name = safe_name(p.name) if p.name else f"p{p.index:02d}"
        while name in seen:
            name += "_"
        seen.add(name)
        out.append(GenPrompt(name, p.prompt, p.negative or "", p.width or 512, p.height or 512,
                             p.steps or 30, float(p.scale) if p.scale is not None else 7.5))
    return out


def image_name(prompt: GenPrompt, seed: int) -> str:
    return f"{prompt.name}_s{seed}.png"


def render_gen_prompts(prompts: list[GenPrompt], seeds: tuple[int, ...]) -> str:
    """gen_img.py prompt file: one line per (prompt, seed), with the seed and the output file name."""
    lines = ["# bespoke generate: one line per (prompt, seed); --f names the output file"]
    for p in prompts:
        for text, what in ((p.prompt, "prompt"), (p.negative, "negative prompt")):
            if " --" in text or "\n" in text or "\r" in text:
                raise ConfigError(f"prompt {p.name}: the {what} cannot contain ' --' or a line break "
                                  f"(gen_img.py's line syntax): {text[:60]!r}")
        for seed in seeds:
            line = p.prompt
            if p.negative:
                line += f" --n {p.negative}"
            line += (f" --w {p.width} --h {p.height} --s {p.steps} --l {p.scale:g} --d {seed}"
                     f" --f {image_name(p, seed)}")
            lines.append(line)
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------- the run's checkpoints


def run_training(run_dir: Path) -> dict:
    """The run's flattened training config (config/training.toml)."""
    from bespoke.run.train import load_training

    return load_training(RunPaths(Path(run_dir)))


def run_checkpoints(run_dir: Path, training: dict | None = None) -> dict[int, Path]:
    """{epoch: checkpoint path} of a run: `{name}-{N:06d}.safetensors` is epoch N; the final
    `{name}.safetensors` is the epoch its `ss_epoch` says (the last one; FACTS.md §4)."""
    from bespoke.kohya.metadata import WeightsError, epoch_from_filename, read_metadata

    paths = RunPaths(Path(run_dir))
    training = run_training(run_dir) if training is None else training
    output_name = str(training.get("output_name") or "last")
    model_dir = Path(training.get("output_dir") or paths.model_dir)
    found: dict[int, Path] = {}
    final = model_dir / f"{output_name}.safetensors"
    for path in sorted(model_dir.glob(f"{output_name}-*.safetensors")) if model_dir.is_dir() else []:
        epoch = epoch_from_filename(path, output_name)
        if epoch is not None:
            found[epoch] = path
    if final.is_file():
        try:
            epoch = int(read_metadata(final).get("ss_epoch", ""))
        except (WeightsError, ValueError):
            epoch = int(training.get("max_train_epochs") or 0) or None
        if epoch is not None:
            found.setdefault(epoch, final)  # an epoch file of the same epoch is the same weights
    return dict(sorted(found.items()))


def checkpoint_for_epoch(run_dir: Path, epoch: int | None, training: dict | None = None) -> tuple[int, Path]:
    """(epoch, path) of the checkpoint for `epoch` (None = the last one); a clear error listing what exists."""
    checkpoints = run_checkpoints(run_dir, training)
    if not checkpoints:
        raise RunError(f"{Path(run_dir) / 'model'}: no checkpoints yet; train the run first (bespoke train)")
    if epoch is None:
        epoch = max(checkpoints)
    if epoch not in checkpoints:
        have = ", ".join(str(e) for e in checkpoints)
        raise RunError(f"{run_dir}: no checkpoint for epoch {epoch}; available epochs: {have}")
    return epoch, checkpoints[epoch]


# ---------------------------------------------------------------- the launch


def _precision_flag(training: dict) -> str | None:
    precision = str(training.get("mixed_precision") or "no").lower()
    return {"fp16": "--fp16", "bf16": "--bf16"}.get(precision)


def gen_img_args(*, base_model: str, outdir: Path, prompt_file: Path, checkpoint: Path, prompts: list[GenPrompt],
                 training: dict, mul: float, sampler: str) -> tuple[str, ...]:
    """gen_img.py arguments (FACTS.md §7); per-line options in the prompt file override --W/--H/--steps/--scale."""
    first = prompts[0]
    args = ["--ckpt", str(base_model), "--outdir", str(outdir), "--from_file", str(prompt_file),
            "--W", str(first.width), "--H", str(first.height), "--steps", str(first.steps),
            "--scale", f"{first.scale:g}", "--sampler", sampler,
            "--network_module", "networks.lora", "--network_weights", str(checkpoint), "--network_mul", f"{mul:g}",
            "--images_per_prompt", "1", "--batch_size", "1"]
    flag = _precision_flag(training)
    if flag:
        args.append(flag)
    if training.get("xformers"):
        args.append("--xformers")
    elif training.get("sdpa"):
        args.append("--sdpa")
    if training.get("clip_skip"):
        args += ["--clip_skip", str(training["clip_skip"])]
    if training.get("v2"):
        args.append("--v2")
    if training.get("v_parameterization"):
        args.append("--v_parameterization")
    return tuple(args)


def gen_launch_spec(settings, script_args: tuple[str, ...]):
    """The LaunchSpec of gen_img.py: the trainer's Python, one process, the user's accelerate settings."""
    from bespoke.kohya.launch import LaunchSpec

    script = settings.sd_script("gen_img.py")
    acc = settings.accelerate
    # gen_img.py runs one process and picks its precision from --fp16/--bf16, not from accelerate
    return LaunchSpec(python=settings.trainer_python, script=script, script_args=script_args, num_processes=1,
                      num_machines=1, mixed_precision="no", dynamo_backend=acc.dynamo_backend,
                      num_cpu_threads_per_process=acc.num_cpu_threads_per_process,
                      extra_accelerate_args=tuple(acc.extra_args), cwd=Path(settings.sd_scripts))


def _request_key(checkpoint_sha: str, prompts: list[GenPrompt], seeds, mul: float, sampler: str, base_model: str):
    return {"checkpoint_sha256": checkpoint_sha, "prompts": [p.to_json() for p in prompts], "seeds": list(seeds),
            "mul": mul, "sampler": sampler, "base_model": str(base_model)}


def _read_json(path: Path) -> dict | None:
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def _set_aside(outdir: Path) -> Path:
    stamp = time.strftime("%Y%m%d%H%M%S")
    return move_aside(outdir, lambda n: f"{outdir.name}.{stamp}" + (f"-{n - 1}" if n > 1 else ""))


def _claim_outdir(outdir: Path, key: dict, expected: list[str], force: bool, say) -> dict | None:
    """Make `outdir` free for a new generation, or return its finished record when it already holds this one.

    A finished generation of another request needs `force`; a failed/interrupted one is moved aside
    without asking; files bespoke did not write need `force`. Moving aside never deletes anything.
    """
    if not outdir.exists() or not any(outdir.iterdir()):
        return None
    old = _read_json(outdir / "generate.json")
    same = old is not None and old.get("request") == key
    finished = old is not None and old.get("status") == "finished"
    if same and finished and all((outdir / n).is_file() for n in expected) and not force:
        say(f"{outdir}: already generated (same checkpoint, prompts and seeds); reusing it")
        return old
    if (old is None or (finished and not same)) and not force:
        what = "a different finished generation" if old is not None else "files bespoke did not write"
        raise RunError(f"{outdir}: holds {what}; pass --force to move it aside "
                       f"(kept as {outdir.name}.<time>) and generate again")
    moved = _set_aside(outdir)
    say(f"{outdir}: previous generation ({(old or {}).get('status', 'unknown')}) moved to {moved.name}")
    return None


class _GenView:
    """images done / total: a rich bar on a terminal, a line per image otherwise, nothing when quiet."""

    def __init__(self, console, total: int, label: str, quiet: bool):
        self.console, self.total, self.label = console, total, label
        self.mode = "quiet" if quiet else ("live" if console.is_terminal else "plain")
        self.done = 0
        self.progress = None
        self.last_plain = time.monotonic()

    def start(self) -> None:
        if self.mode == "live":
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

            self.progress = Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                                     TextColumn("images"), TimeRemainingColumn(), console=self.console,
                                     transient=True)
            self.progress.start()
            self.task = self.progress.add_task(self.label, total=self.total)

    def update(self, done: int) -> None:
        if done == self.done:
            return
        self.done = done
        if self.progress is not None:
            self.progress.update(self.task, completed=done)
        elif self.mode == "plain" and (done == self.total or time.monotonic() - self.last_plain >= 10):
            self.last_plain = time.monotonic()
            self.console.print(f"{self.label}: {done}/{self.total} images")

    def stop(self) -> None:
        if self.progress is not None:
            self.progress.stop()
            self.progress = None


def generate(settings, run_dir: Path, request: GenerateRequest = GenerateRequest(), *, quiet: bool = False,
             base_env: dict[str, str] | None = None, say=None, stop=None) -> dict:
    """Generate `request` from a run's checkpoint into `<run>/generated/e{NNNNNN}/`, then `process` it.

    Returns the generate.json manifest plus "outdir", "reused" and (when processed) "report".
    Raises RunError (no such epoch, folder holds a different generation), ConfigError (no sd-scripts,
    bad prompt file), TrainerError (gen_img.py failed or wrote fewer images than asked) or Interrupted
    (Ctrl-C, SIGTERM, or the `stop` event set: gen_img.py's process group is stopped).
    """
    from bespoke.console import console
    from bespoke.kohya.launch import build_launch, recordable_env
    from bespoke.run.runner import rotate_log, run_logged
    from bespoke.run.progress import log_tail

    say = say or (lambda text: None if quiet else console.print(text))
    run_dir = Path(run_dir)
    manifest = read_manifest(run_dir)
    gen_launch_spec(settings, ())  # no sd-scripts / no gen_img.py: say so before anything is written
    training = run_training(run_dir)
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
        from bespoke.errors import did_you_mean

        raise UsageError(f"--sampler {sampler!r}: gen_img.py knows {', '.join(SAMPLERS)}"
                         f"{did_you_mean(sampler, SAMPLERS)}")
    base_model = str(training.get("pretrained_model_name_or_path") or manifest.get("base_model")
                     or settings.base_model)
    if Path(base_model).exists():
        base_model = str(Path(base_model).resolve())  # gen_img.py runs in the sd-scripts folder

    render_gen_prompts(prompts, request.seeds)  # bad prompt text: fail before touching the folder
    outdir = RunPaths(run_dir).root / "generated" / f"e{epoch:06d}"
    checkpoint_sha = sha256_file(checkpoint)
    key = _request_key(checkpoint_sha, prompts, request.seeds, request.mul, sampler, base_model)
    expected = [image_name(p, s) for p in prompts for s in request.seeds]
    reusable = _claim_outdir(outdir, key, expected, request.force, say)
    if reusable is not None:
        result = {**reusable, "outdir": str(outdir), "reused": True}
        if request.process:
            result["report"] = _process(outdir, quiet)
        return result

    prompt_text = render_gen_prompts(prompts, request.seeds)
    outdir.mkdir(parents=True, exist_ok=True)
    prompt_file = outdir / "prompts.txt"
    atomic_write_text(prompt_file, prompt_text)
    script_args = gen_img_args(base_model=base_model, outdir=outdir, prompt_file=prompt_file, checkpoint=checkpoint,
                               prompts=prompts, training=training, mul=request.mul, sampler=sampler)
    spec = gen_launch_spec(settings, script_args)
    argv, env, overrides = build_launch(spec, dict(os.environ if base_env is None else base_env))
    log_path = outdir / "generate.log"
    rotate_log(log_path)
    record = {
        "schema_version": SCHEMA_VERSION, "kind": "bespoke-generate", "run": str(run_dir),
        "run_id": manifest.get("id", run_dir.name), "epoch": epoch,
        "checkpoint": {"path": str(checkpoint), "sha256": checkpoint_sha, "size": checkpoint.stat().st_size},
        "base_model": str(base_model), "request": key, "seeds": list(request.seeds), "mul": request.mul,
        "sampler": sampler, "prompts": [p.to_json() for p in prompts], "prompt_file": prompt_file.name,
        "images": [{"file": image_name(p, s), "prompt": p.name, "seed": s} for p in prompts for s in request.seeds],
        "argv": argv, "env_overrides": recordable_env(overrides), "cwd": str(spec.cwd) if spec.cwd else None,
        "log": log_path.name, "status": "running", "started": now_iso(), "finished": None, "exit_code": None,
    }
    atomic_write_json(outdir / "generate.json", record)

    view = _GenView(console, len(expected), f"generate e{epoch:06d}", quiet)
    last = [0.0]

    def on_tick():
        if time.monotonic() - last[0] >= 0.3:
            last[0] = time.monotonic()
            view.update(sum(1 for n in expected if (outdir / n).is_file()))

    view.start()
    try:
        result = run_logged(argv, env, log_path, cwd=spec.cwd, on_tick=on_tick, stop=stop,
                            env_overrides=recordable_env(overrides))
    finally:
        view.stop()
    missing = [n for n in expected if not (outdir / n).is_file()]
    if result.interrupted:
        status, reason = "interrupted", "stopped by the user (Ctrl-C / SIGTERM)"
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
        from bespoke.errors import Interrupted

        raise Interrupted(f"generate stopped; partial images and the log are in {outdir}")
    if status != "finished":
        raise TrainerError(f"{reason}: {_error_line(record['log_tail'] or [])[:200]} (full log: {log_path})")
    say(f"generated {len(expected)} images from epoch {epoch} into {outdir}")
    out = {**record, "outdir": str(outdir), "reused": False}
    if request.process:
        out["report"] = _process(outdir, quiet)
    return out


def _error_line(tail: list[str]) -> str:
    """The child's own exception line from a log tail (accelerate's CalledProcessError wrapper is skipped)."""
    from bespoke.run.progress import trainer_error

    return trainer_error(tail) or (tail[-1].strip() if tail else "(empty log)")


def _process(outdir: Path, quiet: bool) -> dict:
    """`process` on the generated folder (its candidates and report go to <outdir>/bespoke_process/)."""
    from bespoke.review.process import output_dirs, process_path

    report = process_path(outdir, progress=not quiet)
    return {"report": str(output_dirs(outdir)[1] / "report.json"), "samples": len(report["samples"]),
            "errors": len(report["errors"]), "epochs": report["epochs"], "best": report["best"]}
