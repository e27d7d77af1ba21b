"""Preflight wall time per run against the real trainer's time to its first step, on this box, in one run.

`bespoke train` gates its launch (bespoke.kohya.preflight.gate_words): the probe runs inside the launched
trainer process, then the trainer runs there with the modules the probe imported. What a run pays for its
preflight is then the gated launch's time to the first step minus the plain launch's, measured here side by
side (alternating), beside the standalone probe that `bespoke preflight` and `sweep` run.

Needs the real sd-scripts: `source <harness>/env.sh` (BESPOKE_TEST_SD_SCRIPTS, _SD_PYTHON, _BASE_MODEL,
_TOKENIZER_CACHE). In a throwaway project (4 synthetic punks, the CPU-safe overrides of tests/real_trainer):
- preflight of one run (one probe: sd-scripts imported once, every stage, up to the model load);
- preflight of every shipped preset x resolution in one probe, per run;
- the real trainer through `accelerate launch`, plain and gated (what `bespoke train` starts), from spawn to its first optimizer
  step (the first `steps: ... 1/N` progress line), then stopped; sample_at_first is off, so that time is the
  imports, model load and latent caching only (with it on, the samples drawn before step 1 add minutes on CPU).
Target: the preflight of one run `bespoke train` launches costs < 10 % of the trainer's time to its first step.

Usage: .venv/bin/python benchmarks/bench_preflight.py [--repeat N]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import sys
import tempfile
import threading
import time
from dataclasses import replace
from pathlib import Path

from rich.console import Console
from rich.table import Table

from bespoke.dataset.synthetic import write_dataset
from bespoke.kohya.launch import build_launch
from bespoke.kohya.preflight import gate_words
from bespoke.run.paths import RunPaths, read_training
from bespoke.run.plan import PlanRequest, launch_spec_for, plan_run
from bespoke.run.preflight import plan_shipped, preflight_runs
from bespoke.run.runner import run_logged
from bespoke.run.train import neutral_accelerate_config
from bespoke.settings import load_settings

FIRST_STEP = re.compile(r"steps:.*\b1/\d+")


def cpu_safe(tokenizer_cache: str) -> tuple[str, ...]:
    return ("bucket_reso_steps=64", "min_bucket_reso=64", "persistent_data_loader_workers=false",
            "max_data_loader_n_workers=0", 'mixed_precision="no"', 'save_precision="float"', "max_train_epochs=2",
            "sample_at_first=false",  # the first step comes right after the model load and latent caching
            "num_repeats=1", "batch_size=2", "gradient_checkpointing=false", "network_dim=4",
            f'tokenizer_cache_dir="{tokenizer_cache}"')


def time_to_first_step(settings, run_dir: Path, env: dict, gated: bool) -> tuple[float, float | None]:
    """Spawn the real trainer for `run_dir` as `bespoke train` would (`gated`: behind the preflight gate, as
    `train` does by default), stop it at its first step: (seconds, the gate's own stage seconds or None)."""
    paths = RunPaths(run_dir)
    spec = replace(launch_spec_for(settings, paths, read_training(paths)),
                   accelerate_config=Path(paths.relative(neutral_accelerate_config(paths))))
    paths.preflight_report.unlink(missing_ok=True)
    if gated:
        spec = replace(spec, gate=gate_words(paths.relative(paths.preflight_report)))
    argv, full_env, _ = build_launch(spec, env)
    stop = threading.Event()
    seen = {}

    def on_line(stream: str, line: str) -> None:
        if "first" not in seen and FIRST_STEP.search(line):
            seen["first"] = time.perf_counter()
            stop.set()

    started = time.perf_counter()
    result = run_logged(argv, full_env, paths.logs_dir / "bench.log", cwd=spec.cwd, on_line=on_line, stop=stop,
                        stop_timeouts=(5.0, 5.0))
    if "first" not in seen:
        raise SystemExit(f"the trainer ended (exit {result.exit_code}) before its first step; see "
                         f"{paths.logs_dir / 'bench.log'}")
    stages = None
    if gated:
        report = json.loads(paths.preflight_report.read_text())
        stages = float(report["seconds"]["stages"])
    return seen["first"] - started, stages


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=2)
    options = parser.parse_args()
    missing = [v for v in ("BESPOKE_TEST_SD_SCRIPTS", "BESPOKE_TEST_SD_PYTHON", "BESPOKE_TEST_BASE_MODEL",
                           "BESPOKE_TEST_TOKENIZER_CACHE") if not os.environ.get(v)]
    if missing:
        raise SystemExit(f"set {', '.join(missing)} (source <harness>/env.sh)")
    with tempfile.TemporaryDirectory(prefix="bench-preflight-") as tmp:
        project = Path(tmp)
        env = {**os.environ, "BESPOKE_SD_SCRIPTS": os.environ["BESPOKE_TEST_SD_SCRIPTS"],
               "BESPOKE_PYTHON": os.environ["BESPOKE_TEST_SD_PYTHON"],
               "BESPOKE_BASE_MODEL": os.environ["BESPOKE_TEST_BASE_MODEL"], "HF_HUB_OFFLINE": "1"}
        settings = load_settings(project, env=env)
        write_dataset(project / "datasets" / "punks", count=4, seed=5)
        overrides = cpu_safe(os.environ["BESPOKE_TEST_TOKENIZER_CACHE"])
        run = plan_run(settings, PlanRequest(resolution=64, dataset=project / "datasets" / "punks",
                                             overrides=overrides)).paths.root
        preflight_runs(settings, [run])  # warm-up, untimed: the first import of torch & co. reads them from disk
        one = [preflight_runs(settings, [run]).seconds for _ in range(options.repeat)]
        shipped = plan_shipped(settings, project / "shipped", (overrides[-1],))
        batch = preflight_runs(settings, list(shipped.values())).seconds
        plain, gated = [], []
        for _ in range(options.repeat):  # alternating, so that a drift of the box hits both alike
            plain.append(time_to_first_step(settings, run, env, gated=False)[0])
            gated.append(time_to_first_step(settings, run, env, gated=True))
    pre, step = statistics.median(one), statistics.median(plain)
    gate_step = statistics.median(g[0] for g in gated)
    gate_stages = statistics.median(float(g[1] or 0.0) for g in gated)
    cost = gate_step - step
    table = Table(title=f"preflight vs the real trainer's first step ({os.cpu_count()} cores, median of "
                        f"{options.repeat})")
    for column in ("measure", "seconds", "ratio to first step"):
        table.add_column(column, justify="left" if column == "measure" else "right")
    table.add_row("trainer: spawn -> first step (64 px, 4 punks), plain launch", f"{step:.1f}", "1.00")
    table.add_row("trainer: spawn -> first step, gated launch (bespoke train)", f"{gate_step:.1f}",
                  f"{gate_step / step:.2f}")
    table.add_row("preflight of bespoke train: gated minus plain", f"{cost:.1f}", f"{cost / step:.2f}")
    table.add_row("  the gate's stages alone (its own clock, import excluded)", f"{gate_stages:.1f}",
                  f"{gate_stages / step:.2f}")
    table.add_row("preflight: 1 run, standalone probe (bespoke preflight)", f"{pre:.1f}", f"{pre / step:.2f}")
    table.add_row(f"preflight: {len(shipped)} shipped runs, one probe (per run)", f"{batch / len(shipped):.1f}",
                  f"{batch / len(shipped) / step:.2f}")
    table.add_row(f"preflight: {len(shipped)} shipped runs, one probe (total)", f"{batch:.1f}", f"{batch / step:.2f}")
    Console(width=max(Console().width, 110)).print(table)
    verdict = "meets" if cost / step < 0.10 else "misses"
    print(f"target: the preflight of one `bespoke train` launch < 10 % of the time to the first step: "
          f"{cost / step:.0%} ({verdict} it); the standalone probe is {pre / step:.0%}")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
