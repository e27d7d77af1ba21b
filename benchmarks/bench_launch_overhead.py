"""How long bespoke takes before the trainer process exists, compared with spawning a bare Python.

Measured in one run, in a throwaway project (synthetic 4-punk dataset, the fake sd-scripts checkout):
- bare spawn: `python -c pass`, start to exit (the floor for starting any Python program);
- plan_run for a new run folder (dataset already prepared and cached), and for an existing one;
- trainer facts (the sd-scripts commit read from its .git + the environment probe in the trainer's Python, which
  imports torch), and as a launch gets them (remembered per trainer environment: bespoke.run.facts.launch_facts);
- train_run up to the moment the trainer's Popen returned: lock, run.json, facts, argv, spawn;
- for scale: `accelerate launch` of the fake until its first output line (the trainer's own start-up).

Usage: .venv/bin/python benchmarks/bench_launch_overhead.py [--repeat N]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
FAKE = REPO / "tests" / "fakes" / "sd_scripts"


def timed(fn, repeat: int) -> list[float]:
    out = []
    for i in range(repeat):
        start = time.perf_counter()
        fn(i)
        out.append(time.perf_counter() - start)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=7)
    args = parser.parse_args()
    sys.path.insert(0, str(REPO))
    from bespoke.dataset.synthetic import write_dataset
    from bespoke.run.events import Started
    from bespoke.run.facts import launch_facts, trainer_facts
    from bespoke.run.plan import PlanRequest, plan_run
    from bespoke.run.train import TrainOptions, train_run
    from bespoke.settings import load_settings

    with tempfile.TemporaryDirectory(prefix="bespoke-bench-") as tmp:
        project = Path(tmp)
        os.environ["HF_HOME"] = str(project / "hf_home")
        os.environ["FAKE_TRAINER_STEP_SECONDS"] = "0"
        write_dataset(project / "ds", count=4, seed=1)
        settings = load_settings(project).with_overrides(sd_scripts=FAKE, sd_python=sys.executable)

        def request(i):
            return PlanRequest(resolution=64, dataset=project / "ds", overrides=(f"seed={1000 + i}",))

        plan_run(settings, request(-1))  # prepares and caches the dataset once, like a second `bespoke train`
        rows = {}
        rows["bare spawn: python -c pass"] = timed(
            lambda i: subprocess.run([sys.executable, "-c", "pass"], check=True), args.repeat)
        rows["plan_run, new run folder"] = timed(lambda i: plan_run(settings, request(i)), args.repeat)
        rows["plan_run, existing run folder"] = timed(lambda i: plan_run(settings, request(i)), args.repeat)
        rows["trainer facts (git + versions)"] = timed(lambda i: trainer_facts(settings), args.repeat)
        rows["trainer facts at a launch (remembered per trainer environment)"] = timed(
            lambda i: launch_facts(settings), args.repeat)

        to_spawn = []

        def spawn_only(i):
            plan = plan_run(settings, request(i))
            stop = threading.Event()
            start = time.perf_counter()

            def spawned(event):
                if isinstance(event, Started):
                    to_spawn.append(time.perf_counter() - start)
                    stop.set()  # measured; do not wait for the trainer

            train_run(settings, plan.paths.root, TrainOptions(stop=stop, stop_timeouts=(5.0, 2.0)), spawned)

        timed(spawn_only, args.repeat)
        rows["train_run until trainer spawned (lock, run.json, spawn; facts in parallel)"] = to_spawn

        first_line = []
        for i in range(min(args.repeat, 3)):
            plan = plan_run(settings, request(i))
            cmd = list(plan.argv)
            start = time.perf_counter()
            proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                    env={**os.environ, "PYTHONUNBUFFERED": "1"})
            proc.stdout.readline()
            first_line.append(time.perf_counter() - start)
            proc.wait()
        rows["for scale: accelerate launch -> trainer's first line"] = first_line

    base = statistics.median(rows["bare spawn: python -c pass"])
    total = statistics.median(rows["plan_run, existing run folder"]) + statistics.median(
        rows["train_run until trainer spawned (lock, run.json, spawn; facts in parallel)"])
    rows["total bespoke before the trainer starts (plan existing + train_run)"] = [total]
    width = max(map(len, rows))
    print(f"{'step':<{width}}  {'median ms':>10}  {'min ms':>8}  {'x bare spawn':>12}")
    for name, values in rows.items():
        med = statistics.median(values)
        print(f"{name:<{width}}  {med * 1000:>10.1f}  {min(values) * 1000:>8.1f}  {med / base:>12.1f}")
    print(f"\n{args.repeat} repeats; python {sys.version.split()[0]}; {os.cpu_count()} CPUs")


if __name__ == "__main__":
    main()
