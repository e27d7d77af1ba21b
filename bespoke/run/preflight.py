"""`bespoke preflight RUN`: the installed sd-scripts' own code, in the trainer's Python, on a run's exact
configs, up to the model load (stages: bespoke.kohya.preflight; the probe: bespoke/kohya/probe.py).

One probe process checks any number of run folders (sd-scripts is imported once, ~6 s with torch), each in
its own forked child, started in the run folder like the trainer. `sweep` calls `require_preflight` for all
its runs before any launch; `train` and `generate` gate their one launch instead (bespoke.kohya.preflight.gate_words):
the check runs inside the launched process (gen_img.py's stages for `generate`), which then trains or
generates with the modules it has already imported, and `refusal` turns the gate's report into the same error.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from pathlib import Path

from bespoke.dataset.synthetic import write_dataset
from bespoke.errors import BespokeError, ConfigError, PreflightError, TrainerError
from bespoke.kohya.launch import train_script_args, trainer_env
from bespoke.kohya.preflight import (
    FAIL,
    RunPreflight,
    parse_probe,
    probe_argv,
    probe_device,
    probe_job,
    read_gate,
)
from bespoke.kohya.presets import load_preset_file, preset_names, presets_folder
from bespoke.run.paths import RunPaths
from bespoke.run.plan import PlanRequest, plan_run
from bespoke.run.runner import run_capture
from bespoke.settings import Settings

RESOLUTIONS = (512, 256, 128, 64)
PROBE_TIMEOUT_S = 1800.0  # a batch of runs on a busy CPU box; a hung probe must still end


@dataclass
class PreflightReport:
    """Every run's stages, what the probe saw of this box (envprobe.device's dict), how long the probe took, and
    what of the caller's environment it was not given (bespoke.kohya.launch.trainer_env)."""

    runs: list[RunPreflight]
    device: dict
    seconds: float
    env_removed: dict[str, str] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return all(r.ok for r in self.runs)

    def to_json(self) -> dict:
        return {"ok": self.ok, "device": self.device, "seconds": round(self.seconds, 3),
                "env_removed": self.env_removed, "runs": [r.to_json() for r in self.runs]}


def _job(run_dir: Path) -> dict:
    paths = RunPaths(Path(run_dir))
    for path in (paths.training_toml, paths.dataset_toml):
        if not path.is_file():
            raise ConfigError(f"{path}: missing; plan the run first (bespoke plan) or pick another run folder")
    args = train_script_args(paths.relative(paths.training_toml), paths.relative(paths.dataset_toml))
    return probe_job(str(paths.root), paths.root, args)


def preflight_runs(settings: Settings, run_dirs: list[Path], env: dict[str, str] | None = None) -> PreflightReport:
    """Run the probe once for all `run_dirs`; results in the same order. ConfigError without a checkout."""
    script = settings.sd_script("train_network.py")
    return _probe(settings, script, [_job(Path(d)) for d in run_dirs], env)


def _probe(settings: Settings, script: Path, jobs: list[dict], env: dict[str, str] | None) -> PreflightReport:
    if not jobs:
        return PreflightReport([], {}, 0.0)
    started = time.monotonic()
    python = settings.trainer_python
    clean, removed = trainer_env(dict(os.environ if env is None else env), python)
    done = run_capture(probe_argv(python, script.parent, jobs), timeout=PROBE_TIMEOUT_S, cwd=script.parent,
                       env=clean)
    seconds = time.monotonic() - started
    runs = parse_probe(done.stdout, done.stderr, done.exit_code, [j["id"] for j in jobs])
    by_id = {r.run: r for r in runs}
    ordered = [by_id.get(j["id"]) or RunPreflight(j["id"], error="the probe gave no answer for this run")
               for j in jobs]
    return PreflightReport(ordered, probe_device(done.stdout), seconds, removed)


def problem_summary(run: RunPreflight) -> str:
    """One line: each stage that would stop the trainer, its message and its fix."""
    if run.error:
        return run.error
    parts = []
    for stage in run.problems:
        fix = f" (fix: {stage.fix})" if stage.fix else ""
        parts.append(f"{stage.name} {stage.status}: {stage.message[:240]}{fix}")
    return "; ".join(parts)


def require_preflight(settings: Settings, run_dirs: list[Path], *, here: bool = True) -> PreflightReport:
    """Preflight before launching runs (a sweep): raise PreflightError naming every problem (TrainerError when
    the probe itself could not run), so nothing is launched that the trainer would refuse. `here=False` (a
    Slurm submit host: the runs train on other nodes, each task preflights again there) lets NEEDS-HARDWARE
    stages pass."""
    report = preflight_runs(settings, run_dirs)
    problem = refusal(report.runs, here=here)
    if problem is not None:
        raise problem
    return report


def refusal(runs: list[RunPreflight], *, here: bool = True) -> BespokeError | None:
    """The error that stops a launch for these preflight results (see require_preflight), None when they pass."""
    broken = [r for r in runs if r.error]
    if broken:
        return TrainerError(f"preflight could not run for {Path(broken[0].run).name}: {broken[0].error} "
                            "(`bespoke doctor` checks the trainer's Python; --no-preflight skips this check)")
    bad = [r for r in runs if not r.ok and (here or any(s.status == FAIL for s in r.problems))]
    if bad:
        lines = " | ".join(f"{Path(r.run).name}: {problem_summary(r)}" for r in bad)
        return PreflightError(f"preflight: the trainer would stop: {lines} — `bespoke preflight RUN` shows every "
                              "stage; --no-preflight launches anyway")
    return None


def gate_refusal(report: Path, run: Path) -> BespokeError | None:
    """The error that a gated launch's report (kohya/gate.py) stands for, None when it passed or wrote none."""
    verdict = read_gate(report, str(run))
    return refusal([verdict]) if verdict is not None else None


def shipped_combinations() -> list[tuple[int, str | None]]:
    """(resolution, preset) of every shipped preset: the default at each resolution, a named preset at its own
    resolution (or at each when it names none)."""
    combos: list[tuple[int, str | None]] = [(r, None) for r in RESOLUTIONS]
    for name in preset_names():
        own = load_preset_file(presets_folder() / f"{name}.toml")["bespoke"].get("resolution")
        combos += [(int(own), name)] if own else [(r, name) for r in RESOLUTIONS]
    return combos


def plan_shipped(settings: Settings, folder: Path, overrides: tuple[str, ...] = ()) -> dict[str, Path]:
    """Plan every shipped preset x resolution into `folder` (its own outputs, cache and 4 synthetic punks):
    {label: run folder}, label "64" or "512 baseline-512"."""
    scratch = Settings(project_root=folder, outputs_dir=folder / "outputs", datasets_dir=folder / "datasets",
                       cache_dir=folder / "cache", sd_scripts=settings.sd_scripts, sd_python=settings.sd_python,
                       base_model=settings.base_model, accelerate=settings.accelerate)
    dataset = folder / "datasets" / "punks"
    write_dataset(dataset, count=4, seed=3)
    runs = {}
    for resolution, preset in shipped_combinations():
        plan = plan_run(scratch, PlanRequest(resolution=resolution, dataset=dataset, preset=preset,
                                             overrides=overrides))
        runs[f"{resolution} {preset}" if preset else str(resolution)] = plan.paths.root
    return runs
